/**
 * Emulated Key Vault data plane (keys only), served for every host ending in `.vault.azure.net`.
 *
 * What it reproduces, and where each behaviour comes from (facts = shared/reference/azure-facts.md,
 * recordings = shared/reference/azure-specs/recordings/keyvault-keys/):
 * - the challenge flow: every request without `Authorization` is answered 401 with the
 *   `WWW-Authenticate` challenge, because the KeyClient's first request is sent body-less and
 *   must never be accepted (facts §1.11, every recording starts with it);
 * - both permission models (RBAC data actions, access-policy key permissions; facts §1.7, §7);
 * - soft delete with eventual consistency: after DELETE the deleted key stays 404 on
 *   `GET /deletedkeys/{name}` and after recover the key stays 404 on `GET /keys/{name}/` until
 *   `core.timing.completionLagMs` has passed (recordings: 404, 404, 200), which is what the SDK's
 *   delete and recover pollers wait on (facts §1.13);
 * - wire conventions: Unix-second dates, `api%2Dversion`, trailing slashes, absolute `nextLink`,
 *   `kid`/`recoveryId` on the real host name without port (design §5, facts §1.2);
 * - one AuditEvent record per data-plane call, in the shape of facts §5.1, handed to `core.audit`.
 *
 * Key material: only public parts (n/e, x/y) are ever stored, one cached key pair per key type and
 * size or curve, so that creating thousands of keys stays cheap; the private half of the generated
 * pair is dropped at once. State lives in `core.vaults` (`VaultRecord.keys`/`deletedKeys`, both keyed
 * by the lower-cased key name, since Key Vault object names are case-insensitive while responses
 * keep the name as created). Time is `core.now()` only.
 */
import { generateKeyPairSync } from 'node:crypto';
import type {
  AuditRecord,
  DeletedKeyRecord,
  EmuRequest,
  EmuResponse,
  EmulatorCore,
  KeyRecord,
  KeyVersion,
  Principal,
  ServiceHandler,
  TokenClaims,
  VaultRecord,
} from './types';

// ---------------------------------------------------------------------------------------------
// Constants
// ---------------------------------------------------------------------------------------------

export const VAULT_HOST_SUFFIX = '.vault.azure.net';
/** Data-plane versions with a stable folder in azure-rest-api-specs (facts §1.1). */
export const SUPPORTED_API_VERSIONS: readonly string[] = ['7.5', '7.6', '2025-06-01', '2025-07-01'];
const LATEST_API_VERSION = '2025-07-01';
/** Audiences a vault token may carry (the SDK asks for `https://vault.azure.net/.default`). */
export const VAULT_AUDIENCES: readonly string[] = ['https://vault.azure.net', 'https://vault.azure.net/'];
/**
 * 401 message for a request without a token, as the brief and facts §1.9/§1.11 give it. The 2026
 * recordings show a newer wording ("…missing a Bearer, PoP, or MTLS_POP token."); the SDK reads
 * only the status and the challenge header, so either is faithful enough.
 */
export const UNAUTHORIZED_MESSAGE = 'AKV10000: Request is missing a Bearer or PoP token.';
/** As in the recordings' `x-ms-keyvault-service-version` header. */
const SERVICE_VERSION = '1.9.3070.2';
const MAX_RESULTS = 25;
/** Key Vault object names: 1-127 characters, alphanumerics and dashes. */
const NAME_PATTERN = /^[0-9a-zA-Z-]{1,127}$/;
const KEY_OPS = ['encrypt', 'decrypt', 'sign', 'verify', 'wrapKey', 'unwrapKey', 'import', 'export'];
const DEFAULT_RSA_OPS = ['encrypt', 'decrypt', 'sign', 'verify', 'wrapKey', 'unwrapKey'];
const DEFAULT_EC_OPS = ['sign', 'verify'];
const RSA_SIZES = [2048, 3072, 4096];
const EC_CURVES: Record<string, string> = {
  'P-256': 'prime256v1',
  'P-384': 'secp384r1',
  'P-521': 'secp521r1',
  'P-256K': 'secp256k1',
};
/** Key Vault allows at most 15 tags per object. */
const MAX_TAGS = 15;
const NOT_FOUND_HELP =
  'For help resolving this issue, please see https://go.microsoft.com/fwlink/?linkid=2125182';
const POLICY_HELP =
  'For help resolving this issue, please see https://go.microsoft.com/fwlink/?linkid=2125287';

/** `resultSignature` of the audit record: the HTTP reason phrase as Key Vault writes it (facts §5.1). */
const RESULT_SIGNATURE: Record<number, string> = {
  200: 'OK',
  204: 'NoContent',
  400: 'Bad Request',
  401: 'Unauthorized',
  403: 'Forbidden',
  404: 'Not Found',
  409: 'Conflict',
  501: 'Not Implemented',
};

export type KeyOperationName =
  | 'KeyCreate'
  | 'KeyGet'
  | 'KeyList'
  | 'KeyUpdate'
  | 'KeyDelete'
  | 'KeyGetDeleted'
  | 'KeyListDeleted'
  | 'KeyRecover'
  | 'KeyPurge'
  | 'KeyListVersions';

/** RBAC data action and access-policy key permission each operation needs (facts §1.7, §7). */
const REQUIRED: Record<KeyOperationName, { dataAction: string; permission: string }> = {
  KeyCreate: { dataAction: 'Microsoft.KeyVault/vaults/keys/write', permission: 'create' },
  KeyUpdate: { dataAction: 'Microsoft.KeyVault/vaults/keys/write', permission: 'update' },
  KeyGet: { dataAction: 'Microsoft.KeyVault/vaults/keys/read', permission: 'get' },
  KeyList: { dataAction: 'Microsoft.KeyVault/vaults/keys/read', permission: 'list' },
  KeyListVersions: { dataAction: 'Microsoft.KeyVault/vaults/keys/read', permission: 'list' },
  KeyGetDeleted: { dataAction: 'Microsoft.KeyVault/vaults/keys/read', permission: 'get' },
  KeyListDeleted: { dataAction: 'Microsoft.KeyVault/vaults/keys/read', permission: 'list' },
  KeyDelete: { dataAction: 'Microsoft.KeyVault/vaults/keys/delete', permission: 'delete' },
  KeyRecover: { dataAction: 'Microsoft.KeyVault/vaults/keys/recover/action', permission: 'recover' },
  KeyPurge: { dataAction: 'Microsoft.KeyVault/vaults/keys/purge/action', permission: 'purge' },
};

// ---------------------------------------------------------------------------------------------
// Small helpers
// ---------------------------------------------------------------------------------------------

interface KvErrorBody {
  error: { code: string; message: string; innererror?: { code: string } };
}

function kvError(code: string, message: string, inner?: string): KvErrorBody {
  return inner ? { error: { code, message, innererror: { code: inner } } } : { error: { code, message } };
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function header(req: EmuRequest, name: string): string | undefined {
  const v = req.headers[name];
  return Array.isArray(v) ? v[0] : v;
}

function guid(core: EmulatorCore): string {
  const h = core.randomHex(32);
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

const seconds = (ms: number): number => Math.floor(ms / 1000);

/** Removes undefined members so records and bodies carry only what is set. */
function compact<T extends Record<string, unknown>>(o: T): T {
  for (const k of Object.keys(o)) if (o[k] === undefined) delete o[k];
  return o;
}

export function vaultHost(vault: VaultRecord): string {
  return `${vault.name.toLowerCase()}${VAULT_HOST_SUFFIX}`;
}

export function vaultResourceId(vault: VaultRecord): string {
  return `/subscriptions/${vault.subscriptionId}/resourceGroups/${vault.resourceGroup}/providers/Microsoft.KeyVault/vaults/${vault.name}`;
}

function findVault(core: EmulatorCore, name: string): VaultRecord | undefined {
  const lname = name.toLowerCase();
  const direct = core.vaults.get(lname) ?? core.vaults.get(name);
  if (direct) return direct;
  for (const v of core.vaults.values()) if (v.name.toLowerCase() === lname) return v;
  return undefined;
}

/** Vault name from `<name>.vault.azure.net`; anything with more labels is not a vault host. */
function vaultNameFromHost(host: string): string | undefined {
  const h = host.toLowerCase().replace(/:\d+$/, '').replace(/\.$/, '');
  if (!h.endsWith(VAULT_HOST_SUFFIX)) return undefined;
  const name = h.slice(0, -VAULT_HOST_SUFFIX.length);
  return name && !name.includes('.') ? name : undefined;
}

/** Deletion recovery level and recoverable days from the vault's settings (facts §1.3). */
export function recoveryLevelOf(vault: VaultRecord): { recoveryLevel: string; recoverableDays: number } {
  if (!vault.enableSoftDelete) return { recoveryLevel: 'Purgeable', recoverableDays: 0 };
  const days = vault.softDeleteRetentionInDays;
  const base = days < 90 ? 'CustomizedRecoverable' : 'Recoverable';
  return { recoveryLevel: vault.enablePurgeProtection ? base : `${base}+Purgeable`, recoverableDays: days };
}

// ---------------------------------------------------------------------------------------------
// Key material (public parts only, cached per type)
// ---------------------------------------------------------------------------------------------

interface PublicMaterial {
  n?: string;
  e?: string;
  x?: string;
  y?: string;
}

const materialCache = new Map<string, PublicMaterial>();

function publicMaterial(kty: string, size: number, exponent: number, crv: string): PublicMaterial {
  const rsa = kty.startsWith('RSA');
  const cacheKey = rsa ? `RSA:${size}:${exponent}` : `EC:${crv}`;
  const cached = materialCache.get(cacheKey);
  if (cached) return cached;
  let material: PublicMaterial;
  if (rsa) {
    // Only the public half is exported; the private key object is never stored.
    const { publicKey } = generateKeyPairSync('rsa', { modulusLength: size, publicExponent: exponent });
    const jwk = publicKey.export({ format: 'jwk' });
    material = { n: jwk.n, e: jwk.e };
  } else {
    const { publicKey } = generateKeyPairSync('ec', { namedCurve: EC_CURVES[crv] ?? 'prime256v1' });
    const jwk = publicKey.export({ format: 'jwk' });
    material = { x: jwk.x, y: jwk.y };
  }
  materialCache.set(cacheKey, material);
  return material;
}

// ---------------------------------------------------------------------------------------------
// Wire shapes
// ---------------------------------------------------------------------------------------------

function keyUrl(vault: VaultRecord, name: string, version?: string): string {
  return `https://${vaultHost(vault)}/keys/${name}${version ? `/${version}` : ''}`;
}

function recoveryUrl(vault: VaultRecord, name: string): string {
  return `https://${vaultHost(vault)}/deletedkeys/${name}`;
}

function latest(rec: KeyRecord): KeyVersion {
  const v = rec.versions[rec.versions.length - 1];
  if (!v) throw new Error(`key ${rec.name} has no versions`);
  return v;
}

/** The latest version's tags live on the record; older versions keep their own snapshot. */
function tagsOf(rec: KeyRecord, v: KeyVersion): Record<string, string> {
  return v === latest(rec) ? rec.tags : (v.tags ?? {});
}

function keySize(v: KeyVersion): number | undefined {
  return v.n ? Buffer.from(v.n, 'base64url').length * 8 : undefined;
}

function attributesOf(vault: VaultRecord, v: KeyVersion): Record<string, unknown> {
  // Field set as the live service returns it (recordings): key_size is not in the 7.5 swagger but
  // is sent for RSA keys; hsmPlatform "0" for software keys (HSM-backed value UNCONFIRMED).
  return compact({
    enabled: v.enabled,
    key_size: v.kty.startsWith('RSA') ? keySize(v) : undefined,
    nbf: v.nbf,
    exp: v.exp,
    created: v.created,
    updated: v.updated,
    ...recoveryLevelOf(vault),
    exportable: v.exportable ?? false,
    hsmPlatform: v.kty.endsWith('-HSM') ? '2' : '0',
  });
}

function jwkOf(vault: VaultRecord, rec: KeyRecord, v: KeyVersion): Record<string, unknown> {
  return compact({
    kid: keyUrl(vault, rec.name, v.version),
    kty: v.kty,
    key_ops: [...v.keyOps],
    n: v.n,
    e: v.e,
    crv: v.crv,
    x: v.x,
    y: v.y,
  });
}

function keyBundle(vault: VaultRecord, rec: KeyRecord, v: KeyVersion = latest(rec)): Record<string, unknown> {
  const tags = tagsOf(rec, v);
  return compact({
    key: jwkOf(vault, rec, v),
    attributes: attributesOf(vault, v),
    // Absent, not {}, when a key has no tags (recordings).
    tags: Object.keys(tags).length ? { ...tags } : undefined,
    managed: rec.managed ? true : undefined,
  });
}

function deletedKeyBundle(vault: VaultRecord, d: DeletedKeyRecord): Record<string, unknown> {
  return {
    recoveryId: recoveryUrl(vault, d.key.name),
    deletedDate: d.deletedDate,
    scheduledPurgeDate: d.scheduledPurgeDate,
    ...keyBundle(vault, d.key),
  };
}

function keyItem(
  vault: VaultRecord,
  rec: KeyRecord,
  v: KeyVersion,
  withVersion: boolean,
): Record<string, unknown> {
  const tags = tagsOf(rec, v);
  return compact({
    kid: keyUrl(vault, rec.name, withVersion ? v.version : undefined),
    attributes: attributesOf(vault, v),
    tags: Object.keys(tags).length ? { ...tags } : undefined,
    managed: rec.managed ? true : undefined,
  });
}

function deletedKeyItem(vault: VaultRecord, d: DeletedKeyRecord): Record<string, unknown> {
  return {
    recoveryId: recoveryUrl(vault, d.key.name),
    deletedDate: d.deletedDate,
    scheduledPurgeDate: d.scheduledPurgeDate,
    ...keyItem(vault, d.key, latest(d.key), false),
  };
}

// ---------------------------------------------------------------------------------------------
// State transitions shared by the handler and the admin API
// ---------------------------------------------------------------------------------------------

/**
 * Applies what time has done to one name: a finished recovery drops the deleted record, and a
 * deleted key past its scheduled purge date is purged by the service (as Azure does at the end of
 * the retention period).
 */
function settle(core: EmulatorCore, vault: VaultRecord, lname: string): void {
  const d = vault.deletedKeys.get(lname);
  if (!d) return;
  const now = core.now();
  if (d.recoveringUntil !== undefined) {
    if (d.recoveringUntil <= now) vault.deletedKeys.delete(lname);
    return;
  }
  if (d.scheduledPurgeDate * 1000 <= now) vault.deletedKeys.delete(lname);
}

/** Purges every deleted key past its scheduled purge date and drops finished recoveries. */
export function purgeExpired(core: EmulatorCore): number {
  let purged = 0;
  for (const vault of core.vaults.values()) {
    for (const lname of [...vault.deletedKeys.keys()]) {
      const d = vault.deletedKeys.get(lname);
      settle(core, vault, lname);
      if (d && d.recoveringUntil === undefined && !vault.deletedKeys.has(lname)) purged++;
    }
  }
  return purged;
}

function visibleKey(core: EmulatorCore, vault: VaultRecord, lname: string): KeyRecord | undefined {
  const rec = vault.keys.get(lname);
  return rec && rec.visibleAt <= core.now() ? rec : undefined;
}

interface CreateSpec {
  kty: string;
  size: number;
  exponent: number;
  crv: string;
  keyOps?: string[];
  enabled: boolean;
  nbf?: number;
  exp?: number;
  exportable?: boolean;
  tags: Record<string, string>;
}

/** A name conflict with a soft-deleted key, as Key Vault reports it (facts §1.9). */
function deletedConflict(core: EmulatorCore, d: DeletedKeyRecord, name: string): KvErrorBody {
  const now = core.now();
  if (d.visibleAt > now) {
    // Deletion not yet complete; the real inner code here is UNCONFIRMED.
    return kvError('Conflict', `Key ${name} is currently being deleted.`, 'ObjectIsBeingDeleted');
  }
  if (d.recoveringUntil !== undefined && d.recoveringUntil > now) {
    return kvError('Conflict', `Key ${name} is currently being recovered.`, 'ObjectIsBeingRecovered');
  }
  return kvError(
    'Conflict',
    `Key ${name} is currently in a deleted but recoverable state, and its name cannot be reused; in this state, the key can only be recovered or purged.`,
    'ObjectIsDeletedButRecoverable',
  );
}

/** Adds a version (creating the key if needed); the caller has checked for a deleted-name conflict. */
function addVersion(core: EmulatorCore, vault: VaultRecord, name: string, spec: CreateSpec): KeyRecord {
  const lname = name.toLowerCase();
  const nowS = seconds(core.now());
  const material = publicMaterial(spec.kty, spec.size, spec.exponent, spec.crv);
  const rsa = spec.kty.startsWith('RSA');
  const version: KeyVersion = compact({
    version: core.randomHex(32).toLowerCase(),
    kty: spec.kty,
    keyOps: spec.keyOps ?? (rsa ? [...DEFAULT_RSA_OPS] : [...DEFAULT_EC_OPS]),
    ...material,
    crv: rsa ? undefined : spec.crv,
    enabled: spec.enabled,
    nbf: spec.nbf,
    exp: spec.exp,
    created: nowS,
    updated: nowS,
    exportable: spec.exportable,
  });
  let rec = vault.keys.get(lname);
  if (rec) {
    // The previous latest version keeps a snapshot of its tags; tags belong to a version.
    const prev = latest(rec);
    prev.tags = { ...rec.tags };
    rec.versions.push(version);
    rec.tags = { ...spec.tags };
  } else {
    rec = { name, versions: [version], tags: { ...spec.tags }, visibleAt: core.now() };
    vault.keys.set(lname, rec);
  }
  return rec;
}

export interface SeedKeySpec {
  name: string;
  kty?: 'RSA' | 'EC';
  tags?: Record<string, string>;
  keyOps?: string[];
  enabled?: boolean;
  /** Unix seconds. */
  exp?: number;
  /** Unix seconds. */
  nbf?: number;
}

/** Error thrown by `seedKey`, with the status the admin API should answer. */
export class SeedKeyError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
    this.name = 'SeedKeyError';
  }
}

/**
 * Creates a key (or a new version of an existing one) directly in the vault's state, for the admin
 * API's `POST keys`. No token, permission check or audit record: this is set-up, not a data-plane
 * call. Throws `SeedKeyError` (404 unknown vault, 400 bad name, 409 name soft-deleted).
 */
export function seedKey(core: EmulatorCore, vaultName: string, spec: SeedKeySpec): KeyRecord {
  const vault = findVault(core, vaultName);
  if (!vault || vault.deleted) throw new SeedKeyError(404, `vault ${vaultName} not found`);
  // The spec comes straight from the admin API's JSON body: check it as the data plane would.
  if (typeof spec.name !== 'string' || !NAME_PATTERN.test(spec.name)) {
    throw new SeedKeyError(400, `invalid key name: ${String(spec.name)}`);
  }
  if (spec.kty !== undefined && spec.kty !== 'RSA' && spec.kty !== 'EC') {
    throw new SeedKeyError(400, `kty must be RSA or EC, not ${String(spec.kty)}`);
  }
  if (
    spec.tags !== undefined &&
    (!isRecord(spec.tags) || Object.values(spec.tags).some((v) => typeof v !== 'string'))
  ) {
    throw new SeedKeyError(400, 'tags must be a map of strings');
  }
  if (
    spec.keyOps !== undefined &&
    (!Array.isArray(spec.keyOps) || spec.keyOps.some((o) => !KEY_OPS.includes(o)))
  ) {
    throw new SeedKeyError(400, `keyOps must be a subset of ${KEY_OPS.join(', ')}`);
  }
  const lname = spec.name.toLowerCase();
  settle(core, vault, lname);
  const d = vault.deletedKeys.get(lname);
  if (d) throw new SeedKeyError(409, deletedConflict(core, d, spec.name).error.message);
  const kty = spec.kty ?? 'RSA';
  return addVersion(core, vault, vault.keys.get(lname)?.name ?? spec.name, {
    kty,
    size: 2048,
    exponent: 65537,
    crv: 'P-256',
    keyOps: spec.keyOps,
    enabled: spec.enabled ?? true,
    nbf: spec.nbf,
    exp: spec.exp,
    tags: spec.tags ?? {},
  });
}

// ---------------------------------------------------------------------------------------------
// Request context, responses and the audit record
// ---------------------------------------------------------------------------------------------

interface Route {
  op: KeyOperationName;
  name?: string;
  version?: string;
}

interface Ctx {
  core: EmulatorCore;
  req: EmuRequest;
  vault: VaultRecord;
  started: number;
  route?: Route;
  apiVersion: string;
  claims?: TokenClaims;
  principal?: Principal;
  callerIp: string;
  /** Set once authorization was evaluated (audit `isRbacAuthorized` / `isAccessPolicyMatch`). */
  authorized?: boolean;
  keyType?: string;
}

function responseHeaders(ctx: Ctx, hasBody: boolean): Record<string, string> {
  const h: Record<string, string> = {
    'Cache-Control': 'no-cache',
    Pragma: 'no-cache',
    Expires: '-1',
    'Strict-Transport-Security': 'max-age=31536000;includeSubDomains',
    'X-Content-Type-Options': 'nosniff',
    'x-ms-keyvault-region': ctx.vault.location,
    'x-ms-keyvault-service-version': SERVICE_VERSION,
    'x-ms-request-id': guid(ctx.core),
    'x-ms-keyvault-network-info': `conn_type=Ipv4;addr=${ctx.callerIp};act_addr_fam=InterNetwork;`,
  };
  if (hasBody) h['Content-Type'] = 'application/json; charset=utf-8';
  const clientRequestId = header(ctx.req, 'x-ms-client-request-id');
  if (clientRequestId) h['x-ms-client-request-id'] = clientRequestId;
  return h;
}

/** The request URL as Key Vault logs it: real host, `api-version` spelled out. */
function loggedRequestUri(req: EmuRequest): string {
  const q = req.url.indexOf('?');
  const query = q >= 0 ? req.url.slice(q).replace(/api%2Dversion=/gi, 'api-version=') : '';
  return `https://${req.host.toLowerCase()}${req.path}${query}`;
}

function auditObjectId(ctx: Ctx): string {
  const base = `https://${vaultHost(ctx.vault)}`;
  const r = ctx.route;
  if (!r) return `${base}/`;
  switch (r.op) {
    case 'KeyList':
      return `${base}/keys`;
    case 'KeyListDeleted':
      return `${base}/deletedkeys`;
    case 'KeyGetDeleted':
    case 'KeyRecover':
    case 'KeyPurge':
      // facts §5.1: a purge's id is the deletedkeys URL; recover and get-deleted address it too.
      return `${base}/deletedkeys/${r.name ?? ''}`;
    default:
      return `${base}/keys/${r.name ?? ''}`;
  }
}

function identityOf(ctx: Ctx): Record<string, unknown> | undefined {
  const c = ctx.claims;
  if (!c) return undefined;
  const p = ctx.principal;
  return {
    claim: compact({
      oid: c.oid,
      tid: c.tid,
      appid: c.appid ?? p?.appId,
      appidacr: typeof c.appidacr === 'string' ? c.appidacr : undefined,
      upn: c.upn ?? p?.upn,
      unique_name: c.unique_name,
      idtyp: c.idtyp,
      ipaddr: c.ipaddr ?? p?.ipAddress,
      xms_mirid: typeof c.xms_mirid === 'string' ? c.xms_mirid : p?.resourceId,
    }),
  };
}

function writeAudit(ctx: Ctx, status: number, body: unknown): void {
  const { core, req, vault } = ctx;
  const op = ctx.route?.op;
  if (!op) return;
  const error = isRecord(body) && isRecord(body.error) ? body.error : undefined;
  const properties: Record<string, unknown> = {
    id: auditObjectId(ctx),
    requestUri: loggedRequestUri(req),
    httpStatusCode: status,
    clientInfo: header(req, 'user-agent') ?? ctx.principal?.userAgent ?? '',
    tlsVersion: 'TLS1_3',
  };
  if (ctx.authorized !== undefined) {
    properties[vault.enableRbacAuthorization ? 'isRbacAuthorized' : 'isAccessPolicyMatch'] = ctx.authorized;
  }
  if (ctx.keyType && status < 300) {
    properties.keyProperties = { type: ctx.keyType, attributes: { hsmPlatform: '0' } };
  }
  const record: AuditRecord = compact({
    time: new Date(ctx.started).toISOString(),
    resourceId: vaultResourceId(vault).toUpperCase(),
    operationName: op,
    operationVersion: ctx.apiVersion,
    category: 'AuditEvent' as const,
    // Key Vault writes resultType Success even for 4xx (facts §0.1 #12, §5.1).
    resultType: 'Success',
    resultSignature: RESULT_SIGNATURE[status] ?? String(status),
    resultDescription: typeof error?.message === 'string' ? error.message : undefined,
    durationMs: String(Math.max(0, core.now() - ctx.started)),
    callerIpAddress: ctx.callerIp,
    correlationId: header(req, 'x-ms-client-request-id') ?? '',
    identity: identityOf(ctx),
    properties,
    location: vault.location,
  });
  core.audit(record);
}

function respond(ctx: Ctx, status: number, body?: unknown): EmuResponse {
  writeAudit(ctx, status, body);
  const res: EmuResponse = { status, headers: responseHeaders(ctx, body !== undefined) };
  if (body !== undefined) res.body = body;
  if (ctx.claims) res.callerOid = ctx.claims.oid;
  return res;
}

/** A parse or paging step that already produced the error response. */
class Fail {
  constructor(readonly res: EmuResponse) {}
}

const badParameter = (ctx: Ctx, message: string): EmuResponse =>
  respond(ctx, 400, kvError('BadParameter', message));
const fail = (ctx: Ctx, message: string): Fail => new Fail(badParameter(ctx, message));

function keyNotFound(ctx: Ctx, nameOrId: string): EmuResponse {
  // Real text (facts §1.8; recordings, for a key still being recovered too).
  return respond(
    ctx,
    404,
    kvError(
      'KeyNotFound',
      `A key with (name/id) ${nameOrId} was not found in this key vault. If you recently deleted this key you may be able to recover it using the correct recovery command. ${NOT_FOUND_HELP}`,
    ),
  );
}

function deletedKeyNotFound(ctx: Ctx, name: string): EmuResponse {
  // Real text (recordings: GET /deletedkeys/{name} while the deletion is still in progress).
  return respond(ctx, 404, kvError('KeyNotFound', `Deleted Key not found: ${name}`));
}

// ---------------------------------------------------------------------------------------------
// Authentication and authorization
// ---------------------------------------------------------------------------------------------

function challenge(vault: VaultRecord): string {
  return `Bearer authorization="https://login.microsoftonline.com/${vault.tenantId}", resource="https://vault.azure.net"`;
}

function unverifiedPayload(authorization: string): Record<string, unknown> | undefined {
  const m = /^Bearer\s+([^.\s]+)\.([^.\s]+)\.([^.\s]*)$/i.exec(authorization.trim());
  if (!m?.[2]) return undefined;
  try {
    const p: unknown = JSON.parse(Buffer.from(m[2], 'base64url').toString('utf8'));
    return isRecord(p) ? p : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Why a presented token was refused, in Key Vault's words. The payload is read unverified only to
 * pick the message; the decision itself is `core.verifyBearer`'s.
 * - audience: "AKV10022: Invalid audience. Expected https://vault.azure.net, found: …" (public issues)
 * - expired: "[TokenExpired] Error validating token: 'S2S12086'." (a Key Vault 401 quoted in
 *   Azure/azure-sdk-for-python#27266)
 * - anything else (bad signature, not a JWT): "AKV10046: Unable to resolve the key used for
 *   signature validation." (public issues)
 */
function invalidTokenMessage(core: EmulatorCore, authorization: string): string {
  if (!/^Bearer\s+\S/i.test(authorization.trim())) return UNAUTHORIZED_MESSAGE;
  const p = unverifiedPayload(authorization);
  if (p) {
    const aud = typeof p.aud === 'string' ? p.aud : '';
    // Same comparison as identity.ts: case-insensitive, trailing slash ignored.
    if (aud.replace(/\/+$/, '').toLowerCase() !== 'https://vault.azure.net') {
      return `AKV10022: Invalid audience. Expected https://vault.azure.net, found: ${aud}.`;
    }
    const nowS = seconds(core.now());
    if (typeof p.exp === 'number' && p.exp <= nowS)
      return "[TokenExpired] Error validating token: 'S2S12086'.";
    if (typeof p.nbf === 'number' && p.nbf > nowS) return 'Token not yet valid.';
  }
  return 'AKV10046: Unable to resolve the key used for signature validation.';
}

function unauthorized(ctx: Ctx, message: string): EmuResponse {
  const res = respond(ctx, 401, kvError('Unauthorized', message));
  res.headers = { ...res.headers, 'WWW-Authenticate': challenge(ctx.vault) };
  return res;
}

function callerDescription(ctx: Ctx): string {
  const c = ctx.claims;
  const appid = c?.appid ?? ctx.principal?.appId ?? '';
  return `appid=${appid};oid=${c?.oid ?? ''};iss=${c?.iss ?? ''}`;
}

/** 403 for a caller lacking the permission, in the message shapes of the two models. */
function forbidden(ctx: Ctx, op: KeyOperationName, objectPath: string): EmuResponse {
  const { vault } = ctx;
  const need = REQUIRED[op];
  const where = `${vault.name};location=${vault.location}`;
  if (vault.enableRbacAuthorization) {
    const message =
      'Caller is not authorized to perform action on resource.\r\n' +
      'If role assignments, deny assignments or role definitions were changed recently, please observe propagation time.\r\n' +
      `Caller: ${callerDescription(ctx)}\r\n` +
      `Action: '${need.dataAction}'\r\n` +
      `Resource: '${`${vaultResourceId(vault)}${objectPath}`.toLowerCase()}'\r\n` +
      'Assignment: (not found)\r\n' +
      'DenyAssignmentId: null\r\n' +
      'DecisionReason: null \r\n' +
      `Vault: ${where}\r\n`;
    return respond(ctx, 403, kvError('Forbidden', message, 'ForbiddenByRbac'));
  }
  const message = `The user, group or application '${callerDescription(ctx)}' does not have keys ${need.permission} permission on key vault '${where}'. ${POLICY_HELP}`;
  return respond(ctx, 403, kvError('Forbidden', message, 'ForbiddenByPolicy'));
}

/**
 * RBAC is evaluated at the key's own scope (`…/vaults/{v}/keys/{name}`), where Key Vault evaluates
 * it: an assignment on the vault or above covers it, and a key-scoped assignment works as in Azure.
 */
function isPermitted(ctx: Ctx, op: KeyOperationName, objectPath: string): boolean {
  const { core, vault } = ctx;
  const oid = ctx.claims?.oid ?? '';
  const need = REQUIRED[op];
  if (vault.enableRbacAuthorization) {
    return core.isAuthorized(oid, `${vaultResourceId(vault)}${objectPath}`, need.dataAction);
  }
  return vault.accessPolicies.some(
    (p) =>
      p.objectId.toLowerCase() === oid.toLowerCase() &&
      p.tenantId.toLowerCase() === vault.tenantId.toLowerCase() &&
      (p.permissions.keys ?? []).some((k) => {
        const perm = k.toLowerCase();
        return perm === need.permission || perm === 'all';
      }),
  );
}

// ---------------------------------------------------------------------------------------------
// Routing
// ---------------------------------------------------------------------------------------------

/** Percent-decoded, non-empty path segments (trailing and doubled slashes normalised away). */
function segmentsOf(path: string): string[] | undefined {
  try {
    return path
      .split('/')
      .filter((s) => s !== '')
      .map((s) => decodeURIComponent(s));
  } catch {
    return undefined;
  }
}

function routeOf(method: string, seg: string[]): Route | undefined {
  const m = method.toUpperCase();
  const collection = seg[0]?.toLowerCase();
  const [, name, third] = seg;
  if (collection === 'keys') {
    if (seg.length === 1) return m === 'GET' ? { op: 'KeyList' } : undefined;
    if (seg.length === 2) {
      if (m === 'GET') return { op: 'KeyGet', name };
      if (m === 'PATCH') return { op: 'KeyUpdate', name };
      if (m === 'DELETE') return { op: 'KeyDelete', name };
      return undefined;
    }
    if (seg.length === 3) {
      const t = third?.toLowerCase();
      if (t === 'create') return m === 'POST' ? { op: 'KeyCreate', name } : undefined;
      if (t === 'versions' && m === 'GET') return { op: 'KeyListVersions', name };
      if (m === 'GET') return { op: 'KeyGet', name, version: third };
      if (m === 'PATCH') return { op: 'KeyUpdate', name, version: third };
    }
    return undefined;
  }
  if (collection === 'deletedkeys') {
    if (seg.length === 1) return m === 'GET' ? { op: 'KeyListDeleted' } : undefined;
    if (seg.length === 2) {
      if (m === 'GET') return { op: 'KeyGetDeleted', name };
      if (m === 'DELETE') return { op: 'KeyPurge', name };
      return undefined;
    }
    if (seg.length === 3 && third?.toLowerCase() === 'recover' && m === 'POST')
      return { op: 'KeyRecover', name };
  }
  return undefined;
}

// ---------------------------------------------------------------------------------------------
// Paging
// ---------------------------------------------------------------------------------------------

/** Lists are ordered by the lower-cased name (code-unit order), which is also the paging marker. */
const byMarker = (a: [string, unknown], b: [string, unknown]): number =>
  a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0;

function encodeSkipToken(marker: string): string {
  // Opaque to clients; shaped like the real tokens (base64url JSON with NextMarker).
  return Buffer.from(JSON.stringify({ NextMarker: marker, TargetLocation: 0 })).toString('base64url');
}

function decodeSkipToken(token: string): string | undefined {
  try {
    const v: unknown = JSON.parse(Buffer.from(token, 'base64url').toString('utf8'));
    return isRecord(v) && typeof v.NextMarker === 'string' ? v.NextMarker : undefined;
  } catch {
    return undefined;
  }
}

/**
 * One page of `items` (already sorted by their marker strings). The cursor is the marker of the last
 * item served, so inserts and deletes between pages neither repeat nor skip surviving items.
 */
function page<R>(
  ctx: Ctx,
  items: Array<[string, R]>,
  toItem: (record: R) => Record<string, unknown>,
  collectionPath: string,
): { value: Array<Record<string, unknown>>; nextLink?: string } | Fail {
  const q = ctx.req.query;
  const rawMax = q.get('maxresults');
  let max = MAX_RESULTS;
  if (rawMax !== null && rawMax !== '') {
    max = Number(rawMax);
    if (!Number.isInteger(max) || max < 1 || max > MAX_RESULTS) {
      return fail(ctx, `Invalid value for maxresults: ${rawMax}. It must be between 1 and ${MAX_RESULTS}.`);
    }
  }
  const token = q.get('$skiptoken');
  let start = 0;
  if (token) {
    const marker = decodeSkipToken(token);
    if (marker === undefined) return fail(ctx, 'The skip token is invalid.');
    start = items.findIndex(([k]) => k > marker);
    if (start < 0) start = items.length;
  }
  const slice = items.slice(start, start + max);
  const last = slice[slice.length - 1];
  // Only the page's records are turned into wire items (lists of thousands stay cheap).
  const out: { value: Array<Record<string, unknown>>; nextLink?: string } = {
    value: slice.map(([, r]) => toItem(r)),
  };
  if (last && start + max < items.length) {
    // Absolute, on the real host without port (design §5); nextLink is omitted on the last page
    // because the swagger types it as a non-nullable string.
    const params = [`api-version=${ctx.apiVersion}`, `$skiptoken=${encodeSkipToken(last[0])}`];
    if (rawMax) params.push(`maxresults=${max}`);
    out.nextLink = `https://${vaultHost(ctx.vault)}/${collectionPath}?${params.join('&')}`;
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Body parsing
// ---------------------------------------------------------------------------------------------

function parseBody(ctx: Ctx): Record<string, unknown> | Fail {
  const text = ctx.req.body.length ? ctx.req.body.toString('utf8') : '';
  if (!text.trim()) return fail(ctx, 'The request body is missing.');
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch {
    return fail(ctx, 'The request body is not valid JSON.');
  }
  return isRecord(v) ? v : fail(ctx, 'The request body must be a JSON object.');
}

interface AttributeUpdate {
  enabled?: boolean;
  nbf?: number;
  exp?: number;
  exportable?: boolean;
}

function parseAttributes(ctx: Ctx, raw: unknown): AttributeUpdate | Fail {
  if (raw === undefined || raw === null) return {};
  if (!isRecord(raw)) return fail(ctx, 'Property attributes must be an object.');
  const out: AttributeUpdate = {};
  if (raw.enabled !== undefined && raw.enabled !== null) {
    if (typeof raw.enabled !== 'boolean') return fail(ctx, 'Property enabled must be a boolean.');
    out.enabled = raw.enabled;
  }
  for (const f of ['nbf', 'exp'] as const) {
    const v = raw[f];
    if (v === undefined || v === null) continue;
    if (typeof v !== 'number' || !Number.isInteger(v)) return fail(ctx, `Property ${f} must be an integer.`);
    out[f] = v;
  }
  if (raw.exportable !== undefined && raw.exportable !== null) {
    if (typeof raw.exportable !== 'boolean') return fail(ctx, 'Property exportable must be a boolean.');
    out.exportable = raw.exportable;
  }
  return out;
}

function parseTags(ctx: Ctx, raw: unknown): Record<string, string> | undefined | Fail {
  if (raw === undefined || raw === null) return undefined;
  if (!isRecord(raw) || Object.values(raw).some((v) => typeof v !== 'string')) {
    return fail(ctx, 'Property tags must be a map of strings.');
  }
  if (Object.keys(raw).length > MAX_TAGS) return fail(ctx, `The number of tags exceeds ${MAX_TAGS}.`);
  return { ...(raw as Record<string, string>) };
}

function parseKeyOps(ctx: Ctx, raw: unknown): string[] | undefined | Fail {
  if (raw === undefined || raw === null) return undefined;
  if (!Array.isArray(raw) || raw.some((o) => typeof o !== 'string' || !KEY_OPS.includes(o))) {
    return fail(ctx, `Property key_ops has an invalid value. Allowed: ${KEY_OPS.join(', ')}.`);
  }
  return [...new Set(raw as string[])];
}

// ---------------------------------------------------------------------------------------------
// Operations
// ---------------------------------------------------------------------------------------------

function createKey(ctx: Ctx, name: string): EmuResponse {
  const { core, vault } = ctx;
  const body = parseBody(ctx);
  if (body instanceof Fail) return body.res;
  const kty = body.kty;
  if (typeof kty !== 'string' || !kty) return badParameter(ctx, 'Property kty is required.');
  if (!['RSA', 'RSA-HSM', 'EC', 'EC-HSM'].includes(kty)) {
    return badParameter(ctx, `Key type ${kty} is not supported by this vault.`);
  }
  const rsa = kty.startsWith('RSA');
  const size: unknown = rsa ? (body.key_size ?? 2048) : 0;
  if (rsa && (typeof size !== 'number' || !RSA_SIZES.includes(size))) {
    return badParameter(
      ctx,
      `Invalid key size ${JSON.stringify(size)}. Supported sizes: ${RSA_SIZES.join(', ')}.`,
    );
  }
  const exponent: unknown = rsa ? (body.public_exponent ?? 65537) : 65537;
  if (exponent !== 65537 && exponent !== 3) {
    return badParameter(ctx, `Invalid public exponent ${JSON.stringify(exponent)}.`);
  }
  const crv: unknown = rsa ? 'P-256' : (body.crv ?? 'P-256');
  if (typeof crv !== 'string' || !Object.hasOwn(EC_CURVES, crv)) {
    return badParameter(ctx, `Invalid curve ${JSON.stringify(crv)}.`);
  }
  const keyOps = parseKeyOps(ctx, body.key_ops);
  if (keyOps instanceof Fail) return keyOps.res;
  const attrs = parseAttributes(ctx, body.attributes);
  if (attrs instanceof Fail) return attrs.res;
  const tags = parseTags(ctx, body.tags);
  if (tags instanceof Fail) return tags.res;

  const lname = name.toLowerCase();
  settle(core, vault, lname);
  const d = vault.deletedKeys.get(lname);
  if (d) return respond(ctx, 409, deletedConflict(core, d, name));
  const existing = vault.keys.get(lname);
  const rec = addVersion(core, vault, existing?.name ?? name, {
    kty,
    size: typeof size === 'number' ? size : 2048,
    exponent,
    crv,
    keyOps,
    enabled: attrs.enabled ?? true,
    nbf: attrs.nbf,
    exp: attrs.exp,
    exportable: attrs.exportable,
    tags: tags ?? {},
  });
  ctx.keyType = kty;
  return respond(ctx, 200, keyBundle(vault, rec));
}

function findVersion(rec: KeyRecord, version: string): KeyVersion | undefined {
  const v = version.toLowerCase();
  return rec.versions.find((x) => x.version.toLowerCase() === v);
}

function getKey(ctx: Ctx, name: string, version?: string): EmuResponse {
  const { core, vault } = ctx;
  const lname = name.toLowerCase();
  settle(core, vault, lname);
  const rec = visibleKey(core, vault, lname);
  if (!rec) return keyNotFound(ctx, version ? `${name}/${version}` : name);
  const v = version ? findVersion(rec, version) : latest(rec);
  if (!v) return keyNotFound(ctx, `${name}/${version ?? ''}`);
  ctx.keyType = v.kty;
  return respond(ctx, 200, keyBundle(vault, rec, v));
}

function listKeys(ctx: Ctx): EmuResponse {
  const { core, vault } = ctx;
  const now = core.now();
  const items: Array<[string, KeyRecord]> = [];
  for (const [lname, rec] of vault.keys) if (rec.visibleAt <= now) items.push([lname, rec]);
  items.sort(byMarker);
  const result = page(ctx, items, (rec) => keyItem(vault, rec, latest(rec), false), 'keys');
  return result instanceof Fail ? result.res : respond(ctx, 200, result);
}

function listVersions(ctx: Ctx, name: string): EmuResponse {
  const { core, vault } = ctx;
  const lname = name.toLowerCase();
  settle(core, vault, lname);
  const rec = visibleKey(core, vault, lname);
  if (!rec) return keyNotFound(ctx, name);
  // Versions in creation order; the marker is the position (versions are only ever appended).
  const items = rec.versions.map((v, i): [string, KeyVersion] => [String(i).padStart(8, '0'), v]);
  const result = page(ctx, items, (v) => keyItem(vault, rec, v, true), `keys/${rec.name}/versions`);
  return result instanceof Fail ? result.res : respond(ctx, 200, result);
}

function updateKey(ctx: Ctx, name: string, version?: string): EmuResponse {
  const { core, vault } = ctx;
  const body = parseBody(ctx);
  if (body instanceof Fail) return body.res;
  const keyOps = parseKeyOps(ctx, body.key_ops);
  if (keyOps instanceof Fail) return keyOps.res;
  const attrs = parseAttributes(ctx, body.attributes);
  if (attrs instanceof Fail) return attrs.res;
  const tags = parseTags(ctx, body.tags);
  if (tags instanceof Fail) return tags.res;
  const lname = name.toLowerCase();
  settle(core, vault, lname);
  const rec = visibleKey(core, vault, lname);
  if (!rec) return keyNotFound(ctx, version ? `${name}/${version}` : name);
  const v = version ? findVersion(rec, version) : latest(rec);
  if (!v) return keyNotFound(ctx, `${name}/${version ?? ''}`);
  if (keyOps) v.keyOps = keyOps;
  if (attrs.enabled !== undefined) v.enabled = attrs.enabled;
  if (attrs.nbf !== undefined) v.nbf = attrs.nbf;
  if (attrs.exp !== undefined) v.exp = attrs.exp;
  if (attrs.exportable !== undefined) v.exportable = attrs.exportable;
  if (tags) {
    if (v === latest(rec)) rec.tags = tags;
    else v.tags = tags;
  }
  v.updated = seconds(core.now());
  ctx.keyType = v.kty;
  return respond(ctx, 200, keyBundle(vault, rec, v));
}

function deleteKey(ctx: Ctx, name: string): EmuResponse {
  const { core, vault } = ctx;
  const lname = name.toLowerCase();
  settle(core, vault, lname);
  const rec = visibleKey(core, vault, lname);
  if (!rec) return keyNotFound(ctx, name);
  vault.keys.delete(lname);
  ctx.keyType = latest(rec).kty;
  if (!vault.enableSoftDelete) {
    // Without soft delete the key is gone at once; no recoveryId, so the SDK's delete poller
    // finishes immediately (facts §1.3).
    return respond(ctx, 200, keyBundle(vault, rec));
  }
  const now = core.now();
  const deletedDate = seconds(now);
  const d: DeletedKeyRecord = {
    key: rec,
    deletedDate,
    scheduledPurgeDate: deletedDate + vault.softDeleteRetentionInDays * 86400,
    visibleAt: now + Math.max(0, core.timing.completionLagMs),
  };
  vault.deletedKeys.set(lname, d);
  return respond(ctx, 200, deletedKeyBundle(vault, d));
}

/** The deleted record a get/recover/purge may see: none while the deletion is still in flight. */
function visibleDeleted(ctx: Ctx, name: string): DeletedKeyRecord | undefined {
  const lname = name.toLowerCase();
  settle(ctx.core, ctx.vault, lname);
  const d = ctx.vault.deletedKeys.get(lname);
  return d && d.visibleAt <= ctx.core.now() ? d : undefined;
}

function getDeletedKey(ctx: Ctx, name: string): EmuResponse {
  const d = visibleDeleted(ctx, name);
  if (!d) return deletedKeyNotFound(ctx, name);
  ctx.keyType = latest(d.key).kty;
  // A key whose recovery is still in flight still reads as deleted (its state has not flipped).
  return respond(ctx, 200, deletedKeyBundle(ctx.vault, d));
}

function listDeletedKeys(ctx: Ctx): EmuResponse {
  const { core, vault } = ctx;
  const now = core.now();
  const items: Array<[string, DeletedKeyRecord]> = [];
  for (const lname of [...vault.deletedKeys.keys()]) {
    settle(core, vault, lname);
    const d = vault.deletedKeys.get(lname);
    if (d && d.visibleAt <= now) items.push([lname, d]);
  }
  items.sort(byMarker);
  const result = page(ctx, items, (d) => deletedKeyItem(vault, d), 'deletedkeys');
  return result instanceof Fail ? result.res : respond(ctx, 200, result);
}

function inFlightConflict(ctx: Ctx, name: string): EmuResponse | undefined {
  const d = ctx.vault.deletedKeys.get(name.toLowerCase());
  const now = ctx.core.now();
  if (!d) return undefined;
  if (d.visibleAt > now || (d.recoveringUntil !== undefined && d.recoveringUntil > now)) {
    return respond(ctx, 409, deletedConflict(ctx.core, d, name));
  }
  return undefined;
}

function recoverDeletedKey(ctx: Ctx, name: string): EmuResponse {
  const { core, vault } = ctx;
  settle(core, vault, name.toLowerCase());
  // A recover while the deletion or another recovery is in flight: 409 Conflict
  // (ObjectIsBeingRecovered per facts §1.9; ObjectIsBeingDeleted UNCONFIRMED).
  const conflict = inFlightConflict(ctx, name);
  if (conflict) return conflict;
  const d = visibleDeleted(ctx, name);
  if (!d) return deletedKeyNotFound(ctx, name);
  const lname = name.toLowerCase();
  const now = core.now();
  const lag = Math.max(0, core.timing.completionLagMs);
  // The key is back in the store but invisible to GET until the lag passes (recordings: 404, 404,
  // 200 on GET /keys/{name}/ after the recover returned 200).
  d.key.visibleAt = now + lag;
  vault.keys.set(lname, d.key);
  if (lag > 0) d.recoveringUntil = now + lag;
  else vault.deletedKeys.delete(lname);
  ctx.keyType = latest(d.key).kty;
  return respond(ctx, 200, keyBundle(vault, d.key));
}

function purgeDeletedKey(ctx: Ctx, name: string): EmuResponse {
  const { core, vault } = ctx;
  settle(core, vault, name.toLowerCase());
  const conflict = inFlightConflict(ctx, name);
  if (conflict) return conflict;
  const d = visibleDeleted(ctx, name);
  if (!d) return deletedKeyNotFound(ctx, name);
  if (vault.enablePurgeProtection) {
    // Real text quoted in microsoft/AzureTRE#1951 (facts §1.7).
    return respond(
      ctx,
      403,
      kvError(
        'Forbidden',
        'Operation "purge" is not allowed because purge protection is enabled for this vault. Key Vault service will automatically purge it after the retention period has passed.',
      ),
    );
  }
  vault.deletedKeys.delete(name.toLowerCase());
  return respond(ctx, 204);
}

// ---------------------------------------------------------------------------------------------
// The handler
// ---------------------------------------------------------------------------------------------

/**
 * An unknown (or ARM-deleted) vault. In Azure its host name does not resolve, so the client fails
 * with ENOTFOUND before any HTTP exchange. Through the CONNECT proxy the host always "resolves",
 * so the emulator answers 404 instead: the SDK then throws a RestError at once (404 is not retried
 * and, unlike a 401, does not start the challenge flow), which is the closest observable outcome
 * (a permanent failure for that vault). No audit record: there is no vault to write it.
 */
function unknownVault(core: EmulatorCore, req: EmuRequest, name: string | undefined): EmuResponse {
  const label = name ?? req.host;
  return {
    status: 404,
    headers: {
      'Content-Type': 'application/json; charset=utf-8',
      'x-ms-request-id': guid(core),
      'x-ms-keyvault-service-version': SERVICE_VERSION,
    },
    body: kvError(
      'VaultNotFound',
      `The vault '${label}' was not found. In Azure the host name ${req.host} would not resolve (DNS).`,
    ),
  };
}

export function createKeyVaultService(core: EmulatorCore): ServiceHandler {
  return (req: EmuRequest): EmuResponse => {
    const started = core.now();
    const vaultName = vaultNameFromHost(req.host);
    const vault = vaultName ? findVault(core, vaultName) : undefined;
    if (!vault || vault.deleted) return unknownVault(core, req, vaultName);

    const segments = segmentsOf(req.path);
    const ctx: Ctx = {
      core,
      req,
      vault,
      started,
      route: segments ? routeOf(req.method, segments) : undefined,
      apiVersion: req.query.get('api-version') ?? '',
      callerIp: req.remoteAddress,
    };

    // 1. Authentication. Real vaults log unauthenticated calls too (an AuditEvent with
    //    resultSignature Unauthorized and no identity), so the 401s are audited as well — including
    //    the body-less first request of every KeyClient.
    const authorization = header(req, 'authorization');
    if (!authorization) return unauthorized(ctx, UNAUTHORIZED_MESSAGE);
    const claims = core.verifyBearer(authorization, [...VAULT_AUDIENCES]);
    if (!claims) return unauthorized(ctx, invalidTokenMessage(core, authorization));
    ctx.claims = claims;
    ctx.principal = core.principals.get(claims.oid);
    ctx.callerIp = ctx.principal?.ipAddress ?? req.remoteAddress;
    if (claims.tid && claims.tid.toLowerCase() !== vault.tenantId.toLowerCase()) {
      // A token from another tenant (the vault only trusts its own); wording UNCONFIRMED.
      return unauthorized(
        ctx,
        `AKV10032: Invalid issuer. Expected one of https://sts.windows.net/${vault.tenantId}/, found: ${claims.iss}.`,
      );
    }

    // 2. Request shape.
    if (!segments) return badParameter(ctx, 'The request URI is not valid.');
    if (!ctx.route) {
      // Secrets, certificates, crypto operations, backup/restore, rotation: not emulated. 501 is not
      // retried by the SDK, so a test that strays here fails fast and visibly.
      return respond(
        ctx,
        501,
        kvError('NotImplemented', `The emulator does not implement ${req.method} ${req.path}.`),
      );
    }
    if (!ctx.apiVersion) return badParameter(ctx, 'The api-version query parameter is missing.');
    if (!SUPPORTED_API_VERSIONS.includes(ctx.apiVersion)) {
      // Wording of a real Key Vault 400 (Azure/azure-sdk-for-python#28595).
      return badParameter(
        ctx,
        `The specified version (${ctx.apiVersion}) is not recognized. Consider using the latest supported version (${LATEST_API_VERSION}).`,
      );
    }
    const { op, name, version } = ctx.route;
    if (name !== undefined && !NAME_PATTERN.test(name)) {
      return badParameter(ctx, `The request URI contains an invalid name: ${name}`);
    }

    // 3. Network: a vault with public access disabled refuses a caller that is not on a private
    //    link (there is none here). innererror ForbiddenByConnection as seen in public issues.
    if (vault.publicNetworkAccess === 'Disabled') {
      return respond(
        ctx,
        403,
        kvError(
          'Forbidden',
          `Public network access is disabled and request is not from a trusted service nor via an approved private link.\r\nCaller: ${callerDescription(ctx)}\r\nVault: ${vault.name};location=${vault.location}`,
          'ForbiddenByConnection',
        ),
      );
    }

    // 4. Authorization, before any existence check (a caller without rights learns nothing).
    // RBAC resource of a deleted key is still the key (keys/{name}), as the role assignment is.
    const objectPath = name ? `/keys/${name}` : '';
    ctx.authorized = isPermitted(ctx, op, objectPath);
    if (!ctx.authorized) return forbidden(ctx, op, objectPath);

    // 5. The operation.
    switch (op) {
      case 'KeyCreate':
        return createKey(ctx, name ?? '');
      case 'KeyGet':
        return getKey(ctx, name ?? '', version);
      case 'KeyList':
        return listKeys(ctx);
      case 'KeyListVersions':
        return listVersions(ctx, name ?? '');
      case 'KeyUpdate':
        return updateKey(ctx, name ?? '', version);
      case 'KeyDelete':
        return deleteKey(ctx, name ?? '');
      case 'KeyGetDeleted':
        return getDeletedKey(ctx, name ?? '');
      case 'KeyListDeleted':
        return listDeletedKeys(ctx);
      case 'KeyRecover':
        return recoverDeletedKey(ctx, name ?? '');
      case 'KeyPurge':
        return purgeDeletedKey(ctx, name ?? '');
    }
  };
}
