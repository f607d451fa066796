/**
 * Ports of the posture reconciliation (design §3): what it reads and writes in ARM besides the vaults
 * (which it reaches through lib/ports.ts `VaultManagement`). `lib/adapters/posture.ts` implements
 * them with the Azure SDK; unit tests with in-memory fakes. As in lib/ports.ts, every expected
 * failure is an `ArmResult` with a typed `CallFailure`, never an exception.
 */
import type { ArmResult } from '../ports';

/** A Defender for Cloud plan (`Microsoft.Security/pricings/<name>`). */
export interface PricingState {
  name: string;
  tier: string;
  subPlan?: string;
}

export interface VmFacts {
  id: string;
  name: string;
  resourceGroup: string;
  location: string;
  tags: Record<string, string>;
}

/** One port rule of a JIT policy (exactly one of the two prefix fields is set). */
export interface JitPortRule {
  number: number;
  protocol: string;
  allowedSourceAddressPrefix?: string;
  allowedSourceAddressPrefixes?: string[];
  maxRequestAccessDuration: string;
}

export interface JitVirtualMachine {
  id: string;
  ports: JitPortRule[];
  publicIpAddress?: string;
}

export interface JitPolicyFacts {
  id: string;
  name: string;
  resourceGroup: string;
  location: string;
  virtualMachines: JitVirtualMachine[];
}

export interface DiagnosticLogSetting {
  category?: string;
  categoryGroup?: string;
  enabled: boolean;
}

/** A diagnostic setting on a resource (`Microsoft.Insights/diagnosticSettings`). */
export interface DiagnosticSettingFacts {
  name: string;
  workspaceId?: string;
  logAnalyticsDestinationType?: string;
  eventHubAuthorizationRuleId?: string;
  eventHubName?: string;
  storageAccountId?: string;
  logs: DiagnosticLogSetting[];
}

export interface PolicyAssignmentFacts {
  id: string;
  name: string;
  scope: string;
  policyDefinitionId: string;
  /** `parameters.effect.value`; absent means the definition's default. */
  effect?: string;
  enforcementMode?: string;
}

export interface PolicyAssignmentSpec {
  policyDefinitionId: string;
  effect: string;
  displayName: string;
  description: string;
}

export interface VnetFacts {
  id: string;
  name: string;
  resourceGroup: string;
  location: string;
}

export interface NetworkWatcherFacts {
  id: string;
  name: string;
  resourceGroup: string;
  location: string;
}

export interface FlowLogFacts {
  id: string;
  name: string;
  targetResourceId: string;
  storageId: string;
  enabled: boolean;
  retentionDays: number;
  retentionEnabled: boolean;
}

export interface FlowLogSpec {
  targetResourceId: string;
  storageId: string;
  retentionDays: number;
}

export interface AutoProvisioningFacts {
  name: string;
  autoProvision: string;
}

/** A Defender for Cloud alert, with the ARM ids it names. */
export interface SecurityAlertFacts {
  id: string;
  name: string;
  alertType: string;
  displayName: string;
  description?: string;
  severity: string;
  status: string;
  resourceIds: string[];
  compromisedEntity?: string;
  startTime?: Date;
  alertUri?: string;
}

/** Everything the reconciliation reads and writes besides vaults, per subscription or resource. */
export interface PostureArm {
  listPricings(subscriptionId: string): Promise<ArmResult<PricingState[]>>;
  /** Answers the plan as ARM stored it (`tier` empty when the answer names none). */
  updatePricing(
    subscriptionId: string,
    name: string,
    desired: { tier: string; subPlan?: string },
  ): Promise<ArmResult<PricingState>>;
  listVirtualMachines(subscriptionId: string): Promise<ArmResult<VmFacts[]>>;
  listJitPolicies(subscriptionId: string): Promise<ArmResult<JitPolicyFacts[]>>;
  /** Replaces the policy's VM list; answers the policy as ARM stored it. */
  putJitPolicy(
    subscriptionId: string,
    resourceGroup: string,
    location: string,
    name: string,
    virtualMachines: JitVirtualMachine[],
  ): Promise<ArmResult<JitPolicyFacts>>;
  listDiagnosticSettings(resourceId: string): Promise<ArmResult<DiagnosticSettingFacts[]>>;
  putDiagnosticSetting(
    resourceId: string,
    setting: DiagnosticSettingFacts,
  ): Promise<ArmResult<DiagnosticSettingFacts>>;
  getPolicyAssignment(scope: string, name: string): Promise<ArmResult<PolicyAssignmentFacts | undefined>>;
  putPolicyAssignment(
    scope: string,
    name: string,
    spec: PolicyAssignmentSpec,
  ): Promise<ArmResult<PolicyAssignmentFacts>>;
  listVirtualNetworks(subscriptionId: string): Promise<ArmResult<VnetFacts[]>>;
  listNetworkWatchers(subscriptionId: string): Promise<ArmResult<NetworkWatcherFacts[]>>;
  listFlowLogs(subscriptionId: string, watcher: NetworkWatcherFacts): Promise<ArmResult<FlowLogFacts[]>>;
  putFlowLog(
    subscriptionId: string,
    watcher: NetworkWatcherFacts,
    name: string,
    spec: FlowLogSpec,
  ): Promise<ArmResult<FlowLogFacts>>;
  listAutoProvisioning(subscriptionId: string): Promise<ArmResult<AutoProvisioningFacts[]>>;
  listSecurityAlerts(subscriptionId: string): Promise<ArmResult<SecurityAlertFacts[]>>;
}
