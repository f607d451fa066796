/**
 * Azure Resource Manager outside Microsoft.KeyVault, for what kvguard's posture reconciliation reads
 * and writes (design §3): Microsoft.Compute virtual machines (list), Microsoft.Insights diagnostic
 * settings on a vault, Microsoft.Authorization policy assignments, Microsoft.Network virtual
 * networks, network watchers and flow logs. Microsoft.Security lives in security.ts, which also
 * builds the handler arm.ts calls as its `fallback`.
 *
 * What ARM itself does around each provider is emulated here as in arm.ts: bearer authentication
 * (401 + WWW-Authenticate), `api-version` required, RBAC (403 AuthorizationFailed, `core.isAuthorized`),
 * 404 for an unknown subscription, paging with `nextLink` and `$skiptoken`. Paths and accepted
 * statuses are those of the SDK versions kvguard uses (@azure/arm-compute 24.1.0, @azure/arm-monitor
 * 7.0.0, @azure/arm-policy 6.0.0, @azure/arm-network 36.0.0): every api-version is accepted.
 *
 * Behaviour taken from the service (sources in the comments where the wording is copied):
 * - a second diagnostic setting that sends the same category to the same sink is refused with 409
 *   `Conflict` "Data sink '…' is already used in diagnostic setting '…' for category '…'. Data sinks
 *   can't be reused in different settings on the same category for the same resource." (the live
 *   service's answer, quoted in Azure/terraform-azurerm-avm-ptn-aiml-landing-zone#19 and
 *   Azure/bicep-registry-modules#3407; the body is `{code, message}` without an `error` wrapper);
 * - a new NSG flow log is refused with code `NsgFlowLogCreationBlocked` (creation blocked since
 *   30 June 2025; quoted in Azure/bicep-registry-modules#6049; the status, 400, is UNCONFIRMED);
 * - a policy assignment PUT answers 201 (the only status @azure/arm-policy 6.0.0 accepts).
 *
 * State lives beside the core (a WeakMap), so the same seed functions serve the in-process tests,
 * the admin API and a FakeCore; `resetArmResources(core)` empties it with the emulator's reset.
 */
import { randomUUID } from 'node:crypto';
import type { EmuRequest, EmuResponse, EmulatorCore, TokenClaims } from './types';

export const ARM_HOST = 'management.azure.com';
const ARM_AUDIENCES = [
  'https://management.azure.com',
  'https://management.azure.com/',
  'https://management.core.windows.net/',
];
export const DEFAULT_REGION = 'westeurope';

// ---------------------------------------------------------------------------------------------
// State
// ---------------------------------------------------------------------------------------------

export interface VmRecord {
  subscriptionId: string;
  resourceGroup: string;
  name: string;
  location: string;
  tags: Record<string, string>;
  osType: 'Linux' | 'Windows';
  vmId: string;
}

export interface DiagnosticSettingRecord {
  name: string;
  resourceId: string;
  /** The body's `properties` as last written (storageAccountId, eventHub*, workspaceId, logs, …). */
  properties: Record<string, unknown>;
}

export interface PolicyAssignmentRecord {
  scope: string;
  name: string;
  location?: string;
  properties: Record<string, unknown>;
}

export interface VnetRecord {
  subscriptionId: string;
  resourceGroup: string;
  name: string;
  location: string;
  tags: Record<string, string>;
  addressPrefixes: string[];
  resourceGuid: string;
}

export interface NetworkWatcherRecord {
  subscriptionId: string;
  resourceGroup: string;
  name: string;
  location: string;
}

export interface FlowLogRecord {
  subscriptionId: string;
  resourceGroup: string;
  networkWatcher: string;
  name: string;
  location: string;
  properties: Record<string, unknown>;
}

export interface StorageAccountRecord {
  subscriptionId: string;
  resourceGroup: string;
  name: string;
  location: string;
}

export interface PricingRecord {
  name: string;
  tier: 'Free' | 'Standard';
  subPlan?: string;
}

export interface JitPolicyRecord {
  subscriptionId: string;
  resourceGroup: string;
  location: string;
  name: string;
  virtualMachines: Array<Record<string, unknown>>;
  requests: Array<Record<string, unknown>>;
}

export interface SecurityAlertRecord {
  subscriptionId: string;
  resourceGroup?: string;
  location: string;
  name: string;
  properties: Record<string, unknown>;
}

export interface ArmResourcesState {
  /** Subscriptions known besides the emulator's own and those holding a vault. */
  subscriptions: Set<string>;
  /** Items per page of the lists served here. */
  pageSize: number;
  vms: Map<string, VmRecord>;
  /** Keyed by the lower-cased resource id the settings belong to, then by the lower-cased name. */
  diagnosticSettings: Map<string, Map<string, DiagnosticSettingRecord>>;
  policyAssignments: Map<string, PolicyAssignmentRecord>;
  vnets: Map<string, VnetRecord>;
  networkWatchers: Map<string, NetworkWatcherRecord>;
  flowLogs: Map<string, FlowLogRecord>;
  storageAccounts: Map<string, StorageAccountRecord>;
  /** Microsoft.Security (security.ts): pricings per subscription, keyed by the lower-cased plan name. */
  pricings: Map<string, Map<string, PricingRecord>>;
  jitPolicies: Map<string, JitPolicyRecord>;
  autoProvisioning: Map<string, 'On' | 'Off'>;
  alerts: SecurityAlertRecord[];
}

const states = new WeakMap<EmulatorCore, ArmResourcesState>();

function emptyState(): ArmResourcesState {
  return {
    subscriptions: new Set(),
    pageSize: 25,
    vms: new Map(),
    diagnosticSettings: new Map(),
    policyAssignments: new Map(),
    vnets: new Map(),
    networkWatchers: new Map(),
    flowLogs: new Map(),
    storageAccounts: new Map(),
    pricings: new Map(),
    jitPolicies: new Map(),
    autoProvisioning: new Map(),
    alerts: [],
  };
}

/** The state of the resources served here, created on first use. */
export function armResources(core: EmulatorCore): ArmResourcesState {
  let state = states.get(core);
  if (!state) {
    state = emptyState();
    states.set(core, state);
  }
  return state;
}

/** Empties everything seeded or written here (the emulator's `reset`). */
export function resetArmResources(core: EmulatorCore): void {
  states.set(core, emptyState());
}

// ---------------------------------------------------------------------------------------------
// Ids
// ---------------------------------------------------------------------------------------------

export const same = (a: string, b: string) => a.toLowerCase() === b.toLowerCase();
export const normaliseLocation = (location: string) => location.replace(/\s+/g, '').toLowerCase();

export function vmId(v: Pick<VmRecord, 'subscriptionId' | 'resourceGroup' | 'name'>): string {
  return `/subscriptions/${v.subscriptionId}/resourceGroups/${v.resourceGroup}/providers/Microsoft.Compute/virtualMachines/${v.name}`;
}
export function vnetId(v: Pick<VnetRecord, 'subscriptionId' | 'resourceGroup' | 'name'>): string {
  return `/subscriptions/${v.subscriptionId}/resourceGroups/${v.resourceGroup}/providers/Microsoft.Network/virtualNetworks/${v.name}`;
}
export function networkWatcherId(w: Pick<NetworkWatcherRecord, 'subscriptionId' | 'resourceGroup' | 'name'>) {
  return `/subscriptions/${w.subscriptionId}/resourceGroups/${w.resourceGroup}/providers/Microsoft.Network/networkWatchers/${w.name}`;
}
export function flowLogId(
  f: Pick<FlowLogRecord, 'subscriptionId' | 'resourceGroup' | 'networkWatcher' | 'name'>,
) {
  return `${networkWatcherId({ subscriptionId: f.subscriptionId, resourceGroup: f.resourceGroup, name: f.networkWatcher })}/flowLogs/${f.name}`;
}
export function storageAccountId(s: Pick<StorageAccountRecord, 'subscriptionId' | 'resourceGroup' | 'name'>) {
  return `/subscriptions/${s.subscriptionId}/resourceGroups/${s.resourceGroup}/providers/Microsoft.Storage/storageAccounts/${s.name}`;
}

// ---------------------------------------------------------------------------------------------
// ARM plumbing shared with security.ts
// ---------------------------------------------------------------------------------------------

/** A failure that ends the request with an ARM error body (`{error:{code,message}}` unless `bare`). */
export class ArmError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly headers: Record<string, string> = {},
    /** Some resource providers (Microsoft.Insights) answer `{code, message}` without the wrapper. */
    readonly bare = false,
  ) {
    super(message);
  }
}

export interface ArmCall {
  req: EmuRequest;
  core: EmulatorCore;
  state: ArmResourcesState;
  claims: TokenClaims;
  method: string;
  apiVersion: string;
  requestId: string;
  /** Path segments, percent-decoded, original case. */
  segments: string[];
  /** The same, lower-cased. */
  lower: string[];
}

export type ArmRoute = (call: ArmCall) => EmuResponse | undefined;

function headerValue(req: EmuRequest, name: string): string | undefined {
  const value = req.headers[name];
  const first = Array.isArray(value) ? value[0] : value;
  return first && first.length > 0 ? first : undefined;
}

function responseHeaders(requestId: string, correlationId: string): Record<string, string> {
  return {
    'cache-control': 'no-cache',
    'x-ms-request-id': requestId,
    'x-ms-correlation-request-id': correlationId,
  };
}

export function armErrorResponse(
  failure: ArmError,
  ids: { requestId: string; correlationId: string },
  callerOid?: string,
): EmuResponse {
  return {
    status: failure.status,
    headers: { ...responseHeaders(ids.requestId, ids.correlationId), ...failure.headers },
    body: failure.bare
      ? { code: failure.code, message: failure.message }
      : { error: { code: failure.code, message: failure.message } },
    callerOid,
  };
}

export function okResponse(call: ArmCall, status: number, body?: unknown): EmuResponse {
  return {
    status,
    headers: responseHeaders(
      call.requestId,
      headerValue(call.req, 'x-ms-correlation-request-id') ?? call.requestId,
    ),
    ...(body === undefined ? {} : { body }),
    callerOid: call.claims.oid,
  };
}

/** ARM's 403 for a caller without the action at the scope (arm.ts words it the same way). */
export function authorize(call: ArmCall, scope: string, action: string): void {
  if (call.core.isAuthorized(call.claims.oid, scope, action)) return;
  const client = call.claims.upn ?? call.claims.appid ?? call.claims.oid;
  throw new ArmError(
    403,
    'AuthorizationFailed',
    `The client '${client}' with object id '${call.claims.oid}' does not have authorization to perform action '${action}' over scope '${scope}' or the scope is invalid. If access was recently granted, please refresh your credentials.`,
  );
}

export function knownSubscription(core: EmulatorCore, subscriptionId: string): boolean {
  if (same(subscriptionId, core.subscriptionId)) return true;
  if ([...armResources(core).subscriptions].some((s) => same(s, subscriptionId))) return true;
  for (const v of core.vaults.values()) if (same(v.subscriptionId, subscriptionId)) return true;
  return false;
}

export function requireSubscription(call: ArmCall, subscriptionId: string): void {
  if (!knownSubscription(call.core, subscriptionId)) {
    throw new ArmError(
      404,
      'SubscriptionNotFound',
      `The subscription '${subscriptionId}' could not be found.`,
    );
  }
}

export function methodNotAllowed(method: string): ArmError {
  return new ArmError(
    405,
    'MethodNotAllowed',
    `The requested resource does not support http method '${method}'.`,
  );
}

export function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** The JSON body of a PUT, or 400 as ARM answers unreadable content. */
export function jsonBody(call: ArmCall): Record<string, unknown> {
  let parsed: unknown;
  try {
    parsed = JSON.parse(call.req.body.toString('utf8') || 'null');
  } catch {
    throw new ArmError(
      400,
      'InvalidRequestContent',
      'The request content was invalid and could not be deserialized.',
    );
  }
  if (!isRecord(parsed))
    throw new ArmError(400, 'InvalidRequestContent', 'The request content must be a JSON object.');
  return parsed;
}

/** One page of `items` (ordered by key); `$skiptoken` names the last key of the previous page. */
export function page<T>(
  call: ArmCall,
  items: T[],
  keyOf: (t: T) => string,
): { value: T[]; nextLink?: string } {
  const sorted = [...items].sort((a, b) => keyOf(a).toLowerCase().localeCompare(keyOf(b).toLowerCase()));
  const token = call.req.query.get('$skiptoken');
  const after = token ? Buffer.from(token, 'base64url').toString('utf8').toLowerCase() : undefined;
  const rest = after === undefined ? sorted : sorted.filter((t) => keyOf(t).toLowerCase() > after);
  const size = call.state.pageSize;
  const value = rest.slice(0, size);
  const last = value[value.length - 1];
  if (rest.length <= size || last === undefined) return { value };
  const token64 = Buffer.from(keyOf(last), 'utf8').toString('base64url');
  return {
    value,
    nextLink: `https://${ARM_HOST}${call.req.path}?api-version=${encodeURIComponent(call.apiVersion)}&%24skiptoken=${token64}`,
  };
}

export function listBody<T>(call: ArmCall, items: T[], keyOf: (t: T) => string, render: (t: T) => unknown) {
  const p = page(call, items, keyOf);
  return { value: p.value.map(render), ...(p.nextLink ? { nextLink: p.nextLink } : {}) };
}

/**
 * The ARM front door: authentication, api-version, then the first route that answers. A route
 * returning undefined means "not mine"; nothing answering is ARM's 404 for an unknown type.
 */
export function serveArm(core: EmulatorCore, routes: ArmRoute[], req: EmuRequest): EmuResponse {
  const requestId = randomUUID();
  const correlationId = headerValue(req, 'x-ms-correlation-request-id') ?? randomUUID();
  const ids = { requestId, correlationId };
  const challenge = (description: string) => ({
    'www-authenticate': `Bearer authorization_uri="https://login.windows.net/", error="invalid_token", error_description="${description}"`,
  });
  const authorization = headerValue(req, 'authorization');
  if (!authorization || !/^Bearer\s+\S+/i.test(authorization)) {
    return armErrorResponse(
      new ArmError(
        401,
        'AuthenticationFailed',
        "Authentication failed. The 'Authorization' header is missing.",
        challenge("The authentication failed because of missing 'Authorization' header."),
      ),
      ids,
    );
  }
  const claims = core.verifyBearer(authorization, ARM_AUDIENCES);
  if (!claims) {
    return armErrorResponse(
      new ArmError(
        401,
        'InvalidAuthenticationToken',
        'The access token is invalid.',
        challenge('The access token is invalid.'),
      ),
      ids,
    );
  }
  const apiVersion = req.query.get('api-version');
  if (!apiVersion) {
    return armErrorResponse(
      new ArmError(
        400,
        'MissingApiVersionParameter',
        'The api-version query parameter (?api-version=) is required for all requests.',
      ),
      ids,
      claims.oid,
    );
  }
  let segments: string[];
  try {
    segments = req.path.split('/').filter(Boolean).map(decodeURIComponent);
  } catch {
    return armErrorResponse(
      new ArmError(400, 'BadRequest', 'The request path is not valid.'),
      ids,
      claims.oid,
    );
  }
  const call: ArmCall = {
    req,
    core,
    state: armResources(core),
    claims,
    method: req.method.toUpperCase(),
    apiVersion,
    requestId,
    segments,
    lower: segments.map((s) => s.toLowerCase()),
  };
  try {
    for (const route of routes) {
      const response = route(call);
      if (response) return response;
    }
    throw new ArmError(404, 'NotFound', `The emulated ARM has no route for '${req.path}'.`);
  } catch (error) {
    if (error instanceof ArmError) return armErrorResponse(error, ids, claims.oid);
    throw error;
  }
}

/** Where `providers/<namespace>` last appears (the provider that serves the path), or -1. */
export function lastProvider(lower: string[], namespace: string): number {
  for (let i = lower.length - 2; i >= 0; i--) {
    if (lower[i] === 'providers') return lower[i + 1] === namespace.toLowerCase() ? i : -1;
  }
  return -1;
}

// ---------------------------------------------------------------------------------------------
// Seeding
// ---------------------------------------------------------------------------------------------

export function seedSubscription(core: EmulatorCore, subscriptionId: string): void {
  armResources(core).subscriptions.add(subscriptionId.toLowerCase());
}

export interface VmSpec {
  name: string;
  subscriptionId?: string;
  resourceGroup?: string;
  location?: string;
  tags?: Record<string, string>;
  osType?: 'Linux' | 'Windows';
}

export function seedVirtualMachine(core: EmulatorCore, spec: VmSpec): VmRecord {
  const record: VmRecord = {
    subscriptionId: (spec.subscriptionId ?? core.subscriptionId).toLowerCase(),
    resourceGroup: spec.resourceGroup ?? 'rg-vms',
    name: spec.name,
    location: normaliseLocation(spec.location ?? DEFAULT_REGION),
    tags: { ...(spec.tags ?? {}) },
    osType: spec.osType ?? 'Linux',
    vmId: randomUUID(),
  };
  seedSubscription(core, record.subscriptionId);
  armResources(core).vms.set(vmId(record).toLowerCase(), record);
  return record;
}

export interface StorageAccountSpec {
  name: string;
  subscriptionId?: string;
  resourceGroup?: string;
  location?: string;
}

export function seedStorageAccount(
  core: EmulatorCore,
  spec: StorageAccountSpec,
): StorageAccountRecord & { id: string } {
  const record: StorageAccountRecord = {
    subscriptionId: (spec.subscriptionId ?? core.subscriptionId).toLowerCase(),
    resourceGroup: spec.resourceGroup ?? 'rg-logs',
    name: spec.name,
    location: normaliseLocation(spec.location ?? DEFAULT_REGION),
  };
  seedSubscription(core, record.subscriptionId);
  const id = storageAccountId(record);
  armResources(core).storageAccounts.set(id.toLowerCase(), record);
  return { ...record, id };
}

export interface NetworkWatcherSpec {
  subscriptionId?: string;
  location?: string;
  /** Azure's defaults when it creates the watcher itself: `NetworkWatcherRG`, `NetworkWatcher_<region>`. */
  resourceGroup?: string;
  name?: string;
}

export function seedNetworkWatcher(
  core: EmulatorCore,
  spec: NetworkWatcherSpec = {},
): NetworkWatcherRecord & { id: string } {
  const location = normaliseLocation(spec.location ?? DEFAULT_REGION);
  const record: NetworkWatcherRecord = {
    subscriptionId: (spec.subscriptionId ?? core.subscriptionId).toLowerCase(),
    resourceGroup: spec.resourceGroup ?? 'NetworkWatcherRG',
    name: spec.name ?? `NetworkWatcher_${location}`,
    location,
  };
  seedSubscription(core, record.subscriptionId);
  const id = networkWatcherId(record);
  armResources(core).networkWatchers.set(id.toLowerCase(), record);
  return { ...record, id };
}

export interface VnetSpec {
  name: string;
  subscriptionId?: string;
  resourceGroup?: string;
  location?: string;
  tags?: Record<string, string>;
  addressPrefixes?: string[];
  /** Azure creates the region's network watcher with the first VNet there; default true. */
  networkWatcher?: boolean;
}

export function seedVirtualNetwork(core: EmulatorCore, spec: VnetSpec): VnetRecord & { id: string } {
  const record: VnetRecord = {
    subscriptionId: (spec.subscriptionId ?? core.subscriptionId).toLowerCase(),
    resourceGroup: spec.resourceGroup ?? 'rg-network',
    name: spec.name,
    location: normaliseLocation(spec.location ?? DEFAULT_REGION),
    tags: { ...(spec.tags ?? {}) },
    addressPrefixes: spec.addressPrefixes ?? ['10.0.0.0/16'],
    resourceGuid: randomUUID(),
  };
  const state = armResources(core);
  seedSubscription(core, record.subscriptionId);
  const id = vnetId(record);
  state.vnets.set(id.toLowerCase(), record);
  const hasWatcher = [...state.networkWatchers.values()].some(
    (w) => same(w.subscriptionId, record.subscriptionId) && w.location === record.location,
  );
  if (spec.networkWatcher !== false && !hasWatcher) {
    seedNetworkWatcher(core, { subscriptionId: record.subscriptionId, location: record.location });
  }
  return { ...record, id };
}

export interface FlowLogSpec {
  networkWatcherId: string;
  name: string;
  targetResourceId: string;
  storageId: string;
  enabled?: boolean;
  retentionDays?: number;
}

export function seedFlowLog(core: EmulatorCore, spec: FlowLogSpec): FlowLogRecord & { id: string } {
  const watcher = armResources(core).networkWatchers.get(spec.networkWatcherId.toLowerCase());
  if (!watcher) throw new Error(`no network watcher ${spec.networkWatcherId}`);
  const record: FlowLogRecord = {
    subscriptionId: watcher.subscriptionId,
    resourceGroup: watcher.resourceGroup,
    networkWatcher: watcher.name,
    name: spec.name,
    location: watcher.location,
    properties: {
      targetResourceId: spec.targetResourceId,
      storageId: spec.storageId,
      enabled: spec.enabled ?? true,
      retentionPolicy: { days: spec.retentionDays ?? 0, enabled: (spec.retentionDays ?? 0) > 0 },
      format: { type: 'JSON', version: 2 },
    },
  };
  const id = flowLogId(record);
  armResources(core).flowLogs.set(id.toLowerCase(), record);
  return { ...record, id };
}

export function seedDiagnosticSetting(
  core: EmulatorCore,
  resourceId: string,
  name: string,
  properties: Record<string, unknown>,
): DiagnosticSettingRecord {
  const state = armResources(core);
  const key = resourceId.toLowerCase();
  let settings = state.diagnosticSettings.get(key);
  if (!settings) {
    settings = new Map();
    state.diagnosticSettings.set(key, settings);
  }
  const record = { name, resourceId, properties: structuredClone(properties) };
  settings.set(name.toLowerCase(), record);
  return record;
}

export function seedPolicyAssignment(
  core: EmulatorCore,
  scope: string,
  name: string,
  properties: Record<string, unknown>,
): PolicyAssignmentRecord {
  const record = { scope: scope.replace(/\/+$/, ''), name, properties: structuredClone(properties) };
  armResources(core).policyAssignments.set(policyAssignmentId(record.scope, name).toLowerCase(), record);
  return record;
}

// ---------------------------------------------------------------------------------------------
// Microsoft.Compute/virtualMachines
// ---------------------------------------------------------------------------------------------

const COMPUTE = {
  read: 'Microsoft.Compute/virtualMachines/read',
  write: 'Microsoft.Compute/virtualMachines/write',
};

export function vmToArm(v: VmRecord): Record<string, unknown> {
  return {
    id: vmId(v),
    name: v.name,
    type: 'Microsoft.Compute/virtualMachines',
    location: v.location,
    tags: { ...v.tags },
    properties: {
      vmId: v.vmId,
      hardwareProfile: { vmSize: 'Standard_B2s' },
      storageProfile: { osDisk: { osType: v.osType, name: `${v.name}_OsDisk`, createOption: 'FromImage' } },
      provisioningState: 'Succeeded',
    },
  };
}

const computeRoute: ArmRoute = (call) => {
  const { lower, segments } = call;
  if (lower[0] !== 'subscriptions' || !segments[1]) return undefined;
  const subscriptionId = segments[1];
  const at = lastProvider(lower, 'microsoft.compute');
  if (at < 0 || lower[at + 2] !== 'virtualmachines') return undefined;
  requireSubscription(call, subscriptionId);
  const resourceGroup = lower[2] === 'resourcegroups' ? segments[3] : undefined;
  const tail = lower.slice(at + 2);
  const vms = [...call.state.vms.values()].filter(
    (v) => same(v.subscriptionId, subscriptionId) && (!resourceGroup || same(v.resourceGroup, resourceGroup)),
  );
  if (tail.length === 1) {
    if (call.method !== 'GET') throw methodNotAllowed(call.method);
    const scope = resourceGroup
      ? `/subscriptions/${subscriptionId}/resourceGroups/${resourceGroup}`
      : `/subscriptions/${subscriptionId}`;
    // ARM filters a collection read by what the caller may read (arm.ts does the same for vaults); a
    // grant at the collection's scope covers every item in it.
    const visible = call.core.isAuthorized(call.claims.oid, scope, COMPUTE.read)
      ? vms
      : vms.filter((v) => call.core.isAuthorized(call.claims.oid, vmId(v), COMPUTE.read));
    if (visible.length === 0) authorize(call, scope, COMPUTE.read);
    return okResponse(
      call,
      200,
      listBody(call, visible, (v) => vmId(v), vmToArm),
    );
  }
  if (tail.length === 2 && resourceGroup) {
    if (call.method !== 'GET') throw methodNotAllowed(call.method);
    const id = `/subscriptions/${subscriptionId}/resourceGroups/${resourceGroup}/providers/Microsoft.Compute/virtualMachines/${segments[at + 3]}`;
    authorize(call, id, COMPUTE.read);
    const vm = call.state.vms.get(id.toLowerCase());
    if (!vm) {
      throw new ArmError(
        404,
        'ResourceNotFound',
        `The Resource 'Microsoft.Compute/virtualMachines/${segments[at + 3]}' under resource group '${resourceGroup}' was not found. For more details please go to https://aka.ms/ARMResourceNotFoundFix`,
      );
    }
    return okResponse(call, 200, vmToArm(vm));
  }
  return undefined;
};

// ---------------------------------------------------------------------------------------------
// Microsoft.Insights/diagnosticSettings (on a Key Vault)
// ---------------------------------------------------------------------------------------------

const INSIGHTS = {
  read: 'Microsoft.Insights/diagnosticSettings/read',
  write: 'Microsoft.Insights/diagnosticSettings/write',
};
/** Key Vault's log categories (AuditEvent, AzurePolicyEvaluationDetails) and category groups. */
const VAULT_CATEGORIES = ['auditevent', 'azurepolicyevaluationdetails'];
const VAULT_CATEGORY_GROUPS = ['audit', 'alllogs'];
/** Azure allows at most five diagnostic settings per resource. */
const MAX_SETTINGS = 5;

function settingToArm(s: DiagnosticSettingRecord): Record<string, unknown> {
  return {
    id: `${s.resourceId}/providers/microsoft.insights/diagnosticSettings/${s.name}`,
    name: s.name,
    type: 'Microsoft.Insights/diagnosticSettings',
    properties: structuredClone(s.properties),
  };
}

/** The sinks a setting sends to, as the strings Azure names them in its conflict message. */
function sinksOf(p: Record<string, unknown>): string[] {
  const sinks: string[] = [];
  if (typeof p.workspaceId === 'string' && p.workspaceId) sinks.push(p.workspaceId);
  if (typeof p.storageAccountId === 'string' && p.storageAccountId) sinks.push(p.storageAccountId);
  if (typeof p.eventHubAuthorizationRuleId === 'string' && p.eventHubAuthorizationRuleId) {
    // Whether two hubs of one namespace count as one sink is UNCONFIRMED; here the hub name counts.
    sinks.push(
      typeof p.eventHubName === 'string' && p.eventHubName
        ? `${p.eventHubAuthorizationRuleId}|${p.eventHubName}`
        : p.eventHubAuthorizationRuleId,
    );
  }
  return sinks;
}

/** The log categories a setting enables (category groups expand to the vault's categories). */
function enabledCategories(p: Record<string, unknown>): string[] {
  const logs = Array.isArray(p.logs) ? p.logs : [];
  const out = new Set<string>();
  for (const l of logs) {
    if (!isRecord(l) || l.enabled !== true) continue;
    if (typeof l.category === 'string') out.add(l.category.toLowerCase());
    if (typeof l.categoryGroup === 'string') {
      const group = l.categoryGroup.toLowerCase();
      if (group === 'audit') out.add('auditevent');
      if (group === 'alllogs') VAULT_CATEGORIES.forEach((c) => out.add(c));
    }
  }
  return [...out];
}

function validateSetting(p: Record<string, unknown>): void {
  const logs = p.logs;
  if (logs !== undefined && !Array.isArray(logs))
    throw new ArmError(400, 'BadRequest', "'logs' must be an array.", {}, true);
  for (const l of (logs as unknown[] | undefined) ?? []) {
    if (!isRecord(l)) throw new ArmError(400, 'BadRequest', 'Each log setting must be an object.', {}, true);
    if (typeof l.category === 'string' && !VAULT_CATEGORIES.includes(l.category.toLowerCase())) {
      throw new ArmError(400, 'BadRequest', `Category '${l.category}' is not supported.`, {}, true);
    }
    if (
      typeof l.categoryGroup === 'string' &&
      !VAULT_CATEGORY_GROUPS.includes(l.categoryGroup.toLowerCase())
    ) {
      throw new ArmError(
        400,
        'BadRequest',
        `Category group '${l.categoryGroup}' is not supported.`,
        {},
        true,
      );
    }
  }
  if (sinksOf(p).length === 0) {
    // Wording UNCONFIRMED.
    throw new ArmError(
      400,
      'BadRequest',
      'A diagnostic setting needs at least one destination (storage account, event hub or workspace).',
      {},
      true,
    );
  }
  const type = p.logAnalyticsDestinationType;
  if (type !== undefined && type !== null && type !== 'Dedicated' && type !== 'AzureDiagnostics') {
    throw new ArmError(
      400,
      'BadRequest',
      `${JSON.stringify(type)} is not a valid logAnalyticsDestinationType.`,
      {},
      true,
    );
  }
}

const insightsRoute: ArmRoute = (call) => {
  const { lower, segments } = call;
  const at = lastProvider(lower, 'microsoft.insights');
  if (at < 0 || lower[at + 2] !== 'diagnosticsettings') return undefined;
  const resourceId = `/${segments.slice(0, at).join('/')}`;
  const vaultMatch =
    /^\/subscriptions\/([^/]+)\/resourceGroups\/([^/]+)\/providers\/Microsoft\.KeyVault\/vaults\/([^/]+)$/i.exec(
      resourceId,
    );
  if (!vaultMatch) {
    throw new ArmError(
      404,
      'NotFound',
      `The emulated diagnostic settings serve Key Vault vaults only ('${resourceId}').`,
    );
  }
  const [, subscriptionId = '', resourceGroup = '', vaultName = ''] = vaultMatch;
  requireSubscription(call, subscriptionId);
  const tail = lower.slice(at + 2);
  const write = call.method === 'PUT' || call.method === 'DELETE';
  authorize(call, resourceId, write ? INSIGHTS.write : INSIGHTS.read);
  const vault = [...call.core.vaults.values()].find(
    (v) =>
      !v.deleted &&
      same(v.name, vaultName) &&
      same(v.subscriptionId, subscriptionId) &&
      same(v.resourceGroup, resourceGroup),
  );
  if (!vault) {
    throw new ArmError(
      404,
      'ResourceNotFound',
      `The Resource 'Microsoft.KeyVault/vaults/${vaultName}' under resource group '${resourceGroup}' was not found. For more details please go to https://aka.ms/ARMResourceNotFoundFix`,
    );
  }
  const key = resourceId.toLowerCase();
  const settings = call.state.diagnosticSettings.get(key) ?? new Map<string, DiagnosticSettingRecord>();
  if (tail.length === 1) {
    if (call.method !== 'GET') throw methodNotAllowed(call.method);
    // Not paged: DiagnosticSettingsResourceCollection has `value` only.
    return okResponse(call, 200, { value: [...settings.values()].map(settingToArm) });
  }
  if (tail.length !== 2) return undefined;
  const name = segments[at + 3] ?? '';
  const existing = settings.get(name.toLowerCase());
  switch (call.method) {
    case 'GET':
      if (!existing) {
        throw new ArmError(
          404,
          'ResourceNotFound',
          `The diagnostic setting '${name}' doesn't exist.`,
          {},
          true,
        );
      }
      return okResponse(call, 200, settingToArm(existing));
    case 'DELETE':
      settings.delete(name.toLowerCase());
      return okResponse(call, 200);
    case 'PUT': {
      const body = jsonBody(call);
      const properties = isRecord(body.properties) ? body.properties : {};
      validateSetting(properties);
      if (!existing && settings.size >= MAX_SETTINGS) {
        throw new ArmError(
          400,
          'BadRequest',
          `Resource '${resourceId}' already has ${MAX_SETTINGS} diagnostic settings.`,
          {},
          true,
        );
      }
      const categories = enabledCategories(properties);
      const sinks = sinksOf(properties);
      for (const other of settings.values()) {
        if (same(other.name, name)) continue;
        const otherCategories = enabledCategories(other.properties);
        const otherSinks = sinksOf(other.properties);
        for (const category of categories) {
          if (!otherCategories.includes(category)) continue;
          const shared = sinks.find((s) => otherSinks.some((o) => same(o, s)));
          if (shared) {
            const categoryName = category === 'auditevent' ? 'AuditEvent' : 'AzurePolicyEvaluationDetails';
            throw new ArmError(
              409,
              'Conflict',
              `Data sink '${shared.split('|')[0]}' is already used in diagnostic setting '${other.name}' for category '${categoryName}'. Data sinks can't be reused in different settings on the same category for the same resource.`,
              {},
              true,
            );
          }
        }
      }
      const record = seedDiagnosticSetting(call.core, resourceId, existing?.name ?? name, properties);
      return okResponse(call, 200, settingToArm(record));
    }
    default:
      throw methodNotAllowed(call.method);
  }
};

// ---------------------------------------------------------------------------------------------
// Microsoft.Authorization/policyAssignments
// ---------------------------------------------------------------------------------------------

const POLICY = {
  read: 'Microsoft.Authorization/policyAssignments/read',
  write: 'Microsoft.Authorization/policyAssignments/write',
};

/**
 * Built-in definitions the emulator knows. "Key vaults should have deletion protection enabled":
 * Azure/azure-policy `built-in-policies/policyDefinitions/Key Vault/Recoverable_Audit.json`
 * (@f7319d6eb87769be8ba87d4d6f7b37eafd992cb0): effect Audit (default), Deny or Disabled.
 */
export const BUILT_IN_POLICY_DEFINITIONS: Record<
  string,
  { displayName: string; effects: string[]; defaultEffect: string }
> = {
  '0b60c0b2-2dc2-4e1c-b5c9-abbed971de53': {
    displayName: 'Key vaults should have deletion protection enabled',
    effects: ['Audit', 'Deny', 'Disabled'],
    defaultEffect: 'Audit',
  },
};

export function policyAssignmentId(scope: string, name: string): string {
  return `${scope.replace(/\/+$/, '')}/providers/Microsoft.Authorization/policyAssignments/${name}`;
}

function assignmentToArm(a: PolicyAssignmentRecord): Record<string, unknown> {
  return {
    id: policyAssignmentId(a.scope, a.name),
    name: a.name,
    type: 'Microsoft.Authorization/policyAssignments',
    ...(a.location ? { location: a.location } : {}),
    properties: {
      scope: a.scope,
      notScopes: [],
      enforcementMode: 'Default',
      ...structuredClone(a.properties),
    },
  };
}

function validScope(scope: string): boolean {
  return (
    /^\/subscriptions\/[^/]+(\/resourceGroups\/[^/]+)?$/i.test(scope) ||
    /^\/providers\/Microsoft\.Management\/managementGroups\/[^/]+$/i.test(scope)
  );
}

const policyRoute: ArmRoute = (call) => {
  const { lower, segments } = call;
  const at = lastProvider(lower, 'microsoft.authorization');
  if (at < 0 || lower[at + 2] !== 'policyassignments' || lower.length !== at + 4) return undefined;
  const scope = `/${segments.slice(0, at).join('/')}`;
  if (!validScope(scope)) {
    throw new ArmError(400, 'InvalidScope', `The scope '${scope}' is not a valid policy assignment scope.`);
  }
  const sub = /^\/subscriptions\/([^/]+)/i.exec(scope)?.[1];
  if (sub) requireSubscription(call, sub);
  const name = segments[at + 3] ?? '';
  const id = policyAssignmentId(scope, name);
  const existing = call.state.policyAssignments.get(id.toLowerCase());
  switch (call.method) {
    case 'GET':
      authorize(call, scope, POLICY.read);
      if (!existing) {
        throw new ArmError(404, 'PolicyAssignmentNotFound', `The policy assignment '${name}' is not found.`);
      }
      return okResponse(call, 200, assignmentToArm(existing));
    case 'PUT': {
      authorize(call, scope, POLICY.write);
      const body = jsonBody(call);
      const properties = isRecord(body.properties) ? structuredClone(body.properties) : {};
      const definitionId =
        typeof properties.policyDefinitionId === 'string' ? properties.policyDefinitionId : '';
      const builtIn = /^\/providers\/Microsoft\.Authorization\/policyDefinitions\/([^/]+)$/i.exec(
        definitionId,
      )?.[1];
      const definition = builtIn ? BUILT_IN_POLICY_DEFINITIONS[builtIn.toLowerCase()] : undefined;
      if (!definition) {
        // Code and wording UNCONFIRMED.
        throw new ArmError(
          404,
          'PolicyDefinitionNotFound',
          `The policy definition '${definitionId}' could not be found.`,
        );
      }
      const parameters = isRecord(properties.parameters) ? properties.parameters : {};
      const effect = isRecord(parameters.effect) ? parameters.effect.value : undefined;
      if (effect !== undefined && (typeof effect !== 'string' || !definition.effects.includes(effect))) {
        // Code and wording UNCONFIRMED.
        throw new ArmError(
          400,
          'InvalidPolicyParameters',
          `The value ${JSON.stringify(effect)} of the parameter 'effect' is not allowed; allowed values: ${definition.effects.join(', ')}.`,
        );
      }
      const record: PolicyAssignmentRecord = {
        scope,
        name,
        location: typeof body.location === 'string' ? body.location : undefined,
        properties,
      };
      call.state.policyAssignments.set(id.toLowerCase(), record);
      return okResponse(call, 201, assignmentToArm(record));
    }
    case 'DELETE':
      authorize(call, scope, 'Microsoft.Authorization/policyAssignments/delete');
      call.state.policyAssignments.delete(id.toLowerCase());
      return existing ? okResponse(call, 200, assignmentToArm(existing)) : okResponse(call, 204);
    default:
      throw methodNotAllowed(call.method);
  }
};

// ---------------------------------------------------------------------------------------------
// Microsoft.Network: virtualNetworks, networkWatchers, flowLogs
// ---------------------------------------------------------------------------------------------

const NETWORK = {
  vnetRead: 'Microsoft.Network/virtualNetworks/read',
  watcherRead: 'Microsoft.Network/networkWatchers/read',
  flowLogRead: 'Microsoft.Network/networkWatchers/flowLogs/read',
  flowLogWrite: 'Microsoft.Network/networkWatchers/flowLogs/write',
};

function vnetToArm(v: VnetRecord): Record<string, unknown> {
  return {
    id: vnetId(v),
    name: v.name,
    type: 'Microsoft.Network/virtualNetworks',
    location: v.location,
    tags: { ...v.tags },
    etag: `W/"${v.resourceGuid}"`,
    properties: {
      provisioningState: 'Succeeded',
      resourceGuid: v.resourceGuid,
      addressSpace: { addressPrefixes: [...v.addressPrefixes] },
      subnets: [],
      virtualNetworkPeerings: [],
      enableDdosProtection: false,
    },
  };
}

function watcherToArm(w: NetworkWatcherRecord): Record<string, unknown> {
  return {
    id: networkWatcherId(w),
    name: w.name,
    type: 'Microsoft.Network/networkWatchers',
    location: w.location,
    properties: { provisioningState: 'Succeeded' },
  };
}

function flowLogToArm(f: FlowLogRecord): Record<string, unknown> {
  return {
    id: flowLogId(f),
    name: f.name,
    type: 'Microsoft.Network/networkWatchers/flowLogs',
    location: f.location,
    properties: { ...structuredClone(f.properties), provisioningState: 'Succeeded' },
  };
}

function isNsgId(id: string): boolean {
  return /\/providers\/Microsoft\.Network\/networkSecurityGroups\/[^/]+$/i.test(id);
}

const networkRoute: ArmRoute = (call) => {
  const { lower, segments } = call;
  if (lower[0] !== 'subscriptions' || !segments[1]) return undefined;
  const subscriptionId = segments[1];
  const at = lastProvider(lower, 'microsoft.network');
  if (at < 0) return undefined;
  const resourceGroup = lower[2] === 'resourcegroups' ? segments[3] : undefined;
  const tail = lower.slice(at + 2);
  const subScope = `/subscriptions/${subscriptionId}`;
  requireSubscription(call, subscriptionId);
  if (tail.length === 1 && tail[0] === 'virtualnetworks') {
    if (call.method !== 'GET') throw methodNotAllowed(call.method);
    authorize(
      call,
      resourceGroup ? `${subScope}/resourceGroups/${resourceGroup}` : subScope,
      NETWORK.vnetRead,
    );
    const vnets = [...call.state.vnets.values()].filter(
      (v) =>
        same(v.subscriptionId, subscriptionId) && (!resourceGroup || same(v.resourceGroup, resourceGroup)),
    );
    return okResponse(
      call,
      200,
      listBody(call, vnets, (v) => vnetId(v), vnetToArm),
    );
  }
  if (tail.length === 1 && tail[0] === 'networkwatchers') {
    if (call.method !== 'GET') throw methodNotAllowed(call.method);
    authorize(
      call,
      resourceGroup ? `${subScope}/resourceGroups/${resourceGroup}` : subScope,
      NETWORK.watcherRead,
    );
    const watchers = [...call.state.networkWatchers.values()].filter(
      (w) =>
        same(w.subscriptionId, subscriptionId) && (!resourceGroup || same(w.resourceGroup, resourceGroup)),
    );
    // NetworkWatcherListResult has `value` only (no nextLink).
    return okResponse(call, 200, { value: watchers.map(watcherToArm) });
  }
  if (!resourceGroup || tail[0] !== 'networkwatchers' || tail[2] !== 'flowlogs') return undefined;
  const watcherKey = networkWatcherId({
    subscriptionId,
    resourceGroup,
    name: segments[at + 3] ?? '',
  }).toLowerCase();
  const watcher = call.state.networkWatchers.get(watcherKey);
  if (tail.length === 3) {
    if (call.method !== 'GET') throw methodNotAllowed(call.method);
    authorize(call, watcherKey, NETWORK.flowLogRead);
    if (!watcher) throw watcherNotFound(segments[at + 3] ?? '', resourceGroup);
    const logs = [...call.state.flowLogs.values()].filter(
      (f) =>
        same(f.subscriptionId, subscriptionId) &&
        same(f.resourceGroup, resourceGroup) &&
        same(f.networkWatcher, watcher.name),
    );
    return okResponse(
      call,
      200,
      listBody(call, logs, (f) => f.name, flowLogToArm),
    );
  }
  if (tail.length !== 4) return undefined;
  const name = segments[at + 5] ?? '';
  if (!watcher) throw watcherNotFound(segments[at + 3] ?? '', resourceGroup);
  const id = flowLogId({ subscriptionId, resourceGroup, networkWatcher: watcher.name, name });
  const existing = call.state.flowLogs.get(id.toLowerCase());
  switch (call.method) {
    case 'GET':
      authorize(call, id, NETWORK.flowLogRead);
      if (!existing) {
        throw new ArmError(404, 'NotFound', `Resource ${id} not found.`);
      }
      return okResponse(call, 200, flowLogToArm(existing));
    case 'PUT': {
      authorize(call, id, NETWORK.flowLogWrite);
      const body = jsonBody(call);
      const p = isRecord(body.properties) ? structuredClone(body.properties) : {};
      const target = typeof p.targetResourceId === 'string' ? p.targetResourceId : '';
      const storage = typeof p.storageId === 'string' ? p.storageId : '';
      if (isNsgId(target)) {
        const sameTarget =
          existing &&
          typeof existing.properties.targetResourceId === 'string' &&
          same(existing.properties.targetResourceId, target);
        if (!sameTarget) {
          throw new ArmError(
            400,
            'NsgFlowLogCreationBlocked',
            'On September 30, 2027, Network Security Group (NSG) flow logs will be retired. As part of this retirement, creation of new NSG flow logs is blocked starting June 30, 2025, but you will be able to continue using and modifying settings for existing NSG flow logs that are previously deployed/configured until Sept 30th 2027. We recommend migrating to virtual network flow logs, which overcome the limitations of NSG flow logs. For migration, please refer to https://learn.microsoft.com/en-us/azure/network-watcher/nsg-flow-logs-migrate.',
          );
        }
      } else {
        const vnet = call.state.vnets.get(target.toLowerCase());
        if (!vnet) {
          // Code and wording UNCONFIRMED.
          throw new ArmError(
            400,
            'InvalidTargetResource',
            `The flow log target '${target}' does not exist or is not a virtual network.`,
          );
        }
        if (vnet.location !== watcher.location) {
          throw new ArmError(
            400,
            'InvalidTargetResourceLocation',
            `The target '${target}' is in '${vnet.location}'; the network watcher '${watcher.name}' is in '${watcher.location}'.`,
          );
        }
      }
      const account = call.state.storageAccounts.get(storage.toLowerCase());
      if (!account) {
        throw new ArmError(400, 'InvalidStorageId', `The storage account '${storage}' does not exist.`);
      }
      if (account.location !== watcher.location) {
        // A flow log's storage account must be in the target's region (UNCONFIRMED wording).
        throw new ArmError(
          400,
          'StorageAccountLocationMismatch',
          `The storage account '${account.name}' is in '${account.location}'; flow logs of '${watcher.location}' need a storage account in the same region.`,
        );
      }
      const retention = isRecord(p.retentionPolicy) ? p.retentionPolicy : undefined;
      if (retention && (typeof retention.days !== 'number' || retention.days < 0 || retention.days > 365)) {
        throw new ArmError(400, 'InvalidRetentionPolicy', 'retentionPolicy.days must be between 0 and 365.');
      }
      delete p.provisioningState;
      const record: FlowLogRecord = {
        subscriptionId: watcher.subscriptionId,
        resourceGroup: watcher.resourceGroup,
        networkWatcher: watcher.name,
        name: existing?.name ?? name,
        location: watcher.location,
        properties: {
          enabled: true,
          format: { type: 'JSON', version: 2 },
          ...p,
          targetResourceGuid: randomUUID(),
        },
      };
      call.state.flowLogs.set(id.toLowerCase(), record);
      // A PUT whose body says Succeeded ends the SDK's poller at once (no Azure-AsyncOperation header).
      return okResponse(call, existing ? 200 : 201, flowLogToArm(record));
    }
    default:
      throw methodNotAllowed(call.method);
  }
};

function watcherNotFound(name: string, resourceGroup: string): ArmError {
  return new ArmError(
    404,
    'ResourceNotFound',
    `The Resource 'Microsoft.Network/networkWatchers/${name}' under resource group '${resourceGroup}' was not found. For more details please go to https://aka.ms/ARMResourceNotFoundFix`,
  );
}

/** The routes of this module, in the order the fallback tries them. */
export const RESOURCE_ROUTES: ArmRoute[] = [computeRoute, insightsRoute, policyRoute, networkRoute];
