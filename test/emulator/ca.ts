/**
 * The emulator's certificate authority. Clients trust it through NODE_EXTRA_CA_CERTS, which Node
 * reads only at start-up, so the CA is created on disk before any process that needs it starts
 * (scripts/test.mjs, the local run) and reused by every later start.
 *
 * Leaf certificates are minted per SNI host name: a wildcard covers a single DNS label only, and
 * Event Grid topic hosts have two below the service domain (`t1.westeurope-1.eventgrid.azure.net`).
 * Key pairs and signatures come from node:crypto (native, fast); node-forge only assembles the
 * certificates.
 */
import { createPrivateKey, generateKeyPairSync, randomBytes, sign, type KeyObject } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { isIP } from 'node:net';
import { join, resolve } from 'node:path';
import forge from 'node-forge';

export interface CertificateAuthority {
  /** Absolute path of the CA certificate (PEM): the value for NODE_EXTRA_CA_CERTS. */
  certPath: string;
  certPem: string;
  /** A leaf certificate and key (PEM) for the given host names (DNS names or IP literals). */
  leafFor(hosts: string[]): { cert: string; key: string };
}

/** Default location: `.emulator/` at the project root (ignored by git). */
export function defaultCaDir(): string {
  return resolve(__dirname, '..', '..', '.emulator');
}

function newKeyPair(): { publicPem: string; privatePem: string } {
  const { publicKey, privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  return {
    publicPem: publicKey.export({ type: 'spki', format: 'pem' }).toString(),
    privatePem: privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(),
  };
}

/**
 * Signs `cert` (SHA-256 with RSA, PKCS #1 v1.5) as forge's `cert.sign` would, but with Node's native
 * RSA: forge's pure-JavaScript signature took ~150 ms of CPU per leaf, paid on the first connection to
 * each host — inside whatever a test or the benchmark was timing.
 */
function signSha256Rsa(cert: forge.pki.Certificate, key: KeyObject): void {
  const oid = forge.pki.oids.sha256WithRSAEncryption!;
  cert.signatureOid = oid;
  cert.siginfo.algorithmOid = oid;
  // getTBSCertificate is public in forge but missing from its type definitions.
  const pki = forge.pki as unknown as { getTBSCertificate(c: forge.pki.Certificate): forge.asn1.Asn1 };
  const tbs = pki.getTBSCertificate(cert);
  const der = Buffer.from(forge.asn1.toDer(tbs).getBytes(), 'binary');
  // forge keeps the TBS it signed and serialises that one (certificateToAsn1).
  (cert as forge.pki.Certificate & { tbsCertificate: forge.asn1.Asn1 }).tbsCertificate = tbs;
  cert.signature = sign('sha256', der, key).toString('binary');
}

function serial(): string {
  // Positive serial number: clear the top bit.
  const bytes = randomBytes(16);
  bytes[0] = (bytes[0] ?? 0) & 0x7f;
  return bytes.toString('hex');
}

/** Loads the CA from `dir`, creating it on first use. */
export function ensureCertificateAuthority(dir: string = defaultCaDir()): CertificateAuthority {
  mkdirSync(dir, { recursive: true });
  const certPath = join(dir, 'ca.pem');
  const keyPath = join(dir, 'ca-key.pem');
  if (!existsSync(certPath) || !existsSync(keyPath)) {
    const pair = newKeyPair();
    const cert = forge.pki.createCertificate();
    cert.publicKey = forge.pki.publicKeyFromPem(pair.publicPem);
    cert.serialNumber = serial();
    cert.validity.notBefore = new Date(Date.now() - 24 * 3600e3);
    cert.validity.notAfter = new Date(Date.now() + 5 * 365 * 24 * 3600e3);
    const subject = [{ name: 'commonName', value: 'kvguard emulator local CA' }];
    cert.setSubject(subject);
    cert.setIssuer(subject);
    cert.setExtensions([
      { name: 'basicConstraints', cA: true, critical: true },
      { name: 'keyUsage', keyCertSign: true, cRLSign: true, critical: true },
      { name: 'subjectKeyIdentifier' },
    ]);
    signSha256Rsa(cert, createPrivateKey(pair.privatePem));
    writeFileSync(keyPath, pair.privatePem, { mode: 0o600 });
    writeFileSync(certPath, forge.pki.certificateToPem(cert));
  }
  const certPem = readFileSync(certPath, 'utf8');
  const caCert = forge.pki.certificateFromPem(certPem);
  const caKey = createPrivateKey(readFileSync(keyPath, 'utf8'));
  // One key pair serves every leaf of this process: minting stays a signature, not a key generation.
  const leafPair = newKeyPair();
  const leafPublic = forge.pki.publicKeyFromPem(leafPair.publicPem);
  const cache = new Map<string, { cert: string; key: string }>();

  return {
    certPath: resolve(certPath),
    certPem,
    leafFor(hosts: string[]) {
      const cacheKey = hosts.join(',');
      const hit = cache.get(cacheKey);
      if (hit) return hit;
      const cert = forge.pki.createCertificate();
      cert.publicKey = leafPublic;
      cert.serialNumber = serial();
      cert.validity.notBefore = new Date(Date.now() - 3600e3);
      cert.validity.notAfter = new Date(Date.now() + 365 * 24 * 3600e3);
      cert.setSubject([{ name: 'commonName', value: hosts[0] ?? 'localhost' }]);
      cert.setIssuer(caCert.subject.attributes);
      cert.setExtensions([
        { name: 'basicConstraints', cA: false },
        { name: 'keyUsage', digitalSignature: true, keyEncipherment: true, critical: true },
        { name: 'extKeyUsage', serverAuth: true },
        {
          name: 'subjectAltName',
          altNames: hosts.map((h) => (isIP(h) ? { type: 7, ip: h } : { type: 2, value: h })),
        },
      ]);
      signSha256Rsa(cert, caKey);
      const minted = { cert: forge.pki.certificateToPem(cert), key: leafPair.privatePem };
      cache.set(cacheKey, minted);
      return minted;
    },
  };
}
