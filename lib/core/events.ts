/**
 * Event Grid events and CloudEvents, once their envelope is read: the kvguard signal types (and the
 * `Microsoft.KeyVault.vaults.keys.delete` alias), ARM resource events for vaults (and for their
 * access policies: `Microsoft.KeyVault/vaults/accessPolicies/write`), and the Key Vault system topic's
 * `VaultAccessPolicyChanged`. Everything else is acknowledged as `unsupported-type`.
 */
import * as z from 'zod';
import { formatZodIssues } from './audit-record';
import { callerFromClaims, compactCaller } from './caller';
import {
  parseKeyUrl,
  parseVaultResourceId,
  parseVaultUrl,
  vaultHostFromName,
  type VaultResourceId,
} from './identifiers';
import type { Caller, NormaliseResult, VaultTrigger } from './model';
import { rejection, type ItemContext } from './rejection';
import {
  KEY_DELETE_ALIAS,
  KEY_DELETE_DENIED_V1,
  KEY_DELETED_V1,
  KEY_PURGED_V1,
  signalDataV1,
  type SignalDataV1,
} from './signal-data';
import { toIsoInstant } from './time';
import { cleanText, describe, isRecord, own, ownLoose } from './untrusted';

/** An Event Grid event or a CloudEvent with the envelope already checked. */
export interface EventEnvelope {
  id: string;
  type: string;
  /** `eventTime` / `time` exactly as sent (may be missing for a CloudEvent). */
  time?: string;
  subject?: string;
  /** Event Grid `topic` or CloudEvent `source`. */
  topic?: string;
  data: unknown;
}

const RESOURCES_DELETE = 'Microsoft.Resources.ResourceDeleteSuccess';
const RESOURCES_WRITE = 'Microsoft.Resources.ResourceWriteSuccess';
const ACCESS_POLICY_CHANGED = 'Microsoft.KeyVault.VaultAccessPolicyChanged';

/** Turns one event into a trigger or a rejection. */
export function fromEvent(env: EventEnvelope, ctx: ItemContext): NormaliseResult {
  const about = { eventId: env.id, eventType: env.type };
  switch (env.type) {
    case KEY_DELETED_V1:
      return fromSignalData(env, ctx, 'keyDeleted');
    case KEY_PURGED_V1:
      return fromSignalData(env, ctx, 'keyPurged');
    case KEY_DELETE_DENIED_V1:
      return fromSignalData(env, ctx, 'keyDeleteDenied');
    case KEY_DELETE_ALIAS:
      return fromAlias(env, ctx);
    case RESOURCES_DELETE:
    case RESOURCES_WRITE:
      return fromResourceEvent(env, ctx);
    case ACCESS_POLICY_CHANGED:
      return fromAccessPolicyChanged(env, ctx);
    default:
      return rejection(
        ctx,
        'unsupported-type',
        `event type ${describe(env.type)} is not a signal kvguard handles`,
        about,
      );
  }
}

type SignalKind = 'keyDeleted' | 'keyPurged' | 'keyDeleteDenied';

function vaultFromOptionalResourceId(
  value: unknown,
  vaultName: string,
):
  | { ok: true; id?: VaultResourceId }
  | { ok: false; reason: 'unsupported-resource' | 'inconsistent' | 'malformed'; message: string } {
  if (value === undefined) return { ok: true };
  const parsed = parseVaultResourceId(value);
  if (!parsed.ok) {
    return {
      ok: false,
      reason: parsed.reason === 'unsupported-resource' ? 'unsupported-resource' : 'malformed',
      message: `vaultResourceId: ${parsed.message}`,
    };
  }
  if (parsed.value.vaultName !== vaultName) {
    return { ok: false, reason: 'inconsistent', message: 'the resource id names another vault' };
  }
  return { ok: true, id: parsed.value };
}

/** The envelope's topic/source may be the vault (CloudEvents from the forwarder) or the custom topic. */
function topicNamesOtherVault(env: EventEnvelope, vaultName: string): boolean {
  const topic = parseVaultResourceId(env.topic);
  return topic.ok && topic.value.vaultName !== vaultName;
}

function fromSignalData(env: EventEnvelope, ctx: ItemContext, kind: SignalKind): NormaliseResult {
  const about = { eventId: env.id, eventType: env.type };
  const parsed = signalDataV1.safeParse(env.data);
  if (!parsed.success) {
    return rejection(
      ctx,
      'malformed',
      `data does not match ${env.type}: ${formatZodIssues(parsed.error)}`,
      about,
    );
  }
  return triggerFromSignalData(parsed.data, env, ctx, kind);
}

function triggerFromSignalData(
  data: SignalDataV1,
  env: EventEnvelope,
  ctx: ItemContext,
  kind: SignalKind,
): NormaliseResult {
  const about = { eventId: env.id, eventType: env.type, operationName: data.operationName };
  const vaultName = data.vaultName.toLowerCase();
  if (vaultHostFromName(vaultName) !== data.vaultHost) {
    return rejection(ctx, 'inconsistent', 'vaultHost is not <vaultName>.vault.azure.net', about);
  }
  const rid = vaultFromOptionalResourceId(data.vaultResourceId, vaultName);
  if (!rid.ok) return rejection(ctx, rid.reason, rid.message, about);
  if (topicNamesOtherVault(env, vaultName))
    return rejection(ctx, 'inconsistent', 'the event source names another vault', about);
  const signalTime = toIsoInstant(data.recordTime);
  if (signalTime === undefined)
    return rejection(ctx, 'malformed', 'recordTime is not a valid instant', about);
  const s = data.httpStatusCode;
  const consistent =
    kind === 'keyDeleted'
      ? data.operationName === 'KeyDelete' && s >= 200 && s < 300
      : kind === 'keyPurged'
        ? data.operationName === 'KeyPurge' && s >= 200 && s < 300
        : data.operationName === 'KeyDelete' && s === 403;
  if (!consistent) {
    return rejection(
      ctx,
      'inconsistent',
      `${data.operationName} with status ${s} does not match ${env.type}`,
      about,
    );
  }
  const caller = compactCaller({ ...data.caller });
  const base = {
    source: ctx.source,
    vaultName,
    vaultHost: data.vaultHost,
    ...(data.vaultResourceId !== undefined ? { vaultResourceId: data.vaultResourceId } : {}),
    signalTime,
    ...(caller !== undefined ? { caller } : {}),
    eventId: env.id,
    operationName: data.operationName,
    eventType: env.type,
    keyName: data.keyName,
    httpStatusCode: s,
  };
  return { ...base, kind };
}

/**
 * The alias type: products that emit it may use kvguard's data schema; otherwise kvguard reads a key
 * URL (`keyId`, `id` or `kid`, else the subject), a time (`recordTime`, `time`, else the envelope's)
 * and the caller (`caller` with kvguard's field names, or `claims`).
 */
function fromAlias(env: EventEnvelope, ctx: ItemContext): NormaliseResult {
  const about = { eventId: env.id, eventType: env.type };
  const strict = signalDataV1.safeParse(env.data);
  if (strict.success) return triggerFromSignalData(strict.data, env, ctx, 'keyDeleted');
  if (env.data !== undefined && !isRecord(env.data))
    return rejection(ctx, 'malformed', 'data is not an object', about);

  const keyUrl =
    ownLoose(env.data, 'keyId') ?? ownLoose(env.data, 'id') ?? ownLoose(env.data, 'kid') ?? env.subject;
  const key = parseKeyUrl(keyUrl);
  if (!key.ok) return rejection(ctx, key.reason, `key id: ${key.message}`, about);
  if (key.value.collection !== 'keys')
    return rejection(ctx, 'inconsistent', 'the key id does not name /keys/', about);
  const rid = vaultFromOptionalResourceId(ownLoose(env.data, 'vaultResourceId'), key.value.vaultName);
  if (!rid.ok) return rejection(ctx, rid.reason, rid.message, about);
  if (topicNamesOtherVault(env, key.value.vaultName))
    return rejection(ctx, 'inconsistent', 'the event source names another vault', about);

  const rawTime = ownLoose(env.data, 'recordTime') ?? ownLoose(env.data, 'time') ?? env.time;
  const signalTime = toIsoInstant(rawTime);
  if (signalTime === undefined)
    return rejection(ctx, 'malformed', 'no valid time in the data or the envelope', about);

  const callerData = ownLoose(env.data, 'caller');
  const caller: Caller | undefined = isRecord(callerData)
    ? compactCaller({
        oid: cleanText(own(callerData, 'oid'), 128),
        upn: cleanText(own(callerData, 'upn'), 256),
        appId: cleanText(own(callerData, 'appId'), 128),
        idtyp: cleanText(own(callerData, 'idtyp'), 16),
        ipAddress: cleanText(own(callerData, 'ipAddress'), 64),
        userAgent: cleanText(own(callerData, 'userAgent'), 512, true),
      })
    : callerFromClaims(ownLoose(env.data, 'claims'), {
        ipAddress: ownLoose(env.data, 'callerIpAddress'),
        userAgent: ownLoose(env.data, 'userAgent'),
      });
  return {
    kind: 'keyDeleted',
    source: ctx.source,
    vaultName: key.value.vaultName,
    vaultHost: key.value.vaultHost,
    ...(rid.id !== undefined ? { vaultResourceId: rid.id.resourceId } : {}),
    keyName: key.value.keyName,
    signalTime,
    ...(caller !== undefined ? { caller } : {}),
    eventId: env.id,
    operationName: env.type,
    eventType: env.type,
  };
}

const armEventData = z.object({
  operationName: z.string().min(1).max(256),
  resourceUri: z.string().max(1024).optional(),
  claims: z.unknown().optional(),
  httpRequest: z.unknown().optional(),
});

/**
 * The ARM operation of `PUT …/vaults/{name}/accessPolicies/{add|replace|remove}` (Vaults_UpdateAccessPolicy):
 * its `Microsoft.Resources.ResourceWriteSuccess` carries the caller's claims, which the Key Vault
 * system event `VaultAccessPolicyChanged` for the same change lacks.
 */
export const ACCESS_POLICY_WRITE_OPERATION = 'Microsoft.KeyVault/vaults/accessPolicies/write';

/**
 * The access-policy operation names `…/vaults/{name}/accessPolicies/{kind}` (or `…/accessPolicies/`)
 * rather than the vault; which of them ARM puts in `subject`/`resourceUri` is UNCONFIRMED, so every
 * form is read as the vault it belongs to.
 */
function withoutAccessPolicySuffix(resource: string | undefined): string | undefined {
  return resource?.replace(/\/accessPolicies(?:\/(?:add|replace|remove))?\/?$/i, '');
}

/** `Microsoft.Resources.Resource{Delete,Write}Success` for vaults (facts §4.4). */
function fromResourceEvent(env: EventEnvelope, ctx: ItemContext): NormaliseResult {
  const about = { eventId: env.id, eventType: env.type };
  const parsed = armEventData.safeParse(env.data);
  if (!parsed.success)
    return rejection(ctx, 'malformed', `ARM event data: ${formatZodIssues(parsed.error)}`, about);
  const data = parsed.data;
  const op = data.operationName;
  const withOp = { ...about, operationName: describe(op, 128) };
  const isDelete = env.type === RESOURCES_DELETE;
  const expected = isDelete ? 'microsoft.keyvault/vaults/delete' : 'microsoft.keyvault/vaults/write';
  // An access-policy change made through ARM: the same change as the system event, with its caller.
  const isPolicyWrite = !isDelete && op.toLowerCase() === ACCESS_POLICY_WRITE_OPERATION.toLowerCase();
  if (op.toLowerCase() !== expected && !isPolicyWrite) {
    const hsm = /^microsoft\.keyvault\/managedhsms\//i.test(op);
    return rejection(
      ctx,
      'unsupported-resource',
      hsm
        ? 'Managed HSM is not supported'
        : `operation ${describe(op, 128)} is not a Key Vault vault ${isDelete ? 'deletion' : 'write'}`,
      withOp,
    );
  }
  const resource = data.resourceUri ?? env.subject;
  if (
    data.resourceUri !== undefined &&
    env.subject !== undefined &&
    data.resourceUri.toLowerCase() !== env.subject.toLowerCase()
  ) {
    return rejection(ctx, 'inconsistent', 'subject and data.resourceUri name different resources', withOp);
  }
  const vault = parseVaultResourceId(isPolicyWrite ? withoutAccessPolicySuffix(resource) : resource);
  if (!vault.ok) return rejection(ctx, vault.reason, `resource: ${vault.message}`, withOp);
  const signalTime = toIsoInstant(env.time);
  if (signalTime === undefined) return rejection(ctx, 'malformed', 'the event has no valid time', withOp);
  const caller = callerFromClaims(data.claims, { ipAddress: own(data.httpRequest, 'clientIpAddress') });
  return {
    kind: isDelete ? 'vaultDeleted' : isPolicyWrite ? 'accessPolicyChanged' : 'vaultWritten',
    source: ctx.source,
    vaultName: vault.value.vaultName,
    vaultHost: vault.value.vaultHost,
    vaultResourceId: vault.value.resourceId,
    signalTime,
    ...(caller !== undefined ? { caller } : {}),
    eventId: env.id,
    operationName: op,
    eventType: env.type,
  };
}

/** Key Vault system-event data, read tolerantly (PascalCase, `"ObjectName "`, `NBF`/`EXP` strings). */
export interface KeyVaultEventData {
  id?: string;
  vaultName?: string;
  objectType?: string;
  objectName?: string;
  version?: string;
  /** Seconds since the epoch (`NBF`, sent as a string although the spec says number). */
  nbf?: number;
  exp?: number;
}

function epochSeconds(value: unknown): number | undefined {
  const n =
    typeof value === 'number'
      ? value
      : typeof value === 'string' && /^\s*\d{1,12}\s*$/.test(value)
        ? Number(value)
        : NaN;
  return Number.isSafeInteger(n) ? n : undefined;
}

export function readKeyVaultEventData(data: unknown): KeyVaultEventData {
  const out: KeyVaultEventData = {};
  const fields: Array<[keyof Omit<KeyVaultEventData, 'nbf' | 'exp'>, string, number]> = [
    ['id', 'Id', 2048],
    ['vaultName', 'VaultName', 64],
    ['objectType', 'ObjectType', 64],
    ['objectName', 'ObjectName', 256],
    ['version', 'Version', 64],
  ];
  for (const [field, wire, max] of fields) {
    const v = cleanText(ownLoose(data, wire), max);
    if (v !== undefined) out[field] = v;
  }
  const nbf = epochSeconds(ownLoose(data, 'NBF'));
  const exp = epochSeconds(ownLoose(data, 'EXP'));
  if (nbf !== undefined) out.nbf = nbf;
  if (exp !== undefined) out.exp = exp;
  return out;
}

/** `Microsoft.KeyVault.VaultAccessPolicyChanged`: the vault from `VaultName`, the topic and `Id`, which must agree. */
function fromAccessPolicyChanged(env: EventEnvelope, ctx: ItemContext): NormaliseResult {
  const about = { eventId: env.id, eventType: env.type, operationName: env.type };
  const data = readKeyVaultEventData(env.data);
  const names: string[] = [];
  let resourceId: string | undefined;
  if (data.vaultName !== undefined) {
    const host = vaultHostFromName(data.vaultName);
    if (host === undefined)
      return rejection(ctx, 'invalid-vault-host', 'VaultName is not a valid vault name', about);
    names.push(data.vaultName.toLowerCase());
  }
  if (env.topic !== undefined) {
    const rid = parseVaultResourceId(env.topic);
    if (!rid.ok && rid.reason === 'unsupported-resource' && /managedHSMs/i.test(env.topic)) {
      return rejection(ctx, 'unsupported-resource', 'Managed HSM is not supported', about);
    }
    if (rid.ok) {
      names.push(rid.value.vaultName);
      resourceId = rid.value.resourceId;
    }
  }
  if (data.id !== undefined) {
    const url = parseVaultUrl(data.id);
    if (!url.ok) return rejection(ctx, url.reason, `Id: ${url.message}`, about);
    names.push(url.value.vaultName);
  }
  const vaultName = names[0];
  if (vaultName === undefined) return rejection(ctx, 'malformed', 'the event names no vault', about);
  if (names.some((n) => n !== vaultName))
    return rejection(ctx, 'inconsistent', 'VaultName, topic and Id name different vaults', about);
  const signalTime = toIsoInstant(env.time);
  if (signalTime === undefined) return rejection(ctx, 'malformed', 'the event has no valid time', about);
  const trigger: VaultTrigger = {
    kind: 'accessPolicyChanged',
    source: ctx.source,
    vaultName,
    vaultHost: vaultHostFromName(vaultName)!,
    ...(resourceId !== undefined ? { vaultResourceId: resourceId } : {}),
    signalTime,
    eventId: env.id,
    operationName: env.type,
    eventType: env.type,
  };
  return trigger;
}
