/**
 * Who deleted a key, from the Log Analytics workspace the vaults' diagnostic settings write to
 * (resource-specific table `AZKVAuditLogs`; design §2 step 5), through @azure/monitor-query-logs
 * (`LogsQueryClient.queryWorkspace`: `POST https://api.loganalytics.io/v1/workspaces/{id}/query`,
 * token for `https://api.loganalytics.io/.default`). @azure/monitor-query is deprecated in its favour.
 *
 * Only the configured workspace id is ever queried, and only with the two queries below: nothing taken
 * from a signal's payload (a `linkToSearchResultsAPI`, a workspace named in an alert) becomes a URL or
 * query text; the vault and key names enter the query as escaped KQL string literals.
 *
 * What each answer means here:
 * - 200: the rows (a partial result, 200 with `error`, is used as far as it goes);
 * - 403 `InsufficientAccessError`: the identity lacks `Microsoft.OperationalInsights/workspaces/query/read`
 *   on the workspace (e.g. "Log Analytics Reader"); 404 the workspace does not exist; 400 the query
 *   was refused. Each is reported through `onFailure` and answers `undefined` / `[]` (no attribution yet);
 * - 429 and 5xx are retried by the client; when they persist the error is thrown, for the caller to
 *   treat as retryable (ports.ts).
 * Records arrive in the workspace minutes after the call (up to about 10), so `undefined` often just
 * means "not yet".
 */
import type { TokenCredential } from '@azure/identity';
import { LogsQueryClient, LogsQueryResultStatus, type LogsTable } from '@azure/monitor-query-logs';
import { callerFromClaims } from '../core/caller';
import { parseKeyUrl, parseVaultResourceId } from '../core/identifiers';
import { cleanText, isRecord, own } from '../core/untrusted';
import type { AuditCaller, AuditDeletion, AuditLogQuery, CallFailure } from '../ports';
import { clientOptions, toCallFailure } from './azure';

const GUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** At most this many rows for one key (it is deleted once per recovery; 50 is plenty). */
export const KEY_DELETION_ROW_LIMIT = 50;
/** At most this many deletions for one alert window (a mass deletion; the rest wait for the sweep). */
export const KEY_DELETIONS_LIST_LIMIT = 500;

/**
 * A KQL double-quoted string literal. KQL defines `\\`, `\"`, `\'`, `\t` and `\n` as escapes
 * (learn.microsoft.com/kusto/query/scalar-data-types/string); any other control character cannot
 * appear in such a literal and is refused: vault and key names never contain one.
 */
export function kqlString(value: string): string {
  let out = '"';
  for (const ch of value) {
    if (ch === '\\') out += '\\\\';
    else if (ch === '"') out += '\\"';
    else if (ch === '\t') out += '\\t';
    else if (ch === '\n') out += '\\n';
    // eslint-disable-next-line no-control-regex
    else if (/[\u0000-\u001f\u007f\u2028\u2029]/.test(ch))
      throw new RangeError('a control character cannot appear in a KQL literal');
    else out += ch;
  }
  return `${out}"`;
}

/** A KQL datetime literal in UTC, e.g. `datetime(2026-01-01T00:00:00.000Z)`. */
export function kqlDatetime(time: Date): string {
  if (Number.isNaN(time.getTime())) throw new RangeError('invalid time');
  return `datetime(${time.toISOString()})`;
}

/** Filter, caller columns and projection shared by the lookup and the alert rule. */
const KEY_DELETE_FILTER = '| where OperationName == "KeyDelete" and HttpStatusCode between (200 .. 299)';
const CALLER_COLUMNS =
  '| extend CallerObjectId = tostring(Identity.claim.oid), CallerUpn = tostring(Identity.claim.upn), CallerAppId = tostring(Identity.claim.appid), CallerIdType = tostring(Identity.claim.idtyp)';
const PROJECTION =
  '| project TimeGenerated, _ResourceId, Id, OperationName, HttpStatusCode, CallerObjectId, CallerUpn, CallerAppId, CallerIdType, CallerIpAddress, ClientInfo, Identity';

/**
 * The query of the scheduled log-search alert rule (infra/): every successful key deletion in the
 * rule's window, one row each, with the caller as string columns so the rule can split by
 * `_ResourceId`, `Id`, `CallerObjectId`, `CallerUpn`, `CallerAppId` and `CallerIpAddress`
 * (facts §5.2: search results are not embedded in a Log Alerts V2 payload, dimensions are).
 * A refused deletion is logged with `ResultType` Success too; `HttpStatusCode` tells them apart.
 */
export const KEY_DELETION_ALERT_QUERY = ['AZKVAuditLogs', KEY_DELETE_FILTER, CALLER_COLUMNS, PROJECTION].join(
  '\n',
);

/**
 * kvguard's lookup of one deletion: successful `KeyDelete` rows of one vault and key between two
 * times (inclusive), oldest first. Rows: `TimeGenerated` (the call's time), `_ResourceId` (the vault's
 * ARM id), `Id` (`https://<vault>.vault.azure.net/keys/<key>`), the caller's claims both as strings
 * and as the `Identity` object (`{ claim: {…} }`), `CallerIpAddress`, `ClientInfo` (user agent).
 * The vault is matched by the end of `_ResourceId` and the key by the end of `Id`; `endswith`
 * ignores case, as vault and key names do. The emulator (test/emulator/loganalytics.ts) answers
 * exactly this text and nothing else: keep the two in step.
 */
export function keyDeletionQuery(
  vaultName: string,
  keyName: string,
  window: { from: Date; to: Date },
): string {
  return [
    'AZKVAuditLogs',
    `| where TimeGenerated between (${kqlDatetime(window.from)} .. ${kqlDatetime(window.to)})`,
    KEY_DELETE_FILTER,
    `| where _ResourceId endswith ${kqlString(`/providers/microsoft.keyvault/vaults/${vaultName}`)}`,
    `| where Id endswith ${kqlString(`/keys/${keyName}`)}`,
    CALLER_COLUMNS,
    PROJECTION,
    '| order by TimeGenerated asc',
    `| take ${KEY_DELETION_ROW_LIMIT}`,
  ].join('\n');
}

/**
 * Every successful key deletion between two times (inclusive), oldest first, in every vault that
 * writes to the workspace: what kvguard runs when a log alert fired without dimensions. Same columns
 * as `keyDeletionQuery`; the vault and key come from `_ResourceId` and `Id`. The emulator answers
 * exactly this text too.
 */
export function keyDeletionsQuery(window: { from: Date; to: Date }): string {
  return [
    'AZKVAuditLogs',
    `| where TimeGenerated between (${kqlDatetime(window.from)} .. ${kqlDatetime(window.to)})`,
    KEY_DELETE_FILTER,
    CALLER_COLUMNS,
    PROJECTION,
    '| order by TimeGenerated asc',
    `| take ${KEY_DELETIONS_LIST_LIMIT}`,
  ].join('\n');
}

/** The query API's `timespan` is a coarse outer bound; the query's own `between` is the exact one. */
const TIMESPAN_MARGIN_MS = 60_000;

export interface WorkspaceAuditLogQueryOptions {
  credential: TokenCredential;
  /** The configured workspace (customer) id (KVGUARD_WORKSPACE_ID); never one from a payload. */
  workspaceId: string;
  retryBaseDelayMs: number;
  /** Told (without secrets) when the workspace refused or could not answer the query. */
  onFailure?: (failure: CallFailure) => void;
}

const MISSING_PERMISSION =
  'Microsoft.OperationalInsights/workspaces/query/read on the workspace (e.g. Log Analytics Reader)';

function column(table: LogsTable, name: string): number {
  return table.columnDescriptors.findIndex((c) => c.name === name);
}

/** One row read: a successful KeyDelete with its key and caller; `undefined` for anything else. */
interface DeletionRow {
  vaultName: string;
  keyName: string;
  caller: AuditCaller;
}

function deletionOfRow(table: LogsTable, row: unknown[]): DeletionRow | undefined {
  const at = (name: string): unknown => {
    const i = column(table, name);
    return i >= 0 ? row[i] : undefined;
  };
  const time = at('TimeGenerated');
  const when = time instanceof Date ? time : typeof time === 'string' ? new Date(time) : undefined;
  const status = Number(at('HttpStatusCode'));
  if (
    !when ||
    Number.isNaN(when.getTime()) ||
    at('OperationName') !== 'KeyDelete' ||
    !(status >= 200 && status < 300)
  ) {
    return undefined;
  }
  // The key from `Id` (`https://<vault>.vault.azure.net/keys/<name>`); `_ResourceId` must name the same vault.
  const key = parseKeyUrl(at('Id'));
  if (!key.ok || key.value.collection !== 'keys') return undefined;
  const vault = parseVaultResourceId(at('_ResourceId'));
  if (vault.ok && vault.value.vaultName !== key.value.vaultName) return undefined;
  let identity = at('Identity');
  if (typeof identity === 'string') {
    try {
      identity = JSON.parse(identity) as unknown;
    } catch {
      identity = undefined;
    }
  }
  const claims = isRecord(identity) ? own(identity, 'claim') : undefined;
  const fromClaims =
    callerFromClaims(claims, { ipAddress: at('CallerIpAddress'), userAgent: at('ClientInfo') }) ?? {};
  return {
    vaultName: key.value.vaultName,
    keyName: key.value.keyName,
    caller: {
      time: when,
      oid: fromClaims.oid ?? cleanText(at('CallerObjectId'), 128),
      upn: fromClaims.upn ?? cleanText(at('CallerUpn'), 256),
      appId: fromClaims.appId ?? cleanText(at('CallerAppId'), 128),
      idtyp: fromClaims.idtyp ?? cleanText(at('CallerIdType'), 16),
      ipAddress: fromClaims.ipAddress,
      userAgent: fromClaims.userAgent,
    },
  };
}

export class WorkspaceAuditLogQuery implements AuditLogQuery {
  private readonly client: LogsQueryClient;
  private readonly workspaceId: string;

  constructor(private readonly options: WorkspaceAuditLogQueryOptions) {
    if (!GUID.test(options.workspaceId)) throw new RangeError('the workspace id must be a GUID');
    this.workspaceId = options.workspaceId.toLowerCase();
    this.client = new LogsQueryClient(options.credential, clientOptions(options.retryBaseDelayMs));
  }

  /**
   * The successful deletion of the key in the window. When the window holds more than one (deleted,
   * recovered, deleted again), the one nearest the middle of the window: callers centre the window
   * on the deletion time they observed.
   */
  async findKeyDeletion(
    vaultName: string,
    keyName: string,
    window: { from: Date; to: Date },
  ): Promise<AuditCaller | undefined> {
    const rows = await this.run(keyDeletionQuery(vaultName, keyName, window), window);
    const wanted = (r: DeletionRow) =>
      r.vaultName === vaultName.toLowerCase() && r.keyName.toLowerCase() === keyName.toLowerCase();
    const middle = (window.from.getTime() + window.to.getTime()) / 2;
    const distance = (r: DeletionRow) => Math.abs(r.caller.time.getTime() - middle);
    let best: DeletionRow | undefined;
    for (const row of rows.filter(wanted)) {
      if (!best || distance(row) < distance(best)) best = row;
    }
    return best?.caller;
  }

  /** Every successful key deletion in the window, oldest first (at most `KEY_DELETIONS_LIST_LIMIT`). */
  async listKeyDeletions(window: { from: Date; to: Date }): Promise<AuditDeletion[]> {
    const rows = await this.run(keyDeletionsQuery(window), window);
    return rows.map(({ vaultName, keyName, caller: { time, ...caller } }) => ({
      vaultName,
      keyName,
      time,
      caller,
    }));
  }

  /** Runs one of kvguard's queries; expected refusals become `[]` (and `onFailure`), see the header. */
  private async run(query: string, window: { from: Date; to: Date }): Promise<DeletionRow[]> {
    let tables: LogsTable[];
    try {
      const result = await this.client.queryWorkspace(this.workspaceId, query, {
        startTime: new Date(window.from.getTime() - TIMESPAN_MARGIN_MS),
        endTime: new Date(window.to.getTime() + TIMESPAN_MARGIN_MS),
      });
      tables = result.status === LogsQueryResultStatus.Success ? result.tables : result.partialTables;
    } catch (error) {
      const failure = toCallFailure(error, MISSING_PERMISSION);
      if (failure.kind === 'throttled' || failure.kind === 'transient') throw error;
      this.options.onFailure?.(failure);
      return [];
    }
    const table = tables[0];
    if (!table) return [];
    return table.rows.flatMap((row) => deletionOfRow(table, row) ?? []);
  }
}
