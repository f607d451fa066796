/**
 * The posture reconciliation's ARM calls (lib/posture/ports.ts `PostureArm`), one SDK client per
 * subscription and package, sharing the credential and retry options of azure.ts (the SDK's retry
 * policy waits out a 429 for as long as its `Retry-After` says, up to `maxRetries` times):
 * - @azure/arm-security 5.0.0: pricings (api-version 2022-03-01; `subPlan`; PUT accepts only 200),
 *   JIT policies (2020-01-01), auto-provisioning (2017-08-01-preview), alerts (2021-11-01);
 * - @azure/arm-compute 24.1.0: virtual machines (list by subscription, paged);
 * - @azure/arm-monitor 7.0.0: diagnostic settings (2017-05-01-preview; PUT accepts only 200);
 * - @azure/arm-policy 6.0.0: policy assignments (2024-05-01; PUT accepts only 201);
 * - @azure/arm-network 36.0.0: virtual networks, network watchers, flow logs (2025-05-01; the flow
 *   log PUT is a long-running operation the SDK polls).
 * Versions pinned where newer majors need Node 22 (the tests run on Node 20).
 */
import type { TokenCredential } from '@azure/identity';
import { ComputeManagementClient } from '@azure/arm-compute';
import { MonitorClient, type DiagnosticSettingsResource } from '@azure/arm-monitor';
import { NetworkManagementClient, type FlowLog } from '@azure/arm-network';
import { PolicyClient, type PolicyAssignment } from '@azure/arm-policy';
import { SecurityCenter, type Alert, type JitNetworkAccessPolicy } from '@azure/arm-security';
import type { ArmResult } from '../ports';
import type {
  AutoProvisioningFacts,
  DiagnosticSettingFacts,
  FlowLogFacts,
  FlowLogSpec,
  JitPolicyFacts,
  JitVirtualMachine,
  NetworkWatcherFacts,
  PolicyAssignmentFacts,
  PolicyAssignmentSpec,
  PostureArm,
  PricingState,
  SecurityAlertFacts,
  VmFacts,
  VnetFacts,
} from '../posture/ports';
import { clientOptions, statusOf, toCallFailure } from './azure';

/** `/subscriptions/{s}/resourceGroups/{rg}/…` → the resource group, as written. */
export function resourceGroupOf(id: string): string {
  return /\/resourceGroups\/([^/]+)/i.exec(id)?.[1] ?? '';
}

function subscriptionOf(id: string): string | undefined {
  return /^\/subscriptions\/([^/]+)/i.exec(id)?.[1];
}

const normaliseLocation = (l: string | undefined) => (l ?? '').replace(/\s+/g, '').toLowerCase();

function toJit(p: JitNetworkAccessPolicy): JitPolicyFacts {
  const id = p.id ?? '';
  return {
    id,
    name: p.name ?? 'default',
    resourceGroup: resourceGroupOf(id),
    location: normaliseLocation(p.location ?? /\/locations\/([^/]+)\//i.exec(id)?.[1]),
    virtualMachines: (p.virtualMachines ?? []).map((vm) => ({
      id: vm.id,
      ...(vm.publicIpAddress ? { publicIpAddress: vm.publicIpAddress } : {}),
      ports: (vm.ports ?? []).map((port) => ({
        number: port.number,
        protocol: port.protocol,
        ...(port.allowedSourceAddressPrefix !== undefined
          ? { allowedSourceAddressPrefix: port.allowedSourceAddressPrefix }
          : {}),
        ...(port.allowedSourceAddressPrefixes !== undefined
          ? { allowedSourceAddressPrefixes: port.allowedSourceAddressPrefixes }
          : {}),
        maxRequestAccessDuration: port.maxRequestAccessDuration,
      })),
    })),
  };
}

function toSetting(s: DiagnosticSettingsResource): DiagnosticSettingFacts {
  return {
    name: s.name ?? '',
    ...(s.workspaceId ? { workspaceId: s.workspaceId } : {}),
    ...(s.logAnalyticsDestinationType ? { logAnalyticsDestinationType: s.logAnalyticsDestinationType } : {}),
    ...(s.eventHubAuthorizationRuleId ? { eventHubAuthorizationRuleId: s.eventHubAuthorizationRuleId } : {}),
    ...(s.eventHubName ? { eventHubName: s.eventHubName } : {}),
    ...(s.storageAccountId ? { storageAccountId: s.storageAccountId } : {}),
    logs: (s.logs ?? []).map((l) => {
      // 2017-05-01-preview has no categoryGroup in the SDK model; a service that sends one is read raw.
      const raw = l as { category?: string; categoryGroup?: string; enabled: boolean };
      return {
        ...(raw.category ? { category: raw.category } : {}),
        ...(raw.categoryGroup ? { categoryGroup: raw.categoryGroup } : {}),
        enabled: raw.enabled === true,
      };
    }),
  };
}

function toAssignment(a: PolicyAssignment, scope: string): PolicyAssignmentFacts {
  const effect = a.parameters?.effect?.value as unknown;
  return {
    id: a.id ?? '',
    name: a.name ?? '',
    scope: a.scope ?? scope,
    policyDefinitionId: a.policyDefinitionId ?? '',
    ...(typeof effect === 'string' ? { effect } : {}),
    ...(a.enforcementMode ? { enforcementMode: a.enforcementMode } : {}),
  };
}

function toFlowLog(f: FlowLog): FlowLogFacts {
  return {
    id: f.id ?? '',
    name: f.name ?? '',
    targetResourceId: f.targetResourceId ?? '',
    storageId: f.storageId ?? '',
    enabled: f.enabled === true,
    retentionDays: f.retentionPolicy?.days ?? 0,
    retentionEnabled: f.retentionPolicy?.enabled === true,
  };
}

function toAlert(a: Alert): SecurityAlertFacts {
  const ids = (a.resourceIdentifiers ?? [])
    .map((r) => (r as { azureResourceId?: string }).azureResourceId)
    .filter((id): id is string => typeof id === 'string' && id.length > 0);
  return {
    id: a.id ?? '',
    name: a.name ?? '',
    alertType: a.alertType ?? '',
    displayName: a.alertDisplayName ?? a.alertType ?? '',
    ...(a.description ? { description: a.description } : {}),
    severity: a.severity ?? 'Medium',
    status: a.status ?? 'Active',
    resourceIds: ids,
    ...(a.compromisedEntity ? { compromisedEntity: a.compromisedEntity } : {}),
    ...(a.startTimeUtc ? { startTime: a.startTimeUtc } : {}),
    ...(a.alertUri ? { alertUri: a.alertUri } : {}),
  };
}

async function collect<T, U>(items: AsyncIterable<T>, map: (t: T) => U): Promise<U[]> {
  const out: U[] = [];
  for await (const item of items) out.push(map(item));
  return out;
}

export class PostureArmAdapter implements PostureArm {
  private readonly clients = new Map<string, unknown>();

  constructor(
    private readonly credential: TokenCredential,
    private readonly retryBaseDelayMs: number,
  ) {}

  private cached<T>(kind: string, subscriptionId: string, make: () => T): T {
    const key = `${kind}|${subscriptionId.toLowerCase()}`;
    let client = this.clients.get(key) as T | undefined;
    if (!client) {
      client = make();
      this.clients.set(key, client);
    }
    return client;
  }

  private security(sub: string): SecurityCenter {
    return this.cached('security', sub, () => new SecurityCenter(this.credential, sub, this.options()));
  }
  private compute(sub: string): ComputeManagementClient {
    return this.cached(
      'compute',
      sub,
      () => new ComputeManagementClient(this.credential, sub, this.options()),
    );
  }
  private monitor(sub: string): MonitorClient {
    return this.cached('monitor', sub, () => new MonitorClient(this.credential, sub, this.options()));
  }
  private policy(sub: string): PolicyClient {
    return this.cached('policy', sub, () => new PolicyClient(this.credential, sub, this.options()));
  }
  private network(sub: string): NetworkManagementClient {
    return this.cached(
      'network',
      sub,
      () => new NetworkManagementClient(this.credential, sub, this.options()),
    );
  }
  private options() {
    return clientOptions(this.retryBaseDelayMs);
  }

  private async call<T>(permission: string, fn: () => Promise<T>): Promise<ArmResult<T>> {
    try {
      return { ok: true, value: await fn() };
    } catch (error) {
      return { ok: false, failure: toCallFailure(error, permission) };
    }
  }

  private async maybe<T>(permission: string, fn: () => Promise<T>): Promise<ArmResult<T | undefined>> {
    try {
      return { ok: true, value: await fn() };
    } catch (error) {
      if (statusOf(error) === 404) return { ok: true, value: undefined };
      return { ok: false, failure: toCallFailure(error, permission) };
    }
  }

  listPricings(sub: string) {
    return this.call('Microsoft.Security/pricings/read', async () =>
      ((await this.security(sub).pricings.list()).value ?? []).map((p): PricingState => ({
        name: p.name ?? '',
        tier: p.pricingTier ?? 'Free',
        ...(p.subPlan ? { subPlan: p.subPlan } : {}),
      })),
    );
  }

  updatePricing(sub: string, name: string, desired: { tier: string; subPlan?: string }) {
    return this.call('Microsoft.Security/pricings/write', async () => {
      const p = await this.security(sub).pricings.update(name, {
        pricingTier: desired.tier,
        ...(desired.subPlan ? { subPlan: desired.subPlan } : {}),
      });
      // The answer is what the change is checked against (lib/posture/reconcile.ts `settle`): an
      // answer without a tier shows none, never the tier asked for.
      return {
        name: p.name ?? name,
        tier: p.pricingTier ?? '',
        ...(p.subPlan ? { subPlan: p.subPlan } : {}),
      };
    });
  }

  listVirtualMachines(sub: string) {
    return this.call('Microsoft.Compute/virtualMachines/read', () =>
      collect(this.compute(sub).virtualMachines.listAll(), (vm): VmFacts => ({
        id: vm.id ?? '',
        name: vm.name ?? '',
        resourceGroup: resourceGroupOf(vm.id ?? ''),
        location: normaliseLocation(vm.location),
        tags: vm.tags ?? {},
      })),
    );
  }

  listJitPolicies(sub: string) {
    return this.call('Microsoft.Security/locations/jitNetworkAccessPolicies/read', () =>
      collect(this.security(sub).jitNetworkAccessPolicies.list(), toJit),
    );
  }

  putJitPolicy(
    sub: string,
    resourceGroup: string,
    location: string,
    name: string,
    virtualMachines: JitVirtualMachine[],
  ) {
    return this.call(
      'Microsoft.Security/locations/jitNetworkAccessPolicies/write and Microsoft.Compute/virtualMachines/write',
      async () =>
        toJit(
          await this.security(sub).jitNetworkAccessPolicies.createOrUpdate(resourceGroup, location, name, {
            kind: 'Basic',
            virtualMachines: virtualMachines.map((vm) => ({
              id: vm.id,
              ports: vm.ports.map((p) => ({ ...p, protocol: p.protocol })),
              ...(vm.publicIpAddress ? { publicIpAddress: vm.publicIpAddress } : {}),
            })),
          }),
        ),
    );
  }

  listDiagnosticSettings(resourceId: string) {
    const sub = subscriptionOf(resourceId) ?? '';
    return this.call('Microsoft.Insights/diagnosticSettings/read', async () =>
      ((await this.monitor(sub).diagnosticSettings.list(resourceId.replace(/^\//, ''))).value ?? []).map(
        toSetting,
      ),
    );
  }

  putDiagnosticSetting(resourceId: string, setting: DiagnosticSettingFacts) {
    const sub = subscriptionOf(resourceId) ?? '';
    return this.call('Microsoft.Insights/diagnosticSettings/write', async () =>
      toSetting(
        await this.monitor(sub).diagnosticSettings.createOrUpdate(
          resourceId.replace(/^\//, ''),
          setting.name,
          {
            ...(setting.workspaceId ? { workspaceId: setting.workspaceId } : {}),
            ...(setting.logAnalyticsDestinationType
              ? { logAnalyticsDestinationType: setting.logAnalyticsDestinationType }
              : {}),
            ...(setting.eventHubAuthorizationRuleId
              ? { eventHubAuthorizationRuleId: setting.eventHubAuthorizationRuleId }
              : {}),
            ...(setting.eventHubName ? { eventHubName: setting.eventHubName } : {}),
            ...(setting.storageAccountId ? { storageAccountId: setting.storageAccountId } : {}),
            logs: setting.logs.map((l) => ({ category: l.category, enabled: l.enabled })),
          },
        ),
      ),
    );
  }

  getPolicyAssignment(scope: string, name: string) {
    return this.maybe('Microsoft.Authorization/policyAssignments/read', async () =>
      toAssignment(await this.policyFor(scope).policyAssignments.get(scope.replace(/^\//, ''), name), scope),
    );
  }

  putPolicyAssignment(scope: string, name: string, spec: PolicyAssignmentSpec) {
    return this.call('Microsoft.Authorization/policyAssignments/write', async () =>
      toAssignment(
        await this.policyFor(scope).policyAssignments.create(scope.replace(/^\//, ''), name, {
          policyDefinitionId: spec.policyDefinitionId,
          displayName: spec.displayName,
          description: spec.description,
          enforcementMode: 'Default',
          parameters: { effect: { value: spec.effect } },
        }),
        scope,
      ),
    );
  }

  /** The policy client of the scope's subscription (a management-group scope uses any client). */
  private policyFor(scope: string): PolicyClient {
    return this.policy(subscriptionOf(scope) ?? '00000000-0000-0000-0000-000000000000');
  }

  listVirtualNetworks(sub: string) {
    return this.call('Microsoft.Network/virtualNetworks/read', () =>
      collect(this.network(sub).virtualNetworks.listAll(), (v): VnetFacts => ({
        id: v.id ?? '',
        name: v.name ?? '',
        resourceGroup: resourceGroupOf(v.id ?? ''),
        location: normaliseLocation(v.location),
      })),
    );
  }

  listNetworkWatchers(sub: string) {
    return this.call('Microsoft.Network/networkWatchers/read', () =>
      collect(this.network(sub).networkWatchers.listAll(), (w): NetworkWatcherFacts => ({
        id: w.id ?? '',
        name: w.name ?? '',
        resourceGroup: resourceGroupOf(w.id ?? ''),
        location: normaliseLocation(w.location),
      })),
    );
  }

  listFlowLogs(sub: string, watcher: NetworkWatcherFacts) {
    return this.call('Microsoft.Network/networkWatchers/flowLogs/read', () =>
      collect(this.network(sub).flowLogs.list(watcher.resourceGroup, watcher.name), toFlowLog),
    );
  }

  putFlowLog(sub: string, watcher: NetworkWatcherFacts, name: string, spec: FlowLogSpec) {
    return this.call('Microsoft.Network/networkWatchers/flowLogs/write', async () =>
      toFlowLog(
        await this.network(sub).flowLogs.beginCreateOrUpdateAndWait(
          watcher.resourceGroup,
          watcher.name,
          name,
          {
            location: watcher.location,
            targetResourceId: spec.targetResourceId,
            storageId: spec.storageId,
            enabled: true,
            retentionPolicy: { days: spec.retentionDays, enabled: spec.retentionDays > 0 },
            format: { type: 'JSON', version: 2 },
          },
          { updateIntervalInMs: Math.max(this.retryBaseDelayMs, 10) },
        ),
      ),
    );
  }

  listAutoProvisioning(sub: string) {
    return this.call('Microsoft.Security/autoProvisioningSettings/read', () =>
      collect(this.security(sub).autoProvisioningSettings.list(), (s): AutoProvisioningFacts => ({
        name: s.name ?? '',
        autoProvision: s.autoProvision ?? '',
      })),
    );
  }

  listSecurityAlerts(sub: string) {
    return this.call('Microsoft.Security/alerts/read', () =>
      collect(this.security(sub).alerts.list(), toAlert),
    );
  }
}
