/**
 * `npm run emulator` as a separate process, used by a program outside the project that knows only
 * its ready line: it seeds a managed identity and a vault through the admin API, then creates,
 * deletes and recovers a key with the real KeyClient (challenge verification on) authenticated by
 * ManagedIdentityCredential — configured only through the standard environment variables.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { createInterface } from 'node:readline';

const root = resolve(__dirname, '..', '..');

const OUTSIDE_PROGRAM = `
const ready = JSON.parse(process.argv[2]);
const { ManagedIdentityCredential } = require('@azure/identity');
const { KeyClient } = require('@azure/keyvault-keys');

async function admin(path, body) {
  const res = await fetch(ready.admin + path, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  if (!res.ok) throw new Error(path + ' answered ' + res.status + ': ' + (await res.text()));
  return res.json();
}

(async () => {
  const mi = await admin('/principals', { kind: 'managedIdentity', assignment: 'user', displayName: 'id-outside' });
  await admin('/vaults', {
    name: 'kv-outside',
    permissionModel: 'rbac',
    roleAssignments: [{ principalId: mi.oid, roleName: 'Key Vault Crypto Officer' }],
  });
  const client = new KeyClient('https://kv-outside.vault.azure.net', new ManagedIdentityCredential({ clientId: mi.appId }));
  await client.createKey('outside-key', 'RSA');
  await (await client.beginDeleteKey('outside-key', { intervalInMs: 20 })).pollUntilDone();
  const recovered = await (await client.beginRecoverDeletedKey('outside-key', { intervalInMs: 20 })).pollUntilDone();
  const key = await client.getKey('outside-key');
  console.log(JSON.stringify({ recovered: recovered.name, kid: key.id }));
})().catch((e) => { console.error(e && e.stack || String(e)); process.exit(1); });
`;

function readReadyLine(child: ChildProcess): Promise<{ line: string; ms: number }> {
  const started = Date.now();
  return new Promise((resolvePromise, reject) => {
    const rl = createInterface({ input: child.stdout! });
    const timer = setTimeout(() => reject(new Error('no ready line within 10 s')), 10_000);
    rl.once('line', (line) => {
      clearTimeout(timer);
      resolvePromise({ line, ms: Date.now() - started });
    });
    child.once('exit', (code) => reject(new Error(`the emulator exited with ${String(code)}`)));
  });
}

describe('npm run emulator, used from outside the project', () => {
  let emulator: ChildProcess;
  afterEach(() => {
    if (emulator.exitCode === null) emulator.kill('SIGKILL');
  });

  it('prints one ready line within 10 s; an outside program deletes and recovers a key through it; SIGTERM stops it', async () => {
    emulator = spawn(process.execPath, ['--import', 'tsx', join(root, 'test/emulator/main.ts')], {
      cwd: root,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const { line, ms } = await readReadyLine(emulator);
    expect(ms).toBeLessThan(10_000);
    const ready = JSON.parse(line) as Record<string, string>;
    for (const field of [
      'proxy',
      'caCert',
      'identityEndpoint',
      'identityHeader',
      'admin',
      'tenantId',
      'subscriptionId',
    ]) {
      expect(typeof ready[field]).toBe('string');
    }

    const dir = mkdtempSync(join(tmpdir(), 'kvguard-outside-'));
    const program = join(dir, 'outside.js');
    writeFileSync(program, OUTSIDE_PROGRAM);
    const env: NodeJS.ProcessEnv = {
      PATH: process.env.PATH,
      // The SDK packages come from the project's node_modules; nothing else of the project is used.
      NODE_PATH: join(root, 'node_modules'),
      HTTPS_PROXY: ready.proxy,
      NO_PROXY: 'localhost,127.0.0.1',
      NODE_EXTRA_CA_CERTS: ready.caCert,
      IDENTITY_ENDPOINT: ready.identityEndpoint,
      IDENTITY_HEADER: ready.identityHeader,
    };
    const result = await new Promise<{ code: number | null; out: string; err: string }>((resolvePromise) => {
      const child = spawn(process.execPath, [program, line], {
        cwd: dir,
        env,
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      let out = '';
      let err = '';
      child.stdout.on('data', (c: Buffer) => (out += c.toString()));
      child.stderr.on('data', (c: Buffer) => (err += c.toString()));
      child.on('exit', (code) => resolvePromise({ code, out, err }));
    });
    expect(result.err).toBe('');
    expect(result.code).toBe(0);
    const outcome = JSON.parse(result.out) as { recovered: string; kid: string };
    expect(outcome.recovered).toBe('outside-key');
    expect(outcome.kid).toMatch(/^https:\/\/kv-outside\.vault\.azure\.net\/keys\/outside-key\/[0-9a-f]{32}$/);

    const exited = new Promise<number | null>((r) => emulator.once('exit', (code) => r(code)));
    emulator.kill('SIGTERM');
    expect(await exited).toBe(0);
  });
});
