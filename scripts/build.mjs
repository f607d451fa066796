// `npm run build` (after `tsc --noEmit` type-checked everything): bundles the functions app with
// esbuild into dist/index.js, the file package.json `main` names. `@azure/functions-core` is
// provided by the Functions worker at run time, so it stays external. What only a rare path needs goes
// to a bundle of its own beside it, loaded on first use (LAZY below): @azure/storage-blob (the
// poison store) and the posture's ARM packages (the hourly timer) cost the responder no cold start.
import { build } from 'esbuild';
import { spawnSync } from 'node:child_process';
import {
  copyFileSync,
  existsSync,
  mkdirSync,
  readFileSync,
  readdirSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { builtinModules, createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const entry = join(root, 'functions', 'index.ts');
const outdir = join(root, 'dist');
rmSync(outdir, { recursive: true, force: true });
mkdirSync(outdir, { recursive: true });
if (!existsSync(entry)) {
  console.log('build: functions/index.ts does not exist yet; nothing to bundle');
  process.exit(0);
}
// Loaded on first use, not at start-up: each is a bundle of its own beside dist/index.js, which
// imports it when first needed — the poison store's Blob client (lib/adapters/storage.ts), the
// posture's ARM adapter (lib/runtime.ts, through lib/adapters/lazy.ts).
const LAZY = [
  {
    specifier: './blob-client',
    importer: join('lib', 'adapters', 'storage.ts'),
    entry: join('lib', 'adapters', 'blob-client.ts'),
    out: 'blob-client',
  },
  {
    specifier: './adapters/posture',
    importer: join('lib', 'runtime.ts'),
    entry: join('lib', 'adapters', 'posture.ts'),
    out: 'posture',
  },
];
const lazyModules = {
  name: 'lazy-modules',
  setup(b) {
    b.onResolve({ filter: /^\.\/(blob-client|adapters\/posture)$/ }, (args) => {
      const lazy = LAZY.find((l) => l.specifier === args.path && args.importer.endsWith(l.importer));
      return lazy ? { path: `./${lazy.out}.js`, external: true } : undefined;
    });
  },
};
// jsonwebtoken (and the semver, jws and lodash helpers it brings) serves one thing here: MSAL's
// signed client assertion, used by certificate credentials, never by a managed identity. Evaluated
// at start-up it cost ~20 ms of every cold load (semver's range parsing among it). MSAL gets a stand-in
// that loads the real package, a file of its own beside dist/index.js, on its first call.
const lazyJsonWebToken = {
  name: 'lazy-jsonwebtoken',
  setup(b) {
    b.onResolve({ filter: /^jsonwebtoken$/ }, (args) =>
      args.importer.includes(join('@azure', 'msal-node'))
        ? { path: 'jsonwebtoken', namespace: 'lazy-jsonwebtoken' }
        : undefined,
    );
    b.onResolve({ filter: /^\.\/jsonwebtoken\.js$/ }, (args) =>
      args.namespace === 'lazy-jsonwebtoken' ? { path: './jsonwebtoken.js', external: true } : undefined,
    );
    b.onLoad({ filter: /.*/, namespace: 'lazy-jsonwebtoken' }, () => ({
      loader: 'js',
      contents: [
        'let real;',
        "const load = () => (real ??= require('./jsonwebtoken.js'));",
        'module.exports = {',
        '  sign: (...args) => load().sign(...args),',
        '  verify: (...args) => load().verify(...args),',
        '  decode: (...args) => load().decode(...args),',
        '};',
      ].join('\n'),
    }));
  },
};
const started = performance.now();
await build({
  entryPoints: {
    index: entry,
    ...Object.fromEntries(LAZY.map((l) => [l.out, join(root, l.entry)])),
    jsonwebtoken: createRequire(join(root, 'node_modules', '@azure', 'msal-node', 'package.json')).resolve(
      'jsonwebtoken',
    ),
  },
  plugins: [lazyModules, lazyJsonWebToken],
  outdir,
  bundle: true,
  platform: 'node',
  target: 'node20',
  format: 'cjs',
  sourcemap: 'linked',
  minify: true,
  // No keepNames: it wraps every function and class in a naming call run at load, about 30 ms of a
  // ~250 ms cold load here (measured interleaved, medians of 7). Error names are set explicitly (ours
  // and the SDKs'), and stack traces map back through the source maps.
  keepNames: false,
  external: ['@azure/functions-core'],
  // Some SDK packages' ESM builds read import.meta.url, which a CommonJS bundle leaves empty;
  // give them this file's own URL instead.
  define: { 'import.meta.url': '__kvguardImportMetaUrl' },
  banner: { js: 'var __kvguardImportMetaUrl = require("node:url").pathToFileURL(__filename).href;' },
  logLevel: 'warning',
});
const size = statSync(join(outdir, 'index.js')).size;
console.log(
  `build: dist/index.js (+ ${[...LAZY.map((l) => l.out), 'jsonwebtoken'].map((f) => `${f}.js`).join(', ')}, loaded on first use) ${(size / 1024).toFixed(0)} KiB in ${(performance.now() - started).toFixed(0)} ms`,
);

// ---------------------------------------------------------------------------------------------
// The deployable folder. dist/ is what `cd dist && func azure functionapp publish <app> --no-build`
// uploads (README, Deployment): the bundle, host.json, a package.json whose `main` is the bundle and
// which has no dependencies (everything is bundled; only the worker's @azure/functions-core and Node's
// own modules are required at run time, checked below), and a .funcignore.
const rootPackage = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8'));
copyFileSync(join(root, 'host.json'), join(outdir, 'host.json'));
writeFileSync(
  join(outdir, 'package.json'),
  `${JSON.stringify(
    {
      name: rootPackage.name,
      version: rootPackage.version,
      private: true,
      description: rootPackage.description,
      license: rootPackage.license,
      main: 'index.js',
      engines: rootPackage.engines,
      dependencies: {},
    },
    null,
    2,
  )}\n`,
);
// What the upload leaves out (.funcignore): the source maps, kept in dist/ to decode a stack trace
// (they are about five times the size of the code, and the platform fetches the package on a cold
// start), and the local-only settings file.
copyFileSync(join(root, '.funcignore'), join(outdir, '.funcignore'));
// Tells Core Tools the worker runtime when it publishes from dist/ (whether it needs this for a Flex
// Consumption app is UNCONFIRMED); never uploaded.
writeFileSync(
  join(outdir, 'local.settings.json'),
  `${JSON.stringify({ IsEncrypted: false, Values: { FUNCTIONS_WORKER_RUNTIME: 'node' } }, null, 2)}\n`,
);

// Nothing may need resolving at run time but Node's modules, the worker's @azure/functions-core and
// the bundle's own files (./blob-client.js).
const allowed = new Set([
  ...builtinModules,
  ...builtinModules.map((m) => `node:${m}`),
  '@azure/functions-core',
]);
const jsFiles = readdirSync(outdir).filter((f) => f.endsWith('.js'));
const unresolved = [];
for (const file of jsFiles) {
  const code = readFileSync(join(outdir, file), 'utf8');
  for (const m of code.matchAll(/\brequire\(\s*(["'`])([^"'`]+)\1\s*\)/g)) {
    const id = m[2];
    if (allowed.has(id)) continue;
    if (id.startsWith('./') && existsSync(join(outdir, id))) continue;
    unresolved.push(`${file}: require(${JSON.stringify(id)})`);
  }
  if (/\brequire\(\s*[^"'`\s)]/.test(code.replace(/\brequire\(\s*(["'`])[^"'`]+\1\s*\)/g, ''))) {
    unresolved.push(`${file}: a require() of a computed name`);
  }
}
if (unresolved.length > 0) {
  console.error(`build: the package would need modules it does not contain:\n  ${unresolved.join('\n  ')}`);
  process.exit(1);
}

// Package size: what the upload holds (dist/ minus .funcignore's patterns).
const ignored = readFileSync(join(outdir, '.funcignore'), 'utf8')
  .split('\n')
  .map((l) => l.trim())
  .filter((l) => l && !l.startsWith('#'));
const isIgnored = (name) =>
  ignored.some((p) =>
    p.startsWith('*')
      ? name.endsWith(p.slice(1))
      : p.endsWith('*')
        ? name.startsWith(p.slice(0, -1))
        : name === p.replace(/\/$/, ''),
  );
const files = readdirSync(outdir);
const uploaded = files.filter((f) => !isIgnored(f));
const bytes = (list) => list.reduce((n, f) => n + statSync(join(outdir, f)).size, 0);

// Cold load: a fresh Node process requiring the bundle, as the worker does when it starts the app
// (@azure/functions-core is absent here, so the library registers nothing and says so: its warnings
// are dropped).
const probe = spawnSync(
  process.execPath,
  [
    '-e',
    `const t0 = process.hrtime.bigint(); require(${JSON.stringify(join(outdir, 'index.js'))}); ` +
      `process.stdout.write('\\nKVGUARD_LOAD_MS=' + (Number(process.hrtime.bigint() - t0) / 1e6).toFixed(0));`,
  ],
  { encoding: 'utf8', env: { PATH: process.env.PATH ?? '' } },
);
const loadMs = /KVGUARD_LOAD_MS=(\d+)/.exec(probe.stdout ?? '')?.[1];
if (probe.status !== 0 || loadMs === undefined) {
  console.error(`build: dist/index.js does not load in a fresh Node process:\n${probe.stderr}`);
  process.exit(1);
}
const kib = (n) => `${(n / 1024).toFixed(0)} KiB`;
console.log(
  `build: package dist/ ${kib(bytes(uploaded))} uploaded (${uploaded.join(', ')}; ${kib(bytes(files))} with source maps); cold load of index.js ${loadMs} ms`,
);
