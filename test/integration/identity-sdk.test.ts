/**
 * Conformance of the emulated identity endpoints with the real @azure/identity credentials:
 * ManagedIdentityCredential (App Service endpoint), ClientSecretCredential (Entra client
 * credentials through the proxy) and DefaultAzureCredential, and the error shapes for a wrong
 * secret or an unknown client.
 */
import { ClientSecretCredential, DefaultAzureCredential, ManagedIdentityCredential } from '@azure/identity';
import { decode } from 'jsonwebtoken';
import { createCredential } from '../../lib/adapters/azure';
import { startHarness, type Harness } from '../emulator/testing/harness';

let h: Harness;
beforeAll(async () => {
  h = await startHarness();
});
afterAll(async () => h.stop());
beforeEach(() => h.emulator.reset());

function claimsOf(token: string): Record<string, unknown> {
  const claims = decode(token);
  if (!claims || typeof claims !== 'object') throw new Error('not a JWT');
  return claims;
}

describe('managed identity (App Service endpoint)', () => {
  it('issues a v1 token for a user-assigned identity selected by client id', async () => {
    const mi = h.emulator.addPrincipal({
      kind: 'managedIdentity',
      displayName: 'id-kvguard',
      assignment: 'user',
    });
    const credential = new ManagedIdentityCredential({ clientId: mi.appId! });
    const token = await credential.getToken('https://vault.azure.net/.default');
    const claims = claimsOf(token.token);
    expect(claims).toMatchObject({
      aud: 'https://vault.azure.net',
      iss: `https://sts.windows.net/${h.emulator.tenantId}/`,
      ver: '1.0',
      oid: mi.oid,
      tid: h.emulator.tenantId,
      appid: mi.appId,
      idtyp: 'app',
    });
    expect(claims.exp as number).toBeGreaterThan(claims.iat as number);
    expect(token.expiresOnTimestamp).toBeGreaterThan(Date.now());
    expect(h.emulator.identity.verifyBearer(`Bearer ${token.token}`, ['https://vault.azure.net'])?.oid).toBe(
      mi.oid,
    );
  });

  it('refuses a request without an identity id when the app has only a user-assigned identity', async () => {
    h.emulator.addPrincipal({ kind: 'managedIdentity', displayName: 'id-kvguard', assignment: 'user' });
    const credential = new ManagedIdentityCredential();
    await expect(credential.getToken('https://vault.azure.net/.default')).rejects.toThrow();
  });

  it('uses the system-assigned identity when no id is given and one exists', async () => {
    const mi = h.emulator.addPrincipal({
      kind: 'managedIdentity',
      displayName: 'func-kvguard',
      assignment: 'system',
    });
    const token = await new ManagedIdentityCredential().getToken('https://management.azure.com/.default');
    expect(claimsOf(token.token)).toMatchObject({ oid: mi.oid, aud: 'https://management.azure.com' });
  });

  it('issues storage tokens', async () => {
    const mi = h.emulator.addPrincipal({ kind: 'managedIdentity', assignment: 'user' });
    const token = await new ManagedIdentityCredential({ clientId: mi.appId! }).getToken(
      'https://storage.azure.com/.default',
    );
    expect(claimsOf(token.token).aud).toBe('https://storage.azure.com');
  });

  it('works through DefaultAzureCredential with AZURE_CLIENT_ID', async () => {
    const mi = h.emulator.addPrincipal({ kind: 'managedIdentity', assignment: 'user' });
    const credential = new DefaultAzureCredential({ managedIdentityClientId: mi.appId! });
    const token = await credential.getToken('https://vault.azure.net/.default');
    expect(claimsOf(token.token).oid).toBe(mi.oid);
  });
});

describe('Entra client credentials (login.microsoftonline.com through the proxy)', () => {
  it('issues a token for a service principal with the right secret', async () => {
    const sp = h.emulator.addPrincipal({
      kind: 'servicePrincipal',
      displayName: 'rotation-pipeline',
      secret: 's3cret',
    });
    const credential = new ClientSecretCredential(h.emulator.tenantId, sp.appId!, 's3cret');
    const token = await credential.getToken('https://vault.azure.net/.default');
    expect(claimsOf(token.token)).toMatchObject({ oid: sp.oid, appid: sp.appId, idtyp: 'app', ver: '1.0' });
    const served = h.emulator.requests.filter((r) => r.host === 'login.microsoftonline.com');
    expect(
      served.some((r) => r.method === 'POST' && r.path.endsWith('/oauth2/v2.0/token') && r.status === 200),
    ).toBe(true);
  });

  it('answers a wrong secret with invalid_client (AADSTS7000215)', async () => {
    const sp = h.emulator.addPrincipal({ kind: 'servicePrincipal', secret: 'right' });
    const credential = new ClientSecretCredential(h.emulator.tenantId, sp.appId!, 'wrong');
    const error = await credential.getToken('https://vault.azure.net/.default').catch((e: unknown) => e);
    // @azure/identity surfaces MSAL's parse of Entra's body: the error code and the AADSTS text.
    expect(error).toBeInstanceOf(Error);
    expect((error as Error).message).toContain('invalid_client');
    expect((error as Error).message).toContain('AADSTS7000215');
    const call = h.emulator.requests.find((r) => r.path.endsWith('/oauth2/v2.0/token'));
    expect(call?.status).toBe(401);
  });

  it('answers an unknown client with unauthorized_client (AADSTS700016)', async () => {
    const credential = new ClientSecretCredential(
      h.emulator.tenantId,
      '11111111-2222-3333-4444-555555555555',
      'x',
    );
    const error = await credential.getToken('https://vault.azure.net/.default').catch((e: unknown) => e);
    expect(error).toBeInstanceOf(Error);
    expect((error as Error).message).toContain('unauthorized_client');
    expect((error as Error).message).toContain('AADSTS700016');
    const call = h.emulator.requests.find((r) => r.path.endsWith('/oauth2/v2.0/token'));
    expect(call?.status).toBe(400);
  });
});

describe('the proxy', () => {
  it('refuses and logs a CONNECT to a host it does not emulate', async () => {
    const { request } = await import('node:http');
    const status = await new Promise<number>((resolve, reject) => {
      const req = request(h.emulator.proxy, { method: 'CONNECT', path: 'evil.test:443' });
      req.on('connect', (res, socket) => {
        socket.destroy();
        resolve(res.statusCode ?? 0);
      });
      req.on('error', reject);
      req.end();
    });
    expect(status).toBe(403);
    expect(h.emulator.requests).toContainEqual(
      expect.objectContaining({ method: 'CONNECT', host: 'evil.test', outcome: 'refused' }),
    );
  });
});

describe("kvguard's credential (lib/adapters/azure.ts createCredential)", () => {
  const tokenRequests = () => h.emulator.requests.filter((r) => r.path.startsWith('/msi/token')).length;

  it('asks the identity endpoint once for many concurrent callers, and again only for another audience', async () => {
    const mi = h.emulator.addPrincipal({
      kind: 'managedIdentity',
      displayName: 'id-kvguard',
      assignment: 'user',
    });
    const credential = createCredential(mi.appId);
    const before = tokenRequests();
    const tokens = await Promise.all(
      Array.from({ length: 16 }, () => credential.getToken('https://management.azure.com/.default')),
    );
    expect(tokenRequests() - before).toBe(1);
    expect(new Set(tokens.map((t) => t?.token)).size).toBe(1);
    expect(claimsOf(tokens[0]!.token)).toMatchObject({ aud: 'https://management.azure.com', oid: mi.oid });
    // Cached by the SDK credential from now on; another audience is a request of its own.
    await credential.getToken('https://management.azure.com/.default');
    expect(tokenRequests() - before).toBe(1);
    const [vault] = await Promise.all([
      credential.getToken('https://vault.azure.net/.default'),
      credential.getToken('https://vault.azure.net/.default'),
    ]);
    expect(claimsOf(vault!.token).aud).toBe('https://vault.azure.net');
    expect(tokenRequests() - before).toBe(2);
  });

  it('a failed request is not kept: the next caller asks again', async () => {
    const credential = createCredential('00000000-0000-4000-8000-00000000dead');
    await expect(credential.getToken('https://vault.azure.net/.default')).rejects.toThrow();
    const mi = h.emulator.addPrincipal({ kind: 'managedIdentity', displayName: 'late', assignment: 'user' });
    const before = tokenRequests();
    await expect(
      createCredential(mi.appId).getToken('https://vault.azure.net/.default'),
    ).resolves.toBeTruthy();
    await expect(credential.getToken('https://vault.azure.net/.default')).rejects.toThrow();
    expect(tokenRequests() - before).toBeGreaterThanOrEqual(2);
  });
});
