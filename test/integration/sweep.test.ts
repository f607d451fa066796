/**
 * sweepDeletedKeys end to end, with the real Azure SDK clients against the emulated Azure and
 * Azurite, and no log flowing at all: nothing forwards the vaults' AuditEvent records, and the
 * workspace ingests them an hour late. The sweep alone must bring deleted keys back, within 60 s of
 * their deletion, with one deleted-keys list per vault and one deleted-vaults list per subscription.
 * The emulator's request log (`env.h.emulator.requests`) is the proof of what kvguard called.
 */
import { ClientSecretCredential } from '@azure/identity';
import { KeyClient } from '@azure/keyvault-keys';
import type { AlertContent } from '../../lib/core/model';
import { createRuntime, type Runtime } from '../../lib/runtime';
import { sweepDeletedKeys } from '../../lib/sweep';
import { startKvguardEnv, type KvguardEnv } from '../emulator/kvguard-env';
import type { Principal, RequestLogEntry } from '../emulator/types';
import { captureLogs } from '../support/logs';

let env: KvguardEnv;
let rt: Runtime;
let attacker: Principal;
const { target, inv } = captureLogs('sweep');
const HOUR = 3600_000;

beforeAll(async () => {
  env = await startKvguardEnv({ latencyMs: 2 });
  rt = createRuntime(env.config, { processLog: target });
  attacker = env.h.emulator.addPrincipal({
    kind: 'servicePrincipal',
    displayName: 'mallory-app',
    secret: 'attacker-secret',
    ipAddress: '203.0.113.66',
    roleAssignments: [
      { scope: `/subscriptions/${env.h.emulator.subscriptionId}`, roleName: 'Key Vault Crypto Officer' },
    ],
  });
  setIngestionDelay(HOUR); // the log path is broken: nothing reaches the workspace in time
});
afterAll(async () => {
  await env.stop();
});

function setIngestionDelay(ms: number) {
  env.h.emulator.core.workspaces!.get(env.workspaceId.toLowerCase())!.ingestionDelayMs = ms;
}

function seedVault(name: string, options: { accessPolicy?: boolean } = {}) {
  env.h.emulator.addVault({
    name,
    resourceGroup: 'rg-app',
    location: 'westeurope',
    permissionModel: options.accessPolicy ? 'accessPolicy' : 'rbac',
    ...(options.accessPolicy ? { accessPolicies: [{ objectId: attacker.oid, keys: ['all'] }] } : {}),
    purgeProtection: false,
    retentionDays: 7,
  });
}

function attackerClient(vault: string) {
  return new KeyClient(
    `https://${vault}.vault.azure.net`,
    new ClientSecretCredential(env.h.emulator.tenantId, attacker.appId!, 'attacker-secret'),
  );
}

/** The attacker deletes keys (a real KeyClient); answers each deletion's AuditEvent time. */
async function attackerDeletes(vault: string, keys: string[]): Promise<Map<string, number>> {
  const client = attackerClient(vault);
  for (const key of keys) await client.createKey(key, 'RSA');
  for (const key of keys) await (await client.beginDeleteKey(key, { intervalInMs: 10 })).pollUntilDone();
  const times = new Map<string, number>();
  for (const r of env.h.emulator.audit) {
    const keyName = /\/keys\/([^/?]+)/.exec(String((r.properties as { id?: string })?.id ?? ''))?.[1];
    if (r.operationName === 'KeyDelete' && r.resourceId.endsWith(`/${vault.toUpperCase()}`) && keyName)
      times.set(keyName, Date.parse(r.time));
  }
  return times;
}

/** kvguard's own requests since `from` (its identity's calls, and the challenges its clients answer). */
function kvguardRequests(from: number): RequestLogEntry[] {
  return env.h.emulator.requests
    .filter((r) => r.seq > from)
    .filter(
      (r) => r.callerOid === env.identity.oid || (r.status === 401 && r.host.endsWith('.vault.azure.net')),
    )
    .filter((r) => r.host !== 'login.microsoftonline.com');
}

/** kvguard's calls to Azure services, its managed-identity token requests aside. */
function serviceCalls(calls: RequestLogEntry[]): RequestLogEntry[] {
  return calls.filter((r) => r.host !== 'identity-endpoint');
}

function lastSeq(): number {
  return env.h.emulator.requests.reduce((m, r) => Math.max(m, r.seq), 0);
}

function alertsOnTopic() {
  return env.h.emulator.eventGrid.events('kvguard-alerts').map((e) => {
    const event = e.event as { id: string; data: { details: AlertContent } };
    return { id: event.id, data: event.data.details };
  });
}

function describeCall(r: RequestLogEntry): string {
  return `${r.method} ${r.host}${r.path}${r.query.includes('skiptoken') ? ' (next page)' : ''} ${r.status}`;
}

const figures: Record<string, unknown> = {};
afterAll(() => {
  // The figures this file measures (wall time, calls), for the record.
  process.stdout.write(`sweep figures: ${JSON.stringify(figures, null, 2)}\n`);
});

describe('the sweep with no log at all', () => {
  it('recovers a key deleted by an attacker within 60 s of its deletion, with one list per vault and per subscription', async () => {
    seedVault('kv-sweep-one');
    seedVault('kv-sweep-two');
    seedVault('kv-sweep-three');
    await rt.inventory.refresh();
    const deletedAt = (await attackerDeletes('kv-sweep-one', ['payments'])).get('payments')!;

    const from = lastSeq();
    const started = Date.now();
    const report = await sweepDeletedKeys(rt, inv());
    const ended = Date.now();

    const vault = env.h.emulator.core.vaults.get('kv-sweep-one')!;
    expect(vault.keys.has('payments')).toBe(true);
    expect(vault.deletedKeys.has('payments')).toBe(false);
    expect(vault.enablePurgeProtection).toBe(true);

    const calls = kvguardRequests(from);
    const recover = calls.find(
      (r) => r.method === 'POST' && r.path === '/deletedkeys/payments/recover' && r.status === 200,
    )!;
    const confirmed = calls.filter(
      (r) =>
        r.method === 'GET' &&
        r.host === 'kv-sweep-one.vault.azure.net' &&
        /^\/keys\/payments\/?$/.test(r.path),
    );
    const readable = confirmed.find((r) => r.status === 200)!;
    expect(recover).toBeDefined();
    expect(readable).toBeDefined();
    // The timestamps: recovered (readable again) well within 60 s of the deletion, and one run of the
    // sweep takes far less than its 30 s cadence, so a deletion right after a run is still covered.
    const recoveredAt = Date.parse(readable.time) + readable.durationMs;
    expect(recoveredAt - deletedAt).toBeLessThan(60_000);
    expect(ended - started).toBeLessThan(30_000);
    expect(report).toMatchObject({ deletedKeysSeen: 1, incidentsOpened: 1, recovered: 1, failures: [] });

    // One deleted-keys list per vault in the inventory (its first contact answered by the challenge).
    const vaultHosts = (await rt.inventory.current()).vaults.filter((v) => !v.deleted).map((v) => v.host);
    expect(vaultHosts).toEqual(
      expect.arrayContaining(['kv-sweep-one.vault.azure.net', 'kv-sweep-two.vault.azure.net']),
    );
    for (const host of vaultHosts) {
      const lists = calls.filter((r) => r.host === host && r.method === 'GET' && r.path === '/deletedkeys');
      expect(lists.filter((r) => r.status === 200)).toHaveLength(1);
      expect(lists.filter((r) => r.status !== 200 && r.status !== 401)).toEqual([]);
    }
    // One deleted-vaults list per subscription, and no other listing of ARM.
    const arm = calls.filter((r) => r.host === 'management.azure.com');
    expect(arm.filter((r) => r.path.endsWith('/deletedVaults'))).toHaveLength(1);
    expect(arm.filter((r) => r.method === 'GET' && r.path.endsWith('/vaults'))).toEqual([]);
    // Per recovery: the recover call, then the confirming read(s); no GET /deletedkeys/payments (the list
    // row was the observe read), no read of the key before the recover. Then purge protection: the
    // vault's facts and the PATCH.
    const keyCalls = calls.filter(
      (r) => r.host === 'kv-sweep-one.vault.azure.net' && r.path !== '/deletedkeys',
    );
    expect(keyCalls.filter((r) => r.path === '/deletedkeys/payments')).toEqual([]);
    expect(keyCalls.map((r) => `${r.method} ${r.path.replace(/\/$/, '')} ${r.status}`)).toEqual([
      'POST /deletedkeys/payments/recover 200',
      ...confirmed.map((r) => `GET /keys/payments ${r.status}`),
    ]);
    expect(confirmed.length).toBeLessThanOrEqual(4);
    expect(arm.filter((r) => r.method !== 'GET').map((r) => r.method)).toEqual(['PATCH']);
    // Nothing else but the alert: no workspace query, no Graph, no other host (tokens aside).
    const others = calls.filter(
      (r) =>
        !r.host.endsWith('.vault.azure.net') &&
        r.host !== 'management.azure.com' &&
        r.host !== 'identity-endpoint',
    );
    expect(others.map((r) => `${r.method} ${r.host}`)).toEqual([
      'POST kvguard-alerts.westeurope-1.eventgrid.azure.net',
    ]);

    const primary = alertsOnTopic().filter((a) => a.data.what?.keyName === 'payments');
    expect(primary).toHaveLength(1);
    expect(primary[0]!.data.who).toMatchObject({ known: false, summary: 'still being identified' });

    figures.oneKey = {
      sweepWallMs: ended - started,
      deletionToRecoveredMs: recoveredAt - deletedAt,
      vaultsListed: vaultHosts.length,
      calls: serviceCalls(calls).map(describeCall),
    };

    // The next run (the log is still not there): one list per vault, one per subscription, and one
    // workspace query for the incident awaiting its caller. No follow-up yet.
    const from2 = lastSeq();
    const second = await sweepDeletedKeys(rt, inv());
    const calls2 = kvguardRequests(from2);
    expect(second).toMatchObject({ deletedKeysSeen: 0, incidentsOpened: 0, attributed: 0, failures: [] });
    expect(
      calls2
        .filter((r) => r.host.endsWith('.vault.azure.net'))
        .map((r) => `${r.host} ${r.path}`)
        .sort(),
    ).toEqual(vaultHosts.map((h) => `${h} /deletedkeys`).sort());
    expect(calls2.filter((r) => r.host === 'management.azure.com').map((r) => r.path)).toEqual([
      `/subscriptions/${env.h.emulator.subscriptionId}/providers/Microsoft.KeyVault/deletedVaults`,
    ]);
    expect(calls2.filter((r) => r.host === 'api.loganalytics.io')).toHaveLength(1);
    figures.secondRun = { calls: serviceCalls(calls2).map(describeCall) };

    // The log arrives at last: the run after names the caller in exactly one follow-up.
    setIngestionDelay(0);
    expect((await sweepDeletedKeys(rt, inv())).attributed).toBe(1);
    expect((await sweepDeletedKeys(rt, inv())).attributed).toBe(0);
    setIngestionDelay(HOUR);
    const follow = alertsOnTopic().filter(
      (a) => a.id.endsWith('/attribution') && a.data.what?.keyName === 'payments',
    );
    expect(follow).toHaveLength(1);
    expect(follow[0]!.data.who).toMatchObject({ known: true, appId: attacker.appId, oid: attacker.oid });
  });

  it('recovers 30 keys deleted in one vault in one run, reading the paged list once', async () => {
    seedVault('kv-sweep-many');
    await rt.inventory.refresh();
    const names = Array.from({ length: 30 }, (_, i) => `bulk-${String(i).padStart(2, '0')}`);
    const times = await attackerDeletes('kv-sweep-many', names);

    const from = lastSeq();
    const started = Date.now();
    const report = await sweepDeletedKeys(rt, inv());
    const ended = Date.now();

    const vault = env.h.emulator.core.vaults.get('kv-sweep-many')!;
    for (const n of names) expect(vault.keys.has(n)).toBe(true);
    expect(report).toMatchObject({ incidentsOpened: 30, recovered: 30, failures: [] });
    const calls = kvguardRequests(from);
    const lists = calls.filter(
      (r) => r.host === 'kv-sweep-many.vault.azure.net' && r.path === '/deletedkeys' && r.status === 200,
    );
    // The emulator serves 25 items a page: the first page and one next page, one listing.
    expect(lists.map((r) => r.query.includes('skiptoken'))).toEqual([false, true]);
    expect(calls.filter((r) => r.path.endsWith('/recover'))).toHaveLength(30);
    const earliest = Math.min(...times.values());
    expect(ended - earliest).toBeLessThan(60_000);
    figures.thirtyKeys = {
      sweepWallMs: ended - started,
      firstDeletionToRunEndMs: ended - earliest,
      listCalls: lists.length,
      recoverCalls: 30,
      serviceCalls: serviceCalls(calls).length,
    };
  });

  it('finds the incidents written lately across vaults by the table Timestamp (TableLedger.listRecent on Azurite)', async () => {
    const all = await rt.ledger.listRecent('key_', new Date(Date.now() - HOUR));
    expect(new Set(all.map((e) => e.partition))).toEqual(new Set(['kv-sweep-one', 'kv-sweep-many']));
    expect(all.every((e) => e.id.startsWith('key_'))).toBe(true);
    expect(await rt.ledger.listRecent('key_', new Date(Date.now() + 60_000))).toEqual([]);
  });

  it('reports a vault it may not read (403) and still recovers the keys of the others', async () => {
    seedVault('kv-sweep-locked', { accessPolicy: true });
    seedVault('kv-sweep-open');
    await rt.inventory.refresh();
    await attackerDeletes('kv-sweep-locked', ['locked-key']);
    await attackerDeletes('kv-sweep-open', ['open-key']);

    const first = await sweepDeletedKeys(rt, inv());
    await sweepDeletedKeys(rt, inv());

    expect(env.h.emulator.core.vaults.get('kv-sweep-open')!.keys.has('open-key')).toBe(true);
    expect(env.h.emulator.core.vaults.get('kv-sweep-locked')!.deletedKeys.has('locked-key')).toBe(true);
    expect(first.failures).toEqual([
      expect.objectContaining({ target: 'kv-sweep-locked', step: 'list-deleted-keys', kind: 'forbidden' }),
    ]);
    const operational = env.h.emulator.eventGrid
      .events('kvguard-alerts')
      .filter((e) => String((e.event as { id: string }).id).includes('kv-sweep-locked'));
    expect(operational).toHaveLength(1);
  });
});
