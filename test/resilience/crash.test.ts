/**
 * Resilience: the invocation dies (throws) at the two worst moments, with the real adapters against
 * the emulated Azure and Azurite, the crash injected by a wrapper around one port:
 * - between the recovery and the alert (the key is back, nobody has been told);
 * - after a sink accepted the alert but before the ledger recorded the delivery.
 * Event Grid delivers the event again (after its wait, by which time the dead invocation's lease has
 * expired). The redelivery must complete the incident, without a second recovery, and an alert that
 * goes out again must carry the same alert id, so that a receiver can drop the repeat.
 */
import { ClientSecretCredential } from '@azure/identity';
import { KeyClient } from '@azure/keyvault-keys';
import type { AlertContent } from '../../lib/core/model';
import { forwardAuditRecords, respondToEvent } from '../../lib/entrypoints';
import type { IncidentRecord } from '../../lib/pipeline';
import type { KeyVaultData, Ledger } from '../../lib/ports';
import { createRuntime, type Runtime } from '../../lib/runtime';
import { startKvguardEnv, type KvguardEnv } from '../emulator/kvguard-env';
import type { AuditRecord } from '../emulator/types';
import { findSecrets, invocation, LogCollector, OffsetClock, startWebhook, withPipeline } from './support';

const WEBHOOK_SECRET = 'crash-webhook-secret-0123456789abcdefghij';
const ATTACKER_SECRET = 'crash-attacker-secret-42';
/** Event Grid's wait before a redelivery (at least 10 s; longer than the dead invocation's lease). */
const REDELIVERY_WAIT_MS = 60_000;

let env: KvguardEnv;
let rt: Runtime;
let webhook: Awaited<ReturnType<typeof startWebhook>>;
const logs = new LogCollector();
const clock = new OffsetClock();
const audit: AuditRecord[] = [];
const signals = new Map<string, Record<string, unknown>>();

class Crash extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'Crash';
  }
}

beforeAll(async () => {
  webhook = await startWebhook();
  env = await startKvguardEnv({
    completionLagMs: 30,
    settings: {
      KVGUARD_RETRY_BASE_DELAY_MS: '2',
      KVGUARD_WEBHOOK_URL: webhook.url,
      KVGUARD_WEBHOOK_SECRET: WEBHOOK_SECRET,
      KVGUARD_LOG_LEVEL: 'debug',
    },
  });
  rt = createRuntime(env.config, { processLog: logs, clock });
  const e = env.h.emulator;
  const attacker = e.addPrincipal({
    kind: 'servicePrincipal',
    displayName: 'crash-app',
    secret: ATTACKER_SECRET,
    ipAddress: '203.0.113.91',
    roleAssignments: [{ scope: `/subscriptions/${e.subscriptionId}`, roleName: 'Key Vault Crypto Officer' }],
  });
  e.onAudit((records) => audit.push(...records));
  e.addVault({
    name: 'kv-crash',
    resourceGroup: 'rg-crash',
    location: 'westeurope',
    permissionModel: 'rbac',
    purgeProtection: false,
    retentionDays: 7,
  });
  const client = new KeyClient(
    'https://kv-crash.vault.azure.net',
    new ClientSecretCredential(e.tenantId, attacker.appId!, ATTACKER_SECRET),
  );
  for (const key of ['after-recovery', 'after-sink']) {
    await client.createKey(key, 'RSA');
    await (await client.beginDeleteKey(key, { intervalInMs: 5 })).pollUntilDone();
  }
  await new Promise((r) => setTimeout(r, 60)); // the emulator batches audit records for 20 ms
  await forwardAuditRecords(
    rt,
    [{ records: audit.filter((r) => r.operationName === 'KeyDelete') }],
    invocation(logs),
  );
  for (const s of e.eventGrid.events('kvguard-signals')) signals.set(String(s.event.subject), s.event);
  await rt.inventory.refresh();
}, 60_000);

afterAll(async () => {
  await env?.stop();
  await webhook?.close();
});

function primaryAlerts(key: string) {
  return env.h.emulator.eventGrid
    .events('kvguard-alerts')
    .map((e) => e.event as { id: string; data: { details: AlertContent } })
    .filter((e) => e.id.endsWith('/primary') && e.data.details.what.keyName === key);
}

function recoverCalls(key: string) {
  return env.h.emulator.requests.filter(
    (r) => r.method === 'POST' && r.path === `/deletedkeys/${key}/recover` && r.status === 200,
  );
}

async function incidentOf(key: string): Promise<IncidentRecord | undefined> {
  const entries = await rt.ledger.list('kv-crash', `key_kv-crash_${key}_`);
  return entries[0]?.value;
}

describe('a crash between the recovery and the alert', () => {
  it('leaves the key recovered and unannounced; the redelivery announces it once', async () => {
    let crashed = 0;
    const real = rt.keyVault;
    const crashing: KeyVaultData = {
      observeKey: (host, name) => real.observeKey(host, name),
      listDeletedKeys: (host) => real.listDeletedKeys(host),
      async recoverKey(host, name, deadline) {
        const outcome = await real.recoverKey(host, name, deadline);
        if (crashed++ === 0) throw new Crash('the invocation died right after the recovery');
        return outcome;
      },
    };
    const dying = withPipeline(rt, { keyVault: crashing });
    const signal = signals.get('/keys/after-recovery')!;
    expect(signal).toBeDefined();

    await expect(respondToEvent(dying, signal, invocation(logs))).rejects.toThrow(Crash);
    expect(env.h.emulator.core.vaults.get('kv-crash')!.keys.has('after-recovery')).toBe(true);
    expect(primaryAlerts('after-recovery')).toHaveLength(0);
    expect((await incidentOf('after-recovery'))?.state).toBe('open');

    clock.advance(REDELIVERY_WAIT_MS);
    const items = await respondToEvent(dying, signal, invocation(logs));
    expect(items[0]?.outcomes?.[0]?.status).toBe('acted');
    const alerts = primaryAlerts('after-recovery');
    expect(alerts).toHaveLength(1);
    const recovery = alerts[0]!.data.details.actions.find((a) => a.action === 'recover-key');
    expect(['succeeded', 'already-done']).toContain(recovery?.status);
    expect(alerts[0]!.data.details.severity).not.toBe('critical');
    expect(recoverCalls('after-recovery')).toHaveLength(1);
    expect((await incidentOf('after-recovery'))?.state).toBe('closed');

    // A third delivery (Event Grid's at-least-once) changes nothing.
    await respondToEvent(dying, signal, invocation(logs));
    expect(primaryAlerts('after-recovery')).toHaveLength(1);
    expect(recoverCalls('after-recovery')).toHaveLength(1);
  });
});

describe('a crash after a sink accepted the alert, before the ledger recorded it', () => {
  it('sends the alert again on redelivery with the same alert id, and closes the incident', async () => {
    let crashed = false;
    const real = rt.ledger;
    const crashing: Ledger<IncidentRecord> = {
      claim: (partition, id, value) => real.claim(partition, id, value),
      get: (partition, id) => real.get(partition, id),
      list: (partition, prefix) => real.list(partition, prefix),
      listRecent: (prefix, since) => real.listRecent(prefix, since),
      async update(entry, value) {
        const delivered = Object.values(value.alerts.primary?.sinks ?? {}).some((s) => s.delivered);
        if (delivered && !crashed) {
          crashed = true;
          throw new Crash('the invocation died before the ledger recorded the delivery');
        }
        return real.update(entry, value);
      },
    };
    const dying = withPipeline(rt, { ledger: crashing });
    const signal = signals.get('/keys/after-sink')!;
    expect(signal).toBeDefined();

    await expect(respondToEvent(dying, signal, invocation(logs))).rejects.toThrow(Crash);
    const first = primaryAlerts('after-sink');
    expect(first).toHaveLength(1);
    expect((await incidentOf('after-sink'))?.alerts.primary).toBeUndefined();

    clock.advance(REDELIVERY_WAIT_MS);
    const items = await respondToEvent(dying, signal, invocation(logs));
    expect(items[0]?.outcomes?.[0]?.status).toBe('acted');
    const again = primaryAlerts('after-sink');
    expect(again).toHaveLength(2);
    expect(again[1]!.id).toBe(first[0]!.id);
    const hooks = webhook.hits.filter((h) => h.id === first[0]!.id);
    expect(hooks).toHaveLength(2);
    expect(hooks[0]!.headers['x-kvguard-alert-id']).toBe(hooks[1]!.headers['x-kvguard-alert-id']);
    // The repeat is the same alert, not a new decision: no second recovery.
    expect(recoverCalls('after-sink')).toHaveLength(1);
    const record = await incidentOf('after-sink');
    expect(record?.state).toBe('closed');
    expect(Object.values(record?.alerts.primary?.sinks ?? {}).every((s) => s.delivered)).toBe(true);
  });
});

describe('what the suite logged and sent', () => {
  it('leaks no token, secret or key material in any log line or alert', () => {
    const texts = [
      ...logs.lines,
      ...env.h.emulator.eventGrid.events('kvguard-alerts').map((e) => JSON.stringify(e.event)),
      ...webhook.hits.map((h) => `${JSON.stringify(h.headers)}\n${h.body}`),
    ];
    expect(logs.lines.length).toBeGreaterThan(20);
    expect(findSecrets(texts, [WEBHOOK_SECRET, ATTACKER_SECRET, env.h.emulator.identityHeader])).toEqual([]);
  });
});
