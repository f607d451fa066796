// `npm run bench`: runs test/bench/run.ts with the emulator's CA trusted (scripts/with-ca.mjs).
// Not part of `npm test`. Arguments pass through.
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { envTrustingEmulatorCa, root } from './with-ca.mjs';

const env = envTrustingEmulatorCa();
if (!env) process.exit(1);
const run = spawnSync(
  process.execPath,
  ['--expose-gc', '--import', 'tsx', join(root, 'test/bench/run.ts'), ...process.argv.slice(2)],
  { cwd: root, env, stdio: 'inherit' },
);
process.exit(run.status ?? 1);
