/**
 * Design §2 step 1: any accepted input becomes typed triggers, or rejections with a reason, one per
 * item and in input order, so one bad record never hides the others. It never throws.
 *
 * Accepted: Event Grid events and CloudEvents 1.0 (single or batch) of the types `events.ts` handles,
 * AuditEvent records (single, an array, or `{records: [...]}`), the Azure Monitor common alert schema
 * (Log Alerts V2), and, through their own constructors, the rows the sweep finds.
 */
import * as z from 'zod';
import { formatZodIssues, looksLikeAuditRecord, readAuditRecord, type AuditKeyFacts } from './audit-record';
import { fromCommonAlert, looksLikeCommonAlert } from './common-alert';
import { fromEvent } from './events';
import { stableHash } from './hash';
import { parseVaultResourceId, parseVaultUrl, vaultHostFromName, isValidKeyName } from './identifiers';
import type {
  NormaliseResult,
  Rejection,
  SignalSource,
  SweptDeletedKeyTrigger,
  SweptDeletedVaultTrigger,
} from './model';
import { rejection, type ItemContext } from './rejection';
import {
  KEY_DELETE_DENIED_V1,
  KEY_DELETED_V1,
  KEY_PURGED_V1,
  SIGNAL_TIME_PATTERN,
  signalDataV1,
  type SignalCloudEvent,
  type SignalEventType,
} from './signal-data';
import { toIsoInstant } from './time';
import { cleanText, describe, isRecord, own } from './untrusted';

export { isRejection } from './rejection';

/**
 * The entry point an input arrived through; it limits the shapes accepted there. `eventGrid`: Event
 * Grid events and CloudEvents; `auditLog`: AuditEvent records; `monitorAlert`: common alert schema;
 * `replay`: any of them (and the triggers say `source: 'replay'`).
 */
export type NormaliseVia = 'eventGrid' | 'auditLog' | 'monitorAlert' | 'replay';

/** Items read from one input at most (Event Grid batches hold up to 5,000 events). */
export const MAX_ITEMS = 10_000;

/** The source a rejection names before the item's shape is known. */
const VIA_SOURCE: Record<NormaliseVia, SignalSource> = {
  eventGrid: 'eventGrid',
  auditLog: 'auditLog',
  monitorAlert: 'monitorAlert',
  replay: 'replay',
};

type Shape = 'eventGridEvent' | 'cloudEvent' | 'auditRecord' | 'recordsWrapper' | 'commonAlert';

const SHAPE_SOURCE: Record<Shape, SignalSource> = {
  eventGridEvent: 'eventGrid',
  cloudEvent: 'cloudEvent',
  auditRecord: 'auditLog',
  recordsWrapper: 'auditLog',
  commonAlert: 'monitorAlert',
};

const ACCEPTED: Record<NormaliseVia, ReadonlySet<Shape>> = {
  eventGrid: new Set(['eventGridEvent', 'cloudEvent']),
  auditLog: new Set(['auditRecord', 'recordsWrapper']),
  monitorAlert: new Set(['commonAlert']),
  replay: new Set(['eventGridEvent', 'cloudEvent', 'auditRecord', 'recordsWrapper', 'commonAlert']),
};

const SHAPE_NAME: Record<Shape, string> = {
  eventGridEvent: 'an Event Grid event',
  cloudEvent: 'a CloudEvent',
  auditRecord: 'an AuditEvent record',
  recordsWrapper: 'an AuditEvent records batch',
  commonAlert: 'a common alert schema payload',
};

function shapeOf(value: unknown): Shape | undefined {
  if (!isRecord(value)) return undefined;
  if (own(value, 'specversion') !== undefined) return 'cloudEvent';
  if (own(value, 'eventType') !== undefined) return 'eventGridEvent';
  if (looksLikeCommonAlert(value)) return 'commonAlert';
  if (Array.isArray(own(value, 'records'))) return 'recordsWrapper';
  if (looksLikeAuditRecord(value)) return 'auditRecord';
  return undefined;
}

const eventGridEventSchema = z.object({
  id: z.string().min(1).max(512),
  eventType: z.string().min(1).max(256),
  subject: z.string().max(2048).optional(),
  eventTime: z.string().max(64),
  topic: z.string().max(1024).optional(),
  data: z.unknown(),
  dataVersion: z.string().max(64).optional(),
  metadataVersion: z.string().max(8).optional(),
});

const cloudEventSchema = z.object({
  specversion: z.literal('1.0'),
  id: z.string().min(1).max(512),
  type: z.string().min(1).max(256),
  source: z.string().min(1).max(1024),
  subject: z.string().max(2048).optional(),
  time: z.string().max(64).optional(),
  data: z.unknown(),
  data_base64: z.unknown().optional(),
  datacontenttype: z.string().max(256).optional(),
});

/** Counts items across one call so a huge batch is cut off with one `too-large` rejection. */
interface Budget {
  left: number;
  cutOff: boolean;
}

/**
 * Normalises one input (a single event, record or alert, an array of them, or `{records: [...]}`).
 * Returns one result per item in input order: triggers, and rejections with a reason and the item's
 * path. An empty batch gives `[]`.
 */
export function normalise(input: unknown, via: NormaliseVia): NormaliseResult[] {
  const fallbackSource = VIA_SOURCE[via];
  const out: NormaliseResult[] = [];
  const budget: Budget = { left: MAX_ITEMS, cutOff: false };
  try {
    if (Array.isArray(input)) {
      const items: unknown[] = input;
      for (let i = 0; i < items.length; i++) {
        if (!take(budget, out, { source: fallbackSource, path: `[${i}]` }, items.length - i)) break;
        normaliseItem(items[i], via, `[${i}]`, out, budget, true);
      }
    } else {
      normaliseItem(input, via, '', out, budget, false);
    }
  } catch {
    out.push(rejection({ source: fallbackSource, path: '' }, 'malformed', 'the input could not be read'));
  }
  return out;
}

function take(budget: Budget, out: NormaliseResult[], ctx: ItemContext, remaining: number): boolean {
  if (budget.left > 0) {
    budget.left--;
    return true;
  }
  if (!budget.cutOff) {
    budget.cutOff = true;
    out.push(
      rejection(
        ctx,
        'too-large',
        `more than ${MAX_ITEMS} items: ${remaining} item(s) from here on were not read`,
      ),
    );
  }
  return false;
}

function normaliseItem(
  item: unknown,
  via: NormaliseVia,
  path: string,
  out: NormaliseResult[],
  budget: Budget,
  inArray: boolean,
): void {
  let ctx: ItemContext = { source: VIA_SOURCE[via], path };
  try {
    if (Array.isArray(item) && inArray) {
      out.push(rejection(ctx, 'malformed', 'nested arrays are not accepted'));
      return;
    }
    const shape = shapeOf(item);
    if (shape === undefined) {
      out.push(
        rejection(
          ctx,
          'malformed',
          `not an accepted input shape (${item === null ? 'null' : Array.isArray(item) ? 'array' : typeof item})`,
        ),
      );
      return;
    }
    ctx = { source: via === 'replay' ? 'replay' : SHAPE_SOURCE[shape], path };
    if (!ACCEPTED[via].has(shape)) {
      out.push(
        rejection(ctx, 'unsupported-type', `${SHAPE_NAME[shape]} is not accepted on the ${via} entry point`),
      );
      return;
    }
    switch (shape) {
      case 'eventGridEvent':
        out.push(fromEventGridEvent(item, ctx));
        return;
      case 'cloudEvent':
        out.push(fromCloudEvent(item, ctx));
        return;
      case 'auditRecord':
        out.push(fromAuditRecord(item, ctx));
        return;
      case 'commonAlert':
        out.push(...fromCommonAlert(item, ctx));
        return;
      case 'recordsWrapper': {
        const records = own(item, 'records') as unknown[];
        const prefix = path === '' ? 'records' : `${path}.records`;
        // Inside an array the wrapper itself counted as one item; its records count instead.
        if (inArray) budget.left++;
        for (let i = 0; i < records.length; i++) {
          const rctx = { source: ctx.source, path: `${prefix}[${i}]` };
          if (!take(budget, out, rctx, records.length - i)) return;
          try {
            out.push(fromAuditRecord(records[i], rctx));
          } catch {
            out.push(rejection(rctx, 'malformed', 'the record could not be read'));
          }
        }
        return;
      }
    }
  } catch {
    out.push(rejection(ctx, 'malformed', 'the item could not be read'));
  }
}

function fromEventGridEvent(item: unknown, ctx: ItemContext): NormaliseResult {
  const parsed = eventGridEventSchema.safeParse(item);
  if (!parsed.success) {
    return rejection(
      ctx,
      'malformed',
      `not an Event Grid event: ${formatZodIssues(parsed.error)}`,
      aboutOf(item, 'eventType'),
    );
  }
  const e = parsed.data;
  return fromEvent(
    {
      id: e.id,
      type: e.eventType,
      time: e.eventTime,
      ...(e.subject !== undefined ? { subject: e.subject } : {}),
      ...(e.topic !== undefined ? { topic: e.topic } : {}),
      data: e.data,
    },
    ctx,
  );
}

function fromCloudEvent(item: unknown, ctx: ItemContext): NormaliseResult {
  const parsed = cloudEventSchema.safeParse(item);
  if (!parsed.success) {
    return rejection(
      ctx,
      'malformed',
      `not a CloudEvent 1.0: ${formatZodIssues(parsed.error)}`,
      aboutOf(item, 'type'),
    );
  }
  const e = parsed.data;
  if (e.data_base64 !== undefined) {
    return rejection(ctx, 'malformed', 'binary data (data_base64) is not accepted', {
      eventId: e.id,
      eventType: e.type,
    });
  }
  return fromEvent(
    {
      id: e.id,
      type: e.type,
      ...(e.time !== undefined ? { time: e.time } : {}),
      ...(e.subject !== undefined ? { subject: e.subject } : {}),
      topic: e.source,
      data: e.data,
    },
    ctx,
  );
}

function aboutOf(item: unknown, typeField: string): { eventId?: string; eventType?: string } {
  const eventId = cleanText(own(item, 'id'), 512);
  const eventType = cleanText(own(item, typeField), 256);
  return { ...(eventId !== undefined ? { eventId } : {}), ...(eventType !== undefined ? { eventType } : {}) };
}

function fromAuditRecord(item: unknown, ctx: ItemContext): NormaliseResult {
  const r = readAuditRecord(item);
  if (!r.ok) {
    return rejection(
      ctx,
      r.reason,
      r.message,
      r.operationName !== undefined ? { operationName: r.operationName } : {},
    );
  }
  const f = r.value;
  const base = {
    source: ctx.source,
    vaultName: f.vault.vaultName,
    vaultHost: f.vault.vaultHost,
    vaultResourceId: f.vault.resourceId,
    keyName: f.keyName,
    signalTime: f.signalTime,
    ...(f.caller !== undefined ? { caller: f.caller } : {}),
    eventId: f.eventId,
    operationName: f.operationName,
    httpStatusCode: f.httpStatusCode,
  };
  return { ...base, kind: f.kind };
}

/** A soft-deleted key the sweep listed. `vaultUrl` is the inventory's `vaultUri`. */
export interface SweptDeletedKeyRow {
  vaultUrl: string;
  keyName: string;
  deletedDate: Date | string;
}

/** The sweep's trigger for a deleted key (its `deletedDate` is the signal time). */
export function fromSweptDeletedKey(
  row: SweptDeletedKeyRow,
  source: 'sweep' | 'replay' = 'sweep',
): SweptDeletedKeyTrigger | Rejection {
  const ctx: ItemContext = { source, path: '' };
  try {
    const vault = parseVaultUrl(row.vaultUrl);
    if (!vault.ok) return rejection(ctx, vault.reason, `vaultUrl: ${vault.message}`);
    if (!isValidKeyName(row.keyName))
      return rejection(ctx, 'invalid-key-name', 'the key name is not 1-127 alphanumerics and hyphens');
    const deletedDate = toIsoInstant(row.deletedDate);
    if (deletedDate === undefined) return rejection(ctx, 'malformed', 'deletedDate is not a valid instant');
    return {
      kind: 'sweptDeletedKey',
      source,
      vaultName: vault.value.vaultName,
      vaultHost: vault.value.vaultHost,
      keyName: row.keyName,
      deletedDate,
      signalTime: deletedDate,
      eventId: `sweep-${stableHash([vault.value.vaultHost, 'key', row.keyName.toLowerCase(), deletedDate])}`,
      operationName: 'sweep',
    };
  } catch {
    return rejection(ctx, 'malformed', 'the sweep row could not be read');
  }
}

/** A soft-deleted vault the sweep listed (ARM `deletedVaults`). */
export interface SweptDeletedVaultRow {
  vaultName: string;
  /** `properties.vaultId`: the vault's ARM id before deletion. */
  vaultResourceId?: string;
  deletionDate: Date | string;
  location?: string;
  scheduledPurgeDate?: Date | string;
  purgeProtectionEnabled?: boolean;
}

export function fromSweptDeletedVault(
  row: SweptDeletedVaultRow,
  source: 'sweep' | 'replay' = 'sweep',
): SweptDeletedVaultTrigger | Rejection {
  const ctx: ItemContext = { source, path: '' };
  try {
    const host = vaultHostFromName(row.vaultName);
    if (host === undefined)
      return rejection(ctx, 'invalid-vault-host', 'the vault name is not a valid vault name');
    const vaultName = row.vaultName.toLowerCase();
    if (row.vaultResourceId !== undefined) {
      const rid = parseVaultResourceId(row.vaultResourceId);
      if (!rid.ok) return rejection(ctx, rid.reason, `vaultResourceId: ${rid.message}`);
      if (rid.value.vaultName !== vaultName)
        return rejection(ctx, 'inconsistent', 'the resource id names another vault');
    }
    const deletionDate = toIsoInstant(row.deletionDate);
    if (deletionDate === undefined) return rejection(ctx, 'malformed', 'deletionDate is not a valid instant');
    const scheduledPurgeDate = toIsoInstant(row.scheduledPurgeDate);
    const location = cleanText(row.location, 64);
    return {
      kind: 'sweptDeletedVault',
      source,
      vaultName,
      vaultHost: host,
      ...(row.vaultResourceId !== undefined ? { vaultResourceId: row.vaultResourceId } : {}),
      deletionDate,
      signalTime: deletionDate,
      ...(location !== undefined ? { location } : {}),
      ...(scheduledPurgeDate !== undefined ? { scheduledPurgeDate } : {}),
      ...(typeof row.purgeProtectionEnabled === 'boolean'
        ? { purgeProtectionEnabled: row.purgeProtectionEnabled }
        : {}),
      eventId: `sweep-${stableHash([host, 'vault', deletionDate])}`,
      operationName: 'sweep',
    };
  } catch {
    return rejection(ctx, 'malformed', 'the sweep row could not be read');
  }
}

const SIGNAL_TYPE: Record<AuditKeyFacts['kind'], SignalEventType> = {
  keyDeleted: KEY_DELETED_V1,
  keyPurged: KEY_PURGED_V1,
  keyDeleteDenied: KEY_DELETE_DENIED_V1,
};

/**
 * The audit-log forwarder's mapping of one AuditEvent record to a kvguard signal CloudEvent (design
 * §1): only 2xx `KeyDelete`/`KeyPurge` and 403 `KeyDelete` map; everything else is a rejection (most
 * records in a vault's log are reads). `time` is the record's time and `id` a stable hash of the
 * record, so re-running a batch republishes the same ids.
 */
export function toSignalCloudEvent(record: unknown): SignalCloudEvent | Rejection {
  return toSignalCloudEventAt(record, { source: 'auditLog', path: '' });
}

function toSignalCloudEventAt(record: unknown, ctx: ItemContext): SignalCloudEvent | Rejection {
  try {
    const r = readAuditRecord(record);
    if (!r.ok)
      return rejection(
        ctx,
        r.reason,
        r.message,
        r.operationName !== undefined ? { operationName: r.operationName } : {},
      );
    const f = r.value;
    // The record's own spelling when the schema allows it (seconds required), else the canonical form.
    const time = SIGNAL_TIME_PATTERN.test(f.rawTime) ? f.rawTime : f.signalTime;
    const c = f.caller ?? {};
    const caller = {
      ...(c.oid !== undefined ? { oid: c.oid } : {}),
      ...(c.upn !== undefined ? { upn: c.upn } : {}),
      ...(c.appId !== undefined ? { appId: c.appId } : {}),
      ...(c.idtyp !== undefined ? { idtyp: c.idtyp } : {}),
      ...(c.ipAddress !== undefined ? { ipAddress: c.ipAddress } : {}),
      ...(c.userAgent !== undefined ? { userAgent: c.userAgent } : {}),
    };
    const data = signalDataV1.safeParse({
      vaultName: f.vault.vaultName,
      vaultHost: f.vault.vaultHost,
      vaultResourceId: f.vault.resourceId,
      keyName: f.keyName,
      recordTime: time,
      operationName: f.operationName,
      httpStatusCode: f.httpStatusCode,
      caller,
      ...(f.correlationId !== undefined ? { correlationId: f.correlationId } : {}),
    });
    if (!data.success) {
      return rejection(
        ctx,
        'malformed',
        `the record does not fit the signal schema: ${formatZodIssues(data.error)}`,
        { operationName: f.operationName },
      );
    }
    return {
      id: f.eventId,
      type: SIGNAL_TYPE[f.kind],
      source: f.vault.resourceId.toLowerCase(),
      subject: `/keys/${f.keyName}`,
      time,
      data: data.data,
    };
  } catch {
    return rejection(ctx, 'malformed', 'the record could not be read');
  }
}

/**
 * The forwarder's batch form: an Event Hub message body (`{records: [...]}`, an array of records, or
 * one record) → one CloudEvent or rejection per record, in order. Never throws.
 */
export function toSignalCloudEvents(body: unknown): Array<SignalCloudEvent | Rejection> {
  const ctx: ItemContext = { source: 'auditLog', path: '' };
  try {
    const wrapped = own(body, 'records');
    const records: unknown[] | undefined = Array.isArray(wrapped)
      ? wrapped
      : Array.isArray(body)
        ? body
        : undefined;
    if (records === undefined) return [toSignalCloudEventAt(body, ctx)];
    const prefix = Array.isArray(wrapped) ? 'records' : '';
    const out: Array<SignalCloudEvent | Rejection> = [];
    for (let i = 0; i < records.length; i++) {
      const rctx = { source: 'auditLog' as const, path: `${prefix}[${i}]` };
      if (i >= MAX_ITEMS) {
        out.push(
          rejection(
            rctx,
            'too-large',
            `more than ${MAX_ITEMS} records: ${records.length - i} record(s) from here on were not read`,
          ),
        );
        break;
      }
      out.push(toSignalCloudEventAt(records[i], rctx));
    }
    return out;
  } catch {
    return [rejection(ctx, 'malformed', `the batch could not be read (${describe(typeof body)})`)];
  }
}
