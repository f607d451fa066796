// `npm run bench`: creates the emulator's CA, then runs test/bench/run.ts with NODE_EXTRA_CA_CERTS
// set (Node reads it only at start-up). Not part of `npm test`. Arguments pass through.
import { spawnSync } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const ca = spawnSync(process.execPath, ['--import', 'tsx', join(root, 'test/emulator/ensure-ca.ts')], {
  cwd: root,
  encoding: 'utf8',
});
if (ca.status !== 0) {
  process.stderr.write(ca.stderr);
  process.exit(1);
}
const env = {
  ...process.env,
  NODE_EXTRA_CA_CERTS: ca.stdout.trim(),
  NO_PROXY: 'localhost,127.0.0.1',
  no_proxy: 'localhost,127.0.0.1',
};
for (const v of ['HTTPS_PROXY', 'https_proxy', 'HTTP_PROXY', 'http_proxy']) delete env[v];
const run = spawnSync(
  process.execPath,
  ['--expose-gc', '--import', 'tsx', join(root, 'test/bench/run.ts'), ...process.argv.slice(2)],
  { cwd: root, env, stdio: 'inherit' },
);
process.exit(run.status ?? 1);
