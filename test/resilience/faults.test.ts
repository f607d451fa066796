/**
 * Resilience: a flood of 200 key deletions across 10 vaults while every emulated API (Key Vault,
 * ARM, Event Grid, Log Analytics, Microsoft Graph) fails at random — 5xx on 20% of the calls, 429
 * with `retry-after-ms` on 10%, connection resets on 5% — from a seeded generator. Each signal is
 * delivered 8 at a time and, when the invocation throws, delivered again as Event Grid would (after a
 * wait, for a bounded number of rounds). Every incident must end recovered, or failed and alerted;
 * none may be lost; no deletion may get two primary alerts or two recoveries.
 *
 * The retry base delay (KVGUARD_RETRY_BASE_DELAY_MS) is set low so the SDK's retries take
 * milliseconds. No assertion depends on timing.
 */
import { ClientSecretCredential } from '@azure/identity';
import { KeyClient } from '@azure/keyvault-keys';
import type { AlertContent } from '../../lib/core/model';
import { forwardAuditRecords } from '../../lib/entrypoints';
import { createRuntime, type Runtime } from '../../lib/runtime';
import { startKvguardEnv, type KvguardEnv } from '../emulator/kvguard-env';
import type { AuditRecord } from '../emulator/types';
import {
  deliverUntilDone,
  findSecrets,
  invocation,
  LogCollector,
  OffsetClock,
  startWebhook,
  type RedeliveryReport,
} from './support';

const VAULTS = Array.from({ length: 10 }, (_, i) => `kv-res-${i}`);
const KEYS_PER_VAULT = 20;
const WEBHOOK_SECRET = 'resilience-webhook-secret-0123456789abcdef';
const ATTACKER_SECRET = 'resilience-attacker-secret-42';

let env: KvguardEnv;
let rt: Runtime;
let webhook: Awaited<ReturnType<typeof startWebhook>>;
const logs = new LogCollector();
const clock = new OffsetClock();
const audit: AuditRecord[] = [];
let report: RedeliveryReport;
let signals: Array<Record<string, unknown>> = [];

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
    displayName: 'flood-app',
    secret: ATTACKER_SECRET,
    ipAddress: '203.0.113.90',
    roleAssignments: [{ scope: `/subscriptions/${e.subscriptionId}`, roleName: 'Key Vault Crypto Officer' }],
  });
  e.onAudit((records) => audit.push(...records));
  for (const name of VAULTS) {
    e.addVault({
      name,
      resourceGroup: 'rg-flood',
      location: 'westeurope',
      permissionModel: 'rbac',
      purgeProtection: false,
      retentionDays: 7,
    });
  }
  // The attack, before the faults: 200 keys created and deleted.
  const credential = new ClientSecretCredential(e.tenantId, attacker.appId!, ATTACKER_SECRET);
  const work = VAULTS.flatMap((vault) =>
    Array.from({ length: KEYS_PER_VAULT }, (_, i) => ({ vault, key: `k-${i}` })),
  );
  const clients = new Map(VAULTS.map((v) => [v, new KeyClient(`https://${v}.vault.azure.net`, credential)]));
  try {
    for (let i = 0; i < work.length; i += 20) {
      await Promise.all(
        work.slice(i, i + 20).map(async ({ vault, key }) => {
          const client = clients.get(vault)!;
          await client.createKey(key, 'RSA');
          await (await client.beginDeleteKey(key, { intervalInMs: 5 })).pollUntilDone();
        }),
      );
    }
  } catch (error) {
    // Not kvguard's doing: name what the emulator saw (a refused CONNECT, a TLS error), if anything.
    throw new Error(
      `the attack (before any fault) failed: ${String(error)}; emulator: ${env.h.diagnostics.slice(-10).join(' | ') || 'nothing logged'}`,
      { cause: error },
    );
  }
  await new Promise((r) => setTimeout(r, 60)); // the emulator batches audit records for 20 ms
  const deletions = audit.filter((r) => r.operationName === 'KeyDelete');
  for (let i = 0; i < deletions.length; i += 50) {
    await forwardAuditRecords(rt, [{ records: deletions.slice(i, i + 50) }], invocation(logs));
  }
  signals = e.eventGrid.events('kvguard-signals').map((s) => s.event);
  await rt.inventory.refresh();

  // Now every emulated API fails at random (seeded): 5xx 20% (503 and 500), 429 10%, resets 5%. The
  // rules are tried in order and at most one fires, so each rate is conditional on the ones before.
  e.faults.clear(20260314);
  e.faults.add({ kind: 'error', status: 503, rate: 0.1 });
  e.faults.add({ kind: 'error', status: 500, rate: 0.1 / 0.9 });
  e.faults.add({ kind: 'throttle', rate: 0.1 / 0.8, retryAfterMs: 5 });
  e.faults.add({ kind: 'reset', rate: 0.05 / 0.7 });
  report = await deliverUntilDone(rt, signals, {
    target: logs,
    clock,
    rounds: 25,
    // Event Grid waits at least 10 s, then longer; a lease left by a failed invocation (budget + 5 s)
    // has expired by the time it redelivers.
    waitMs: 60_000,
    concurrency: 8,
  });
  e.faults.clear();
}, 240_000);

afterAll(async () => {
  await env?.stop();
  await webhook?.close();
});

function alertsOnTopic() {
  return env.h.emulator.eventGrid.events('kvguard-alerts').map((e) => {
    const event = e.event as { id: string; data: { details: AlertContent } };
    return { id: event.id, details: event.data.details };
  });
}

describe('a flood of 200 deletions while every API fails at random', () => {
  it('published one signal per deletion and the faults really fired', () => {
    expect(signals).toHaveLength(VAULTS.length * KEYS_PER_VAULT);
    const faulted = env.h.emulator.requests.filter((r) => r.outcome === 'fault');
    const hosts = new Set(faulted.map((r) => r.host.replace(/^kv-res-\d+\./, 'vault.')));
    expect(faulted.length).toBeGreaterThan(100);
    // (Microsoft Graph is asked once per principal, and the signals name their caller, so the
    // workspace is not asked at all: those two may escape a fault.)
    expect([...hosts]).toEqual(
      expect.arrayContaining([
        'vault.vault.azure.net',
        'management.azure.com',
        expect.stringMatching(/eventgrid\.azure\.net$/),
      ]),
    );
    expect(faulted.some((r) => r.status === 429)).toBe(true);
    expect(faulted.some((r) => r.status === 0)).toBe(true); // resets
  });

  it('delivers every signal in the end: none is lost (redelivery is bounded)', () => {
    expect(report.undelivered).toBe(0);
    expect(Math.max(...report.attempts)).toBeLessThanOrEqual(25);
  });

  it('ends every incident recovered, or failed with a critical alert', () => {
    const primaries = alertsOnTopic().filter((a) => a.id.endsWith('/primary'));
    for (const vault of VAULTS) {
      const v = env.h.emulator.core.vaults.get(vault)!;
      for (let i = 0; i < KEYS_PER_VAULT; i++) {
        const key = `k-${i}`;
        const alert = primaries.find(
          (a) => a.details.what.vaultName === vault && a.details.what.keyName === key,
        );
        expect({ vault, key, alerted: alert !== undefined }).toEqual({ vault, key, alerted: true });
        const recovered = v.keys.has(key) && !v.deletedKeys.has(key);
        const recoveredInAlert = alert!.details.actions.some(
          (a) => a.action === 'recover-key' && (a.status === 'succeeded' || a.status === 'already-done'),
        );
        if (recovered) expect(recoveredInAlert).toBe(true);
        else expect(alert!.details.severity).toBe('critical');
      }
    }
  });

  it('sends no deletion two primary alerts, and recovers no key twice', () => {
    const primaries = alertsOnTopic().filter((a) => a.id.endsWith('/primary'));
    // One primary alert id per deletion, and each id published once.
    const perKey = new Map<string, Set<string>>();
    for (const a of primaries) {
      const k = `${a.details.what.vaultName}/${a.details.what.keyName}`;
      perKey.set(k, (perKey.get(k) ?? new Set()).add(a.id));
    }
    expect([...perKey.values()].filter((ids) => ids.size > 1)).toEqual([]);
    expect(new Set(primaries.map((a) => a.id)).size).toBe(primaries.length);
    // The signed webhook (reached directly, without faults) got each primary once too.
    const hooked = webhook.hits.filter((h) => h.id.endsWith('/primary')).map((h) => h.id);
    expect(new Set(hooked).size).toBe(hooked.length);
    expect(new Set(hooked)).toEqual(new Set(primaries.map((a) => a.id)));
    // Each key's recovery was accepted once.
    const accepted = env.h.emulator.requests.filter(
      (r) => r.method === 'POST' && /^\/deletedkeys\/[^/]+\/recover$/.test(r.path) && r.status === 200,
    );
    const perRecovery = new Map<string, number>();
    for (const r of accepted)
      perRecovery.set(`${r.host}${r.path}`, (perRecovery.get(`${r.host}${r.path}`) ?? 0) + 1);
    expect([...perRecovery.entries()].filter(([, n]) => n > 1)).toEqual([]);
  });

  it('leaks no token, secret or key material in any log line or alert', () => {
    const texts = [
      ...logs.lines,
      ...report.errors,
      ...env.h.emulator.eventGrid.events('kvguard-alerts').map((e) => JSON.stringify(e.event)),
      ...webhook.hits.map((h) => `${JSON.stringify(h.headers)}\n${h.body}`),
    ];
    expect(logs.lines.length).toBeGreaterThan(1000);
    expect(findSecrets(texts, [WEBHOOK_SECRET, ATTACKER_SECRET, env.h.emulator.identityHeader])).toEqual([]);
  });
});
