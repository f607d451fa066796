/**
 * The emulator's certificate authority (test/emulator/ca.ts): the leaves it mints are what Node's TLS
 * client checks against NODE_EXTRA_CA_CERTS, so they must verify against the CA, name their hosts, and
 * complete a real handshake with verification on.
 */
import { X509Certificate } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect, createServer, type Server } from 'node:tls';
import { ensureCertificateAuthority } from '../emulator/ca';

let dir: string;

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'kvguard-ca-'));
});

afterAll(() => {
  rmSync(dir, { recursive: true, force: true });
});

test('a leaf is signed by the CA, names its hosts, and is minted once per host set', () => {
  const ca = ensureCertificateAuthority(dir);
  const leaf = ca.leafFor(['kv-one.vault.azure.net', '127.0.0.1']);
  const cert = new X509Certificate(leaf.cert);
  const caCert = new X509Certificate(ca.certPem);
  // The CA made in this directory signs itself; a leaf is signed by it.
  expect(caCert.ca).toBe(true);
  expect(caCert.verify(caCert.publicKey)).toBe(true);
  expect(cert.verify(caCert.publicKey)).toBe(true);
  expect(cert.checkIssued(caCert)).toBe(true);
  expect(cert.subjectAltName).toBe('DNS:kv-one.vault.azure.net, IP Address:127.0.0.1');
  expect(cert.checkHost('kv-one.vault.azure.net')).toBe('kv-one.vault.azure.net');
  expect(cert.checkHost('kv-two.vault.azure.net')).toBeUndefined();
  expect(cert.ca).toBe(false);
  expect(ca.leafFor(['kv-one.vault.azure.net', '127.0.0.1'])).toBe(leaf);
  // A second load of the same directory is the same CA: leaves minted by either verify.
  const again = ensureCertificateAuthority(dir);
  expect(again.certPem).toBe(ca.certPem);
  expect(new X509Certificate(again.leafFor(['other.example']).cert).verify(caCert.publicKey)).toBe(true);
});

test('a TLS client that trusts only the CA completes a handshake with a leaf, and refuses a wrong name', async () => {
  const ca = ensureCertificateAuthority(dir);
  const leaf = ca.leafFor(['management.azure.com']);
  const server: Server = createServer({ cert: leaf.cert, key: leaf.key }, (socket) => socket.end('ok'));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  const handshake = (servername: string) =>
    new Promise<string>((resolve, reject) => {
      const socket = connect({ host: '127.0.0.1', port, servername, ca: ca.certPem }, () => {
        socket.once('data', (d: Buffer) => resolve(d.toString()));
      });
      socket.once('error', reject);
    });
  try {
    await expect(handshake('management.azure.com')).resolves.toBe('ok');
    await expect(handshake('login.microsoftonline.com')).rejects.toThrow(/altnames|Hostname/i);
  } finally {
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }
});
