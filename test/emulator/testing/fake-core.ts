/**
 * A small, synchronous `EmulatorCore` for unit tests of the service modules: a manual clock, an
 * in-memory audit sink, HMAC-signed JWTs in the same v1 shape identity.ts issues, and the real RBAC
 * evaluation of rbac.ts. No sockets, no CA: handlers are called directly with `request()`.
 */
import { createHash, createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { isAuthorized } from '../rbac';
import type {
  AccessPolicyEntry,
  AuditRecord,
  EmuRequest,
  EmulatorCore,
  Principal,
  PrincipalKind,
  RoleAssignment,
  TokenClaims,
  VaultRecord,
} from '../types';

export const FAKE_TENANT_ID = '11111111-2222-4333-8444-555555555555';
export const FAKE_SUBSCRIPTION_ID = '00000000-0000-4000-8000-00000000000f';
/** 2026-01-01T00:00:00Z: a fixed, readable start for the manual clock. */
export const FAKE_EPOCH_MS = Date.UTC(2026, 0, 1);

export interface FakeCore extends EmulatorCore {
  /** Every record handed to `audit`, in order. */
  readonly audits: AuditRecord[];
  readonly events: Array<Record<string, unknown>>;
  /**
   * Resources that have a system topic (lower-cased ARM ids): `publishResourceEvent` publishes only to
   * these, into `resourceEvents`, as Azure publishes only where a system topic exists.
   */
  readonly systemTopicSources: Set<string>;
  readonly resourceEvents: Array<{ source: string; event: Record<string, unknown> }>;
  readonly logs: string[];
  /** Moves the manual clock forward. */
  advance(ms: number): void;
  setNow(ms: number): void;
  addPrincipal(spec: FakePrincipalSpec): Principal;
  addVault(spec: FakeVaultSpec): VaultRecord;
  /** Adds a role assignment (built-in role name, or custom data actions). */
  grant(
    principalId: string,
    scope: string,
    role: string | { dataActions?: string[]; actions?: string[] },
  ): RoleAssignment;
  /** A signed token for the principal; `Bearer <token>` is what a client sends. */
  issueToken(principal: Principal, options?: TokenOptions): string;
  /** `Bearer <token>` for the vault audience. */
  bearer(principal: Principal, options?: TokenOptions): string;
}

export interface FakePrincipalSpec {
  kind: PrincipalKind;
  oid?: string;
  displayName?: string;
  appId?: string;
  upn?: string;
  resourceId?: string;
  ipAddress?: string;
  userAgent?: string;
}

export type FakeVaultSpec = Partial<Omit<VaultRecord, 'keys' | 'deletedKeys'>> & { name: string };

export interface TokenOptions {
  /** Default `https://vault.azure.net`. */
  audience?: string;
  /** Lifetime from now, seconds (negative = already expired). Default 3600. */
  lifetimeS?: number;
  /** Not-before offset from now, seconds. Default 0. */
  nbfOffsetS?: number;
  tenantId?: string;
  /** Extra or overriding claims. */
  claims?: Record<string, unknown>;
}

export interface FakeCoreOptions {
  now?: number;
  tenantId?: string;
  subscriptionId?: string;
  completionLagMs?: number;
  /** Seed of `randomHex` (deterministic sequences per seed). */
  seed?: string;
}

const b64url = (v: string | Buffer): string => Buffer.from(v).toString('base64url');

function normaliseAudience(aud: string): string {
  return aud.replace(/\/+$/, '').toLowerCase();
}

export function createFakeCore(options: FakeCoreOptions = {}): FakeCore {
  let clock = options.now ?? FAKE_EPOCH_MS;
  const tenantId = options.tenantId ?? FAKE_TENANT_ID;
  const subscriptionId = options.subscriptionId ?? FAKE_SUBSCRIPTION_ID;
  const secret = randomBytes(32);
  const seed = options.seed ?? 'fake-core';
  let counter = 0;
  const principals = new Map<string, Principal>();
  const roleAssignments: RoleAssignment[] = [];
  const vaults = new Map<string, VaultRecord>();
  const audits: AuditRecord[] = [];
  const events: Array<Record<string, unknown>> = [];
  const systemTopicSources = new Set<string>();
  const resourceEvents: Array<{ source: string; event: Record<string, unknown> }> = [];
  const logs: string[] = [];

  const randomHex = (length: number): string => {
    let out = '';
    while (out.length < length) {
      out += createHash('sha256').update(`${seed}:${counter++}`).digest('hex');
    }
    return out.slice(0, length);
  };
  const guid = (): string => {
    const h = randomHex(32);
    return `${h.slice(0, 8)}-${h.slice(8, 12)}-4${h.slice(13, 16)}-8${h.slice(17, 20)}-${h.slice(20)}`;
  };
  const sign = (data: string): string => createHmac('sha256', secret).update(data).digest('base64url');

  function issueToken(principal: Principal, o: TokenOptions = {}): string {
    const nowS = Math.floor(clock / 1000);
    const tid = o.tenantId ?? tenantId;
    const claims: TokenClaims = {
      aud: o.audience ?? 'https://vault.azure.net',
      iss: `https://sts.windows.net/${tid}/`,
      iat: nowS,
      nbf: nowS + (o.nbfOffsetS ?? 0),
      exp: nowS + (o.lifetimeS ?? 3600),
      ver: '1.0',
      tid,
      oid: principal.oid,
      sub: principal.oid,
      idtyp: principal.kind === 'user' ? 'user' : 'app',
    };
    if (principal.appId) {
      claims.appid = principal.appId;
      claims.appidacr = principal.kind === 'user' ? '0' : '2';
    }
    if (principal.kind === 'user') {
      claims.upn = principal.upn;
      claims.unique_name = principal.upn;
      if (principal.ipAddress) claims.ipaddr = principal.ipAddress;
    }
    if (principal.kind === 'managedIdentity' && principal.resourceId) claims.xms_mirid = principal.resourceId;
    Object.assign(claims, o.claims ?? {});
    const head = b64url(JSON.stringify({ typ: 'JWT', alg: 'HS256' }));
    const body = b64url(JSON.stringify(claims));
    return `${head}.${body}.${sign(`${head}.${body}`)}`;
  }

  function verifyBearer(authorization: string | undefined, audiences: string[]): TokenClaims | undefined {
    const m = /^Bearer\s+([^.\s]+)\.([^.\s]+)\.([^.\s]+)$/i.exec(authorization ?? '');
    if (!m?.[1] || !m[2] || !m[3]) return undefined;
    const expected = Buffer.from(sign(`${m[1]}.${m[2]}`));
    const given = Buffer.from(m[3]);
    if (expected.length !== given.length || !timingSafeEqual(expected, given)) return undefined;
    let claims: TokenClaims;
    try {
      claims = JSON.parse(Buffer.from(m[2], 'base64url').toString('utf8')) as TokenClaims;
    } catch {
      return undefined;
    }
    const nowS = Math.floor(clock / 1000);
    if (claims.iss !== `https://sts.windows.net/${tenantId}/`) return undefined;
    if (!audiences.map(normaliseAudience).includes(normaliseAudience(String(claims.aud)))) return undefined;
    if (typeof claims.exp !== 'number' || claims.exp <= nowS) return undefined;
    if (typeof claims.nbf === 'number' && claims.nbf > nowS) return undefined;
    if (!principals.has(claims.oid)) return undefined;
    return claims;
  }

  const core: FakeCore = {
    tenantId,
    subscriptionId,
    now: () => clock,
    principals,
    roleAssignments,
    vaults,
    timing: { completionLagMs: options.completionLagMs ?? 0 },
    verifyBearer,
    isAuthorized: (principalId, scope, action) => isAuthorized(roleAssignments, principalId, scope, action),
    audit: (record) => {
      audits.push(record);
    },
    publishSubscriptionEvent: (event) => {
      events.push(event);
    },
    publishResourceEvent: (source, event) => {
      if (!systemTopicSources.has(source.toLowerCase())) return false;
      resourceEvents.push({ source, event });
      return true;
    },
    randomHex,
    log: (message) => {
      logs.push(message);
    },
    audits,
    events,
    systemTopicSources,
    resourceEvents,
    logs,
    advance(ms) {
      clock += ms;
    },
    setNow(ms) {
      clock = ms;
    },
    addPrincipal(spec) {
      const oid = spec.oid ?? guid();
      const principal: Principal = {
        oid,
        kind: spec.kind,
        displayName: spec.displayName ?? spec.upn ?? `principal-${oid.slice(0, 8)}`,
        appId: spec.kind === 'user' ? undefined : (spec.appId ?? guid()),
        upn: spec.upn,
        resourceId: spec.resourceId,
        ipAddress: spec.ipAddress,
        userAgent: spec.userAgent,
        assignment: spec.kind === 'managedIdentity' ? 'user' : undefined,
      };
      principals.set(oid, principal);
      return principal;
    },
    addVault(spec) {
      const vault: VaultRecord = {
        subscriptionId,
        resourceGroup: 'rg-test',
        location: 'westeurope',
        tenantId,
        tags: {},
        sku: 'standard',
        enableRbacAuthorization: true,
        enableSoftDelete: true,
        enablePurgeProtection: false,
        softDeleteRetentionInDays: 90,
        publicNetworkAccess: 'Enabled',
        accessPolicies: [] as AccessPolicyEntry[],
        createdAt: clock,
        ...spec,
        keys: new Map(),
        deletedKeys: new Map(),
      };
      vaults.set(vault.name.toLowerCase(), vault);
      return vault;
    },
    grant(principalId, scope, role) {
      const assignment: RoleAssignment =
        typeof role === 'string'
          ? { id: guid(), principalId, scope, roleName: role }
          : { id: guid(), principalId, scope, actions: role.actions, dataActions: role.dataActions };
      roleAssignments.push(assignment);
      return assignment;
    },
    issueToken,
    bearer: (principal, o) => `Bearer ${issueToken(principal, o)}`,
  };
  return core;
}

export interface RequestSpec {
  method?: string;
  host: string;
  /** Raw path as on the wire (percent-encoded), e.g. `/keys/k1/`. */
  path: string;
  /** Raw query string without `?`, e.g. `api%2Dversion=7.6`, or parameters to encode. */
  query?: string | Record<string, string>;
  headers?: Record<string, string>;
  body?: unknown;
  remoteAddress?: string;
}

/** Builds an `EmuRequest` as server.ts would hand it to a module. */
export function request(spec: RequestSpec): EmuRequest {
  const rawQuery =
    typeof spec.query === 'string' ? spec.query : new URLSearchParams(spec.query ?? {}).toString();
  const headers: Record<string, string> = {};
  for (const [k, v] of Object.entries(spec.headers ?? {})) headers[k.toLowerCase()] = v;
  let body: Buffer = Buffer.alloc(0);
  if (Buffer.isBuffer(spec.body)) body = spec.body;
  else if (typeof spec.body === 'string') body = Buffer.from(spec.body);
  else if (spec.body !== undefined) body = Buffer.from(JSON.stringify(spec.body));
  if (body.length) headers['content-type'] ??= 'application/json';
  return {
    method: (spec.method ?? 'GET').toUpperCase(),
    host: spec.host.toLowerCase(),
    path: spec.path,
    query: new URLSearchParams(rawQuery),
    headers,
    body,
    remoteAddress: spec.remoteAddress ?? '10.0.0.7',
    url: `https://${spec.host.toLowerCase()}${spec.path}${rawQuery ? `?${rawQuery}` : ''}`,
  };
}

/** An absolute URL (e.g. a `nextLink`) as an `EmuRequest`. */
export function requestFromUrl(
  url: string,
  spec: Omit<RequestSpec, 'host' | 'path' | 'query'> = {},
): EmuRequest {
  const u = new URL(url);
  return request({ ...spec, host: u.hostname, path: u.pathname, query: u.search.replace(/^\?/, '') });
}
