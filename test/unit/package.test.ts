/**
 * The deployable package `npm run build` writes to dist/, loaded the way the Functions worker loads
 * it (the stand-in for `@azure/functions-core`, test/emulator/functions-host): every function that
 * functions/*.ts registers is there, with the trigger type and settings the host will read. CI runs
 * `npm run build` before `npm test`; this test uses that build and does not build itself.
 */
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { createRequire } from 'node:module';
import { runInThisContext } from 'node:vm';
import { DEFAULT_SWEEP_SCHEDULE, eventHubConnectionName } from '../../lib/config';
import { loadFunctionsApp, type FunctionInfo, type LoadedApp } from '../emulator/functions-host';

const ROOT = resolve(__dirname, '../..');
const DIST = join(ROOT, 'dist');
const HUBS =
  'westeurope=evhns-kvguard-weu-abcd1234/kvguard-audit,northeurope=evhns-kvguard-neu-abcd1234/kvguard-audit';
const REGIONS = ['westeurope', 'northeurope'];

/**
 * dist/ as `npm run build` left it. Not rebuilt here (CI builds first; a local run after editing
 * lib/ or functions/ needs `npm run build` again to test what would be published).
 */
function assertBuilt(): void {
  for (const file of ['index.js', 'package.json', 'host.json', '.funcignore']) {
    if (!existsSync(join(DIST, file))) {
      throw new Error(
        `dist/${file} is missing: run \`npm run build\` before this test (CI builds before it tests)`,
      );
    }
  }
}

/** The registrations functions/*.ts make, read from the source: `app.<trigger>('<name>'` (a template literal for per-hub names). */
function registrationsInSource(): Array<{ file: string; trigger: string; name: string }> {
  const dir = join(ROOT, 'functions');
  return readdirSync(dir)
    .filter((f) => f.endsWith('.ts') && f !== 'index.ts')
    .flatMap((file) =>
      [...readFileSync(join(dir, file), 'utf8').matchAll(/\bapp\.(\w+)\(\s*(['`])([^'`]+)\2/g)].map((m) => ({
        file,
        trigger: m[1]!,
        name: m[3]!,
      })),
    );
}

/**
 * The environment the bundle reads. The app runs on Node's own loader, in the main realm (see
 * loader.ts), where `process` is Node's; jest gives a test a copy of `process.env`, so setting that
 * copy would not reach the app. `runInThisContext` evaluates in the main realm.
 */
const appEnv = (runInThisContext('process') as NodeJS.Process).env;

/** Loads dist/ as the worker would, with these app settings, restoring the environment afterwards. */
async function loadPackage(env: Record<string, string>): Promise<LoadedApp> {
  const saved = Object.fromEntries(Object.keys(env).map((k) => [k, appEnv[k]]));
  Object.assign(appEnv, env);
  try {
    const pkg = JSON.parse(readFileSync(join(DIST, 'package.json'), 'utf8')) as { main: string };
    return await loadFunctionsApp(join(DIST, pkg.main), { env: { ...appEnv } });
  } finally {
    for (const [k, v] of Object.entries(saved)) {
      if (v === undefined) delete appEnv[k];
      else appEnv[k] = v;
    }
  }
}

const byName = (app: LoadedApp): Record<string, FunctionInfo> =>
  Object.fromEntries(app.functions.map((f) => [f.name, f]));

describe('the deployable package in dist/', () => {
  let app: LoadedApp;

  beforeAll(async () => {
    assertBuilt();
    app = await loadPackage({ KVGUARD_EVENTHUBS: HUBS });
  });

  afterAll(async () => {
    await app?.dispose();
  });

  it('holds the bundle, host.json, a dependency-free package.json whose main is the bundle, and a .funcignore', () => {
    const pkg = JSON.parse(readFileSync(join(DIST, 'package.json'), 'utf8')) as Record<string, unknown>;
    expect(pkg.main).toBe('index.js');
    expect(pkg.dependencies).toEqual({});
    expect(pkg).not.toHaveProperty('devDependencies');
    expect(pkg).not.toHaveProperty('type');
    expect(existsSync(join(DIST, 'index.js'))).toBe(true);
    expect(readFileSync(join(DIST, 'host.json'), 'utf8')).toBe(readFileSync(join(ROOT, 'host.json'), 'utf8'));
    const ignore = readFileSync(join(DIST, '.funcignore'), 'utf8').split('\n');
    expect(ignore).toEqual(expect.arrayContaining(['*.map', 'local.settings.json']));
    // The repository root still runs the same entry (`func start` from the root).
    const rootPkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { main: string };
    expect(rootPkg.main).toBe('dist/index.js');
  });

  it('requires nothing at run time but Node, the worker and its own files', () => {
    for (const file of readdirSync(DIST).filter((f) => f.endsWith('.js'))) {
      const code = readFileSync(join(DIST, file), 'utf8');
      const ids = [...code.matchAll(/\brequire\(\s*(["'`])([^"'`]+)\1\s*\)/g)].map((m) => m[2]!);
      const foreign = ids.filter(
        (id) =>
          id !== '@azure/functions-core' &&
          !id.startsWith('node:') &&
          !(id.startsWith('./') && existsSync(join(DIST, id))) &&
          // Node built-ins required without the node: prefix by bundled SDK code.
          !/^(assert|buffer|child_process|constants|crypto|dns|events|fs|http|http2|https|module|net|os|path|process|querystring|stream|string_decoder|timers|tls|tty|url|util|worker_threads|zlib)(\/.*)?$/.test(
            id,
          ),
      );
      expect({ file, foreign: [...new Set(foreign)] }).toEqual({ file, foreign: [] });
    }
  });

  it("loads jsonwebtoken (MSAL's client assertions only) on its first call, from a file of its own that signs and verifies", () => {
    const index = readFileSync(join(DIST, 'index.js'), 'utf8');
    expect(index).toContain('require("./jsonwebtoken.js")');
    // None of jsonwebtoken's own code is in the bundle evaluated at start-up.
    expect(index).not.toContain('JsonWebTokenError');
    expect(readFileSync(join(DIST, 'jsonwebtoken.js'), 'utf8')).toContain('JsonWebTokenError');
    // The stand-in forwards sign, verify and decode: every member MSAL calls.
    const msal = join(ROOT, 'node_modules', '@azure', 'msal-node', 'dist');
    const used = new Set<string>();
    for (const file of readdirSync(msal, { recursive: true, encoding: 'utf8' }).filter((f) =>
      f.endsWith('.mjs'),
    )) {
      const code = readFileSync(join(msal, file), 'utf8');
      if (!/from ['"]jsonwebtoken['"]/.test(code)) continue;
      for (const m of code.matchAll(/\bjwt\.(\w+)/g)) used.add(m[1]!);
    }
    expect(used.size).toBeGreaterThan(0);
    expect([...used].filter((m) => !['sign', 'verify', 'decode'].includes(m))).toEqual([]);
    const jwt = createRequire(__filename)(join(DIST, 'jsonwebtoken.js')) as {
      sign(payload: object, secret: string, options: object): string;
      verify(token: string, secret: string): Record<string, unknown>;
      decode(token: string): Record<string, unknown> | null;
    };
    const token = jwt.sign({ aud: 'api://kvguard' }, 'a-test-secret-that-is-long-enough', {
      algorithm: 'HS256',
    });
    expect(jwt.verify(token, 'a-test-secret-that-is-long-enough')).toMatchObject({ aud: 'api://kvguard' });
    expect(jwt.decode(token)).toMatchObject({ aud: 'api://kvguard' });
    expect(() => jwt.verify(token, 'another-secret-of-the-same-length!')).toThrow(/invalid signature/);
  });

  it('registers every function functions/*.ts declares, nothing else, and the host would index it without warnings', () => {
    const expected = registrationsInSource().flatMap((r) =>
      r.name.includes('${') ? REGIONS.map((region) => r.name.replace(/\$\{[^}]+\}/, region)) : [r.name],
    );
    expect(expected.length).toBeGreaterThanOrEqual(5);
    expect(app.functions.map((f) => f.name).sort()).toEqual([...expected].sort());
    expect(app.programmingModel.name).toBe('@azure/functions');
    expect(app.warnings).toEqual([]);
  });

  it('gives each regional hub its forwarder: batches, consumer group kvguard, the identity-based connection, a bounded retry', () => {
    const fns = byName(app);
    for (const [i, region] of REGIONS.entries()) {
      const f = fns[`auditLogForwarder-${region}`]!;
      expect(f.triggerType).toBe('eventHubTrigger');
      expect(f.trigger).toMatchObject({
        direction: 'in',
        cardinality: 'many',
        consumerGroup: 'kvguard',
        connection: eventHubConnectionName(region),
        eventHubName: HUBS.split(',')[i]!.split('/')[1],
      });
      expect(f.retryOptions).toEqual({
        retryStrategy: 'exponentialBackoff',
        maxRetryCount: 5,
        minimumInterval: { seconds: 10 },
        maximumInterval: { seconds: 300 },
      });
    }
  });

  it('registers keyDeletionResponder for Event Grid, with no retry option (Event Grid redelivers)', () => {
    const f = byName(app).keyDeletionResponder!;
    expect(f.triggerType).toBe('eventGridTrigger');
    expect(f.retryOptions).toBeUndefined();
  });

  it.each([
    ['monitorAlert', 'monitorAlert'],
    ['replay', 'replay'],
  ])('registers %s as a POST with a function key at /api/%s', (name, route) => {
    const f = byName(app)[name]!;
    expect(f.triggerType).toBe('httpTrigger');
    expect(f.authLevel).toBe('function');
    expect(f.methods).toEqual(['POST']);
    expect(f.route).toBe(route);
  });

  it('schedules every timer: the sweep by default every 30 s, or as KVGUARD_SWEEP_SCHEDULE says', async () => {
    const timers = app.functions.filter((f) => f.triggerType === 'timerTrigger');
    expect(timers.map((t) => t.name)).toContain('sweepDeletedKeys');
    for (const t of timers) expect(t.schedule).toBeDefined();
    const sweep = byName(app).sweepDeletedKeys!;
    expect(sweep.trigger.schedule).toBe(DEFAULT_SWEEP_SCHEDULE);
    expect(sweep.schedule).toMatchObject({ kind: 'cron', includesSeconds: true });

    const configured = await loadPackage({
      KVGUARD_EVENTHUBS: HUBS,
      KVGUARD_SWEEP_SCHEDULE: '0 */2 * * * *',
    });
    try {
      const s = byName(configured).sweepDeletedKeys!;
      expect(s.trigger.schedule).toBe('%KVGUARD_SWEEP_SCHEDULE%');
      expect(s.schedule).toMatchObject({ kind: 'cron', expression: '0 */2 * * * *' });
    } finally {
      await configured.dispose();
    }
  });

  it('registers no forwarder when no hub is configured, and everything else the same', async () => {
    const bare = await loadPackage({ KVGUARD_EVENTHUBS: '' });
    try {
      const names = bare.functions.map((f) => f.name);
      expect(names.filter((n) => n.startsWith('auditLogForwarder-'))).toEqual([]);
      expect(names.length).toBe(app.functions.length - REGIONS.length);
    } finally {
      await bare.dispose();
    }
  });
});
