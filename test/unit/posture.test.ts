/**
 * The posture reconciliation with fakes for its ports (test/fakes/posture.ts, vaults.ts, ledger.ts,
 * sinks.ts): the desired-state document (every problem at once, overrides), the pure comparisons
 * (JIT merge, port rules, diagnostic sinks), and the run (report writes nothing, enforce applies and
 * checks each write against its answer with no read-back, blocked and failed entries, one drift
 * report, alerts forwarded once, failures isolated).
 */
import { createLogger } from '../../lib/logging';
import {
  DELETION_PROTECTION_POLICY_ID,
  parseDesiredState,
  settingsFor,
  validateDesiredState,
  type DesiredState,
} from '../../lib/posture/desired';
import type { JitPortRule } from '../../lib/posture/ports';
import {
  ALERT_PARTITION,
  alertKey,
  isKeyVaultAlert,
  mergePorts,
  mergeVirtualMachines,
  planDiagnostics,
  portRuleEquals,
  reconcilePosture,
  vmMatchesSelector,
  type ForwardedAlert,
  type ReconcilerDeps,
} from '../../lib/posture/reconcile';
import { FakeClock, MemoryLedger, RecordingSink, failures } from '../fakes';
import { FakePostureArm } from '../fakes/posture';
import { FakeVaultManagement } from '../fakes/vaults';

const SUB_A = '11111111-1111-4111-8111-111111111111';
const SUB_B = '22222222-2222-4222-8222-222222222222';
const WS =
  '/subscriptions/11111111-1111-4111-8111-111111111111/resourceGroups/rg-mon/providers/Microsoft.OperationalInsights/workspaces/law';
const HUB =
  '/subscriptions/11111111-1111-4111-8111-111111111111/resourceGroups/rg-eh/providers/Microsoft.EventHub/namespaces/ehns/authorizationRules/send';
const STORAGE =
  '/subscriptions/11111111-1111-4111-8111-111111111111/resourceGroups/rg-logs/providers/Microsoft.Storage/storageAccounts/stflow';
const silent = createLogger('silent', { trace() {}, debug() {}, info() {}, warn() {}, error() {} });

function doc(
  mode: 'report' | 'enforce',
  defaults: Record<string, unknown>,
  subscriptions: Record<string, unknown> = {},
): DesiredState {
  const r = validateDesiredState({ mode, defaults, subscriptions }, [SUB_A, SUB_B]);
  if (!r.ok) throw new Error(r.problems.join('; '));
  return r.desired;
}

const JIT = {
  selector: { tag: { name: 'jit', value: 'on' } },
  ports: [
    {
      number: 22,
      protocol: 'TCP',
      allowedSourceAddressPrefixes: ['10.0.0.0/8'],
      maxRequestAccessDuration: 'PT3H',
    },
  ],
};

let arm: FakePostureArm;
let vaults: FakeVaultManagement;
let ledger: MemoryLedger<ForwardedAlert>;
let sink: RecordingSink;
let clock: FakeClock;

function deps(): ReconcilerDeps {
  return {
    arm,
    vaults,
    ledger,
    sinks: [sink],
    clock,
    log: silent,
    concurrency: 3,
    excludedVaults: ['kv-excluded'],
  };
}

beforeEach(() => {
  clock = new FakeClock();
  arm = new FakePostureArm();
  vaults = new FakeVaultManagement({ clock });
  ledger = new MemoryLedger<ForwardedAlert>({ clock });
  sink = new RecordingSink('capture');
});

describe('the desired-state document', () => {
  test('defaults apply: mode report, empty defaults; a full document validates', () => {
    const r = validateDesiredState({}, [SUB_A]);
    expect(r).toEqual({ ok: true, desired: { mode: 'report', defaults: {}, subscriptions: {} } });
    const full = validateDesiredState(
      {
        mode: 'enforce',
        defaults: {
          defenderPlans: {
            KeyVaults: { tier: 'Standard', subPlan: 'PerKeyVault' },
            VirtualMachines: { tier: 'Standard', subPlan: 'P2' },
          },
          jit: JIT,
          diagnostics: {
            workspaceResourceId: WS,
            eventHubs: { westeurope: { authorizationRuleId: HUB, name: 'kvguard-audit' } },
          },
          purgeProtection: true,
          policy: { effect: 'Deny' },
          flowLogs: { storageAccountPerRegion: { westeurope: STORAGE }, retentionDays: 30 },
          autoProvisioning: 'Off',
          defenderAlerts: true,
        },
      },
      [SUB_A],
    );
    expect(full.ok).toBe(true);
  });

  test('every problem is listed at once, with its path', () => {
    const r = validateDesiredState(
      {
        mode: 'fix',
        defaults: {
          defenderPlans: { VirtualMachines: { tier: 'Free', subPlan: 'P2' } },
          jit: {
            selector: { everything: true },
            ports: [{ number: 22, allowedSourceAddressPrefixes: [], maxRequestAccessDuration: 'PT2M' }],
          },
          diagnostics: { workspaceResourceId: 'law' },
          policy: { effect: 'Append' },
          flowLogs: { storageAccountPerRegion: { 'West Europe': STORAGE } },
          autoProvisioning: 'On',
          extra: 1,
        },
      },
      [SUB_A],
    );
    expect(r.ok).toBe(false);
    if (r.ok) return;
    const text = r.problems.join('\n');
    for (const path of [
      'mode:',
      'defaults.defenderPlans.VirtualMachines.subPlan: the Free tier has no sub-plan',
      'defaults.jit.selector',
      'defaults.jit.ports.0.allowedSourceAddressPrefixes',
      'defaults.jit.ports.0.maxRequestAccessDuration: an ISO-8601 duration between PT5M and P1D',
      'defaults.diagnostics.workspaceResourceId: must be the resource id of a Log Analytics workspace',
      'defaults.policy.effect',
      'defaults.flowLogs.storageAccountPerRegion',
      'defaults.autoProvisioning',
      'defaults:',
    ])
      expect(text).toContain(path);
    expect(r.problems.length).toBeGreaterThanOrEqual(10);
  });

  test('an override for a subscription out of scope is an error; overrides merge plan by plan and null turns an item off', () => {
    expect(validateDesiredState({ subscriptions: { [SUB_B]: {} } }, [SUB_A])).toEqual({
      ok: false,
      problems: [
        `subscriptions.${SUB_B}: not one of the subscriptions in scope (KVGUARD_SUBSCRIPTIONS, or those kvguard's identity can see)`,
      ],
    });
    const d = doc(
      'report',
      {
        defenderPlans: { KeyVaults: { tier: 'Standard' }, VirtualMachines: { tier: 'Free' } },
        jit: JIT,
        purgeProtection: true,
      },
      { [SUB_B]: { defenderPlans: { VirtualMachines: { tier: 'Standard', subPlan: 'P2' } }, jit: null } },
    );
    expect(settingsFor(d, SUB_A).jit).toBeDefined();
    const b = settingsFor(d, SUB_B.toUpperCase());
    expect(b.jit).toBeUndefined();
    expect(b.purgeProtection).toBe(true);
    expect(b.defenderPlans).toEqual({
      KeyVaults: { tier: 'Standard' },
      VirtualMachines: { tier: 'Standard', subPlan: 'P2' },
    });
  });

  test('the document comes from the setting or a file; neither, unreadable or not JSON is a problem', () => {
    const read = (p: string) => {
      if (p === '/ok.json') return '{"mode":"enforce"}';
      throw new Error('ENOENT');
    };
    expect(parseDesiredState({ document: '{}' }, [SUB_A], read).ok).toBe(true);
    expect(parseDesiredState({ file: '/ok.json' }, [SUB_A], read)).toMatchObject({
      ok: true,
      desired: { mode: 'enforce' },
    });
    expect(parseDesiredState({ file: '/missing.json' }, [SUB_A], read)).toMatchObject({
      ok: false,
      problems: [expect.stringContaining('cannot be read: ENOENT')],
    });
    expect(parseDesiredState({ document: '{' }, [SUB_A], read)).toMatchObject({
      ok: false,
      problems: [expect.stringContaining('not JSON')],
    });
    expect(parseDesiredState({}, [SUB_A], read)).toMatchObject({
      ok: false,
      problems: [expect.stringContaining('set KVGUARD_POSTURE')],
    });
  });
});

describe('pure comparisons', () => {
  const rule = (over: Partial<JitPortRule> = {}): JitPortRule => ({
    number: 22,
    protocol: 'TCP',
    allowedSourceAddressPrefixes: ['10.0.0.0/8'],
    maxRequestAccessDuration: 'PT3H',
    ...over,
  });

  test('port rules compare prefixes as sets and durations by length', () => {
    expect(portRuleEquals(rule(), rule({ maxRequestAccessDuration: 'PT180M' }))).toBe(true);
    expect(
      portRuleEquals(
        rule({ allowedSourceAddressPrefixes: undefined, allowedSourceAddressPrefix: '10.0.0.0/8' }),
        rule(),
      ),
    ).toBe(true);
    expect(
      portRuleEquals(
        rule({ allowedSourceAddressPrefixes: ['a', 'b'] }),
        rule({ allowedSourceAddressPrefixes: ['b', 'a'] }),
      ),
    ).toBe(true);
    expect(portRuleEquals(rule({ protocol: '*' }), rule())).toBe(false);
    expect(portRuleEquals(rule({ maxRequestAccessDuration: 'PT1H' }), rule())).toBe(false);
  });

  test('merging keeps other ports of the VM and every other VM, and appends a VM the policy lacked', () => {
    const other = {
      id: '/subscriptions/s/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/other',
      ports: [rule({ number: 3389 })],
    };
    const mine = {
      id: '/subscriptions/s/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/MINE',
      ports: [rule({ protocol: '*' }), rule({ number: 5985 })],
    };
    expect(mergePorts(mine.ports, [rule()])).toEqual([rule(), rule({ number: 5985 })]);
    const fresh = {
      id: '/subscriptions/s/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/new',
      ports: [rule()],
    };
    const merged = mergeVirtualMachines(
      [other, mine],
      new Map([
        [mine.id.toLowerCase().replace('mine', 'mine'), { id: mine.id, ports: [rule()] }],
        [fresh.id.toLowerCase(), fresh],
      ]),
    );
    expect(merged.map((v) => v.id)).toEqual([other.id, mine.id, fresh.id]);
    expect(merged[0]).toEqual(other);
    expect(merged[1]!.ports).toEqual([rule(), rule({ number: 5985 })]);
  });

  test('selectors: all, tag (name case-insensitive, value exact), resource groups', () => {
    const vm = { id: 'x', name: 'vm', resourceGroup: 'RG-App', location: 'westeurope', tags: { JIT: 'on' } };
    expect(vmMatchesSelector(vm, { all: true })).toBe(true);
    expect(vmMatchesSelector(vm, { tag: { name: 'jit' } })).toBe(true);
    expect(vmMatchesSelector(vm, { tag: { name: 'jit', value: 'On' } })).toBe(false);
    expect(vmMatchesSelector(vm, { resourceGroups: ['rg-app'] })).toBe(true);
    expect(vmMatchesSelector(vm, { resourceGroups: ['rg-other'] })).toBe(false);
  });

  test('diagnostics: a sink another setting feeds counts; kvguard-audit carries only the rest; AzureDiagnostics mode blocks', () => {
    const hub = { authorizationRuleId: HUB, name: 'kvguard-audit' };
    const audit = [{ category: 'AuditEvent', enabled: true }];
    expect(planDiagnostics([], WS, hub)).toMatchObject({
      compliant: false,
      setting: {
        name: 'kvguard-audit',
        workspaceId: WS,
        logAnalyticsDestinationType: 'Dedicated',
        eventHubAuthorizationRuleId: HUB,
        eventHubName: 'kvguard-audit',
      },
    });
    const wsOnly = planDiagnostics(
      [{ name: 'theirs', workspaceId: WS, logAnalyticsDestinationType: 'Dedicated', logs: audit }],
      WS,
      hub,
    );
    expect(wsOnly.current).toEqual({ workspace: 'theirs' });
    expect(wsOnly.setting).toEqual({
      name: 'kvguard-audit',
      eventHubAuthorizationRuleId: HUB,
      eventHubName: 'kvguard-audit',
      logs: audit,
    });
    const both = planDiagnostics(
      [
        {
          name: 'all',
          workspaceId: WS,
          logAnalyticsDestinationType: 'Dedicated',
          eventHubAuthorizationRuleId: HUB,
          eventHubName: 'kvguard-audit',
          logs: [{ categoryGroup: 'allLogs', enabled: true }],
        },
      ],
      WS,
      hub,
    );
    expect(both.compliant).toBe(true);
    expect(both.setting).toBeUndefined();
    const legacy = planDiagnostics([{ name: 'legacy', workspaceId: WS, logs: audit }], WS, undefined);
    expect(legacy.compliant).toBe(false);
    expect(legacy.blocked).toContain("'legacy' sends AuditEvent to the workspace in AzureDiagnostics mode");
    // A disabled category does not count.
    expect(
      planDiagnostics(
        [
          {
            name: 'off',
            workspaceId: WS,
            logAnalyticsDestinationType: 'Dedicated',
            logs: [{ category: 'AuditEvent', enabled: false }],
          },
        ],
        WS,
        undefined,
      ).setting?.workspaceId,
    ).toBe(WS);
  });

  test('Key Vault alerts are recognised by the resources they name or their KV_ type', () => {
    const base = { id: 'a', name: 'a', displayName: 'x', severity: 'High', status: 'Active' };
    expect(
      isKeyVaultAlert({
        ...base,
        alertType: 'X',
        resourceIds: ['/subscriptions/s/resourceGroups/r/providers/Microsoft.KeyVault/vaults/kv'],
      }),
    ).toBe(true);
    expect(isKeyVaultAlert({ ...base, alertType: 'KV_ListGetAnomaly', resourceIds: [] })).toBe(true);
    expect(
      isKeyVaultAlert({
        ...base,
        alertType: 'VM_EICAR',
        resourceIds: ['/subscriptions/s/resourceGroups/r/providers/Microsoft.Compute/virtualMachines/vm'],
      }),
    ).toBe(false);
  });
});

describe('the run', () => {
  function estate(sub = SUB_A) {
    arm.addPlans(sub, [
      { name: 'VirtualMachines', tier: 'Free' },
      { name: 'KeyVaults', tier: 'Standard', subPlan: 'PerTransaction' },
    ]);
    const vm1 = arm.addVm(sub, {
      name: 'vm1',
      resourceGroup: 'rg',
      location: 'westeurope',
      tags: { jit: 'on' },
    });
    const other = arm.addVm(sub, { name: 'other', resourceGroup: 'rg', location: 'westeurope' });
    arm.addJitPolicy(sub, {
      name: 'default',
      resourceGroup: 'rg',
      location: 'westeurope',
      virtualMachines: [
        {
          id: other.id,
          ports: [
            {
              number: 3389,
              protocol: '*',
              allowedSourceAddressPrefix: '*',
              maxRequestAccessDuration: 'PT1H',
            },
          ],
        },
      ],
    });
    const kv = vaults.addVault({ name: `kv-${sub.slice(0, 4)}`, subscriptionId: sub });
    vaults.addVault({ name: 'kv-excluded', subscriptionId: sub });
    const vnet = arm.addVnet(sub, { name: 'vnet', resourceGroup: 'rg-net', location: 'westeurope' });
    const vnetNeu = arm.addVnet(sub, { name: 'vnet-neu', resourceGroup: 'rg-net', location: 'northeurope' });
    arm.addWatcher(sub, 'westeurope');
    return { vm1, other, kv, vnet, vnetNeu };
  }

  const full = (mode: 'report' | 'enforce') =>
    doc(mode, {
      defenderPlans: {
        VirtualMachines: { tier: 'Standard', subPlan: 'P2' },
        KeyVaults: { tier: 'Standard', subPlan: 'PerKeyVault' },
      },
      jit: JIT,
      diagnostics: {
        workspaceResourceId: WS,
        eventHubs: { westeurope: { authorizationRuleId: HUB, name: 'kvguard-audit' } },
      },
      purgeProtection: true,
      policy: { effect: 'Audit' },
      flowLogs: { storageAccountPerRegion: { westeurope: STORAGE }, retentionDays: 7 },
      autoProvisioning: 'Off',
      defenderAlerts: true,
    });

  test('report writes nothing and plans every item; the excluded vault is left alone; one drift report', async () => {
    const e = estate();
    const report = await reconcilePosture(deps(), full('report'), [SUB_A], 'run1');
    expect(arm.writes()).toEqual([]);
    expect(vaults.writes).toEqual([]);
    const actions = Object.fromEntries(
      report.entries.map((x) => [`${x.item} ${x.resource.split('/').pop()}`, x.action]),
    );
    expect(actions).toEqual({
      'defenderPlan VirtualMachines': 'change',
      'defenderPlan KeyVaults': 'change',
      'jit vm1': 'change',
      [`diagnostics ${e.kv.name}`]: 'change',
      [`purgeProtection ${e.kv.name}`]: 'change',
      'policy kvguard-kv-deletion': 'change',
      'flowLogs vnet': 'change',
      'flowLogs vnet-neu': 'blocked',
      'autoProvisioning default': 'none',
    });
    expect(report.entries.some((x) => x.resource.includes('kv-excluded'))).toBe(false);
    expect(report.counts).toEqual({ none: 1, change: 7, blocked: 1, failed: 0 });
    expect(sink.received.map((m) => m.kind)).toEqual(['drift']);
    expect(sink.received[0]!.id).toBe('posture_run1/drift');
    expect(sink.received[0]!.severity).toBe('warning');
  });

  test('enforce applies in order (plans before JIT), keeps the other VM, and a second run writes nothing', async () => {
    const e = estate();
    const report = await reconcilePosture(deps(), full('enforce'), [SUB_A], 'run2');
    expect(report.counts.failed).toBe(0);
    expect(report.entries.filter((x) => x.action === 'change').every((x) => x.applied)).toBe(true);
    const order = arm.writes().map((w) => w.op);
    expect(order.indexOf('updatePricing')).toBeLessThan(order.indexOf('putJitPolicy'));
    const policy = arm.jit.get(SUB_A)![0]!;
    expect(policy.virtualMachines.map((v) => v.id)).toEqual([e.other.id, e.vm1.id]);
    expect(policy.virtualMachines[0]!.ports[0]!.number).toBe(3389);
    expect(vaults.vault(e.kv.name)!.enablePurgeProtection).toBe(true);
    expect(arm.assignments.get(`/subscriptions/${SUB_A}/kvguard-kv-deletion`)?.policyDefinitionId).toBe(
      DELETION_PROTECTION_POLICY_ID,
    );
    const writes = arm.calls.length;
    sink.received.length = 0;
    const again = await reconcilePosture(deps(), full('enforce'), [SUB_A], 'run3');
    expect(arm.writes().length).toBe(order.length);
    expect(arm.calls.length).toBeGreaterThan(writes);
    expect(again.counts.change).toBe(0);
    expect(again.counts.blocked).toBe(1); // the VNet whose region has no storage account, reported every run
    expect(sink.received.map((m) => m.kind)).toEqual(['drift']);
  });

  test('JIT without P2 is blocked and never written, while the plan change it does not depend on is applied', async () => {
    const e = estate();
    const d = doc('enforce', {
      defenderPlans: { KeyVaults: { tier: 'Standard', subPlan: 'PerKeyVault' } },
      jit: JIT,
    });
    const report = await reconcilePosture(deps(), d, [SUB_A], 'run4');
    const jit = report.entries.find((x) => x.item === 'jit')!;
    expect(jit).toMatchObject({ resource: e.vm1.id, action: 'blocked' });
    expect(jit.why).toContain('Plan 2 (VirtualMachines is Free)');
    expect(arm.writes().map((w) => w.op)).toEqual(['updatePricing']);
  });

  test('a failed write and a write that does not stick are failures with the reason; the rest goes on', async () => {
    estate();
    arm.fail('updatePricing', failures.forbidden('Microsoft.Security/pricings/write'), 5);
    arm.fail('putFlowLog', failures.transient(503));
    const report = await reconcilePosture(deps(), full('enforce'), [SUB_A], 'run5');
    const plan = report.entries.find((x) => x.item === 'defenderPlan')!;
    expect(plan.action).toBe('failed');
    expect(plan.why).toContain(
      'not applied: forbidden (403): the identity lacks Microsoft.Security/pricings/write',
    );
    expect(report.entries.find((x) => x.item === 'flowLogs' && x.resource.endsWith('/vnet'))?.why).toContain(
      'HTTP 503',
    );
    // JIT is then blocked (P2 did not land); purge protection and the policy still converge.
    expect(report.entries.find((x) => x.item === 'jit')?.action).toBe('blocked');
    expect(report.entries.find((x) => x.item === 'purgeProtection')?.applied).toBe(true);
    expect(report.entries.find((x) => x.item === 'policy')?.applied).toBe(true);
    expect(sink.received[0]!.severity).toBe('critical');

    arm.sticky = false;
    const d = doc('enforce', { policy: { effect: 'Deny' } });
    const notStuck = await reconcilePosture(deps(), d, [SUB_A], 'run6');
    expect(notStuck.entries[0]).toMatchObject({ item: 'policy', action: 'failed', applied: false });
    expect(notStuck.entries[0]!.why).toContain(
      "not applied: the write's answer shows a different assignment (effect Audit, mode Default)",
    );
  });

  test('enforce makes one list per resource type and one write per change, and reads nothing back', async () => {
    const e = estate();
    const d = doc('enforce', {
      defenderPlans: {
        VirtualMachines: { tier: 'Standard', subPlan: 'P2' },
        KeyVaults: { tier: 'Standard', subPlan: 'PerKeyVault' },
      },
      jit: JIT,
      purgeProtection: true,
      policy: { effect: 'Audit' },
    });
    const report = await reconcilePosture(deps(), d, [SUB_A], 'calls');
    expect(report.counts).toEqual({ none: 0, change: 5, blocked: 0, failed: 0 });
    expect(report.entries.every((x) => x.applied)).toBe(true);
    const count = (ops: string[]) =>
      ops.reduce<Record<string, number>>((n, op) => ({ ...n, [op]: (n[op] ?? 0) + 1 }), {});
    // Reads: the plans, the VMs, the JIT policies, the vaults, the (single) policy assignment.
    // Writes: two plans, one JIT policy (vm1 joins the listed `default`), one vault, one assignment.
    expect(count(arm.calls.map((c) => c.op))).toEqual({
      listPricings: 1,
      updatePricing: 2,
      listVirtualMachines: 1,
      listJitPolicies: 1,
      putJitPolicy: 1,
      getPolicyAssignment: 1,
      putPolicyAssignment: 1,
    });
    expect(count(vaults.calls.map((c) => c.op))).toEqual({ listVaults: 1, enablePurgeProtection: 1 });
    // No read of an item after its write: each item's reads all come before its first write.
    const family = (op: string) =>
      /Pricing/.test(op)
        ? 'plans'
        : /Jit|VirtualMachines/.test(op)
          ? 'jit'
          : /Policy/.test(op)
            ? 'policy'
            : op;
    arm.calls.forEach((c, i) => {
      if (!/^(list|get)/.test(c.op)) return;
      const earlierWrite = arm.calls
        .slice(0, i)
        .find((w) => arm.writes().includes(w) && family(w.op) === family(c.op));
      expect(earlierWrite).toBeUndefined();
    });
    expect(vaults.calls.map((c) => c.op)).toEqual(['listVaults', 'enablePurgeProtection']);
    // The JIT write merged into the policy as listed: the other VM's rule is kept.
    expect(arm.jit.get(SUB_A)![0]!.virtualMachines.map((v) => v.id)).toEqual([e.other.id, e.vm1.id]);
  });

  test('a write whose answer shows the old state is a failure with the reason, for every item', async () => {
    const e = estate();
    // Servers P2 is already on, so the JIT write is attempted too.
    arm.addPlans(SUB_A, [
      { name: 'VirtualMachines', tier: 'Standard', subPlan: 'P2' },
      { name: 'KeyVaults', tier: 'Standard', subPlan: 'PerTransaction' },
    ]);
    arm.sticky = false;
    vaults.sticky = false;
    const report = await reconcilePosture(deps(), full('enforce'), [SUB_A], 'notStuck');
    const why = (item: string, resource = '') =>
      report.entries.find((x) => x.item === item && x.resource.endsWith(resource) && x.action === 'failed')
        ?.why;
    expect(why('defenderPlan', '/KeyVaults')).toContain(
      "not applied: the write's answer shows Standard/PerTransaction",
    );
    expect(why('jit', e.vm1.id)).toContain("not applied: the write's answer does not list the VM");
    expect(why('diagnostics', e.kv.id)).toContain(
      "not applied: the write's answer shows AuditEvent still missing a sink",
    );
    expect(why('purgeProtection', e.kv.id)).toContain(
      "not applied: the write's answer shows purge protection off",
    );
    expect(why('policy')).toContain("not applied: the write's answer shows a different assignment");
    expect(why('flowLogs', '/vnet')).toContain("not applied: the write's answer shows a different flow log");
    expect(report.counts.failed).toBe(6);
    expect(report.entries.filter((x) => x.applied)).toEqual([]);
    expect(arm.writes().map((w) => w.op)).toEqual([
      'updatePricing',
      'putJitPolicy',
      'putDiagnosticSetting',
      'putPolicyAssignment',
      'putFlowLog',
    ]);
    expect(vaults.writes.map((w) => w.op)).toEqual(['enablePurgeProtection']);
    expect(vaults.vault(e.kv.name)!.enablePurgeProtection).toBe(false);
  });

  test('a plan write whose answer names no tier is not a success; JIT then waits for P2', async () => {
    estate();
    arm.updatePricing = async (sub, name) => {
      arm.calls.push({ op: 'updatePricing', args: [sub, name] });
      await Promise.resolve();
      return { ok: true, value: { name, tier: '' } };
    };
    const d = doc('enforce', {
      defenderPlans: { VirtualMachines: { tier: 'Standard', subPlan: 'P2' } },
      jit: JIT,
    });
    const report = await reconcilePosture(deps(), d, [SUB_A], 'noTier');
    expect(report.entries.find((x) => x.item === 'defenderPlan')).toMatchObject({
      action: 'failed',
      applied: false,
      why: expect.stringContaining("not applied: the write's answer shows no tier"),
    });
    const jit = report.entries.find((x) => x.item === 'jit')!;
    expect(jit.action).toBe('blocked');
    expect(jit.why).toContain('VirtualMachines is no tier');
    expect(arm.writes().map((w) => w.op)).toEqual(['updatePricing']);
  });

  test('one subscription failing (a listing refused, even a throw) never stops the other', async () => {
    estate(SUB_A);
    estate(SUB_B);
    arm.fail(
      'listPricings',
      failures.forbidden('Microsoft.Security/pricings/read'),
      2,
      (args) => args[0] === SUB_A,
    );
    arm.throwOn = 'listVirtualNetworks';
    const report = await reconcilePosture(deps(), full('enforce'), [SUB_A, SUB_B], 'run7');
    const a = report.entries.filter((x) => x.subscription === SUB_A);
    const b = report.entries.filter((x) => x.subscription === SUB_B);
    expect(a.find((x) => x.item === 'defenderPlan')?.why).toContain(
      'listing the Defender plans failed: forbidden (403)',
    );
    expect(a.find((x) => x.item === 'jit')?.why).toContain('could not be read');
    expect([...a, ...b].some((x) => x.why.includes('stopped: fake: listVirtualNetworks threw'))).toBe(true);
    expect(b.filter((x) => x.item === 'purgeProtection').every((x) => x.applied)).toBe(true);
  });

  test('a workspace sink fed in AzureDiagnostics mode blocks; kvguard-audit still takes the hub, once', async () => {
    const kv = vaults.addVault({ name: 'kv-legacy', subscriptionId: SUB_A });
    arm.settings.set(kv.id.toLowerCase(), [
      { name: 'legacy', workspaceId: WS, logs: [{ category: 'AuditEvent', enabled: true }] },
    ]);
    const d = doc('enforce', {
      diagnostics: {
        workspaceResourceId: WS,
        eventHubs: { westeurope: { authorizationRuleId: HUB, name: 'kvguard-audit' } },
      },
    });
    const first = await reconcilePosture(deps(), d, [SUB_A], 'diag1');
    expect(first.entries).toEqual([
      expect.objectContaining({
        item: 'diagnostics',
        action: 'blocked',
        applied: true,
        why: expect.stringContaining("switch 'legacy' to resource-specific"),
      }),
    ]);
    expect(arm.settings.get(kv.id.toLowerCase())!.find((x) => x.name === 'kvguard-audit')).toEqual({
      name: 'kvguard-audit',
      eventHubAuthorizationRuleId: HUB,
      eventHubName: 'kvguard-audit',
      logs: [{ category: 'AuditEvent', enabled: true }],
    });
    const writes = arm.writes().length;
    const second = await reconcilePosture(deps(), d, [SUB_A], 'diag2');
    expect(second.entries[0]).toMatchObject({ action: 'blocked' });
    expect(second.entries[0]!.applied).toBeUndefined();
    expect(arm.writes().length).toBe(writes);
  });

  test('a management-group policy scope is reconciled once for all subscriptions', async () => {
    const d = doc('enforce', {
      policy: { scope: '/providers/Microsoft.Management/managementGroups/mg1', effect: 'Audit' },
    });
    const report = await reconcilePosture(deps(), d, [SUB_A, SUB_B], 'run8');
    expect(report.entries.filter((x) => x.item === 'policy')).toHaveLength(1);
    expect(arm.writes()).toHaveLength(1);
  });

  test('auto-provisioning On is reported, never changed', async () => {
    arm.autoProvisioning.set(SUB_A, 'On');
    const report = await reconcilePosture(
      deps(),
      doc('enforce', { autoProvisioning: 'Off' }),
      [SUB_A],
      'run9',
    );
    expect(report.entries).toEqual([
      expect.objectContaining({ item: 'autoProvisioning', current: 'On', desired: 'Off', action: 'blocked' }),
    ]);
    expect(arm.writes()).toEqual([]);
  });

  test('Defender alerts on vaults are forwarded once each (ledger row); a failed delivery is retried next run', async () => {
    const kvAlert = {
      id: `/subscriptions/${SUB_A}/resourceGroups/rg/providers/Microsoft.Security/locations/westeurope/alerts/a1`,
      name: 'a1',
      alertType: 'KV_SuspiciousIPAccess',
      displayName: 'Suspicious IP',
      severity: 'Medium',
      status: 'Active',
      resourceIds: [`/subscriptions/${SUB_A}/resourceGroups/rg/providers/Microsoft.KeyVault/vaults/kv-pay`],
    };
    const vmAlert = {
      ...kvAlert,
      id: `${kvAlert.id}-vm`,
      name: 'a2',
      alertType: 'VM_EICAR',
      resourceIds: [],
    };
    arm.alerts.set(SUB_A, [kvAlert, vmAlert]);
    const d = doc('report', { defenderAlerts: true });
    sink.failNext(1, { retryable: true });
    const first = await reconcilePosture(deps(), d, [SUB_A], 'r1');
    expect(first.alertsForwarded).toBe(0);
    expect(first.entries[0]).toMatchObject({ item: 'defenderAlerts', action: 'failed' });
    const second = await reconcilePosture(deps(), d, [SUB_A], 'r2');
    expect(second.alertsForwarded).toBe(1);
    expect(second.drift).toBe(false);
    const third = await reconcilePosture(deps(), d, [SUB_A], 'r3');
    expect(third.alertsForwarded).toBe(0);
    const primary = sink.received.filter((m) => m.kind === 'primary');
    expect(primary).toHaveLength(1);
    expect(primary[0]).toMatchObject({
      id: `defender_${alertKey(kvAlert.id)}/primary`,
      severity: 'warning',
      title: 'Defender for Cloud: Suspicious IP on kv-pay',
    });
    expect((await ledger.get(ALERT_PARTITION, alertKey(kvAlert.id)))?.value.sentAt).toBeDefined();
  });
});
