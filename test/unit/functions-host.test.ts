/**
 * The local Functions host (test/emulator/functions-host): the fixture app in
 * test/fixtures/functions-app is bundled with esbuild the way scripts/build.mjs bundles the real app
 * (`@azure/functions` in, `@azure/functions-core` external) and loaded through the stand-in, so what
 * is asserted here is the registration metadata the worker would hand the host, and invocations
 * built as the host builds them. No `func start`, no mocks of @azure/*.
 */
import { build } from 'esbuild';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import Module from 'node:module';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import {
  FunctionsAppLoadError,
  loadFunctionsApp,
  nextOccurrence,
  parseTimerSchedule,
  startFunctionsHost,
  type FunctionsHost,
  type InvocationResult,
  type LoadedApp,
} from '../emulator/functions-host';
import { compileRoute } from '../emulator/functions-host/routes';

const ROOT = resolve(__dirname, '../..');
const FIXTURE = join(ROOT, 'test/fixtures/functions-app/index.ts');
const KEY = 'local-function-key';

let workDir: string;
let bundle: string;
let host: FunctionsHost;
const hostLog: string[] = [];

async function bundleApp(outfile: string, entry: { file: string } | { contents: string }): Promise<void> {
  await build({
    ...('file' in entry
      ? { entryPoints: [entry.file] }
      : { stdin: { contents: entry.contents, resolveDir: ROOT, loader: 'ts', sourcefile: 'app.ts' } }),
    outfile,
    bundle: true,
    platform: 'node',
    target: 'node20',
    format: 'cjs',
    // As scripts/build.mjs: minified with names kept, a linked source map, the core module external.
    sourcemap: 'linked',
    minify: true,
    keepNames: true,
    external: ['@azure/functions-core'],
    logLevel: 'silent',
  });
}

/** Loads a CommonJS file through Node's own loader (as a fresh module), outside the stand-in. */
function loadPlain(file: string): unknown {
  const Ctor = Module as unknown as new (id: string) => { exports: unknown; load(f: string): void };
  const mod = new Ctor(file);
  mod.load(file);
  return mod.exports;
}

/** The JSON a fixture handler logged after `prefix ` in an invocation. */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
function logged(result: InvocationResult, prefix: string): any {
  const line = result.logs.find((l) => l.message.startsWith(`${prefix} `));
  if (!line) throw new Error(`no '${prefix}' log in ${JSON.stringify(result.logs)}`);
  return JSON.parse(line.message.slice(prefix.length + 1));
}

function eventGridEvent(subject: string, data: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    id: `id-${subject}`,
    topic:
      '/subscriptions/00000000-0000-4000-8000-000000000001/resourceGroups/rg/providers/Microsoft.KeyVault/vaults/kv1',
    subject,
    eventType: 'Microsoft.KeyVault.KeyDeleted',
    eventTime: '2026-01-01T00:00:00.1234567Z',
    data,
    dataVersion: '1',
    metadataVersion: '1',
  };
}

async function post(url: string, body: unknown, headers: Record<string, string>): Promise<Response> {
  return fetch(url, {
    method: 'POST',
    headers,
    body: typeof body === 'string' ? body : JSON.stringify(body),
  });
}

beforeAll(async () => {
  workDir = mkdtempSync(join(tmpdir(), 'kvguard-functions-host-'));
  bundle = join(workDir, 'app', 'index.js');
  await bundleApp(bundle, { file: FIXTURE });
  host = await startFunctionsHost({
    entryFile: bundle,
    functionKey: KEY,
    retryDelayScale: 0.005,
    log: (line) => hostLog.push(line),
  });
});

afterAll(async () => {
  await host?.stop();
  rmSync(workDir, { recursive: true, force: true });
});

describe('registration through the @azure/functions-core stand-in', () => {
  it('registers every function with its trigger type and settings, as the host receives them', () => {
    const byName = Object.fromEntries(host.functions.map((f) => [f.name, f]));
    expect(Object.keys(byName).sort()).toEqual(['echo', 'forwardRecords', 'onKeyEvent', 'sweep']);
    expect(host.app.programmingModel).toEqual({ name: '@azure/functions', version: '4.16.5' });
    expect(host.app.capabilities).toMatchObject({ TypedDataCollection: 'true', RawHttpBodyBytes: 'true' });
    expect(host.app.warnings).toEqual([]);

    const echo = byName.echo!;
    expect(echo.triggerType).toBe('httpTrigger');
    expect(echo.trigger).toMatchObject({
      type: 'httpTrigger',
      direction: 'in',
      authLevel: 'function',
      route: 'items/{id}',
      methods: ['GET', 'POST'],
    });
    expect(echo.bindings.$return).toEqual({ type: 'http', name: '$return', direction: 'out' });
    expect(echo.route).toBe('items/{id}');
    expect(echo.retryOptions).toBeUndefined();
    // What the worker sends the host: one JSON string per binding, named, plus the script file.
    expect(echo.metadata.rawBindings!.map((r) => JSON.parse(r).type).sort()).toEqual(['http', 'httpTrigger']);
    expect(echo.metadata.scriptFile).toBe('index.js');
    expect(echo.metadata.functionId).toBe('echo');

    expect(byName.onKeyEvent!.triggerType).toBe('eventGridTrigger');
    expect(Object.keys(byName.onKeyEvent!.bindings)).toHaveLength(1);

    const hub = byName.forwardRecords!;
    expect(hub.triggerType).toBe('eventHubTrigger');
    expect(hub.trigger).toMatchObject({
      cardinality: 'many',
      eventHubName: 'insights-logs-auditevent',
      connection: 'AUDIT_EVENTHUB',
    });
    expect(hub.retryOptions).toEqual({
      retryStrategy: 'fixedDelay',
      maxRetryCount: 2,
      delayInterval: { seconds: 2 },
    });

    const sweep = byName.sweep!;
    expect(sweep.triggerType).toBe('timerTrigger');
    expect(sweep.trigger.schedule).toBe('0 */15 * * * *');
    expect(sweep.schedule).toMatchObject({ kind: 'cron', includesSeconds: true });
    expect(sweep.retryOptions).toEqual({
      retryStrategy: 'exponentialBackoff',
      maxRetryCount: 3,
      minimumInterval: { seconds: 5 },
      maximumInterval: { seconds: 60 },
    });
  });

  it('refuses an app Azure would not index, and an app whose @azure/functions is not bundled', async () => {
    const bad = join(workDir, 'bad', 'index.js');
    await bundleApp(bad, {
      contents: `
        import { app } from '@azure/functions';
        app.timer('bad name', { schedule: '0 */5 * * *  * *', handler: () => undefined });
        app.http('badAuth', { authLevel: 'anyone' as never, handler: () => ({}) });
        app.eventHub('noHub', { connection: 'X', eventHubName: '', cardinality: 'many',
          retry: { strategy: 'exponentialBackoff', maxRetryCount: 1, minimumInterval: 60000, maximumInterval: 1000 },
          handler: () => undefined });
      `,
    });
    const error = await loadFunctionsApp(bad).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(FunctionsAppLoadError);
    const problems = (error as FunctionsAppLoadError).problems.join('\n');
    expect(problems).toContain("'bad name' is not a valid function name");
    expect(problems).toContain('was not recognized as a valid cron expression or timespan string');
    expect(problems).toContain("authLevel 'anyone'");
    expect(problems).toContain('needs eventHubName');
    expect(problems).toContain('minimumInterval must not exceed');

    // Not bundled: Node's loader gives the app node_modules' @azure/functions, which never sees the
    // stand-in, stays in test mode and registers nothing.
    mkdirSync(join(ROOT, 'build'), { recursive: true });
    const unbundled = join(ROOT, 'build', `unbundled-app-${process.pid}.js`);
    writeFileSync(
      unbundled,
      `require('@azure/functions').app.timer('t', { schedule: '0 * * * * *', handler() {} });\n`,
    );
    const silence = jest.spyOn(process.stderr, 'write').mockImplementation(() => true);
    try {
      await expect(loadFunctionsApp(unbundled)).rejects.toThrow(
        /is @azure\/functions bundled into the entry file/,
      );
    } finally {
      silence.mockRestore();
      rmSync(unbundled, { force: true });
    }
  });

  it('does not leak the stand-in: a later plain require of @azure/functions is in test mode', async () => {
    // A second load of the same bundle is an independent app (no "already registered").
    const again: LoadedApp = await loadFunctionsApp(bundle);
    expect(again.functions.map((f) => f.name).sort()).toEqual([
      'echo',
      'forwardRecords',
      'onKeyEvent',
      'sweep',
    ]);

    // Node's own loader still cannot find @azure/functions-core...
    const Ctor = Module as unknown as new (id: string) => { require(id: string): unknown; paths: string[] };
    const probe = new Ctor(join(workDir, 'probe.js'));
    probe.paths = [join(ROOT, 'node_modules')];
    expect(() => probe.require('@azure/functions-core')).toThrow(
      /Cannot find module '@azure\/functions-core'/,
    );

    // ...so the same bundle loaded plainly afterwards is in test mode and registers nothing.
    const probeFile = join(workDir, 'app', 'plain-probe.js');
    writeFileSync(
      probeFile,
      `const warnings = []; const warn = console.warn; console.warn = (...a) => warnings.push(a.join(' '));
       try { require('./index.js'); } finally { console.warn = warn; }
       module.exports = warnings;`,
    );
    const warnings = loadPlain(probeFile) as string[];
    expect(warnings.join('\n')).toContain('Switching "@azure/functions" package to test mode');
    expect(warnings.join('\n')).toContain('Skipping call to register function "echo"');

    // And in jest's module registry, @azure/functions is in test mode too.
    const warn = jest.spyOn(console, 'warn').mockImplementation(() => undefined);
    try {
      jest.isolateModules(() => {
        // eslint-disable-next-line @typescript-eslint/no-require-imports
        const { app } = require('@azure/functions') as typeof import('@azure/functions');
        app.http('probe', { handler: () => ({}) });
      });
      expect(warn.mock.calls.map((c) => String(c[0])).join('\n')).toContain('test mode');
    } finally {
      warn.mockRestore();
    }
  });
});

describe('HTTP triggers', () => {
  it('routes /api/<route> with parameters, query, body, headers and cookies', async () => {
    const res = await fetch(`${host.url}/api/items/k%201?q=hello&code=${KEY}`, {
      method: 'POST',
      headers: { 'content-type': 'text/plain' },
      body: 'payload',
    });
    expect(res.status).toBe(201);
    expect(res.headers.get('x-fixture')).toBe('echo');
    expect(res.headers.get('set-cookie')).toBe('session=abc; Path=/; HttpOnly');
    expect(res.headers.get('content-type')).toContain('application/json');
    expect(await res.json()).toEqual({
      id: 'k 1',
      method: 'POST',
      q: 'hello',
      contentType: 'text/plain',
      body: 'payload',
    });

    const last = host.invocations.at(-1)!;
    expect(last.functionName).toBe('echo');
    expect(last.logs).toContainEqual({ level: 'warning', category: 'user', message: 'echo POST k 1' });
    expect(last.logs).toContainEqual({
      level: 'debug',
      category: 'user',
      message: 'postInvocation hook: appStarted=true',
    });
  });

  it('enforces the function key for authLevel function', async () => {
    const url = `${host.url}/api/items/1`;
    expect((await fetch(url)).status).toBe(401);
    expect((await fetch(`${url}?code=wrong`)).status).toBe(401);
    expect((await fetch(`${url}?code=${KEY}`)).status).toBe(201);
    expect((await fetch(url, { headers: { 'x-functions-key': KEY } })).status).toBe(201);
  });

  it('answers 404 for an unregistered route or method', async () => {
    expect((await fetch(`${host.url}/api/items?code=${KEY}`)).status).toBe(404);
    expect((await fetch(`${host.url}/api/items/1/extra?code=${KEY}`)).status).toBe(404);
    expect((await fetch(`${host.url}/api/items/1?code=${KEY}`, { method: 'DELETE' })).status).toBe(404);
    expect((await fetch(`${host.url}/api/echo?code=${KEY}`)).status).toBe(404);
  });

  it('checks no key when the host has none (as under func start)', async () => {
    const open = await startFunctionsHost({ entryFile: bundle, log: () => undefined });
    try {
      expect((await fetch(`${open.url}/api/items/7`)).status).toBe(201);
    } finally {
      await open.stop();
    }
  });

  it('matches route templates as the host does', () => {
    const route = compileRoute('vaults/{vault:alpha}/keys/{key?}');
    expect(route.match('vaults/kv/keys/k1')).toEqual({ vault: 'kv', key: 'k1' });
    expect(route.match('VAULTS/kv/KEYS')).toEqual({ vault: 'kv' });
    expect(route.match('vaults/kv1/keys/k1')).toBeUndefined();
    expect(compileRoute('files/{*rest}').match('files/a/b%2Fc')).toEqual({ rest: 'a/b/c' });
  });
});

describe('Event Grid webhook', () => {
  it('answers the SubscriptionValidation handshake itself, for both schemas', async () => {
    const res = await post(
      host.eventGridUrl('onKeyEvent'),
      [
        {
          ...eventGridEvent('validate'),
          eventType: 'Microsoft.EventGrid.SubscriptionValidationEvent',
          data: { validationCode: 'abc-123' },
        },
      ],
      { 'aeg-event-type': 'SubscriptionValidation', 'content-type': 'application/json' },
    );
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ validationResponse: 'abc-123' });

    const cloud = await post(
      host.eventGridUrl('onKeyEvent'),
      {
        specversion: '1.0',
        type: 'Microsoft.EventGrid.SubscriptionValidationEvent',
        data: JSON.stringify({ validationCode: 'cloud-9' }),
      },
      { 'aeg-event-type': 'SubscriptionValidation' },
    );
    expect(await cloud.json()).toEqual({ validationResponse: 'cloud-9' });

    const options = await fetch(host.eventGridUrl('onKeyEvent'), {
      method: 'OPTIONS',
      headers: { 'WebHook-Request-Origin': 'eventgrid.azure.net' },
    });
    expect(options.status).toBe(200);
    expect(options.headers.get('webhook-allowed-origin')).toBe('eventgrid.azure.net');
  });

  it('invokes the function once per delivered event and answers 202', async () => {
    const before = host.invocations.length;
    const events = [
      eventGridEvent('keys/a', { Id: 'https://kv1.vault.azure.net/keys/a' }),
      eventGridEvent('keys/b'),
    ];
    const res = await post(host.eventGridUrl('onKeyEvent'), events, {
      'aeg-event-type': 'Notification',
      'content-type': 'application/json',
    });
    expect(res.status).toBe(202);
    const runs = host.invocations.slice(before);
    expect(runs).toHaveLength(2);
    const received = runs
      .map((r) => logged(r, 'event'))
      .sort((a, b) => String(a.subject).localeCompare(String(b.subject)));
    expect(received).toEqual(events);
    expect(received[0].eventTime).toBe('2026-01-01T00:00:00.1234567Z');
    const subjectA = runs.find((r) => logged(r, 'event').subject === 'keys/a')!;
    expect(logged(subjectA, 'triggerMetadata')).toMatchObject({
      data: { id: 'https://kv1.vault.azure.net/keys/a' },
      sys: { methodName: 'onKeyEvent' },
    });
    expect(subjectA.logs.find((l) => l.message.startsWith('triggerMetadata'))!.level).toBe('trace');

    const single = await post(host.eventGridUrl('onKeyEvent'), eventGridEvent('keys/c'), {
      'aeg-event-type': 'Notification',
    });
    expect(single.status).toBe(202);
  });

  it('answers 500 when the function throws, so Event Grid redelivers', async () => {
    const res = await post(
      host.eventGridUrl('onKeyEvent'),
      [eventGridEvent('keys/ok'), eventGridEvent('keys/explode')],
      {
        'aeg-event-type': 'Notification',
      },
    );
    expect(res.status).toBe(500);
    expect(await res.text()).toBe('cannot handle keys/explode');
    const failed = host.invocations.find((r) => r.errorMessage === 'cannot handle keys/explode');
    expect(failed?.ok).toBe(false);
  });

  it('answers 404 for an unknown function and 400 without aeg-event-type', async () => {
    const unknown = await post(`${host.url}/runtime/webhooks/eventgrid?functionName=nope`, [], {
      'aeg-event-type': 'Notification',
    });
    expect(unknown.status).toBe(404);
    expect((await post(host.eventGridUrl('onKeyEvent'), [eventGridEvent('x')], {})).status).toBe(400);
  });
});

describe('Event Hubs, timer and the admin API', () => {
  it('delivers an Event Hubs batch as one array, with trigger metadata', async () => {
    const records = [
      { category: 'AuditEvent', operationName: 'KeyDelete' },
      'plain text',
      { category: 'AuditEvent' },
    ];
    const [delivery] = await host.deliverEventHubBatch('forwardRecords', records, {
      firstSequenceNumber: 40,
    });
    expect(delivery!.attempts).toHaveLength(1);
    expect(delivery!.result.ok).toBe(true);
    const batch = logged(delivery!.result, 'batch');
    expect(batch).toEqual({
      isArray: true,
      records,
      retryContext: { retryCount: 0, maxRetryCount: 2 },
      sequenceNumbers: [40, 41, 42],
    });
  });

  it('retries a failed batch per the retry policy, with retryContext', async () => {
    const [flaky] = await host.deliverEventHubBatch('forwardRecords', [{ flaky: true }]);
    expect(flaky!.attempts.map((a) => a.ok)).toEqual([false, true]);
    const second = logged(flaky!.attempts[1]!, 'batch');
    expect(second.retryContext).toMatchObject({
      retryCount: 1,
      maxRetryCount: 2,
      exception: { message: 'transient failure' },
    });

    const [poison] = await host.deliverEventHubBatch('forwardRecords', [{ poison: true }]);
    expect(poison!.attempts).toHaveLength(3);
    expect(poison!.result.ok).toBe(false);
    expect(poison!.result.errorMessage).toBe('poison record');
  });

  it('runs a timer with the timer object the host passes', async () => {
    const run = await host.runTimer('sweep', { isPastDue: true });
    expect(run.result.ok).toBe(true);
    expect(run.result.returnValue).toEqual({ swept: true });
    const timer = logged(run.result, 'timer');
    expect(timer.isPastDue).toBe(true);
    expect(timer.schedule).toEqual({ adjustForDST: true });
    const next = new Date(timer.scheduleStatus.next);
    expect(next.getUTCMinutes() % 15).toBe(0);
    expect(next.getUTCSeconds()).toBe(0);
    expect(next.getTime()).toBeGreaterThan(Date.now() - 1000);
  });

  it('runs a non-HTTP function through POST /admin/functions/<name>', async () => {
    const before = host.invocations.length;
    const admin = (name: string, body: unknown, key: string | null = KEY) =>
      post(`${host.url}/admin/functions/${name}`, body, key ? { 'x-functions-key': key } : {});

    expect((await admin('sweep', { input: '' }, null)).status).toBe(401);
    expect((await admin('sweep', { input: '' })).status).toBe(202);
    expect((await admin('onKeyEvent', { input: JSON.stringify(eventGridEvent('keys/admin')) })).status).toBe(
      202,
    );
    expect((await admin('echo', { input: '' })).status).toBe(400);
    expect((await admin('nope', { input: '' })).status).toBe(404);
    await host.idle();

    const runs = host.invocations.slice(before);
    expect(runs.map((r) => r.functionName).sort()).toEqual(['onKeyEvent', 'sweep']);
    expect(
      logged(
        runs.find((r) => r.functionName === 'onKeyEvent')!,
        'event',
      ).subject,
    ).toBe('keys/admin');
  });
});

describe('timer schedules', () => {
  it('reads NCRONTAB (6 or 5 fields, names) and TimeSpan schedules as the timer extension does', () => {
    const at = new Date('2026-03-01T10:07:30Z');
    expect(nextOccurrence(parseTimerSchedule('0 */15 * * * *'), at)?.toISOString()).toBe(
      '2026-03-01T10:15:00.000Z',
    );
    expect(nextOccurrence(parseTimerSchedule('*/5 * * * *'), at)?.toISOString()).toBe(
      '2026-03-01T10:10:00.000Z',
    );
    // NCrontab requires day of month AND day of week: the next 13th that is a Friday.
    expect(nextOccurrence(parseTimerSchedule('0 0 9 13 * FRI'), at)?.toISOString()).toBe(
      '2026-03-13T09:00:00.000Z',
    );
    expect(nextOccurrence(parseTimerSchedule('0 30 2 * JAN-MAR MON'), at)?.toISOString()).toBe(
      '2026-03-02T02:30:00.000Z',
    );
    expect(nextOccurrence(parseTimerSchedule('00:05:00'), at)?.toISOString()).toBe(
      '2026-03-01T10:12:30.000Z',
    );
    expect(() => parseTimerSchedule('0 0 25 * * *')).toThrow(/not recognized/);
    expect(() => parseTimerSchedule('every 5 minutes')).toThrow(/not recognized/);
  });
});
