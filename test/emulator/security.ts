/**
 * Microsoft.Security (Defender for Cloud) on the emulated ARM, as @azure/arm-security 5.0.0 calls it
 * (azure-facts §3; shapes from azure-specs/security/*):
 * - pricings (api-version 2022-03-01): list, get, PUT answering **200 only** (the SDK refuses 201).
 *   The SDK sends and reads `properties.subPlan`, not the 2022-03-01 spec's `planName` (the spec's
 *   own list example and every later version use `subPlan`): the emulator speaks `subPlan`. `Free`
 *   carries no sub-plan; `Standard` without one gets the plan's default (P2, PerKeyVault, …: UNCONFIRMED).
 * - jitNetworkAccessPolicies (2020-01-01): list by subscription, region, resource group, both; get;
 *   PUT answering 200 only. A PUT needs `…/jitNetworkAccessPolicies/write` and
 *   `Microsoft.Compute/virtualMachines/write` on every VM it lists (azure-facts §7); every VM must
 *   exist in the policy's region; a subscription without Defender for Servers P2 is refused (the
 *   service's exact answer is UNCONFIRMED). Existing `requests` survive a PUT that omits them.
 * - autoProvisioningSettings (2017-08-01-preview): list, get, PUT (200).
 * - alerts (2021-11-01 as sent; shapes from 2022-01-01): list by subscription (paged), get by region.
 * - locations (2015-06-01-preview): the subscription's home region (`properties.homeRegionName`,
 *   UNCONFIRMED shape).
 *
 * `createPostureArmService(core)` is the handler arm.ts calls as its `fallback` for every
 * management.azure.com path outside Microsoft.KeyVault: these routes and arm-resources.ts's.
 */
import {
  ArmError,
  authorize,
  DEFAULT_REGION,
  isRecord,
  jsonBody,
  lastProvider,
  listBody,
  methodNotAllowed,
  normaliseLocation,
  okResponse,
  armResources,
  requireSubscription,
  RESOURCE_ROUTES,
  same,
  seedNetworkWatcher,
  seedStorageAccount,
  seedSubscription,
  seedVirtualMachine,
  seedVirtualNetwork,
  serveArm,
  vmId,
  type ArmCall,
  type ArmRoute,
  type JitPolicyRecord,
  type PricingRecord,
  type SecurityAlertRecord,
} from './arm-resources';
import type { EmulatorCore, ServiceHandler } from './types';

const ACTION = {
  pricingsRead: 'Microsoft.Security/pricings/read',
  pricingsWrite: 'Microsoft.Security/pricings/write',
  jitRead: 'Microsoft.Security/locations/jitNetworkAccessPolicies/read',
  jitWrite: 'Microsoft.Security/locations/jitNetworkAccessPolicies/write',
  jitDelete: 'Microsoft.Security/locations/jitNetworkAccessPolicies/delete',
  vmWrite: 'Microsoft.Compute/virtualMachines/write',
  autoProvisioningRead: 'Microsoft.Security/autoProvisioningSettings/read',
  autoProvisioningWrite: 'Microsoft.Security/autoProvisioningSettings/write',
  alertsRead: 'Microsoft.Security/alerts/read',
  locationsRead: 'Microsoft.Security/locations/read',
};

/** Plans a new subscription lists, all Free (the 2022-03-01 list example's names, current ones only). */
export const DEFAULT_PLANS = [
  'VirtualMachines',
  'SqlServers',
  'AppServices',
  'StorageAccounts',
  'SqlServerVirtualMachines',
  'KeyVaults',
  'Dns',
  'Arm',
  'OpenSourceRelationalDatabases',
  'Containers',
  'CosmosDbs',
];

/** Sub-plans per plan (azure-facts §3.2); the first is what Standard gets without one (UNCONFIRMED). */
export const SUB_PLANS: Record<string, string[]> = {
  virtualmachines: ['P2', 'P1'],
  keyvaults: ['PerKeyVault', 'PerTransaction'],
  arm: ['PerSubscription', 'PerApiCall'],
  storageaccounts: ['DefenderForStorageV2', 'PerTransaction', 'PerStorageAccount'],
};

// ---------------------------------------------------------------------------------------------
// Seeding
// ---------------------------------------------------------------------------------------------

function pricingsOf(core: EmulatorCore, subscriptionId: string): Map<string, PricingRecord> {
  const state = armResources(core);
  const key = subscriptionId.toLowerCase();
  let plans = state.pricings.get(key);
  if (!plans) {
    plans = new Map(DEFAULT_PLANS.map((name) => [name.toLowerCase(), { name, tier: 'Free' as const }]));
    state.pricings.set(key, plans);
  }
  return plans;
}

export function seedPricing(
  core: EmulatorCore,
  spec: { subscriptionId?: string; name: string; tier: 'Free' | 'Standard'; subPlan?: string },
): PricingRecord {
  const subscriptionId = spec.subscriptionId ?? core.subscriptionId;
  seedSubscription(core, subscriptionId);
  const record: PricingRecord = {
    name: spec.name,
    tier: spec.tier,
    ...(spec.tier === 'Standard' && spec.subPlan ? { subPlan: spec.subPlan } : {}),
  };
  pricingsOf(core, subscriptionId).set(spec.name.toLowerCase(), record);
  return record;
}

export function jitPolicyId(
  p: Pick<JitPolicyRecord, 'subscriptionId' | 'resourceGroup' | 'location' | 'name'>,
) {
  return `/subscriptions/${p.subscriptionId}/resourceGroups/${p.resourceGroup}/providers/Microsoft.Security/locations/${p.location}/jitNetworkAccessPolicies/${p.name}`;
}

export interface JitPortSpec {
  number: number;
  protocol?: 'TCP' | 'UDP' | '*';
  allowedSourceAddressPrefix?: string;
  allowedSourceAddressPrefixes?: string[];
  maxRequestAccessDuration?: string;
}

export function seedJitPolicy(
  core: EmulatorCore,
  spec: {
    subscriptionId?: string;
    resourceGroup: string;
    location?: string;
    name?: string;
    virtualMachines: Array<{ id: string; ports: JitPortSpec[] }>;
  },
): JitPolicyRecord & { id: string } {
  const record: JitPolicyRecord = {
    subscriptionId: (spec.subscriptionId ?? core.subscriptionId).toLowerCase(),
    resourceGroup: spec.resourceGroup,
    location: normaliseLocation(spec.location ?? DEFAULT_REGION),
    name: spec.name ?? 'default',
    virtualMachines: spec.virtualMachines.map((vm) => ({
      id: vm.id,
      ports: vm.ports.map((p) => ({
        number: p.number,
        protocol: p.protocol ?? '*',
        ...(p.allowedSourceAddressPrefixes
          ? { allowedSourceAddressPrefixes: p.allowedSourceAddressPrefixes }
          : { allowedSourceAddressPrefix: p.allowedSourceAddressPrefix ?? '*' }),
        maxRequestAccessDuration: p.maxRequestAccessDuration ?? 'PT3H',
      })),
    })),
    requests: [],
  };
  seedSubscription(core, record.subscriptionId);
  const id = jitPolicyId(record);
  armResources(core).jitPolicies.set(id.toLowerCase(), record);
  return { ...record, id };
}

export function seedAutoProvisioning(
  core: EmulatorCore,
  spec: { subscriptionId?: string; autoProvision: 'On' | 'Off' },
) {
  const subscriptionId = (spec.subscriptionId ?? core.subscriptionId).toLowerCase();
  seedSubscription(core, subscriptionId);
  armResources(core).autoProvisioning.set(subscriptionId, spec.autoProvision);
}

export interface SecurityAlertSpec {
  subscriptionId?: string;
  resourceGroup?: string;
  location?: string;
  /** The alert's name (`<ticks>_<guid>` in Azure). */
  name: string;
  alertType: string;
  alertDisplayName?: string;
  description?: string;
  severity?: 'Informational' | 'Low' | 'Medium' | 'High';
  status?: 'Active' | 'Resolved' | 'Dismissed' | 'InProgress';
  /** ARM ids the alert names (resourceIdentifiers of type AzureResource). */
  resourceIds?: string[];
  compromisedEntity?: string;
  startTimeUtc?: string;
}

export function seedSecurityAlert(
  core: EmulatorCore,
  spec: SecurityAlertSpec,
): SecurityAlertRecord & { id: string } {
  const subscriptionId = (spec.subscriptionId ?? core.subscriptionId).toLowerCase();
  seedSubscription(core, subscriptionId);
  const now = new Date(core.now()).toISOString();
  const record: SecurityAlertRecord = {
    subscriptionId,
    resourceGroup: spec.resourceGroup,
    location: normaliseLocation(spec.location ?? DEFAULT_REGION),
    name: spec.name,
    properties: {
      version: '2022-01-01.0',
      alertType: spec.alertType,
      systemAlertId: spec.name,
      productComponentName: 'KeyVaults',
      alertDisplayName: spec.alertDisplayName ?? spec.alertType,
      description: spec.description ?? `Emulated alert ${spec.alertType}`,
      severity: spec.severity ?? 'Medium',
      intent: 'CredentialAccess',
      startTimeUtc: spec.startTimeUtc ?? now,
      endTimeUtc: spec.startTimeUtc ?? now,
      resourceIdentifiers: (spec.resourceIds ?? []).map((id) => ({
        azureResourceId: id,
        type: 'AzureResource',
      })),
      remediationSteps: ['Investigate the activity.'],
      vendorName: 'Microsoft',
      status: spec.status ?? 'Active',
      extendedLinks: [],
      alertUri: `https://portal.azure.com/#blade/Microsoft_Azure_Security/AlertBlade/alertId/${spec.name}`,
      timeGeneratedUtc: now,
      productName: 'Microsoft Defender for Cloud',
      processingEndTimeUtc: now,
      entities: [],
      isIncident: false,
      compromisedEntity: spec.compromisedEntity ?? spec.resourceIds?.[0]?.split('/').pop() ?? '',
      extendedProperties: {},
    },
  };
  armResources(core).alerts.push(record);
  return { ...record, id: alertId(record) };
}

function alertId(a: SecurityAlertRecord): string {
  const rg = a.resourceGroup ? `/resourceGroups/${a.resourceGroup}` : '';
  return `/subscriptions/${a.subscriptionId}${rg}/providers/Microsoft.Security/locations/${a.location}/alerts/${a.name}`;
}

// ---------------------------------------------------------------------------------------------
// Renderings
// ---------------------------------------------------------------------------------------------

function pricingToArm(subscriptionId: string, p: PricingRecord): Record<string, unknown> {
  return {
    id: `/subscriptions/${subscriptionId}/providers/Microsoft.Security/pricings/${p.name}`,
    name: p.name,
    type: 'Microsoft.Security/pricings',
    properties: {
      pricingTier: p.tier,
      ...(p.subPlan ? { subPlan: p.subPlan } : {}),
      freeTrialRemainingTime: 'PT0S',
    },
  };
}

function jitToArm(p: JitPolicyRecord): Record<string, unknown> {
  return {
    id: jitPolicyId(p),
    name: p.name,
    type: 'Microsoft.Security/locations/jitNetworkAccessPolicies',
    location: p.location,
    kind: 'Basic',
    properties: {
      virtualMachines: structuredClone(p.virtualMachines),
      requests: structuredClone(p.requests),
      provisioningState: 'Succeeded',
    },
  };
}

function alertToArm(a: SecurityAlertRecord): Record<string, unknown> {
  return {
    id: alertId(a),
    name: a.name,
    type: 'Microsoft.Security/Locations/alerts',
    properties: structuredClone(a.properties),
  };
}

// ---------------------------------------------------------------------------------------------
// Validation of a JIT policy body
// ---------------------------------------------------------------------------------------------

/** ISO-8601 duration in minutes (PnDTnHnM), or undefined when it is not one. */
export function durationMinutes(value: string): number | undefined {
  const m = /^P(?:(\d+)D)?(?:T(?:(\d+)H)?(?:(\d+)M)?(?:(\d+)S)?)?$/.exec(value);
  if (!m || value === 'P' || value.endsWith('T')) return undefined;
  return Number(m[1] ?? 0) * 1440 + Number(m[2] ?? 0) * 60 + Number(m[3] ?? 0) + Number(m[4] ?? 0) / 60;
}

function badJit(message: string): ArmError {
  // The service's codes for these are UNCONFIRMED; the rules are the model's (azure-facts §3.3).
  return new ArmError(400, 'BadRequest', message);
}

function validatePorts(ports: unknown, where: string): void {
  if (!Array.isArray(ports) || ports.length === 0) throw badJit(`${where}.ports must be a non-empty array.`);
  ports.forEach((port, j) => {
    const at = `${where}.ports[${j}]`;
    if (!isRecord(port)) throw badJit(`${at} must be an object.`);
    if (
      typeof port.number !== 'number' ||
      !Number.isInteger(port.number) ||
      port.number < 0 ||
      port.number > 65535
    )
      throw badJit(`${at}.number must be a port number.`);
    if (!['TCP', 'UDP', '*'].includes(String(port.protocol)))
      throw badJit(`${at}.protocol must be TCP, UDP or *.`);
    const one = port.allowedSourceAddressPrefix !== undefined;
    const many = port.allowedSourceAddressPrefixes !== undefined;
    if (one === many)
      throw badJit(
        `${at}: exactly one of allowedSourceAddressPrefix and allowedSourceAddressPrefixes is required.`,
      );
    if (
      many &&
      (!Array.isArray(port.allowedSourceAddressPrefixes) || port.allowedSourceAddressPrefixes.length === 0)
    )
      throw badJit(`${at}.allowedSourceAddressPrefixes must be a non-empty array.`);
    const minutes =
      typeof port.maxRequestAccessDuration === 'string'
        ? durationMinutes(port.maxRequestAccessDuration)
        : undefined;
    if (minutes === undefined || minutes < 5 || minutes > 1440)
      throw badJit(`${at}.maxRequestAccessDuration must be an ISO-8601 duration between PT5M and P1D.`);
  });
}

function hasServersP2(core: EmulatorCore, subscriptionId: string): boolean {
  const vm = pricingsOf(core, subscriptionId).get('virtualmachines');
  return vm?.tier === 'Standard' && vm.subPlan === 'P2';
}

// ---------------------------------------------------------------------------------------------
// Routes
// ---------------------------------------------------------------------------------------------

const securityRoute: ArmRoute = (call: ArmCall) => {
  const { lower, segments } = call;
  if (lower[0] !== 'subscriptions' || !segments[1]) return undefined;
  const subscriptionId = segments[1];
  const at = lastProvider(lower, 'microsoft.security');
  if (at < 0) return undefined;
  requireSubscription(call, subscriptionId);
  const subScope = `/subscriptions/${subscriptionId}`;
  const resourceGroup = lower[2] === 'resourcegroups' ? segments[3] : undefined;
  const tail = lower.slice(at + 2);
  const tailRaw = segments.slice(at + 2);
  const state = call.state;

  // pricings
  if (tail[0] === 'pricings' && !resourceGroup) {
    const plans = pricingsOf(call.core, subscriptionId);
    if (tail.length === 1) {
      if (call.method !== 'GET') throw methodNotAllowed(call.method);
      authorize(call, subScope, ACTION.pricingsRead);
      return okResponse(call, 200, {
        value: [...plans.values()].map((p) => pricingToArm(subscriptionId, p)),
      });
    }
    if (tail.length !== 2) return undefined;
    const name = tailRaw[1] ?? '';
    const existing = plans.get(name.toLowerCase());
    if (call.method === 'GET') {
      authorize(call, subScope, ACTION.pricingsRead);
      if (!existing) throw new ArmError(404, 'NotFound', `Pricing '${name}' was not found.`);
      return okResponse(call, 200, pricingToArm(subscriptionId, existing));
    }
    if (call.method !== 'PUT') throw methodNotAllowed(call.method);
    authorize(call, subScope, ACTION.pricingsWrite);
    if (!existing) throw new ArmError(404, 'NotFound', `Pricing '${name}' was not found.`);
    const body = jsonBody(call);
    const p = isRecord(body.properties) ? body.properties : {};
    const tier = p.pricingTier;
    if (tier !== 'Free' && tier !== 'Standard') {
      throw new ArmError(
        400,
        'InvalidInputJson',
        `pricingTier must be 'Free' or 'Standard' (was '${String(tier)}').`,
      );
    }
    const allowed = SUB_PLANS[existing.name.toLowerCase()];
    let subPlan: string | undefined;
    if (tier === 'Standard') {
      if (p.subPlan !== undefined && p.subPlan !== null) {
        if (typeof p.subPlan !== 'string' || (allowed && !allowed.includes(p.subPlan)) || !allowed) {
          throw new ArmError(
            400,
            'InvalidInputJson',
            `Sub-plan ${JSON.stringify(p.subPlan)} is not valid for the '${existing.name}' plan.`,
          );
        }
        subPlan = p.subPlan;
      } else subPlan = allowed?.[0];
    }
    const record: PricingRecord = { name: existing.name, tier, ...(subPlan ? { subPlan } : {}) };
    plans.set(existing.name.toLowerCase(), record);
    return okResponse(call, 200, pricingToArm(subscriptionId, record));
  }

  // jitNetworkAccessPolicies: …/jitNetworkAccessPolicies, …/locations/{l}/jitNetworkAccessPolicies[/{name}]
  const jitAt =
    tail[0] === 'jitnetworkaccesspolicies'
      ? 0
      : tail[0] === 'locations' && tail[2] === 'jitnetworkaccesspolicies'
        ? 2
        : -1;
  if (jitAt >= 0) {
    const location = jitAt === 2 ? normaliseLocation(tailRaw[1] ?? '') : undefined;
    const rest = tail.slice(jitAt + 1);
    if (rest.length === 0) {
      if (call.method !== 'GET') throw methodNotAllowed(call.method);
      authorize(
        call,
        resourceGroup ? `${subScope}/resourceGroups/${resourceGroup}` : subScope,
        ACTION.jitRead,
      );
      const policies = [...state.jitPolicies.values()].filter(
        (p) =>
          same(p.subscriptionId, subscriptionId) &&
          (!resourceGroup || same(p.resourceGroup, resourceGroup)) &&
          (!location || p.location === location),
      );
      return okResponse(
        call,
        200,
        listBody(call, policies, (p) => jitPolicyId(p), jitToArm),
      );
    }
    if (rest.length !== 1 || !resourceGroup || !location) return undefined;
    const name = tailRaw[jitAt + 1] ?? '';
    const id = jitPolicyId({ subscriptionId, resourceGroup, location, name });
    const existing = state.jitPolicies.get(id.toLowerCase());
    switch (call.method) {
      case 'GET':
        authorize(call, id, ACTION.jitRead);
        if (!existing)
          throw new ArmError(404, 'NotFound', `The JIT network access policy '${name}' was not found.`);
        return okResponse(call, 200, jitToArm(existing));
      case 'DELETE':
        authorize(call, id, ACTION.jitDelete);
        state.jitPolicies.delete(id.toLowerCase());
        return okResponse(call, existing ? 200 : 204);
      case 'PUT': {
        authorize(call, id, ACTION.jitWrite);
        const body = jsonBody(call);
        const p = isRecord(body.properties) ? body.properties : undefined;
        if (!p || !Array.isArray(p.virtualMachines)) throw badJit('properties.virtualMachines is required.');
        const vms = p.virtualMachines as unknown[];
        vms.forEach((vm, i) => {
          const where = `properties.virtualMachines[${i}]`;
          if (!isRecord(vm) || typeof vm.id !== 'string') throw badJit(`${where}.id is required.`);
          const record = state.vms.get(vm.id.toLowerCase());
          if (!record) throw badJit(`${where}: the virtual machine '${vm.id}' was not found.`);
          if (record.location !== location || !same(record.resourceGroup, resourceGroup))
            throw badJit(
              `${where}: the virtual machine '${vm.id}' is in '${record.resourceGroup}'/'${record.location}', not in the policy's resource group and region.`,
            );
          validatePorts(vm.ports, where);
        });
        for (const vm of vms as Array<{ id: string }>)
          authorize(call, vmId(state.vms.get(vm.id.toLowerCase())!), ACTION.vmWrite);
        if (!hasServersP2(call.core, subscriptionId)) {
          throw new ArmError(
            400,
            'BadRequest',
            "Just-in-time VM access requires Microsoft Defender for Servers Plan 2 on the subscription (the service's wording is UNCONFIRMED).",
          );
        }
        const record: JitPolicyRecord = {
          subscriptionId: subscriptionId.toLowerCase(),
          resourceGroup: existing?.resourceGroup ?? resourceGroup,
          location,
          name: existing?.name ?? name,
          virtualMachines: structuredClone(vms as Array<Record<string, unknown>>),
          requests: Array.isArray(p.requests)
            ? structuredClone(p.requests as Array<Record<string, unknown>>)
            : (existing?.requests ?? []),
        };
        state.jitPolicies.set(id.toLowerCase(), record);
        return okResponse(call, 200, jitToArm(record));
      }
      default:
        throw methodNotAllowed(call.method);
    }
  }

  // autoProvisioningSettings
  if (tail[0] === 'autoprovisioningsettings' && !resourceGroup) {
    const render = (name: string, value: 'On' | 'Off') => ({
      id: `${subScope}/providers/Microsoft.Security/autoProvisioningSettings/${name}`,
      name,
      type: 'Microsoft.Security/autoProvisioningSettings',
      properties: { autoProvision: value },
    });
    const current = state.autoProvisioning.get(subscriptionId.toLowerCase()) ?? 'Off';
    if (tail.length === 1) {
      if (call.method !== 'GET') throw methodNotAllowed(call.method);
      authorize(call, subScope, ACTION.autoProvisioningRead);
      return okResponse(call, 200, { value: [render('default', current)] });
    }
    if (tail.length !== 2) return undefined;
    if (tail[1] !== 'default')
      throw new ArmError(404, 'NotFound', `Auto-provisioning setting '${tailRaw[1]}' was not found.`);
    if (call.method === 'GET') {
      authorize(call, subScope, ACTION.autoProvisioningRead);
      return okResponse(call, 200, render('default', current));
    }
    if (call.method !== 'PUT') throw methodNotAllowed(call.method);
    authorize(call, subScope, ACTION.autoProvisioningWrite);
    const body = jsonBody(call);
    const value = isRecord(body.properties) ? body.properties.autoProvision : undefined;
    if (value !== 'On' && value !== 'Off')
      throw new ArmError(400, 'InvalidInputJson', "autoProvision must be 'On' or 'Off'.");
    state.autoProvisioning.set(subscriptionId.toLowerCase(), value);
    return okResponse(call, 200, render('default', value));
  }

  // alerts: list by subscription (or resource group); get by region
  if (tail.length === 1 && tail[0] === 'alerts') {
    if (call.method !== 'GET') throw methodNotAllowed(call.method);
    authorize(
      call,
      resourceGroup ? `${subScope}/resourceGroups/${resourceGroup}` : subScope,
      ACTION.alertsRead,
    );
    const alerts = state.alerts.filter(
      (a) =>
        same(a.subscriptionId, subscriptionId) &&
        (!resourceGroup || same(a.resourceGroup ?? '', resourceGroup)),
    );
    return okResponse(
      call,
      200,
      listBody(call, alerts, (a) => a.name, alertToArm),
    );
  }
  if (tail.length === 4 && tail[0] === 'locations' && tail[2] === 'alerts' && call.method === 'GET') {
    authorize(call, subScope, ACTION.alertsRead);
    const location = normaliseLocation(tailRaw[1] ?? '');
    const alert = state.alerts.find(
      (a) =>
        same(a.subscriptionId, subscriptionId) &&
        a.location === location &&
        same(a.name, tailRaw[3] ?? '') &&
        (!resourceGroup || same(a.resourceGroup ?? '', resourceGroup)),
    );
    if (!alert) throw new ArmError(404, 'NotFound', `Alert '${tailRaw[3]}' was not found.`);
    return okResponse(call, 200, alertToArm(alert));
  }

  // locations: the subscription's Defender home region
  if (tail.length === 1 && tail[0] === 'locations' && !resourceGroup) {
    if (call.method !== 'GET') throw methodNotAllowed(call.method);
    authorize(call, subScope, ACTION.locationsRead);
    return okResponse(call, 200, {
      value: [
        {
          id: `${subScope}/providers/Microsoft.Security/locations/centralus`,
          name: 'centralus',
          type: 'Microsoft.Security/locations',
          properties: { homeRegionName: 'centralus' },
        },
      ],
    });
  }
  return undefined;
};

/** The handler arm.ts calls for every management.azure.com path outside Microsoft.KeyVault. */
export function createPostureArmService(core: EmulatorCore): ServiceHandler {
  const routes = [securityRoute, ...RESOURCE_ROUTES];
  return (req) => serveArm(core, routes, req);
}

/**
 * Admin API (`POST /posture` with `{kind, ...spec}`): seeds one resource through the seed function of
 * its kind, so `npm run local -- --serve` can be given VMs, plans, VNets, storage accounts and alerts.
 */
export function seedPosture(core: EmulatorCore, json: Record<string, unknown>): unknown {
  const spec = json as never;
  switch (json.kind) {
    case 'subscription':
      seedSubscription(core, String(json.subscriptionId));
      return { ok: true };
    case 'pricing':
      return seedPricing(core, spec);
    case 'jitPolicy':
      return seedJitPolicy(core, spec);
    case 'autoProvisioning':
      seedAutoProvisioning(core, spec);
      return { ok: true };
    case 'alert':
      return seedSecurityAlert(core, spec);
    case 'virtualMachine':
      return seedVirtualMachine(core, spec);
    case 'virtualNetwork':
      return seedVirtualNetwork(core, spec);
    case 'networkWatcher':
      return seedNetworkWatcher(core, spec);
    case 'storageAccount':
      return seedStorageAccount(core, spec);
    default:
      throw new Error(
        'kind must be one of subscription, pricing, jitPolicy, autoProvisioning, alert, virtualMachine, virtualNetwork, networkWatcher, storageAccount',
      );
  }
}
