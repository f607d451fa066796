/**
 * The kvguard signal CloudEvents the audit-log forwarder publishes to the `kvguard-signals` topic
 * (design §1). Their `data` is versioned: `schemas/signal-data.v1.schema.json` is the published
 * contract (JSON Schema 2020-12) and `signalDataV1` below is the zod schema that matches it; a test
 * checks that both accept and refuse the same samples. Change both together, or add a v2.
 */
import * as z from 'zod';

export const KEY_DELETED_V1 = 'Kvguard.KeyVault.KeyDeleted.v1';
export const KEY_PURGED_V1 = 'Kvguard.KeyVault.KeyPurged.v1';
export const KEY_DELETE_DENIED_V1 = 'Kvguard.KeyVault.KeyDeleteDenied.v1';
/** The name some security products give a key deletion; accepted as an alias of `KeyDeleted.v1`. */
export const KEY_DELETE_ALIAS = 'Microsoft.KeyVault.vaults.keys.delete';

export type SignalEventType = typeof KEY_DELETED_V1 | typeof KEY_PURGED_V1 | typeof KEY_DELETE_DENIED_V1;

/** `$id` of the data schema (use it as the CloudEvent `dataschema`). */
export const SIGNAL_DATA_SCHEMA_ID = 'urn:kvguard:schema:signal-data:v1';

/** Same pattern as the JSON Schema's `recordTime` (RFC 3339 with seconds and an explicit zone). */
export const SIGNAL_TIME_PATTERN = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?(Z|[+-]\d{2}:\d{2})$/;

const text = (max: number) => z.string().min(1).max(max);

export const signalCallerV1 = z.strictObject({
  oid: text(128).optional(),
  upn: text(256).optional(),
  appId: text(128).optional(),
  idtyp: text(16).optional(),
  ipAddress: text(64).optional(),
  userAgent: text(512).optional(),
});

export const signalDataV1 = z.strictObject({
  /** Vault name (Key Vault naming rules). */
  vaultName: z.string().regex(/^[A-Za-z][A-Za-z0-9-]{1,22}[A-Za-z0-9]$/),
  /** `<vaultName>.vault.azure.net`, lower-case. */
  vaultHost: z
    .string()
    .max(64)
    .regex(/^[a-z][a-z0-9-]{1,22}[a-z0-9]\.vault\.azure\.net$/),
  /** ARM id of the vault as the record spelled it (records upper-case it). */
  vaultResourceId: z
    .string()
    .min(1)
    .max(512)
    .regex(/^\/.+$/)
    .optional(),
  /** Key name. */
  keyName: z.string().regex(/^[A-Za-z0-9-]{1,127}$/),
  /** The record's `time`: when the vault handled the request (the deletion time). */
  recordTime: z.string().max(40).regex(SIGNAL_TIME_PATTERN),
  /** `KeyDelete` or `KeyPurge`. */
  operationName: z.enum(['KeyDelete', 'KeyPurge']),
  /** `properties.httpStatusCode` of the record. */
  httpStatusCode: z.int().min(100).max(599),
  /** Who made the request, as the record's claims say; any field may be missing. */
  caller: signalCallerV1,
  /** The record's `correlationId` (client request id), when set. */
  correlationId: text(128).optional(),
});

export type SignalDataV1 = z.infer<typeof signalDataV1>;

/** The CloudEvent the forwarder publishes (the SDK adds `specversion`). */
export interface SignalCloudEvent {
  /** Stable id derived from the record: re-running a batch republishes the same ids. */
  id: string;
  type: SignalEventType;
  /** The vault's ARM id, lower-cased. */
  source: string;
  /** `/keys/<keyName>`. */
  subject: string;
  /** The record's `time` as written in the record (the deletion time). */
  time: string;
  data: SignalDataV1;
}
