/**
 * The responder's remaining "Done when" items of issue 3, end to end with the real Azure SDK clients
 * against the emulated Azure and Azurite (the setup of responder.test.ts): a publish outage in the
 * forwarder, a deleted vault, vault writes, an access-policy change, observe mode, a purged key, a
 * 403 and a 429 on recover, a log alert without dimensions, and a signal that arrives before its
 * deletion has completed.
 */
import type { IncomingHttpHeaders } from 'node:http';
import { createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import { KeyVaultManagementClient } from '@azure/arm-keyvault';
import { ClientSecretCredential, ManagedIdentityCredential } from '@azure/identity';
import { KeyClient } from '@azure/keyvault-keys';
import { BlobServiceClient } from '@azure/storage-blob';
import { loadConfig } from '../../lib/config';
import type { AlertContent } from '../../lib/core/model';
import {
  forwardAuditRecords,
  handleMonitorAlert,
  handleReplay,
  respondToEvent,
  type ItemResult,
} from '../../lib/entrypoints';
import { RetryableError, type TriggerOutcome } from '../../lib/pipeline';
import { createRuntime, systemClock, type Runtime } from '../../lib/runtime';
import { ensureCertificateAuthority } from '../emulator/ca';
import { SUBSCRIPTION_SYSTEM_TOPIC } from '../emulator/eventgrid';
import { startKvguardEnv, type KvguardEnv } from '../emulator/kvguard-env';
import type { AuditRecord, Principal } from '../emulator/types';
import { captureLogs } from '../support/logs';

interface Hook {
  id: string;
  headers: IncomingHttpHeaders;
  body: { id: string; kind: string; severity: string; title: string; text: string[]; details: unknown };
}

let env: KvguardEnv;
let rt: Runtime;
let attacker: Principal;
let webhook: Server;
const hooks: Hook[] = [];
const auditBatches: AuditRecord[][] = [];
/** Signal ids already delivered to the responder (each test delivers only what is new). */
const delivered = new Set<string>();

const ATTACKER_IP = '203.0.113.77';
const ATTACKER_SECRET = 'attacker-secret';
const RG = 'rg-app';

const { lines: logLines, target, inv } = captureLogs('inv');
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

beforeAll(async () => {
  const leaf = ensureCertificateAuthority().leafFor(['127.0.0.1']);
  webhook = createServer({ cert: leaf.cert, key: leaf.key }, (req, res) => {
    let body = '';
    req.on('data', (c: Buffer) => (body += c.toString()));
    req.on('end', () => {
      hooks.push({
        id: String(req.headers['x-kvguard-alert-id']),
        headers: req.headers,
        body: JSON.parse(body) as Hook['body'],
      });
      res.writeHead(200).end('ok');
    });
  });
  await new Promise<void>((r) => webhook.listen(0, '127.0.0.1', r));
  const port = (webhook.address() as AddressInfo).port;
  env = await startKvguardEnv({
    settings: {
      KVGUARD_WEBHOOK_URL: `https://127.0.0.1:${port}/hook`,
      KVGUARD_WEBHOOK_SECRET: 'w'.repeat(40),
    },
  });
  rt = createRuntime(env.config, { processLog: target });
  const subscription = `/subscriptions/${env.h.emulator.subscriptionId}`;
  attacker = env.h.emulator.addPrincipal({
    kind: 'servicePrincipal',
    displayName: 'mallory-app',
    secret: ATTACKER_SECRET,
    ipAddress: ATTACKER_IP,
    roleAssignments: [
      { scope: subscription, roleName: 'Key Vault Crypto Officer' },
      // Vault deletion and vault writes go through ARM.
      { scope: subscription, roleName: 'Key Vault Contributor' },
    ],
  });
  env.h.emulator.onAudit((records) => auditBatches.push(records));
}, 60_000);

afterAll(async () => {
  await env.stop();
  await new Promise<void>((r) => webhook.close(() => r()));
});

afterEach(() => {
  // A failing test must not leave a fault or a slow emulator behind for the next one.
  env.h.emulator.faults.clear();
  env.h.emulator.core.timing.completionLagMs = 30;
});

// ------------------------------------------------------------------------------------------------
// helpers

function seedVault(
  name: string,
  extra: Partial<Parameters<KvguardEnv['h']['emulator']['addVault']>[0]> = {},
): void {
  env.h.emulator.addVault({
    name,
    resourceGroup: RG,
    location: 'westeurope',
    permissionModel: 'rbac',
    purgeProtection: false,
    retentionDays: 7,
    ...extra,
  });
}

function vaultId(name: string): string {
  return `/subscriptions/${env.h.emulator.subscriptionId}/resourceGroups/${RG}/providers/Microsoft.KeyVault/vaults/${name}`;
}

function attackerCredential() {
  return new ClientSecretCredential(env.h.emulator.tenantId, attacker.appId!, ATTACKER_SECRET);
}

function attackerKeys(vault: string): KeyClient {
  return new KeyClient(`https://${vault}.vault.azure.net`, attackerCredential());
}

function attackerArm(): KeyVaultManagementClient {
  return new KeyVaultManagementClient(attackerCredential(), env.h.emulator.subscriptionId);
}

async function createAndDelete(vault: string, key: string): Promise<void> {
  const client = attackerKeys(vault);
  await client.createKey(key, 'RSA');
  await (await client.beginDeleteKey(key, { intervalInMs: 10 })).pollUntilDone();
}

/** The audit batches streamed so far (the emulator batches records for 20 ms). */
async function takeAuditBatches(): Promise<AuditRecord[][]> {
  await sleep(40);
  return auditBatches.splice(0);
}

/** Forwards every audit batch so far, as the Event Hub trigger would (first attempt of its retry policy). */
async function forwardAll(runtime: Runtime = rt): Promise<void> {
  for (const batch of await takeAuditBatches()) {
    const result = await forwardAuditRecords(runtime, [{ records: batch }], inv());
    expect(result.rejected).toEqual([]);
    expect(result.poisoned).toBe(0);
  }
}

/** The signals on the kvguard-signals topic not yet delivered, for one vault. */
function newSignals(vault: string): Array<Record<string, unknown>> {
  return env.h.emulator.eventGrid
    .events('kvguard-signals')
    .map((e) => e.event)
    .filter((e) => String(e.source).endsWith(`/vaults/${vault}`) && !delivered.has(String(e.id)));
}

function markDelivered(event: Record<string, unknown>): void {
  delivered.add(String(event.id));
}

/** Delivers one event as Event Grid would; answers the outcomes (throws what the function would throw). */
async function deliver(event: unknown, runtime: Runtime = rt): Promise<TriggerOutcome[]> {
  const mark = logLines.length;
  try {
    const items: ItemResult[] = await respondToEvent(runtime, event, inv());
    return items.flatMap((i) => i.outcomes ?? []);
  } catch (error) {
    // Say which sink failed, when one did (the pipeline's error names only the incident).
    const undelivered = logLines.slice(mark).filter((l) => l.includes('not delivered'));
    if (error instanceof Error && undelivered.length > 0) error.message += `\n${undelivered.join('\n')}`;
    throw error;
  }
}

/** The newest ARM event of a type for one vault on the subscription's system topic. */
function armEvent(type: 'Write' | 'Delete', vault: string, after: number): Record<string, unknown> {
  const events = env.h.emulator.eventGrid
    .events(SUBSCRIPTION_SYSTEM_TOPIC)
    .slice(after)
    .map((e) => e.event)
    .filter(
      (e) =>
        e.eventType === `Microsoft.Resources.Resource${type}Success` &&
        String(e.subject).toLowerCase() === vaultId(vault).toLowerCase(),
    );
  expect(events.length).toBeGreaterThan(0);
  return events[events.length - 1]!;
}

function armEventCount(): number {
  return env.h.emulator.eventGrid.events(SUBSCRIPTION_SYSTEM_TOPIC).length;
}

/** The alerts the kvguard-alerts topic received for one vault: CloudEvents whose data is the payload v1. */
function topicAlerts(vault: string): Array<{ id: string; data: AlertContent }> {
  return env.h.emulator.eventGrid
    .events('kvguard-alerts')
    .map((e) => e.event as { id: string; data: { details: AlertContent } })
    .map((e) => ({ id: e.id, data: e.data.details }))
    .filter((a) => a.data.what?.vaultName === vault);
}

function primaries(vault: string) {
  return topicAlerts(vault).filter((a) => a.id.endsWith('/primary'));
}

function requestsSince(seq: number) {
  return env.h.emulator.requests.filter((r) => r.seq > seq);
}

function lastSeq(): number {
  return env.h.emulator.requests.reduce((max, r) => Math.max(max, r.seq), 0);
}

function keyDeleteRecord(vault: string, key: string): AuditRecord {
  const records = env.h.emulator.audit.filter(
    (r) =>
      r.operationName === 'KeyDelete' &&
      r.resourceId.endsWith(`/${vault.toUpperCase()}`) &&
      String((r.properties as { id?: string }).id).includes(`/keys/${key}`) &&
      (r.properties as { httpStatusCode?: number }).httpStatusCode === 200,
  );
  expect(records.length).toBeGreaterThan(0);
  return records[records.length - 1]!;
}

// ------------------------------------------------------------------------------------------------

describe('the forwarder during a publish outage', () => {
  it('throws for the retry policy before the last attempt, then keeps the records in the poison container and raises an operational alert', async () => {
    seedVault('kv-outage');
    await createAndDelete('kv-outage', 'k1');
    await rt.inventory.refresh();
    const batches = await takeAuditBatches();
    const messages = batches.map((records) => ({ records }));
    const record = keyDeleteRecord('kv-outage', 'k1');
    const credential = new ManagedIdentityCredential({ clientId: env.identity.appId! });
    const container = new BlobServiceClient(env.azurite.blobEndpoint, credential).getContainerClient(
      env.config.storage.poisonContainer,
    );
    const poisonBlobs = async () => {
      if (!(await container.exists())) return [];
      const names: string[] = [];
      for await (const b of container.listBlobsFlat({ prefix: 'forwarder/' })) names.push(b.name);
      return names;
    };
    const blobsBefore = await poisonBlobs();

    env.h.emulator.faults.add({ kind: 'error', status: 503, host: '.eventgrid.azure.net' });
    // An earlier attempt: the retry policy runs the batch again, nothing goes to the poison container.
    await expect(
      forwardAuditRecords(rt, messages, inv({ retryCount: 2, maxRetryCount: 5 })),
    ).rejects.toBeInstanceOf(RetryableError);
    expect(await poisonBlobs()).toEqual(blobsBefore);

    // The last attempt: the records are kept and a human is told.
    const hooksBefore = hooks.length;
    const result = await forwardAuditRecords(rt, messages, inv({ retryCount: 5, maxRetryCount: 5 }));
    expect(result).toMatchObject({ published: 0, poisoned: 1 });
    env.h.emulator.faults.clear();
    expect(
      env.h.emulator.eventGrid.events('kvguard-signals').filter((e) => e.event.subject === '/keys/k1'),
    ).toEqual([]);

    const added = (await poisonBlobs()).filter((n) => !blobsBefore.includes(n));
    expect(added).toHaveLength(1);
    const text = (await container.getBlobClient(added[0]!).downloadToBuffer()).toString('utf8');
    const poison = JSON.parse(text) as {
      reason: string;
      records: AuditRecord[];
      events: Array<{ type: string; time: string; data: Record<string, unknown> }>;
    };
    expect(poison.reason).toMatch(/503|unavailable/i);
    // The record itself is kept, as the vault wrote it.
    expect(poison.records).toEqual([record]);
    expect(poison.events).toHaveLength(1);
    expect(poison.events[0]).toMatchObject({
      type: 'Kvguard.KeyVault.KeyDeleted.v1',
      time: record.time,
      data: { vaultName: 'kv-outage', keyName: 'k1', caller: { oid: attacker.oid, ipAddress: ATTACKER_IP } },
    });

    const ops = hooks.slice(hooksBefore).filter((h) => h.body.kind === 'operational');
    expect(ops).toHaveLength(1);
    expect(ops[0]!.body.severity).toBe('critical');
    expect(ops[0]!.body.text.join('\n')).toContain(added[0]!);

    // No record lost: the kept file, replayed as the alert says, recovers the key.
    const answer = await handleReplay(rt, { text, dryRun: false }, inv());
    expect(answer.status).toBe(200);
    expect(JSON.stringify(answer.body)).toContain('"status":"acted"');
    expect(env.h.emulator.core.vaults.get('kv-outage')!.keys.has('k1')).toBe(true);
  });

  it('keeps a batch larger than one replay request in several files, each replayable as it is', async () => {
    // Replay takes 2 inputs per request here, so 5 deletions make 3 files.
    const small = createRuntime(
      { ...env.config, replay: { ...env.config.replay, maxInputs: 2 } },
      { processLog: target },
    );
    seedVault('kv-outage-big');
    const keys = ['b1', 'b2', 'b3', 'b4', 'b5'];
    for (const key of keys) await createAndDelete('kv-outage-big', key);
    await small.inventory.refresh();
    const messages = (await takeAuditBatches()).map((records) => ({ records }));
    const credential = new ManagedIdentityCredential({ clientId: env.identity.appId! });
    const container = new BlobServiceClient(env.azurite.blobEndpoint, credential).getContainerClient(
      env.config.storage.poisonContainer,
    );
    const names = async () => {
      const found: string[] = [];
      for await (const b of container.listBlobsFlat({ prefix: 'forwarder/' })) found.push(b.name);
      return found;
    };
    const before = await names();
    const hooksBefore = hooks.length;

    env.h.emulator.faults.add({ kind: 'error', status: 503, host: '.eventgrid.azure.net' });
    const result = await forwardAuditRecords(small, messages, inv({ retryCount: 5, maxRetryCount: 5 }));
    env.h.emulator.faults.clear();
    expect(result).toMatchObject({ published: 0, poisoned: 5 });

    const added = (await names()).filter((n) => !before.includes(n)).sort();
    expect(added).toHaveLength(3);
    expect(added.map((n) => n.replace(/^.*-(\d)of(\d)\.json$/, '$1/$2'))).toEqual(['1/3', '2/3', '3/3']);
    const ops = hooks.slice(hooksBefore).filter((h) => h.body.kind === 'operational');
    expect(ops).toHaveLength(1);
    for (const name of added) expect(ops[0]!.body.text.join('\n')).toContain(name);

    // Every file, replayed as it is, is accepted; together they bring every key back.
    let kept = 0;
    for (const name of added) {
      const text = (await container.getBlobClient(name).downloadToBuffer()).toString('utf8');
      const file = JSON.parse(text) as { records: AuditRecord[]; events: unknown[] };
      expect(file.records.length).toBeLessThanOrEqual(2);
      expect(file.events).toHaveLength(file.records.length);
      kept += file.records.length;
      const answer = await handleReplay(small, { text, dryRun: false }, inv());
      expect(answer.status).toBe(200);
    }
    expect(kept).toBe(5);
    for (const key of keys) expect(env.h.emulator.core.vaults.get('kv-outage-big')!.keys.has(key)).toBe(true);
  });
});

describe('vault-level events from ARM', () => {
  it('recovers a vault the attacker deleted through ARM, names the caller, and finishes the incident on redelivery', async () => {
    seedVault('kv-gone');
    await rt.inventory.refresh();
    const after = armEventCount();
    await attackerArm().vaults.delete(RG, 'kv-gone');
    const deletionDate = env.h.emulator.core.vaults.get('kv-gone')!.deleted!.deletionDate;
    const published = armEvent('Delete', 'kv-gone', after);
    // In Azure the event's time is when ARM published it, a moment after the resource provider's
    // deletionDate; the emulator stamps both in the same millisecond or so. Model the gap.
    const event = {
      ...published,
      eventTime: new Date(Date.parse(deletionDate) + 1500).toISOString(),
    };

    // The first delivery recovers the vault, but the alerts topic is down: the delivery fails so that
    // Event Grid delivers it again.
    const alertsHost = new URL(env.alertsTopic).hostname;
    env.h.emulator.faults.add({ kind: 'error', status: 503, host: alertsHost });
    await expect(deliver(event)).rejects.toBeInstanceOf(RetryableError);
    env.h.emulator.faults.clear();
    const vault = env.h.emulator.core.vaults.get('kv-gone')!;
    expect(vault.deleted).toBeUndefined();
    expect(vault.enablePurgeProtection).toBe(true);
    expect(primaries('kv-gone')).toEqual([]);

    // The redelivery finds the vault active again and resumes the same incident: the alert goes out.
    const before = lastSeq();
    const [outcome] = await deliver(event);
    expect(outcome).toMatchObject({ status: 'acted', kind: 'vaultDeleted' });
    expect(outcome!.results).toEqual(
      expect.arrayContaining([
        expect.objectContaining({ action: 'recover-vault', status: 'succeeded' }),
        expect.objectContaining({ action: 'enable-purge-protection', status: 'succeeded' }),
      ]),
    );
    expect(
      requestsSince(before).filter((r) => r.host === 'management.azure.com' && r.method !== 'GET'),
    ).toEqual([]);
    const alerts = primaries('kv-gone');
    expect(alerts).toHaveLength(1);
    expect(alerts[0]!.id).toBe(`${outcome!.incidentId}/primary`);
    expect(alerts[0]!.data.decision.code).toBe('vault-deleted');
    expect(alerts[0]!.data.title).toBe('Vault kv-gone deleted: recovered');
    expect(alerts[0]!.data.who).toMatchObject({
      known: true,
      oid: attacker.oid,
      appId: attacker.appId,
      ipAddress: ATTACKER_IP,
    });
    // The webhook had it from the first delivery, and gets no repeat.
    expect(hooks.filter((h) => h.id === alerts[0]!.id)).toHaveLength(1);

    // Once more: the same incident, finished.
    const [again] = await deliver(event);
    expect(again).toMatchObject({ status: 'duplicate', incidentId: outcome!.incidentId });
    expect(primaries('kv-gone')).toHaveLength(1);
  });

  it('alerts on a weakening vault write naming the caller, and not on a tag change', async () => {
    seedVault('kv-weak', { retentionDays: 90, publicNetworkAccess: 'Disabled' });
    // The baseline: the inventory knows the vault as it was before the writes.
    await rt.inventory.refresh();
    const arm = attackerArm();

    let after = armEventCount();
    await arm.vaults.update(RG, 'kv-weak', { tags: { owner: 'team-payments' } });
    const [tagOutcome] = await deliver(armEvent('Write', 'kv-weak', after));
    expect(tagOutcome).toMatchObject({ status: 'acted', kind: 'vaultWritten' });
    expect(tagOutcome!.decision?.code).toBe('vault-write-no-weakening');
    expect(topicAlerts('kv-weak')).toEqual([]);
    expect(hooks.filter((h) => JSON.stringify(h.body.details).includes('kv-weak'))).toEqual([]);

    after = armEventCount();
    await arm.vaults.update(RG, 'kv-weak', {
      properties: { softDeleteRetentionInDays: 7, publicNetworkAccess: 'Enabled' },
    });
    const [weakOutcome] = await deliver(armEvent('Write', 'kv-weak', after));
    expect(weakOutcome!.decision?.code).toBe('vault-weakened');
    let alerts = primaries('kv-weak');
    expect(alerts).toHaveLength(1);
    expect(alerts[0]!.data.severity).toBe('warning');
    expect(alerts[0]!.data.who).toMatchObject({ known: true, oid: attacker.oid, ipAddress: ATTACKER_IP });
    expect(alerts[0]!.data.decision.reason).toContain('retention lowered from 90 to 7 days');
    expect(alerts[0]!.data.decision.reason).toContain('public network access enabled');
    expect(hooks.filter((h) => h.id === alerts[0]!.id)).toHaveLength(1);

    // The RBAC model switched (to access policies): a weakening of its own.
    after = armEventCount();
    await arm.vaults.update(RG, 'kv-weak', { properties: { enableRbacAuthorization: false } });
    const [switchOutcome] = await deliver(armEvent('Write', 'kv-weak', after));
    expect(switchOutcome!.decision?.code).toBe('vault-weakened');
    alerts = primaries('kv-weak');
    expect(alerts).toHaveLength(2);
    const rbac = alerts.find((a) => a.data.decision.reason.includes('permission model switched'));
    expect(rbac?.data.who.oid).toBe(attacker.oid);
  });

  it('alerts on an access-policy change from the Key Vault system topic', async () => {
    seedVault('kv-policy', {
      permissionModel: 'accessPolicy',
      accessPolicies: [{ objectId: env.identity.oid, keys: ['get', 'list', 'recover'] }],
    });
    await rt.inventory.refresh();
    // The attacker grants itself every key permission through ARM ...
    const arm = attackerArm();
    const vault = await arm.vaults.get(RG, 'kv-policy');
    const after = armEventCount();
    await arm.vaults.update(RG, 'kv-policy', {
      properties: {
        accessPolicies: [
          ...(vault.properties.accessPolicies ?? []),
          {
            tenantId: env.h.emulator.tenantId,
            objectId: attacker.oid,
            permissions: { keys: ['all'] },
          },
        ],
      },
    });
    // ... which ARM reports as a vault write (not a weakening kvguard compares) ...
    const [writeOutcome] = await deliver(armEvent('Write', 'kv-policy', after));
    expect(writeOutcome!.decision?.code).toBe('vault-write-no-weakening');

    // ... and the vault's system topic as VaultAccessPolicyChanged (PascalCase data, no caller).
    env.h.emulator.eventGrid.createSystemTopic({
      name: 'kv-policy-events',
      source: vaultId('kv-policy'),
      topicType: 'Microsoft.KeyVault.vaults',
    });
    const [stored] = env.h.emulator.eventGrid.publishSystem('kv-policy-events', [
      {
        eventType: 'Microsoft.KeyVault.VaultAccessPolicyChanged',
        subject: 'kv-policy',
        data: {
          Id: 'https://kv-policy.vault.azure.net',
          VaultName: 'kv-policy',
          ObjectType: 'Vault',
          ObjectName: 'kv-policy',
          Version: null,
          NBF: null,
          EXP: null,
        },
        dataVersion: '1',
      },
    ]);
    const [outcome] = await deliver(stored!.event);
    expect(outcome).toMatchObject({ status: 'acted', kind: 'accessPolicyChanged' });
    const alerts = primaries('kv-policy');
    expect(alerts).toHaveLength(1);
    const alert = alerts[0]!.data;
    expect(alert.decision.code).toBe('access-policy-changed');
    expect(alert.severity).toBe('warning');
    expect(hooks.filter((h) => h.id === alerts[0]!.id)).toHaveLength(1);
    // The event carries no caller, and kvguard does not look it up: the alert must not invent one,
    // and must send the reader to the activity log instead.
    if (alert.who.known) {
      expect(alert.who.oid).toBe(attacker.oid);
    } else {
      expect(alert.who.oid).toBeUndefined();
      expect(alert.humanActions.join(' ')).toContain('activity log');
    }

    // Redelivered: the same incident (keyed by the event id), no second alert.
    const [again] = await deliver(stored!.event);
    expect(again!.status).toBe('duplicate');
    expect(primaries('kv-policy')).toHaveLength(1);
  });
});

describe('an access-policy change made through ARM (accessPolicies/add)', () => {
  /**
   * The attacker grants itself every key permission with `vaults.updateAccessPolicy`: ARM raises
   * ResourceWriteSuccess for Microsoft.KeyVault/vaults/accessPolicies/write with the caller's claims,
   * and Key Vault raises VaultAccessPolicyChanged (no caller) on the vault's system topic. Answers the
   * two events of the change, as published.
   */
  async function grantThroughArm(vault: string): Promise<{
    arm: Record<string, unknown>;
    keyVault: Record<string, unknown>;
  }> {
    seedVault(vault, {
      permissionModel: 'accessPolicy',
      accessPolicies: [{ objectId: env.identity.oid, keys: ['get', 'list', 'recover'] }],
    });
    env.h.emulator.eventGrid.createSystemTopic({
      name: `${vault}-events`,
      source: vaultId(vault),
      topicType: 'Microsoft.KeyVault.vaults',
    });
    await rt.inventory.refresh();
    const after = armEventCount();
    const answer = await attackerArm().vaults.updateAccessPolicy(RG, vault, 'add', {
      properties: {
        accessPolicies: [
          { tenantId: env.h.emulator.tenantId, objectId: attacker.oid, permissions: { keys: ['all'] } },
        ],
      },
    });
    expect(answer.properties.accessPolicies.map((p) => p.objectId)).toEqual([attacker.oid]);
    expect(env.h.emulator.core.vaults.get(vault)!.accessPolicies.map((p) => p.objectId)).toEqual([
      env.identity.oid,
      attacker.oid,
    ]);
    const armEvents = env.h.emulator.eventGrid
      .events(SUBSCRIPTION_SYSTEM_TOPIC)
      .slice(after)
      .map((e) => e.event)
      .filter(
        (e) =>
          (e.data as { operationName?: string }).operationName ===
            'Microsoft.KeyVault/vaults/accessPolicies/write' &&
          String(e.subject).toLowerCase().startsWith(vaultId(vault).toLowerCase()),
      );
    expect(armEvents).toHaveLength(1);
    const keyVaultEvents = env.h.emulator.eventGrid.events(`${vault}-events`).map((e) => e.event);
    expect(keyVaultEvents).toHaveLength(1);
    expect(keyVaultEvents[0]).toMatchObject({
      eventType: 'Microsoft.KeyVault.VaultAccessPolicyChanged',
      topic: vaultId(vault),
      data: { VaultName: vault, ObjectType: 'Vault', Id: `https://${vault}.vault.azure.net` },
    });
    return { arm: armEvents[0]!, keyVault: keyVaultEvents[0]! };
  }

  /** The event as delivered a few seconds after the other one (Azure publishes them apart). */
  function later(event: Record<string, unknown>, ms: number): Record<string, unknown> {
    return { ...event, eventTime: new Date(Date.parse(String(event.eventTime)) + ms).toISOString() };
  }

  it('the Key Vault event first: one primary that promises nothing it cannot keep, then one follow-up naming the caller', async () => {
    const { arm, keyVault } = await grantThroughArm('kv-policy-kvfirst');
    const armLater = later(arm, 3_000);

    const [first] = await deliver(keyVault);
    expect(first).toMatchObject({ status: 'acted', kind: 'accessPolicyChanged' });
    const [primary] = primaries('kv-policy-kvfirst');
    expect(primary!.data.who.known).toBe(false);
    expect(primary!.data.who.summary).not.toContain('still being identified');
    expect(primary!.data.humanActions.join(' ')).toContain('activity log');

    const [second] = await deliver(armLater);
    expect(second).toMatchObject({ status: 'attributed', incidentId: first!.incidentId });
    const followUps = topicAlerts('kv-policy-kvfirst').filter((a) => a.id.endsWith('/attribution'));
    expect(followUps).toHaveLength(1);
    expect(followUps[0]!.id).toBe(`${first!.incidentId}/attribution`);
    expect(followUps[0]!.data.title).toMatch(/^Access policy of vault kv-policy-kvfirst: changed by /);
    expect(followUps[0]!.data.title).toContain(attacker.appId!);
    expect(followUps[0]!.data.who).toMatchObject({
      known: true,
      oid: attacker.oid,
      appId: attacker.appId,
      ipAddress: ATTACKER_IP,
    });

    // Redeliveries of either event: the same incident, nothing more sent.
    for (const event of [keyVault, armLater, keyVault]) {
      const [again] = await deliver(event);
      expect(again).toMatchObject({ status: 'duplicate', incidentId: first!.incidentId });
    }
    expect(topicAlerts('kv-policy-kvfirst').map((a) => a.id)).toEqual([
      `${first!.incidentId}/primary`,
      `${first!.incidentId}/attribution`,
    ]);
    expect(hooks.filter((h) => h.id.startsWith(`${first!.incidentId}/`)).map((h) => h.id)).toEqual([
      `${first!.incidentId}/primary`,
      `${first!.incidentId}/attribution`,
    ]);
  });

  it('ARM’s event first: the primary names the caller, and the Key Vault event is a duplicate', async () => {
    const { arm, keyVault } = await grantThroughArm('kv-policy-armfirst');
    const [first] = await deliver(arm);
    expect(first).toMatchObject({ status: 'acted', kind: 'accessPolicyChanged' });
    const alerts = primaries('kv-policy-armfirst');
    expect(alerts).toHaveLength(1);
    expect(alerts[0]!.data.decision.code).toBe('access-policy-changed');
    expect(alerts[0]!.data.who).toMatchObject({ known: true, oid: attacker.oid, ipAddress: ATTACKER_IP });
    expect(alerts[0]!.data.decision.reason).toContain(attacker.appId!);

    const [second] = await deliver(later(keyVault, 2_000));
    expect(second).toMatchObject({ status: 'duplicate', incidentId: first!.incidentId });
    const [again] = await deliver(arm);
    expect(again).toMatchObject({ status: 'duplicate', incidentId: first!.incidentId });
    expect(topicAlerts('kv-policy-armfirst').map((a) => a.id)).toEqual([`${first!.incidentId}/primary`]);
    expect(hooks.filter((h) => h.id.startsWith(`${first!.incidentId}/`))).toHaveLength(1);
  });
});

describe('observe mode', () => {
  it('decides and alerts but sends no write to the emulator', async () => {
    const observer = createRuntime(loadConfig({ ...env.settings, KVGUARD_MODE: 'observe' }), {
      processLog: target,
    });
    seedVault('kv-observe');
    seedVault('kv-observe-gone');
    await createAndDelete('kv-observe', 'k1');
    await observer.inventory.refresh();
    await forwardAll(observer);
    const signals = newSignals('kv-observe');
    expect(signals).toHaveLength(1);

    const armAfter = armEventCount();
    await attackerArm().vaults.delete(RG, 'kv-observe-gone');
    const vaultEvent = armEvent('Delete', 'kv-observe-gone', armAfter);

    const before = lastSeq();
    const [keyOutcome] = await deliver(signals[0], observer);
    markDelivered(signals[0]!);
    const [vaultOutcome] = await deliver(vaultEvent, observer);

    // The request log: kvguard read, and wrote nothing (Key Vault or ARM).
    const after = requestsSince(before);
    expect(after.some((r) => r.host === 'kv-observe.vault.azure.net' && r.method === 'GET')).toBe(true);
    expect(
      after.filter((r) => r.host.endsWith('.vault.azure.net') && r.method !== 'GET').map((r) => r.path),
    ).toEqual([]);
    expect(
      after
        .filter((r) => r.host === 'management.azure.com' && r.method !== 'GET')
        .map((r) => `${r.method} ${r.path}`),
    ).toEqual([]);
    expect(env.h.emulator.core.vaults.get('kv-observe')!.deletedKeys.has('k1')).toBe(true);
    expect(env.h.emulator.core.vaults.get('kv-observe')!.enablePurgeProtection).toBe(false);
    expect(env.h.emulator.core.vaults.get('kv-observe-gone')!.deleted).toBeDefined();

    // The outcome and the alerts say what would have been done.
    expect(keyOutcome!.results).toEqual(
      expect.arrayContaining([
        expect.objectContaining({ action: 'recover-key', status: 'planned' }),
        expect.objectContaining({ action: 'enable-purge-protection', status: 'planned' }),
      ]),
    );
    expect(vaultOutcome!.results).toEqual(
      expect.arrayContaining([expect.objectContaining({ action: 'recover-vault', status: 'planned' })]),
    );
    const [keyAlert] = primaries('kv-observe');
    expect(keyAlert!.data.observeMode).toBe(true);
    expect(keyAlert!.data.title).toContain('would be recovered (observe mode)');
    expect(keyAlert!.data.outcome).toMatch(/^kvguard would recover the key: planned only/);
    expect(keyAlert!.data.humanActions.join(' ')).toContain(
      'az keyvault key recover --vault-name kv-observe --name k1',
    );
    expect(keyAlert!.data.who.oid).toBe(attacker.oid);
    const [vaultAlert] = primaries('kv-observe-gone');
    expect(vaultAlert!.data.observeMode).toBe(true);
    expect(vaultAlert!.data.humanActions.join(' ')).toContain('az keyvault recover --name kv-observe-gone');
  });
});

describe('recovery outcomes', () => {
  it('gives a critical alert and no crash for a key purged before kvguard ran', async () => {
    seedVault('kv-purged');
    await createAndDelete('kv-purged', 'k1');
    await attackerKeys('kv-purged').purgeDeletedKey('k1');
    await rt.inventory.refresh();
    await forwardAll();
    const signals = newSignals('kv-purged');
    expect(signals.map((s) => s.type).sort()).toEqual([
      'Kvguard.KeyVault.KeyDeleted.v1',
      'Kvguard.KeyVault.KeyPurged.v1',
    ]);
    const deletedSignal = signals.find((s) => s.type === 'Kvguard.KeyVault.KeyDeleted.v1')!;
    const purgedSignal = signals.find((s) => s.type === 'Kvguard.KeyVault.KeyPurged.v1')!;
    const before = lastSeq();

    // The purge record: a critical alert at once, and purge protection for the vault.
    const [purged] = await deliver(purgedSignal);
    markDelivered(purgedSignal);
    expect(purged).toMatchObject({ status: 'acted', kind: 'keyPurged' });
    expect(purged!.decision).toMatchObject({ code: 'key-purged', severity: 'critical' });
    let alerts = primaries('kv-purged');
    expect(alerts).toHaveLength(1);
    expect(alerts[0]!.data.severity).toBe('critical');
    expect(alerts[0]!.data.who.oid).toBe(attacker.oid);
    expect(env.h.emulator.core.vaults.get('kv-purged')!.enablePurgeProtection).toBe(true);

    // The deletion record, moments after the deletion: the key is neither deleted nor active, which
    // this soon may still be the delete completing, so the delivery is retried (not a crash).
    await expect(deliver(deletedSignal)).rejects.toBeInstanceOf(RetryableError);

    // Event Grid redelivers it a minute later: now it is a purge, not a pending delete.
    const later = createRuntime(env.config, {
      processLog: target,
      clock: { now: () => new Date(Date.now() + 61_000), sleep: (ms) => systemClock.sleep(ms) },
    });
    // It joins the purge's incident (one critical incident per purged key), rather than open a
    // second "not recoverable" one: no second primary alert.
    const [gone] = await deliver(deletedSignal, later);
    markDelivered(deletedSignal);
    expect(gone).toMatchObject({ status: 'duplicate', incidentId: purged!.incidentId });
    expect(gone!.decision).toMatchObject({ code: 'key-purged', severity: 'critical' });
    alerts = primaries('kv-purged');
    expect(alerts).toHaveLength(1);
    expect(alerts.every((a) => a.data.severity === 'critical')).toBe(true);
    expect(hooks.filter((h) => h.id.startsWith(`${purged!.incidentId}/`))).toHaveLength(1);
    expect(requestsSince(before).filter((r) => r.path.endsWith('/recover'))).toEqual([]);
  }, 30_000);

  it('gives one critical incident for a purged key when the deletion record comes first', async () => {
    seedVault('kv-purged-2');
    await createAndDelete('kv-purged-2', 'k1');
    await attackerKeys('kv-purged-2').purgeDeletedKey('k1');
    await rt.inventory.refresh();
    await forwardAll();
    const signals = newSignals('kv-purged-2');
    const deletedSignal = signals.find((s) => s.type === 'Kvguard.KeyVault.KeyDeleted.v1')!;
    const purgedSignal = signals.find((s) => s.type === 'Kvguard.KeyVault.KeyPurged.v1')!;
    // The deletion record, delivered once the deletion has settled: the key is gone, not recoverable.
    const later = createRuntime(env.config, {
      processLog: target,
      clock: { now: () => new Date(Date.now() + 61_000), sleep: (ms) => systemClock.sleep(ms) },
    });
    const [gone] = await deliver(deletedSignal, later);
    markDelivered(deletedSignal);
    expect(gone).toMatchObject({ status: 'acted', kind: 'keyDeleted' });
    expect(gone!.decision).toMatchObject({ code: 'key-not-recoverable', severity: 'critical' });
    // The purge record joins that incident, now and on redelivery.
    for (let i = 0; i < 2; i++) {
      const [purged] = await deliver(purgedSignal, later);
      expect(purged).toMatchObject({ status: 'duplicate', incidentId: gone!.incidentId });
    }
    markDelivered(purgedSignal);
    const alerts = primaries('kv-purged-2');
    expect(alerts).toHaveLength(1);
    expect(alerts[0]!.data).toMatchObject({ severity: 'critical', who: { oid: attacker.oid } });
    expect(hooks.filter((h) => h.id.startsWith(`${gone!.incidentId}/`))).toHaveLength(1);
  }, 30_000);

  it('names the missing permission when recover is forbidden (403)', async () => {
    // An access-policy vault where kvguard may read keys but not recover them.
    seedVault('kv-norecover', {
      permissionModel: 'accessPolicy',
      accessPolicies: [
        { objectId: env.identity.oid, keys: ['get', 'list'] },
        { objectId: attacker.oid, keys: ['all'] },
      ],
    });
    await createAndDelete('kv-norecover', 'k1');
    await rt.inventory.refresh();
    await forwardAll();
    const [signal] = newSignals('kv-norecover');
    const before = lastSeq();
    const [outcome] = await deliver(signal);
    markDelivered(signal!);

    expect(outcome!.status).toBe('acted');
    const recover = outcome!.results!.find((r) => r.action === 'recover-key');
    expect(recover).toMatchObject({ status: 'forbidden' });
    expect(recover!.requiredPermission).toContain('recover');
    const posts = requestsSince(before).filter(
      (r) => r.method === 'POST' && r.path === '/deletedkeys/k1/recover',
    );
    expect(posts.map((r) => r.status)).toEqual([403]);
    expect(env.h.emulator.core.vaults.get('kv-norecover')!.deletedKeys.has('k1')).toBe(true);

    const alerts = primaries('kv-norecover');
    expect(alerts).toHaveLength(1);
    const alert = alerts[0]!.data;
    expect(alert.severity).toBe('critical');
    expect(alert.title).toContain('recovery forbidden');
    expect(alert.humanActions.join(' ')).toContain(
      "Grant kvguard's identity keys recover (access policy) or Microsoft.KeyVault/vaults/keys/recover/action (RBAC) on vault kv-norecover",
    );
    expect(alert.who.oid).toBe(attacker.oid);
  });

  it('retries a recover answered 429 with Retry-After, recovers the key and alerts once', async () => {
    seedVault('kv-throttle');
    await createAndDelete('kv-throttle', 'k1');
    await rt.inventory.refresh();
    await forwardAll();
    const [signal] = newSignals('kv-throttle');
    env.h.emulator.faults.add({
      kind: 'throttle',
      host: 'kv-throttle.vault.azure.net',
      path: '/recover$',
      count: 1,
      retryAfterMs: 50,
    });
    const before = lastSeq();
    const [outcome] = await deliver(signal);
    markDelivered(signal!);

    const posts = requestsSince(before).filter(
      (r) => r.method === 'POST' && r.path === '/deletedkeys/k1/recover',
    );
    expect(posts.map((r) => [r.status, r.outcome])).toEqual([
      [429, 'fault'],
      [200, 'served'],
    ]);
    expect(outcome!.status).toBe('acted');
    expect(outcome!.results).toEqual(
      expect.arrayContaining([expect.objectContaining({ action: 'recover-key', status: 'succeeded' })]),
    );
    expect(env.h.emulator.core.vaults.get('kv-throttle')!.keys.has('k1')).toBe(true);
    const alerts = primaries('kv-throttle');
    expect(alerts).toHaveLength(1);
    expect(alerts[0]!.data.title).toContain('recovered');
    expect(hooks.filter((h) => h.id === alerts[0]!.id)).toHaveLength(1);
  });
});

describe('the monitor alert without dimensions', () => {
  it('finds the deletion and caller with its own query and reaches the incident the Event Grid signal reaches', async () => {
    seedVault('kv-nodim');
    await rt.inventory.refresh();
    // Keep other tests' deletions out of the alert window.
    await sleep(300);
    await createAndDelete('kv-nodim', 'k1');
    const deletedAt = Date.parse(keyDeleteRecord('kv-nodim', 'k1').time);
    const payload = {
      schemaId: 'azureMonitorCommonAlertSchema',
      data: {
        essentials: {
          alertId: `/subscriptions/${env.h.emulator.subscriptionId}/providers/Microsoft.AlertsManagement/alerts/2c7d0b2f-0000-4000-8000-000000000002`,
          alertRule: 'kvguard-key-deleted',
          severity: 'Sev1',
          signalType: 'Log',
          monitorCondition: 'Fired',
          monitoringService: 'Log Alerts V2',
          alertTargetIDs: [env.workspaceResourceId.toLowerCase()],
          firedDateTime: new Date().toISOString(),
          essentialsVersion: '1.0',
          alertContextVersion: '1.0',
        },
        alertContext: {
          conditionType: 'LogQueryCriteria',
          condition: {
            windowSize: 'PT5M',
            windowStartTime: new Date(deletedAt - 250).toISOString(),
            windowEndTime: new Date(deletedAt + 250).toISOString(),
            allOf: [
              {
                searchQuery: 'AZKVAuditLogs | where OperationName == "KeyDelete"',
                metricMeasureColumn: null,
                targetResourceTypes: "['Microsoft.OperationalInsights/workspaces']",
                operator: 'GreaterThan',
                threshold: '0',
                timeAggregation: 'Count',
                dimensions: [],
                metricValue: 1,
                failingPeriods: { numberOfEvaluationPeriods: 1, minFailingPeriodsToAlert: 1 },
                linkToSearchResultsAPI: 'https://evil.test/steal',
              },
            ],
          },
        },
      },
    };
    const before = lastSeq();
    const answer = await handleMonitorAlert(rt, JSON.stringify(payload), inv());
    expect(answer.status).toBe(200);
    const viaAlert = (answer.body as { items: ItemResult[] }).items.flatMap((i) => i.outcomes ?? []);
    expect(viaAlert).toHaveLength(1);
    expect(viaAlert[0]).toMatchObject({ status: 'acted', vault: 'kv-nodim', key: 'k1' });
    expect(viaAlert[0]!.decision?.code).toBe('caller-not-allow-listed');
    expect(env.h.emulator.core.vaults.get('kv-nodim')!.keys.has('k1')).toBe(true);
    // kvguard's own query of the configured workspace, and no request anywhere the payload pointed.
    const sent = requestsSince(before);
    expect(sent.some((r) => r.host === 'api.loganalytics.io' && r.path.includes(env.workspaceId))).toBe(true);
    expect(sent.filter((r) => r.host.includes('evil'))).toEqual([]);
    const alerts = primaries('kv-nodim');
    expect(alerts).toHaveLength(1);
    expect(alerts[0]!.data.who).toMatchObject({ known: true, oid: attacker.oid, ipAddress: ATTACKER_IP });

    // The Event Grid path for the same deletion: the same incident, already handled.
    await forwardAll();
    const [signal] = newSignals('kv-nodim');
    const [viaEventGrid] = await deliver(signal);
    markDelivered(signal!);
    expect(viaEventGrid).toMatchObject({
      status: 'duplicate',
      incidentId: viaAlert[0]!.incidentId,
      decision: { code: 'caller-not-allow-listed' },
    });
    expect(primaries('kv-nodim')).toHaveLength(1);
    const recovers = requestsSince(before).filter(
      (r) => r.method === 'POST' && r.host === 'kv-nodim.vault.azure.net' && r.path.endsWith('/recover'),
    );
    expect(recovers).toHaveLength(1);
  });
});

describe('a signal ahead of its deletion', () => {
  it('is redelivered until the deletion has completed, then recovered', async () => {
    seedVault('kv-lag');
    const client = attackerKeys('kv-lag');
    await client.createKey('k1', 'RSA');
    await rt.inventory.refresh();
    // The delete is accepted now and completes 2.5 s later (GET /deletedkeys/k1 answers 404 until then).
    env.h.emulator.core.timing.completionLagMs = 2500;
    await client.beginDeleteKey('k1');
    const deletedAt = Date.now();
    await forwardAll();
    const [signal] = newSignals('kv-lag');

    await expect(deliver(signal)).rejects.toBeInstanceOf(RetryableError);
    expect(primaries('kv-lag')).toEqual([]);

    await sleep(Math.max(0, deletedAt + 2600 - Date.now()));
    const [outcome] = await deliver(signal);
    markDelivered(signal!);
    expect(outcome!.status).toBe('acted');
    expect(outcome!.results).toEqual(
      expect.arrayContaining([expect.objectContaining({ action: 'recover-key', status: 'succeeded' })]),
    );
    expect(env.h.emulator.core.vaults.get('kv-lag')!.keys.has('k1')).toBe(true);
    expect(primaries('kv-lag')).toHaveLength(1);
  }, 20_000);
});
