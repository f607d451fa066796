/**
 * Azure Monitor common alert schema, Log Alerts V2 (facts §5.2). Search results are not embedded, so
 * a rule that splits by dimensions (key id, `TimeGenerated`, caller) gives kvguard a trigger directly;
 * any other firing becomes a `queryNeeded` trigger: kvguard then runs its own query against the
 * configured workspace. No URL from the payload (`linkToSearchResultsAPI`, portal links) is kept:
 * a payload must never make kvguard send a request or a token anywhere.
 */
import * as z from 'zod';
import { formatZodIssues } from './audit-record';
import { compactCaller } from './caller';
import { isArmResourceId, isWorkspaceResourceId, parseKeyUrl, parseVaultResourceId } from './identifiers';
import type { AlertOrigin, NormaliseResult } from './model';
import { rejection, type ItemContext } from './rejection';
import { parseDuration, toIsoInstant } from './time';
import { cleanText, describe, own } from './untrusted';

export const COMMON_ALERT_SCHEMA_ID = 'azureMonitorCommonAlertSchema';
const LOG_ALERTS_V2 = 'Log Alerts V2';

const dimension = z.object({ name: z.string().max(256), value: z.unknown() });
const commonAlertSchema = z.object({
  schemaId: z.literal(COMMON_ALERT_SCHEMA_ID),
  data: z.object({
    essentials: z.object({
      alertId: z.string().min(1).max(1024),
      alertRule: z.string().max(1024).optional(),
      monitorCondition: z.string().max(64).optional(),
      monitoringService: z.string().max(128).optional(),
      alertTargetIDs: z.array(z.unknown()).max(100).optional(),
      firedDateTime: z.string().max(40).optional(),
    }),
    alertContext: z
      .object({
        condition: z
          .object({
            windowSize: z.string().max(32).optional(),
            windowStartTime: z.string().max(40).optional(),
            windowEndTime: z.string().max(40).optional(),
            allOf: z
              .array(z.object({ dimensions: z.array(dimension).max(100).nullish() }))
              .max(100)
              .nullish(),
          })
          .optional(),
      })
      .nullish(),
  }),
});

/** Looks like a common-alert payload (used to tell shapes apart before parsing). */
export function looksLikeCommonAlert(value: unknown): boolean {
  return own(value, 'schemaId') !== undefined && own(value, 'data') !== undefined;
}

/**
 * Dimension names kvguard understands, lower-cased: the AZKVAuditLogs columns, their AzureDiagnostics
 * equivalents, and short names a rule can `extend`.
 */
const DIMENSIONS = {
  keyId: ['id', 'id_s', 'keyid'],
  time: ['timegenerated'],
  resource: ['_resourceid', 'resourceid'],
  operation: ['operationname'],
  status: ['httpstatuscode', 'httpstatuscode_d'],
  oid: ['identity_claim_oid_g', 'identity_claim_oid_s', 'callerobjectid', 'oid'],
  upn: ['identity_claim_upn_s', 'callerupn', 'upn'],
  appId: ['identity_claim_appid_g', 'identity_claim_appid_s', 'callerappid', 'appid'],
  idtyp: ['identity_claim_idtyp_s', 'idtyp'],
  ip: ['calleripaddress'],
  userAgent: ['clientinfo', 'clientinfo_s'],
} as const;

type Dimensions = Map<string, unknown>;

function dim(dims: Dimensions, names: readonly string[]): unknown {
  for (const n of names) if (dims.has(n)) return dims.get(n);
  return undefined;
}

export function fromCommonAlert(input: unknown, ctx: ItemContext): NormaliseResult[] {
  const parsed = commonAlertSchema.safeParse(input);
  if (!parsed.success) {
    const schemaId = own(input, 'schemaId');
    if (typeof schemaId === 'string' && schemaId !== COMMON_ALERT_SCHEMA_ID) {
      return [
        rejection(
          ctx,
          'unsupported-type',
          `alert schema ${describe(schemaId)} is not the common alert schema`,
        ),
      ];
    }
    return [
      rejection(ctx, 'malformed', `not a common alert schema payload: ${formatZodIssues(parsed.error)}`),
    ];
  }
  const { essentials, alertContext } = parsed.data.data;
  const about = { eventId: essentials.alertId, operationName: essentials.monitoringService };
  if (essentials.monitoringService !== LOG_ALERTS_V2) {
    return [
      rejection(
        ctx,
        'unsupported-type',
        `monitoring service ${describe(essentials.monitoringService)} is not Log Alerts V2`,
        about,
      ),
    ];
  }
  if (essentials.monitorCondition !== undefined && essentials.monitorCondition.toLowerCase() === 'resolved') {
    return [rejection(ctx, 'alert-resolved', 'a resolved alert is not a new event', about)];
  }
  const targetResourceIds = (essentials.alertTargetIDs ?? []).filter(isArmResourceId);
  const workspaceResourceId = targetResourceIds.find(isWorkspaceResourceId);
  const alertRule = cleanText(essentials.alertRule, 256, true);
  const alert: AlertOrigin = {
    alertId: essentials.alertId,
    ...(alertRule !== undefined ? { alertRule } : {}),
    targetResourceIds,
    ...(workspaceResourceId !== undefined ? { workspaceResourceId } : {}),
  };
  const condition = alertContext?.condition;
  const results: NormaliseResult[] = [];
  const whyNoTrigger: string[] = [];
  (condition?.allOf ?? []).forEach((c, i) => {
    const dims: Dimensions = new Map();
    for (const d of c.dimensions ?? []) dims.set(d.name.trim().toLowerCase(), d.value);
    const r = fromDimensions(dims, alert, { ...ctx, path: `${ctx.path}allOf[${i}]` });
    if (typeof r === 'string') whyNoTrigger.push(r);
    else results.push(r);
  });
  if (results.length > 0) return results;

  // Nothing named the key and the time: kvguard's own query over the alert window.
  const firedTime = toIsoInstant(essentials.firedDateTime);
  const sizeMs = parseDuration(condition?.windowSize);
  const windowEnd = toIsoInstant(condition?.windowEndTime) ?? firedTime;
  const windowStart =
    toIsoInstant(condition?.windowStartTime) ??
    (windowEnd !== undefined && sizeMs !== undefined
      ? new Date(Date.parse(windowEnd) - sizeMs).toISOString()
      : undefined);
  if (windowStart === undefined || windowEnd === undefined || windowStart > windowEnd) {
    return [rejection(ctx, 'malformed', 'the alert has no usable time window', about)];
  }
  return [
    {
      kind: 'queryNeeded',
      source: ctx.source,
      eventId: essentials.alertId,
      operationName: LOG_ALERTS_V2,
      alert,
      windowStart,
      windowEnd,
      ...(sizeMs !== undefined ? { windowSize: condition!.windowSize! } : {}),
      ...(firedTime !== undefined ? { firedTime } : {}),
      reason: whyNoTrigger[0] ?? 'the alert carries no dimensions',
    },
  ];
}

/** A trigger from one condition's dimensions, or the reason they are not enough. */
function fromDimensions(dims: Dimensions, alert: AlertOrigin, ctx: ItemContext): NormaliseResult | string {
  if (dims.size === 0) return 'the alert carries no dimensions';
  const keyId = dim(dims, DIMENSIONS.keyId);
  const time = dim(dims, DIMENSIONS.time);
  if (keyId === undefined || time === undefined)
    return 'the dimensions do not name the key id and TimeGenerated';
  const about = { eventId: alert.alertId };
  const op = cleanText(dim(dims, DIMENSIONS.operation), 128) ?? 'KeyDelete';
  if (op !== 'KeyDelete' && op !== 'KeyPurge') {
    return rejection(ctx, 'not-a-deletion', `${describe(op)} is not a key deletion or purge`, {
      ...about,
      operationName: op,
    });
  }
  const withOp = { ...about, operationName: op };
  const key = parseKeyUrl(keyId);
  if (!key.ok) return rejection(ctx, key.reason, `key id dimension: ${key.message}`, withOp);
  const resource = dim(dims, DIMENSIONS.resource);
  let vaultResourceId: string | undefined;
  if (resource !== undefined) {
    const rid = parseVaultResourceId(resource);
    if (!rid.ok) return rejection(ctx, rid.reason, `resource dimension: ${rid.message}`, withOp);
    if (rid.value.vaultName !== key.value.vaultName)
      return rejection(
        ctx,
        'inconsistent',
        'the resource and key id dimensions name different vaults',
        withOp,
      );
    vaultResourceId = rid.value.resourceId;
  }
  const signalTime = toIsoInstant(time);
  if (signalTime === undefined)
    return rejection(ctx, 'malformed', 'TimeGenerated is not a valid instant', withOp);
  const rawStatus = dim(dims, DIMENSIONS.status);
  const status =
    rawStatus === undefined
      ? undefined
      : Number(typeof rawStatus === 'string' ? rawStatus.trim() : rawStatus);
  if (status !== undefined && !(Number.isInteger(status) && status >= 100 && status <= 599)) {
    return rejection(ctx, 'malformed', 'the HTTP status dimension is not a status code', withOp);
  }
  const ok = status === undefined || (status >= 200 && status < 300);
  let kind: 'keyDeleted' | 'keyPurged' | 'keyDeleteDenied';
  if (ok) kind = op === 'KeyDelete' ? 'keyDeleted' : 'keyPurged';
  else if (status === 403 && op === 'KeyDelete') kind = 'keyDeleteDenied';
  else return rejection(ctx, 'refused-request', `${op} answered ${status}: nothing was changed`, withOp);
  const caller = compactCaller({
    oid: cleanText(dim(dims, DIMENSIONS.oid), 128),
    upn: cleanText(dim(dims, DIMENSIONS.upn), 256),
    appId: cleanText(dim(dims, DIMENSIONS.appId), 128),
    idtyp: cleanText(dim(dims, DIMENSIONS.idtyp), 16),
    ipAddress: cleanText(dim(dims, DIMENSIONS.ip), 64),
    userAgent: cleanText(dim(dims, DIMENSIONS.userAgent), 512, true),
  });
  const base = {
    source: ctx.source,
    vaultName: key.value.vaultName,
    vaultHost: key.value.vaultHost,
    ...(vaultResourceId !== undefined ? { vaultResourceId } : {}),
    keyName: key.value.keyName,
    signalTime,
    ...(caller !== undefined ? { caller } : {}),
    eventId: alert.alertId,
    operationName: op,
    alert,
  };
  if (kind === 'keyDeleteDenied') return { ...base, kind, httpStatusCode: 403 };
  return { ...base, kind, ...(status !== undefined ? { httpStatusCode: status } : {}) };
}
