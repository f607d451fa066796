/**
 * Azurite (Table and Blob services) over HTTPS with a certificate from the emulator's CA and
 * `--oauth basic`, so kvguard authenticates to storage with the same TokenCredential as in Azure
 * (Azurite checks the token's audience, issuer and lifetime). In-memory, on free ports.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { defaultCaDir, ensureCertificateAuthority } from './ca';

export interface Azurite {
  /** e.g. https://127.0.0.1:41234/devstoreaccount1 */
  blobEndpoint: string;
  tableEndpoint: string;
  stop(): Promise<void>;
}

export async function startAzurite(caDir: string = defaultCaDir()): Promise<Azurite> {
  const ca = ensureCertificateAuthority(caDir);
  mkdirSync(caDir, { recursive: true });
  const leaf = ca.leafFor(['127.0.0.1', 'localhost']);
  const certPath = join(caDir, 'azurite-cert.pem');
  const keyPath = join(caDir, 'azurite-key.pem');
  writeFileSync(certPath, leaf.cert);
  writeFileSync(keyPath, leaf.key, { mode: 0o600 });
  const cwd = mkdtempSync(join(tmpdir(), 'kvguard-azurite-'));
  const child: ChildProcess = spawn(
    process.execPath,
    [
      require.resolve('azurite/dist/src/azurite.js'),
      '--blobPort',
      '0',
      '--tablePort',
      '0',
      '--queuePort',
      '0',
      '--inMemoryPersistence',
      '--extentMemoryLimit',
      '256',
      '--oauth',
      'basic',
      '--cert',
      certPath,
      '--key',
      keyPath,
      '--skipApiVersionCheck',
      '--disableTelemetry',
      '--silent',
    ],
    { cwd, stdio: ['ignore', 'pipe', 'pipe'] },
  );
  const ports: Record<string, string> = {};
  await new Promise<void>((resolve, reject) => {
    let output = '';
    const timer = setTimeout(() => reject(new Error(`Azurite did not start within 15 s:\n${output}`)), 15000);
    const onData = (chunk: Buffer) => {
      output += chunk.toString();
      for (const m of output.matchAll(
        /Azurite (Blob|Table) service is successfully listening at https:\/\/127\.0\.0\.1:(\d+)/g,
      )) {
        ports[m[1]!] = m[2]!;
      }
      if (ports.Blob && ports.Table) {
        clearTimeout(timer);
        resolve();
      }
    };
    child.stdout?.on('data', onData);
    child.stderr?.on('data', onData);
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`Azurite exited with ${String(code)}:\n${output}`));
    });
  });
  child.removeAllListeners('exit');
  return {
    blobEndpoint: `https://127.0.0.1:${ports.Blob}/devstoreaccount1`,
    tableEndpoint: `https://127.0.0.1:${ports.Table}/devstoreaccount1`,
    stop: () =>
      new Promise<void>((resolve) => {
        if (child.exitCode !== null) return resolve();
        child.once('exit', () => resolve());
        child.kill('SIGTERM');
      }),
  };
}
