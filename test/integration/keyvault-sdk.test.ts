/**
 * The emulated Key Vault data plane through the real KeyClient (@azure/keyvault-keys), the proxy and
 * ManagedIdentityCredential: the SDK behaviours the responder leans on beyond the basic conformance
 * in keyvault-client.test.ts — the pollers against the completion lag (404 while in flight, 403 as
 * done), a recover sent too early, versions, pinned service versions, EC keys, paging of deleted
 * keys, an unknown vault, and the caller's address in the audit record.
 */
import { ManagedIdentityCredential } from '@azure/identity';
import { KeyClient } from '@azure/keyvault-keys';
import { isRestError, type RestError } from '@azure/core-rest-pipeline';
import { startHarness, type Harness } from '../emulator/testing/harness';
import type { Principal } from '../emulator/types';

let h: Harness;
let mi: Principal;
let credential: ManagedIdentityCredential;
const RETRY = { retryOptions: { retryDelayInMs: 10, maxRetryDelayInMs: 50 } };

beforeAll(async () => {
  h = await startHarness({ completionLagMs: 150 });
});
afterAll(async () => h.stop());

beforeEach(() => {
  h.emulator.reset();
  h.emulator.core.timing.completionLagMs = 150;
  mi = h.emulator.addPrincipal({
    kind: 'managedIdentity',
    displayName: 'id-kvguard-sdk',
    assignment: 'user',
    ipAddress: '203.0.113.50',
  });
  credential = new ManagedIdentityCredential({ clientId: mi.appId! });
});

function vault(
  name: string,
  extra: { accessPolicyKeys?: string[]; serviceVersion?: string } = {},
): KeyClient {
  const accessPolicy = extra.accessPolicyKeys !== undefined;
  h.emulator.addVault({
    name,
    resourceGroup: 'rg-sdk',
    location: 'northeurope',
    retentionDays: 7,
    permissionModel: accessPolicy ? 'accessPolicy' : 'rbac',
    accessPolicies: accessPolicy ? [{ objectId: mi.oid, keys: extra.accessPolicyKeys }] : undefined,
    roleAssignments: accessPolicy
      ? undefined
      : [{ principalId: mi.oid, roleName: 'Key Vault Crypto Officer' }],
  });
  return new KeyClient(`https://${name}.vault.azure.net`, credential, {
    ...RETRY,
    ...(extra.serviceVersion ? { serviceVersion: extra.serviceVersion } : {}),
  });
}

async function restError(promise: Promise<unknown>): Promise<RestError> {
  const error = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  if (!isRestError(error)) throw new Error(`expected a RestError, got ${String(error)}`);
  return error;
}

const served = (host: string, method: string, path: string) =>
  h.emulator.requests
    .filter((r) => r.host === host && r.method === method && r.path === path)
    .map((r) => r.status);

describe('KeyClient pollers and edge cases against the emulated vault', () => {
  it('the delete poller sees 404 while the deletion is in flight, then 200', async () => {
    const client = vault('kv-sdk-del');
    await client.createKey('k1', 'RSA');
    const deleted = await (await client.beginDeleteKey('k1', { intervalInMs: 20 })).pollUntilDone();
    expect(deleted.properties.recoveryId).toBe('https://kv-sdk-del.vault.azure.net/deletedkeys/k1');
    const polls = served('kv-sdk-del.vault.azure.net', 'GET', '/deletedkeys/k1');
    expect(polls[0]).toBe(404);
    expect(polls[polls.length - 1]).toBe(200);
  });

  it('a recover sent before the deletion completed fails with 409 Conflict; after it, it succeeds', async () => {
    const client = vault('kv-sdk-early');
    await client.createKey('k1', 'RSA');
    h.emulator.core.timing.completionLagMs = 400;
    await client.beginDeleteKey('k1', { intervalInMs: 20 }); // returns once the DELETE answered
    const early = await restError(client.beginRecoverDeletedKey('k1', { intervalInMs: 20 }));
    expect(early.statusCode).toBe(409);
    expect(early.code).toBe('Conflict');
    await new Promise((r) => setTimeout(r, 450));
    const recovered = await (await client.beginRecoverDeletedKey('k1', { intervalInMs: 20 })).pollUntilDone();
    expect(recovered.name).toBe('k1');
  });

  it('the delete poller ends on 403 when the caller may delete but not get (access policy)', async () => {
    const client = vault('kv-sdk-403', { accessPolicyKeys: ['create', 'delete'] });
    await client.createKey('k1', 'RSA');
    const deleted = await (await client.beginDeleteKey('k1', { intervalInMs: 20 })).pollUntilDone();
    expect(deleted.name).toBe('k1');
    expect(served('kv-sdk-403.vault.azure.net', 'GET', '/deletedkeys/k1')).toEqual([403]);
  });

  it('reads and updates a given version and lists versions', async () => {
    const client = vault('kv-sdk-ver');
    const first = await client.createKey('k1', 'RSA', { tags: { gen: '1' } });
    const second = await client.createKey('k1', 'RSA', { tags: { gen: '2' } });
    expect(first.properties.version).not.toBe(second.properties.version);
    const old = await client.getKey('k1', { version: first.properties.version! });
    expect(old.properties.tags).toEqual({ gen: '1' });
    await client.updateKeyProperties('k1', first.properties.version!, { enabled: false });
    const versions = [];
    for await (const v of client.listPropertiesOfKeyVersions('k1')) versions.push(v);
    expect(versions.map((v) => [v.version, v.enabled])).toEqual([
      [first.properties.version, false],
      [second.properties.version, true],
    ]);
    expect((await client.getKey('k1')).properties.tags).toEqual({ gen: '2' });
  });

  it.each(['7.5', '7.6', '2025-06-01'])(
    'serves a client pinned to api-version %s',
    async (serviceVersion) => {
      const name = `kv-sdk-v${serviceVersion.replace(/\W/g, '')}`;
      const client = vault(name, { serviceVersion });
      const key = await client.createEcKey('ec1', { curve: 'P-256' });
      expect(key.key?.crv).toBe('P-256');
      expect(key.keyType).toBe('EC');
      const record = h.emulator.audit.find((r) => r.operationName === 'KeyCreate' && r.properties);
      expect(record?.operationVersion).toBe(serviceVersion);
    },
  );

  it('pages deleted keys and reports their deletion facts', async () => {
    const client = vault('kv-sdk-page');
    h.emulator.core.timing.completionLagMs = 0;
    for (let i = 0; i < 5; i++) {
      await client.createKey(`k${i}`, 'RSA');
      await (await client.beginDeleteKey(`k${i}`, { intervalInMs: 10 })).pollUntilDone();
    }
    const pages: number[] = [];
    const names: string[] = [];
    for await (const page of client.listDeletedKeys().byPage({ maxPageSize: 2 })) {
      pages.push(page.length);
      for (const d of page) {
        names.push(d.name);
        expect(d.properties.recoveryLevel).toBe('CustomizedRecoverable+Purgeable');
        expect(d.properties.scheduledPurgeDate!.getTime() - d.properties.deletedOn!.getTime()).toBe(
          7 * 86400e3,
        );
      }
    }
    expect(pages).toEqual([2, 2, 1]);
    expect(names).toEqual(['k0', 'k1', 'k2', 'k3', 'k4']);
  });

  it('fails at once with 404 for a vault that does not exist (no challenge, no retry)', async () => {
    const client = new KeyClient('https://kv-sdk-missing.vault.azure.net', credential, RETRY);
    const error = await restError(client.getKey('k1'));
    expect(error.statusCode).toBe(404);
    expect(error.code).toBe('VaultNotFound');
    expect(h.emulator.requests.filter((r) => r.host === 'kv-sdk-missing.vault.azure.net')).toHaveLength(1);
  });

  it('records the caller, its address and the user agent in the KeyDelete record', async () => {
    const client = vault('kv-sdk-audit');
    await client.createKey('k1', 'RSA');
    await (await client.beginDeleteKey('k1', { intervalInMs: 20 })).pollUntilDone();
    const challenge = h.emulator.audit.find((r) => r.resultSignature === 'Unauthorized');
    expect(challenge).toMatchObject({
      operationName: 'KeyCreate',
      properties: expect.objectContaining({ httpStatusCode: 401 }),
    });
    expect(challenge).not.toHaveProperty('identity');
    const record = h.emulator.audit.find((r) => r.operationName === 'KeyDelete');
    expect(record).toMatchObject({
      callerIpAddress: '203.0.113.50',
      location: 'northeurope',
      identity: { claim: expect.objectContaining({ oid: mi.oid, appid: mi.appId, idtyp: 'app' }) },
      properties: expect.objectContaining({
        id: 'https://kv-sdk-audit.vault.azure.net/keys/k1',
        isRbacAuthorized: true,
        clientInfo: expect.stringContaining('azsdk-js-keyvault-keys'),
      }),
    });
    expect(record?.correlationId).toMatch(/^[0-9a-f-]{36}$/);
  });
});
