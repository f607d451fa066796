// `npm run local`: runs scripts/local-run.ts with the emulator's CA trusted (scripts/with-ca.mjs).
// Arguments pass through (--serve).
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { envTrustingEmulatorCa, root } from './with-ca.mjs';

const env = envTrustingEmulatorCa();
if (!env) process.exit(1);
const run = spawnSync(
  process.execPath,
  ['--import', 'tsx', join(root, 'scripts/local-run.ts'), ...process.argv.slice(2)],
  {
    cwd: root,
    env,
    stdio: 'inherit',
  },
);
process.exit(run.status ?? 1);
