/**
 * `npm run bench` (scripts/bench.mjs starts this with NODE_EXTRA_CA_CERTS set): kvguard's speed and
 * scale against the emulated Azure with realistic timing — 25 ms per call, deletes and recoveries
 * completing 150 ms after they are accepted — plus its own cost with the fakes and its cold start.
 * Prints a table, writes test/bench/results/latest.json and the chart test/bench/results/recovery.svg.
 *
 * Sections (each bounded in count and time; only loopback traffic):
 * - coldStart: loading dist/index.js vs the unbundled build (`tsc` output of functions/ and lib/ in
 *   build/bench-unbundled), each `require`d in fresh child processes, interleaved, median of 9.
 * - overhead: kvguard's own cost per event (normalise → pipeline → alert) with the fakes, no network.
 * - sweep: 50 vaults × 20 deleted keys found by one sweep (`lib/sweep.ts`).
 * - recovery: one deletion at a time, each signal delivered once its deletion has completed; the time
 *   from delivery to the primary alert (reporting the key recovered) as the alerts topic received it.
 *   `sdkDefaultP50Ms`: the same pipeline, its recovery through the SDK's own poller with the SDK's
 *   default 2 s interval (`beginRecoverDeletedKey` + `pollUntilDone`).
 * - flood: 1,000 deletions across 10 vaults, delivered 16 at a time as a Functions host would.
 * - reconcile: 20 subscriptions × 100 VMs with ARM throttling on (`lib/posture`), when it exists.
 *
 * The emulated Azure runs in its own process (test/bench/env.ts), so kvguard's figures (throughput,
 * peak RSS) are this process's alone.
 *
 * Options: `--only=recovery,flood` runs some sections (results to results/partial.tmp); `--redraw`
 * draws the chart again from results/latest.json. Diagnostics: BENCH_DEBUG=1 prints the calls by
 * kind, BENCH_LOG=1 kvguard's log (of this process; the flood runs in test/bench/worker.ts),
 * BENCH_TIMELINE=1 the reconcile's ARM calls in the order they reached the emulator,
 * BENCH_PROFILE_DIR=<dir> writes a CPU profile of the flood's kvguard process there.
 */
import { fork, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import {
  copyFileSync,
  existsSync,
  mkdirSync,
  readFileSync,
  readdirSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { ClientSecretCredential, ManagedIdentityCredential } from '@azure/identity';
import { KeyClient } from '@azure/keyvault-keys';
import { loadConfig } from '../../lib/config';
import { normalise, toSignalCloudEvents } from '../../lib/core/normalise';
import { isRejection } from '../../lib/core/normalise';
import { forwardAuditRecords, respondToEvent, type Invocation } from '../../lib/entrypoints';
import { createLogger, type LogTarget } from '../../lib/logging';
import type { KeyVaultData, RecoverOutcome } from '../../lib/ports';
import { createRuntime, type Runtime } from '../../lib/runtime';
import { recoveryChart } from './chart';
import { keepProxyConnectionsAlive } from './keepalive';
import type { BenchEnvReady } from './env';
import type { WorkerReply, WorkerRequest } from './worker';
import { seededRandom } from '../emulator/faults';
import type { RequestLogEntry } from '../emulator/types';

const ROOT = join(__dirname, '..', '..');
const RESULTS_DIR = join(__dirname, 'results');
const LATENCY_MS = 25;
const LAG_MS = 150;
/** Observe read, recover call, completion lag, the confirming read, the alert publish (issue #6). */
const RECOVERY_FLOOR_MS = 25 + 25 + 150 + 25 + 25;
const FLOOD = { vaults: 10, keysPerVault: 100, concurrency: 16 };
const SWEEP = { vaults: 50, keysPerVault: 20, concurrency: 16, pageSize: 25 };
const RECOVERY = { vaults: 6, keysPerVault: 10, sdkDefaultSamples: 8 };
const OVERHEAD = { warmup: 1000, events: 3000, runs: 3 };
const RECONCILE = { subscriptions: 20, vms: 100, concurrency: 4, throttleRate: 0.1, retryAfterMs: 50 };
/** The whole benchmark stops after this (sections left are reported as not measured). */
const BUDGET_MS = 5 * 60_000;

const started = Date.now();
/** `--only=recovery,flood`: run some sections (results go to results/partial.tmp, not latest.json). */
const only = process.argv
  .find((a) => a.startsWith('--only='))
  ?.slice('--only='.length)
  .split(',');
const enabled = (section: string) => !only || only.includes(section);
const quiet: LogTarget = process.env.BENCH_LOG
  ? {
      trace: noop,
      debug: noop,
      info: (m) => process.stderr.write(`${m}\n`),
      warn: (m) => process.stderr.write(`${m}\n`),
      error: (m) => process.stderr.write(`${m}\n`),
    }
  : { trace: noop, debug: noop, info: noop, warn: noop, error: noop };
function noop(): void {}

// ------------------------------------------------------------------------------------- helpers

function percentile(values: number[], p: number): number {
  if (values.length === 0) return NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const rank = Math.ceil((p / 100) * sorted.length) - 1;
  return sorted[Math.min(sorted.length - 1, Math.max(0, rank))]!;
}

const round = (n: number, digits = 0) => Number(n.toFixed(digits));
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function pool<T>(items: T[], concurrency: number, work: (item: T, i: number) => Promise<void>) {
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(concurrency, items.length) }, async () => {
      while (next < items.length) {
        const i = next++;
        await work(items[i]!, i);
      }
    }),
  );
}

/** CPU seconds used so far by a process and its descendants (Linux /proc; undefined elsewhere). */
function cpuSeconds(pid: number): number | undefined {
  try {
    const tick = 100;
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
    let total = (Number(stat[11]) + Number(stat[12])) / tick;
    const children = readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8')
      .trim()
      .split(/\s+/)
      .filter(Boolean);
    for (const c of children) total += cpuSeconds(Number(c)) ?? 0;
    return total;
  } catch {
    return undefined;
  }
}

function log(line: string): void {
  process.stderr.write(`[bench ${((Date.now() - started) / 1000).toFixed(0).padStart(3)} s] ${line}\n`);
}

let invocations = 0;
function invocation(rt: Runtime): Invocation {
  const invocationId = `bench-${++invocations}`;
  return { invocationId, log: rt.logger(quiet, { invocationId, fn: 'bench' }) };
}

// --------------------------------------------------------------------------- the environment

class BenchEnv {
  private seq = 0;
  constructor(
    readonly ready: BenchEnvReady,
    private readonly child: ChildProcess,
  ) {}

  static async start(): Promise<BenchEnv> {
    const child = spawn(process.execPath, ['--import', 'tsx', join(__dirname, 'env.ts')], {
      cwd: ROOT,
      env: process.env,
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    const line = await new Promise<string>((resolve, reject) => {
      const rl = createInterface({ input: child.stdout });
      const timer = setTimeout(
        () => reject(new Error('the bench environment did not start in 60 s')),
        60_000,
      );
      rl.once('line', (l) => {
        clearTimeout(timer);
        resolve(l);
      });
      child.once('exit', (code) => reject(new Error(`the bench environment exited with ${String(code)}`)));
    });
    child.removeAllListeners('exit');
    const ready = JSON.parse(line) as BenchEnvReady;
    // The Azure SDK's standard variables, as the Functions platform sets them (design §5).
    process.env.HTTPS_PROXY = ready.proxy;
    process.env.IDENTITY_ENDPOINT = ready.identityEndpoint;
    process.env.IDENTITY_HEADER = ready.identityHeader;
    return new BenchEnv(ready, child);
  }

  get pid(): number | undefined {
    return this.child.pid;
  }

  async stop(): Promise<void> {
    if (this.child.exitCode !== null) return;
    const exited = new Promise((r) => this.child.once('exit', r));
    this.child.kill('SIGTERM');
    await Promise.race([exited, sleep(5000)]);
  }

  async admin<T>(method: string, path: string, body?: unknown): Promise<T> {
    const res = await fetch(`${this.ready.admin}${path}`, {
      method,
      headers: body === undefined ? undefined : { 'content-type': 'application/json' },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await res.text();
    if (!res.ok) throw new Error(`admin ${method} ${path}: ${res.status} ${text.slice(0, 300)}`);
    return JSON.parse(text) as T;
  }

  timing(latencyMs: number, completionLagMs: number) {
    return this.admin('POST', '/timing', { latencyMs, completionLagMs });
  }

  /** The request log since the last mark (and moves the mark). */
  async requestsSinceMark(): Promise<RequestLogEntry[]> {
    const entries = await this.admin<RequestLogEntry[]>('GET', `/requests?since=${this.seq}`);
    for (const e of entries) this.seq = Math.max(this.seq, e.seq);
    return entries;
  }

  async mark(): Promise<void> {
    await this.requestsSinceMark();
  }

  async events(topic: string): Promise<Array<{ event: Record<string, unknown>; publishTime: string }>> {
    return this.admin('GET', `/eventgrid/events?topic=${encodeURIComponent(topic)}`);
  }

  /** Seeds vaults and keys, and has the attacker delete every key (with no latency: set-up only). */
  async deletedKeys(
    vaults: string[],
    keysPerVault: number,
    options: { purgeProtection: boolean; subscriptionId?: string },
  ): Promise<Array<{ vault: string; key: string }>> {
    await this.timing(0, 0);
    for (const name of vaults) {
      await this.admin('POST', '/vaults', {
        name,
        resourceGroup: 'rg-bench',
        location: 'westeurope',
        permissionModel: 'rbac',
        purgeProtection: options.purgeProtection,
        retentionDays: 7,
        ...(options.subscriptionId ? { subscriptionId: options.subscriptionId } : {}),
      });
    }
    const keys = vaults.flatMap((vault) =>
      Array.from({ length: keysPerVault }, (_, i) => ({ vault, key: `key-${String(i).padStart(3, '0')}` })),
    );
    await pool(keys, 16, async ({ vault, key }) => {
      await this.admin('POST', '/keys', { vault, name: key, kty: 'RSA' });
    });
    const credential = new ClientSecretCredential(
      this.ready.tenantId,
      this.ready.attacker.appId,
      this.ready.attacker.secret,
    );
    const clients = new Map(
      vaults.map((v) => [v, new KeyClient(`https://${v}.vault.azure.net`, credential)]),
    );
    await pool(keys, 16, async ({ vault, key }) => {
      await (await clients.get(vault)!.beginDeleteKey(key, { intervalInMs: 5 })).pollUntilDone();
    });
    return keys;
  }
}

/**
 * The signals the forwarder publishes for the given vaults' KeyDelete records (as the Event Hub
 * trigger would hand them over), as Event Grid would deliver them to the responder.
 */
async function signalsFor(env: BenchEnv, rt: Runtime, vaults: string[]): Promise<Record<string, unknown>[]> {
  const wanted = new Set(vaults.map((v) => `/vaults/${v}`.toUpperCase()));
  const records = (
    await env.admin<Array<Record<string, unknown>>>('GET', '/audit?operationName=KeyDelete')
  ).filter((r) => [...wanted].some((w) => String(r.resourceId).toUpperCase().endsWith(w)));
  const before = new Set((await env.events('kvguard-signals')).map((e) => String(e.event.id)));
  for (let i = 0; i < records.length; i += 50) {
    const result = await forwardAuditRecords(rt, [{ records: records.slice(i, i + 50) }], invocation(rt));
    if (result.rejected.length > 0) throw new Error(`forwarder rejected ${result.rejected.length} records`);
  }
  return (await env.events('kvguard-signals'))
    .filter((e) => !before.has(String(e.event.id)))
    .map((e) => e.event);
}

/** Delivers one event as Event Grid would: again after a failure, at most `attempts` times. */
async function deliver(
  rt: Runtime,
  event: unknown,
  attempts = 6,
): Promise<{ incidentId?: string; status?: string; attempts: number; error?: string }> {
  let error = '';
  for (let attempt = 1; attempt <= attempts; attempt++) {
    try {
      const items = await respondToEvent(rt, event, invocation(rt));
      const outcome = items[0]?.outcomes?.[0];
      return { incidentId: outcome?.incidentId, status: outcome?.status, attempts: attempt };
    } catch (e) {
      error = e instanceof Error ? e.message : String(e);
    }
  }
  return { attempts, error };
}

interface AlertOnTopic {
  id: string;
  publishTime: number;
  recovered: boolean;
  keyName?: string;
  vaultName?: string;
}

async function alertsOnTopic(env: BenchEnv): Promise<AlertOnTopic[]> {
  return (await env.events('kvguard-alerts')).map((e) => {
    const details = (e.event.data as { details?: Record<string, unknown> } | undefined)?.details ?? {};
    const actions = (details.actions as Array<{ action: string; status: string }> | undefined) ?? [];
    const what = (details.what as { keyName?: string; vaultName?: string } | undefined) ?? {};
    return {
      id: String(e.event.id),
      publishTime: Date.parse(e.publishTime),
      recovered: actions.some((a) => a.action === 'recover-key' && a.status === 'succeeded'),
      keyName: what.keyName,
      vaultName: what.vaultName,
    };
  });
}

/** BENCH_DEBUG: the calls by kind (method, host kind, path shape, status). */
function printRequestKinds(requests: RequestLogEntry[]): void {
  const kinds = new Map<string, number>();
  for (const r of requests) {
    const k = `${r.method} ${r.host.replace(/^kv-[a-z0-9-]+\.vault/, '<vault>').replace(/^[^.]+\.westeurope-1/, '<topic>')} ${r.path
      .replace(/\/keys\/[^/]+/, '/keys/{k}')
      .replace(/\/deletedkeys\/[^/]+/, '/deletedkeys/{k}')
      .replace(/vaults\/[^/]+/, 'vaults/{v}')
      .replace(/(users|directoryObjects|servicePrincipals)\/[^/]+/, '$1/{id}')} ${r.status}`;
    kinds.set(k, (kinds.get(k) ?? 0) + 1);
  }
  console.error(
    [...kinds]
      .sort((a, b) => b[1] - a[1])
      .map(([k, n]) => `${n} ${k}`)
      .join('\n'),
  );
}

/** Azure API calls (no token requests, no challenge round trips) and the challenge round trips apart. */
function countCalls(entries: RequestLogEntry[]) {
  const api = entries.filter(
    (e) => e.host !== 'identity-endpoint' && e.host !== 'login.microsoftonline.com' && e.method !== 'CONNECT',
  );
  const challenges = api.filter((e) => e.status === 401);
  return { calls: api.length - challenges.length, challenges: challenges.length, api };
}

// ----------------------------------------------------------------------------------- sections

interface ColdStart {
  bundledMs: number;
  unbundledMs: number;
  ratio: number;
  rounds: number;
  unbundled: string;
  method: string;
}

function coldStart(): ColdStart {
  log('cold start: building dist/ (esbuild) and the unbundled build (tsc)');
  // dist/ is shared with anyone else building in this checkout: the bench measures its own copy.
  const bundledDir = join(ROOT, 'build', 'bench-bundled');
  for (let attempt = 1; ; attempt++) {
    const build = spawnSync(process.execPath, [join(ROOT, 'scripts', 'build.mjs')], {
      cwd: ROOT,
      encoding: 'utf8',
    });
    try {
      if (build.status !== 0) throw new Error(`build failed: ${build.stdout}${build.stderr}`);
      rmSync(bundledDir, { recursive: true, force: true });
      mkdirSync(bundledDir, { recursive: true });
      for (const f of readdirSync(join(ROOT, 'dist')).filter((n) => n.endsWith('.js')))
        copyFileSync(join(ROOT, 'dist', f), join(bundledDir, f));
      if (!existsSync(join(bundledDir, 'index.js'))) throw new Error('dist/index.js vanished');
      break;
    } catch (error) {
      if (attempt >= 3) throw error;
    }
  }
  const tsc = spawnSync(
    process.execPath,
    [
      join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc'),
      '-p',
      join(__dirname, 'tsconfig.unbundled.json'),
    ],
    { cwd: ROOT, encoding: 'utf8' },
  );
  if (tsc.status !== 0) throw new Error(`tsc failed: ${tsc.stdout}${tsc.stderr}`);
  const bundled = join(bundledDir, 'index.js');
  const unbundled = join(ROOT, 'build', 'bench-unbundled', 'functions', 'index.js');
  const rounds = 9;
  const times: Record<string, number[]> = { [bundled]: [], [unbundled]: [] };
  const probe = (file: string) =>
    `const t=performance.now();require(${JSON.stringify(file)});process.stdout.write(String(performance.now()-t))`;
  for (let i = 0; i < rounds; i++) {
    for (const file of [bundled, unbundled]) {
      const run = spawnSync(process.execPath, ['-e', probe(file)], {
        cwd: ROOT,
        encoding: 'utf8',
        env: { PATH: process.env.PATH ?? '' },
      });
      if (run.status !== 0) throw new Error(`loading ${file} failed: ${run.stderr}`);
      times[file]!.push(Number(run.stdout));
    }
  }
  const bundledMs = percentile(times[bundled]!, 50);
  const unbundledMs = percentile(times[unbundled]!, 50);
  return {
    bundledMs: round(bundledMs, 1),
    unbundledMs: round(unbundledMs, 1),
    ratio: round(unbundledMs / bundledMs, 2),
    rounds,
    unbundled: 'tsc output of functions/ and lib/ (CommonJS, node_modules resolved by Node)',
    method:
      'require() of the entry in a fresh node process, timed inside it (Node start-up excluded); median, interleaved',
  };
}

interface Overhead {
  overheadP50Ms: number;
  overheadP99Ms: number;
  /** p99 of the first run alone, and of its CPU time (all threads: collector and compiler included). */
  singleRunWallP99Ms: number;
  cpuP99Ms: number;
  events: number;
  runs: number;
  measure: string;
}

/** kvguard's own cost per event with the fakes: no network, no waiting (every lag and latency 0). */
async function overhead(): Promise<Overhead> {
  log(
    `overhead: ${OVERHEAD.events} events through normalise → pipeline → alert with the fakes, ${OVERHEAD.runs} runs`,
  );
  // The fakes and their estate (test/fakes): one vault; a fresh set of fakes every chunk, so their
  // in-memory ledger and sinks (remote in production) do not grow the heap the collector walks.
  const { testPipeline, PAYMENTS_HOST } = await import('../fakes');
  const fixture = JSON.parse(
    readFileSync(join(ROOT, 'test', 'fixtures', 'auditevent', 'keydelete-app-uri-claims.json'), 'utf8'),
  ) as Record<string, unknown> & { properties: Record<string, unknown> };
  const logger = createLogger('info', quiet, { fn: 'bench' });
  const chunk = 250;
  // Per event (by position in the sequence): its wall time in each run, and its CPU time.
  const wall: number[][] = [];
  const cpu: number[] = [];
  for (let run = 0; run < OVERHEAD.runs; run++) {
    for (let done = -OVERHEAD.warmup; done < OVERHEAD.events; done += chunk) {
      const tp = testPipeline({ start: new Date() });
      const events: unknown[] = [];
      for (let i = 0; i < chunk; i++) {
        const name = `bench-${i}`;
        tp.keyVault.createKey(PAYMENTS_HOST, name);
        const deletedOn = tp.keyVault.deleteKey(PAYMENTS_HOST, name);
        const record = {
          ...fixture,
          time: deletedOn.toISOString(),
          properties: {
            ...fixture.properties,
            id: `https://${PAYMENTS_HOST}/keys/${name}`,
            requestUri: `https://${PAYMENTS_HOST}/keys/${name}?api-version=7.4`,
          },
        };
        const [signal] = toSignalCloudEvents(record);
        if (!signal || 'kind' in signal) throw new Error('the fixture did not become a signal');
        // As Event Grid delivers the forwarder's CloudEvent.
        const { id, type, source, subject, time, data } = signal;
        events.push({
          specversion: '1.0',
          id,
          type,
          source,
          subject,
          time,
          data,
          datacontenttype: 'application/json',
        });
      }
      await tp.inventory.current();
      global.gc?.();
      for (let i = 0; i < chunk; i++) {
        const c0 = process.cpuUsage();
        const t0 = performance.now();
        for (const r of normalise(events[i], 'eventGrid')) {
          if (isRejection(r)) throw new Error(`rejected: ${r.message}`);
          const [outcome] = await tp.pipeline.run(r, {
            invocationId: `o-${done}-${i}`,
            log: logger,
          });
          if (outcome?.status !== 'acted') throw new Error(`overhead event ${i}: ${outcome?.status}`);
        }
        const t1 = performance.now();
        const c = process.cpuUsage(c0);
        if (done >= 0) {
          const at = done + i;
          (wall[at] ??= []).push(t1 - t0);
          if (run === 0) cpu.push((c.user + c.system) / 1000);
        }
      }
    }
  }
  const best = wall.map((times) => Math.min(...times));
  const first = wall.map((times) => times[0]!);
  return {
    overheadP50Ms: round(percentile(best, 50), 3),
    overheadP99Ms: round(percentile(best, 99), 3),
    singleRunWallP99Ms: round(percentile(first, 99), 3),
    cpuP99Ms: round(percentile(cpu, 99), 3),
    events: best.length,
    runs: OVERHEAD.runs,
    measure: `wall time per event (normalise → pipeline → alert, fakes behind lib/ports.ts, no network); the same ${OVERHEAD.events} events run ${OVERHEAD.runs} times with fresh fakes, each event's best run counted, so time the CPUs gave to other processes drops out (garbage collection, which recurs at the same events, stays in)`,
  };
}

interface Recovery {
  samples: number;
  p50Ms: number;
  p99Ms: number;
  floorMs: number;
  ratioP50: number;
  sdkDefaultP50Ms: number;
  sdkDefaultSamples: number;
  allRecovered: boolean;
  samplesMs: number[];
  sdkDefaultSamplesMs: number[];
}

/** Delivers each signal alone, after its deletion completed; returns delivery → alert received times. */
async function timeRecoveries(
  env: BenchEnv,
  rt: Runtime,
  signals: Record<string, unknown>[],
): Promise<{ times: number[]; recovered: boolean }> {
  const sent: Array<{ t0: number; incidentId?: string }> = [];
  for (const signal of signals) {
    const t0 = Date.now();
    const d = await deliver(rt, signal);
    if (d.error) throw new Error(`recovery delivery failed: ${d.error}`);
    sent.push({ t0, incidentId: d.incidentId });
  }
  const alerts = new Map((await alertsOnTopic(env)).map((a) => [a.id, a]));
  let recovered = true;
  const times = sent.map((s) => {
    const alert = alerts.get(`${s.incidentId}/primary`);
    if (!alert) throw new Error(`no primary alert for ${s.incidentId}`);
    recovered &&= alert.recovered;
    return alert.publishTime - s.t0;
  });
  return { times, recovered };
}

/** Recovery through the SDK's own poller at its default 2 s interval (for `sdkDefaultP50Ms`). */
function sdkDefaultKeyVault(rt: Runtime, ready: BenchEnvReady): KeyVaultData {
  const credential = new ManagedIdentityCredential({ clientId: ready.settings.AZURE_CLIENT_ID! });
  const clients = new Map<string, KeyClient>();
  return {
    observeKey: (host, name) => rt.keyVault.observeKey(host, name),
    listDeletedKeys: (host) => rt.keyVault.listDeletedKeys(host),
    async recoverKey(host, name): Promise<RecoverOutcome> {
      let client = clients.get(host);
      if (!client) clients.set(host, (client = new KeyClient(`https://${host}`, credential)));
      const poller = await client.beginRecoverDeletedKey(name);
      await poller.pollUntilDone();
      return { result: 'recovered', polls: 1 };
    },
  };
}

async function recovery(env: BenchEnv, rt: Runtime): Promise<Recovery> {
  const vaults = Array.from({ length: RECOVERY.vaults }, (_, i) => `kv-bench-rec-${i}`);
  log(`recovery: ${RECOVERY.vaults * RECOVERY.keysPerVault} deletions, one at a time`);
  await env.deletedKeys([...vaults, 'kv-bench-warm', 'kv-bench-sdk'], RECOVERY.keysPerVault, {
    purgeProtection: false,
  });
  const signals = await signalsFor(env, rt, vaults);
  const warm = await signalsFor(env, rt, ['kv-bench-warm']);
  const sdk = await signalsFor(env, rt, ['kv-bench-sdk']);
  await rt.inventory.refresh();
  await env.timing(LATENCY_MS, LAG_MS);
  await sleep(LAG_MS * 2);
  // A warm instance: tokens, connections and the ledger table exist (the first 2 deliveries).
  await timeRecoveries(env, rt, warm.slice(0, 2));
  const kvguard = await timeRecoveries(env, rt, signals);

  log(`recovery: ${RECOVERY.sdkDefaultSamples} deletions with the SDK's default poll interval`);
  // The same pipeline as kvguard's, recovering through the SDK's poller at its default interval.
  const sdkPipeline = rt.pipelineWith({ keyVault: sdkDefaultKeyVault(rt, env.ready) });
  const sdkRt: Runtime = { ...rt, pipeline: sdkPipeline };
  await timeRecoveries(env, sdkRt, sdk.slice(0, 1));
  const sdkDefault = await timeRecoveries(env, sdkRt, sdk.slice(1, 1 + RECOVERY.sdkDefaultSamples));
  const p50 = percentile(kvguard.times, 50);
  return {
    samples: kvguard.times.length,
    p50Ms: p50,
    p99Ms: percentile(kvguard.times, 99),
    floorMs: RECOVERY_FLOOR_MS,
    ratioP50: round(p50 / RECOVERY_FLOOR_MS, 2),
    sdkDefaultP50Ms: percentile(sdkDefault.times, 50),
    sdkDefaultSamples: sdkDefault.times.length,
    allRecovered: kvguard.recovered && sdkDefault.recovered,
    samplesMs: kvguard.times,
    sdkDefaultSamplesMs: sdkDefault.times,
  };
}

interface Flood {
  events: number;
  recovered: number;
  duplicateRecoveries: number;
  duplicateAlerts: number;
  redeliveries: number;
  failedDeliveries: number;
  wallMs: number;
  throughputPerS: number;
  floorPerS: number;
  ratio: number;
  peakRssMb: number;
  calls: number;
  /** CPU cores kept busy on average (1 = one core) by kvguard's process and by the emulated Azure. */
  cpuCoresBusy: { kvguardProcess?: number; emulatorAndAzurite?: number };
  /** One delivery's time as the driver saw it (16 in flight). */
  deliveryMs: { p50: number; p99: number };
}

/** kvguard in a process of its own (test/bench/worker.ts), as a Functions worker would run it. */
async function startWorker(settings: Record<string, string>) {
  const child = fork(join(__dirname, 'worker.ts'), [JSON.stringify(settings)], {
    cwd: ROOT,
    env: process.env,
    execArgv: [
      '--import',
      'tsx',
      ...(process.env.BENCH_PROFILE_DIR
        ? ['--cpu-prof', `--cpu-prof-dir=${process.env.BENCH_PROFILE_DIR}`]
        : []),
    ],
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  const waiting = new Map<number, (reply: WorkerReply) => void>();
  const once = new Map<string, (reply: WorkerReply) => void>();
  child.on('message', (m: WorkerReply) => {
    if (m.type === 'delivered') {
      waiting.get(m.id)?.(m);
      waiting.delete(m.id);
    } else once.get(m.type)?.(m);
  });
  const next = (type: WorkerReply['type']) => new Promise<WorkerReply>((resolve) => once.set(type, resolve));
  await Promise.race([
    next('ready'),
    new Promise((_, reject) =>
      child.once('exit', (code) => reject(new Error(`the worker exited with ${code}`))),
    ),
  ]);
  let ids = 0;
  return {
    pid: child.pid!,
    async refresh() {
      const done = next('refreshed');
      child.send({ type: 'refresh' } satisfies WorkerRequest);
      await done;
    },
    deliver(event: unknown) {
      const id = ++ids;
      const done = new Promise<WorkerReply>((resolve) => waiting.set(id, resolve));
      child.send({ type: 'deliver', id, event } satisfies WorkerRequest);
      return done as Promise<Extract<WorkerReply, { type: 'delivered' }>>;
    },
    async maxRssMb() {
      const stats = next('stats');
      child.send({ type: 'stats' } satisfies WorkerRequest);
      return ((await stats) as Extract<WorkerReply, { type: 'stats' }>).maxRssMb;
    },
    async stop() {
      const exited = new Promise((r) => child.once('exit', r));
      child.send({ type: 'exit' } satisfies WorkerRequest);
      await Promise.race([exited, sleep(5000)]);
    },
  };
}

async function flood(env: BenchEnv, rt: Runtime): Promise<Flood> {
  const vaults = Array.from({ length: FLOOD.vaults }, (_, i) => `kv-bench-flood-${i}`);
  const total = FLOOD.vaults * FLOOD.keysPerVault;
  log(`flood: seeding and deleting ${total} keys in ${FLOOD.vaults} vaults`);
  await env.deletedKeys(vaults, FLOOD.keysPerVault, { purgeProtection: false });
  const signals = await signalsFor(env, rt, vaults);
  // Deliveries arrive interleaved across vaults, as an attack across vaults would produce them.
  const random = seededRandom(6);
  for (let i = signals.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    [signals[i], signals[j]] = [signals[j]!, signals[i]!];
  }
  // A fresh kvguard process: its first deliveries get their tokens and connections, as after a scale-out.
  const worker = await startWorker(env.ready.settings);
  try {
    await worker.refresh();
    await env.timing(LATENCY_MS, LAG_MS);
    await sleep(LAG_MS * 2);
    await env.mark();
    log(`flood: delivering ${signals.length} signals, ${FLOOD.concurrency} at a time, to a kvguard process`);
    let redeliveries = 0;
    let failed = 0;
    const cpu0 = { kvguard: cpuSeconds(worker.pid), env: env.pid ? cpuSeconds(env.pid) : undefined };
    const t0 = performance.now();
    const took: number[] = [];
    await pool(signals, FLOOD.concurrency, async (signal) => {
      const s0 = performance.now();
      const d = await worker.deliver(signal);
      took.push(performance.now() - s0);
      redeliveries += d.attempts - 1;
      if (d.error) failed++;
    });
    const wallMs = performance.now() - t0;
    const cpuShare = (before: number | undefined, now: number | undefined) =>
      before === undefined || now === undefined ? undefined : round(((now - before) * 1000) / wallMs, 2);
    const cpu = {
      kvguardProcess: cpuShare(cpu0.kvguard, cpuSeconds(worker.pid)),
      emulatorAndAzurite: cpuShare(cpu0.env, env.pid ? cpuSeconds(env.pid) : undefined),
    };
    const peakRssMb = await worker.maxRssMb();
    if (process.env.BENCH_DEBUG)
      log(
        `flood delivery p50 ${percentile(took, 50).toFixed(0)} ms, p99 ${percentile(took, 99).toFixed(0)} ms`,
      );
    const requests = await env.requestsSinceMark();
    if (process.env.BENCH_DEBUG) printRequestKinds(requests);
    const recoverPosts = new Map<string, number>();
    for (const r of requests) {
      if (r.method === 'POST' && /^\/deletedkeys\/[^/]+\/recover$/.test(r.path) && r.status === 200) {
        const k = `${r.host}${r.path}`;
        recoverPosts.set(k, (recoverPosts.get(k) ?? 0) + 1);
      }
    }
    const primaries = (await alertsOnTopic(env)).filter(
      (a) => a.id.endsWith('/primary') && vaults.includes(a.vaultName ?? ''),
    );
    const perKey = new Map<string, AlertOnTopic[]>();
    for (const a of primaries) {
      const k = `${a.vaultName}/${a.keyName}`;
      perKey.set(k, [...(perKey.get(k) ?? []), a]);
    }
    const recovered = [...perKey.values()].filter((list) => list.some((a) => a.recovered)).length;
    const duplicateAlerts = [...perKey.values()].reduce((n, list) => n + list.length - 1, 0);
    const duplicateRecoveries = [...recoverPosts.values()].reduce((n, c) => n + c - 1, 0);
    const throughputPerS = (recovered / wallMs) * 1000;
    const floorPerS = FLOOD.concurrency / (RECOVERY_FLOOR_MS / 1000);
    return {
      events: signals.length,
      recovered,
      duplicateRecoveries,
      duplicateAlerts,
      redeliveries,
      failedDeliveries: failed,
      wallMs: round(wallMs),
      throughputPerS: round(throughputPerS, 1),
      floorPerS,
      ratio: round(throughputPerS / floorPerS, 2),
      peakRssMb: round(peakRssMb, 1),
      calls: countCalls(requests).calls,
      cpuCoresBusy: cpu,
      deliveryMs: { p50: round(percentile(took, 50)), p99: round(percentile(took, 99)) },
    };
  } finally {
    await worker.stop();
  }
}

interface CallsSection {
  status: string;
  wallMs?: number;
  floorMs?: number;
  ratio?: number;
  calls?: number;
  minCalls?: number;
  challenges?: number;
  floorWithThrottlingMs?: number;
  [k: string]: unknown;
}

async function sweep(env: BenchEnv, ready: BenchEnvReady): Promise<CallsSection> {
  if (!existsSync(join(ROOT, 'lib', 'sweep.ts'))) return { status: 'not measured: lib/sweep.ts missing' };
  const { sweepDeletedKeys } = await import('../../lib/sweep');
  // No workspace: what is measured is finding the deletions and bringing the keys back (the calls
  // `minCalls` counts), not the attribution follow-ups a later run would ask the workspace for.
  const { KVGUARD_WORKSPACE_ID: _workspace, ...settings } = ready.settings;
  const rt = createRuntime(
    loadConfig({ ...settings, KVGUARD_SWEEP_CONCURRENCY: String(SWEEP.concurrency) }),
    { processLog: quiet },
  );
  const vaults = Array.from(
    { length: SWEEP.vaults },
    (_, i) => `kv-bench-sweep-${String(i).padStart(2, '0')}`,
  );
  const total = SWEEP.vaults * SWEEP.keysPerVault;
  log(`sweep: seeding and deleting ${total} keys in ${SWEEP.vaults} vaults`);
  await env.deletedKeys(vaults, SWEEP.keysPerVault, { purgeProtection: true });
  await rt.inventory.refresh();
  await env.timing(LATENCY_MS, LAG_MS);
  await sleep(LAG_MS * 2);
  await env.mark();
  log(
    'sweep: running the sweep (every 30 s in Azure; here back to back) until every key is back, at most 3 runs',
  );
  const t0 = performance.now();
  const reports = [];
  for (let run = 0, recovered = 0; run < 3 && recovered < total; run++) {
    const report = await sweepDeletedKeys(rt, invocation(rt));
    reports.push(report);
    recovered += report.recovered;
  }
  const wallMs = performance.now() - t0;
  const requests = await env.requestsSinceMark();
  if (process.env.BENCH_DEBUG) {
    printRequestKinds(requests);
    for (const r of reports)
      console.error(
        JSON.stringify({ ...r, failures: r.failures.length, firstFailure: r.failures[0]?.detail }),
      );
  }
  const { calls, challenges } = countCalls(requests);
  const recovered = reports.reduce((n, r) => n + r.recovered, 0);
  const pages = Math.ceil(SWEEP.keysPerVault / SWEEP.pageSize);
  const subscriptions = 1;
  const listCalls = SWEEP.vaults * pages + subscriptions;
  // Per recovery: the SDK's pre-read, the recover call, one confirming read, one alert publish (the
  // list row serves as the observe read).
  const minCalls = listCalls + total * 4;
  // Work-conserving bound at the sweep's concurrency: every call 25 ms, every recovery 250 ms
  // (pre-read, recover, completion lag, confirming read, alert publish).
  const floorMs = Math.ceil((listCalls * LATENCY_MS + total * (4 * LATENCY_MS + LAG_MS)) / SWEEP.concurrency);
  return {
    status: recovered === total ? 'measured' : `measured: ${recovered} of ${total} recovered`,
    vaults: SWEEP.vaults,
    deletedKeys: total,
    recovered,
    runs: reports.length,
    perRun: reports.map((r) => ({
      durationMs: r.durationMs,
      recovered: r.recovered,
      leftForNextRun: r.leftForNextRun,
    })),
    concurrency: SWEEP.concurrency,
    workspace: 'none configured (no attribution queries)',
    wallMs: round(wallMs),
    floorMs,
    ratio: round(wallMs / floorMs, 2),
    calls,
    minCalls,
    challenges,
    failures: reports.flatMap((r) => r.failures).length,
  };
}

/** What kvguard's identity needs for the posture, per subscription (infra/subscription.json holds the same). */
const POSTURE_ACTIONS = [
  'Microsoft.KeyVault/vaults/read',
  'Microsoft.KeyVault/vaults/write',
  'Microsoft.KeyVault/deletedVaults/read',
  'Microsoft.KeyVault/locations/deletedVaults/read',
  'Microsoft.Security/pricings/read',
  'Microsoft.Security/pricings/write',
  'Microsoft.Security/locations/jitNetworkAccessPolicies/read',
  'Microsoft.Security/locations/jitNetworkAccessPolicies/write',
  'Microsoft.Compute/virtualMachines/read',
  'Microsoft.Compute/virtualMachines/write',
];

async function reconcile(env: BenchEnv): Promise<CallsSection> {
  if (!existsSync(join(ROOT, 'lib', 'posture', 'run.ts')))
    return { status: 'not measured: lib/posture (reconcilePosture) missing' };
  const { runPostureReconciliation } = await import('../../lib/posture/run');
  const subs = Array.from(
    { length: RECONCILE.subscriptions },
    (_, i) => `00000000-0000-4000-8000-${(0x200 + i).toString(16).padStart(12, '0')}`,
  );
  log(`reconcile: ${RECONCILE.subscriptions} subscriptions × ${RECONCILE.vms} VMs, ARM throttling on`);
  await env.timing(0, 0);
  for (const sub of subs) {
    await env.admin('POST', '/posture', { kind: 'subscription', subscriptionId: sub });
    await env.admin('POST', '/roleAssignments', {
      principalId: env.ready.identityOid,
      scope: `/subscriptions/${sub}`,
      actions: POSTURE_ACTIONS,
    });
  }
  const vms = subs.flatMap((sub) =>
    Array.from({ length: RECONCILE.vms }, (_, i) => ({
      kind: 'virtualMachine',
      subscriptionId: sub,
      resourceGroup: 'rg-vms',
      location: 'westeurope',
      name: `vm-${String(i).padStart(3, '0')}`,
      tags: { 'kvguard-jit': 'on' },
    })),
  );
  await pool(vms, 16, async (vm) => {
    await env.admin('POST', '/posture', vm);
  });
  // Drift in every subscription: Defender for Servers is not P2, and no VM has JIT access. Fixing it
  // takes one plan write and one JIT policy write (every VM of the resource group and region) each.
  const desired = {
    mode: 'enforce',
    defaults: {
      defenderPlans: { VirtualMachines: { tier: 'Standard', subPlan: 'P2' } },
      jit: {
        selector: { tag: { name: 'kvguard-jit', value: 'on' } },
        ports: [
          {
            number: 22,
            protocol: 'TCP',
            allowedSourceAddressPrefixes: ['10.0.0.0/8'],
            maxRequestAccessDuration: 'PT3H',
          },
        ],
      },
    },
  };
  const runtimeFor = (posture: unknown) =>
    createRuntime(
      loadConfig({
        ...env.ready.settings,
        KVGUARD_SUBSCRIPTIONS: subs.join(','),
        KVGUARD_POSTURE: JSON.stringify(posture),
        KVGUARD_POSTURE_CONCURRENCY: String(RECONCILE.concurrency),
      }),
      { processLog: quiet },
    );
  // What the figure leaves out is what only a process's first run pays — loading the posture's ARM
  // SDKs (lib/adapters/lazy.ts; coldStart measures loading), compiling their code paths, opening the
  // connection to ARM: the hourly timer's process has run it before. So one run in report mode (it
  // lists everything and writes nothing) goes first, with no injected latency, from a runtime of its
  // own; the measured run's runtime is new (its own SDK clients, as every run's are).
  const warmupRuntime = runtimeFor({ ...desired, mode: 'report' });
  const warmup = await runPostureReconciliation(warmupRuntime, invocation(warmupRuntime));
  if (!warmup.ok) return { status: `not measured: the warm-up run failed: ${warmup.problems.join('; ')}` };
  const rt = runtimeFor(desired);
  await env.timing(LATENCY_MS, LAG_MS);
  await env.admin('POST', '/faults', {
    kind: 'throttle',
    host: 'management.azure.com',
    rate: RECONCILE.throttleRate,
    retryAfterMs: RECONCILE.retryAfterMs,
  });
  await env.mark();
  const t0 = performance.now();
  const cpu0 = process.cpuUsage();
  const result = await runPostureReconciliation(rt, invocation(rt));
  const wallMs = performance.now() - t0;
  const cpu = process.cpuUsage(cpu0);
  await env.admin('DELETE', '/faults');
  const everything = await env.requestsSinceMark();
  const requests = everything.filter((r) => r.host === 'management.azure.com');
  if (process.env.BENCH_DEBUG) printRequestKinds(requests);
  if (process.env.BENCH_TIMELINE) {
    // Every call of the run (ARM, the identity endpoint, the alert sinks), in ms from the run's start.
    const startedAt = Date.now() - (performance.now() - t0);
    for (const r of everything)
      console.error(
        `${Date.parse(r.time) - startedAt} +${r.durationMs} ${r.method} ${r.host === 'management.azure.com' ? '' : r.host}${r.path} ${r.status}`,
      );
    console.error(`wall ${round(wallMs)} ms`);
  }
  if (!result.ok)
    return { status: `not measured: the desired posture is invalid: ${result.problems.join('; ')}` };
  const throttled = requests.filter((r) => r.status === 429).length;
  const served = requests.filter((r) => r.outcome === 'served' && r.status !== 401);
  const pages = Math.ceil(RECONCILE.vms / 25);
  // Per subscription: one list of the Defender plans, of the VMs (per page of 25) and of the JIT
  // policies; one write per change: a plan, and a JIT policy (all the VMs of its resource group and
  // region go in one write).
  const changed = result.report.entries.filter((e) => e.action === 'change');
  const planWrites = changed.filter((e) => e.item === 'defenderPlan').length;
  const jitWrites = new Set(
    changed.filter((e) => e.item === 'jit').map((e) => e.resource.split('/providers/')[0]!.toLowerCase()),
  ).size;
  const minCalls = RECONCILE.subscriptions * (1 + pages + 1) + planWrites + jitWrites;
  // Per subscription, what must happen one after the other: the JIT write after the plan write (the
  // plans' list, then the write) and after the VM pages (one after the other) and the JIT list; at the
  // run's concurrency of subscriptions.
  const perSubscriptionMs = (Math.max(2, pages, 1) + 1) * LATENCY_MS;
  const floorMs = Math.ceil(RECONCILE.subscriptions / RECONCILE.concurrency) * perSubscriptionMs;
  const withThrottling = throttledFloorMs(subs, requests);
  return {
    status:
      result.report.counts.failed === 0
        ? 'measured'
        : `measured: ${result.report.counts.failed} failed entries`,
    subscriptions: RECONCILE.subscriptions,
    vmsPerSubscription: RECONCILE.vms,
    concurrency: RECONCILE.concurrency,
    throttling: `${RECONCILE.throttleRate * 100}% of ARM calls answered 429 (retry-after-ms ${RECONCILE.retryAfterMs})`,
    changes: changed.length,
    writes: { plans: planWrites, jitPolicies: jitWrites },
    applied: result.report.entries.filter((e) => e.applied).length,
    wallMs: round(wallMs),
    floorMs,
    ratio: round(wallMs / floorMs, 2),
    calls: served.length,
    minCalls,
    throttled,
    process: 'one report-mode run before the clock (the timer has run before in its process)',
    // Not the goal's floor: the same schedule with every 429 this run received costing its
    // Retry-After and the repeated call, which no client that honours Retry-After can avoid.
    floorWithThrottlingMs: withThrottling,
    ratioToFloorWithThrottling: round(wallMs / withThrottling, 2),
    cpuMs: round((cpu.user + cpu.system) / 1000),
  };
}

/**
 * The reconcile's floor schedule (see floorMs) with the 429s of this run added: each 429 delays its
 * call's chain by the Retry-After it carried and one more call. Per subscription the JIT write waits
 * for the plans (list, write), the VM pages and the JIT list; subscriptions take the first of
 * RECONCILE.concurrency slots to come free, in order, as p-limit gives them out.
 */
function throttledFloorMs(subs: string[], requests: RequestLogEntry[]): number {
  const extra = LATENCY_MS + RECONCILE.retryAfterMs;
  const chains = subs.map((sub) => {
    const mine = requests.filter((r) => r.path.toLowerCase().startsWith(`/subscriptions/${sub}/`));
    const throttled = (test: (r: RequestLogEntry) => boolean) =>
      mine.filter((r) => r.status === 429 && test(r)).length * extra;
    const planList = LATENCY_MS + throttled((r) => r.method === 'GET' && /\/pricings$/i.test(r.path));
    const planWrite = LATENCY_MS + throttled((r) => r.method === 'PUT' && /\/pricings\//i.test(r.path));
    const vmPages =
      Math.ceil(RECONCILE.vms / 25) * LATENCY_MS + throttled((r) => /\/virtualMachines$/i.test(r.path));
    const jitList =
      LATENCY_MS + throttled((r) => r.method === 'GET' && /\/jitNetworkAccessPolicies$/i.test(r.path));
    const jitWrite =
      LATENCY_MS + throttled((r) => r.method === 'PUT' && /\/jitNetworkAccessPolicies\//i.test(r.path));
    return Math.max(planList + planWrite, vmPages, jitList) + jitWrite;
  });
  const slots = new Array<number>(RECONCILE.concurrency).fill(0);
  for (const chain of chains) {
    const first = slots.indexOf(Math.min(...slots));
    slots[first] = slots[first]! + chain;
  }
  return Math.max(...slots);
}

// --------------------------------------------------------------------------------------- main

interface Results {
  generatedAt: string;
  node: string;
  cpus: number;
  /** The machine's load (1-minute average) when the run started and ended: other processes share the CPUs. */
  loadAverage: { start: number; end?: number };
  setup: Record<string, unknown>;
  recovery?: Recovery | { status: string };
  flood?: Flood | { status: string };
  sweep?: CallsSection;
  reconcile?: CallsSection;
  overheadP99Ms?: number;
  overhead?: Overhead;
  coldStart?: ColdStart | { status: string };
  goals: Record<string, { goal: string; met: boolean | null }>;
  durationS?: number;
}

async function main(): Promise<void> {
  const { cpus, loadavg } = await import('node:os');
  const results: Results = {
    generatedAt: new Date().toISOString(),
    node: process.version,
    cpus: cpus().length,
    loadAverage: { start: round(loadavg()[0]!, 2) },
    setup: {
      latencyMsPerCall: LATENCY_MS,
      completionLagMs: LAG_MS,
      emulator:
        'test/bench/env.ts in its own process (emulator + Azurite); kvguard and the driver in this one',
      connections:
        'kept alive through the emulator proxy and shared by every SDK client, as they are without a proxy in Azure (see keepProxyConnectionsAlive in run.ts)',
      command: 'npm run bench',
    },
    goals: {},
  };
  const over = () => Date.now() - started > BUDGET_MS;
  const skipped = { status: 'not measured: out of time' };
  if (enabled('coldStart')) results.coldStart = coldStart();
  if (['sweep', 'recovery', 'flood', 'reconcile'].some(enabled)) {
    keepProxyConnectionsAlive();
    const env = await BenchEnv.start();
    try {
      const rt = createRuntime(loadConfig(env.ready.settings), { processLog: quiet });
      if (enabled('sweep')) results.sweep = over() ? skipped : await sweep(env, env.ready);
      if (enabled('recovery') && over()) results.recovery = skipped;
      else if (enabled('recovery')) results.recovery = await recovery(env, rt);
      if (enabled('flood')) results.flood = over() ? skipped : await flood(env, rt);
      if (enabled('reconcile')) results.reconcile = over() ? skipped : await reconcile(env);
    } finally {
      await env.stop();
    }
  }
  // Last: its thousands of fake incidents would otherwise stay in this process's RSS during the flood.
  if (enabled('overhead')) {
    const o = await overhead();
    results.overhead = o;
    results.overheadP99Ms = o.overheadP99Ms;
  }
  results.loadAverage.end = round(loadavg()[0]!, 2);
  results.goals = goals(results);
  results.durationS = round((Date.now() - started) / 1000);
  mkdirSync(RESULTS_DIR, { recursive: true });
  writeFileSync(
    join(RESULTS_DIR, only ? 'partial.tmp' : 'latest.json'),
    `${JSON.stringify(results, null, 2)}\n`,
  );
  if (!only) drawChart(results);
  printTable(results);
}

/** The chart of the recovery-time distribution, drawn from the results (`--redraw`: from latest.json). */
function drawChart(results: Results): void {
  const r = results.recovery;
  if (!r || !('p50Ms' in r)) return;
  writeFileSync(
    join(RESULTS_DIR, 'recovery.svg'),
    recoveryChart({
      kvguardMs: r.samplesMs,
      sdkDefaultMs: r.sdkDefaultSamplesMs,
      floorMs: r.floorMs,
      goalMs: r.floorMs * 1.5,
      p50Ms: r.p50Ms,
      sdkDefaultP50Ms: r.sdkDefaultP50Ms,
      title: `kvguard recovery time, ${LATENCY_MS} ms per call, ${LAG_MS} ms completion lag (${results.generatedAt.slice(0, 10)})`,
    }),
  );
}

function goals(r: Results): Results['goals'] {
  const g: Results['goals'] = {};
  const rec = r.recovery && 'ratioP50' in r.recovery ? r.recovery : undefined;
  g.recovery = { goal: 'ratioP50 ≤ 1.5', met: rec ? rec.ratioP50 <= 1.5 : null };
  const f = r.flood && 'ratio' in r.flood ? r.flood : undefined;
  g.flood = {
    goal: 'all recovered, zero duplicates, ratio ≥ 0.8, peakRssMb ≤ 250',
    met: f
      ? f.recovered === f.events &&
        f.duplicateAlerts === 0 &&
        f.duplicateRecoveries === 0 &&
        f.ratio >= 0.8 &&
        f.peakRssMb <= 250
      : null,
  };
  for (const name of ['sweep', 'reconcile'] as const) {
    const s = r[name];
    g[name] = {
      goal: 'wall ≤ 1.5 × floor, calls ≤ minCalls',
      met:
        s && s.wallMs !== undefined && s.floorMs !== undefined
          ? s.wallMs <= 1.5 * s.floorMs && (s.calls ?? Infinity) <= (s.minCalls ?? -1)
          : null,
    };
  }
  g.overhead = {
    goal: 'overheadP99Ms ≤ 5',
    met: r.overheadP99Ms !== undefined ? r.overheadP99Ms <= 5 : null,
  };
  const c = r.coldStart && 'ratio' in r.coldStart ? r.coldStart : undefined;
  g.coldStart = {
    goal: 'bundledMs ≤ 150, ratio ≥ 1.8',
    met: c ? c.bundledMs <= 150 && c.ratio >= 1.8 : null,
  };
  return g;
}

function printTable(r: Results): void {
  const rows: Array<[string, string, string, string]> = [];
  const verdict = (k: string) => {
    const met = r.goals[k]?.met;
    return met === null || met === undefined ? 'n/a' : met ? 'met' : 'MISSED';
  };
  const rec = r.recovery && 'p50Ms' in r.recovery ? r.recovery : undefined;
  rows.push([
    'recovery',
    rec
      ? `p50 ${rec.p50Ms} ms, p99 ${rec.p99Ms} ms, floor ${rec.floorMs} ms, SDK default p50 ${rec.sdkDefaultP50Ms} ms`
      : String((r.recovery as { status?: string } | undefined)?.status),
    rec ? `ratioP50 ${rec.ratioP50}` : '',
    verdict('recovery'),
  ]);
  const f = r.flood && 'ratio' in r.flood ? r.flood : undefined;
  rows.push([
    'flood',
    f
      ? `${f.recovered}/${f.events} recovered, dup recoveries ${f.duplicateRecoveries}, dup alerts ${f.duplicateAlerts}, ${f.throughputPerS}/s (floor ${f.floorPerS}/s), peak RSS ${f.peakRssMb} MB`
      : String((r.flood as { status?: string } | undefined)?.status),
    f ? `ratio ${f.ratio}` : '',
    verdict('flood'),
  ]);
  for (const name of ['sweep', 'reconcile'] as const) {
    const s = r[name];
    rows.push([
      name,
      s && s.wallMs !== undefined
        ? `wall ${s.wallMs} ms (floor ${s.floorMs} ms${s.floorWithThrottlingMs !== undefined ? `; ${s.floorWithThrottlingMs} ms with its 429s` : ''}), calls ${s.calls} (min ${s.minCalls})`
        : String(s?.status),
      s?.ratio !== undefined ? `ratio ${s.ratio}` : '',
      verdict(name),
    ]);
  }
  rows.push([
    'overhead',
    r.overhead
      ? `p50 ${r.overhead.overheadP50Ms} ms, p99 ${r.overhead.overheadP99Ms} ms (one run: p99 ${r.overhead.singleRunWallP99Ms} ms wall, ${r.overhead.cpuP99Ms} ms CPU)`
      : 'n/a',
    '',
    verdict('overhead'),
  ]);
  const c = r.coldStart && 'ratio' in r.coldStart ? r.coldStart : undefined;
  rows.push([
    'coldStart',
    c ? `bundled ${c.bundledMs} ms, unbundled ${c.unbundledMs} ms` : 'n/a',
    c ? `ratio ${c.ratio}` : '',
    verdict('coldStart'),
  ]);
  const widths = [10, 0, 16, 6];
  widths[1] = Math.max(...rows.map((row) => row[1].length));
  const line = (cells: string[]) => cells.map((c, i) => c.padEnd(widths[i]!)).join(' | ');
  console.log(line(['section', 'figures', 'ratio', 'goal']));
  console.log(widths.map((w) => '-'.repeat(w)).join('-|-'));
  for (const row of rows) console.log(line(row));
  console.log(`\n${r.durationS} s; results in test/bench/results/latest.json and recovery.svg`);
}

if (process.argv.includes('--redraw')) {
  const results = JSON.parse(readFileSync(join(RESULTS_DIR, 'latest.json'), 'utf8')) as Results;
  drawChart(results);
  printTable(results);
} else
  main().catch((error: unknown) => {
    process.stderr.write(`bench failed: ${error instanceof Error ? error.stack : String(error)}\n`);
    process.exit(1);
  });
