/**
 * The responder end to end, with the real Azure SDK clients against the emulated Azure and Azurite:
 * an attacker deletes keys through a real KeyClient; the vault's AuditEvent records go through the
 * forwarder to the signals topic; each published event reaches the responder as Event Grid would
 * deliver it; the keys come back, purge protection is on, and each sink gets one alert per key.
 */
import { createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import { ClientSecretCredential } from '@azure/identity';
import { KeyClient } from '@azure/keyvault-keys';
import { forwardAuditRecords, handleMonitorAlert, handleReplay, respondToEvent } from '../../lib/entrypoints';
import type { AlertContent } from '../../lib/core/model';
import { createRuntime, type Runtime } from '../../lib/runtime';
import { ensureCertificateAuthority } from '../emulator/ca';
import { startKvguardEnv, type KvguardEnv } from '../emulator/kvguard-env';
import type { AuditRecord, Principal } from '../emulator/types';
import { captureLogs } from '../support/logs';

let env: KvguardEnv;
let rt: Runtime;
let attacker: Principal;
let webhook: Server;
const webhookHits: Array<{ id: string; body: Record<string, unknown> }> = [];
const auditBatches: AuditRecord[][] = [];

const { target, inv } = captureLogs('inv');

beforeAll(async () => {
  const leaf = ensureCertificateAuthority().leafFor(['127.0.0.1']);
  webhook = createServer({ cert: leaf.cert, key: leaf.key }, (req, res) => {
    let body = '';
    req.on('data', (c: Buffer) => (body += c.toString()));
    req.on('end', () => {
      webhookHits.push({
        id: String(req.headers['x-kvguard-alert-id']),
        body: JSON.parse(body) as Record<string, unknown>,
      });
      res.writeHead(200).end('ok');
    });
  });
  await new Promise<void>((r) => webhook.listen(0, '127.0.0.1', r));
  const port = (webhook.address() as AddressInfo).port;
  env = await startKvguardEnv({
    settings: {
      KVGUARD_WEBHOOK_URL: `https://127.0.0.1:${port}/hook`,
      KVGUARD_WEBHOOK_SECRET: 'k'.repeat(40),
      KVGUARD_ALLOWED_PRINCIPALS: '0f0f0f0f-1111-4222-8333-444444444444',
      KVGUARD_EXCLUDED_VAULTS: 'kv-excluded',
    },
  });
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
  env.h.emulator.onAudit((records) => auditBatches.push(records));
});
afterAll(async () => {
  await env.stop();
  await new Promise<void>((r) => webhook.close(() => r()));
});

function seedVault(name: string, purgeProtection = false) {
  env.h.emulator.addVault({
    name,
    resourceGroup: 'rg-app',
    location: 'westeurope',
    permissionModel: 'rbac',
    purgeProtection,
    retentionDays: 7,
  });
}

function attackerClient(vault: string) {
  return new KeyClient(
    `https://${vault}.vault.azure.net`,
    new ClientSecretCredential(env.h.emulator.tenantId, attacker.appId!, 'attacker-secret'),
  );
}

/** Forwards every audit batch so far (as the Event Hub trigger would), then delivers each new signal. */
async function flowSignals(): Promise<void> {
  await new Promise((r) => setTimeout(r, 40)); // the emulator batches audit records for 20 ms
  const batches = auditBatches.splice(0);
  for (const batch of batches) {
    const result = await forwardAuditRecords(rt, [{ records: batch }], inv());
    expect(result.rejected).toEqual([]);
  }
  const delivered = new Set<string>();
  for (const ev of env.h.emulator.eventGrid.events('kvguard-signals')) {
    if (delivered.has(ev.event.id as string)) continue;
    delivered.add(ev.event.id as string);
    await respondToEvent(rt, ev.event, inv());
  }
}

/** The alerts the kvguard-alerts topic received: CloudEvents whose data is the alert payload v1. */
function alertsOnTopic() {
  return env.h.emulator.eventGrid.events('kvguard-alerts').map((e) => {
    const event = e.event as { id: string; data: { details: AlertContent } };
    return { id: event.id, data: event.data.details };
  });
}

describe('key deletions', () => {
  it('recovers 3 keys deleted by an attacker in 2 vaults, enables purge protection, alerts once per key per sink', async () => {
    seedVault('kv-app-one');
    seedVault('kv-app-two');
    for (const [vault, key] of [
      ['kv-app-one', 'payments'],
      ['kv-app-one', 'orders'],
      ['kv-app-two', 'signing'],
    ] as const) {
      const client = attackerClient(vault);
      await client.createKey(key, 'RSA');
      await (await client.beginDeleteKey(key, { intervalInMs: 10 })).pollUntilDone();
    }
    await rt.inventory.refresh();
    await flowSignals();

    for (const [vault, key] of [
      ['kv-app-one', 'payments'],
      ['kv-app-one', 'orders'],
      ['kv-app-two', 'signing'],
    ] as const) {
      const v = env.h.emulator.core.vaults.get(vault)!;
      expect(v.keys.has(key)).toBe(true);
      expect(v.deletedKeys.has(key)).toBe(false);
      expect(v.enablePurgeProtection).toBe(true);
      const primaries = alertsOnTopic().filter(
        (a) => a.id.endsWith('/primary') && a.data.what?.keyName === key,
      );
      expect(primaries).toHaveLength(1);
      const alert = primaries[0]!.data;
      expect(alert.who).toMatchObject({
        known: true,
        appId: attacker.appId,
        oid: attacker.oid,
        ipAddress: '203.0.113.66',
      });
      expect(alert.who.userAgent).toContain('azsdk-js-keyvault-keys');
      expect(JSON.stringify(alert.actions)).toContain('recover-key');
      const hooks = webhookHits.filter((h) => h.id === primaries[0]!.id);
      expect(hooks).toHaveLength(1);
    }
  });

  it('gives one recovery and one primary alert when the same signal arrives 10 times, concurrently and later', async () => {
    seedVault('kv-dup');
    const client = attackerClient('kv-dup');
    await client.createKey('k1', 'RSA');
    await (await client.beginDeleteKey('k1', { intervalInMs: 10 })).pollUntilDone();
    await rt.inventory.refresh();
    await new Promise((r) => setTimeout(r, 40));
    const batches = auditBatches.splice(0);
    for (const batch of batches) await forwardAuditRecords(rt, [{ records: batch }], inv());
    const signal = env.h.emulator.eventGrid
      .events('kvguard-signals')
      .map((e) => e.event)
      .find(
        (e) =>
          (e as { subject?: string }).subject === '/keys/k1' &&
          String((e as { source?: string }).source).endsWith('/kv-dup'),
      )!;
    const before = env.h.emulator.requests.length;
    await Promise.allSettled(Array.from({ length: 5 }, () => respondToEvent(rt, signal, inv())));
    for (let i = 0; i < 5; i++) await respondToEvent(rt, signal, inv()).catch(() => undefined);
    const recovers = env.h.emulator.requests
      .slice(before)
      .filter(
        (r) =>
          r.method === 'POST' && r.host === 'kv-dup.vault.azure.net' && r.path === '/deletedkeys/k1/recover',
      );
    expect(recovers).toHaveLength(1);
    expect(env.h.emulator.core.vaults.get('kv-dup')!.keys.has('k1')).toBe(true);
    const primaries = alertsOnTopic().filter(
      (a) => a.id.endsWith('/primary') && a.data.what?.vaultName === 'kv-dup',
    );
    expect(primaries).toHaveLength(1);
  });

  it('leaves a deletion by an allow-listed principal deleted, with an informational alert', async () => {
    seedVault('kv-rotation');
    const pipelineSp = env.h.emulator.addPrincipal({
      kind: 'servicePrincipal',
      oid: '0f0f0f0f-1111-4222-8333-444444444444',
      displayName: 'rotation-pipeline',
      secret: 'rotation-secret',
      roleAssignments: [
        { scope: `/subscriptions/${env.h.emulator.subscriptionId}`, roleName: 'Key Vault Crypto Officer' },
      ],
    });
    const client = new KeyClient(
      'https://kv-rotation.vault.azure.net',
      new ClientSecretCredential(env.h.emulator.tenantId, pipelineSp.appId!, 'rotation-secret'),
    );
    await client.createKey('old', 'RSA');
    await (await client.beginDeleteKey('old', { intervalInMs: 10 })).pollUntilDone();
    await rt.inventory.refresh();
    await flowSignals();
    const v = env.h.emulator.core.vaults.get('kv-rotation')!;
    expect(v.deletedKeys.has('old')).toBe(true);
    const alert = alertsOnTopic().find((a) => a.data.what?.vaultName === 'kv-rotation');
    expect(alert?.data.severity).toBe('informational');
    expect(alert?.data.decision.code).toBe('allow-listed-caller');
  });

  it('leaves an excluded vault alone', async () => {
    seedVault('kv-excluded');
    const client = attackerClient('kv-excluded');
    await client.createKey('k1', 'RSA');
    await (await client.beginDeleteKey('k1', { intervalInMs: 10 })).pollUntilDone();
    await rt.inventory.refresh();
    const before = env.h.emulator.requests.length;
    await flowSignals();
    expect(env.h.emulator.core.vaults.get('kv-excluded')!.deletedKeys.has('k1')).toBe(true);
    const kvguardCalls = env.h.emulator.requests
      .slice(before)
      .filter((r) => r.host === 'kv-excluded.vault.azure.net' && r.callerOid === env.identity.oid);
    expect(kvguardCalls).toEqual([]);
  });

  it('turns a refused delete (403) into a KeyDeleteDenied alert and no recovery', async () => {
    seedVault('kv-denied');
    const weak = env.h.emulator.addPrincipal({
      kind: 'servicePrincipal',
      displayName: 'weak-app',
      secret: 'weak-secret',
    });
    env.h.emulator.core.roleAssignments.push({
      id: 'ra-weak',
      principalId: weak.oid,
      scope: '/subscriptions/x',
      roleName: 'Reader',
    });
    const owner = attackerClient('kv-denied');
    await owner.createKey('k1', 'RSA');
    const client = new KeyClient(
      'https://kv-denied.vault.azure.net',
      new ClientSecretCredential(env.h.emulator.tenantId, weak.appId!, 'weak-secret'),
    );
    await expect(client.beginDeleteKey('k1')).rejects.toMatchObject({ statusCode: 403 });
    await rt.inventory.refresh();
    const before = env.h.emulator.requests.length;
    await flowSignals();
    const alert = alertsOnTopic().find((a) => a.data.what?.vaultName === 'kv-denied');
    expect(alert?.data.decision.code).toBe('delete-denied');
    expect(alert?.data.who.oid).toBe(weak.oid);
    const recovers = env.h.emulator.requests.slice(before).filter((r) => r.path.endsWith('/recover'));
    expect(recovers).toEqual([]);
  });
});

describe('replay and the monitor alert', () => {
  it('dryRun plans a recovery and sends no write to the emulator', async () => {
    seedVault('kv-dry');
    const client = attackerClient('kv-dry');
    await client.createKey('k1', 'RSA');
    await (await client.beginDeleteKey('k1', { intervalInMs: 10 })).pollUntilDone();
    await rt.inventory.refresh();
    await new Promise((r) => setTimeout(r, 40));
    const record = env.h.emulator.audit.find(
      (r) => r.operationName === 'KeyDelete' && r.resourceId.endsWith('/KV-DRY'),
    )!;
    auditBatches.splice(0);
    const before = env.h.emulator.requests.length;
    const answer = await handleReplay(
      rt,
      { text: JSON.stringify({ records: [record] }), dryRun: true },
      inv(),
    );
    expect(answer.status).toBe(200);
    const body = answer.body as {
      inputs: Array<{ items: Array<{ outcomes: Array<{ status: string; results: unknown[] }> }> }>;
    };
    const outcome = body.inputs[0]!.items[0]!.outcomes[0]!;
    expect(outcome.status).toBe('planned');
    expect(outcome.results).toEqual(
      expect.arrayContaining([expect.objectContaining({ action: 'recover-key', status: 'planned' })]),
    );
    const writes = env.h.emulator.requests
      .slice(before)
      .filter((r) => r.method !== 'GET' && r.host !== 'login.microsoftonline.com');
    expect(writes).toEqual([]);
    expect(env.h.emulator.core.vaults.get('kv-dry')!.deletedKeys.has('k1')).toBe(true);
  });

  it('answers 400 with a reason for a body that is not JSON', async () => {
    const answer = await handleReplay(rt, { text: '{not json', dryRun: false }, inv());
    expect(answer.status).toBe(400);
    expect(JSON.stringify(answer.body)).toContain('not JSON');
  });

  it('rejects look-alike hosts without a request or a token for them', async () => {
    const before = env.h.emulator.requests.length;
    const record = {
      time: new Date().toISOString(),
      resourceId: '/SUBSCRIPTIONS/X/RESOURCEGROUPS/Y/PROVIDERS/MICROSOFT.KEYVAULT/VAULTS/KV',
      operationName: 'KeyDelete',
      category: 'AuditEvent',
      resultType: 'Success',
      identity: { claim: { oid: attacker.oid } },
      properties: {
        id: 'https://kv.vault.azure.net.evil.test/keys/x',
        requestUri: 'https://evil.test/keys/x',
        httpStatusCode: 200,
      },
    };
    const answer = await handleReplay(rt, { text: JSON.stringify(record), dryRun: false }, inv());
    expect(answer.status).toBe(200);
    expect(JSON.stringify(answer.body)).toMatch(/rejection|out-of-scope/);
    const after = env.h.emulator.requests.slice(before);
    expect(after.filter((r) => r.host.includes('evil'))).toEqual([]);
  });

  it('reaches the same incident through monitorAlert with dimensions', async () => {
    seedVault('kv-monitor');
    const client = attackerClient('kv-monitor');
    await client.createKey('k1', 'RSA');
    await (await client.beginDeleteKey('k1', { intervalInMs: 10 })).pollUntilDone();
    await rt.inventory.refresh();
    auditBatches.splice(0);
    const deletedAt = env.h.emulator.audit.find(
      (r) => r.operationName === 'KeyDelete' && r.resourceId.endsWith('/KV-MONITOR'),
    )!.time;
    const payload = {
      schemaId: 'azureMonitorCommonAlertSchema',
      data: {
        essentials: {
          alertId: `/subscriptions/${env.h.emulator.subscriptionId}/providers/Microsoft.AlertsManagement/alerts/1b6c9a1e-0000-4000-8000-000000000001`,
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
            windowStartTime: new Date(Date.now() - 300_000).toISOString(),
            windowEndTime: new Date().toISOString(),
            allOf: [
              {
                searchQuery: 'AZKVAuditLogs',
                dimensions: [
                  { name: 'Id', value: 'https://kv-monitor.vault.azure.net/keys/k1' },
                  { name: 'TimeGenerated', value: deletedAt },
                  { name: 'CallerObjectId', value: attacker.oid },
                  { name: 'CallerIpAddress', value: '203.0.113.66' },
                ],
                linkToSearchResultsAPI: 'https://evil.test/steal',
              },
            ],
          },
        },
      },
    };
    const before = env.h.emulator.requests.length;
    const answer = await handleMonitorAlert(rt, JSON.stringify(payload), inv());
    expect(answer.status).toBe(200);
    expect(env.h.emulator.core.vaults.get('kv-monitor')!.keys.has('k1')).toBe(true);
    expect(env.h.emulator.requests.slice(before).filter((r) => r.host.includes('evil'))).toEqual([]);
    const alert = alertsOnTopic().find((a) => a.data.what?.vaultName === 'kv-monitor');
    expect(alert?.data.who.oid).toBe(attacker.oid);
  });
});
