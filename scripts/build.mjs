// `npm run build` (after `tsc --noEmit` type-checked everything): bundles the functions app with
// esbuild into dist/index.js, the file package.json `main` names. `@azure/functions-core` is
// provided by the Functions worker at run time, so it stays external.
import { build } from 'esbuild';
import { existsSync, mkdirSync, rmSync, statSync } from 'node:fs';
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
const started = performance.now();
await build({
  entryPoints: { index: entry },
  outdir,
  bundle: true,
  platform: 'node',
  target: 'node20',
  format: 'cjs',
  sourcemap: 'linked',
  minify: true,
  keepNames: true,
  external: ['@azure/functions-core'],
  // Some SDK packages' ESM builds read import.meta.url, which a CommonJS bundle leaves empty;
  // give them this file's own URL instead.
  define: { 'import.meta.url': '__kvguardImportMetaUrl' },
  banner: { js: 'var __kvguardImportMetaUrl = require("node:url").pathToFileURL(__filename).href;' },
  logLevel: 'warning',
});
const size = statSync(join(outdir, 'index.js')).size;
console.log(
  `build: dist/index.js ${(size / 1024).toFixed(0)} KiB in ${(performance.now() - started).toFixed(0)} ms`,
);
