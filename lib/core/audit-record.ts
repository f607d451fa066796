/**
 * Key Vault diagnostic `AuditEvent` records (facts §5.1): which ones are key deletions, purges and
 * refused deletions, and the facts kvguard keeps from them. `resultType` says `Success` even for a
 * refused call, so the HTTP status comes from `properties.httpStatusCode` (or `resultSignature`).
 */
import * as z from 'zod';
import { callerFromClaims } from './caller';
import { stableHash } from './hash';
import { parseKeyUrl, parseVaultResourceId, type Parsed, type VaultResourceId } from './identifiers';
import type { Caller, RejectionReason } from './model';
import { toIsoInstant } from './time';
import { cleanText, describe, own } from './untrusted';

const auditRecordSchema = z.object({
  time: z.string().max(40),
  resourceId: z.string().max(512),
  operationName: z.string().min(1).max(128),
  category: z.string().max(128).optional(),
  resultSignature: z.string().max(128).optional(),
  correlationId: z.unknown().optional(),
  callerIpAddress: z.unknown().optional(),
  identity: z.unknown().optional(),
  properties: z
    .object({
      id: z.unknown().optional(),
      requestUri: z.unknown().optional(),
      httpStatusCode: z.unknown().optional(),
      clientInfo: z.unknown().optional(),
    })
    .optional(),
});

/** Looks like an AuditEvent record (used to tell shapes apart before parsing). */
export function looksLikeAuditRecord(value: unknown): boolean {
  return (
    own(value, 'operationName') !== undefined &&
    (own(value, 'resourceId') !== undefined || own(value, 'category') !== undefined)
  );
}

export type AuditKeyOperation = 'KeyDelete' | 'KeyPurge';
export type AuditKeyKind = 'keyDeleted' | 'keyPurged' | 'keyDeleteDenied';

/** What kvguard keeps from a key deletion, purge or refused deletion record. */
export interface AuditKeyFacts {
  kind: AuditKeyKind;
  operationName: AuditKeyOperation;
  /** The record's `time` exactly as written (CloudEvent `time`, id input). */
  rawTime: string;
  /** Canonical ISO form of `rawTime`. */
  signalTime: string;
  vault: VaultResourceId;
  keyName: string;
  httpStatusCode: number;
  caller?: Caller;
  correlationId?: string;
  /** Derived stable id: sha256 of (resource id lower-cased, operation, time, request URI, caller oid). */
  eventId: string;
}

export type AuditParse = Parsed<AuditKeyFacts> & { operationName?: string };

// HTTP reason phrases as records write them, for records without `properties.httpStatusCode`.
const SIGNATURE_STATUS: Record<string, number> = {
  ok: 200,
  nocontent: 204,
  'no content': 204,
  unauthorized: 401,
  forbidden: 403,
  notfound: 404,
  'not found': 404,
  conflict: 409,
  toomanyrequests: 429,
  'too many requests': 429,
};

function statusOf(properties: unknown, resultSignature: string | undefined): number | undefined {
  const raw = own(properties, 'httpStatusCode');
  const n =
    typeof raw === 'number' ? raw : typeof raw === 'string' && /^\d{3}$/.test(raw.trim()) ? Number(raw) : NaN;
  if (Number.isInteger(n) && n >= 100 && n <= 599) return n;
  if (resultSignature === undefined) return undefined;
  const key = resultSignature.trim().toLowerCase();
  return Object.prototype.hasOwnProperty.call(SIGNATURE_STATUS, key) ? SIGNATURE_STATUS[key] : undefined;
}

// Vault reads stay "not a deletion"; vault changes show up as ARM events, which kvguard handles there.
const VAULT_READS = new Set(['vaultget', 'vaultlist', 'vaultgetdeleted', 'vaultlistdeleted']);

function reject(reason: RejectionReason, message: string, operationName?: string): AuditParse {
  return { ok: false, reason, message, ...(operationName !== undefined ? { operationName } : {}) };
}

/** Classifies one record; only 2xx `KeyDelete`/`KeyPurge` and 403 `KeyDelete` become facts. */
export function readAuditRecord(input: unknown): AuditParse {
  const parsed = auditRecordSchema.safeParse(input);
  if (!parsed.success) {
    return reject(
      'malformed',
      `not an AuditEvent record: ${formatZodIssues(parsed.error)}`,
      cleanText(own(input, 'operationName'), 128),
    );
  }
  const r = parsed.data;
  const op = r.operationName;
  const opName = describe(op, 128);
  if (r.category !== undefined && r.category.toLowerCase() !== 'auditevent') {
    return reject(
      'unsupported-type',
      `diagnostic category ${describe(r.category)} is not AuditEvent`,
      opName,
    );
  }
  if (op !== 'KeyDelete' && op !== 'KeyPurge') {
    if (/^vault/i.test(op) && !VAULT_READS.has(op.toLowerCase())) {
      return reject(
        'left-to-arm-events',
        `${opName} is a vault-level operation; the ARM events cover vault changes`,
        opName,
      );
    }
    return reject('not-a-deletion', `${opName} is not a key deletion or purge`, opName);
  }
  const vault = parseVaultResourceId(r.resourceId);
  if (!vault.ok) return reject(vault.reason, `resourceId: ${vault.message}`, op);
  const signalTime = toIsoInstant(r.time);
  if (signalTime === undefined) return reject('malformed', 'time is not an ISO 8601 instant with a zone', op);

  const status = statusOf(r.properties, r.resultSignature);
  if (status === undefined) return reject('malformed', 'the record carries no HTTP status', op);

  // The key: `properties.id` (object URL) and `properties.requestUri` must agree with each other and
  // with the resource id. A purge names `/deletedkeys/<name>`, a delete `/keys/<name>`.
  const wanted = op === 'KeyDelete' ? 'keys' : 'deletedkeys';
  let keyName: string | undefined;
  for (const field of ['id', 'requestUri'] as const) {
    const value = own(r.properties, field);
    if (value === undefined) continue;
    const key = parseKeyUrl(value);
    if (!key.ok) return reject(key.reason, `properties.${field}: ${key.message}`, op);
    if (key.value.collection !== wanted)
      return reject('inconsistent', `properties.${field} does not name /${wanted}/`, op);
    if (key.value.vaultName !== vault.value.vaultName) {
      return reject('inconsistent', `properties.${field} names another vault than resourceId`, op);
    }
    if (keyName !== undefined && keyName.toLowerCase() !== key.value.keyName.toLowerCase()) {
      return reject('inconsistent', 'properties.id and properties.requestUri name different keys', op);
    }
    keyName ??= key.value.keyName;
  }
  if (keyName === undefined)
    return reject('malformed', 'the record names no key (properties.id, properties.requestUri)', op);

  let kind: AuditKeyKind;
  if (status >= 200 && status < 300) kind = op === 'KeyDelete' ? 'keyDeleted' : 'keyPurged';
  else if (status === 403 && op === 'KeyDelete') kind = 'keyDeleteDenied';
  else
    return reject(
      'refused-request',
      `${op} answered ${status}: nothing was ${op === 'KeyDelete' ? 'deleted' : 'purged'}`,
      op,
    );

  const caller = callerFromClaims(own(r.identity, 'claim'), {
    ipAddress: r.callerIpAddress,
    userAgent: own(r.properties, 'clientInfo'),
  });
  const requestUri =
    typeof own(r.properties, 'requestUri') === 'string' ? (own(r.properties, 'requestUri') as string) : '';
  const correlationId = cleanText(r.correlationId, 128);
  return {
    ok: true,
    value: {
      kind,
      operationName: op,
      rawTime: r.time,
      signalTime,
      vault: vault.value,
      keyName,
      httpStatusCode: status,
      ...(caller !== undefined ? { caller } : {}),
      ...(correlationId !== undefined ? { correlationId } : {}),
      eventId: stableHash([r.resourceId.toLowerCase(), op, r.time, requestUri, caller?.oid ?? '']),
    },
  };
}

/** Short, value-free description of zod issues (paths and messages only). */
export function formatZodIssues(error: z.ZodError): string {
  return error.issues
    .slice(0, 3)
    .map((i) => `${i.path.length > 0 ? i.path.map(String).join('.') : '(root)'}: ${i.message}`.slice(0, 200))
    .join('; ');
}
