/**
 * No KVGUARD_SUBSCRIPTIONS: kvguard's scope is every subscription its identity holds a role in, as ARM
 * lists them (`GET /subscriptions`, @azure/arm-resources-subscriptions against the emulated ARM), with
 * the real SDK clients and Azurite. The identity has roles in two subscriptions and none in a third:
 * the inventory covers the two, the sweep brings back a deleted key in each, and the third is never
 * listed nor requested. A failed discovery keeps the scope it had.
 */
import { ClientSecretCredential } from '@azure/identity';
import { KeyClient } from '@azure/keyvault-keys';
import { runPostureReconciliation } from '../../lib/posture/run';
import { createRuntime, type Runtime } from '../../lib/runtime';
import { sweepDeletedKeys } from '../../lib/sweep';
import {
  KVGUARD_ACTIONS,
  KVGUARD_DATA_ACTIONS,
  startKvguardEnv,
  type KvguardEnv,
} from '../emulator/kvguard-env';
import type { Principal, RequestLogEntry } from '../emulator/types';
import { captureLogs } from '../support/logs';

const SUB_B = '5d0c9b1a-2e3f-4a5b-8c7d-6e5f4a3b2c1d';
/** A subscription kvguard's identity holds no role in. */
const SUB_C = 'c3b2a190-8f7e-4d6c-9b5a-4f3e2d1c0b9a';

let env: KvguardEnv;
let rt: Runtime;
let attacker: Principal;
let subA: string;
const { lines: logLines, target, inv } = captureLogs('discovery');

beforeAll(async () => {
  env = await startKvguardEnv({
    latencyMs: 2,
    settings: { KVGUARD_SUBSCRIPTIONS: '', KVGUARD_POSTURE: JSON.stringify(posture()) },
  });
  const e = env.h.emulator;
  subA = e.subscriptionId.toLowerCase();
  // kvguard's custom role in a second subscription too (infra/subscription.json deployed there).
  e.core.roleAssignments.push({
    id: 'ra-kvguard-sub-b',
    principalId: env.identity.oid,
    scope: `/subscriptions/${SUB_B}`,
    actions: KVGUARD_ACTIONS,
    dataActions: KVGUARD_DATA_ACTIONS,
  });
  attacker = e.addPrincipal({
    kind: 'servicePrincipal',
    displayName: 'mallory-app',
    secret: 'attacker-secret',
    roleAssignments: [subA, SUB_B, SUB_C].map((s) => ({
      scope: `/subscriptions/${s}`,
      roleName: 'Key Vault Crypto Officer',
    })),
  });
  for (const [name, subscriptionId] of [
    ['kv-disc-a', subA],
    ['kv-disc-b', SUB_B],
    ['kv-disc-c', SUB_C],
  ] as const) {
    e.addVault({
      name,
      subscriptionId,
      resourceGroup: 'rg-app',
      location: 'westeurope',
      permissionModel: 'rbac',
      purgeProtection: true,
      retentionDays: 7,
    });
  }
  rt = createRuntime(env.config, { processLog: target });
}, 120_000);

afterAll(async () => {
  await env?.stop();
});

function posture() {
  // Valid only if SUB_B is in scope: an override for a subscription out of scope is refused.
  return { mode: 'report', defaults: {}, subscriptions: { [SUB_B]: {} } };
}

function kvguardArmCalls(from: number): RequestLogEntry[] {
  return env.h.emulator.requests.filter(
    (r) => r.seq > from && r.callerOid === env.identity.oid && r.host === 'management.azure.com',
  );
}

function lastSeq(): number {
  return env.h.emulator.requests.reduce((m, r) => Math.max(m, r.seq), 0);
}

async function attackerDeletes(vault: string, key: string): Promise<void> {
  const client = new KeyClient(
    `https://${vault}.vault.azure.net`,
    new ClientSecretCredential(env.h.emulator.tenantId, attacker.appId!, 'attacker-secret'),
  );
  await client.createKey(key, 'RSA');
  await (await client.beginDeleteKey(key, { intervalInMs: 10 })).pollUntilDone();
}

function keyState(vault: string, key: string): 'active' | 'deleted' | 'missing' {
  const v = env.h.emulator.core.vaults.get(vault)!;
  if (v.keys.has(key)) return 'active';
  return v.deletedKeys.has(key) ? 'deleted' : 'missing';
}

it('with no subscriptions configured, the config asks for discovery', () => {
  expect(env.config.subscriptions).toEqual([]);
});

it('inventories the vaults of every subscription the identity holds a role in, and no other', async () => {
  const from = lastSeq();
  const snapshot = await rt.inventory.refresh();

  expect([...snapshot.subscriptions].sort()).toEqual([subA, SUB_B].sort());
  expect(snapshot.failures).toEqual([]);
  const names = snapshot.vaults.map((v) => v.name);
  expect(names).toEqual(expect.arrayContaining(['kv-disc-a', 'kv-disc-b']));
  expect(names).not.toContain('kv-disc-c');
  expect(await rt.inventory.findByHost('kv-disc-c.vault.azure.net')).toBeUndefined();

  const calls = kvguardArmCalls(from);
  expect(calls.filter((r) => r.path === '/subscriptions')).toEqual([
    expect.objectContaining({
      method: 'GET',
      status: 200,
      query: expect.stringContaining('api-version=2022-12-01'),
    }),
  ]);
  expect(calls.filter((r) => r.path.toLowerCase().includes(SUB_C))).toEqual([]);
  expect(
    logLines.some((l) => l.includes('"msg":"subscriptions discovered"') && l.includes('"discovered":2')),
  ).toBe(true);
});

it('the sweep finds and recovers a deleted key in each discovered subscription, and leaves the other alone', async () => {
  await attackerDeletes('kv-disc-a', 'cmk-a');
  await attackerDeletes('kv-disc-b', 'cmk-b');
  await attackerDeletes('kv-disc-c', 'cmk-c');
  const from = lastSeq();

  const report = await sweepDeletedKeys(rt, inv());

  expect(report).toMatchObject({ subscriptions: 2, deletedKeysSeen: 2, recovered: 2, failures: [] });
  expect(keyState('kv-disc-a', 'cmk-a')).toBe('active');
  expect(keyState('kv-disc-b', 'cmk-b')).toBe('active');
  expect(keyState('kv-disc-c', 'cmk-c')).toBe('deleted');
  const requests = env.h.emulator.requests.filter((r) => r.seq > from && r.callerOid === env.identity.oid);
  expect(requests.filter((r) => r.host === 'kv-disc-c.vault.azure.net')).toEqual([]);
  expect(requests.filter((r) => r.path.toLowerCase().includes(SUB_C))).toEqual([]);
});

it('the posture run works on the discovered subscriptions', async () => {
  const result = await runPostureReconciliation(rt, inv());
  expect(result.ok).toBe(true);
  if (result.ok) expect([...result.report.subscriptions].sort()).toEqual([subA, SUB_B].sort());
});

it('a failed discovery is reported and keeps the scope; the next one that works picks up a new grant', async () => {
  const e = env.h.emulator;
  // kvguard is granted the third subscription, but ARM fails every listing of the subscriptions for now.
  e.core.roleAssignments.push({
    id: 'ra-kvguard-sub-c',
    principalId: env.identity.oid,
    scope: `/subscriptions/${SUB_C}`,
    actions: KVGUARD_ACTIONS,
    dataActions: KVGUARD_DATA_ACTIONS,
  });
  e.faults.add({
    kind: 'error',
    status: 503,
    host: 'management.azure.com',
    path: '^/subscriptions$',
    count: 10,
  });
  try {
    const failed = await rt.inventory.refresh();
    expect(failed.failures).toEqual([{ detail: 'list subscriptions: transient' }]);
    expect([...failed.subscriptions].sort()).toEqual([subA, SUB_B].sort());
    expect(failed.vaults.map((v) => v.name)).toEqual(expect.arrayContaining(['kv-disc-a', 'kv-disc-b']));
    // Another instance reads the same scope from the table.
    const other = createRuntime(env.config, { processLog: target });
    expect([...(await other.inventory.subscriptions())].sort()).toEqual([subA, SUB_B].sort());
  } finally {
    e.faults.clear();
  }

  const recovered = await rt.inventory.refresh();
  expect(recovered.failures).toEqual([]);
  expect([...recovered.subscriptions].sort()).toEqual([subA, SUB_B, SUB_C].sort());
  expect(recovered.vaults.map((v) => v.name)).toContain('kv-disc-c');
});
