// Shared by `npm test`, `npm run local` and `npm run bench`: creates the emulator's CA if needed and
// returns the environment a child Node process needs to trust it. NODE_EXTRA_CA_CERTS is read only
// when Node starts, so it must be set for a new process, never from inside a running one.
import { spawnSync } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const root = join(dirname(fileURLToPath(import.meta.url)), '..');

/** The environment with the CA trusted and no proxy inherited (the emulator's proxy is set per test). */
export function envTrustingEmulatorCa() {
  const ca = spawnSync(process.execPath, ['--import', 'tsx', join(root, 'test/emulator/ensure-ca.ts')], {
    cwd: root,
    encoding: 'utf8',
  });
  if (ca.status !== 0) {
    process.stderr.write(ca.stderr);
    return undefined;
  }
  const env = {
    ...process.env,
    NODE_EXTRA_CA_CERTS: ca.stdout.trim(),
    NO_PROXY: 'localhost,127.0.0.1',
    no_proxy: 'localhost,127.0.0.1',
  };
  for (const v of ['HTTPS_PROXY', 'https_proxy', 'HTTP_PROXY', 'http_proxy']) delete env[v];
  return env;
}
