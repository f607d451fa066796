/**
 * Enrichment (design §2 step 5) with the real adapters against the emulated Azure, through the
 * proxy: an attacker deletes a key with the real KeyClient; kvguard's managed identity then finds
 * the caller in the workspace (WorkspaceAuditLogQuery, @azure/monitor-query-logs) and names the
 * principal through Microsoft Graph (GraphDirectory, @azure/core-rest-pipeline).
 */
import type { AccessToken, TokenCredential } from '@azure/core-auth';
import { ClientSecretCredential, ManagedIdentityCredential } from '@azure/identity';
import { KeyClient } from '@azure/keyvault-keys';
import { GraphDirectory } from '../../lib/adapters/graph';
import { WorkspaceAuditLogQuery } from '../../lib/adapters/loganalytics';
import type { CallFailure } from '../../lib/ports';
import { grantGraphPermissions } from '../emulator/graph';
import { seedKey } from '../emulator/keyvault';
import { addWorkspace, QUERY_ACTION } from '../emulator/loganalytics';
import { startHarness, type Harness } from '../emulator/testing/harness';
import type { Principal, WorkspaceRecord } from '../emulator/types';

const WS = '7c9e6679-7425-40de-944b-e07fc1f90ae7';
const SECRET = 'attacker-secret-0123456789';
const ATTACKER_IP = '203.0.113.66';

let h: Harness;
let kvguard: Principal;
let credential: ManagedIdentityCredential;
let workspace: WorkspaceRecord;

beforeAll(async () => {
  h = await startHarness();
});
afterAll(async () => h.stop());

function vaultId(name: string): string {
  return `/subscriptions/${h.emulator.subscriptionId}/resourceGroups/rg-app/providers/Microsoft.KeyVault/vaults/${name}`;
}

beforeEach(() => {
  h.emulator.reset();
  // reset() predates these two fields: clear them here.
  h.emulator.core.workspaces = undefined;
  h.emulator.core.graphPermissions = undefined;
  kvguard = h.emulator.addPrincipal({
    kind: 'managedIdentity',
    displayName: 'id-kvguard',
    assignment: 'user',
  });
  credential = new ManagedIdentityCredential({ clientId: kvguard.appId! });
  workspace = addWorkspace(h.emulator.core, { id: WS, name: 'law-security' });
  h.emulator.core.roleAssignments.push({
    id: 'ra-law',
    principalId: kvguard.oid,
    scope: workspace.resourceId,
    actions: [QUERY_ACTION],
  });
  h.emulator.addVault({ name: 'kv-enrich', resourceGroup: 'rg-app', permissionModel: 'rbac' });
  seedKey(h.emulator.core, 'kv-enrich', { name: 'cmk' });
});

function attackerApp(): Principal {
  return h.emulator.addPrincipal({
    kind: 'servicePrincipal',
    displayName: 'sp-attacker',
    secret: SECRET,
    ipAddress: ATTACKER_IP,
    roleAssignments: [{ scope: vaultId('kv-enrich'), roleName: 'Key Vault Crypto Officer' }],
  });
}

/** A user's token, as an interactive sign-in would give it (the emulator's Entra has no user flows). */
function signedInAs(user: Principal): TokenCredential {
  return {
    getToken: async (scopes: string | string[]): Promise<AccessToken> => {
      const scope = Array.isArray(scopes) ? scopes[0]! : scopes;
      const { token, claims } = h.emulator.identity.issueToken(user, scope);
      return { token, expiresOnTimestamp: claims.exp * 1000 };
    },
  };
}

async function deleteKey(as: TokenCredential, vault = 'kv-enrich', key = 'cmk'): Promise<Date> {
  const client = new KeyClient(`https://${vault}.vault.azure.net`, as, {
    retryOptions: { retryDelayInMs: 10, maxRetryDelayInMs: 50 },
  });
  const poller = await client.beginDeleteKey(key, { intervalInMs: 20 });
  const deleted = await poller.pollUntilDone();
  return deleted.properties.deletedOn!;
}

const around = (t: Date, ms = 120_000) => ({
  from: new Date(t.getTime() - ms),
  to: new Date(t.getTime() + ms),
});

function auditQuery(failures: CallFailure[] = []) {
  return new WorkspaceAuditLogQuery({
    credential,
    workspaceId: WS,
    retryBaseDelayMs: 10,
    onFailure: (f) => failures.push(f),
  });
}

function directory(failures: CallFailure[] = []) {
  return new GraphDirectory({ credential, retryBaseDelayMs: 10, onFailure: (f) => failures.push(f) });
}

describe('the caller from the workspace', () => {
  it('finds the application that deleted the key: oid, app id, IP and user agent', async () => {
    const attacker = attackerApp();
    const deletedOn = await deleteKey(
      new ClientSecretCredential(h.emulator.tenantId, attacker.appId!, SECRET),
    );
    const caller = await auditQuery().findKeyDeletion('kv-enrich', 'cmk', around(deletedOn));
    expect(caller).toEqual({
      time: expect.any(Date),
      oid: attacker.oid,
      upn: undefined,
      appId: attacker.appId,
      idtyp: 'app',
      ipAddress: ATTACKER_IP,
      userAgent: expect.stringMatching(/^azsdk-js-keyvault-keys\/\S+ .*core-rest-pipeline\//),
    });
    expect(Math.abs(caller!.time.getTime() - deletedOn.getTime())).toBeLessThan(1000);
    // kvguard asked its own workspace, with its own identity, and nothing else
    const queries = h.emulator.requests.filter((r) => r.host === 'api.loganalytics.io');
    expect(queries.map((r) => [r.method, r.path, r.status])).toEqual([
      ['POST', `/v1/workspaces/${WS}/query`, 200],
    ]);
    expect(queries[0]!.callerOid).toBe(kvguard.oid);
  });

  it('finds a user by upn', async () => {
    const mallory = h.emulator.addPrincipal({
      kind: 'user',
      upn: 'mallory@contoso.example',
      displayName: 'Mallory',
      ipAddress: '198.51.100.23',
      roleAssignments: [{ scope: vaultId('kv-enrich'), roleName: 'Key Vault Crypto Officer' }],
    });
    const deletedOn = await deleteKey(signedInAs(mallory));
    const caller = await auditQuery().findKeyDeletion('KV-Enrich', 'CMK', around(deletedOn));
    expect(caller).toMatchObject({
      oid: mallory.oid,
      upn: 'mallory@contoso.example',
      idtyp: 'user',
      ipAddress: '198.51.100.23',
    });
  });

  it('answers undefined until the record is ingested, then the caller', async () => {
    addWorkspace(h.emulator.core, { id: WS, name: 'law-security', ingestionDelayMs: 400 });
    const attacker = attackerApp();
    const deletedOn = await deleteKey(
      new ClientSecretCredential(h.emulator.tenantId, attacker.appId!, SECRET),
    );
    const failures: CallFailure[] = [];
    const query = auditQuery(failures);
    expect(await query.findKeyDeletion('kv-enrich', 'cmk', around(deletedOn))).toBeUndefined();
    await new Promise((r) => setTimeout(r, 450));
    expect((await query.findKeyDeletion('kv-enrich', 'cmk', around(deletedOn)))?.oid).toBe(attacker.oid);
    expect(failures).toEqual([]);
  });

  it('ignores a refused deletion and a deletion outside the window', async () => {
    const outsider = h.emulator.addPrincipal({
      kind: 'servicePrincipal',
      displayName: 'sp-outsider',
      secret: SECRET,
    });
    await expect(
      deleteKey(new ClientSecretCredential(h.emulator.tenantId, outsider.appId!, SECRET)),
    ).rejects.toMatchObject({
      statusCode: 403,
    });
    const now = new Date();
    expect(await auditQuery().findKeyDeletion('kv-enrich', 'cmk', around(now))).toBeUndefined();
    const attacker = attackerApp();
    const deletedOn = await deleteKey(
      new ClientSecretCredential(h.emulator.tenantId, attacker.appId!, SECRET),
    );
    const before = {
      from: new Date(deletedOn.getTime() - 600_000),
      to: new Date(deletedOn.getTime() - 300_000),
    };
    expect(await auditQuery().findKeyDeletion('kv-enrich', 'cmk', before)).toBeUndefined();
  });

  it('lists every deletion of an alert window with its vault, key and caller', async () => {
    h.emulator.addVault({ name: 'kv-enrich2', resourceGroup: 'rg-app', permissionModel: 'rbac' });
    seedKey(h.emulator.core, 'kv-enrich2', { name: 'cmk2' });
    const attacker = attackerApp();
    h.emulator.core.roleAssignments.push({
      id: 'ra-kv2',
      principalId: attacker.oid,
      scope: vaultId('kv-enrich2'),
      roleName: 'Key Vault Crypto Officer',
    });
    const as = new ClientSecretCredential(h.emulator.tenantId, attacker.appId!, SECRET);
    const first = await deleteKey(as);
    await deleteKey(as, 'kv-enrich2', 'cmk2');
    const found = await auditQuery().listKeyDeletions(around(first));
    expect(found).toEqual([
      {
        vaultName: 'kv-enrich',
        keyName: 'cmk',
        time: expect.any(Date),
        caller: expect.objectContaining({ oid: attacker.oid, appId: attacker.appId, ipAddress: ATTACKER_IP }),
      },
      {
        vaultName: 'kv-enrich2',
        keyName: 'cmk2',
        time: expect.any(Date),
        caller: expect.objectContaining({ oid: attacker.oid }),
      },
    ]);
    expect(found[0]!.caller).not.toHaveProperty('time');
  });

  it('reports the missing permission and answers undefined when the workspace refuses', async () => {
    h.emulator.core.roleAssignments.splice(0, h.emulator.core.roleAssignments.length);
    const failures: CallFailure[] = [];
    expect(
      await auditQuery(failures).findKeyDeletion('kv-enrich', 'cmk', around(new Date())),
    ).toBeUndefined();
    expect(failures).toEqual([
      expect.objectContaining({
        kind: 'forbidden',
        status: 403,
        detail: expect.stringContaining('InsufficientAccessError'),
        missingPermission: expect.stringContaining('Microsoft.OperationalInsights/workspaces/query/read'),
      }),
    ]);
  });

  it('retries a throttled query, and throws when the service stays unavailable', async () => {
    const attacker = attackerApp();
    const deletedOn = await deleteKey(
      new ClientSecretCredential(h.emulator.tenantId, attacker.appId!, SECRET),
    );
    h.emulator.faults.add({ host: 'api.loganalytics.io', kind: 'throttle', retryAfterMs: 20, count: 1 });
    expect((await auditQuery().findKeyDeletion('kv-enrich', 'cmk', around(deletedOn)))?.oid).toBe(
      attacker.oid,
    );
    h.emulator.faults.add({ host: 'api.loganalytics.io', kind: 'error', status: 503 });
    await expect(auditQuery().findKeyDeletion('kv-enrich', 'cmk', around(deletedOn))).rejects.toMatchObject({
      statusCode: 503,
    });
  });
});

describe('the principal from Microsoft Graph', () => {
  it('names the attacker application, a user and a managed identity', async () => {
    grantGraphPermissions(h.emulator.core, kvguard.oid, ['Directory.Read.All']);
    const attacker = attackerApp();
    const mallory = h.emulator.addPrincipal({
      kind: 'user',
      upn: 'mallory@contoso.example',
      displayName: 'Mallory',
    });
    const graph = directory();
    expect(await graph.describe(attacker.oid)).toEqual({
      displayName: 'sp-attacker',
      type: 'servicePrincipal',
    });
    expect(await graph.describe(mallory.oid)).toEqual({ displayName: 'Mallory', type: 'user' });
    expect(await graph.describe(kvguard.oid)).toEqual({ displayName: 'id-kvguard', type: 'managedIdentity' });
    const calls = h.emulator.requests.filter((r) => r.host === 'graph.microsoft.com');
    expect(calls.map((r) => r.path)).toEqual([
      `/v1.0/directoryObjects/${attacker.oid}`,
      `/v1.0/directoryObjects/${mallory.oid}`,
      `/v1.0/directoryObjects/${kvguard.oid}`,
    ]);
    expect(calls.every((r) => r.callerOid === kvguard.oid && r.status === 200)).toBe(true);
  });

  it('falls back to the typed resources with narrower permissions', async () => {
    grantGraphPermissions(h.emulator.core, kvguard.oid, ['User.ReadBasic.All', 'Application.Read.All']);
    const attacker = attackerApp();
    const failures: CallFailure[] = [];
    expect(await directory(failures).describe(attacker.oid)).toEqual({
      displayName: 'sp-attacker',
      type: 'servicePrincipal',
    });
    expect(failures).toEqual([]);
    const calls = h.emulator.requests
      .filter((r) => r.host === 'graph.microsoft.com')
      .map((r) => [r.path, r.status]);
    expect(calls).toEqual([
      [`/v1.0/directoryObjects/${attacker.oid}`, 403],
      [`/v1.0/users/${attacker.oid}`, 404],
      [`/v1.0/servicePrincipals/${attacker.oid}`, 200],
    ]);
  });

  it('reports an object that is neither a user nor a service principal as not found', async () => {
    grantGraphPermissions(h.emulator.core, kvguard.oid, ['User.ReadBasic.All', 'Application.Read.All']);
    const failures: CallFailure[] = [];
    expect(await directory(failures).describe('0badc0de-0000-4000-8000-000000000000')).toBeUndefined();
    expect(failures).toEqual([
      {
        kind: 'failed',
        status: 404,
        detail: 'Request_ResourceNotFound from GET /v1.0/servicePrincipals/{oid}',
      },
    ]);
  });

  it('throws when Graph stays unavailable, so the caller can retry', async () => {
    grantGraphPermissions(h.emulator.core, kvguard.oid, ['Directory.Read.All']);
    h.emulator.faults.add({ host: 'graph.microsoft.com', kind: 'error', status: 503 });
    await expect(directory().describe(kvguard.oid)).rejects.toMatchObject({ statusCode: 503 });
  });

  it('answers undefined without a grant and reports what is missing', async () => {
    const attacker = attackerApp();
    const failures: CallFailure[] = [];
    expect(await directory(failures).describe(attacker.oid)).toBeUndefined();
    expect(failures).toEqual([
      {
        kind: 'forbidden',
        status: 403,
        detail: expect.stringMatching(/^Authorization_RequestDenied from GET \/v1\.0\/\w+\/\{oid\}$/),
        missingPermission: expect.stringContaining('Directory.Read.All'),
      },
    ]);
  });

  it('answers undefined for an unknown object, and sends nothing for an id that is not a GUID', async () => {
    grantGraphPermissions(h.emulator.core, kvguard.oid, ['Directory.Read.All']);
    const failures: CallFailure[] = [];
    const graph = directory(failures);
    expect(await graph.describe('0badc0de-0000-4000-8000-000000000000')).toBeUndefined();
    expect(failures).toEqual([expect.objectContaining({ kind: 'failed', status: 404 })]);
    const before = h.emulator.requests.length;
    expect(await graph.describe('../../users')).toBeUndefined();
    expect(await graph.describe('https://evil.test/x')).toBeUndefined();
    expect(h.emulator.requests.length).toBe(before);
  });
});
