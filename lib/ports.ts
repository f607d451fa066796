/**
 * Ports: the interfaces between kvguard's logic and the outside world. `lib/adapters/` implements
 * each with the Azure SDK; unit tests implement them with in-memory fakes (test/fakes/). Every
 * expected failure is a typed outcome, never an exception: an exception means a bug or a retryable
 * transport failure the caller may rethrow so the platform redelivers.
 */

/** Time, so tests control it. */
export interface Clock {
  now(): Date;
  sleep(ms: number): Promise<void>;
}

/** Why a call could not do what was asked, when that is an expected answer of the service. */
export type CallFailure =
  | { kind: 'forbidden'; status: 403; detail: string; missingPermission: string }
  | { kind: 'throttled'; status: 429; retryAfterMs?: number }
  | { kind: 'transient'; status: number; detail: string }
  | { kind: 'failed'; status: number; detail: string };

/** A soft-deleted key as `GET /deletedkeys/{name}` or a `/deletedkeys` list row shows it. */
export interface DeletedKeyState {
  name: string;
  deletedOn: Date;
  scheduledPurgeDate?: Date;
  recoveryLevel?: string;
  tags: Record<string, string>;
}

/** What `observe` learns about one key. */
export type KeyObservation =
  | { state: 'deleted'; deleted: DeletedKeyState }
  | { state: 'active'; tags: Record<string, string> }
  /** Neither active nor deleted: purged, never existed, or the deletion has not completed yet. */
  | { state: 'absent' }
  | { state: 'unknown'; failure: CallFailure };

export type RecoverOutcome =
  | { result: 'recovered'; polls: number }
  | { result: 'already-active' }
  | { result: 'already-purged' }
  /** Still in flight when the deadline came; the next delivery or sweep finishes it. */
  | { result: 'pending' }
  | { result: 'error'; failure: CallFailure };

/** The Key Vault data plane, addressed by vault host (`<name>.vault.azure.net`, already in scope). */
export interface KeyVaultData {
  observeKey(vaultHost: string, keyName: string): Promise<KeyObservation>;
  /** Recovers a soft-deleted key and waits (within the deadline) until it is readable again. */
  recoverKey(vaultHost: string, keyName: string, deadline: Date): Promise<RecoverOutcome>;
  listDeletedKeys(
    vaultHost: string,
  ): Promise<{ ok: true; keys: DeletedKeyState[] } | { ok: false; failure: CallFailure }>;
}

/** A vault as ARM describes it (the facts kvguard reports and enforces). */
export interface VaultFacts {
  id: string;
  name: string;
  subscriptionId: string;
  resourceGroup: string;
  location: string;
  vaultUri: string;
  enablePurgeProtection: boolean;
  enableSoftDelete: boolean;
  softDeleteRetentionInDays: number;
  enableRbacAuthorization: boolean;
  publicNetworkAccess: string;
  tags: Record<string, string>;
}

export interface DeletedVaultFacts {
  id: string;
  name: string;
  subscriptionId: string;
  location: string;
  vaultId: string;
  deletionDate?: Date;
  scheduledPurgeDate?: Date;
  purgeProtectionEnabled: boolean;
}

export type ArmResult<T> = { ok: true; value: T } | { ok: false; failure: CallFailure };

/** A subscription as ARM `GET /subscriptions` (Subscriptions - List) lists it for the caller. */
export interface SubscriptionFacts {
  /** As ARM gives it: untrusted until checked as a GUID (lib/inventory.ts does). */
  subscriptionId: string;
  /** `Enabled`, `Warned`, `PastDue`, `Disabled` or `Deleted`; `''` when ARM gives none. */
  state: string;
}

/** ARM `Microsoft.KeyVault/vaults`. */
export interface VaultManagement {
  getVault(vaultId: string): Promise<ArmResult<VaultFacts | undefined>>;
  /** Sets `enablePurgeProtection: true` (only ever true: it is irreversible). */
  enablePurgeProtection(vaultId: string): Promise<ArmResult<VaultFacts>>;
  /** PUT with `createMode: recover`. */
  recoverVault(deleted: DeletedVaultFacts, resourceGroup: string): Promise<ArmResult<VaultFacts>>;
  listVaults(subscriptionId: string): Promise<ArmResult<VaultFacts[]>>;
  listDeletedVaults(subscriptionId: string): Promise<ArmResult<DeletedVaultFacts[]>>;
  /**
   * The subscriptions the identity can see (every one where it holds a role assignment at, above or
   * below the subscription: ARM filters the list by RBAC), every page.
   */
  listSubscriptions(): Promise<ArmResult<SubscriptionFacts[]>>;
}

/** A principal's name and type from Microsoft Graph (optional: needs a Graph grant). */
export interface Directory {
  describe(oid: string): Promise<{ displayName: string; type: string } | undefined>;
}

/** Who deleted a key, from the workspace (kvguard's own query against AZKVAuditLogs). */
export interface AuditLogQuery {
  findKeyDeletion(
    vaultName: string,
    keyName: string,
    window: { from: Date; to: Date },
  ): Promise<AuditCaller | undefined>;
  /** Every successful KeyDelete in the window (a log alert that fired without dimensions). */
  listKeyDeletions(window: { from: Date; to: Date }): Promise<AuditDeletion[]>;
}

export interface AuditDeletion {
  vaultName: string;
  keyName: string;
  time: Date;
  caller: Omit<AuditCaller, 'time'>;
}

export interface AuditCaller {
  time: Date;
  oid?: string;
  upn?: string;
  appId?: string;
  idtyp?: string;
  ipAddress?: string;
  userAgent?: string;
}

/** One row of the ledger; `etag` guards every update. */
export interface LedgerEntry<T> {
  partition: string;
  id: string;
  etag: string;
  value: T;
}

export type ClaimResult<T> =
  { claimed: true; entry: LedgerEntry<T> } | { claimed: false; entry: LedgerEntry<T> };

/**
 * The incident ledger and the inventory (an Azure Table). A partition groups rows (one per vault
 * for incidents); ids are table-safe (no `/ \ # ?`, no control characters).
 */
export interface Ledger<T> {
  /** Conditional insert: exactly one caller claims a new id. */
  claim(partition: string, id: string, value: T): Promise<ClaimResult<T>>;
  get(partition: string, id: string): Promise<LedgerEntry<T> | undefined>;
  /** ETag-guarded replace; `conflict` when someone else moved the entry first. */
  update(
    entry: LedgerEntry<T>,
    value: T,
  ): Promise<{ ok: true; entry: LedgerEntry<T> } | { ok: false; conflict: true }>;
  /** Entries of the partition whose id starts with the prefix (e.g. every incident of one key). */
  list(partition: string, prefix: string): Promise<LedgerEntry<T>[]>;
  /**
   * Entries of every partition whose id starts with the prefix and that were written at or after
   * `since` (the table's own `Timestamp`): e.g. the key incidents still open to attribution.
   */
  listRecent(prefix: string, since: Date): Promise<LedgerEntry<T>[]>;
}

/** An alert as every sink receives it. */
export interface AlertMessage {
  /** `<incident>/primary` or `<incident>/attribution`: stable, so a receiver can drop a repeat. */
  id: string;
  incidentId: string;
  kind: 'primary' | 'attribution' | 'operational' | 'drift';
  severity: 'informational' | 'warning' | 'critical';
  title: string;
  time: Date;
  /** Structured content, versioned by `lib/schemas/alert.v1.schema.json`. */
  data: Record<string, unknown>;
  /** Human-readable lines (Teams, Slack, log). */
  text: string[];
}

export type SinkResult = { ok: true } | { ok: false; retryable: boolean; detail: string };

export interface AlertSink {
  readonly name: string;
  send(alert: AlertMessage): Promise<SinkResult>;
}

/** CloudEvents the forwarder publishes to the signals topic. */
export interface SignalEvent {
  id: string;
  type: string;
  source: string;
  subject: string;
  time: string;
  data: Record<string, unknown>;
  dataschema?: string;
}

export interface SignalPublisher {
  publish(events: SignalEvent[]): Promise<void>;
}

/** Where records that could not be published are kept (a blob container). */
export interface PoisonStore {
  write(name: string, content: unknown): Promise<void>;
}
