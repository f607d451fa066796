/**
 * Conformance of the emulated Key Vault data plane with the real KeyClient (@azure/keyvault-keys),
 * authenticated by ManagedIdentityCredential, with challenge-resource verification left on and the
 * real host names: every behaviour the responder relies on, including each error status.
 */
import { ManagedIdentityCredential } from '@azure/identity';
import { KeyClient } from '@azure/keyvault-keys';
import { isRestError, type RestError } from '@azure/core-rest-pipeline';
import { startHarness, type Harness } from '../emulator/testing/harness';
import type { Principal } from '../emulator/types';

let h: Harness;
let mi: Principal;
let credential: ManagedIdentityCredential;

beforeAll(async () => {
  h = await startHarness({ completionLagMs: 60 });
});
afterAll(async () => h.stop());

function vaultId(name: string): string {
  return `/subscriptions/${h.emulator.subscriptionId}/resourceGroups/rg-app/providers/Microsoft.KeyVault/vaults/${name}`;
}

beforeEach(() => {
  h.emulator.reset();
  h.emulator.core.timing.completionLagMs = 60;
  mi = h.emulator.addPrincipal({ kind: 'managedIdentity', displayName: 'id-kvguard', assignment: 'user' });
  credential = new ManagedIdentityCredential({ clientId: mi.appId! });
});

function rbacVault(name: string, options: { purgeProtection?: boolean; grant?: string } = {}) {
  h.emulator.addVault({
    name,
    resourceGroup: 'rg-app',
    location: 'westeurope',
    permissionModel: 'rbac',
    purgeProtection: options.purgeProtection ?? false,
    retentionDays: 7,
  });
  if (options.grant !== 'none') {
    h.emulator.core.roleAssignments.push({
      id: `ra-${name}`,
      principalId: mi.oid,
      scope: vaultId(name),
      roleName: options.grant ?? 'Key Vault Crypto Officer',
    });
  }
  return new KeyClient(`https://${name}.vault.azure.net`, credential, {
    retryOptions: { retryDelayInMs: 10, maxRetryDelayInMs: 50 },
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

describe('keys through the real KeyClient', () => {
  it('answers the first, unauthenticated request with the 401 challenge, then serves the retry', async () => {
    const client = rbacVault('kv-challenge');
    const key = await client.createKey('k1', 'RSA');
    expect(key.name).toBe('k1');
    const served = h.emulator.requests.filter((r) => r.host === 'kv-challenge.vault.azure.net');
    expect(served[0]).toMatchObject({ method: 'POST', status: 401, callerOid: undefined });
    expect(served[1]).toMatchObject({ method: 'POST', status: 200, callerOid: mi.oid });
  });

  it('uses real host names without a port in kid and recoveryId', async () => {
    const client = rbacVault('kv-ids');
    const key = await client.createKey('k1', 'RSA');
    expect(key.id).toMatch(/^https:\/\/kv-ids\.vault\.azure\.net\/keys\/k1\/[0-9a-f]{32}$/);
    const poller = await client.beginDeleteKey('k1', { intervalInMs: 20 });
    const deleted = await poller.pollUntilDone();
    expect(deleted.properties.recoveryId).toBe('https://kv-ids.vault.azure.net/deletedkeys/k1');
  });

  it('creates, reads, lists with paging, updates tags', async () => {
    const client = rbacVault('kv-crud');
    for (let i = 0; i < 7; i++) await client.createKey(`key-${i}`, 'RSA');
    const pages: number[] = [];
    for await (const page of client.listPropertiesOfKeys().byPage({ maxPageSize: 3 }))
      pages.push(page.length);
    expect(pages).toEqual([3, 3, 1]);
    const updated = await client.updateKeyProperties('key-1', { tags: { owner: 'team-a' } });
    expect(updated.properties.tags).toEqual({ owner: 'team-a' });
    expect((await client.getKey('key-1')).properties.tags).toEqual({ owner: 'team-a' });
  });

  it('soft-deletes with a completion lag, lists the deleted key and recovers it', async () => {
    const client = rbacVault('kv-cycle');
    await client.createKey('k1', 'RSA');
    const deletedAt = Math.floor(Date.now() / 1000);
    const poller = await client.beginDeleteKey('k1', { intervalInMs: 20 });
    const deleted = await poller.pollUntilDone();
    expect(deleted.properties.recoveryLevel).toBe('CustomizedRecoverable+Purgeable');
    expect(deleted.properties.recoverableDays).toBe(7);
    const deletedOn = deleted.properties.deletedOn!.getTime() / 1000;
    expect(Math.abs(deletedOn - deletedAt)).toBeLessThanOrEqual(2);
    expect(deleted.properties.scheduledPurgeDate!.getTime() / 1000).toBe(deletedOn + 7 * 86400);
    const listed = [];
    for await (const d of client.listDeletedKeys()) listed.push(d.name);
    expect(listed).toEqual(['k1']);
    const recovered = await (await client.beginRecoverDeletedKey('k1', { intervalInMs: 20 })).pollUntilDone();
    expect(recovered.name).toBe('k1');
    expect((await client.getKey('k1')).name).toBe('k1');
    // The poller saw the recovery still in flight at least once (404 while the lag runs).
    const gets = h.emulator.requests.filter((r) => r.method === 'GET' && r.path === '/keys/k1/');
    expect(gets.map((r) => r.status)).toContain(404);
    expect(gets[gets.length - 1]!.status).toBe(200);
  });

  it('answers 404 KeyNotFound for a missing key and for a deleted key still being deleted', async () => {
    const client = rbacVault('kv-404');
    const missing = await restError(client.getKey('nope'));
    expect(missing.statusCode).toBe(404);
    expect(missing.code).toBe('KeyNotFound');
    await client.createKey('k1', 'RSA');
    h.emulator.core.timing.completionLagMs = 5000;
    await client.beginDeleteKey('k1', { intervalInMs: 20 });
    const pending = await restError(client.getDeletedKey('k1'));
    expect(pending.statusCode).toBe(404);
    expect(pending.code).toBe('KeyNotFound');
  });

  it('answers 409 Conflict when creating over a soft-deleted name', async () => {
    const client = rbacVault('kv-409');
    await client.createKey('k1', 'RSA');
    await (await client.beginDeleteKey('k1', { intervalInMs: 20 })).pollUntilDone();
    const conflict = await restError(client.createKey('k1', 'RSA'));
    expect(conflict.statusCode).toBe(409);
    expect(conflict.code).toBe('Conflict');
  });

  it('refuses purge on a purge-protected vault (403) and purges (204) otherwise', async () => {
    const protectedClient = rbacVault('kv-pp', { purgeProtection: true });
    await protectedClient.createKey('k1', 'RSA');
    const deleted = await (await protectedClient.beginDeleteKey('k1', { intervalInMs: 20 })).pollUntilDone();
    expect(deleted.properties.recoveryLevel).toBe('CustomizedRecoverable');
    const refused = await restError(protectedClient.purgeDeletedKey('k1'));
    expect(refused.statusCode).toBe(403);
    expect(refused.message).toContain('purge protection is enabled');

    const open = rbacVault('kv-open');
    await open.createKey('k1', 'RSA');
    await (await open.beginDeleteKey('k1', { intervalInMs: 20 })).pollUntilDone();
    await open.purgeDeletedKey('k1');
    const purge = h.emulator.requests.find(
      (r) => r.method === 'DELETE' && r.host === 'kv-open.vault.azure.net' && r.path === '/deletedkeys/k1',
    );
    expect(purge?.status).toBe(204);
    expect((await restError(open.getDeletedKey('k1'))).statusCode).toBe(404);
  });

  it('answers 403 ForbiddenByRbac to a caller without the data action', async () => {
    const client = rbacVault('kv-noperm', { grant: 'Key Vault Crypto User' });
    h.emulator.core.roleAssignments.push({
      id: 'ra-admin',
      principalId: 'seed',
      scope: vaultId('kv-noperm'),
      roleName: 'Key Vault Administrator',
    });
    const error = await restError(client.createKey('k1', 'RSA'));
    expect(error.statusCode).toBe(403);
    expect(error.code).toBe('Forbidden');
    expect(JSON.stringify(error.details)).toContain('ForbiddenByRbac');
  });

  it('answers 403 ForbiddenByPolicy on an access-policy vault without the key permission', async () => {
    h.emulator.addVault({
      name: 'kv-policy',
      resourceGroup: 'rg-app',
      location: 'westeurope',
      permissionModel: 'accessPolicy',
      accessPolicies: [{ objectId: mi.oid, keys: ['get', 'list'] }],
    });
    const client = new KeyClient('https://kv-policy.vault.azure.net', credential);
    const error = await restError(client.createKey('k1', 'RSA'));
    expect(error.statusCode).toBe(403);
    expect(JSON.stringify(error.details)).toContain('ForbiddenByPolicy');
  });

  it('writes the AuditEvent record a real vault writes, with the caller', async () => {
    const client = rbacVault('kv-audit');
    await client.createKey('k1', 'RSA');
    await (await client.beginDeleteKey('k1', { intervalInMs: 20 })).pollUntilDone();
    const record = h.emulator.audit.find((r) => r.operationName === 'KeyDelete');
    expect(record).toBeDefined();
    expect(record).toMatchObject({
      category: 'AuditEvent',
      resultType: 'Success',
      resourceId: vaultId('kv-audit').toUpperCase(),
      identity: { claim: expect.objectContaining({ oid: mi.oid, appid: mi.appId }) },
      properties: expect.objectContaining({
        id: 'https://kv-audit.vault.azure.net/keys/k1',
        httpStatusCode: 200,
        requestUri: expect.stringMatching(/^https:\/\/kv-audit\.vault\.azure\.net\/keys\/k1\?api-version=/),
        clientInfo: expect.stringContaining('azsdk-js-keyvault-keys'),
      }),
    });
  });

  it('retries a 429 that carries Retry-After and succeeds', async () => {
    const client = rbacVault('kv-429');
    await client.createKey('k1', 'RSA');
    h.emulator.faults.add({
      kind: 'throttle',
      host: 'kv-429.vault.azure.net',
      path: '^/keys/k1',
      count: 1,
      retryAfterMs: 30,
    });
    const key = await client.getKey('k1');
    expect(key.name).toBe('k1');
    const statuses = h.emulator.requests.filter((r) => r.path === '/keys/k1/').map((r) => r.status);
    expect(statuses).toEqual([429, 200]);
  });
});
