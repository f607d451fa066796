/**
 * The emulated ARM outside Microsoft.KeyVault (test/emulator/security.ts, arm-resources.ts), driven
 * directly with a fake core through arm.ts's `fallback`: Defender pricings (subPlan, 200 only), JIT
 * policies, auto-provisioning, alerts, VMs, diagnostic settings on a vault (the duplicate-sink 409),
 * policy assignments (201), VNets and flow logs (NSG creation refused); authentication, RBAC, paging;
 * every Microsoft.Security body validated against azure-specs/security/* and its examples.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { createArmService } from '../emulator/arm';
import {
  armResources,
  seedDiagnosticSetting,
  seedFlowLog,
  seedStorageAccount,
  seedVirtualMachine,
  seedVirtualNetwork,
} from '../emulator/arm-resources';
import {
  createPostureArmService,
  durationMinutes,
  seedAutoProvisioning,
  seedJitPolicy,
  seedPricing,
  seedSecurityAlert,
  seedPosture,
} from '../emulator/security';
import { createFakeCore, request, requestFromUrl, type FakeCore } from '../emulator/testing/fake-core';
import { SPECS_DIR } from '../emulator/testing/specs';
import { validateAgainstSwagger } from '../emulator/testing/swagger';
import type { EmuResponse, Principal, ServiceHandler } from '../emulator/types';

const SECURITY = join(SPECS_DIR, 'security');
const PRICINGS_SPEC = join(SECURITY, 'pricings/2022-03-01/pricings.json');
const JIT_SPEC = join(SECURITY, 'jitNetworkAccessPolicies/2020-01-01/jitNetworkAccessPolicies.json');
const AUTO_SPEC = join(SECURITY, 'autoProvisioningSettings/2017-08-01-preview/autoProvisioningSettings.json');
const ALERTS_SPEC = join(SECURITY, 'alerts/2022-01-01/alerts.json');
const AUDIENCE = 'https://management.azure.com';

// eslint-disable-next-line @typescript-eslint/no-explicit-any -- JSON bodies, read field by field
type Body = Record<string, any>;

let core: FakeCore;
let arm: ServiceHandler;
let admin: Principal;
let sub: string;

beforeEach(() => {
  core = createFakeCore();
  sub = core.subscriptionId;
  arm = createArmService(core, { fallback: createPostureArmService(core) });
  admin = core.addPrincipal({ kind: 'user', upn: 'alice@contoso.com' });
  core.grant(admin.oid, `/subscriptions/${sub}`, 'Owner');
});

async function call(
  method: string,
  path: string,
  opts: { as?: Principal | null; body?: unknown; api?: string | null } = {},
): Promise<EmuResponse> {
  const { as = admin, api = '2022-03-01' } = opts;
  const headers: Record<string, string> = {};
  if (as) headers.authorization = core.bearer(as, { audience: AUDIENCE });
  return arm(
    request({
      method,
      host: 'management.azure.com',
      path,
      query: api === null ? {} : { 'api-version': api },
      headers,
      body: opts.body,
    }),
  );
}

const body = (res: EmuResponse) => res.body as Body;
const example = (path: string): Body => JSON.parse(readFileSync(join(SECURITY, path), 'utf8')) as Body;

describe('ARM front door for the fallback', () => {
  test('401 with a Bearer challenge without a token; 400 without api-version; 404 for an unknown subscription', async () => {
    const path = `/subscriptions/${sub}/providers/Microsoft.Security/pricings`;
    const anon = await call('GET', path, { as: null });
    expect(anon.status).toBe(401);
    expect(anon.headers?.['www-authenticate']).toMatch(/^Bearer authorization_uri=/);
    expect((await call('GET', path, { api: null })).status).toBe(400);
    const unknown = await call(
      'GET',
      '/subscriptions/99999999-0000-4000-8000-000000000000/providers/Microsoft.Security/pricings',
    );
    expect(unknown.status).toBe(404);
    expect(body(unknown).error.code).toBe('SubscriptionNotFound');
  });

  test('RBAC: a reader can list pricings but not change them (AuthorizationFailed names the action)', async () => {
    const reader = core.addPrincipal({ kind: 'servicePrincipal', displayName: 'reader' });
    core.grant(reader.oid, `/subscriptions/${sub}`, 'Reader');
    expect(
      (await call('GET', `/subscriptions/${sub}/providers/Microsoft.Security/pricings`, { as: reader }))
        .status,
    ).toBe(200);
    const put = await call('PUT', `/subscriptions/${sub}/providers/Microsoft.Security/pricings/KeyVaults`, {
      as: reader,
      body: { properties: { pricingTier: 'Standard' } },
    });
    expect(put.status).toBe(403);
    expect(body(put).error.code).toBe('AuthorizationFailed');
    expect(body(put).error.message).toContain("'Microsoft.Security/pricings/write'");
  });

  test('Key Vault paths still reach arm.ts; a vault diagnostic setting path reaches the fallback', async () => {
    core.addVault({ name: 'kv-one' });
    const vault = await call(
      'GET',
      `/subscriptions/${sub}/resourceGroups/rg-test/providers/Microsoft.KeyVault/vaults/kv-one`,
      {
        api: '2026-02-01',
      },
    );
    expect(vault.status).toBe(200);
    expect(body(vault).type).toBe('Microsoft.KeyVault/vaults');
    const settings = await call(
      'GET',
      `/subscriptions/${sub}/resourceGroups/rg-test/providers/Microsoft.KeyVault/vaults/kv-one/providers/Microsoft.Insights/diagnosticSettings`,
      { api: '2017-05-01-preview' },
    );
    expect(settings.status).toBe(200);
    expect(body(settings)).toEqual({ value: [] });
  });
});

describe('Microsoft.Security/pricings (2022-03-01, subPlan)', () => {
  const base = () => `/subscriptions/${sub}/providers/Microsoft.Security/pricings`;

  test('list and get validate against PricingList / Pricing; every plan starts Free without subPlan', async () => {
    const list = await call('GET', base());
    expect(list.status).toBe(200);
    expect(validateAgainstSwagger(PRICINGS_SPEC, 'PricingList', body(list))).toEqual([]);
    const names = body(list).value.map((p: Body) => p.name);
    expect(names).toEqual(expect.arrayContaining(['VirtualMachines', 'KeyVaults', 'StorageAccounts', 'Arm']));
    const vm = await call('GET', `${base()}/VirtualMachines`);
    expect(validateAgainstSwagger(PRICINGS_SPEC, 'Pricing', body(vm))).toEqual([]);
    expect(body(vm).properties).toEqual({ pricingTier: 'Free', freeTrialRemainingTime: 'PT0S' });
    // The shape of the spec's own examples (id, name, type, properties).
    const ex = example('pricings/2022-03-01/examples/Pricings/ListPricings_example.json').responses['200']
      .body.value[0];
    expect(Object.keys(body(vm)).sort()).toEqual(Object.keys(ex).sort());
  });

  test('PUT answers 200 (never 201) and speaks properties.subPlan', async () => {
    const put = await call('PUT', `${base()}/VirtualMachines`, {
      body: { properties: { pricingTier: 'Standard', subPlan: 'P2' } },
    });
    expect(put.status).toBe(200);
    expect(body(put).properties).toEqual({
      pricingTier: 'Standard',
      subPlan: 'P2',
      freeTrialRemainingTime: 'PT0S',
    });
    expect(validateAgainstSwagger(PRICINGS_SPEC, 'Pricing', body(put))).toEqual([]);
    expect(body(await call('GET', `${base()}/VirtualMachines`)).properties.subPlan).toBe('P2');
    // Free drops the sub-plan; Standard without one gets the plan's default.
    expect(
      body(await call('PUT', `${base()}/VirtualMachines`, { body: { properties: { pricingTier: 'Free' } } }))
        .properties,
    ).toEqual({
      pricingTier: 'Free',
      freeTrialRemainingTime: 'PT0S',
    });
    expect(
      body(await call('PUT', `${base()}/KeyVaults`, { body: { properties: { pricingTier: 'Standard' } } }))
        .properties.subPlan,
    ).toBe('PerKeyVault');
  });

  test('an unknown tier or sub-plan is refused with 400; an unknown plan with 404', async () => {
    expect(
      (await call('PUT', `${base()}/VirtualMachines`, { body: { properties: { pricingTier: 'Gold' } } }))
        .status,
    ).toBe(400);
    expect(
      (
        await call('PUT', `${base()}/VirtualMachines`, {
          body: { properties: { pricingTier: 'Standard', subPlan: 'PerKeyVault' } },
        })
      ).status,
    ).toBe(400);
    expect((await call('GET', `${base()}/NoSuchPlan`)).status).toBe(404);
  });

  test('seeded pricings show up per subscription', async () => {
    seedPricing(core, { name: 'KeyVaults', tier: 'Standard', subPlan: 'PerTransaction' });
    expect(body(await call('GET', `${base()}/KeyVaults`)).properties.subPlan).toBe('PerTransaction');
  });
});

describe('Microsoft.Security/jitNetworkAccessPolicies (2020-01-01)', () => {
  const policyPath = (rg: string, loc = 'westeurope', name = 'default') =>
    `/subscriptions/${sub}/resourceGroups/${rg}/providers/Microsoft.Security/locations/${loc}/jitNetworkAccessPolicies/${name}`;
  const vmPort = {
    number: 22,
    protocol: '*',
    allowedSourceAddressPrefix: '*',
    maxRequestAccessDuration: 'PT3H',
  };

  function p2() {
    seedPricing(core, { name: 'VirtualMachines', tier: 'Standard', subPlan: 'P2' });
  }

  test('the spec example body round-trips: PUT 200, get, list by subscription, region and resource group', async () => {
    p2();
    const ex = example(
      'jitNetworkAccessPolicies/2020-01-01/examples/JitNetworkAccessPolicies/CreateJitNetworkAccessPolicy_example.json',
    );
    const vm = seedVirtualMachine(core, { name: 'vm1', resourceGroup: 'myRg1' });
    const requestBody = structuredClone(ex.parameters.body) as Body;
    for (const v of requestBody.properties.virtualMachines as Body[])
      v.id = v.id.replace(ex.parameters.subscriptionId, sub);
    for (const r of requestBody.properties.requests as Body[])
      for (const v of r.virtualMachines as Body[]) v.id = v.id.replace(ex.parameters.subscriptionId, sub);
    const put = await call('PUT', policyPath('myRg1'), { body: requestBody, api: '2020-01-01' });
    expect(put.status).toBe(200);
    expect(validateAgainstSwagger(JIT_SPEC, 'JitNetworkAccessPolicy', body(put))).toEqual([]);
    const expected = structuredClone(ex.responses['200'].body) as Body;
    expect(body(put)).toEqual(
      JSON.parse(JSON.stringify(expected).split(ex.parameters.subscriptionId).join(sub)),
    );
    expect(body(put).properties.virtualMachines[0].id).toContain(vm.name);
    for (const path of [
      `/subscriptions/${sub}/providers/Microsoft.Security/jitNetworkAccessPolicies`,
      `/subscriptions/${sub}/providers/Microsoft.Security/locations/westeurope/jitNetworkAccessPolicies`,
      `/subscriptions/${sub}/resourceGroups/myRg1/providers/Microsoft.Security/jitNetworkAccessPolicies`,
    ]) {
      const list = await call('GET', path, { api: '2020-01-01' });
      expect(list.status).toBe(200);
      expect(validateAgainstSwagger(JIT_SPEC, 'JitNetworkAccessPoliciesList', body(list))).toEqual([]);
      expect(body(list).value).toHaveLength(1);
    }
    expect(
      body(
        await call(
          'GET',
          `/subscriptions/${sub}/providers/Microsoft.Security/locations/northeurope/jitNetworkAccessPolicies`,
          { api: '2020-01-01' },
        ),
      ).value,
    ).toEqual([]);
  });

  test('without Defender for Servers P2 a PUT is refused', async () => {
    const vm = seedVirtualMachine(core, { name: 'vm1', resourceGroup: 'rg' });
    const res = await call('PUT', policyPath('rg'), {
      body: {
        kind: 'Basic',
        properties: {
          virtualMachines: [
            {
              id: `/subscriptions/${sub}/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/${vm.name}`,
              ports: [vmPort],
            },
          ],
        },
      },
      api: '2020-01-01',
    });
    expect(res.status).toBe(400);
    expect(body(res).error.message).toContain('Plan 2');
  });

  test('port rules are validated: prefix xor prefixes, duration PT5M..P1D, protocol; VM must exist in the region', async () => {
    p2();
    seedVirtualMachine(core, { name: 'vm1', resourceGroup: 'rg' });
    const id = `/subscriptions/${sub}/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/vm1`;
    const put = (ports: unknown[], vmIdValue = id, loc = 'westeurope') =>
      call('PUT', policyPath('rg', loc), {
        body: { kind: 'Basic', properties: { virtualMachines: [{ id: vmIdValue, ports }] } },
        api: '2020-01-01',
      });
    expect((await put([{ ...vmPort, allowedSourceAddressPrefixes: ['10.0.0.0/8'] }])).status).toBe(400);
    expect((await put([{ ...vmPort, maxRequestAccessDuration: 'PT2M' }])).status).toBe(400);
    expect((await put([{ ...vmPort, maxRequestAccessDuration: 'P2D' }])).status).toBe(400);
    expect((await put([{ ...vmPort, protocol: 'ICMP' }])).status).toBe(400);
    expect((await put([vmPort], id.replace('vm1', 'vm-missing'))).status).toBe(400);
    expect((await put([vmPort], id, 'northeurope')).status).toBe(400);
    expect(
      (
        await put([
          {
            number: 3389,
            protocol: 'TCP',
            allowedSourceAddressPrefixes: ['10.0.0.0/8'],
            maxRequestAccessDuration: 'P1D',
          },
        ])
      ).status,
    ).toBe(200);
    expect(durationMinutes('PT3H')).toBe(180);
    expect(durationMinutes('PT1H30M')).toBe(90);
    expect(durationMinutes('bogus')).toBeUndefined();
  });

  test('a PUT needs Microsoft.Compute/virtualMachines/write on each VM as well as the JIT write', async () => {
    p2();
    seedVirtualMachine(core, { name: 'vm1', resourceGroup: 'rg' });
    const secAdmin = core.addPrincipal({ kind: 'servicePrincipal', displayName: 'secadmin' });
    core.grant(secAdmin.oid, `/subscriptions/${sub}`, 'Security Admin');
    const res = await call('PUT', policyPath('rg'), {
      as: secAdmin,
      body: {
        kind: 'Basic',
        properties: {
          virtualMachines: [
            {
              id: `/subscriptions/${sub}/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/vm1`,
              ports: [vmPort],
            },
          ],
        },
      },
      api: '2020-01-01',
    });
    expect(res.status).toBe(403);
    expect(body(res).error.message).toContain('Microsoft.Compute/virtualMachines/write');
  });

  test('a list pages with nextLink', async () => {
    armResources(core).pageSize = 1;
    for (const rg of ['rg-a', 'rg-b', 'rg-c']) {
      const vm = seedVirtualMachine(core, { name: `vm-${rg}`, resourceGroup: rg });
      seedJitPolicy(core, {
        resourceGroup: rg,
        virtualMachines: [
          {
            id: `/subscriptions/${sub}/resourceGroups/${rg}/providers/Microsoft.Compute/virtualMachines/${vm.name}`,
            ports: [{ number: 22 }],
          },
        ],
      });
    }
    let res = await call(
      'GET',
      `/subscriptions/${sub}/providers/Microsoft.Security/jitNetworkAccessPolicies`,
      { api: '2020-01-01' },
    );
    const seen: string[] = [];
    for (;;) {
      seen.push(...body(res).value.map((p: Body) => p.id as string));
      if (!body(res).nextLink) break;
      res = await arm(
        requestFromUrl(body(res).nextLink, {
          headers: { authorization: core.bearer(admin, { audience: AUDIENCE }) },
        }),
      );
    }
    expect(seen).toHaveLength(3);
  });
});

describe('autoProvisioningSettings, alerts, locations', () => {
  test('auto-provisioning list/get/put validate against the 2017-08-01-preview spec', async () => {
    seedAutoProvisioning(core, { autoProvision: 'On' });
    const base = `/subscriptions/${sub}/providers/Microsoft.Security/autoProvisioningSettings`;
    const list = await call('GET', base, { api: '2017-08-01-preview' });
    expect(validateAgainstSwagger(AUTO_SPEC, 'AutoProvisioningSettingList', body(list))).toEqual([]);
    const ex = example(
      'autoProvisioningSettings/2017-08-01-preview/examples/AutoProvisioningSettings/GetAutoProvisioningSettingSubscription_example.json',
    );
    const got = body(await call('GET', `${base}/default`, { api: '2017-08-01-preview' }));
    expect(got).toEqual(
      JSON.parse(JSON.stringify(ex.responses['200'].body).split(ex.parameters.subscriptionId).join(sub)),
    );
    const put = await call('PUT', `${base}/default`, {
      api: '2017-08-01-preview',
      body: { properties: { autoProvision: 'Off' } },
    });
    expect(put.status).toBe(200);
    expect(body(put).properties.autoProvision).toBe('Off');
  });

  test('alerts list by subscription validates against AlertList (2022-01-01) and pages', async () => {
    armResources(core).pageSize = 2;
    for (let i = 0; i < 3; i++)
      seedSecurityAlert(core, {
        name: `251877096552916366${i}_F144EE95-A3E5-42DA-A279-967D115809A${i}`,
        alertType: 'KV_SuspiciousIPAccess',
        resourceGroup: 'rg-vaults',
        resourceIds: [
          `/subscriptions/${sub}/resourceGroups/rg-vaults/providers/Microsoft.KeyVault/vaults/kv-${i}`,
        ],
      });
    const first = await call('GET', `/subscriptions/${sub}/providers/Microsoft.Security/alerts`, {
      api: '2021-11-01',
    });
    expect(validateAgainstSwagger(ALERTS_SPEC, 'AlertList', body(first))).toEqual([]);
    expect(body(first).value).toHaveLength(2);
    expect(body(first).nextLink).toMatch(/^https:\/\/management\.azure\.com\//);
    const one = body(first).value[0] as Body;
    expect(one.type).toBe('Microsoft.Security/Locations/alerts');
    expect(one.properties.resourceIdentifiers[0].type).toBe('AzureResource');
  });

  test('locations name the home region', async () => {
    const res = await call('GET', `/subscriptions/${sub}/providers/Microsoft.Security/locations`, {
      api: '2015-06-01-preview',
    });
    expect(body(res).value[0].properties.homeRegionName).toBeTruthy();
  });
});

describe('Microsoft.Compute, Insights, Authorization, Network', () => {
  test('VMs list by subscription with tags; RBAC filters what a caller may read', async () => {
    seedVirtualMachine(core, { name: 'vm-a', resourceGroup: 'rg-a', tags: { jit: 'on' } });
    seedVirtualMachine(core, { name: 'vm-b', resourceGroup: 'rg-b' });
    const list = body(
      await call('GET', `/subscriptions/${sub}/providers/Microsoft.Compute/virtualMachines`, {
        api: '2026-03-01',
      }),
    );
    expect(list.value.map((v: Body) => v.name)).toEqual(['vm-a', 'vm-b']);
    expect(list.value[0].tags).toEqual({ jit: 'on' });
    const narrow = core.addPrincipal({ kind: 'servicePrincipal', displayName: 'narrow' });
    core.grant(narrow.oid, `/subscriptions/${sub}/resourceGroups/rg-b`, 'Reader');
    const seen = body(
      await call('GET', `/subscriptions/${sub}/providers/Microsoft.Compute/virtualMachines`, {
        api: '2026-03-01',
        as: narrow,
      }),
    );
    expect(seen.value.map((v: Body) => v.name)).toEqual(['vm-b']);
  });

  test('diagnostic settings: a second setting with the same category and sink is refused with 409 Conflict', async () => {
    core.addVault({ name: 'kv-diag' });
    const vault = `/subscriptions/${sub}/resourceGroups/rg-test/providers/Microsoft.KeyVault/vaults/kv-diag`;
    const ws = `/subscriptions/${sub}/resourceGroups/rg-mon/providers/Microsoft.OperationalInsights/workspaces/law`;
    seedDiagnosticSetting(core, vault, 'existing', {
      workspaceId: ws,
      logs: [{ category: 'AuditEvent', enabled: true }],
    });
    const put = (name: string, properties: unknown) =>
      call('PUT', `${vault}/providers/Microsoft.Insights/diagnosticSettings/${name}`, {
        api: '2017-05-01-preview',
        body: { properties },
      });
    const conflict = await put('kvguard-audit', {
      workspaceId: ws,
      logAnalyticsDestinationType: 'Dedicated',
      logs: [{ category: 'AuditEvent', enabled: true }],
    });
    expect(conflict.status).toBe(409);
    expect(body(conflict)).toEqual({
      code: 'Conflict',
      message: `Data sink '${ws}' is already used in diagnostic setting 'existing' for category 'AuditEvent'. Data sinks can't be reused in different settings on the same category for the same resource.`,
    });
    // A different sink for the same category, or the same sink updated in its own setting, is fine.
    const hub =
      '/subscriptions/x/resourceGroups/rg/providers/Microsoft.EventHub/namespaces/ns/authorizationrules/RootManageSharedAccessKey';
    expect(
      (
        await put('kvguard-audit', {
          eventHubAuthorizationRuleId: hub,
          eventHubName: 'kvguard-audit',
          logs: [{ category: 'AuditEvent', enabled: true }],
        })
      ).status,
    ).toBe(200);
    expect(
      (
        await put('existing', {
          workspaceId: ws,
          logAnalyticsDestinationType: 'Dedicated',
          logs: [{ category: 'AuditEvent', enabled: true }],
        })
      ).status,
    ).toBe(200);
    expect(
      (await put('bad', { workspaceId: ws, logs: [{ category: 'NoSuchCategory', enabled: true }] })).status,
    ).toBe(400);
    expect((await put('bad', { logs: [{ category: 'AuditEvent', enabled: true }] })).status).toBe(400);
    const list = body(
      await call('GET', `${vault}/providers/Microsoft.Insights/diagnosticSettings`, {
        api: '2017-05-01-preview',
      }),
    );
    expect(list.value.map((s: Body) => s.name).sort()).toEqual(['existing', 'kvguard-audit']);
    expect(
      (
        await call(
          'GET',
          `/subscriptions/${sub}/resourceGroups/rg-test/providers/Microsoft.KeyVault/vaults/nope/providers/Microsoft.Insights/diagnosticSettings`,
          { api: '2017-05-01-preview' },
        )
      ).status,
    ).toBe(404);
  });

  test('policy assignments: PUT 201 at subscription scope, get 200, unknown definition 404, bad effect 400', async () => {
    const scope = `/subscriptions/${sub}`;
    const path = `${scope}/providers/Microsoft.Authorization/policyAssignments/kvguard-kv-deletion`;
    expect((await call('GET', path, { api: '2024-05-01' })).status).toBe(404);
    const def = '/providers/Microsoft.Authorization/policyDefinitions/0b60c0b2-2dc2-4e1c-b5c9-abbed971de53';
    const put = await call('PUT', path, {
      api: '2024-05-01',
      body: { properties: { policyDefinitionId: def, parameters: { effect: { value: 'Deny' } } } },
    });
    expect(put.status).toBe(201);
    expect(body(put).properties).toMatchObject({
      scope,
      policyDefinitionId: def,
      enforcementMode: 'Default',
    });
    expect(body(await call('GET', path, { api: '2024-05-01' })).properties.parameters.effect.value).toBe(
      'Deny',
    );
    expect(
      (
        await call('PUT', path, {
          api: '2024-05-01',
          body: { properties: { policyDefinitionId: def, parameters: { effect: { value: 'Append' } } } },
        })
      ).status,
    ).toBe(400);
    expect(
      (
        await call('PUT', path, {
          api: '2024-05-01',
          body: {
            properties: { policyDefinitionId: '/providers/Microsoft.Authorization/policyDefinitions/nope' },
          },
        })
      ).status,
    ).toBe(404);
    const mg =
      '/providers/Microsoft.Management/managementGroups/mg1/providers/Microsoft.Authorization/policyAssignments/a1';
    expect(
      (await call('PUT', mg, { api: '2024-05-01', body: { properties: { policyDefinitionId: def } } }))
        .status,
    ).toBe(403);
  });

  test('VNets, network watchers and flow logs: a VNet flow log is created (201) and updated (200); a new NSG flow log is refused', async () => {
    const vnet = seedVirtualNetwork(core, { name: 'vnet-a', location: 'westeurope' });
    const storage = seedStorageAccount(core, { name: 'stflowweu', location: 'westeurope' });
    const storageNeu = seedStorageAccount(core, { name: 'stflowneu', location: 'northeurope' });
    const vnets = body(
      await call('GET', `/subscriptions/${sub}/providers/Microsoft.Network/virtualNetworks`, {
        api: '2025-05-01',
      }),
    );
    expect(vnets.value.map((v: Body) => v.id)).toEqual([vnet.id]);
    const watchers = body(
      await call('GET', `/subscriptions/${sub}/providers/Microsoft.Network/networkWatchers`, {
        api: '2025-05-01',
      }),
    );
    expect(watchers.value).toHaveLength(1);
    const watcher = watchers.value[0] as Body;
    expect(watcher.name).toBe('NetworkWatcher_westeurope');
    const flowLog = `${watcher.id}/flowLogs/fl-vnet-a`;
    const body1 = {
      location: 'westeurope',
      properties: {
        targetResourceId: vnet.id,
        storageId: storage.id,
        enabled: true,
        retentionPolicy: { days: 30, enabled: true },
      },
    };
    const created = await call('PUT', flowLog, { api: '2025-05-01', body: body1 });
    expect(created.status).toBe(201);
    expect(body(created).properties.provisioningState).toBe('Succeeded');
    expect((await call('PUT', flowLog, { api: '2025-05-01', body: body1 })).status).toBe(200);
    expect((await call('GET', flowLog, { api: '2025-05-01' })).status).toBe(200);
    // Storage in another region is refused; so is a new NSG flow log, while an existing one may be updated.
    expect(
      (
        await call('PUT', flowLog, {
          api: '2025-05-01',
          body: { ...body1, properties: { ...body1.properties, storageId: storageNeu.id } },
        })
      ).status,
    ).toBe(400);
    const nsg = `/subscriptions/${sub}/resourceGroups/rg-network/providers/Microsoft.Network/networkSecurityGroups/nsg-a`;
    const refused = await call('PUT', `${watcher.id}/flowLogs/fl-nsg`, {
      api: '2025-05-01',
      body: { ...body1, properties: { ...body1.properties, targetResourceId: nsg } },
    });
    expect(refused.status).toBe(400);
    expect(body(refused).error.code).toBe('NsgFlowLogCreationBlocked');
    seedFlowLog(core, {
      networkWatcherId: watcher.id,
      name: 'fl-nsg-old',
      targetResourceId: nsg,
      storageId: storage.id,
    });
    expect(
      (
        await call('PUT', `${watcher.id}/flowLogs/fl-nsg-old`, {
          api: '2025-05-01',
          body: { ...body1, properties: { ...body1.properties, targetResourceId: nsg } },
        })
      ).status,
    ).toBe(200);
  });

  test('the admin seeding dispatcher knows every kind and refuses others', () => {
    expect(seedPosture(core, { kind: 'virtualMachine', name: 'vm-x' })).toMatchObject({ name: 'vm-x' });
    expect(() => seedPosture(core, { kind: 'nope' })).toThrow(/kind must be one of/);
  });
});
