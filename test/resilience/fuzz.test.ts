/**
 * Resilience: hostile input. Property-based fuzzing (fast-check, fixed seeds) of more than 10,000
 * inputs — the golden samples of test/fixtures/azure-specs and test/fixtures/auditevent (and the
 * signals the forwarder makes of them) mutated at random, plus inputs generated from nothing:
 * - through `normalise` (every way in) and the forwarder's `toSignalCloudEvents`: nothing escapes as
 *   an exception, and every rejection says why;
 * - a few hundred through `handleReplay` (and some through `handleMonitorAlert`) against the emulated
 *   Azure, with the goldens pointed at a vault of the inventory so that the pipeline runs for real:
 *   every answer is 200 or 4xx, never 5xx, and no request leaves for a vault host outside the
 *   inventory (the emulator's request log holds no other vault host and no refused CONNECT).
 * Every log line and answer is scanned for tokens and secrets.
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import fc from 'fast-check';
import type { Rejection } from '../../lib/core/model';
import { normalise, toSignalCloudEvents, type NormaliseVia } from '../../lib/core/normalise';
import { handleMonitorAlert, handleReplay } from '../../lib/entrypoints';
import type { Clock } from '../../lib/ports';
import { createRuntime, type Runtime } from '../../lib/runtime';
import { startKvguardEnv, type KvguardEnv } from '../emulator/kvguard-env';
import { findSecrets, invocation, LogCollector } from './support';

const FIXTURES = join(__dirname, '..', 'fixtures');
const INVENTORY_VAULT = 'kv-fuzz';
const ATTACKER_SECRET = 'fuzz-attacker-secret-1234567';

function jsonFiles(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) return jsonFiles(path);
    return name.endsWith('.json') ? [path] : [];
  });
}

/** The golden samples, and the kvguard signals the forwarder makes of the AuditEvent ones. */
function goldens(): unknown[] {
  const files = [...jsonFiles(join(FIXTURES, 'azure-specs')), ...jsonFiles(join(FIXTURES, 'auditevent'))];
  const samples = files.map((f) => JSON.parse(readFileSync(f, 'utf8')) as unknown);
  const signals = samples.flatMap((s) =>
    toSignalCloudEvents(s).flatMap((e) =>
      'kind' in e ? [] : [{ specversion: '1.0', datacontenttype: 'application/json', ...e }],
    ),
  );
  return [...samples, ...signals];
}

const GOLDENS = goldens();

/** A golden pointed at the inventory's vault (its hosts, resource ids and subscription rewritten). */
function inScope(value: unknown, subscriptionId: string): unknown {
  const text = JSON.stringify(value)
    .replace(/https:\/\/[a-z0-9-]+\.vault\.azure\.net/gi, `https://${INVENTORY_VAULT}.vault.azure.net`)
    .replace(/\/subscriptions\/[0-9a-f-]{36}/gi, `/subscriptions/${subscriptionId}`)
    .replace(/\/resourceGroups\/[^/"]+/gi, '/resourceGroups/rg-fuzz')
    .replace(/\/vaults\/[^/"?]+/gi, `/vaults/${INVENTORY_VAULT}`);
  return JSON.parse(text) as unknown;
}

const EVENT_TYPES = [
  'Kvguard.KeyVault.KeyDeleted.v1',
  'Kvguard.KeyVault.KeyPurged.v1',
  'Kvguard.KeyVault.KeyDeleteDenied.v1',
  'Microsoft.KeyVault.vaults.keys.delete',
  'Microsoft.KeyVault.VaultAccessPolicyChanged',
  'Microsoft.KeyVault.SecretNewVersionCreated',
  'Microsoft.Resources.ResourceDeleteSuccess',
  'Microsoft.Resources.ResourceWriteSuccess',
  'Microsoft.Resources.ResourceActionSuccess',
];

/** Strings an attacker would put in a payload: other hosts, look-alikes, odd encodings, sizes. */
const HOSTILE = fc.constantFrom(
  'https://evil.test/keys/x',
  'https://kv-fuzz.vault.azure.net.evil.test/keys/x',
  'https://kv-fuzz.vault.azure.net:8443/keys/x',
  'https://user@kv-fuzz.vault.azure.net/keys/x',
  'https://kv-fuzz.vault.azure.net@evil.test/keys/x',
  'https://kv-fuzz.vault.azure.net%2F@evil.test/keys/x',
  'https://kv-fuzz\u0430.vault.azure.net/keys/x',
  'https://KV-FUZZ.VAULT.AZURE.NET/keys/x',
  'https://kv-fuzz.vault.azure.cn/keys/x',
  'https://kv-fuzz.managedhsm.azure.net/keys/x',
  'https://other-vault.vault.azure.net/keys/x',
  'http://kv-fuzz.vault.azure.net/keys/x',
  'https://kv-fuzz.vault.azure.net/keys/../../deletedkeys/x/recover',
  'https://kv-fuzz.vault.azure.net/keys/x?api-version=1&x=https://evil.test',
  '/SUBSCRIPTIONS/X/RESOURCEGROUPS/Y/PROVIDERS/MICROSOFT.KEYVAULT/VAULTS/KV-FUZZ',
  '/subscriptions/00000000-0000-4000-8000-000000000001/resourceGroups/rg/providers/Microsoft.KeyVault/vaults/other',
  'https://evil.test/steal',
  'eyJhbGciOiJub25lIn0.eyJvaWQiOiJ4In0.',
  '__proto__',
  'constructor',
  '1970-01-01T00:00:00Z',
  '9999-12-31T23:59:59Z',
  'not a date',
  '',
  'x'.repeat(70_000),
  '\u0000\u0001\u202e',
  ...EVENT_TYPES,
);

type Step = { pick: number; op: number; value: unknown };

/** One mutation: a walk into the value (by `pick`), then an operation with `value`. */
const STEP: fc.Arbitrary<Step> = fc.record({
  pick: fc.nat(),
  op: fc.nat({ max: 9 }),
  value: fc.oneof(
    { weight: 3, arbitrary: HOSTILE },
    { weight: 2, arbitrary: fc.jsonValue({ maxDepth: 2 }) },
    { weight: 1, arbitrary: fc.anything({ maxDepth: 2 }) },
    { weight: 1, arbitrary: fc.string({ unit: 'binary', maxLength: 40 }) },
  ),
});

function children(value: unknown): Array<string | number> {
  if (Array.isArray(value)) return value.map((_, i) => i);
  if (value !== null && typeof value === 'object') return Object.keys(value);
  return [];
}

/** Applies the steps to a deep copy of the golden. */
function mutate(golden: unknown, steps: Step[]): unknown {
  let root = structuredClone<unknown>(golden);
  for (const step of steps) {
    // Walk down: at each level take a child, until the walk runs out or hits a leaf.
    let parent: unknown = undefined;
    let key: string | number | undefined;
    let node = root;
    let pick = step.pick;
    while (children(node).length > 0 && pick % 4 !== 0) {
      const c = children(node);
      parent = node;
      key = c[pick % c.length]!;
      node = (node as Record<string | number, unknown>)[key];
      pick = Math.floor(pick / 4);
    }
    const set = (v: unknown) => {
      if (parent === undefined || key === undefined) root = v;
      else (parent as Record<string | number, unknown>)[key] = v;
    };
    switch (step.op) {
      case 0: // delete
        if (Array.isArray(parent) && typeof key === 'number') parent.splice(key, 1);
        else if (parent !== undefined && key !== undefined) delete (parent as Record<string, unknown>)[key];
        break;
      case 1: // replace with anything
      case 2:
        set(step.value);
        break;
      case 3: // a string grows a hostile suffix or prefix
        set(typeof node === 'string' ? `${node}${String(step.value)}` : step.value);
        break;
      case 4: // change the type
        set(
          typeof node === 'string' ? Number(node) || [node] : typeof node === 'number' ? String(node) : null,
        );
        break;
      case 5: // wrap
        set([node, node]);
        break;
      case 6: // a new key beside
        if (node !== null && typeof node === 'object' && !Array.isArray(node))
          (node as Record<string, unknown>)[String(step.value).slice(0, 40) || 'x'] = step.value;
        else set({ records: [node] });
        break;
      case 7: // case games on keys
        if (parent !== undefined && typeof key === 'string') {
          delete (parent as Record<string, unknown>)[key];
          (parent as Record<string, unknown>)[key.toUpperCase()] = node;
        }
        break;
      case 8: // another event type
        if (node !== null && typeof node === 'object' && !Array.isArray(node)) {
          const o = node as Record<string, unknown>;
          const type = EVENT_TYPES[Math.abs(step.pick) % EVENT_TYPES.length];
          if ('eventType' in o) o.eventType = type;
          if ('type' in o) o.type = type;
        }
        break;
      default: // a batch
        root = { records: [root, node] };
    }
  }
  return root;
}

const MUTATED = fc
  .tuple(fc.nat({ max: GOLDENS.length - 1 }), fc.array(STEP, { minLength: 1, maxLength: 6 }))
  .map(([i, steps]) => mutate(GOLDENS[i], steps));

const GENERATED = fc.oneof(
  fc.anything({ maxDepth: 3 }),
  fc.jsonValue({ maxDepth: 4 }),
  fc.record({
    specversion: fc.constantFrom('1.0', '0.3', 1),
    id: fc.string(),
    type: fc.constantFrom(...EVENT_TYPES),
    source: fc.oneof(HOSTILE, fc.string()),
    subject: fc.oneof(HOSTILE, fc.string()),
    time: fc.oneof(
      HOSTILE,
      fc.date({ noInvalidDate: true }).map((d) => d.toISOString()),
    ),
    data: fc.jsonValue({ maxDepth: 3 }),
  }),
  fc.record({
    id: fc.string(),
    eventType: fc.constantFrom(...EVENT_TYPES),
    subject: fc.oneof(HOSTILE, fc.string()),
    eventTime: fc.oneof(HOSTILE, fc.string()),
    dataVersion: fc.string(),
    topic: fc.oneof(HOSTILE, fc.string()),
    data: fc.jsonValue({ maxDepth: 3 }),
  }),
);

const VIAS: NormaliseVia[] = ['eventGrid', 'auditLog', 'monitorAlert', 'replay'];

/** Every result is a trigger (`kind`) or a signal (`type`, `id`), or a rejection with its reason. */
function checkResults(results: unknown): void {
  expect(Array.isArray(results)).toBe(true);
  for (const r of results as Array<Record<string, unknown>>) {
    if (r.kind === 'rejection') {
      const rejection = r as unknown as Rejection;
      expect(typeof rejection.reason).toBe('string');
      expect(rejection.reason.length).toBeGreaterThan(0);
      expect(typeof rejection.message).toBe('string');
      expect(rejection.message.length).toBeGreaterThan(0);
    } else if ('kind' in r) {
      expect(typeof r.kind).toBe('string');
    } else {
      expect(typeof r.type).toBe('string');
      expect(typeof r.id).toBe('string');
    }
  }
}

let runs = 0;

describe('normalise and the forwarder, fuzzed', () => {
  it('never throw on 8,000 mutated goldens, and every rejection has a reason', () => {
    fc.assert(
      fc.property(MUTATED, fc.constantFrom(...VIAS), (input, via) => {
        runs++;
        checkResults(normalise(input, via));
        checkResults(toSignalCloudEvents(input));
      }),
      { numRuns: 8000, seed: 20260314 },
    );
  });

  it('never throw on 3,000 generated inputs, and every rejection has a reason', () => {
    fc.assert(
      fc.property(GENERATED, fc.constantFrom(...VIAS), (input, via) => {
        runs++;
        checkResults(normalise(input, via));
        checkResults(toSignalCloudEvents(input));
      }),
      { numRuns: 3000, seed: 6 },
    );
  });
});

/** Real time, but a sleep only moves the clock on: a settle wait on a key that never appears costs nothing. */
class SkippingClock implements Clock {
  private offset = 0;
  now(): Date {
    return new Date(Date.now() + this.offset);
  }
  async sleep(ms: number): Promise<void> {
    this.offset += ms;
    await new Promise((r) => setImmediate(r));
  }
}

describe('replay and monitorAlert against the emulated Azure, fuzzed', () => {
  let env: KvguardEnv;
  let rt: Runtime;
  const logs = new LogCollector();
  const answers: string[] = [];
  const seen = new Set<string>();
  let inventoryHosts: Set<string>;
  let before = 0;

  beforeAll(async () => {
    env = await startKvguardEnv({
      settings: { KVGUARD_RETRY_BASE_DELAY_MS: '2', KVGUARD_LOG_LEVEL: 'debug' },
    });
    rt = createRuntime(env.config, { processLog: logs, clock: new SkippingClock() });
    const e = env.h.emulator;
    e.addVault({
      name: INVENTORY_VAULT,
      resourceGroup: 'rg-fuzz',
      location: 'westeurope',
      permissionModel: 'rbac',
      purgeProtection: false,
      retentionDays: 7,
    });
    const attacker = e.addPrincipal({
      kind: 'servicePrincipal',
      displayName: 'fuzz-app',
      secret: ATTACKER_SECRET,
      roleAssignments: [
        { scope: `/subscriptions/${e.subscriptionId}`, roleName: 'Key Vault Crypto Officer' },
      ],
    });
    // Keys the goldens name, some deleted: the pipeline gets to observe, recover and alert.
    const { ClientSecretCredential } = await import('@azure/identity');
    const { KeyClient } = await import('@azure/keyvault-keys');
    const client = new KeyClient(
      `https://${INVENTORY_VAULT}.vault.azure.net`,
      new ClientSecretCredential(e.tenantId, attacker.appId!, ATTACKER_SECRET),
    );
    for (const key of ['rotation-temp-01', 'cmk-orders', 'cmk-invoices', 'x', 'key1']) {
      await client.createKey(key, 'RSA');
      if (key !== 'key1') await (await client.beginDeleteKey(key, { intervalInMs: 5 })).pollUntilDone();
    }
    const snapshot = await rt.inventory.refresh();
    inventoryHosts = new Set(snapshot.vaults.map((v) => v.host));
    before = e.requests.length;
  }, 60_000);

  afterAll(async () => {
    await env?.stop();
  });

  const replayInput = () =>
    fc.oneof(
      { weight: 4, arbitrary: MUTATED.map((v) => inScope(v, env.h.emulator.subscriptionId)) },
      { weight: 2, arbitrary: MUTATED },
      { weight: 1, arbitrary: GENERATED },
    );

  it('answers 200 or 4xx, never 5xx, for 300 fuzzed replay requests', async () => {
    const body = fc.oneof(
      { weight: 6, arbitrary: replayInput().map((v) => JSON.stringify(v) ?? 'null') },
      { weight: 2, arbitrary: fc.array(replayInput(), { maxLength: 4 }).map((v) => JSON.stringify(v)) },
      { weight: 1, arbitrary: fc.string({ unit: 'binary', maxLength: 200 }) },
    );
    await fc.assert(
      fc.asyncProperty(body, fc.boolean(), async (text, dryRun) => {
        runs++;
        const answer = await handleReplay(rt, { text, dryRun }, invocation(logs));
        const serialized = JSON.stringify(answer.body);
        answers.push(serialized);
        expect(answer.status === 200 || (answer.status >= 400 && answer.status < 500)).toBe(true);
        if (answer.status === 200) {
          const inputs = (
            answer.body as {
              inputs: Array<{
                items?: Array<{ rejection?: Rejection; outcomes?: Array<{ status: string }> }>;
              }>;
            }
          ).inputs;
          for (const item of inputs.flatMap((i) => i.items ?? [])) {
            if (item.rejection) {
              expect(item.rejection.reason.length).toBeGreaterThan(0);
              seen.add('rejected');
            }
            for (const o of item.outcomes ?? []) seen.add(o.status);
          }
        } else seen.add(String(answer.status));
      }),
      { numRuns: 300, seed: 42 },
    );
    // The pipeline ran for real: inputs were rejected, planned, acted on, found out of scope.
    expect([...seen]).toEqual(
      expect.arrayContaining(['rejected', 'planned', 'acted', 'out-of-scope', '400']),
    );
  }, 120_000);

  it('answers 200 or 4xx, never 5xx, for 100 fuzzed monitor alerts', async () => {
    const commonAlerts = GOLDENS.filter((g) => JSON.stringify(g).includes('"essentials"'));
    expect(commonAlerts.length).toBeGreaterThan(0);
    const alerts = fc
      .tuple(fc.nat({ max: commonAlerts.length - 1 }), fc.array(STEP, { minLength: 1, maxLength: 4 }))
      .map(([i, steps]) => {
        const golden = commonAlerts[i] as Record<string, unknown>;
        // The common alert schema samples, pointed at the configured workspace before mutating.
        const text = JSON.stringify(golden).replace(
          /\/subscriptions\/[^"]*\/workspaces\/[^"]+/gi,
          env.workspaceResourceId,
        );
        return JSON.stringify(mutate(JSON.parse(text), steps)) ?? 'null';
      });
    await fc.assert(
      fc.asyncProperty(alerts, async (text) => {
        runs++;
        const answer = await handleMonitorAlert(rt, text, invocation(logs));
        answers.push(JSON.stringify(answer.body));
        expect(answer.status === 200 || (answer.status >= 400 && answer.status < 500)).toBe(true);
      }),
      { numRuns: 100, seed: 7 },
    );
  }, 120_000);

  it('sent no request to a vault host outside the inventory, and no CONNECT was refused', () => {
    const sent = env.h.emulator.requests.slice(before);
    expect(sent.filter((r) => r.outcome === 'refused')).toEqual([]);
    const vaultHosts = new Set(sent.filter((r) => r.host.endsWith('.vault.azure.net')).map((r) => r.host));
    expect([...vaultHosts].filter((h) => !inventoryHosts.has(h))).toEqual([]);
    // The fuzzing did reach the inventory's vault (the pipeline ran for real), and nothing else.
    expect(vaultHosts).toEqual(new Set([`${INVENTORY_VAULT}.vault.azure.net`]));
  });

  it('fuzzed more than 10,000 inputs in all', () => {
    expect(runs).toBeGreaterThanOrEqual(11_400);
  });

  it('leaks no token, secret or key material in any log line or answer', () => {
    expect(logs.lines.length).toBeGreaterThan(100);
    // The fuzzer's own planted JWT-looking string is input, echoed in no log line or answer either.
    expect(
      findSecrets([...logs.lines, ...answers], [ATTACKER_SECRET, env.h.emulator.identityHeader]),
    ).toEqual([]);
  });
});
