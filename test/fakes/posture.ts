/**
 * An in-memory `PostureArm` (lib/posture/ports.ts): pricings, VMs, JIT policies, diagnostic settings,
 * policy assignments, VNets, network watchers, flow logs, auto-provisioning and Defender alerts of
 * any number of subscriptions. Every call is recorded (`calls`, `writes()`); `fail(op, failure)`
 * makes the next matching calls answer a `CallFailure`; `sticky = false` makes writes answer ok
 * without changing anything, their answer showing the state as it was (what a write that does not
 * take looks like in ARM's answer, which is all kvguard checks a write against).
 */
import type { ArmResult, CallFailure } from '../../lib/ports';
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
} from '../../lib/posture/ports';
import { FaultPlan } from './failures';

export type PostureOp = keyof PostureArm;
const WRITES: PostureOp[] = [
  'updatePricing',
  'putJitPolicy',
  'putDiagnosticSetting',
  'putPolicyAssignment',
  'putFlowLog',
];

const lower = (s: string) => s.toLowerCase();
const clone = <T>(v: T): T => structuredClone(v);

export class FakePostureArm implements PostureArm {
  readonly calls: Array<{ op: PostureOp; args: string[] }> = [];
  /** Writes change state; false: they answer ok, change nothing, and answer the old state. */
  sticky = true;
  readonly pricings = new Map<string, PricingState[]>();
  readonly vms = new Map<string, VmFacts[]>();
  readonly jit = new Map<string, JitPolicyFacts[]>();
  readonly settings = new Map<string, DiagnosticSettingFacts[]>();
  readonly assignments = new Map<string, PolicyAssignmentFacts>();
  readonly vnets = new Map<string, VnetFacts[]>();
  readonly watchers = new Map<string, NetworkWatcherFacts[]>();
  readonly flowLogs = new Map<string, FlowLogFacts[]>();
  readonly autoProvisioning = new Map<string, string>();
  readonly alerts = new Map<string, SecurityAlertFacts[]>();
  private readonly faults = new FaultPlan<PostureOp, CallFailure>();
  /** Throws (not a CallFailure: a bug or a transport error) on the next call of this op. */
  throwOn?: PostureOp;

  fail(op: PostureOp, failure: CallFailure, times = 1, when?: (args: readonly string[]) => boolean): this {
    this.faults.add(op, failure, times, when);
    return this;
  }

  writes(): Array<{ op: PostureOp; args: string[] }> {
    return this.calls.filter((c) => WRITES.includes(c.op));
  }

  // ------------------------------------------------------------------ estate (test side)

  addPlans(sub: string, plans: PricingState[]): this {
    this.pricings.set(lower(sub), clone(plans));
    return this;
  }

  addVm(sub: string, vm: Omit<VmFacts, 'id' | 'tags'> & { tags?: Record<string, string> }): VmFacts {
    const facts: VmFacts = {
      id: `/subscriptions/${sub}/resourceGroups/${vm.resourceGroup}/providers/Microsoft.Compute/virtualMachines/${vm.name}`,
      tags: {},
      ...vm,
    };
    this.vms.set(lower(sub), [...(this.vms.get(lower(sub)) ?? []), facts]);
    return facts;
  }

  addJitPolicy(sub: string, p: Omit<JitPolicyFacts, 'id'>): JitPolicyFacts {
    const facts = { id: jitId(sub, p.resourceGroup, p.location, p.name), ...clone(p) };
    this.jit.set(lower(sub), [...(this.jit.get(lower(sub)) ?? []), facts]);
    return facts;
  }

  addVnet(sub: string, v: Omit<VnetFacts, 'id'>): VnetFacts {
    const facts = {
      id: `/subscriptions/${sub}/resourceGroups/${v.resourceGroup}/providers/Microsoft.Network/virtualNetworks/${v.name}`,
      ...v,
    };
    this.vnets.set(lower(sub), [...(this.vnets.get(lower(sub)) ?? []), facts]);
    return facts;
  }

  addWatcher(sub: string, location: string): NetworkWatcherFacts {
    const facts = {
      id: `/subscriptions/${sub}/resourceGroups/NetworkWatcherRG/providers/Microsoft.Network/networkWatchers/NetworkWatcher_${location}`,
      name: `NetworkWatcher_${location}`,
      resourceGroup: 'NetworkWatcherRG',
      location,
    };
    this.watchers.set(lower(sub), [...(this.watchers.get(lower(sub)) ?? []), facts]);
    return facts;
  }

  // ------------------------------------------------------------------ the port

  private async enter(op: PostureOp, args: string[]): Promise<CallFailure | undefined> {
    this.calls.push({ op, args });
    await Promise.resolve();
    if (this.throwOn === op) {
      this.throwOn = undefined;
      throw new Error(`fake: ${op} threw`);
    }
    return this.faults.take(op, args);
  }

  private async answer<T>(op: PostureOp, args: string[], value: () => T): Promise<ArmResult<T>> {
    const failure = await this.enter(op, args);
    return failure ? { ok: false, failure } : { ok: true, value: clone(value()) };
  }

  listPricings(sub: string) {
    return this.answer('listPricings', [sub], () => this.pricings.get(lower(sub)) ?? []);
  }

  updatePricing(sub: string, name: string, desired: { tier: string; subPlan?: string }) {
    return this.answer('updatePricing', [sub, name], () => {
      const plans = this.pricings.get(lower(sub)) ?? [];
      const next: PricingState = {
        name,
        tier: desired.tier,
        ...(desired.subPlan ? { subPlan: desired.subPlan } : {}),
      };
      if (!this.sticky) return plans.find((p) => lower(p.name) === lower(name)) ?? { name, tier: 'Free' };
      this.pricings.set(
        lower(sub),
        plans.map((p) => (lower(p.name) === lower(name) ? next : p)),
      );
      return next;
    });
  }

  listVirtualMachines(sub: string) {
    return this.answer('listVirtualMachines', [sub], () => this.vms.get(lower(sub)) ?? []);
  }

  listJitPolicies(sub: string) {
    return this.answer('listJitPolicies', [sub], () => this.jit.get(lower(sub)) ?? []);
  }

  putJitPolicy(
    sub: string,
    rg: string,
    location: string,
    name: string,
    virtualMachines: JitVirtualMachine[],
  ) {
    return this.answer('putJitPolicy', [sub, rg, location, name], () => {
      const id = jitId(sub, rg, location, name);
      const facts: JitPolicyFacts = {
        id,
        name,
        resourceGroup: rg,
        location,
        virtualMachines: clone(virtualMachines),
      };
      const policies = this.jit.get(lower(sub)) ?? [];
      if (!this.sticky)
        return policies.find((p) => lower(p.id) === lower(id)) ?? { ...facts, virtualMachines: [] };
      this.jit.set(lower(sub), [...policies.filter((p) => lower(p.id) !== lower(id)), facts]);
      return facts;
    });
  }

  listDiagnosticSettings(resourceId: string) {
    return this.answer(
      'listDiagnosticSettings',
      [resourceId],
      () => this.settings.get(lower(resourceId)) ?? [],
    );
  }

  putDiagnosticSetting(resourceId: string, setting: DiagnosticSettingFacts) {
    return this.answer('putDiagnosticSetting', [resourceId, setting.name], () => {
      const settings = this.settings.get(lower(resourceId)) ?? [];
      if (!this.sticky)
        return (
          settings.find((s) => lower(s.name) === lower(setting.name)) ?? { name: setting.name, logs: [] }
        );
      const others = settings.filter((s) => lower(s.name) !== lower(setting.name));
      this.settings.set(lower(resourceId), [...others, clone(setting)]);
      return setting;
    });
  }

  getPolicyAssignment(scope: string, name: string) {
    return this.answer('getPolicyAssignment', [scope, name], () =>
      this.assignments.get(lower(`${scope}/${name}`)),
    );
  }

  putPolicyAssignment(scope: string, name: string, spec: PolicyAssignmentSpec) {
    return this.answer('putPolicyAssignment', [scope, name], () => {
      const facts: PolicyAssignmentFacts = {
        id: `${scope}/providers/Microsoft.Authorization/policyAssignments/${name}`,
        name,
        scope,
        policyDefinitionId: spec.policyDefinitionId,
        effect: spec.effect,
        enforcementMode: 'Default',
      };
      // Not stuck, with nothing there before: an answer that names no definition.
      if (!this.sticky)
        return this.assignments.get(lower(`${scope}/${name}`)) ?? { ...facts, policyDefinitionId: '' };
      this.assignments.set(lower(`${scope}/${name}`), facts);
      return facts;
    });
  }

  listVirtualNetworks(sub: string) {
    return this.answer('listVirtualNetworks', [sub], () => this.vnets.get(lower(sub)) ?? []);
  }

  listNetworkWatchers(sub: string) {
    return this.answer('listNetworkWatchers', [sub], () => this.watchers.get(lower(sub)) ?? []);
  }

  listFlowLogs(sub: string, watcher: NetworkWatcherFacts) {
    return this.answer('listFlowLogs', [sub, watcher.id], () => this.flowLogs.get(lower(watcher.id)) ?? []);
  }

  putFlowLog(sub: string, watcher: NetworkWatcherFacts, name: string, spec: FlowLogSpec) {
    return this.answer('putFlowLog', [sub, watcher.id, name], () => {
      const facts: FlowLogFacts = {
        id: `${watcher.id}/flowLogs/${name}`,
        name,
        targetResourceId: spec.targetResourceId,
        storageId: spec.storageId,
        enabled: true,
        retentionDays: spec.retentionDays,
        retentionEnabled: spec.retentionDays > 0,
      };
      const logs = this.flowLogs.get(lower(watcher.id)) ?? [];
      if (!this.sticky)
        return logs.find((f) => lower(f.name) === lower(name)) ?? { ...facts, enabled: false };
      this.flowLogs.set(lower(watcher.id), [...logs.filter((f) => lower(f.name) !== lower(name)), facts]);
      return facts;
    });
  }

  listAutoProvisioning(sub: string) {
    return this.answer('listAutoProvisioning', [sub], (): AutoProvisioningFacts[] => [
      { name: 'default', autoProvision: this.autoProvisioning.get(lower(sub)) ?? 'Off' },
    ]);
  }

  listSecurityAlerts(sub: string) {
    return this.answer('listSecurityAlerts', [sub], () => this.alerts.get(lower(sub)) ?? []);
  }
}

function jitId(sub: string, rg: string, location: string, name: string): string {
  return `/subscriptions/${sub}/resourceGroups/${rg}/providers/Microsoft.Security/locations/${location}/jitNetworkAccessPolicies/${name}`;
}
