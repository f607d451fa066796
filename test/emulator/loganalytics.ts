/**
 * The emulated Log Analytics query API (`https://api.loganalytics.io/v1`), serving the vaults'
 * AuditEvent records as rows of the resource-specific table `AZKVAuditLogs`.
 *
 * Wire shapes (Azure/azure-rest-api-specs `specification/operationalinsights/data-plane/
 * Microsoft.OperationalInsights/stable/v1/OperationalInsights.json` and its `oms-post-example.json`):
 * - `POST /v1/workspaces/{workspaceId}/query`, body `{ query, timespan? }` (also `GET …/query?query=&timespan=`);
 * - 200 `{ tables: [{ name: 'PrimaryResult', columns: [{ name, type }], rows: [[…]] }] }`; `datetime`
 *   values are ISO strings, `dynamic` values are JSON text (the SDK parses both), numbers and booleans
 *   are JSON numbers and booleans;
 * - errors `{ error: { message, code, correlationId, innererror? } }`: 400 `BadArgumentError` (with
 *   `innererror` `SyntaxError`/`SemanticError` for a query the service cannot run), 401
 *   `AuthorizationRequiredError`, 403 `InsufficientAccessError` (no query permission on the workspace)
 *   or `InvalidTokenError` (a token for another audience), 404 `PathNotFoundError` /
 *   `WorkspaceNotFoundError` (public SDK troubleshooting guides and issue threads).
 * - Authorization: `Microsoft.OperationalInsights/workspaces/query/read` on the workspace's ARM id
 *   (the action of the built-in "Log Analytics Data Reader" role; "Log Analytics Reader" and "Reader"
 *   hold it through `*\/read`). Table-level RBAC and resource-context access are not modelled.
 *
 * Columns of AZKVAuditLogs: MicrosoftDocs/azure-reference-other
 * `azure-monitor-ref/tables/includes/azkvauditlogs-include.md` (learn.microsoft.com
 * /azure/azure-monitor/reference/tables/azkvauditlogs). The `Identity` column holds the record's
 * `identity` object (`{ claim: { oid, upn, … } }`), so `Identity.claim.oid` reads the object id.
 *
 * LIMIT — the emulator cannot run KQL. It understands exactly two query texts: kvguard's documented
 * key-deletion templates (lib/adapters/loganalytics.ts `keyDeletionQuery`, one key, and
 * `keyDeletionsQuery`, every deletion in a window), fixed texts in which only the time window, the
 * vault name and the key name are literals. The template is copied here on
 * purpose (not imported from lib/): it is the contract, and a change on either side must fail a test.
 * Any other query text, however valid as KQL, is answered 400 `BadArgumentError` with the inner code
 * `EmulatorUnsupportedQuery`, so a test can never pass against a query Azure was never shown.
 *
 * Ingestion: Azure makes a record queryable minutes after the call. A record is visible here once
 * `time + workspace.ingestionDelayMs` has passed on the emulator clock (default 0).
 */
import { randomUUID } from 'node:crypto';
import type {
  AuditRecord,
  EmuRequest,
  EmuResponse,
  EmulatorCore,
  ServiceHandler,
  TokenClaims,
  WorkspaceRecord,
} from './types';

export const LOG_ANALYTICS_HOST = 'api.loganalytics.io';
/** Token audiences the query API accepts (public cloud; `.azure.com` is the newer alias host). */
export const LOG_ANALYTICS_AUDIENCES = ['https://api.loganalytics.io', 'https://api.loganalytics.azure.com'];
/** The RBAC action a workspace query needs. */
export const QUERY_ACTION = 'Microsoft.OperationalInsights/workspaces/query/read';

export type KustoType = 'string' | 'int' | 'long' | 'real' | 'bool' | 'datetime' | 'dynamic';

export interface ColumnDescriptor {
  name: string;
  type: KustoType;
}

/** Every column of AZKVAuditLogs, with its type, as the table reference lists them. */
export const AZKV_AUDIT_LOGS_COLUMNS: readonly ColumnDescriptor[] = [
  { name: 'AddressAuthorizationType', type: 'string' },
  { name: 'Algorithm', type: 'string' },
  { name: 'AppliedAssignmentId', type: 'string' },
  { name: '_BilledSize', type: 'real' },
  { name: 'CallerIpAddress', type: 'string' },
  { name: 'CertificateIssuerProperties', type: 'dynamic' },
  { name: 'CertificatePolicyProperties', type: 'dynamic' },
  { name: 'CertificateProperties', type: 'dynamic' },
  { name: 'CertificateRequestProperties', type: 'dynamic' },
  { name: 'ClientInfo', type: 'string' },
  { name: 'CorrelationId', type: 'string' },
  { name: 'DurationMs', type: 'int' },
  { name: 'EnabledForDeployment', type: 'bool' },
  { name: 'EnabledForDiskEncryption', type: 'bool' },
  { name: 'EnabledForTemplateDeployment', type: 'bool' },
  { name: 'EnablePurgeProtection', type: 'bool' },
  { name: 'EnableRbacAuthorization', type: 'bool' },
  { name: 'EnableSoftDelete', type: 'bool' },
  { name: 'HsmPoolResourceId', type: 'string' },
  { name: 'HttpStatusCode', type: 'int' },
  { name: 'Id', type: 'string' },
  { name: 'Identity', type: 'dynamic' },
  { name: 'IsAccessPolicyMatch', type: 'bool' },
  { name: 'IsAddressAuthorized', type: 'bool' },
  { name: '_IsBillable', type: 'string' },
  { name: 'IsRbacAuthorized', type: 'bool' },
  { name: 'KeyProperties', type: 'dynamic' },
  { name: 'NetworkAcls', type: 'dynamic' },
  { name: 'Nsp', type: 'dynamic' },
  { name: 'OperationName', type: 'string' },
  { name: 'OperationVersion', type: 'string' },
  { name: 'Properties', type: 'dynamic' },
  { name: 'RequestUri', type: 'string' },
  { name: '_ResourceId', type: 'string' },
  { name: 'ResultDescription', type: 'string' },
  { name: 'ResultSignature', type: 'string' },
  { name: 'ResultType', type: 'string' },
  { name: 'SecretProperties', type: 'dynamic' },
  { name: 'Sku', type: 'dynamic' },
  { name: 'SoftDeleteRetentionInDays', type: 'int' },
  { name: 'SourceSystem', type: 'string' },
  { name: 'StorageAccountProperties', type: 'dynamic' },
  { name: 'StorageSasDefinitionProperties', type: 'dynamic' },
  { name: 'SubnetId', type: 'string' },
  { name: '_SubscriptionId', type: 'string' },
  { name: 'TenantId', type: 'string' },
  { name: 'TimeGenerated', type: 'datetime' },
  { name: 'Tlsversion', type: 'string' },
  { name: 'TrustedService', type: 'string' },
  { name: 'Type', type: 'string' },
  { name: 'VaultProperties', type: 'dynamic' },
];

/** One AZKVAuditLogs row: column name → value (ISO string for datetime, object for dynamic). */
export type AzkvRow = Record<string, unknown>;

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

const str = (v: unknown): string | null => (typeof v === 'string' ? v : null);
const bool = (v: unknown): boolean | null => (typeof v === 'boolean' ? v : null);
function int(v: unknown): number | null {
  const n = typeof v === 'number' ? v : typeof v === 'string' && v.trim() !== '' ? Number(v) : NaN;
  return Number.isInteger(n) ? n : null;
}

/** The vault name of a record (its resource id ends in `/vaults/<name>`), lower-cased. */
export function vaultOfRecord(record: AuditRecord): string | undefined {
  return /\/vaults\/([^/]+)$/i.exec(record.resourceId)?.[1]?.toLowerCase();
}

/**
 * Maps an AuditEvent record (facts §5.1) onto an AZKVAuditLogs row. Columns the record cannot
 * supply (vault properties of VaultPut, certificate details, network fields) are null.
 */
export function toAzkvAuditLogsRow(record: AuditRecord, workspace: WorkspaceRecord): AzkvRow {
  const properties = isRecord(record.properties) ? record.properties : {};
  const resourceId = record.resourceId.toLowerCase();
  const row: AzkvRow = Object.fromEntries(AZKV_AUDIT_LOGS_COLUMNS.map((c) => [c.name, null]));
  Object.assign(row, {
    TimeGenerated: new Date(record.time).toISOString(),
    OperationName: record.operationName,
    OperationVersion: str(record.operationVersion),
    ResultType: str(record.resultType),
    ResultSignature: str(record.resultSignature),
    ResultDescription: str(record.resultDescription),
    DurationMs: int(record.durationMs),
    CallerIpAddress: str(record.callerIpAddress),
    CorrelationId: str(record.correlationId),
    Identity: isRecord(record.identity) ? record.identity : null,
    Properties: properties,
    Id: str(properties.id),
    RequestUri: str(properties.requestUri),
    HttpStatusCode: int(properties.httpStatusCode),
    ClientInfo: str(properties.clientInfo),
    IsRbacAuthorized: bool(properties.isRbacAuthorized),
    IsAccessPolicyMatch: bool(properties.isAccessPolicyMatch),
    KeyProperties: isRecord(properties.keyProperties) ? properties.keyProperties : null,
    Tlsversion: str(properties.tlsVersion),
    _ResourceId: resourceId,
    _SubscriptionId: /^\/subscriptions\/([^/]+)/.exec(resourceId)?.[1] ?? null,
    _IsBillable: 'True',
    _BilledSize: Buffer.byteLength(JSON.stringify(record)),
    TenantId: workspace.id,
    SourceSystem: 'Azure',
    Type: 'AZKVAuditLogs',
  });
  return row;
}

/** A value as the query API writes it into `rows`. */
export function wireValue(type: KustoType, value: unknown): unknown {
  if (value === null || value === undefined) return null;
  switch (type) {
    case 'datetime': {
      // Kusto datetimes have 100 ns ticks and are written with seven fractional digits.
      const time =
        value instanceof Date ? value : new Date(typeof value === 'number' ? value : `${value as string}`);
      return time.toISOString().replace(/\.(\d{3})Z$/, '.$10000Z');
    }
    case 'dynamic':
      return JSON.stringify(value);
    default:
      return value;
  }
}

// ---------------------------------------------------------------------------------------------
// The two query texts the emulator understands (see LIMIT above)
// ---------------------------------------------------------------------------------------------

const CALLER_EXTEND =
  '| extend CallerObjectId = tostring(Identity.claim.oid), CallerUpn = tostring(Identity.claim.upn), CallerAppId = tostring(Identity.claim.appid), CallerIdType = tostring(Identity.claim.idtyp)';
const PROJECT =
  '| project TimeGenerated, _ResourceId, Id, OperationName, HttpStatusCode, CallerObjectId, CallerUpn, CallerAppId, CallerIdType, CallerIpAddress, ClientInfo, Identity';

/** One key's deletions (`keyDeletionQuery`): window, vault and key are literals. */
export const KEY_DELETION_TEMPLATE_LINES = [
  'AZKVAuditLogs',
  '| where TimeGenerated between (datetime(<FROM>) .. datetime(<TO>))',
  '| where OperationName == "KeyDelete" and HttpStatusCode between (200 .. 299)',
  '| where _ResourceId endswith <"/providers/microsoft.keyvault/vaults/" + VAULT>',
  '| where Id endswith <"/keys/" + KEY>',
  CALLER_EXTEND,
  PROJECT,
  '| order by TimeGenerated asc',
  '| take 50',
] as const;

/** Every deletion in a window (`keyDeletionsQuery`, a log alert without dimensions): the window only. */
export const KEY_DELETIONS_TEMPLATE_LINES = [
  'AZKVAuditLogs',
  '| where TimeGenerated between (datetime(<FROM>) .. datetime(<TO>))',
  '| where OperationName == "KeyDelete" and HttpStatusCode between (200 .. 299)',
  CALLER_EXTEND,
  PROJECT,
  '| order by TimeGenerated asc',
  '| take 500',
] as const;

const PROJECTED: readonly ColumnDescriptor[] = [
  { name: 'TimeGenerated', type: 'datetime' },
  { name: '_ResourceId', type: 'string' },
  { name: 'Id', type: 'string' },
  { name: 'OperationName', type: 'string' },
  { name: 'HttpStatusCode', type: 'int' },
  { name: 'CallerObjectId', type: 'string' },
  { name: 'CallerUpn', type: 'string' },
  { name: 'CallerAppId', type: 'string' },
  { name: 'CallerIdType', type: 'string' },
  { name: 'CallerIpAddress', type: 'string' },
  { name: 'ClientInfo', type: 'string' },
  { name: 'Identity', type: 'dynamic' },
];
const VAULT_SUFFIX_PREFIX = '/providers/microsoft.keyvault/vaults/';
const KEY_SUFFIX_PREFIX = '/keys/';

const escapeRegExp = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
const DATETIME = '(\\d{4}-\\d{2}-\\d{2}T\\d{2}:\\d{2}:\\d{2}(?:\\.\\d{1,7})?Z)';
const STRING_LITERAL = '("(?:[^"\\\\\\r\\n]|\\\\.)*")';

function templatePattern(lines: readonly string[]): RegExp {
  return new RegExp(
    `^${lines
      .map((line) =>
        escapeRegExp(line)
          .replace(escapeRegExp('<FROM>'), DATETIME)
          .replace(escapeRegExp('<TO>'), DATETIME)
          .replace(escapeRegExp('<"/providers/microsoft.keyvault/vaults/" + VAULT>'), STRING_LITERAL)
          .replace(escapeRegExp('<"/keys/" + KEY>'), STRING_LITERAL),
      )
      .join('\\n')}$`,
  );
}

const KEY_DELETION_PATTERN = templatePattern(KEY_DELETION_TEMPLATE_LINES);
const KEY_DELETIONS_PATTERN = templatePattern(KEY_DELETIONS_TEMPLATE_LINES);

/** KQL double-quoted literal → its value; `undefined` for an escape KQL does not define. */
export function unquoteKql(literal: string): string | undefined {
  let out = '';
  for (let i = 1; i < literal.length - 1; i++) {
    const c = literal[i]!;
    if (c !== '\\') {
      out += c;
      continue;
    }
    const next = literal[++i];
    const map: Record<string, string> = { '\\': '\\', '"': '"', "'": "'", t: '\t', n: '\n' };
    if (next === undefined || !(next in map)) return undefined;
    out += map[next];
  }
  return out;
}

export interface KeyDeletionQuery {
  from: number;
  to: number;
  /** Absent for the window-only template. */
  vault?: string;
  key?: string;
  take: number;
}

/** Parses one of kvguard's two templates strictly; a reason when the text is anything else. */
export function parseKeyDeletionQuery(text: string): KeyDeletionQuery | { error: string } {
  const normalised = text.replace(/\r\n/g, '\n').trim();
  const one = KEY_DELETION_PATTERN.exec(normalised);
  const all = one ? undefined : KEY_DELETIONS_PATTERN.exec(normalised);
  const m = one ?? all;
  if (!m) return { error: 'the query is not one of the key-deletion templates' };
  const [, fromText = '', toText = '', vaultLiteral, keyLiteral] = m;
  const from = Date.parse(fromText);
  const to = Date.parse(toText);
  if (Number.isNaN(from) || Number.isNaN(to)) return { error: 'a datetime literal is not a valid time' };
  if (!one) return { from, to, take: 500 };
  const vaultSuffix = unquoteKql(vaultLiteral ?? '');
  const keySuffix = unquoteKql(keyLiteral ?? '');
  if (vaultSuffix === undefined || keySuffix === undefined) {
    return { error: 'a string literal has an unknown escape' };
  }
  if (!vaultSuffix.startsWith(VAULT_SUFFIX_PREFIX) || !keySuffix.startsWith(KEY_SUFFIX_PREFIX)) {
    return { error: 'the vault or key literal does not have the template prefix' };
  }
  return {
    from,
    to,
    vault: vaultSuffix.slice(VAULT_SUFFIX_PREFIX.length),
    key: keySuffix.slice(KEY_SUFFIX_PREFIX.length),
    take: 50,
  };
}

/** `tostring(dynamic)`: the string itself, JSON text for other values, "" for null/absent. */
function kqlToString(v: unknown): string {
  if (v === null || v === undefined) return '';
  return typeof v === 'string' ? v : JSON.stringify(v);
}

/** Runs the parsed template over the rows, as Kusto would (string `endswith` ignores case). */
export function runKeyDeletionQuery(q: KeyDeletionQuery, rows: AzkvRow[]): unknown[][] {
  const vaultSuffix = q.vault === undefined ? '' : `${VAULT_SUFFIX_PREFIX}${q.vault}`.toLowerCase();
  const keySuffix = q.key === undefined ? '' : `${KEY_SUFFIX_PREFIX}${q.key}`.toLowerCase();
  const matches = rows.filter((r) => {
    const t = Date.parse(String(r.TimeGenerated));
    const status = r.HttpStatusCode;
    return (
      t >= q.from &&
      t <= q.to &&
      r.OperationName === 'KeyDelete' &&
      typeof status === 'number' &&
      status >= 200 &&
      status <= 299 &&
      kqlToString(r._ResourceId).toLowerCase().endsWith(vaultSuffix) &&
      kqlToString(r.Id).toLowerCase().endsWith(keySuffix)
    );
  });
  matches.sort((a, b) => Date.parse(String(a.TimeGenerated)) - Date.parse(String(b.TimeGenerated)));
  return matches.slice(0, q.take).map((r) => {
    const claim = isRecord(r.Identity) && isRecord(r.Identity.claim) ? r.Identity.claim : {};
    const extended: AzkvRow = {
      ...r,
      CallerObjectId: kqlToString(claim.oid),
      CallerUpn: kqlToString(claim.upn),
      CallerAppId: kqlToString(claim.appid),
      CallerIdType: kqlToString(claim.idtyp),
    };
    return PROJECTED.map((c) => wireValue(c.type, extended[c.name]));
  });
}

// ---------------------------------------------------------------------------------------------
// Timespan (ISO 8601 interval) of the request
// ---------------------------------------------------------------------------------------------

function parseDuration(text: string): number | undefined {
  const m = /^P(?:(\d+)D)?(?:T(?:(\d+)H)?(?:(\d+)M)?(?:(\d+(?:\.\d+)?)S)?)?$/.exec(text);
  if (!m || text === 'P' || text.endsWith('T')) return undefined;
  const [, d = '0', h = '0', min = '0', s = '0'] = m;
  return ((Number(d) * 24 + Number(h)) * 60 + Number(min)) * 60_000 + Number(s) * 1000;
}

/** `start/end`, `start/duration`, `duration/end` or `duration` (ending now) → [from, to] in ms. */
export function parseTimespan(text: string, now: number): [number, number] | undefined {
  const parts = text.split('/');
  if (parts.length === 1) {
    const d = parseDuration(parts[0]!);
    return d === undefined ? undefined : [now - d, now];
  }
  if (parts.length !== 2) return undefined;
  const [a = '', b = ''] = parts;
  const da = a.startsWith('P') ? parseDuration(a) : undefined;
  const db = b.startsWith('P') ? parseDuration(b) : undefined;
  const ta = a.startsWith('P') ? undefined : Date.parse(a);
  const tb = b.startsWith('P') ? undefined : Date.parse(b);
  if (ta !== undefined && tb !== undefined && !Number.isNaN(ta) && !Number.isNaN(tb)) return [ta, tb];
  if (ta !== undefined && !Number.isNaN(ta) && db !== undefined) return [ta, ta + db];
  if (da !== undefined && tb !== undefined && !Number.isNaN(tb)) return [tb - da, tb];
  return undefined;
}

// ---------------------------------------------------------------------------------------------
// The service
// ---------------------------------------------------------------------------------------------

function lawError(
  status: number,
  code: string,
  message: string,
  innererror?: Record<string, unknown>,
): EmuResponse {
  const error: Record<string, unknown> = { message, code, correlationId: randomUUID() };
  if (innererror) error.innererror = innererror;
  return { status, body: { error } };
}

function badArgument(inner: { code: string; message: string }): EmuResponse {
  return lawError(400, 'BadArgumentError', 'The request had some invalid properties', inner);
}

export interface WorkspaceSpec {
  id: string;
  resourceId?: string;
  name?: string;
  resourceGroup?: string;
  vaults?: string[];
  ingestionDelayMs?: number;
}

/** Adds (or replaces) a workspace in the emulator state. */
export function addWorkspace(core: EmulatorCore, spec: WorkspaceSpec): WorkspaceRecord {
  const id = spec.id.toLowerCase();
  const name = spec.name ?? `law-${id.slice(0, 8)}`;
  const record: WorkspaceRecord = {
    id,
    resourceId:
      spec.resourceId ??
      `/subscriptions/${core.subscriptionId}/resourceGroups/${spec.resourceGroup ?? 'rg-monitoring'}/providers/Microsoft.OperationalInsights/workspaces/${name}`,
    vaults: spec.vaults?.map((v) => v.toLowerCase()),
    ingestionDelayMs: spec.ingestionDelayMs,
  };
  core.workspaces ??= new Map();
  core.workspaces.set(id, record);
  return record;
}

/** The AZKVAuditLogs rows of a workspace that are queryable at `now`. */
export function workspaceRows(workspace: WorkspaceRecord, records: AuditRecord[], now: number): AzkvRow[] {
  const delay = workspace.ingestionDelayMs ?? 0;
  return records
    .filter((r) => {
      const vault = vaultOfRecord(r);
      if (vault === undefined || (workspace.vaults && !workspace.vaults.includes(vault))) return false;
      const t = Date.parse(r.time);
      return !Number.isNaN(t) && t + delay <= now;
    })
    .map((r) => toAzkvAuditLogsRow(r, workspace));
}

function audienceOf(authorization: string | undefined): string | undefined {
  const payload = /^Bearer\s+[^.\s]+\.([^.\s]+)\.[^.\s]*$/i.exec(authorization ?? '')?.[1];
  if (!payload) return undefined;
  try {
    const claims = JSON.parse(Buffer.from(payload, 'base64url').toString('utf8')) as { aud?: unknown };
    return typeof claims.aud === 'string' ? claims.aud : undefined;
  } catch {
    return undefined;
  }
}

export function createLogAnalyticsService(core: EmulatorCore, audit: () => AuditRecord[]): ServiceHandler {
  return (req: EmuRequest): EmuResponse => {
    const m = /^\/v1\/workspaces\/([^/]+)\/query\/?$/i.exec(req.path);
    if (!m) return lawError(404, 'PathNotFoundError', 'The requested path does not exist');
    if (req.method !== 'POST' && req.method !== 'GET') {
      return lawError(
        405,
        'MethodNotAllowedError',
        `The HTTP method ${req.method} is not supported for this path`,
      );
    }
    const authorization =
      typeof req.headers.authorization === 'string' ? req.headers.authorization : undefined;
    if (!authorization)
      return lawError(401, 'AuthorizationRequiredError', 'Valid authentication was not provided');
    const claims: TokenClaims | undefined = core.verifyBearer(authorization, LOG_ANALYTICS_AUDIENCES);
    if (!claims) {
      const aud = audienceOf(authorization)?.replace(/\/+$/, '').toLowerCase();
      const foreign = aud !== undefined && !LOG_ANALYTICS_AUDIENCES.includes(aud);
      return lawError(
        foreign ? 403 : 401,
        'InvalidTokenError',
        'The provided authentication is not valid for this resource',
      );
    }
    const done = (res: EmuResponse): EmuResponse => ({ ...res, callerOid: claims.oid });

    const workspaceId = decodeURIComponent(m[1] ?? '').toLowerCase();
    const workspace = core.workspaces?.get(workspaceId);
    if (!workspace) {
      return done(lawError(404, 'WorkspaceNotFoundError', `Workspace ${workspaceId} could not be found`));
    }
    if (!core.isAuthorized(claims.oid, workspace.resourceId, QUERY_ACTION)) {
      return done(
        lawError(
          403,
          'InsufficientAccessError',
          'The provided credentials have insufficient access to perform the requested operation',
        ),
      );
    }

    let query: unknown;
    let timespan: unknown;
    if (req.method === 'GET') {
      query = req.query.get('query') ?? undefined;
      timespan = req.query.get('timespan') ?? undefined;
    } else {
      let body: unknown;
      try {
        body = JSON.parse(req.body.toString('utf8'));
      } catch {
        return done(
          badArgument({ code: 'InvalidRequestBody', message: 'The request body is not valid JSON' }),
        );
      }
      if (!isRecord(body)) {
        return done(
          badArgument({ code: 'InvalidRequestBody', message: 'The request body must be a JSON object' }),
        );
      }
      query = body.query;
      timespan = body.timespan;
    }
    if (typeof query !== 'string' || query.trim() === '') {
      return done(badArgument({ code: 'QueryValidationError', message: 'The query property is required' }));
    }
    let window: [number, number] | undefined;
    if (timespan !== undefined && timespan !== null) {
      window = typeof timespan === 'string' ? parseTimespan(timespan, core.now()) : undefined;
      if (!window) {
        return done(
          badArgument({
            code: 'InvalidTimespan',
            message: `The timespan ${JSON.stringify(timespan)} is not a valid ISO 8601 interval`,
          }),
        );
      }
    }

    const parsed = parseKeyDeletionQuery(query);
    if ('error' in parsed) {
      core.log(`loganalytics: unsupported query (${parsed.error})`);
      return done(
        badArgument({
          code: 'EmulatorUnsupportedQuery',
          message: `The emulator runs only kvguard's key-deletion query template: ${parsed.error}.`,
        }),
      );
    }

    let rows = workspaceRows(workspace, audit(), core.now());
    if (window) {
      const [from, to] = window;
      rows = rows.filter((r) => {
        const t = Date.parse(String(r.TimeGenerated));
        return t >= from && t <= to;
      });
    }
    return done({
      status: 200,
      body: {
        tables: [
          {
            name: 'PrimaryResult',
            columns: PROJECTED.map((c) => ({ ...c })),
            rows: runKeyDeletionQuery(parsed, rows),
          },
        ],
      },
    });
  };
}
