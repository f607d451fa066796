/**
 * Shared types of the emulated Azure. Each service module (identity, keyvault, arm, eventgrid,
 * loganalytics, graph) is a function from an `EmuRequest` to an `EmuResponse`, given the
 * `EmulatorCore`: the state, the clock, token verification, authorization and the audit and event
 * sinks. The proxy and the admin API (server.ts) do the transport; modules never touch sockets.
 */
import type { IncomingHttpHeaders } from 'node:http';

/** Claims of a token the emulator issued (v1 shape; see identity.ts). */
export interface TokenClaims {
  aud: string;
  iss: string;
  iat: number;
  nbf: number;
  exp: number;
  ver: '1.0';
  tid: string;
  oid: string;
  sub: string;
  appid?: string;
  upn?: string;
  unique_name?: string;
  idtyp: 'app' | 'user';
  ipaddr?: string;
  [claim: string]: unknown;
}

export interface EmuRequest {
  method: string;
  /** Lower-cased host name without port, as named by the client (SNI / Host header). */
  host: string;
  /** Path without query, percent-decoded per segment is left to the module. */
  path: string;
  query: URLSearchParams;
  headers: IncomingHttpHeaders;
  body: Buffer;
  /** Remote address as the emulator saw it (the caller IP recorded in audit logs). */
  remoteAddress: string;
  /** The full URL as the client would have written it (https://host/path?query). */
  url: string;
}

export interface EmuResponse {
  status: number;
  headers?: Record<string, string>;
  /** A JSON-serialisable value, a Buffer, or a string; undefined means no body. */
  body?: unknown;
  /** The caller's oid when the request carried a valid token (for the request log). */
  callerOid?: string;
}

export type PrincipalKind = 'user' | 'servicePrincipal' | 'managedIdentity';

export interface Principal {
  /** Object id (oid claim). */
  oid: string;
  kind: PrincipalKind;
  displayName: string;
  /** Application (client) id; service principals and managed identities. */
  appId?: string;
  /** Users only. */
  upn?: string;
  /** Client secrets of a service principal (client-credentials grant). */
  secrets?: string[];
  /** Managed identity: 'system' or 'user' assigned to the function app. */
  assignment?: 'system' | 'user';
  /** Managed identity: its ARM resource id (mi_res_id). */
  resourceId?: string;
  /** IP address this principal's calls appear to come from (recorded in audit). */
  ipAddress?: string;
  /** User agent recorded for calls when the request carries none. */
  userAgent?: string;
}

export interface RoleAssignment {
  id: string;
  principalId: string;
  /** ARM scope: /subscriptions/x, /subscriptions/x/resourceGroups/y, or a resource id. */
  scope: string;
  /** A built-in role name (see rbac.ts) or a custom set of actions. */
  roleName?: string;
  actions?: string[];
  dataActions?: string[];
}

export interface AccessPolicyEntry {
  tenantId: string;
  objectId: string;
  permissions: { keys?: string[]; secrets?: string[]; certificates?: string[] };
}

export interface KeyVersion {
  version: string;
  kty: string;
  keyOps: string[];
  /** base64url modulus / exponent (public parts only; no private material is ever kept). */
  n?: string;
  e?: string;
  crv?: string;
  x?: string;
  y?: string;
  enabled: boolean;
  nbf?: number;
  exp?: number;
  created: number;
  updated: number;
  exportable?: boolean;
  /**
   * Tags of a version that is no longer the latest (keyvault.ts snapshots them when a new version
   * is created); the latest version's tags are `KeyRecord.tags`. Tags belong to a version in Azure.
   */
  tags?: Record<string, string>;
}

export interface KeyRecord {
  name: string;
  versions: KeyVersion[];
  tags: Record<string, string>;
  managed?: boolean;
  /** Epoch ms before which a recovered key is still invisible to GET (completion lag). */
  visibleAt: number;
}

export interface DeletedKeyRecord {
  key: KeyRecord;
  /** Unix seconds. */
  deletedDate: number;
  /** Unix seconds. */
  scheduledPurgeDate: number;
  /** Epoch ms before which GET /deletedkeys/{name} still answers 404 (completion lag). */
  visibleAt: number;
  /** Epoch ms until which a recovery is in flight (a second recover answers 409). */
  recoveringUntil?: number;
}

export interface VaultRecord {
  name: string;
  subscriptionId: string;
  resourceGroup: string;
  location: string;
  tenantId: string;
  tags: Record<string, string>;
  sku: 'standard' | 'premium';
  enableRbacAuthorization: boolean;
  enableSoftDelete: boolean;
  enablePurgeProtection: boolean;
  softDeleteRetentionInDays: number;
  publicNetworkAccess: 'Enabled' | 'Disabled';
  accessPolicies: AccessPolicyEntry[];
  /** Keyed by the lower-cased key name (Key Vault names are case-insensitive); `name` keeps the case. */
  keys: Map<string, KeyRecord>;
  /** Keyed like `keys`. */
  deletedKeys: Map<string, DeletedKeyRecord>;
  createdAt: number;
  /** Set when the vault itself was deleted through ARM. */
  deleted?: { deletionDate: string; scheduledPurgeDate: string };
  /** ARM-only vault properties (arm.ts); absent means false / not configured. */
  enabledForDeployment?: boolean;
  enabledForDiskEncryption?: boolean;
  enabledForTemplateDeployment?: boolean;
  /** ARM `properties.networkAcls` as last written (bypass, defaultAction, ipRules, virtualNetworkRules). */
  networkAcls?: Record<string, unknown>;
  /** ARM `systemData` (who created / last modified the vault through ARM, ISO times). */
  systemData?: {
    createdBy?: string;
    createdByType?: 'User' | 'Application' | 'ManagedIdentity' | 'Key';
    createdAt?: string;
    lastModifiedBy?: string;
    lastModifiedByType?: 'User' | 'Application' | 'ManagedIdentity' | 'Key';
    lastModifiedAt?: string;
  };
}

/**
 * A Log Analytics workspace the vaults' diagnostic settings send `AuditEvent` to in resource-specific
 * mode (table `AZKVAuditLogs`).
 */
export interface WorkspaceRecord {
  /** The workspace (customer) id, a GUID: what the query API's URL names. */
  id: string;
  /** ARM id `/subscriptions/…/resourceGroups/…/providers/Microsoft.OperationalInsights/workspaces/<name>`: the RBAC scope. */
  resourceId: string;
  /** Lower-cased names of the vaults whose records land here; absent = every vault. */
  vaults?: string[];
  /** How long after its `time` a record becomes queryable (Azure: minutes; default 0). */
  ingestionDelayMs?: number;
}

/** A diagnostic-log record in the shape Key Vault writes to its AuditEvent category. */
export type AuditRecord = Record<string, unknown> & {
  time: string;
  resourceId: string;
  operationName: string;
  category: 'AuditEvent';
};

export interface RequestLogEntry {
  seq: number;
  time: string;
  method: string;
  host: string;
  path: string;
  query: string;
  callerOid?: string;
  status: number;
  /** 'served', 'refused' (CONNECT to a host not emulated), or 'fault' (injected). */
  outcome: 'served' | 'refused' | 'fault';
  durationMs: number;
}

export interface FaultRule {
  id: string;
  /** Exact host or a suffix starting with '.', e.g. '.vault.azure.net'. */
  host?: string;
  /** Regular expression source matched against the path. */
  path?: string;
  method?: string;
  kind: 'latency' | 'throttle' | 'error' | 'reset';
  /** latency: added delay. */
  latencyMs?: number;
  /** throttle: header values; both Retry-After (s, rounded up) and retry-after-ms are sent. */
  retryAfterMs?: number;
  /** error: the status (5xx). */
  status?: number;
  /** Apply to this many matching requests, then expire. */
  count?: number;
  /** Apply to this fraction (0..1) of matching requests, by a seeded generator. */
  rate?: number;
  /** How many times it fired. */
  fired: number;
}

/** What every service module can use. Implemented by server.ts. */
export interface EmulatorCore {
  readonly tenantId: string;
  readonly subscriptionId: string;
  now(): number;
  principals: Map<string, Principal>;
  roleAssignments: RoleAssignment[];
  vaults: Map<string, VaultRecord>;
  /**
   * Resource groups that exist besides those holding a vault (lower-cased name → name, location).
   * Optional: arm.ts treats a group as existing when it is listed here or holds a (deleted) vault.
   */
  resourceGroups?: Map<string, { name: string; location: string; subscriptionId?: string }>;
  /**
   * Log Analytics workspaces, keyed by the lower-cased workspace (customer) id. Optional: without it
   * the emulated query API knows no workspace (loganalytics.ts; seed with its `addWorkspace`).
   */
  workspaces?: Map<string, WorkspaceRecord>;
  /**
   * Microsoft Graph application permissions (app roles, e.g. `Directory.Read.All`) granted to a
   * principal, keyed by its oid. Optional: without it no principal may read the directory (graph.ts;
   * seed with its `grantGraphPermissions`).
   */
  graphPermissions?: Map<string, string[]>;
  /** Options that shape timing; changed through the admin API. */
  timing: { completionLagMs: number };
  /** Verifies an `Authorization: Bearer` header for the given audience host; undefined = invalid. */
  verifyBearer(authorization: string | undefined, audiences: string[]): TokenClaims | undefined;
  /** Whether the principal holds the action or data action at the scope (RBAC, inherited). */
  isAuthorized(principalId: string, scope: string, action: string): boolean;
  /** Records a vault's AuditEvent and hands it to the audit subscribers. */
  audit(record: AuditRecord): void;
  /** Publishes an event to the emulated subscription (ARM) system topic. */
  publishSubscriptionEvent(event: Record<string, unknown>): void;
  /**
   * Publishes an event to the system topic whose source is this resource (e.g. a vault's Key Vault
   * topic), if one exists, as the resource's service does; answers whether one did. Optional: a core
   * without Event Grid publishes nothing.
   */
  publishResourceEvent?(sourceResourceId: string, event: Record<string, unknown>): boolean;
  /** Random hex of the given length from one seeded source. */
  randomHex(length: number): string;
  /** Logs a line on the emulator's stderr log. */
  log(message: string): void;
}

export type ServiceHandler = (req: EmuRequest) => Promise<EmuResponse> | EmuResponse;
