/**
 * reconcilePosture end to end: the real SDK clients (@azure/arm-security 5.0.0, arm-compute,
 * arm-monitor, arm-policy, arm-network, arm-keyvault) against the emulated ARM, Azurite for the
 * ledger, three subscriptions with drift in every item. The emulator's request log is the proof of
 * what kvguard wrote: `report` writes nothing; `enforce` converges, checking each write against its
 * answer (nothing written is read back), and a second `enforce` writes nothing and finds no drift. JIT keeps other VMs' rules and is blocked without P2; a throttled
 * subscription (429 + Retry-After) still converges; a subscription the identity may only read is
 * reported and the others converge; Defender alerts on vaults are forwarded once.
 */
import { loadConfig } from '../../lib/config';
import type { AlertMessage, AlertSink } from '../../lib/ports';
import { runPostureReconciliation } from '../../lib/posture/run';
import type { PlanEntry, PostureReport } from '../../lib/posture/reconcile';
import { createRuntime, type Runtime } from '../../lib/runtime';
import {
  armResources,
  seedDiagnosticSetting,
  seedStorageAccount,
  seedVirtualMachine,
  seedVirtualNetwork,
  vmId,
} from '../emulator/arm-resources';
import { KVGUARD_ACTIONS, startKvguardEnv, type KvguardEnv } from '../emulator/kvguard-env';
import { seedJitPolicy, seedSecurityAlert } from '../emulator/security';
import type { RequestLogEntry } from '../emulator/types';
import { captureLogs } from '../support/logs';

/** What kvguard's identity needs for the posture, per subscription (README "Posture"). */
const POSTURE_ACTIONS = [
  ...KVGUARD_ACTIONS,
  'Microsoft.Security/pricings/read',
  'Microsoft.Security/pricings/write',
  'Microsoft.Security/locations/jitNetworkAccessPolicies/read',
  'Microsoft.Security/locations/jitNetworkAccessPolicies/write',
  'Microsoft.Compute/virtualMachines/read',
  'Microsoft.Compute/virtualMachines/write',
  'Microsoft.Insights/diagnosticSettings/read',
  'Microsoft.Insights/diagnosticSettings/write',
  'Microsoft.Authorization/policyAssignments/read',
  'Microsoft.Authorization/policyAssignments/write',
  'Microsoft.Network/virtualNetworks/read',
  'Microsoft.Network/networkWatchers/read',
  'Microsoft.Network/networkWatchers/flowLogs/read',
  'Microsoft.Network/networkWatchers/flowLogs/write',
  'Microsoft.Security/autoProvisioningSettings/read',
  'Microsoft.Security/alerts/read',
];

let env: KvguardEnv;
const { target, inv } = captureLogs('posture');
const JIT_TAG = 'kvguard-jit';
let counter = 0;

beforeAll(async () => {
  env = await startKvguardEnv();
});
afterAll(async () => {
  await env.stop();
});

function newSubscription(access: 'write' | 'read' = 'write'): string {
  counter++;
  const sub = `00000000-0000-4000-8000-${String(100 + counter).padStart(12, '0')}`;
  armResources(env.h.emulator.core).subscriptions.add(sub);
  env.h.emulator.core.roleAssignments.push({
    id: `ra-posture-${sub}`,
    principalId: env.identity.oid,
    scope: `/subscriptions/${sub}`,
    ...(access === 'write' ? { actions: POSTURE_ACTIONS } : { roleName: 'Reader' }),
  });
  return sub;
}

const HUB_RULE =
  '/subscriptions/00000000-0000-4000-8000-000000000001/resourceGroups/rg-kvguard/providers/Microsoft.EventHub/namespaces/ehns-kvguard-weu/authorizationRules/kvguard-send';
let storageWeu = '';

function desired(mode: 'report' | 'enforce', overrides: Record<string, unknown> = {}) {
  if (!storageWeu)
    storageWeu = seedStorageAccount(env.h.emulator.core, {
      name: 'stkvguardflowweu',
      location: 'westeurope',
    }).id;
  return {
    mode,
    defaults: {
      defenderPlans: {
        VirtualMachines: { tier: 'Standard', subPlan: 'P2' },
        KeyVaults: { tier: 'Standard', subPlan: 'PerKeyVault' },
      },
      jit: {
        selector: { tag: { name: JIT_TAG, value: 'on' } },
        ports: [
          {
            number: 22,
            protocol: 'TCP',
            allowedSourceAddressPrefixes: ['10.0.0.0/8'],
            maxRequestAccessDuration: 'PT3H',
          },
        ],
      },
      diagnostics: {
        workspaceResourceId: env.workspaceResourceId,
        eventHubs: { westeurope: { authorizationRuleId: HUB_RULE, name: 'kvguard-audit' } },
      },
      purgeProtection: true,
      policy: { effect: 'Audit' },
      flowLogs: { storageAccountPerRegion: { westeurope: storageWeu }, retentionDays: 30 },
      autoProvisioning: 'Off',
      defenderAlerts: true,
      ...overrides,
    },
  };
}

interface Scenario {
  sub: string;
  vmTagged: string;
  vmNew: string;
  vmOther: string;
  vaults: string[];
  vnet: string;
}

/** Drift in every item of one subscription. */
function seedDrift(sub: string, tag: string): Scenario {
  const core = env.h.emulator.core;
  const rg = 'rg-app';
  const vm1 = seedVirtualMachine(core, {
    subscriptionId: sub,
    resourceGroup: rg,
    name: `vm-${tag}-1`,
    tags: { [JIT_TAG]: 'on' },
  });
  const vm2 = seedVirtualMachine(core, {
    subscriptionId: sub,
    resourceGroup: rg,
    name: `vm-${tag}-2`,
    tags: { [JIT_TAG]: 'on' },
  });
  const other = seedVirtualMachine(core, { subscriptionId: sub, resourceGroup: rg, name: `vm-${tag}-other` });
  // The tagged VM is listed with an outdated port 22 rule and a 3389 rule of its own; another VM's rule is there too.
  seedJitPolicy(core, {
    subscriptionId: sub,
    resourceGroup: rg,
    virtualMachines: [
      {
        id: vmId(other),
        ports: [
          {
            number: 3389,
            protocol: 'TCP',
            allowedSourceAddressPrefix: '192.0.2.0/24',
            maxRequestAccessDuration: 'PT1H',
          },
        ],
      },
      {
        id: vmId(vm1),
        ports: [
          { number: 22, protocol: '*', allowedSourceAddressPrefix: '*', maxRequestAccessDuration: 'PT8H' },
          {
            number: 5985,
            protocol: 'TCP',
            allowedSourceAddressPrefix: '*',
            maxRequestAccessDuration: 'PT1H',
          },
        ],
      },
    ],
  });
  const vaults = [`kv-${tag}-weu`, `kv-${tag}-neu`];
  env.h.emulator.addVault({
    name: vaults[0]!,
    subscriptionId: sub,
    resourceGroup: 'rg-vaults',
    location: 'westeurope',
  });
  env.h.emulator.addVault({
    name: vaults[1]!,
    subscriptionId: sub,
    resourceGroup: 'rg-vaults',
    location: 'northeurope',
  });
  // The northeurope vault already sends AuditEvent to the workspace (Dedicated): compliant there, but its region has no hub.
  seedDiagnosticSetting(
    core,
    `/subscriptions/${sub}/resourceGroups/rg-vaults/providers/Microsoft.KeyVault/vaults/${vaults[1]}`,
    'to-workspace',
    {
      workspaceId: env.workspaceResourceId,
      logAnalyticsDestinationType: 'Dedicated',
      logs: [{ category: 'AuditEvent', enabled: true }],
    },
  );
  const vnet = seedVirtualNetwork(core, { subscriptionId: sub, name: `vnet-${tag}`, location: 'westeurope' });
  return { sub, vmTagged: vmId(vm1), vmNew: vmId(vm2), vmOther: vmId(other), vaults, vnet: vnet.id };
}

interface RunResult {
  report: PostureReport;
  armWrites: RequestLogEntry[];
  armRequests: RequestLogEntry[];
  alerts: AlertMessage[];
}

async function run(subs: string[], doc: unknown, extra: Record<string, string> = {}): Promise<RunResult> {
  const config = loadConfig({
    ...env.settings,
    KVGUARD_SUBSCRIPTIONS: subs.join(','),
    KVGUARD_POSTURE: JSON.stringify(doc),
    ...extra,
  });
  const rt: Runtime = createRuntime(config, { processLog: target });
  const alerts: AlertMessage[] = [];
  const capture: AlertSink = {
    name: 'capture',
    send: (a) => {
      alerts.push(a);
      return Promise.resolve({ ok: true });
    },
  };
  rt.sinks.push(capture);
  const since = env.h.emulator.requests.length;
  const result = await runPostureReconciliation(rt, inv());
  if (!result.ok) throw new Error(`invalid posture: ${result.problems.join('; ')}`);
  const armRequests = env.h.emulator.requests.slice(since).filter((r) => r.host === 'management.azure.com');
  return {
    report: result.report,
    armRequests,
    armWrites: armRequests.filter((r) => r.method !== 'GET'),
    alerts,
  };
}

const byItem = (entries: PlanEntry[], item: PlanEntry['item']) => entries.filter((e) => e.item === item);
const entryFor = (entries: PlanEntry[], item: PlanEntry['item'], resource: string) =>
  entries.find((e) => e.item === item && e.resource.toLowerCase() === resource.toLowerCase());

describe('drift in three subscriptions', () => {
  const scenarios: Scenario[] = [];
  let subs: string[];

  beforeAll(() => {
    subs = [newSubscription(), newSubscription(), newSubscription()];
    subs.forEach((s, i) => scenarios.push(seedDrift(s, `d${i}`)));
    seedSecurityAlert(env.h.emulator.core, {
      subscriptionId: subs[0],
      name: '2518770965529163669_F144EE95-A3E5-42DA-A279-967D115809AA',
      alertType: 'KV_SuspiciousIPAccess',
      alertDisplayName: 'Access from a suspicious IP address to a key vault',
      severity: 'High',
      resourceGroup: 'rg-vaults',
      resourceIds: [
        `/subscriptions/${subs[0]}/resourceGroups/rg-vaults/providers/Microsoft.KeyVault/vaults/${scenarios[0]!.vaults[0]}`,
      ],
    });
    seedSecurityAlert(env.h.emulator.core, {
      subscriptionId: subs[0],
      name: '2518770965529163669_0000EE95-A3E5-42DA-A279-967D115809AA',
      alertType: 'VM_EICAR',
      resourceIds: [scenarios[0]!.vmOther],
    });
  });

  test('report lists every difference, writes nothing (request log), and sends one drift report', async () => {
    const { report, armWrites, alerts } = await run(subs, desired('report'));
    expect(armWrites).toEqual([]);
    expect(report.mode).toBe('report');
    for (const s of scenarios) {
      const mine = report.entries.filter((e) => e.subscription === s.sub);
      expect(byItem(mine, 'defenderPlan').filter((e) => e.action === 'change')).toHaveLength(2);
      expect(entryFor(mine, 'jit', s.vmTagged)?.action).toBe('change');
      expect(entryFor(mine, 'jit', s.vmNew)?.action).toBe('change');
      expect(entryFor(mine, 'jit', s.vmNew)?.why).toContain("'default' policy");
      expect(entryFor(mine, 'jit', s.vmOther)).toBeUndefined();
      const [weu, neu] = s.vaults.map(
        (v) => `/subscriptions/${s.sub}/resourceGroups/rg-vaults/providers/Microsoft.KeyVault/vaults/${v}`,
      );
      expect(entryFor(mine, 'diagnostics', weu!)?.action).toBe('change');
      expect(entryFor(mine, 'diagnostics', neu!)?.action).toBe('none');
      expect(entryFor(mine, 'diagnostics', `/subscriptions/${s.sub}/locations/northeurope`)?.action).toBe(
        'blocked',
      );
      expect(byItem(mine, 'purgeProtection').map((e) => e.action)).toEqual(['change', 'change']);
      expect(byItem(mine, 'policy')[0]?.action).toBe('change');
      expect(entryFor(mine, 'flowLogs', s.vnet)?.action).toBe('change');
      expect(byItem(mine, 'autoProvisioning')[0]?.action).toBe('none');
      for (const e of mine) expect(e.applied).toBeUndefined();
    }
    const drift = alerts.filter((a) => a.kind === 'drift');
    expect(drift).toHaveLength(1);
    expect(drift[0]!.title).toMatch(/^kvguard posture \(report\)/);
    // The Key Vault alert is forwarded (report mode too: it writes nothing to Azure); the VM alert is not.
    const forwarded = alerts.filter((a) => a.kind === 'primary');
    expect(forwarded).toHaveLength(1);
    expect(forwarded[0]!.title).toContain('kv-d0-weu');
    expect(forwarded[0]!.severity).toBe('critical');
    expect(report.alertsForwarded).toBe(1);
  });

  test('enforce fixes all of it (JIT merge keeps the other VM and the other port), then a second enforce writes nothing', async () => {
    const first = await run(subs, desired('enforce'));
    expect(first.report.counts.failed).toBe(0);
    const changes = first.report.entries.filter((e) => e.action === 'change');
    expect(changes.length).toBeGreaterThan(0);
    for (const e of changes) expect(e.applied).toBe(true);
    // Only the region without a hub stays blocked.
    expect(first.report.entries.filter((e) => e.action === 'blocked').map((e) => e.resource)).toEqual(
      subs.map((s) => `/subscriptions/${s}/locations/northeurope`),
    );
    expect(first.alerts.filter((a) => a.kind === 'primary')).toHaveLength(0); // already forwarded
    const state = armResources(env.h.emulator.core);
    for (const s of scenarios) {
      const policy = [...state.jitPolicies.values()].find((p) => p.subscriptionId === s.sub)!;
      const vms = policy.virtualMachines as Array<{ id: string; ports: Array<Record<string, unknown>> }>;
      expect(vms.map((v) => v.id)).toEqual([s.vmOther, s.vmTagged, s.vmNew]);
      expect(vms[0]!.ports).toEqual([
        {
          number: 3389,
          protocol: 'TCP',
          allowedSourceAddressPrefix: '192.0.2.0/24',
          maxRequestAccessDuration: 'PT1H',
        },
      ]);
      expect(vms[1]!.ports.map((p) => p.number)).toEqual([22, 5985]);
      expect(vms[1]!.ports[0]).toEqual({
        number: 22,
        protocol: 'TCP',
        allowedSourceAddressPrefixes: ['10.0.0.0/8'],
        maxRequestAccessDuration: 'PT3H',
      });
      const vault = env.h.emulator.core.vaults.get(s.vaults[0]!)!;
      expect(vault.enablePurgeProtection).toBe(true);
      const settings = state.diagnosticSettings.get(
        `/subscriptions/${s.sub}/resourcegroups/rg-vaults/providers/microsoft.keyvault/vaults/${s.vaults[0]}`,
      )!;
      expect(settings.get('kvguard-audit')!.properties).toMatchObject({
        workspaceId: env.workspaceResourceId,
        logAnalyticsDestinationType: 'Dedicated',
        eventHubAuthorizationRuleId: HUB_RULE,
        eventHubName: 'kvguard-audit',
      });
      // The northeurope vault's workspace sink was already covered: no kvguard-audit there (Azure would refuse it).
      const neu = state.diagnosticSettings.get(
        `/subscriptions/${s.sub}/resourcegroups/rg-vaults/providers/microsoft.keyvault/vaults/${s.vaults[1]}`,
      )!;
      expect([...neu.keys()]).toEqual(['to-workspace']);
    }
    const writes = first.armWrites.map((w) => `${w.method} ${w.status}`);
    expect(writes.every((w) => /^(PUT|PATCH) 20[01]$/.test(w))).toBe(true);
    // Each change is checked against the write's answer: no GET of a written resource, or of the
    // collection it is in, follows its write.
    const readBack = first.armRequests.flatMap((w, i) =>
      w.method === 'GET'
        ? []
        : first.armRequests
            .slice(i + 1)
            .filter(
              (r) =>
                r.method === 'GET' &&
                (r.path.toLowerCase() === w.path.toLowerCase() ||
                  w.path.toLowerCase().startsWith(`${r.path.toLowerCase()}/`)),
            )
            .map((r) => `${w.method} ${w.path} then GET ${r.path}`),
    );
    expect(readBack).toEqual([]);

    const second = await run(subs, desired('enforce'));
    expect(second.armWrites).toEqual([]);
    expect(second.report.counts.change).toBe(0);
    expect(second.report.counts.failed).toBe(0);
    expect(second.report.entries.filter((e) => e.action === 'blocked')).toHaveLength(3); // the hub-less region, reported
    // With no region lacking a hub, there is no drift at all and no drift report.
    const third = await run(
      subs,
      desired('enforce', {
        diagnostics: {
          workspaceResourceId: env.workspaceResourceId,
          eventHubs: {
            westeurope: { authorizationRuleId: HUB_RULE, name: 'kvguard-audit' },
            northeurope: { authorizationRuleId: HUB_RULE.replace('weu', 'neu'), name: 'kvguard-audit' },
          },
        },
      }),
    );
    expect(third.report.counts.blocked).toBe(0);
    expect(third.armWrites.length).toBe(3); // northeurope's kvguard-audit gets the hub sink only
    const fourth = await run(
      subs,
      desired('enforce', {
        diagnostics: {
          workspaceResourceId: env.workspaceResourceId,
          eventHubs: {
            westeurope: { authorizationRuleId: HUB_RULE, name: 'kvguard-audit' },
            northeurope: { authorizationRuleId: HUB_RULE.replace('weu', 'neu'), name: 'kvguard-audit' },
          },
        },
      }),
    );
    expect(fourth.armWrites).toEqual([]);
    expect(fourth.report.drift).toBe(false);
    expect(fourth.alerts).toEqual([]);
  });
});

describe('JIT without Defender for Servers P2', () => {
  test('is reported blocked and never written; the other VMs keep their rules', async () => {
    const sub = newSubscription();
    const s = seedDrift(sub, 'nop2');
    const doc = desired('enforce', {
      defenderPlans: { VirtualMachines: { tier: 'Standard', subPlan: 'P1' } },
    });
    const { report, armWrites } = await run([sub], doc);
    expect(entryFor(report.entries, 'jit', s.vmTagged)?.action).toBe('blocked');
    expect(entryFor(report.entries, 'jit', s.vmTagged)?.why).toContain(
      'Plan 2 (VirtualMachines is Standard/P1)',
    );
    expect(entryFor(report.entries, 'jit', s.vmNew)?.action).toBe('blocked');
    expect(armWrites.some((w) => /jitNetworkAccessPolicies/i.test(w.path))).toBe(false);
    // In report mode with P2 desired, the JIT change is planned after the plan change instead.
    const planned = await run([sub], desired('report'));
    expect(entryFor(planned.report.entries, 'jit', s.vmNew)?.action).toBe('change');
    expect(entryFor(planned.report.entries, 'jit', s.vmNew)?.why).toContain(
      'after the VirtualMachines plan above is set to P2',
    );
  });
});

describe('paging', () => {
  test('every list the SDKs page through is read to the end (nextLink with $skiptoken)', async () => {
    const sub = newSubscription();
    const core = env.h.emulator.core;
    const state = armResources(core);
    for (let i = 0; i < 3; i++) {
      seedVirtualMachine(core, {
        subscriptionId: sub,
        resourceGroup: 'rg-page',
        name: `vm-page-${i}`,
        tags: { [JIT_TAG]: 'on' },
      });
      seedVirtualNetwork(core, { subscriptionId: sub, name: `vnet-page-${i}`, location: 'westeurope' });
      seedSecurityAlert(core, {
        subscriptionId: sub,
        name: `page-alert-${i}`,
        alertType: 'KV_ListGetAnomaly',
        resourceIds: [
          `/subscriptions/${sub}/resourceGroups/rg-vaults/providers/Microsoft.KeyVault/vaults/kv-page-${i}`,
        ],
      });
    }
    state.pageSize = 2;
    try {
      const { report, armRequests, alerts } = await run([sub], desired('report'));
      expect(byItem(report.entries, 'jit')).toHaveLength(3);
      expect(byItem(report.entries, 'flowLogs')).toHaveLength(3);
      expect(alerts.filter((a) => a.kind === 'primary')).toHaveLength(3);
      const paged = armRequests
        .filter((r) => r.query.includes('skiptoken'))
        .map((r) => r.path.split('/').pop());
      expect(paged).toEqual(expect.arrayContaining(['virtualMachines', 'virtualNetworks', 'alerts']));
    } finally {
      state.pageSize = 25;
    }
  });
});

describe('throttling and failures', () => {
  test('a throttled subscription (429 + Retry-After) still converges, after waiting as told', async () => {
    const sub = newSubscription();
    seedDrift(sub, 'thr');
    const path = `^/subscriptions/${sub}/providers/Microsoft\\.Security/pricings`;
    env.h.emulator.faults.add({
      kind: 'throttle',
      host: 'management.azure.com',
      path,
      count: 2,
      retryAfterMs: 250,
    });
    const started = Date.now();
    const { report, armRequests } = await run([sub], desired('enforce'));
    expect(report.counts.failed).toBe(0);
    expect(report.entries.filter((e) => e.action === 'change').every((e) => e.applied)).toBe(true);
    const pricing = armRequests.filter((r) => new RegExp(path).test(r.path));
    expect(pricing.slice(0, 3).map((r) => r.status)).toEqual([429, 429, 200]);
    const t = (r: RequestLogEntry) => Date.parse(r.time);
    expect(t(pricing[2]!) - t(pricing[0]!)).toBeGreaterThanOrEqual(450);
    expect(Date.now() - started).toBeGreaterThanOrEqual(500);
  });

  test('a subscription the identity may only read is reported failed; the others converge', async () => {
    const readOnly = newSubscription('read');
    const writable = newSubscription();
    seedDrift(readOnly, 'ro');
    seedDrift(writable, 'rw');
    const { report } = await run([readOnly, writable], desired('enforce'));
    const ro = report.entries.filter((e) => e.subscription === readOnly);
    const rw = report.entries.filter((e) => e.subscription === writable);
    expect(ro.filter((e) => e.action === 'failed').length).toBeGreaterThan(5);
    expect(ro.find((e) => e.item === 'defenderPlan' && e.action === 'failed')?.why).toContain(
      'forbidden (403)',
    );
    expect(rw.filter((e) => e.action === 'failed')).toEqual([]);
    expect(rw.filter((e) => e.action === 'change').every((e) => e.applied)).toBe(true);
  });

  test('one failing resource does not stop the run: a 500 on one vault leaves the other items converged', async () => {
    const sub = newSubscription();
    const s = seedDrift(sub, 'err');
    env.h.emulator.faults.add({
      kind: 'error',
      status: 503,
      host: 'management.azure.com',
      path: `/vaults/${s.vaults[0]}/providers/Microsoft\\.Insights/diagnosticSettings$`,
      count: 20,
    });
    const { report, alerts } = await run([sub], desired('enforce'));
    env.h.emulator.faults.clear();
    const vaultId = `/subscriptions/${sub}/resourceGroups/rg-vaults/providers/Microsoft.KeyVault/vaults/${s.vaults[0]}`;
    expect(entryFor(report.entries, 'diagnostics', vaultId)?.action).toBe('failed');
    expect(entryFor(report.entries, 'purgeProtection', vaultId)?.applied).toBe(true);
    expect(entryFor(report.entries, 'flowLogs', s.vnet)?.applied).toBe(true);
    const drift = alerts.find((a) => a.kind === 'drift')!;
    expect(drift.severity).toBe('critical');
  });

  test('an invalid desired state lists every problem in one operational alert and calls no ARM', async () => {
    const sub = newSubscription();
    const config = loadConfig({
      ...env.settings,
      KVGUARD_SUBSCRIPTIONS: sub,
      KVGUARD_POSTURE: JSON.stringify({ mode: 'fix', defaults: { jit: { ports: [] } } }),
    });
    const rt = createRuntime(config, { processLog: target });
    const alerts: AlertMessage[] = [];
    rt.sinks.push({ name: 'capture', send: (a) => (alerts.push(a), Promise.resolve({ ok: true })) });
    const since = env.h.emulator.requests.length;
    const result = await runPostureReconciliation(rt, inv());
    expect(result.ok).toBe(false);
    if (!result.ok) expect(result.problems.length).toBeGreaterThanOrEqual(3);
    expect(env.h.emulator.requests.slice(since).filter((r) => r.host === 'management.azure.com')).toEqual([]);
    expect(alerts).toHaveLength(1);
    expect(alerts[0]!.kind).toBe('operational');
    expect(alerts[0]!.text.join('\n')).toContain('mode');
  });
});
