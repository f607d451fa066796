/**
 * The emulated ARM for Microsoft.KeyVault (test/emulator/arm.ts), driven directly with a fake core:
 * authentication and RBAC in ARM's shapes, get/list/paging, PATCH and PUT (purge protection is
 * one-way, recover brings a deleted vault back with its keys), soft delete and deleted vaults, the
 * resource events compared field by field with Microsoft's samples, the vault's AuditEvent records,
 * and every body validated against keyvault-arm/2025-05-01/keyvault.json and its examples.
 */
import { SPECS_DIR } from '../emulator/testing/specs';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { createArmService, seedVault, vaultResourceId, type ArmServiceOptions } from '../emulator/arm';
import { createFakeCore, request, requestFromUrl, type FakeCore } from '../emulator/testing/fake-core';
import { validateAgainstSwagger } from '../emulator/testing/swagger';
import type { EmuResponse, KeyRecord, Principal, ServiceHandler, VaultRecord } from '../emulator/types';

const SPECS = SPECS_DIR;
const ARM_SPEC = join(SPECS, 'keyvault-arm/2025-05-01/keyvault.json');
const COMMON_SPEC = join(SPECS, 'keyvault-arm/2025-05-01/common.json');
const EXAMPLES = join(SPECS, 'keyvault-arm/2025-05-01/examples');
const RESOURCES_SPEC = join(SPECS, 'eventgrid/Microsoft.Resources/stable/2018-01-01/Resources.json');
const SAMPLES = join(SPECS, 'docs-samples/event-grid');
const API = '2026-02-01';
const ARM_AUDIENCE = 'https://management.azure.com';
const PURGE_FALSE_MESSAGE =
  'The property "enablePurgeProtection" cannot be set to false. Enabling the purge protection for a vault is an irreversible action.';

// eslint-disable-next-line @typescript-eslint/no-explicit-any -- JSON bodies, read field by field
type Body = Record<string, any>;

let core: FakeCore;
let arm: ServiceHandler;
let admin: Principal;

function setup(options: { subscriptionId?: string; arm?: ArmServiceOptions } = {}) {
  core = createFakeCore({ subscriptionId: options.subscriptionId });
  arm = createArmService(core, options.arm);
  admin = core.addPrincipal({ kind: 'user', upn: 'alice@contoso.com', ipAddress: '198.51.100.23' });
  core.grant(admin.oid, `/subscriptions/${core.subscriptionId}`, 'Contributor');
  // A group that exists without holding a vault yet (groups with a vault exist anyway).
  core.resourceGroups = new Map([['rg-test', { name: 'rg-test', location: 'westeurope' }]]);
}

function json(path: string): Body {
  return JSON.parse(readFileSync(path, 'utf8'));
}

function vaultPath(name: string, rg = 'rg-test', sub = core.subscriptionId): string {
  return `/subscriptions/${sub}/resourceGroups/${rg}/providers/Microsoft.KeyVault/vaults/${name}`;
}

interface CallOptions {
  as?: Principal | null;
  body?: unknown;
  api?: string | null;
  query?: Record<string, string>;
  headers?: Record<string, string>;
  audience?: string;
}

async function call(method: string, path: string, opts: CallOptions = {}): Promise<EmuResponse> {
  const { as = admin, api = API, audience = ARM_AUDIENCE } = opts;
  const headers: Record<string, string> = {
    'x-ms-client-request-id': 'client-req-1',
    ...(opts.headers ?? {}),
  };
  if (as) headers.authorization ??= core.bearer(as, { audience });
  const query = { ...(api === null ? {} : { 'api-version': api }), ...(opts.query ?? {}) };
  return arm(request({ method, host: 'management.azure.com', path, query, headers, body: opts.body }));
}

async function follow(url: string, as: Principal = admin): Promise<EmuResponse> {
  return arm(
    requestFromUrl(url, { headers: { authorization: core.bearer(as, { audience: ARM_AUDIENCE }) } }),
  );
}

function body(res: EmuResponse): Body {
  return res.body as Body;
}

function expectValid(definition: string, value: unknown, spec = ARM_SPEC) {
  expect(validateAgainstSwagger(spec, definition, value)).toEqual([]);
}

/** Every property we send is one the spec defines (the validator alone allows unknown ones). */
function expectKnownKeys(value: Body, definition: Body) {
  const known = Object.keys(definition.properties ?? {});
  expect(Object.keys(value).filter((k) => !known.includes(k))).toEqual([]);
}

function expectArmError(res: EmuResponse, status: number, code: string) {
  expect(res.status).toBe(status);
  expect(body(res).error.code).toBe(code);
  expect(typeof body(res).error.message).toBe('string');
  expectValid('CloudError', res.body, COMMON_SPEC);
  expect(res.headers?.['x-ms-request-id']).toMatch(/^[0-9a-f-]{36}$/);
  expect(res.headers?.['x-ms-correlation-request-id']).toMatch(/^[0-9a-f-]{36}$/);
}

function addKey(vault: VaultRecord, name: string): KeyRecord {
  const key: KeyRecord = {
    name,
    versions: [
      { version: 'a'.repeat(32), kty: 'RSA', keyOps: ['sign'], enabled: true, created: 1, updated: 1 },
    ],
    tags: {},
    visibleAt: 0,
  };
  vault.keys.set(name, key);
  return key;
}

/** Top-level and nested key sets of an event, claims excepted (their names vary by token). */
function shape(event: Body): Record<string, string[]> {
  const data = event.data as Body;
  return {
    event: Object.keys(event).sort(),
    data: Object.keys(data).sort(),
    authorization: Object.keys(data.authorization).sort(),
    ...(data.httpRequest ? { httpRequest: Object.keys(data.httpRequest).sort() } : {}),
  };
}

beforeEach(() => setup());

describe('authentication and authorization (ARM, not the resource provider)', () => {
  it('answers 401 AuthenticationFailed with a Bearer challenge when the Authorization header is missing', async () => {
    core.addVault({ name: 'kv1' });
    const res = await call('GET', vaultPath('kv1'), { as: null });
    expectArmError(res, 401, 'AuthenticationFailed');
    expect(body(res).error.message).toBe("Authentication failed. The 'Authorization' header is missing.");
    expect(res.headers?.['www-authenticate']).toBe(
      'Bearer authorization_uri="https://login.windows.net/", error="invalid_token", error_description="The authentication failed because of missing \'Authorization\' header."',
    );
    expect(res.callerOid).toBeUndefined();
  });

  it('answers 401 InvalidAuthenticationToken to a token for another audience', async () => {
    core.addVault({ name: 'kv1' });
    const res = await call('GET', vaultPath('kv1'), { audience: 'https://vault.azure.net' });
    expectArmError(res, 401, 'InvalidAuthenticationToken');
    expect(res.headers?.['www-authenticate']).toContain('error="invalid_token"');
  });

  it('accepts the management.core.windows.net audience as ARM does', async () => {
    core.addVault({ name: 'kv1' });
    const res = await call('GET', vaultPath('kv1'), { audience: 'https://management.core.windows.net/' });
    expect(res.status).toBe(200);
  });

  it('answers 403 AuthorizationFailed naming the client, object id, action and scope', async () => {
    const vault = core.addVault({ name: 'kv1' });
    const bob = core.addPrincipal({ kind: 'user', upn: 'bob@contoso.com' });
    const res = await call('PATCH', vaultPath('kv1'), {
      as: bob,
      body: { properties: { enablePurgeProtection: true } },
    });
    expectArmError(res, 403, 'AuthorizationFailed');
    expect(body(res).error.message).toBe(
      `The client 'bob@contoso.com' with object id '${bob.oid}' does not have authorization to perform action 'Microsoft.KeyVault/vaults/write' over scope '${vaultResourceId(vault)}' or the scope is invalid. If access was recently granted, please refresh your credentials.`,
    );
    expect(res.callerOid).toBe(bob.oid);
    expect(vault.enablePurgeProtection).toBe(false);
    expect(core.events).toEqual([]);
    expect(core.audits).toEqual([]);
  });

  it('names a service principal by its application id in AuthorizationFailed', async () => {
    core.addVault({ name: 'kv1' });
    const app = core.addPrincipal({
      kind: 'servicePrincipal',
      appId: '0a0a0a0a-1111-4222-8333-444444444444',
    });
    const res = await call('GET', vaultPath('kv1'), { as: app });
    expect(body(res).error.message).toMatch(
      /^The client '0a0a0a0a-1111-4222-8333-444444444444' with object id/,
    );
  });

  it('lets Key Vault Contributor read, write and delete but not purge', async () => {
    core.addVault({ name: 'kv1' });
    const ops = core.addPrincipal({ kind: 'managedIdentity', displayName: 'id-ops' });
    core.grant(
      ops.oid,
      `/subscriptions/${core.subscriptionId}/resourceGroups/rg-test`,
      'Key Vault Contributor',
    );
    expect((await call('GET', vaultPath('kv1'), { as: ops })).status).toBe(200);
    expect((await call('DELETE', vaultPath('kv1'), { as: ops })).status).toBe(200);
    const purge = await call(
      'POST',
      `/subscriptions/${core.subscriptionId}/providers/Microsoft.KeyVault/locations/westeurope/deletedVaults/kv1/purge`,
      { as: ops },
    );
    expectArmError(purge, 403, 'AuthorizationFailed');
  });

  it('requires api-version but accepts any value of it', async () => {
    core.addVault({ name: 'kv1' });
    expectArmError(await call('GET', vaultPath('kv1'), { api: null }), 400, 'MissingApiVersionParameter');
    for (const api of ['2015-06-01', '2025-05-01', '2026-02-01']) {
      expect((await call('GET', vaultPath('kv1'), { api })).status).toBe(200);
    }
  });

  it('answers 404 SubscriptionNotFound for a subscription it does not know', async () => {
    const res = await call('GET', vaultPath('kv1', 'rg-test', '99999999-9999-4999-8999-999999999999'));
    expectArmError(res, 404, 'SubscriptionNotFound');
  });
});

describe('GET vault', () => {
  it('returns the vault in the shape of the spec and of getVault.json', async () => {
    const vault = core.addVault({ name: 'kv1', tags: { env: 'prod' } });
    const res = await call('GET', vaultPath('kv1'));
    expect(res.status).toBe(200);
    expect(res.callerOid).toBe(admin.oid);
    const b = body(res);
    expectValid('Vault', b);
    const spec = json(ARM_SPEC).definitions;
    expectKnownKeys(b, spec.Vault);
    expectKnownKeys(b.properties, spec.VaultProperties);
    const example = json(join(EXAMPLES, 'getVault.json')).responses['200'].body;
    expect(Object.keys(b).sort()).toEqual(Object.keys(example).sort());
    // Every property of the example but the HSM pool (not a vault's) is there, with the same type.
    for (const [k, v] of Object.entries(example.properties as Body)) {
      if (k === 'hsmPoolResourceId') continue;
      expect([k, typeof b.properties[k]]).toEqual([k, typeof v]);
    }
    expect(b).toMatchObject({
      id: vaultResourceId(vault),
      name: 'kv1',
      type: 'Microsoft.KeyVault/vaults',
      location: 'westeurope',
      tags: { env: 'prod' },
      properties: {
        sku: { family: 'A', name: 'standard' },
        tenantId: core.tenantId,
        vaultUri: 'https://kv1.vault.azure.net/',
        enableSoftDelete: true,
        softDeleteRetentionInDays: 90,
        enableRbacAuthorization: true,
        provisioningState: 'Succeeded',
        publicNetworkAccess: 'Enabled',
      },
    });
    expect(b.properties).not.toHaveProperty('enablePurgeProtection');
  });

  it('sends the ARM headers, counting reads down', async () => {
    core.addVault({ name: 'kv1' });
    const first = await call('GET', vaultPath('kv1'), {
      headers: { 'x-ms-correlation-request-id': 'corr-42' },
    });
    const second = await call('GET', vaultPath('kv1'));
    expect(first.headers?.['x-ms-correlation-request-id']).toBe('corr-42');
    expect(first.headers?.['x-ms-request-id']).toMatch(/^[0-9a-f-]{36}$/);
    const a = Number(first.headers?.['x-ms-ratelimit-remaining-subscription-reads']);
    const b = Number(second.headers?.['x-ms-ratelimit-remaining-subscription-reads']);
    expect(b).toBe(a - 1);
  });

  it('writes a VaultGet AuditEvent record in the shape Key Vault logs ARM-forwarded calls', async () => {
    core.addVault({ name: 'kv1' });
    await call('GET', vaultPath('kv1'));
    expect(core.audits).toHaveLength(1);
    const sample = json(join(SPECS, 'docs-samples/key-vault/auditevent-record.json')).records[0];
    const record = core.audits[0]!;
    for (const k of Object.keys(sample)) expect(record).toHaveProperty(k);
    expect(record).toMatchObject({
      resourceId: vaultPath('kv1').toUpperCase(),
      operationName: 'VaultGet',
      operationVersion: API,
      category: 'AuditEvent',
      resultType: 'Success',
      resultSignature: 'OK',
      callerIpAddress: '198.51.100.23',
      identity: { claim: { oid: admin.oid, upn: 'alice@contoso.com' } },
      properties: {
        clientInfo: 'azure-resource-manager/2.0',
        id: 'https://kv1.vault.azure.net/',
        httpStatusCode: 200,
      },
    });
  });

  it('answers ResourceNotFound and ResourceGroupNotFound as ARM words them', async () => {
    core.addVault({ name: 'kv1' });
    const missing = await call('GET', vaultPath('kv2'));
    expectArmError(missing, 404, 'ResourceNotFound');
    expect(body(missing).error.message).toBe(
      "The Resource 'Microsoft.KeyVault/vaults/kv2' under resource group 'rg-test' was not found. For more details please go to https://aka.ms/ARMResourceNotFoundFix",
    );
    const noGroup = await call('GET', vaultPath('kv1', 'rg-nope'));
    expectArmError(noGroup, 404, 'ResourceGroupNotFound');
    expect(body(noGroup).error.message).toBe("Resource group 'rg-nope' could not be found.");
  });

  it('finds the vault whatever the case of the path', async () => {
    core.addVault({ name: 'kv1' });
    const res = await call(
      'GET',
      `/SUBSCRIPTIONS/${core.subscriptionId}/resourcegroups/RG-TEST/providers/microsoft.keyvault/VAULTS/KV1`,
    );
    expect(res.status).toBe(200);
    expect(body(res).name).toBe('kv1');
  });
});

describe('listing vaults', () => {
  it('pages the subscription list with $top and nextLink, deleted vaults left out', async () => {
    for (const n of ['kv-e', 'kv-a', 'kv-d', 'kv-b', 'kv-c']) core.addVault({ name: n });
    core.addVault({ name: 'kv-gone', deleted: { deletionDate: 'x', scheduledPurgeDate: 'y' } });
    const names: string[] = [];
    let res = await call('GET', `/subscriptions/${core.subscriptionId}/providers/Microsoft.KeyVault/vaults`, {
      query: { $top: '2' },
    });
    const links: string[] = [];
    for (;;) {
      expect(res.status).toBe(200);
      expectValid('VaultListResult', res.body);
      names.push(...(body(res).value as Body[]).map((v) => v.name as string));
      const next = body(res).nextLink as string | undefined;
      if (!next) break;
      links.push(next);
      res = await follow(next);
    }
    expect(names).toEqual(['kv-a', 'kv-b', 'kv-c', 'kv-d', 'kv-e']);
    expect(links).toHaveLength(2);
    // ARM's nextLink: absolute, api-version kept, $top and $skiptoken percent-encoded.
    expect(links[0]).toMatch(
      new RegExp(
        `^https://management\\.azure\\.com/subscriptions/${core.subscriptionId}/providers/Microsoft\\.KeyVault/vaults\\?api-version=${API}&%24top=2&%24skiptoken=`,
      ),
    );
  });

  it('uses the configured page size without $top', async () => {
    setup({ arm: { pageSize: 2 } });
    for (const n of ['kv1', 'kv2', 'kv3']) core.addVault({ name: n });
    const res = await call(
      'GET',
      `/subscriptions/${core.subscriptionId}/providers/Microsoft.KeyVault/vaults`,
    );
    expect(body(res).value).toHaveLength(2);
    expect(body(res).nextLink).toContain('%24skiptoken=');
    expect(body(res).nextLink).not.toContain('%24top');
  });

  it('lists a resource group only', async () => {
    core.addVault({ name: 'kv1' });
    core.addVault({ name: 'kv2', resourceGroup: 'rg-other' });
    const res = await call(
      'GET',
      `/subscriptions/${core.subscriptionId}/resourceGroups/rg-other/providers/Microsoft.KeyVault/vaults`,
    );
    expect(res.status).toBe(200);
    expect((body(res).value as Body[]).map((v) => v.name)).toEqual(['kv2']);
    expect(body(res)).not.toHaveProperty('nextLink');
  });

  it('shows a caller with read on one vault that vault only, and refuses a caller with none', async () => {
    core.addVault({ name: 'kv1' });
    const kv2 = core.addVault({ name: 'kv2' });
    const reader = core.addPrincipal({ kind: 'servicePrincipal' });
    core.grant(reader.oid, vaultResourceId(kv2), 'Reader');
    const path = `/subscriptions/${core.subscriptionId}/providers/Microsoft.KeyVault/vaults`;
    const res = await call('GET', path, { as: reader });
    expect((body(res).value as Body[]).map((v) => v.name)).toEqual(['kv2']);
    const stranger = core.addPrincipal({ kind: 'servicePrincipal' });
    expectArmError(await call('GET', path, { as: stranger }), 403, 'AuthorizationFailed');
  });

  it('matches the shape of listVaultBySubscription.json', async () => {
    core.addVault({ name: 'kv1' });
    core.addVault({ name: 'kv2' });
    const res = await call(
      'GET',
      `/subscriptions/${core.subscriptionId}/providers/Microsoft.KeyVault/vaults`,
      {
        query: { $top: '1' },
      },
    );
    const example = json(join(EXAMPLES, 'listVaultBySubscription.json')).responses['200'].body;
    expect(Object.keys(body(res)).sort()).toEqual(Object.keys(example).sort());
    expect(Object.keys(body(res).value[0]).sort()).toEqual(Object.keys(example.value[0]).sort());
  });
});

describe('PATCH vault', () => {
  it('turns purge protection on, publishes ResourceWriteSuccess and logs VaultPatch', async () => {
    const vault = core.addVault({ name: 'kv1' });
    const res = await call('PATCH', vaultPath('kv1'), {
      body: { properties: { enablePurgeProtection: true } },
    });
    expect(res.status).toBe(200);
    expectValid('Vault', res.body);
    expect(body(res).properties.enablePurgeProtection).toBe(true);
    expect(vault.enablePurgeProtection).toBe(true);
    expect(res.headers?.['x-ms-ratelimit-remaining-subscription-writes']).toMatch(/^\d+$/);
    expect(core.events).toHaveLength(1);
    const event = core.events[0] as Body;
    expect(event).toMatchObject({
      eventType: 'Microsoft.Resources.ResourceWriteSuccess',
      subject: vaultResourceId(vault),
      topic: `/subscriptions/${core.subscriptionId}`,
      dataVersion: '2',
      metadataVersion: '1',
      data: {
        operationName: 'Microsoft.KeyVault/vaults/write',
        status: 'Succeeded',
        resourceProvider: 'Microsoft.KeyVault',
        resourceUri: vaultResourceId(vault),
        subscriptionId: core.subscriptionId,
        tenantId: core.tenantId,
        correlationId: res.headers?.['x-ms-correlation-request-id'],
        httpRequest: {
          clientRequestId: 'client-req-1',
          clientIpAddress: '198.51.100.23',
          method: 'PATCH',
          url: `https://management.azure.com${vaultPath('kv1')}?api-version=${API}`,
        },
      },
    });
    expect(core.audits.map((a) => [a.operationName, (a.properties as Body).httpStatusCode])).toEqual([
      ['VaultPatch', 200],
    ]);
  });

  it('refuses enablePurgeProtection false with the service message, before and after it is on', async () => {
    const vault = core.addVault({ name: 'kv1' });
    const refused = await call('PATCH', vaultPath('kv1'), {
      body: { properties: { enablePurgeProtection: false } },
    });
    expectArmError(refused, 400, 'BadRequest');
    expect(body(refused).error.message).toBe(PURGE_FALSE_MESSAGE);
    await call('PATCH', vaultPath('kv1'), { body: { properties: { enablePurgeProtection: true } } });
    const again = await call('PATCH', vaultPath('kv1'), {
      body: { properties: { enablePurgeProtection: false, publicNetworkAccess: 'Disabled' } },
    });
    expectArmError(again, 400, 'BadRequest');
    // A refused PATCH changes nothing, not even the other properties it carried.
    expect(vault.enablePurgeProtection).toBe(true);
    expect(vault.publicNetworkAccess).toBe('Enabled');
    expect(core.events).toHaveLength(1);
    expect(core.audits.map((a) => [a.operationName, (a.properties as Body).httpStatusCode])).toEqual([
      ['VaultPatch', 400],
      ['VaultPatch', 200],
      ['VaultPatch', 400],
    ]);
  });

  it('allows lowering retention, closing public access and switching the permission model', async () => {
    core.addVault({ name: 'kv1' });
    const res = await call('PATCH', vaultPath('kv1'), {
      body: {
        tags: { owner: 'mallory' },
        properties: {
          softDeleteRetentionInDays: 7,
          publicNetworkAccess: 'disabled',
          enableRbacAuthorization: false,
        },
      },
    });
    expect(res.status).toBe(200);
    const read = body(await call('GET', vaultPath('kv1')));
    expect(read.tags).toEqual({ owner: 'mallory' });
    expect(read.properties).toMatchObject({
      softDeleteRetentionInDays: 7,
      publicNetworkAccess: 'Disabled',
      enableRbacAuthorization: false,
    });
  });

  it.each([
    [{ properties: { softDeleteRetentionInDays: 3 } }, 'BadRequest'],
    [{ properties: { softDeleteRetentionInDays: '30' } }, 'InvalidRequestContent'],
    [{ properties: { enablePurgeProtection: 'yes' } }, 'InvalidRequestContent'],
    [{ properties: { enableSoftDelete: false } }, 'BadRequest'],
    [{ properties: { publicNetworkAccess: 'Sometimes' } }, 'BadRequest'],
    [{ tags: { a: 1 } }, 'InvalidRequestContent'],
    ['not json', 'InvalidRequestContent'],
  ])('refuses the body %j with 400 %s', async (patch, code) => {
    core.addVault({ name: 'kv1' });
    expectArmError(await call('PATCH', vaultPath('kv1'), { body: patch }), 400, code);
    expect(core.events).toEqual([]);
  });

  it('answers 404 ResourceNotFound for a deleted vault', async () => {
    core.addVault({ name: 'kv1', deleted: { deletionDate: 'x', scheduledPurgeDate: 'y' } });
    expectArmError(
      await call('PATCH', vaultPath('kv1'), { body: { properties: { enablePurgeProtection: true } } }),
      404,
      'ResourceNotFound',
    );
  });

  it('answers the updateVault.json request with the shape of its response', async () => {
    setup({ subscriptionId: '00000000-0000-0000-0000-000000000000' });
    const example = json(join(EXAMPLES, 'updateVault.json'));
    core.addVault({ name: 'sample-vault', resourceGroup: 'sample-resource-group', location: 'westus' });
    const res = await call('PATCH', vaultPath('sample-vault', 'sample-resource-group'), {
      body: example.parameters.parameters,
    });
    expect(res.status).toBe(200);
    const expected = example.responses['200'].body;
    expectValid('Vault', res.body);
    expect(Object.keys(body(res)).sort()).toEqual(Object.keys(expected).sort());
    expect(body(res).properties.accessPolicies).toEqual(expected.properties.accessPolicies);
    expect(body(res).properties).toMatchObject({
      sku: expected.properties.sku,
      enabledForDeployment: true,
      enabledForDiskEncryption: true,
      enabledForTemplateDeployment: true,
      publicNetworkAccess: 'Enabled',
    });
  });
});

describe('PUT vault', () => {
  const createBody = (extra: Body = {}) => ({
    location: 'West Europe',
    tags: { team: 'sec' },
    properties: {
      tenantId: core.tenantId,
      sku: { family: 'A', name: 'premium' },
      accessPolicies: [],
      enableRbacAuthorization: true,
      ...extra,
    },
  });

  it('creates a vault and publishes ResourceWriteSuccess without httpRequest (a create)', async () => {
    core.addVault({ name: 'kv-existing' });
    const res = await call('PUT', vaultPath('kv-new'), { body: createBody({ enablePurgeProtection: true }) });
    expect(res.status).toBe(200);
    expectValid('Vault', res.body);
    expect(body(res)).toMatchObject({
      name: 'kv-new',
      location: 'westeurope',
      tags: { team: 'sec' },
      properties: { sku: { name: 'premium' }, enablePurgeProtection: true, provisioningState: 'Succeeded' },
    });
    expect(body(res).systemData).toMatchObject({ createdBy: 'alice@contoso.com', createdByType: 'User' });
    expect(core.vaults.get('kv-new')?.enablePurgeProtection).toBe(true);
    const event = core.events[0] as Body;
    expect(event.eventType).toBe('Microsoft.Resources.ResourceWriteSuccess');
    expect(event.data).not.toHaveProperty('httpRequest');
    expect(core.audits.map((a) => a.operationName)).toEqual(['VaultPut']);
  });

  it('updates an existing vault and then reports the request (an update of an existing resource)', async () => {
    const vault = core.addVault({ name: 'kv1', enablePurgeProtection: true });
    const res = await call('PUT', vaultPath('kv1'), { body: createBody() });
    expect(res.status).toBe(200);
    // PUT replaces the definition but never turns protection off.
    expect(vault.enablePurgeProtection).toBe(true);
    expect(vault.sku).toBe('premium');
    expect((core.events[0] as Body).data.httpRequest.method).toBe('PUT');
  });

  it('refuses enablePurgeProtection false even at creation', async () => {
    const res = await call('PUT', vaultPath('kv-new'), {
      body: createBody({ enablePurgeProtection: false }),
    });
    expectArmError(res, 400, 'BadRequest');
    expect(body(res).error.message).toBe(PURGE_FALSE_MESSAGE);
    expect(core.vaults.has('kv-new')).toBe(false);
  });

  it.each([undefined, 'default'])(
    'refuses createMode %s while a deleted vault holds the name (409 ConflictError)',
    async (createMode) => {
      core.addVault({ name: 'kv1', deleted: { deletionDate: 'x', scheduledPurgeDate: 'y' } });
      const res = await call('PUT', vaultPath('kv1'), { body: createBody(createMode ? { createMode } : {}) });
      expectArmError(res, 409, 'ConflictError');
      expect(body(res).error.message).toMatch(
        /^A vault with the same name already exists in deleted state\./,
      );
    },
  );

  it('refuses a name another group holds, an invalid name, and a missing location', async () => {
    core.addVault({ name: 'kv1', resourceGroup: 'rg-other' });
    core.addVault({ name: 'kv2' });
    expectArmError(await call('PUT', vaultPath('kv1'), { body: createBody() }), 409, 'VaultAlreadyExists');
    expectArmError(
      await call('PUT', vaultPath('1-bad--name'), { body: createBody() }),
      400,
      'VaultNameNotValid',
    );
    const { location: _location, ...noLocation } = createBody();
    expectArmError(await call('PUT', vaultPath('kv3'), { body: noLocation }), 400, 'LocationRequired');
  });

  it('recovers a deleted vault with its keys, as it was (createMode recover)', async () => {
    const vault = core.addVault({ name: 'kv1', softDeleteRetentionInDays: 30, tags: { keep: 'me' } });
    addKey(vault, 'signing');
    expect((await call('DELETE', vaultPath('kv1'))).status).toBe(200);
    // The exact request @azure/arm-keyvault sends for a recovery (azure-facts §2.6).
    const res = await call('PUT', vaultPath('kv1'), {
      body: {
        location: 'westeurope',
        properties: {
          tenantId: core.tenantId,
          sku: { family: 'A', name: 'standard' },
          createMode: 'recover',
        },
      },
    });
    expect(res.status).toBe(200);
    expectValid('Vault', res.body);
    expect(body(res).properties.provisioningState).toBe('Succeeded');
    expect(vault.deleted).toBeUndefined();
    expect([...vault.keys.keys()]).toEqual(['signing']);
    expect(body(res).tags).toEqual({ keep: 'me' });
    expect(body(res).properties.softDeleteRetentionInDays).toBe(30);
    expect((await call('GET', vaultPath('kv1'))).status).toBe(200);
    expect(core.events.map((e) => (e as Body).eventType)).toEqual([
      'Microsoft.Resources.ResourceDeleteSuccess',
      'Microsoft.Resources.ResourceWriteSuccess',
    ]);
    expect(core.audits.map((a) => a.operationName)).toEqual(['VaultDelete', 'VaultRecover', 'VaultGet']);
  });

  it('refuses to recover what is not deleted', async () => {
    const res = await call('PUT', vaultPath('kv1'), { body: createBody({ createMode: 'recover' }) });
    expectArmError(res, 404, 'SoftDeletedVaultDoesNotExist');
  });

  it('answers the createVault.json request with the shape of its response', async () => {
    setup({ subscriptionId: '00000000-0000-0000-0000-000000000000' });
    core.resourceGroups = new Map([
      ['sample-resource-group', { name: 'sample-resource-group', location: 'westus' }],
    ]);
    const example = json(join(EXAMPLES, 'createVault.json'));
    const res = await call('PUT', vaultPath('sample-vault', 'sample-resource-group'), {
      body: example.parameters.parameters,
    });
    expect(res.status).toBe(200);
    expectValid('Vault', res.body);
    const expected = example.responses['200'].body;
    expect(Object.keys(body(res)).sort()).toEqual(Object.keys(expected).sort());
    expect(body(res)).toMatchObject({
      id: expected.id,
      name: expected.name,
      type: expected.type,
      location: expected.location,
      tags: expected.tags,
      properties: {
        sku: expected.properties.sku,
        tenantId: expected.properties.tenantId,
        accessPolicies: expected.properties.accessPolicies,
        enabledForDeployment: true,
        provisioningState: 'Succeeded',
        publicNetworkAccess: 'Enabled',
      },
    });
  });

  it('answers 404 ResourceGroupNotFound for a group that does not exist', async () => {
    expectArmError(
      await call('PUT', vaultPath('kv1', 'rg-none'), { body: createBody() }),
      404,
      'ResourceGroupNotFound',
    );
  });
});

describe('DELETE vault and deleted vaults', () => {
  it('soft-deletes the vault: 200, a deletedVaults resource, ResourceDeleteSuccess and VaultDelete', async () => {
    const vault = core.addVault({ name: 'kv1', softDeleteRetentionInDays: 7, enablePurgeProtection: true });
    const res = await call('DELETE', vaultPath('kv1'));
    expect(res.status).toBe(200);
    expect(res.body).toBeUndefined();
    expect(res.headers?.['x-ms-ratelimit-remaining-subscription-deletes']).toMatch(/^\d+$/);
    expect(vault.deleted).toEqual({
      deletionDate: new Date(core.now()).toISOString(),
      scheduledPurgeDate: new Date(core.now() + 7 * 86_400_000).toISOString(),
    });
    expectArmError(await call('GET', vaultPath('kv1')), 404, 'ResourceNotFound');

    const deletedPath = `/subscriptions/${core.subscriptionId}/providers/Microsoft.KeyVault/locations/westeurope/deletedVaults/kv1`;
    const got = await call('GET', deletedPath);
    expect(got.status).toBe(200);
    expectValid('DeletedVault', got.body);
    const example = json(join(EXAMPLES, 'getDeletedVault.json')).responses['200'].body;
    expect(Object.keys(body(got)).sort()).toEqual(Object.keys(example).sort());
    expect(Object.keys(body(got).properties).sort()).toEqual(Object.keys(example.properties).sort());
    expect(body(got)).toEqual({
      id: deletedPath,
      name: 'kv1',
      type: 'Microsoft.KeyVault/deletedVaults',
      properties: {
        vaultId: vaultResourceId(vault),
        location: 'westeurope',
        tags: {},
        deletionDate: vault.deleted?.deletionDate,
        scheduledPurgeDate: vault.deleted?.scheduledPurgeDate,
        purgeProtectionEnabled: true,
      },
    });

    const list = await call(
      'GET',
      `/subscriptions/${core.subscriptionId}/providers/Microsoft.KeyVault/deletedVaults`,
    );
    expectValid('DeletedVaultListResult', list.body);
    expect((body(list).value as Body[]).map((v) => v.name)).toEqual(['kv1']);
    const listExample = json(join(EXAMPLES, 'listDeletedVaults.json')).responses['200'].body;
    expect(Object.keys(body(list).value[0]).sort()).toEqual(Object.keys(listExample.value[0]).sort());

    const event = core.events[0] as Body;
    expect(event).toMatchObject({
      eventType: 'Microsoft.Resources.ResourceDeleteSuccess',
      data: {
        operationName: 'Microsoft.KeyVault/vaults/delete',
        authorization: { action: 'Microsoft.KeyVault/vaults/delete', scope: vaultResourceId(vault) },
        httpRequest: { method: 'DELETE' },
      },
    });
    expect(core.audits.map((a) => a.operationName)).toEqual(['VaultDelete']);
  });

  it('answers 204 and publishes nothing for a vault that is not there', async () => {
    core.addVault({ name: 'kv1' });
    const res = await call('DELETE', vaultPath('kv2'));
    expect(res.status).toBe(204);
    expect(core.events).toEqual([]);
  });

  it('answers 404 for a deleted vault asked in another location or never deleted', async () => {
    core.addVault({ name: 'kv1', deleted: { deletionDate: 'x', scheduledPurgeDate: 'y' } });
    core.addVault({ name: 'kv2' });
    const base = `/subscriptions/${core.subscriptionId}/providers/Microsoft.KeyVault/locations`;
    expectArmError(await call('GET', `${base}/eastus/deletedVaults/kv1`), 404, 'ResourceNotFound');
    expectArmError(await call('GET', `${base}/westeurope/deletedVaults/kv2`), 404, 'ResourceNotFound');
    expect((await call('GET', `${base}/West%20Europe/deletedVaults/kv1`)).status).toBe(200);
  });

  it('needs deletedVaults/read to list and locations/deletedVaults/read to get', async () => {
    core.addVault({ name: 'kv1', deleted: { deletionDate: 'x', scheduledPurgeDate: 'y' } });
    const lister = core.addPrincipal({ kind: 'servicePrincipal' });
    core.grant(lister.oid, `/subscriptions/${core.subscriptionId}`, {
      actions: ['Microsoft.KeyVault/deletedVaults/read'],
    });
    const listPath = `/subscriptions/${core.subscriptionId}/providers/Microsoft.KeyVault/deletedVaults`;
    expect((await call('GET', listPath, { as: lister })).status).toBe(200);
    const get = await call(
      'GET',
      `/subscriptions/${core.subscriptionId}/providers/Microsoft.KeyVault/locations/westeurope/deletedVaults/kv1`,
      { as: lister },
    );
    expectArmError(get, 403, 'AuthorizationFailed');
    expect(body(get).error.message).toContain("'Microsoft.KeyVault/locations/deletedVaults/read'");
  });

  it('purges an unprotected deleted vault and refuses a protected one', async () => {
    core.addVault({ name: 'kv1', deleted: { deletionDate: 'x', scheduledPurgeDate: 'y' } });
    core.addVault({
      name: 'kv2',
      enablePurgeProtection: true,
      deleted: { deletionDate: 'x', scheduledPurgeDate: 'y' },
    });
    const base = `/subscriptions/${core.subscriptionId}/providers/Microsoft.KeyVault/locations/westeurope/deletedVaults`;
    const refused = await call('POST', `${base}/kv2/purge`);
    expectArmError(refused, 405, 'MethodNotAllowed');
    expect(body(refused).error.message).toBe("Operation 'DeletedVaultPurge' is not allowed.");
    expect(core.vaults.has('kv2')).toBe(true);
    const purged = await call('POST', `${base}/kv1/purge`);
    expect(purged.status).toBe(200);
    expect(purged.headers).not.toHaveProperty('location');
    expect(core.vaults.has('kv1')).toBe(false);
    expect((core.events[0] as Body).eventType).toBe('Microsoft.Resources.ResourceActionSuccess');
    expect(core.audits.map((a) => [a.operationName, (a.properties as Body).httpStatusCode])).toEqual([
      ['VaultPurge', 405],
      ['VaultPurge', 200],
    ]);
  });
});

describe('the resource events against Microsoft’s samples', () => {
  async function eventsOfDeleteAndWrite() {
    core.addVault({ name: 'kv1' });
    await call('PATCH', vaultPath('kv1'), { body: { properties: { enablePurgeProtection: true } } });
    await call('PUT', vaultPath('kv2'), {
      body: {
        location: 'westeurope',
        properties: { tenantId: core.tenantId, sku: { family: 'A', name: 'standard' } },
      },
    });
    await call('DELETE', vaultPath('kv1'));
    const [patch, create, del] = core.events as Body[];
    return { patch: patch!, create: create!, del: del! };
  }

  it('carries exactly the fields of resources-ResourceWriteSuccess.json for a create', async () => {
    const { create } = await eventsOfDeleteAndWrite();
    const sample = json(join(SAMPLES, 'resources-ResourceWriteSuccess.json'))[0];
    expect(shape(create)).toEqual(shape(sample));
    expectValid('ResourceWriteSuccessData', create.data, RESOURCES_SPEC);
  });

  it('carries exactly the fields of resources-ResourceDeleteSuccess.json for a delete', async () => {
    const { del } = await eventsOfDeleteAndWrite();
    const sample = json(join(SAMPLES, 'resources-ResourceDeleteSuccess.json'))[0];
    expect(shape(del)).toEqual(shape(sample));
    expectValid('ResourceDeleteSuccessData', del.data, RESOURCES_SPEC);
    // The spec-repo example is the same event as the docs sample.
    const specExample = json(
      join(
        SPECS,
        'eventgrid/Microsoft.Resources/stable/2018-01-01/examples/event-grid-schema/resource_delete_success.json',
      ),
    );
    expect(shape(del)).toEqual(shape(specExample));
  });

  it('adds httpRequest to an update, as to a delete', async () => {
    const { patch } = await eventsOfDeleteAndWrite();
    const deleteSample = json(join(SAMPLES, 'resources-ResourceDeleteSuccess.json'))[0];
    expect(shape(patch)).toEqual({ ...shape(deleteSample) });
    expectValid('ResourceWriteSuccessData', patch.data, RESOURCES_SPEC);
  });

  it('flattens the caller’s claims with the sample’s URI and short names, never the token', async () => {
    const { patch } = await eventsOfDeleteAndWrite();
    const sampleClaims = Object.keys(
      json(join(SAMPLES, 'resources-ResourceWriteSuccess.json'))[0].data.claims,
    );
    const claims = patch.data.claims as Record<string, unknown>;
    for (const v of Object.values(claims)) expect(typeof v).toBe('string');
    // idtyp is newer than the 2018 sample; every other name is one the sample uses.
    expect(Object.keys(claims).filter((k) => !sampleClaims.includes(k))).toEqual(['idtyp']);
    expect(claims).toMatchObject({
      aud: ARM_AUDIENCE,
      iss: `https://sts.windows.net/${core.tenantId}/`,
      ver: '1.0',
      ipaddr: '198.51.100.23',
      'http://schemas.microsoft.com/identity/claims/objectidentifier': admin.oid,
      'http://schemas.microsoft.com/identity/claims/tenantid': core.tenantId,
      'http://schemas.xmlsoap.org/ws/2005/05/identity/claims/upn': 'alice@contoso.com',
      'http://schemas.xmlsoap.org/ws/2005/05/identity/claims/name': 'alice@contoso.com',
    });
    expect(JSON.stringify(patch)).not.toMatch(/eyJ[\w-]+\.[\w-]+\.[\w-]+/);
  });

  it('gives the role assignment that allowed the call as evidence, in the action sample’s fields', async () => {
    const { patch } = await eventsOfDeleteAndWrite();
    const sampleEvidence = json(join(SAMPLES, 'resources-ResourceActionSuccess.json'))[0].data.authorization
      .evidence;
    const evidence = patch.data.authorization.evidence as Body;
    expect(Object.keys(evidence).sort()).toEqual(Object.keys(sampleEvidence).sort());
    expect(evidence).toMatchObject({
      role: 'Contributor',
      roleAssignmentScope: `/subscriptions/${core.subscriptionId}`,
      roleDefinitionId: 'b24988ac618042a0ab8820f7382dd24c',
      principalId: admin.oid.replace(/-/g, ''),
      principalType: 'User',
    });
  });

  it('stamps the event time with .NET’s seven fractional digits, like the samples', async () => {
    const { patch } = await eventsOfDeleteAndWrite();
    expect(patch.eventTime).toMatch(/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{7}Z$/);
    expect(Date.parse(patch.eventTime as string)).toBe(core.now());
  });
});

describe('PUT accessPolicies/{add|replace|remove} (Vaults_UpdateAccessPolicy)', () => {
  const ALICE_TENANT = () => core.tenantId;
  const entry = (objectId: string, keys: string[]) => ({
    tenantId: ALICE_TENANT(),
    objectId,
    permissions: { keys },
  });
  const OTHER = '0b1c2d3e-4f5a-4b6c-8d7e-9f0a1b2c3d4e';

  it('adds an entry, answers 200 with the VaultAccessPolicyParameters, and publishes accessPolicies/write with the caller', async () => {
    const vault = core.addVault({ name: 'kv1' });
    const res = await call('PUT', `${vaultPath('kv1')}/accessPolicies/add`, {
      body: { properties: { accessPolicies: [entry(OTHER, ['get', 'purge'])] } },
    });
    expect(res.status).toBe(200);
    expectValid('VaultAccessPolicyParameters', res.body);
    expect(body(res)).toMatchObject({
      id: `${vaultPath('kv1')}/accessPolicies/`,
      type: 'Microsoft.KeyVault/vaults/accessPolicies',
      properties: { accessPolicies: [entry(OTHER, ['get', 'purge'])] },
    });
    expect(vault.accessPolicies).toEqual([entry(OTHER, ['get', 'purge'])]);
    expect(core.events).toHaveLength(1);
    expect(core.events[0]).toMatchObject({
      eventType: 'Microsoft.Resources.ResourceWriteSuccess',
      subject: `${vaultResourceId(vault)}/accessPolicies/add`,
      data: {
        operationName: 'Microsoft.KeyVault/vaults/accessPolicies/write',
        authorization: { action: 'Microsoft.KeyVault/vaults/accessPolicies/write' },
        claims: { 'http://schemas.microsoft.com/identity/claims/objectidentifier': admin.oid },
        httpRequest: { clientIpAddress: '198.51.100.23', method: 'PUT' },
      },
    });
    // No system topic for the vault: Key Vault publishes nothing.
    expect(core.resourceEvents).toEqual([]);
  });

  it('merges on add, sets on replace, takes away on remove', async () => {
    const vault = core.addVault({ name: 'kv1' });
    const put = (kind: string, keys: string[]) =>
      call('PUT', `${vaultPath('kv1')}/accessPolicies/${kind}`, {
        body: { properties: { accessPolicies: [entry(OTHER, keys)] } },
      });
    await put('add', ['get']);
    await put('add', ['list', 'get']);
    expect(vault.accessPolicies).toEqual([entry(OTHER, ['get', 'list'])]);
    await put('replace', ['purge']);
    expect(vault.accessPolicies).toEqual([entry(OTHER, ['purge'])]);
    await put('remove', ['purge']);
    expect(vault.accessPolicies).toEqual([]);
  });

  it("publishes Key Vault's VaultAccessPolicyChanged to the vault's system topic when there is one, also for a PATCH or PUT that changes the policies", async () => {
    const vault = core.addVault({ name: 'kv1' });
    core.systemTopicSources.add(vaultResourceId(vault).toLowerCase());
    await call('PUT', `${vaultPath('kv1')}/accessPolicies/add`, {
      body: { properties: { accessPolicies: [entry(OTHER, ['get'])] } },
    });
    expect(core.resourceEvents).toEqual([
      {
        source: vaultResourceId(vault),
        event: {
          subject: 'kv1',
          eventType: 'Microsoft.KeyVault.VaultAccessPolicyChanged',
          data: {
            Id: 'https://kv1.vault.azure.net',
            VaultName: 'kv1',
            ObjectType: 'Vault',
            ObjectName: 'kv1',
            Version: null,
            NBF: null,
            EXP: null,
          },
          dataVersion: '1',
        },
      },
    ]);
    // A PATCH that leaves the policies as they are raises nothing; one that changes them does.
    await call('PATCH', vaultPath('kv1'), { body: { tags: { a: 'b' } } });
    expect(core.resourceEvents).toHaveLength(1);
    await call('PATCH', vaultPath('kv1'), { body: { properties: { accessPolicies: [] } } });
    expect(core.resourceEvents).toHaveLength(2);
    const current = body(await call('GET', vaultPath('kv1')));
    await call('PUT', vaultPath('kv1'), {
      body: {
        location: current.location,
        properties: { ...current.properties, accessPolicies: [entry(OTHER, ['all'])] },
      },
    });
    expect(core.resourceEvents).toHaveLength(3);
    expect(core.events.map((e) => (e.data as Body).operationName)).toEqual([
      'Microsoft.KeyVault/vaults/accessPolicies/write',
      'Microsoft.KeyVault/vaults/write',
      'Microsoft.KeyVault/vaults/write',
      'Microsoft.KeyVault/vaults/write',
    ]);
  });

  it('needs accessPolicies/write, refuses an unknown kind, a missing body and another method', async () => {
    core.addVault({ name: 'kv1' });
    const reader = core.addPrincipal({ kind: 'user', upn: 'rita@contoso.com' });
    core.grant(reader.oid, `/subscriptions/${core.subscriptionId}`, 'Reader');
    const body1 = { properties: { accessPolicies: [entry(OTHER, ['get'])] } };
    expectArmError(
      await call('PUT', `${vaultPath('kv1')}/accessPolicies/add`, { as: reader, body: body1 }),
      403,
      'AuthorizationFailed',
    );
    expectArmError(
      await call('PUT', `${vaultPath('kv1')}/accessPolicies/merge`, { body: body1 }),
      400,
      'BadRequest',
    );
    expectArmError(
      await call('PUT', `${vaultPath('kv1')}/accessPolicies/add`, { body: {} }),
      400,
      'InvalidRequestContent',
    );
    expectArmError(await call('GET', `${vaultPath('kv1')}/accessPolicies/add`), 405, 'MethodNotAllowed');
    expect(core.events).toEqual([]);
  });
});

describe('seedVault', () => {
  it('builds a vault with Key Vault’s defaults and grants the roles at the vault', () => {
    const principal = core.addPrincipal({ kind: 'managedIdentity' });
    const vault = seedVault(core, {
      name: 'kv-seed',
      permissionModel: 'rbac',
      roleAssignments: [{ principalId: principal.oid, roleName: 'Key Vault Crypto Officer' }],
    });
    expect(vault).toMatchObject({
      name: 'kv-seed',
      subscriptionId: core.subscriptionId,
      resourceGroup: 'rg-vaults',
      location: 'westeurope',
      tenantId: core.tenantId,
      sku: 'standard',
      enableRbacAuthorization: true,
      enableSoftDelete: true,
      enablePurgeProtection: false,
      softDeleteRetentionInDays: 90,
      publicNetworkAccess: 'Enabled',
    });
    expect(
      core.isAuthorized(principal.oid, `${vaultResourceId(vault)}`, 'Microsoft.KeyVault/vaults/keys/delete'),
    ).toBe(true);
  });

  it('builds an access-policy vault and refuses invalid names and retention', () => {
    const vault = seedVault(core, {
      name: 'kv-ap',
      permissionModel: 'accessPolicy',
      purgeProtection: true,
      retentionDays: 7,
      accessPolicies: [{ objectId: 'oid-1', keys: ['get', 'list', 'recover'] }],
    });
    expect(vault.enableRbacAuthorization).toBe(false);
    expect(vault.accessPolicies).toEqual([
      { tenantId: core.tenantId, objectId: 'oid-1', permissions: { keys: ['get', 'list', 'recover'] } },
    ]);
    expect(() => seedVault(core, { name: 'a' })).toThrow(/invalid/);
    expect(() => seedVault(core, { name: 'kv-ok', retentionDays: 100 })).toThrow(/between 7 and 90/);
  });

  it('is served by the ARM handler once registered', async () => {
    const vault = seedVault(core, { name: 'kv-seed', resourceGroup: 'rg-test' });
    core.vaults.set(vault.name, vault);
    const res = await call('GET', vaultPath('kv-seed'));
    expect(res.status).toBe(200);
    expectValid('Vault', res.body);
  });
});

describe('routing', () => {
  it('hands other providers to the fallback handler', async () => {
    const fallback = jest.fn<EmuResponse, [unknown]>(() => ({ status: 200, body: { value: [] } }));
    arm = createArmService(core, { fallback });
    const res = await call(
      'GET',
      `/subscriptions/${core.subscriptionId}/providers/Microsoft.Security/pricings`,
    );
    expect(res.status).toBe(200);
    expect(fallback).toHaveBeenCalledTimes(1);
  });

  it('answers InvalidResourceType for a Key Vault type it does not emulate', async () => {
    core.addVault({ name: 'kv1' });
    const res = await call('GET', `${vaultPath('kv1')}/privateEndpointConnections`);
    expectArmError(res, 404, 'InvalidResourceType');
  });

  it('answers 405 to a method a path does not support', async () => {
    const res = await call(
      'DELETE',
      `/subscriptions/${core.subscriptionId}/providers/Microsoft.KeyVault/vaults`,
    );
    expectArmError(res, 405, 'MethodNotAllowed');
  });
});
