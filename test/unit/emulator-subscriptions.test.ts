/**
 * The emulated ARM's `GET /subscriptions` (Subscriptions - List, test/emulator/arm.ts), driven
 * directly with a fake core: what a caller sees is decided by its role assignments (any role at, above
 * or below the subscription), in ARM's item shape, paged with `nextLink`; authentication and the
 * api-version come first, as for every ARM call.
 */
import { createArmService } from '../emulator/arm';
import { seedSubscription } from '../emulator/arm-resources';
import { createFakeCore, request, requestFromUrl, type FakeCore } from '../emulator/testing/fake-core';
import type { EmuResponse, Principal, ServiceHandler } from '../emulator/types';

const API = '2022-12-01';
const ARM_AUDIENCE = 'https://management.azure.com';
const SUB_B = '5d0c9b1a-2e3f-4a5b-8c7d-6e5f4a3b2c1d';
const SUB_C = 'c3b2a190-8f7e-4d6c-9b5a-4f3e2d1c0b9a';
const SUB_D = '0f1e2d3c-4b5a-4968-8776-a5b4c3d2e1f0';

// eslint-disable-next-line @typescript-eslint/no-explicit-any -- JSON bodies, read field by field
type Body = Record<string, any>;

let core: FakeCore;
let arm: ServiceHandler;
let kvguard: Principal;

beforeEach(() => {
  core = createFakeCore();
  arm = createArmService(core, { pageSize: 2 });
  kvguard = core.addPrincipal({ kind: 'managedIdentity', displayName: 'id-kvguard' });
  // A vault in B, a seeded posture subscription C, and D named by a role assignment only.
  core.addVault({ name: 'kv-in-b', subscriptionId: SUB_B });
  seedSubscription(core, SUB_C);
});

async function list(
  as: Principal | null = kvguard,
  query: Record<string, string> = { 'api-version': API },
): Promise<EmuResponse> {
  const headers: Record<string, string> = as
    ? { authorization: core.bearer(as, { audience: ARM_AUDIENCE }) }
    : {};
  return arm(
    request({ method: 'GET', host: 'management.azure.com', path: '/subscriptions', query, headers }),
  );
}

async function listAll(as: Principal = kvguard): Promise<Body[]> {
  const items: Body[] = [];
  let res = await list(as);
  for (;;) {
    expect(res.status).toBe(200);
    const body = res.body as Body;
    items.push(...(body.value as Body[]));
    if (!body.nextLink) return items;
    res = await arm(
      requestFromUrl(body.nextLink as string, {
        headers: { authorization: core.bearer(as, { audience: ARM_AUDIENCE }) },
      }),
    );
  }
}

describe('GET /subscriptions', () => {
  it('lists the subscriptions where the caller holds any role: at the subscription, a group, a resource', async () => {
    core.grant(kvguard.oid, `/subscriptions/${core.subscriptionId}`, 'Reader');
    core.grant(
      kvguard.oid,
      `/subscriptions/${SUB_B}/resourceGroups/rg-test/providers/Microsoft.KeyVault/vaults/kv-in-b`,
      {
        dataActions: ['Microsoft.KeyVault/vaults/keys/read'],
      },
    );
    core.grant(kvguard.oid, `/subscriptions/${SUB_D}/resourceGroups/rg-x`, 'Key Vault Reader');
    const other = core.addPrincipal({ kind: 'user', upn: 'bob@contoso.com' });
    core.grant(other.oid, `/subscriptions/${SUB_C}`, 'Owner');

    const items = await listAll();

    expect(items.map((s) => s.subscriptionId).sort()).toEqual([core.subscriptionId, SUB_B, SUB_D].sort());
    // C exists, but kvguard holds no role there.
    expect((await listAll(other)).map((s) => s.subscriptionId)).toEqual([SUB_C]);
  });

  it('answers ARM’s item shape, with a count', async () => {
    core.grant(kvguard.oid, `/subscriptions/${SUB_B}`, 'Reader');
    const res = await list();
    expect(res.status).toBe(200);
    expect(res.headers?.['x-ms-request-id']).toEqual(expect.any(String));
    expect(res.body).toEqual({
      value: [
        {
          id: `/subscriptions/${SUB_B}`,
          authorizationSource: 'RoleBased',
          managedByTenants: [],
          subscriptionId: SUB_B,
          tenantId: core.tenantId,
          displayName: expect.any(String),
          state: 'Enabled',
          subscriptionPolicies: {
            locationPlacementId: expect.any(String),
            quotaId: expect.any(String),
            spendingLimit: expect.any(String),
          },
        },
      ],
      count: { type: 'Total', value: 1 },
    });
  });

  it('a role at the root scope shows every subscription; none shows none', async () => {
    expect((await list()).body).toEqual({ value: [], count: { type: 'Total', value: 0 } });
    core.grant(kvguard.oid, '/', 'Reader');
    expect((await listAll()).map((s) => s.subscriptionId).sort()).toEqual(
      [core.subscriptionId, SUB_B, SUB_C].sort(),
    );
  });

  it('pages with nextLink (pageSize 2) and every page is whole', async () => {
    for (const s of [core.subscriptionId, SUB_B, SUB_C, SUB_D])
      core.grant(kvguard.oid, `/subscriptions/${s}`, 'Reader');
    const first = (await list()).body as Body;
    expect(first.value).toHaveLength(2);
    expect(first.nextLink).toMatch(
      /^https:\/\/management\.azure\.com\/subscriptions\?api-version=2022-12-01&%24skiptoken=/,
    );
    const all = await listAll();
    expect(all.map((s) => s.subscriptionId).sort()).toEqual(
      [core.subscriptionId, SUB_B, SUB_C, SUB_D].sort(),
    );
  });

  it('a subscription seen only in a role assignment also serves its (empty) vault lists', async () => {
    core.grant(kvguard.oid, `/subscriptions/${SUB_D}`, 'Reader');
    const res = await arm(
      request({
        method: 'GET',
        host: 'management.azure.com',
        path: `/subscriptions/${SUB_D}/providers/Microsoft.KeyVault/vaults`,
        query: { 'api-version': '2025-05-01' },
        headers: { authorization: core.bearer(kvguard, { audience: ARM_AUDIENCE }) },
      }),
    );
    expect(res.status).toBe(200);
    expect((res.body as Body).value).toEqual([]);
  });

  it('authenticates first, needs the api-version, and refuses other methods', async () => {
    expect((await list(null)).status).toBe(401);
    const noApi = await list(kvguard, {});
    expect(noApi.status).toBe(400);
    expect((noApi.body as Body).error.code).toBe('MissingApiVersionParameter');
    const post = await arm(
      request({
        method: 'POST',
        host: 'management.azure.com',
        path: '/subscriptions',
        query: { 'api-version': API },
        headers: { authorization: core.bearer(kvguard, { audience: ARM_AUDIENCE }) },
      }),
    );
    expect(post.status).toBe(405);
  });
});
