/**
 * Domain types of kvguard's pipeline (design §2), written first and documented field by field.
 *
 * Everything in `lib/core/` is pure: these types describe what the pure functions take and return.
 * Times are ISO 8601 strings in UTC with millisecond precision (`2026-01-02T03:04:05.678Z`) unless a
 * field says otherwise, so values compare as strings and survive JSON round trips unchanged.
 */

/** The path a signal came by. `replay` wins over the wire shape when an operator replayed it. */
export type SignalSource = 'auditLog' | 'eventGrid' | 'cloudEvent' | 'monitorAlert' | 'sweep' | 'replay';

/**
 * Who made the request, as far as the signal (or enrichment) tells. Every field may be missing:
 * Key Vault system events carry no caller at all, a sweep never does, ARM events carry no user agent.
 */
export interface Caller {
  /** Entra object id of the principal (`oid`, or `http://schemas.microsoft.com/identity/claims/objectidentifier`). */
  oid?: string;
  /** User principal name (`upn`, `unique_name`, or the `.../claims/upn` URI claim); users only. */
  upn?: string;
  /**
   * Application (client) id (`appid`, or `azp` in v2 tokens). For a user token this is the client app
   * the user signed in with (e.g. Azure CLI), not the user: see `idtyp`.
   */
  appId?: string;
  /** Token identity type claim: `app` (app-only token) or `user`; often absent in older records. */
  idtyp?: string;
  /** Client IP as Azure saw it (`callerIpAddress`, ARM `httpRequest.clientIpAddress`, else `ipaddr`). */
  ipAddress?: string;
  /** User agent (`properties.clientInfo` of an AuditEvent record); ARM events have none. */
  userAgent?: string;
  /** Display name (the `name` claim, or Microsoft Graph when enrichment is granted). */
  displayName?: string;
  /** Principal type from Microsoft Graph (`user`, `servicePrincipal`, `managedIdentity`), when known. */
  principalType?: string;
}

/** Fields every trigger that names a vault carries. */
interface VaultTriggerBase {
  /** How the signal arrived (see `SignalSource`). */
  source: SignalSource;
  /** Vault name, lower-cased (vault names are DNS labels and compare case-insensitively). */
  vaultName: string;
  /** `<vaultName>.vault.azure.net`, lower-cased; the only host kvguard may ever call for this trigger. */
  vaultHost: string;
  /**
   * ARM resource id of the vault as the signal spelled it (AuditEvent records upper-case it), when the
   * signal had one. Compare case-insensitively.
   */
  vaultResourceId?: string;
  /**
   * The time of the event itself: the AuditEvent `time` (when the vault handled the request), the
   * `TimeGenerated` dimension of a log alert, the `deletedDate` a sweep read, the ARM event time.
   * Never the time a copy of the signal was published.
   */
  signalTime: string;
  /** The caller, when this signal names one; `undefined` means "not known from this signal". */
  caller?: Caller;
  /**
   * Id of the source event: the Event Grid / CloudEvent `id`, the derived stable id of an AuditEvent
   * record (same as the forwarder's CloudEvent id), the alert id of a log alert, a derived id for a
   * sweep row. Informational: Event Grid ids are never the key of a deletion incident.
   */
  eventId: string;
  /** The raw operation name: `KeyDelete`, `Microsoft.KeyVault/vaults/delete`, the event type, `sweep`. */
  operationName: string;
  /** The envelope's event type, when the signal came in an Event Grid event or a CloudEvent. */
  eventType?: string;
  /** Present when the trigger came from an Azure Monitor alert (so the caller can check its target). */
  alert?: AlertOrigin;
}

/** The Azure Monitor alert a trigger came from. Holds ARM ids only: never a URL from the payload. */
export interface AlertOrigin {
  /** `essentials.alertId` (an ARM id of the fired alert). */
  alertId: string;
  /** `essentials.alertRule`, the rule's name. */
  alertRule?: string;
  /** `essentials.alertTargetIDs` that are well-formed ARM ids (for a workspace rule: the workspace). */
  targetResourceIds: string[];
  /** The first target that is a Log Analytics workspace, if any. */
  workspaceResourceId?: string;
}

/** A key was deleted: a 2xx `KeyDelete` (AuditEvent, forwarder CloudEvent, alias type, log alert). */
export interface KeyDeletedTrigger extends VaultTriggerBase {
  kind: 'keyDeleted';
  /** Key name as the signal spelled it (1–127 alphanumerics and hyphens; compare case-insensitively). */
  keyName: string;
  /** HTTP status of the recorded request, when the signal carried it. */
  httpStatusCode?: number;
}

/** A deleted key was purged: a 2xx `KeyPurge`. Not recoverable. */
export interface KeyPurgedTrigger extends VaultTriggerBase {
  kind: 'keyPurged';
  keyName: string;
  httpStatusCode?: number;
}

/** A `KeyDelete` the vault refused (403): an attempt. Alert only. */
export interface KeyDeleteDeniedTrigger extends VaultTriggerBase {
  kind: 'keyDeleteDenied';
  keyName: string;
  /** Always 403 today; kept so the alert can say what the vault answered. */
  httpStatusCode: number;
}

/** `Microsoft.Resources.ResourceDeleteSuccess` for `Microsoft.KeyVault/vaults/delete`. */
export interface VaultDeletedTrigger extends VaultTriggerBase {
  kind: 'vaultDeleted';
}

/** `Microsoft.Resources.ResourceWriteSuccess` for `Microsoft.KeyVault/vaults/write`: re-read, compare. */
export interface VaultWrittenTrigger extends VaultTriggerBase {
  kind: 'vaultWritten';
}

/**
 * An access-policy change, from either of the two events one change raises: the Key Vault system
 * topic's `Microsoft.KeyVault.VaultAccessPolicyChanged` (no caller in it; `operationName` is that event
 * type), or ARM's `Microsoft.Resources.ResourceWriteSuccess` for
 * `Microsoft.KeyVault/vaults/accessPolicies/write` (with the caller's claims; `operationName` is that
 * ARM operation). Both land on one incident (see `accessPolicyOrigin`, `findAccessPolicyIncident`).
 */
export interface AccessPolicyChangedTrigger extends VaultTriggerBase {
  kind: 'accessPolicyChanged';
}

/** A soft-deleted key the sweep found (`GET /deletedkeys`); the caller is never known from it. */
export interface SweptDeletedKeyTrigger extends VaultTriggerBase {
  kind: 'sweptDeletedKey';
  keyName: string;
  /** The key's `deletedDate` as listed (also the `signalTime`). */
  deletedDate: string;
}

/** A soft-deleted vault the sweep found (ARM `deletedVaults`). */
export interface SweptDeletedVaultTrigger extends VaultTriggerBase {
  kind: 'sweptDeletedVault';
  /** `properties.deletionDate` (also the `signalTime`). */
  deletionDate: string;
  /** `properties.location`, needed to recover or read the deleted vault. */
  location?: string;
  /** `properties.scheduledPurgeDate`, when listed. */
  scheduledPurgeDate?: string;
  /** `properties.purgeProtectionEnabled`, when listed. */
  purgeProtectionEnabled?: boolean;
}

/**
 * A log alert that fired without dimensions naming the key and the time: kvguard must run its own
 * query (`AZKVAuditLogs`) against the configured workspace over this window. It never follows a link
 * from the payload; none is kept here.
 */
export interface QueryNeededTrigger {
  kind: 'queryNeeded';
  source: SignalSource;
  /** `essentials.alertId`. */
  eventId: string;
  /** `essentials.monitoringService` (`Log Alerts V2`). */
  operationName: string;
  alert: AlertOrigin;
  /** `alertContext.condition.windowStartTime` (or fired time minus window size). */
  windowStart: string;
  /** `alertContext.condition.windowEndTime` (or the fired time). */
  windowEnd: string;
  /** `alertContext.condition.windowSize` as published (ISO 8601 duration such as `PT10M`), if valid. */
  windowSize?: string;
  /** `essentials.firedDateTime`, when valid. */
  firedTime?: string;
  /** Why the dimensions were not enough (human text). */
  reason: string;
}

/** Triggers that name a vault: what `checkScope` and `decide` take. */
export type VaultTrigger =
  | KeyDeletedTrigger
  | KeyPurgedTrigger
  | KeyDeleteDeniedTrigger
  | VaultDeletedTrigger
  | VaultWrittenTrigger
  | AccessPolicyChangedTrigger
  | SweptDeletedKeyTrigger
  | SweptDeletedVaultTrigger;

/** Triggers that name a key. */
export type KeyTrigger =
  KeyDeletedTrigger | KeyPurgedTrigger | KeyDeleteDeniedTrigger | SweptDeletedKeyTrigger;

/** Everything normalise can turn an input into, apart from a rejection. */
export type Trigger = VaultTrigger | QueryNeededTrigger;

export type TriggerKind = Trigger['kind'];

/** Why an input (or one item of it) was not turned into a trigger. Closed set. */
export type RejectionReason =
  /** Not the shape it claims to be: missing or mistyped fields, invalid times, not an object. */
  | 'malformed'
  /** A well-formed event of a type kvguard does not handle (e.g. `SecretNewVersionCreated`). */
  | 'unsupported-type'
  /** A resource kvguard does not handle: Managed HSM, or not a Key Vault at all. */
  | 'unsupported-resource'
  /** An AuditEvent operation that is not a key deletion or purge (e.g. `KeyGet`, `VaultGet`). */
  | 'not-a-deletion'
  /** A vault-level data-plane log operation (`VaultDelete`, `VaultPatch`…): the ARM events cover it. */
  | 'left-to-arm-events'
  /** The recorded request failed (e.g. 404 `KeyDelete`, 403 `KeyPurge`): nothing was deleted. */
  | 'refused-request'
  /** A host that is not strictly `https://<vault-name>.vault.azure.net` (look-alikes, ports, userinfo). */
  | 'invalid-vault-host'
  /** A key name outside 1–127 alphanumerics and hyphens. */
  | 'invalid-key-name'
  /** Parts of the signal name different vaults or keys (resource id vs URL, type vs operation). */
  | 'inconsistent'
  /** An Azure Monitor alert in the `Resolved` state: not a new event. */
  | 'alert-resolved'
  /** More items than one call accepts; the rest were not read. */
  | 'too-large';

export interface Rejection {
  kind: 'rejection';
  reason: RejectionReason;
  /** Human explanation, safe to log (no payload values beyond names, types and operation names). */
  message: string;
  /** How the input arrived (as for triggers). */
  source: SignalSource;
  /** Where in the input: `''` for the whole input, `[2]`, `records[5]`, `[1].records[0]`. */
  path: string;
  /** The event id, event type and operation name, when they could be read. */
  eventId?: string;
  eventType?: string;
  operationName?: string;
}

/** One item of normalise's answer, in input order. */
export type NormaliseResult = Trigger | Rejection;

/** Severity of a decision or an alert. */
export type Severity = 'informational' | 'warning' | 'critical';

/** What kvguard decided to do. */
export type DecisionAction =
  /** Recover the soft-deleted key. */
  | 'recover-key'
  /** Recover the soft-deleted vault (ARM PUT `createMode: recover`). */
  | 'recover-vault'
  /** Leave the key deleted (allow-listed caller, sanctioned tag) and say so. */
  | 'leave-deleted'
  /** Close an incident that was waiting for attribution. */
  | 'close-incident'
  /** Nothing to change; alert a human. */
  | 'alert-only'
  /** Nothing to do and nothing worth a new alert (already active, no change). */
  | 'none';

/** Machine-readable reason of a decision. Closed set; `Decision.reason` says it in words. */
export type DecisionCode =
  | 'allow-listed-caller'
  | 'caller-not-allow-listed'
  | 'sanctioned-tag'
  | 'sanctioned-tag-misused'
  | 'untagged'
  | 'tag-expired'
  | 'tag-too-far-ahead'
  | 'tag-unparsable'
  | 'attribution-allow-listed-sanctioned'
  | 'attribution-allow-listed-untagged'
  | 'attribution-not-allow-listed'
  | 'attribution-nothing-new'
  | 'key-already-active'
  | 'key-purged'
  | 'key-not-recoverable'
  | 'delete-denied'
  | 'vault-deleted'
  | 'vault-deletion-alert-only'
  | 'vault-already-active'
  | 'vault-not-recoverable'
  | 'vault-weakened'
  | 'vault-write-no-weakening'
  | 'vault-write-no-baseline'
  | 'access-policy-changed';

/** A way a vault write weakened the vault's protection. */
export type VaultWeakening =
  | 'retention-lowered'
  | 'public-network-opened'
  | 'network-default-allow'
  | 'rbac-model-switched'
  | 'purge-protection-lost';

/** The decision of design §2 step 6: a pure function of trigger, observed facts and policy. */
export interface Decision {
  action: DecisionAction;
  code: DecisionCode;
  /** Why, in words (goes into the alert and the log). */
  reason: string;
  severity: Severity;
  /** Also turn on purge protection (only ever `true`: it is irreversible; kvguard never sends `false`). */
  enablePurgeProtection: boolean;
  /** `false` in observe mode and for decisions that change nothing: the act step must not write. */
  writes: boolean;
  /** Whether this decision warrants an alert (primary or follow-up). */
  notify: boolean;
  /** Advice for the attribution follow-up (e.g. "tag the key before deleting it"). */
  followUp?: string;
  /** For vault writes: what was weakened. */
  weakenings?: VaultWeakening[];
}

/** The key as design §2 step 3 re-read it. */
export interface ObservedKey {
  /** `deleted`: listed in `/deletedkeys`; `active`: `GET /keys/{name}` answers; `gone`: neither (purged). */
  state: 'deleted' | 'active' | 'gone';
  /** `deletedDate` of the deleted key. */
  deletedDate?: string;
  /** `scheduledPurgeDate` of the deleted key. */
  scheduledPurgeDate?: string;
  /** `attributes.recoveryLevel`, e.g. `Recoverable+Purgeable`. */
  recoveryLevel?: string;
  /** The key's tags (of the deleted key, or of the active key). */
  tags?: Readonly<Record<string, string>>;
}

/** Vault facts from ARM (live vault, or deleted vault). `undefined` fields are unknown. */
export interface ObservedVault {
  /** `active`: `vaults/get` answers; `deleted`: listed in `deletedVaults`; `gone`: neither (purged). */
  state?: 'active' | 'deleted' | 'gone';
  purgeProtectionEnabled?: boolean;
  softDeleteRetentionInDays?: number;
  /** `properties.publicNetworkAccess`: `Enabled` / `Disabled`. */
  publicNetworkAccess?: string;
  /** `properties.networkAcls.defaultAction`: `Allow` / `Deny`. */
  networkDefaultAction?: string;
  enableRbacAuthorization?: boolean;
}

/** Outcome of one write the act step attempted (or would have attempted). */
export type ActionKind = 'recover-key' | 'recover-vault' | 'enable-purge-protection';

export type ActionStatus =
  /** Done by this invocation. */
  | 'succeeded'
  /** Nothing to do: already active / already enabled. */
  | 'already-done'
  /** Observe mode or dry run: would have been done. */
  | 'planned'
  /** The object was purged: it cannot come back. */
  | 'not-recoverable'
  /** 403: kvguard's identity lacks a permission (see `requiredPermission`). */
  | 'forbidden'
  /** 429 and the retry budget ran out: continues on redelivery or the next sweep. */
  | 'throttled'
  /** Still running when the invocation's time budget ended: continues later. */
  | 'pending'
  /** Any other failure. */
  | 'failed';

export interface ActionResult {
  action: ActionKind;
  status: ActionStatus;
  /** Short, already safe text (pass errors through `toSafeError` first). */
  detail?: string;
  /** For `forbidden`: the RBAC (data) action kvguard's identity needs. */
  requiredPermission?: string;
}

/** Which kind of incident a key identifies (design §2 step 4). */
export type IncidentKind =
  | 'key-deletion'
  | 'key-purge'
  | 'delete-denied'
  | 'vault-deletion'
  | 'vault-write'
  | 'access-policy'
  /**
   * Rows of earlier versions (`ops_observe_<vault>_<day>`: a vault kvguard could not read); no longer
   * written: operational alerts keep their marks apart (lib/operational.ts).
   */
  | 'operational';

/**
 * Where an incident lives in the ledger (an Azure Table). `id` is the RowKey and the incident's name
 * everywhere else (alert ids are `<id>/primary`, `<id>/attribution`): only `[a-z0-9._-]`, at most a
 * few hundred characters, so it is a valid RowKey (no `/ \ # ?`, no control characters, ≤ 1 KiB).
 */
export interface IncidentKey {
  kind: IncidentKind;
  /** The vault name (lower-cased): one partition per vault. */
  partitionKey: string;
  /** The incident id (also the RowKey). */
  id: string;
}

/** The two alerts an incident may send. */
export type AlertKind = 'primary' | 'attribution';

/** One alert, composed once and sent to every sink (design §2 step 8). All text is already safe. */
export interface AlertContent {
  /** `<incidentId>/primary` or `<incidentId>/attribution`: receivers drop repeats by it. */
  id: string;
  incidentId: string;
  kind: AlertKind;
  title: string;
  /** From the outcome: anything not recoverable, or a failed recovery, is critical. */
  severity: Severity;
  /** Who did it and from where. */
  who: {
    /** `false` while the caller is "still being identified". */
    known: boolean;
    /** One line: `alice@contoso.com (oid …) from 203.0.113.7 using azsdk-js/…`. */
    summary: string;
    upn?: string;
    appId?: string;
    oid?: string;
    displayName?: string;
    ipAddress?: string;
    userAgent?: string;
  };
  /** What was touched. */
  what: {
    summary: string;
    vaultName: string;
    vaultHost: string;
    vaultResourceId?: string;
    keyName?: string;
    /** The time of the event (the deletion time for a deletion). */
    signalTime: string;
    operationName: string;
  };
  /** The decision, with its reason. */
  decision: { action: DecisionAction; code: DecisionCode; reason: string };
  /** What kvguard did (or would have done in observe mode) and how each write ended. */
  actions: Array<{ action: ActionKind; status: ActionStatus; summary: string }>;
  /** One sentence: what kvguard did and the result. */
  outcome: string;
  /** What a human must still do (never empty: "nothing" is said explicitly). */
  humanActions: string[];
  /** `true` when kvguard wrote nothing because it runs in observe mode / dry run. */
  observeMode: boolean;
}
