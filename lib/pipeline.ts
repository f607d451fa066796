/**
 * The pipeline of design §2: normalise → check scope → observe → claim incident → enrich → decide
 * → act → alert → close. Every entry point (the Event Grid responder, the monitor alert, replay, the
 * sweep) ends here with a `Trigger`. The event is only a trigger: state is re-read before acting,
 * so duplicates and replays are harmless; the ledger makes each incident act and alert once.
 */
import { sendToSink } from './alerting';
import type { Logger } from 'pino';
import { isCallerKnown, mergeCallers } from './core/caller';
import { decide, type ResponsePolicy } from './core/decide';
import { composeAlert } from './core/alert';
import { toSafeError } from './core/errors';
import {
  accessPolicyIncidentPrefix,
  accessPolicyOrigin,
  ATTACH_WINDOW_MS,
  findAccessPolicyIncident,
  findAttachable,
  incidentKeyFor,
  keyIncidentPrefix,
  keyPurgeIncidentPrefix,
} from './core/incident';
import type {
  ActionResult,
  AlertContent,
  AlertKind,
  Caller,
  Decision,
  IncidentKey,
  ObservedKey,
  ObservedVault,
  Trigger,
  VaultTrigger,
} from './core/model';
import { checkScope } from './core/scope';
import type { Inventory, InventoryVault } from './inventory';
import { raiseOncePerDay, vaultTarget, type OperationalMark } from './operational';
import type {
  AlertMessage,
  AlertSink,
  ArmResult,
  AuditLogQuery,
  CallFailure,
  Clock,
  DeletedKeyState,
  DeletedVaultFacts,
  Directory,
  KeyObservation,
  KeyVaultData,
  Ledger,
  LedgerEntry,
  VaultFacts,
  VaultManagement,
} from './ports';

/** Thrown for a failure worth a redelivery (the Event Grid trigger rethrows it). */
export class RetryableError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'RetryableError';
  }
}

export interface AlertDelivery {
  content: AlertContent;
  /**
   * Per sink: delivered, or the last failure; `retryable: false` marks a permanent failure (a 400 from a
   * misconfigured webhook), which is recorded and not retried, so it cannot keep an incident open.
   */
  sinks: Record<string, { delivered: boolean; detail?: string; at: string; retryable?: boolean }>;
}

/** One incident as the ledger keeps it. */
export interface IncidentRecord {
  version: 1;
  key: IncidentKey;
  vaultName: string;
  keyName?: string;
  /** The key's deletedDate (key deletions), or the vault's deletionDate (vault deletions): what the attach rule compares. */
  deletedDate?: string;
  state: 'open' | 'acted' | 'awaiting-attribution' | 'closed';
  /** Who is working on it and until when (another delivery waits, then resumes). */
  lease?: { owner: string; until: string };
  trigger: VaultTrigger;
  caller?: Caller;
  observedKey?: ObservedKey;
  decision?: Decision;
  results?: ActionResult[];
  /**
   * What an attempt that ended with an action still pending or throttled did finish (e.g. purge
   * protection): the attempt that completes the incident reports it too.
   */
  earlierResults?: ActionResult[];
  alerts: Partial<Record<AlertKind, AlertDelivery>>;
  observeMode: boolean;
  /**
   * Set when the sweep opened the incident for a deletion older than its look-back (RunOptions
   * `reportOnly`): nothing is written, and `converted` says the decision was turned into a report.
   */
  reportOnly?: { reason: string; converted?: boolean };
  signals: number;
  /**
   * Access-policy incidents: the time of each event of the change seen so far, by origin (the Key
   * Vault system event, ARM's accessPolicies/write event). One change raises both; this is how the
   * second finds the incident and a redelivery of either is told from another change.
   */
  policyEvents?: { keyVault?: string; arm?: string };
  createdAt: string;
  updatedAt: string;
}

export interface PipelineDeps {
  clock: Clock;
  keyVault: KeyVaultData;
  vaults: VaultManagement;
  ledger: Ledger<IncidentRecord>;
  /** The operational alerts' once-a-day marks (lib/operational.ts), shared with the sweep. */
  marks: Ledger<OperationalMark>;
  inventory: Inventory;
  sinks: AlertSink[];
  auditLog?: AuditLogQuery;
  directory?: Directory;
  policy: ResponsePolicy;
  excludedVaults: string[];
  budgetMs: number;
}

export interface RunOptions {
  log: Logger;
  invocationId: string;
  /** Plan only: read, decide, and answer what would be done; no write anywhere (not even the ledger). */
  dryRun?: boolean;
  /** When the invocation must be done (Event Grid waits 30 s; we keep within 25 s). */
  deadline?: Date;
  /**
   * The sweep's list row of the deleted key (`GET /deletedkeys`) or vault (ARM `deletedVaults`) a
   * `sweptDeletedKey` / `sweptDeletedVault` trigger names: it serves as the observe read, so a sweep
   * costs one list call per vault, not one more GET per key. Ignored for any other trigger.
   */
  observed?: { deletedKey?: DeletedKeyState; deletedVault?: DeletedVaultFacts };
  /**
   * Report, never write: the sweep found the deletion older than its look-back. The decision that
   * would recover becomes an `alert-only` one (see `reportOnlyDecision`), the alert says "found late,
   * not recovered", and the incident closes without waiting for attribution, so it is reported once.
   * `reason` completes "Found late: …". Only for `sweptDeletedKey` / `sweptDeletedVault` triggers.
   */
  reportOnly?: { reason: string };
}

export type OutcomeStatus =
  | 'acted'
  | 'planned'
  | 'attributed'
  | 'duplicate'
  | 'in-progress'
  | 'already-active'
  | 'out-of-scope'
  | 'excluded'
  | 'failed';

export interface TriggerOutcome {
  status: OutcomeStatus;
  kind: Trigger['kind'];
  vault?: string;
  key?: string;
  incidentId?: string;
  decision?: { action: string; code: string; reason: string; severity: string };
  results?: ActionResult[];
  alerts?: string[];
  reason?: string;
}

/** How long a lease protects an incident from a concurrent delivery. */
function leaseMs(deps: PipelineDeps): number {
  return deps.budgetMs + 5000;
}

const VAULT_FACTS_TTL_MS = 60_000;
const PRINCIPAL_TTL_MS = 10 * 60_000;
const MAX_CACHED_PRINCIPALS = 1000;

/**
 * How long after a deletion a key that is neither deleted nor active is taken for one whose delete
 * (or recovery) has not completed yet: Key Vault answers 404 to both reads until it has.
 */
const DELETION_SETTLE_MS = 60_000;

export class Pipeline {
  /** Vault facts per resource id, fetched once per vault for a while (a flood hits a few vaults). */
  private readonly vaultFacts = new Map<string, { at: number; facts: Promise<VaultFacts | undefined> }>();
  /** Principals' names and types per object id (see `principal`). */
  private readonly principals = new Map<
    string,
    { at: number; value: Promise<{ displayName: string; type: string } | undefined> }
  >();
  /** Purge-protection writes in flight per vault: concurrent incidents of one vault share one. */
  private readonly protecting = new Map<string, Promise<ArmResult<VaultFacts>>>();

  constructor(private readonly deps: PipelineDeps) {}

  async run(trigger: Trigger, options: RunOptions): Promise<TriggerOutcome[]> {
    const deadline = options.deadline ?? new Date(this.deps.clock.now().getTime() + this.deps.budgetMs);
    const ctx = { ...options, deadline };
    if (trigger.kind === 'queryNeeded') return this.runQuery(trigger, ctx);
    return [await this.runVaultTrigger(trigger, ctx)];
  }

  /** A log alert without dimensions: kvguard's own query against the configured workspace. */
  private async runQuery(
    trigger: Extract<Trigger, { kind: 'queryNeeded' }>,
    ctx: Ctx,
  ): Promise<TriggerOutcome[]> {
    if (!this.deps.auditLog) {
      return [
        { status: 'failed', kind: trigger.kind, reason: 'no Log Analytics workspace is configured to query' },
      ];
    }
    const found = await this.deps.auditLog.listKeyDeletions({
      from: new Date(trigger.windowStart),
      to: new Date(trigger.windowEnd),
    });
    const outcomes: TriggerOutcome[] = [];
    for (const d of found) {
      const keyTrigger: VaultTrigger = {
        kind: 'keyDeleted',
        source: trigger.source,
        vaultName: d.vaultName,
        vaultHost: `${d.vaultName}.vault.azure.net`,
        keyName: d.keyName,
        signalTime: d.time.toISOString(),
        caller: d.caller,
        eventId: `${trigger.eventId}#${d.vaultName}/${d.keyName}`,
        operationName: 'KeyDelete',
        alert: trigger.alert,
      };
      outcomes.push(await this.runVaultTrigger(keyTrigger, ctx));
    }
    if (outcomes.length === 0) {
      outcomes.push({
        status: 'failed',
        kind: trigger.kind,
        reason: 'the workspace holds no key deletion in the alert window',
      });
    }
    return outcomes;
  }

  private async runVaultTrigger(trigger: VaultTrigger, ctx: Ctx): Promise<TriggerOutcome> {
    const base = {
      kind: trigger.kind,
      vault: trigger.vaultName,
      key: 'keyName' in trigger ? trigger.keyName : undefined,
    };
    const vault = await this.deps.inventory.findByHost(trigger.vaultHost);
    const scope = checkScope(trigger, { vaults: vault ? [vault] : [] }, this.deps.excludedVaults);
    if (scope.outcome === 'out-of-scope') {
      ctx.log.warn({ vault: trigger.vaultName, reason: scope.reason }, 'signal rejected: out of scope');
      return { ...base, status: 'out-of-scope', reason: scope.message };
    }
    if (scope.outcome === 'excluded') {
      ctx.log.info({ vault: trigger.vaultName }, 'vault excluded by configuration: left alone');
      return { ...base, status: 'excluded', reason: scope.reason };
    }
    switch (trigger.kind) {
      case 'keyDeleted':
      case 'sweptDeletedKey':
        return this.keyDeletion(trigger, scope.vault, ctx);
      case 'vaultDeleted':
      case 'sweptDeletedVault':
        return this.vaultDeletion(trigger, scope.vault, ctx);
      case 'vaultWritten':
        return this.vaultWrite(trigger, scope.vault, ctx);
      case 'accessPolicyChanged':
        return this.accessPolicyChange(trigger, scope.vault, ctx);
      case 'keyPurged': {
        // A purged key is one critical incident: a purge after the key-deletion signal already found
        // the key gone (and opened a "not recoverable" incident) joins that incident.
        const gone = await this.attachableIncident(trigger, (r) => r.observedKey?.state === 'gone');
        if (gone) return this.continueIncident(gone, trigger, scope.vault, ctx);
        return this.alertOnly(trigger, scope.vault, ctx);
      }
      default:
        // keyPurged (above, when no gone-key incident is near), keyDeleteDenied: alert-only incidents keyed by the signal.
        return this.alertOnly(trigger, scope.vault, ctx);
    }
  }

  // ---------------------------------------------------------------- key deletions

  private async keyDeletion(
    trigger: Extract<VaultTrigger, { kind: 'keyDeleted' | 'sweptDeletedKey' }>,
    vault: InventoryVault,
    ctx: Ctx,
  ): Promise<TriggerOutcome> {
    const base = { kind: trigger.kind, vault: trigger.vaultName, key: trigger.keyName };
    const listed = trigger.kind === 'sweptDeletedKey' ? ctx.observed?.deletedKey : undefined;
    const observation: KeyObservation =
      listed && listed.name.toLowerCase() === trigger.keyName.toLowerCase()
        ? { state: 'deleted', deleted: listed }
        : await this.observeKey(trigger, ctx);
    if (observation.state === 'unknown') return this.observeFailed(trigger, observation.failure, ctx);
    if (observation.state === 'deleted') {
      const deletedDate = observation.deleted.deletedOn.toISOString();
      const sameDeletion =
        findAttachable(
          [{ id: '', vaultName: trigger.vaultName, keyName: trigger.keyName, deletedDate }],
          trigger,
          trigger.signalTime,
        ) !== undefined;
      if (trigger.kind === 'keyDeleted' && !sameDeletion) {
        // The signal is about an earlier deletion: the key was recovered and deleted again since (a
        // log record arrives minutes late). Its caller belongs to that earlier incident and must not
        // decide this deletion (an allow-listed caller's late record would leave someone else's
        // deletion deleted): this one is handled as a deletion whose caller is not known yet, then the
        // earlier incident gets its caller.
        ctx.log.info(
          { vault: trigger.vaultName, keyName: trigger.keyName, signalTime: trigger.signalTime, deletedDate },
          'the signal describes an earlier deletion of a key that is deleted again',
        );
        const { caller: _earlierCaller, ...withoutCaller } = trigger;
        const current = await this.deletedKey(
          { ...withoutCaller, signalTime: deletedDate },
          observation.deleted,
          vault,
          ctx,
        );
        const earlier = await this.attachableIncident(trigger);
        return earlier ? this.continueIncident(earlier, trigger, vault, ctx) : current;
      }
      return this.deletedKey(trigger, observation.deleted, vault, ctx);
    }
    // The key is not deleted (any more): a late signal attaches to the incident within two minutes.
    const attachable = await this.attachableIncident(trigger);
    if (attachable) return this.continueIncident(attachable, trigger, vault, ctx);
    if (observation.state === 'active') {
      ctx.log.info({ vault: trigger.vaultName, keyName: trigger.keyName }, 'key already active; no incident');
      return {
        ...base,
        status: 'already-active',
        reason: 'the key is active and no incident of its deletion is near the signal time',
      };
    }
    // Neither deleted nor active. Soon after the deletion that is a delete (or someone's recovery)
    // still completing, not a purge: retry, rather than raise a false critical alert and key an
    // incident that the deleted key, once listed, would not find.
    const age = this.deps.clock.now().getTime() - new Date(trigger.signalTime).getTime();
    if (age < DELETION_SETTLE_MS) {
      throw new RetryableError(
        `key ${trigger.keyName} in ${trigger.vaultName} is neither deleted nor active yet`,
      );
    }
    // Gone and settled: when a purge of this key near the deletion has its incident, that is this
    // key's one critical incident (duplicate, or the caller it lacked). After the settle check, so a
    // delete still completing is never taken for the purge.
    const purge = await this.attachablePurgeIncident(trigger);
    if (purge) return this.continueIncident(purge, trigger, vault, ctx);
    // Purged (or never existed). Keyed by the signal time; critical.
    const keyed = incidentKeyFor(trigger, { deletedDate: trigger.signalTime });
    if (!keyed.ok) return { ...base, status: 'failed', reason: keyed.message };
    return this.incident(keyed.key, trigger, vault, { state: 'gone' }, ctx, trigger.signalTime);
  }

  /** The incident of a key observed deleted, keyed by the `deletedDate` observe read. */
  private deletedKey(
    trigger: Extract<VaultTrigger, { kind: 'keyDeleted' | 'sweptDeletedKey' }>,
    deleted: DeletedKeyState,
    vault: InventoryVault,
    ctx: Ctx,
  ): Promise<TriggerOutcome> {
    const deletedDate = deleted.deletedOn.toISOString();
    const keyed = incidentKeyFor(trigger, { deletedDate });
    if (!keyed.ok) {
      return Promise.resolve({
        kind: trigger.kind,
        vault: trigger.vaultName,
        key: trigger.keyName,
        status: 'failed',
        reason: keyed.message,
      });
    }
    const observedKey: ObservedKey = {
      state: 'deleted',
      deletedDate,
      scheduledPurgeDate: deleted.scheduledPurgeDate?.toISOString(),
      recoveryLevel: deleted.recoveryLevel,
      tags: deleted.tags,
    };
    return this.incident(keyed.key, trigger, vault, observedKey, ctx, deletedDate);
  }

  /**
   * The latest deletion incident of the trigger's key whose `deletedDate` is within two minutes of its
   * time (and that `which` accepts, e.g. only incidents of a key found gone).
   */
  private async attachableIncident(
    trigger: {
      vaultName: string;
      keyName: string;
      signalTime: string;
    },
    which: (record: IncidentRecord) => boolean = () => true,
  ): Promise<LedgerEntry<IncidentRecord> | undefined> {
    const incidents = await this.deps.ledger.list(
      trigger.vaultName,
      keyIncidentPrefix(trigger.vaultName, trigger.keyName),
    );
    return findAttachable(
      incidents
        .filter((e) => e.value.deletedDate !== undefined && which(e.value))
        .map((e) => ({
          id: e.id,
          vaultName: e.value.vaultName,
          keyName: e.value.keyName ?? '',
          deletedDate: e.value.deletedDate!,
          entry: e,
        })),
      { vaultName: trigger.vaultName, keyName: trigger.keyName },
      trigger.signalTime,
    )?.entry;
  }

  /**
   * The latest purge incident of the trigger's key whose purge time (the purge record's time) is
   * within two minutes of the signal's time: a deletion signal of a key that is gone belongs to it.
   */
  private async attachablePurgeIncident(trigger: {
    vaultName: string;
    keyName: string;
    signalTime: string;
  }): Promise<LedgerEntry<IncidentRecord> | undefined> {
    const incidents = await this.deps.ledger.list(
      trigger.vaultName,
      keyPurgeIncidentPrefix(trigger.vaultName, trigger.keyName),
    );
    return findAttachable(
      incidents
        .filter((e) => e.value.key.kind === 'key-purge')
        .map((e) => ({
          id: e.id,
          vaultName: e.value.vaultName,
          keyName: e.value.keyName ?? '',
          deletedDate: e.value.trigger.signalTime,
          entry: e,
        })),
      { vaultName: trigger.vaultName, keyName: trigger.keyName },
      trigger.signalTime,
    )?.entry;
  }

  /**
   * Reads the key's state. A deletion that was just accepted may not be visible yet (the service is
   * eventually consistent: 404 until it completes), so an absent key is re-read briefly.
   */
  private async observeKey(
    trigger: { vaultHost: string; keyName: string },
    ctx: Ctx,
  ): Promise<KeyObservation> {
    let observation = await this.deps.keyVault.observeKey(trigger.vaultHost, trigger.keyName);
    let delay = 50;
    const settleUntil = Math.min(ctx.deadline.getTime(), this.deps.clock.now().getTime() + 3000);
    while (observation.state === 'absent' && this.deps.clock.now().getTime() + delay < settleUntil) {
      await this.deps.clock.sleep(delay);
      delay *= 2;
      observation = await this.deps.keyVault.observeKey(trigger.vaultHost, trigger.keyName);
    }
    return observation;
  }

  /**
   * kvguard could not read the vault. Transient → redelivery. Anything else (403: a missing grant) is
   * a permanent failure: recorded, and one operational alert per vault and day says what is missing
   * (design §2: a permanent failure is recorded and alerted, not thrown). The once-a-day mark is the
   * sweep's for the same vault (lib/operational.ts), so whichever sees the problem first alerts.
   */
  private async observeFailed(
    trigger: VaultTrigger,
    failure: CallFailure,
    ctx: Ctx,
  ): Promise<TriggerOutcome> {
    if (failure.kind === 'transient' || failure.kind === 'throttled') {
      throw new RetryableError(`could not read ${trigger.vaultName}: ${failure.kind} (${failure.status})`);
    }
    const reason =
      failure.kind === 'forbidden'
        ? `kvguard cannot read the vault: missing ${failure.missingPermission}`
        : `reading the vault failed: ${failure.detail}`;
    ctx.log.error(
      { vault: trigger.vaultName, failure: failure.kind, status: failure.status },
      'could not observe',
    );
    if (!ctx.dryRun) await this.operationalAlert(trigger, reason, ctx);
    return { status: 'failed', kind: trigger.kind, vault: trigger.vaultName, reason };
  }

  /** One operational alert per vault and day (shared with the sweep); never throws. */
  private async operationalAlert(trigger: VaultTrigger, reason: string, ctx: Ctx): Promise<void> {
    const { marks, sinks, clock } = this.deps;
    await raiseOncePerDay({ marks, sinks, clock, log: ctx.log }, vaultTarget(trigger.vaultName), () => ({
      kind: 'operational',
      severity: 'critical',
      title: `kvguard cannot respond in vault ${trigger.vaultName}`,
      time: clock.now(),
      data: { vaultName: trigger.vaultName, reason, signal: trigger.operationName },
      text: [
        `kvguard received ${trigger.operationName} for vault ${trigger.vaultName} but could not act: ${reason}.`,
        'To do: grant kvguard its role on the vault (infra/vault.json), then replay the signal.',
      ],
    }));
  }

  // ---------------------------------------------------------------- vault-level triggers

  private async vaultDeletion(
    trigger: Extract<VaultTrigger, { kind: 'vaultDeleted' | 'sweptDeletedVault' }>,
    vault: InventoryVault,
    ctx: Ctx,
  ): Promise<TriggerOutcome> {
    const listed = trigger.kind === 'sweptDeletedVault' ? ctx.observed?.deletedVault : undefined;
    const deleted: Awaited<ReturnType<VaultManagement['listDeletedVaults']>> =
      listed && listed.name.toLowerCase() === trigger.vaultName
        ? { ok: true, value: [listed] }
        : await this.deps.vaults.listDeletedVaults(vault.subscriptionId);
    if (!deleted.ok) return this.observeFailed(trigger, deleted.failure, ctx);
    const facts = deleted.value.find((d) => d.name.toLowerCase() === trigger.vaultName);
    const live = facts ? undefined : await this.deps.vaults.getVault(vault.resourceId);
    const deletionDate = facts?.deletionDate?.toISOString() ?? trigger.signalTime;
    const keyed = incidentKeyFor(trigger, { deletionDate });
    if (!keyed.ok)
      return { status: 'failed', kind: trigger.kind, vault: trigger.vaultName, reason: keyed.message };
    const observedVault: ObservedVault = facts
      ? { state: 'deleted', purgeProtectionEnabled: facts.purgeProtectionEnabled }
      : live?.ok && live.value
        ? { state: 'active', purgeProtectionEnabled: live.value.enablePurgeProtection }
        : { state: 'gone' };
    if (!facts) {
      // No longer listed as deleted (kvguard recovered it): without ARM's deletionDate this signal
      // would be keyed by its own time, i.e. open a second incident. A redelivery of the event (or
      // the sweep resuming the incident) must find the incident the first delivery keyed by the
      // deletionDate, as a late key signal does: a finished one is then a duplicate, and an
      // unfinished one (recovered, but its alert not sent yet) is resumed and sends its alert.
      const earlier = await this.attachableVaultIncident(trigger);
      if (earlier) return this.continueIncident(earlier, trigger, vault, ctx, observedVault);
    }
    // The deleted vault's facts just read are what a recovery needs (no second list call in act).
    const scoped = facts && !vault.deletedFacts ? { ...vault, deletedFacts: facts } : vault;
    // `deletedDate` records the deletionDate the incident is keyed by, for attachableVaultIncident.
    return this.incident(keyed.key, trigger, scoped, undefined, ctx, deletionDate, observedVault);
  }

  /** The latest deletion incident of the trigger's vault whose deletionDate is within two minutes of its time. */
  private async attachableVaultIncident(trigger: {
    vaultName: string;
    signalTime: string;
  }): Promise<LedgerEntry<IncidentRecord> | undefined> {
    const vaultName = trigger.vaultName.toLowerCase();
    const incidents = await this.deps.ledger.list(vaultName, `vault_${vaultName}_`);
    return findAttachable(
      incidents
        .filter((e) => e.value.key.kind === 'vault-deletion' && e.value.deletedDate !== undefined)
        .map((e) => ({
          id: e.id,
          vaultName: e.value.vaultName,
          keyName: '',
          deletedDate: e.value.deletedDate!,
          entry: e,
        })),
      { vaultName, keyName: '' },
      trigger.signalTime,
    )?.entry;
  }

  private async vaultWrite(
    trigger: Extract<VaultTrigger, { kind: 'vaultWritten' }>,
    vault: InventoryVault,
    ctx: Ctx,
  ): Promise<TriggerOutcome> {
    const now = await this.deps.vaults.getVault(vault.resourceId);
    if (!now.ok) return this.observeFailed(trigger, now.failure, ctx);
    const before = vault.facts ? toObservedVault(vault.facts) : undefined;
    const keyed = incidentKeyFor(trigger);
    if (!keyed.ok)
      return { status: 'failed', kind: trigger.kind, vault: trigger.vaultName, reason: keyed.message };
    const outcome = await this.incident(
      keyed.key,
      trigger,
      vault,
      undefined,
      ctx,
      undefined,
      now.value ? toObservedVault(now.value) : { state: 'gone' },
      before,
    );
    // The new facts become the baseline only once this write's incident holds its decision: a
    // delivery that failed before deciding is redelivered and must compare with the old baseline
    // again. A dry run changes nothing, not even the baseline.
    if (now.value && !ctx.dryRun) await this.deps.inventory.remember(now.value);
    return outcome;
  }

  /**
   * An access-policy change. One change raises two events seconds apart, the Key Vault system event
   * (no caller) and ARM's accessPolicies/write event (with the caller), in either order: whichever comes
   * first opens the incident and sends the primary alert; the other finds it by vault and time (the
   * attach window, as late key signals do) and adds the caller when the primary lacked it (one
   * follow-up). A redelivery of either finds the incident that has seen it: a duplicate.
   */
  private async accessPolicyChange(
    trigger: Extract<VaultTrigger, { kind: 'accessPolicyChanged' }>,
    vault: InventoryVault,
    ctx: Ctx,
  ): Promise<TriggerOutcome> {
    if (ctx.dryRun) return this.accessPolicyChangeGated(trigger, vault, ctx);
    // The change's two events can arrive at the same instant on two instances: each would find no
    // incident and open its own. Finding-or-opening is one delivery at a time per vault (a lease row);
    // a delivery that finds it held is redelivered by Event Grid, and then finds the incident.
    const gate = await this.openAccessPolicyGate(trigger, ctx);
    try {
      return await this.accessPolicyChangeGated(trigger, vault, ctx);
    } finally {
      await this.closeAccessPolicyGate(gate, ctx);
    }
  }

  private async openAccessPolicyGate(
    trigger: Extract<VaultTrigger, { kind: 'accessPolicyChanged' }>,
    ctx: Ctx,
  ): Promise<LedgerEntry<IncidentRecord>> {
    const now = this.deps.clock.now();
    const id = `policy-gate_${trigger.vaultName}`;
    const claim = await this.deps.ledger.claim(trigger.vaultName, id, {
      version: 1,
      key: { kind: 'access-policy', partitionKey: trigger.vaultName, id },
      vaultName: trigger.vaultName,
      state: 'closed',
      trigger,
      alerts: {},
      observeMode: this.deps.policy.mode === 'observe',
      signals: 0,
      createdAt: now.toISOString(),
      updatedAt: now.toISOString(),
      lease: this.lease(ctx),
    });
    if (claim.claimed) return claim.entry;
    const lease = claim.entry.value.lease;
    if (lease === undefined || lease.owner === ctx.invocationId || new Date(lease.until) <= now) {
      const taken = await this.deps.ledger.update(claim.entry, {
        ...claim.entry.value,
        trigger,
        updatedAt: now.toISOString(),
        lease: this.lease(ctx),
      });
      if (taken.ok) return taken.entry;
    }
    throw new RetryableError(
      `another delivery is handling an access-policy change of vault ${trigger.vaultName}: this one comes again`,
    );
  }

  private async closeAccessPolicyGate(gate: LedgerEntry<IncidentRecord>, ctx: Ctx): Promise<void> {
    try {
      await this.deps.ledger.update(gate, { ...gate.value, lease: undefined });
    } catch (error) {
      // Not fatal: the lease expires on its own.
      ctx.log.warn({ err: toSafeError(error).message }, 'access-policy gate not released');
    }
  }

  private async accessPolicyChangeGated(
    trigger: Extract<VaultTrigger, { kind: 'accessPolicyChanged' }>,
    vault: InventoryVault,
    ctx: Ctx,
  ): Promise<TriggerOutcome> {
    const origin = accessPolicyOrigin(trigger);
    const entries = await this.deps.ledger.list(
      trigger.vaultName,
      accessPolicyIncidentPrefix(trigger.vaultName),
    );
    const found = findAccessPolicyIncident(
      entries
        .filter((e) => e.value.key.kind === 'access-policy' && e.value.policyEvents !== undefined)
        .map((e) => ({ id: e.id, vaultName: e.value.vaultName, events: e.value.policyEvents!, entry: e })),
      { vaultName: trigger.vaultName, origin, signalTime: trigger.signalTime },
    );
    if (found?.sameEvent) return this.continueIncident(found.incident.entry, trigger, vault, ctx);
    if (!found) return this.alertOnly(trigger, vault, ctx);
    // The change's other event: record that this one was seen (so that its redelivery is a duplicate
    // and a later change of the same origin opens its own incident), then continue the incident as any
    // late signal does: a caller the incident lacks earns the attribution follow-up.
    if (ctx.dryRun) return this.continueIncident(found.incident.entry, trigger, vault, ctx);
    const log = ctx.log.child({ incident: found.incident.id });
    const got = await this.acquire(
      found.incident.entry,
      { ...ctx, log },
      (r) => r.policyEvents?.[origin] !== undefined,
    );
    const noted = got.leased
      ? await this.save(got.entry, {
          ...got.entry.value,
          policyEvents: { ...got.entry.value.policyEvents, [origin]: trigger.signalTime },
          lease: undefined,
        })
      : got.entry;
    log.info({ origin, signalTime: trigger.signalTime }, 'second event of an access-policy change');
    return this.continueIncident(noted, trigger, vault, ctx);
  }

  private async alertOnly(trigger: VaultTrigger, vault: InventoryVault, ctx: Ctx): Promise<TriggerOutcome> {
    const keyed = incidentKeyFor(trigger);
    if (!keyed.ok)
      return { status: 'failed', kind: trigger.kind, vault: trigger.vaultName, reason: keyed.message };
    return this.incident(
      keyed.key,
      trigger,
      vault,
      trigger.kind === 'keyPurged' ? { state: 'gone' } : undefined,
      ctx,
    );
  }

  // ---------------------------------------------------------------- incidents

  /** Claims the incident (a conditional insert); when it exists already, see `continueIncident`. */
  private async incident(
    key: IncidentKey,
    trigger: VaultTrigger,
    vault: InventoryVault,
    observedKey: ObservedKey | undefined,
    ctx: Ctx,
    deletedDate?: string,
    observedVault?: ObservedVault,
    vaultBefore?: ObservedVault,
  ): Promise<TriggerOutcome> {
    const now = this.deps.clock.now().toISOString();
    const fresh: IncidentRecord = {
      version: 1,
      key,
      vaultName: trigger.vaultName,
      keyName: 'keyName' in trigger ? trigger.keyName : undefined,
      deletedDate,
      state: 'open',
      trigger,
      caller: trigger.caller,
      observedKey,
      alerts: {},
      observeMode: this.deps.policy.mode === 'observe',
      ...(ctx.reportOnly && (trigger.kind === 'sweptDeletedKey' || trigger.kind === 'sweptDeletedVault')
        ? { reportOnly: { reason: ctx.reportOnly.reason } }
        : {}),
      signals: 1,
      // The first event of an access-policy change: what the change's other event looks for.
      ...(trigger.kind === 'accessPolicyChanged'
        ? { policyEvents: { [accessPolicyOrigin(trigger)]: trigger.signalTime } }
        : {}),
      createdAt: now,
      updatedAt: now,
    };
    if (ctx.dryRun) return this.plan(fresh, vault, ctx, observedVault, vaultBefore);

    const claim = await this.deps.ledger.claim(key.partitionKey, key.id, {
      ...fresh,
      lease: this.lease(ctx),
    });
    if (!claim.claimed)
      return this.continueIncident(claim.entry, trigger, vault, ctx, observedVault, vaultBefore);
    const log = ctx.log.child({ incident: key.id });
    log.info({ kind: trigger.kind, vault: trigger.vaultName, source: trigger.source }, 'incident opened');
    return this.work(claim.entry, vault, { ...ctx, log }, observedVault, vaultBefore);
  }

  /**
   * A signal of an incident that exists: an unfinished one (an earlier delivery failed, or is still
   * at work) is resumed; a finished one gets what the signal adds (the caller it waits for, or the
   * rest of a follow-up's delivery); otherwise the signal is a duplicate.
   */
  private async continueIncident(
    entry: LedgerEntry<IncidentRecord>,
    trigger: VaultTrigger,
    vault: InventoryVault,
    ctx: Ctx,
    observedVault?: ObservedVault,
    vaultBefore?: ObservedVault,
  ): Promise<TriggerOutcome> {
    const log = ctx.log.child({ incident: entry.id });
    const finished = (r: IncidentRecord) => r.state === 'closed' || r.state === 'awaiting-attribution';
    if (ctx.dryRun) {
      if (finished(entry.value) && !this.needsAttach(trigger, entry.value))
        return this.summary(entry.value, 'duplicate');
      const would = finished(entry.value)
        ? 'would attach the caller to the incident and follow up'
        : 'would resume the unfinished incident';
      return { ...this.summary(entry.value, 'planned'), reason: would };
    }
    const got = await this.acquire(entry, { ...ctx, log }, finished);
    if (!got.leased) {
      if (this.needsAttach(trigger, got.entry.value)) return this.attach(got.entry, trigger, vault, ctx);
      log.info('duplicate signal: incident already handled');
      return this.summary(got.entry.value, 'duplicate');
    }
    let leased = got.entry;
    const bringsCaller = isCallerKnown(trigger.caller) && !isCallerKnown(leased.value.caller);
    if (bringsCaller && !leased.value.decision) {
      // Not decided yet (the delivery that opened it, e.g. the sweep's, did not finish): decide with the caller.
      leased = await this.save(leased, {
        ...leased.value,
        caller: mergeCallers(trigger.caller, leased.value.caller),
      });
    }
    log.info({ kind: trigger.kind, vault: trigger.vaultName, source: trigger.source }, 'incident resumed');
    const outcome = await this.work(leased, vault, { ...ctx, log }, observedVault, vaultBefore);
    if (!bringsCaller) return outcome;
    // Decided before this signal's caller was known: the caller still earns its follow-up.
    const after = await this.deps.ledger.get(entry.partition, entry.id);
    return after && this.needsAttach(trigger, after.value)
      ? this.attach(after, trigger, vault, ctx)
      : outcome;
  }

  /**
   * Whether a signal still has something to add to an incident that waits for attribution: the
   * caller it lacks, or a follow-up that some sink has not received yet.
   */
  private needsAttach(trigger: VaultTrigger, record: IncidentRecord): boolean {
    if (record.state !== 'awaiting-attribution') return false;
    if (record.alerts.attribution) return this.undelivered(record.alerts.attribution);
    return isCallerKnown(trigger.caller) && !isCallerKnown(record.caller);
  }

  private lease(ctx: Ctx) {
    return {
      owner: ctx.invocationId,
      until: new Date(this.deps.clock.now().getTime() + leaseMs(this.deps)).toISOString(),
    };
  }

  /**
   * Takes the lease of an existing incident, unless `done` says there is nothing left to do (then
   * answers the row as last read). While another delivery holds the lease, this one waits for it,
   * re-reading the row, until that delivery finishes or its lease expires. Answering "in progress"
   * instead would acknowledge this delivery: if the holder had died (between act and alert, say), its
   * own redelivery would be acknowledged the same way and nobody would ever finish the incident.
   * Throws RetryableError when the lease is still held as the deadline nears, so the platform
   * redelivers later.
   */
  private async acquire(
    entry: LedgerEntry<IncidentRecord>,
    ctx: Ctx,
    done: (record: IncidentRecord) => boolean,
  ): Promise<{ leased: boolean; entry: LedgerEntry<IncidentRecord> }> {
    let delay = 50;
    for (;;) {
      if (done(entry.value)) return { leased: false, entry };
      const lease = entry.value.lease;
      const now = this.deps.clock.now().getTime();
      if (lease === undefined || lease.owner === ctx.invocationId || new Date(lease.until).getTime() <= now) {
        const updated = await this.deps.ledger.update(entry, { ...entry.value, lease: this.lease(ctx) });
        if (updated.ok) return { leased: true, entry: updated.entry };
      } else {
        if (now + delay >= ctx.deadline.getTime()) {
          throw new RetryableError(
            `incident ${entry.id} is being handled by another delivery until ${lease.until}`,
          );
        }
        await this.deps.clock.sleep(delay);
        delay = Math.min(delay * 2, 1000);
      }
      const again = await this.deps.ledger.get(entry.partition, entry.id);
      if (!again) throw new RetryableError(`incident ${entry.id} is no longer in the ledger`);
      entry = again;
    }
  }

  /** Saves the record; an ETag conflict means another delivery took over, which must not happen under a lease. */
  private async save(
    entry: LedgerEntry<IncidentRecord>,
    value: IncidentRecord,
  ): Promise<LedgerEntry<IncidentRecord>> {
    const updated = await this.deps.ledger.update(entry, {
      ...value,
      updatedAt: this.deps.clock.now().toISOString(),
    });
    if (!updated.ok) throw new RetryableError(`incident ${entry.id} changed under its lease`);
    return updated.entry;
  }

  /** enrich → decide → act → alert → close, resuming from whatever an earlier delivery finished. */
  private async work(
    entry: LedgerEntry<IncidentRecord>,
    vault: InventoryVault,
    ctx: Ctx,
    observedVault?: ObservedVault,
    vaultBefore?: ObservedVault,
  ): Promise<TriggerOutcome> {
    let record = entry.value;
    if (!record.decision || !record.results) {
      const identified = await this.identify(record.trigger, record.caller, ctx);
      // The principal's name only makes the alert readable (the decision goes by ids): it is looked
      // up while kvguard acts, not before.
      const described = this.describe(identified, ctx);
      const vaultState = observedVault ?? (await this.observedVault(vault));
      const decided = decide({
        trigger: record.trigger,
        now: this.deps.clock.now(),
        policy: this.deps.policy,
        caller: identified,
        key: record.observedKey,
        vault: vaultState,
        vaultBefore,
      });
      const decision = record.reportOnly ? reportOnlyDecision(decided, record.reportOnly.reason) : decided;
      if (decision !== decided)
        record = { ...record, reportOnly: { ...record.reportOnly!, converted: true } };
      // `decisionCode`, not `code`: the logger redacts every `code` field (OAuth authorization codes).
      ctx.log.info(
        { action: decision.action, decisionCode: decision.code, severity: decision.severity },
        decision.reason,
      );
      const results = mergeResults(
        record.earlierResults,
        await this.act(record.trigger, decision, vault, ctx),
      );
      const caller = await described;
      ctx.log.info({ results: results.map((r) => `${r.action}:${r.status}`) }, 'acted');
      record = { ...record, caller, decision, results, earlierResults: undefined, state: 'acted' };
      entry = await this.save(entry, record);
      if (results.some((r) => r.status === 'pending' || r.status === 'throttled')) {
        // Continue on redelivery (or the next sweep): the alert waits for a result worth sending. What
        // this attempt did finish is kept, so that the alert still reports it.
        record = {
          ...record,
          decision: undefined,
          results: undefined,
          earlierResults: results,
          state: 'open',
        };
        await this.save(entry, { ...record, lease: undefined });
        throw new RetryableError(`incident ${record.key.id}: an action is still pending`);
      }
    }
    const decision = record.decision!;
    if (decision.notify && record.alerts.primary === undefined) {
      record = { ...record, alerts: { ...record.alerts, primary: this.newDelivery(record, 'primary') } };
    }
    if (record.alerts.primary) {
      const delivered = await this.deliver(record.alerts.primary, ctx);
      record = { ...record, alerts: { ...record.alerts, primary: delivered } };
    }
    const pendingSinks = record.alerts.primary !== undefined && this.undelivered(record.alerts.primary);
    const waitsForCaller =
      (((record.trigger.kind === 'sweptDeletedKey' || record.trigger.kind === 'keyDeleted') &&
        // A deletion found late is reported once: no follow-up can change what kvguard does about it.
        !record.reportOnly) ||
        // An access-policy change the Key Vault event reported first: ARM's event for the same change
        // may still bring the caller (the alert says so).
        (record.trigger.kind === 'accessPolicyChanged' &&
          accessPolicyOrigin(record.trigger) === 'keyVault') ||
        // A purge whose record named no caller: the key's deletion record may still name one.
        record.trigger.kind === 'keyPurged') &&
      !isCallerKnown(record.caller);
    record = {
      ...record,
      state: pendingSinks ? 'acted' : waitsForCaller ? 'awaiting-attribution' : 'closed',
      lease: undefined,
    };
    await this.save(entry, record);
    if (pendingSinks) throw new RetryableError(`incident ${record.key.id}: an alert sink failed; will retry`);
    ctx.log.info({ state: record.state }, 'incident done');
    return this.summary(record, 'acted');
  }

  /**
   * A late signal (the AuditEvent record after the sweep) brings the caller: decide again, follow up
   * once. The follow-up is decided, acted on and saved before it is sent, so a redelivery after a
   * failed sink sends it to that sink only, without deciding or acting again.
   */
  private async attach(
    entry: LedgerEntry<IncidentRecord>,
    trigger: VaultTrigger,
    vault: InventoryVault,
    ctx: Ctx,
  ): Promise<TriggerOutcome> {
    const log = ctx.log.child({ incident: entry.id });
    if (!this.needsAttach(trigger, entry.value)) {
      log.info('duplicate signal: nothing new for the incident');
      return this.summary(entry.value, 'duplicate');
    }
    if (ctx.dryRun) {
      return {
        ...this.summary(entry.value, 'planned'),
        reason: 'would attach the caller to the incident and follow up',
      };
    }
    const got = await this.acquire(entry, { ...ctx, log }, (r) => !this.needsAttach(trigger, r));
    if (!got.leased) {
      log.info('duplicate signal: nothing new for the incident');
      return this.summary(got.entry.value, 'duplicate');
    }
    let leased = got.entry;
    let record = leased.value;
    let decision: Decision | undefined;
    if (!record.alerts.attribution) {
      const caller = await this.enrich(trigger, mergeCallers(trigger.caller, record.caller), { ...ctx, log });
      decision = decide({
        trigger: record.trigger,
        now: this.deps.clock.now(),
        policy: this.deps.policy,
        caller,
        key: record.observedKey,
        vault: await this.observedVault(vault),
        prior: record.decision ? { action: record.decision.action, code: record.decision.code } : undefined,
      });
      log.info({ action: decision.action, decisionCode: decision.code }, `attribution: ${decision.reason}`);
      const results = decision.writes ? await this.act(record.trigger, decision, vault, { ...ctx, log }) : [];
      const content = composeAlert({
        incidentId: record.key.id,
        kind: 'attribution',
        trigger: record.trigger,
        decision,
        caller,
        results: results.length > 0 ? results : record.results,
        key: record.observedKey,
        observeMode: record.observeMode,
      });
      record = {
        ...record,
        caller,
        signals: record.signals + 1,
        results: [...(record.results ?? []), ...results],
        alerts: { ...record.alerts, attribution: { content, sinks: {} } },
      };
      leased = await this.save(leased, record);
    }
    const delivered = await this.deliver(record.alerts.attribution!, { ...ctx, log });
    const pending = this.undelivered(delivered);
    record = {
      ...record,
      alerts: { ...record.alerts, attribution: delivered },
      state: pending ? 'awaiting-attribution' : 'closed',
      lease: undefined,
    };
    await this.save(leased, record);
    if (pending)
      throw new RetryableError(`incident ${record.key.id}: the attribution alert was not delivered`);
    const sent = delivered.content;
    return {
      ...this.summary(record, 'attributed'),
      decision: decision
        ? summaryOf(decision)
        : {
            action: sent.decision.action,
            code: sent.decision.code,
            reason: sent.decision.reason,
            severity: sent.severity,
          },
    };
  }

  /** dryRun: what would happen, without a single write (the ledger included). */
  private async plan(
    record: IncidentRecord,
    vault: InventoryVault,
    ctx: Ctx,
    observedVault?: ObservedVault,
    vaultBefore?: ObservedVault,
  ): Promise<TriggerOutcome> {
    const existing = await this.deps.ledger.get(record.key.partitionKey, record.key.id);
    if (existing && existing.value.state === 'closed') return this.summary(existing.value, 'duplicate');
    const caller = await this.enrich(record.trigger, record.caller, ctx);
    const decision = decide({
      trigger: record.trigger,
      now: this.deps.clock.now(),
      policy: { ...this.deps.policy, mode: 'observe' },
      caller,
      key: record.observedKey,
      vault: observedVault ?? (await this.observedVault(vault)),
      vaultBefore,
    });
    const results = plannedActions(decision);
    return { ...this.summary({ ...record, decision, results, caller }, 'planned') };
  }

  // ---------------------------------------------------------------- steps

  /** The caller (`identify`) with the principal's name and type (`describe`). */
  private async enrich(
    trigger: VaultTrigger,
    known: Caller | undefined,
    ctx: Ctx,
  ): Promise<Caller | undefined> {
    return this.describe(await this.identify(trigger, known, ctx), ctx);
  }

  /** The caller from the signal and the ledger, else from kvguard's own query of the workspace. */
  private async identify(
    trigger: VaultTrigger,
    known: Caller | undefined,
    ctx: Ctx,
  ): Promise<Caller | undefined> {
    let caller = mergeCallers(trigger.caller, known);
    if (
      !isCallerKnown(caller) &&
      this.deps.auditLog &&
      'keyName' in trigger &&
      trigger.kind === 'keyDeleted'
    ) {
      // A deletion signal without its caller (e.g. a log alert without dimensions): ask the workspace.
      // Only a record within the attach window of the deletion is its record: with a wider window, a
      // record of an earlier deletion of the same key (its own record not ingested yet) would name the
      // wrong caller, and an allow-listed one would leave this deletion deleted.
      const at = new Date(trigger.signalTime).getTime();
      try {
        const found = await this.deps.auditLog.findKeyDeletion(trigger.vaultName, trigger.keyName, {
          from: new Date(at - ATTACH_WINDOW_MS),
          to: new Date(at + ATTACH_WINDOW_MS),
        });
        if (found)
          caller = mergeCallers(caller, {
            oid: found.oid,
            upn: found.upn,
            appId: found.appId,
            idtyp: found.idtyp,
            ipAddress: found.ipAddress,
            userAgent: found.userAgent,
          });
      } catch (error) {
        ctx.log.warn({ err: toSafeError(error).message }, 'workspace query failed; the caller stays unknown');
      }
    }
    return caller;
  }

  /** The principal's name and type from the directory (never fails: without it, the caller stays as is). */
  private async describe(caller: Caller | undefined, ctx: Ctx): Promise<Caller | undefined> {
    if (!caller?.oid || caller.displayName || !this.deps.directory) return caller;
    try {
      const described = await this.principal(caller.oid);
      return described
        ? { ...caller, displayName: described.displayName, principalType: described.type }
        : caller;
    } catch (error) {
      ctx.log.warn({ err: toSafeError(error).message }, 'directory lookup failed');
      return caller;
    }
  }

  /** A principal's description, looked up once per principal for a while (a flood has one attacker). */
  private principal(oid: string): Promise<{ displayName: string; type: string } | undefined> {
    const id = oid.toLowerCase();
    const now = this.deps.clock.now().getTime();
    const cached = this.principals.get(id);
    if (cached && now - cached.at < PRINCIPAL_TTL_MS) return cached.value;
    if (this.principals.size >= MAX_CACHED_PRINCIPALS) this.principals.clear();
    const value = this.deps.directory!.describe(id);
    this.principals.set(id, { at: now, value });
    // Only what was found is kept: a failure or an unknown principal is asked again next time.
    value.then(
      (d) => {
        if (d === undefined) this.principals.delete(id);
      },
      () => this.principals.delete(id),
    );
    return value;
  }

  private observedVault(vault: InventoryVault): Promise<ObservedVault | undefined> {
    if (vault.deleted) {
      return Promise.resolve({
        state: 'deleted',
        purgeProtectionEnabled: vault.deletedFacts?.purgeProtectionEnabled,
      });
    }
    // Purge protection cannot be turned off: when the inventory saw it on, it is on, and a key
    // deletion needs no fresh read of the vault (a sweep of many vaults saves one call per vault).
    if (vault.facts?.enablePurgeProtection) return Promise.resolve(toObservedVault(vault.facts));
    return this.facts(vault.resourceId).then((f) => (f ? toObservedVault(f) : undefined));
  }

  private facts(resourceId: string): Promise<VaultFacts | undefined> {
    const id = resourceId.toLowerCase();
    const now = this.deps.clock.now().getTime();
    const cached = this.vaultFacts.get(id);
    if (cached && now - cached.at < VAULT_FACTS_TTL_MS) return cached.facts;
    const facts = this.deps.vaults.getVault(resourceId).then((r) => (r.ok ? r.value : undefined));
    this.vaultFacts.set(id, { at: now, facts });
    facts.then(
      (f) => {
        if (f === undefined) this.vaultFacts.delete(id);
      },
      () => this.vaultFacts.delete(id),
    );
    return facts;
  }

  private async act(
    trigger: VaultTrigger,
    decision: Decision,
    vault: InventoryVault,
    ctx: Ctx,
  ): Promise<ActionResult[]> {
    if (!decision.writes) return plannedActions(decision);
    const results: ActionResult[] = [];
    if (decision.action === 'recover-key' && 'keyName' in trigger) {
      const outcome = await this.deps.keyVault.recoverKey(trigger.vaultHost, trigger.keyName, ctx.deadline);
      results.push(recoverResult(outcome));
    }
    if (decision.action === 'recover-vault') {
      const deleted = vault.deletedFacts ?? (await this.findDeletedVault(vault));
      if (!deleted) {
        results.push({
          action: 'recover-vault',
          status: 'not-recoverable',
          detail: 'the vault is not listed as deleted (purged?)',
        });
      } else {
        const r = await this.deps.vaults.recoverVault(deleted, vault.resourceGroup);
        results.push(
          r.ok ? { action: 'recover-vault', status: 'succeeded' } : failureResult('recover-vault', r.failure),
        );
        if (r.ok) {
          this.vaultFacts.delete(vault.resourceId.toLowerCase());
          void this.deps.inventory.refresh().catch(() => undefined);
        }
      }
    }
    if (decision.enablePurgeProtection) {
      const current = await this.facts(vault.resourceId);
      if (current?.enablePurgeProtection) {
        results.push({ action: 'enable-purge-protection', status: 'already-done' });
      } else {
        const r = await this.enablePurgeProtection(vault.resourceId);
        results.push(
          r.ok
            ? { action: 'enable-purge-protection', status: 'succeeded' }
            : failureResult('enable-purge-protection', r.failure),
        );
        if (r.ok) {
          this.vaultFacts.set(vault.resourceId.toLowerCase(), {
            at: this.deps.clock.now().getTime(),
            facts: Promise.resolve(r.value),
          });
          await this.deps.inventory.remember(r.value);
        }
      }
    }
    void ctx;
    return results;
  }

  /** One purge-protection write per vault at a time: concurrent incidents of the vault share it. */
  private enablePurgeProtection(resourceId: string): Promise<ArmResult<VaultFacts>> {
    const id = resourceId.toLowerCase();
    let write = this.protecting.get(id);
    if (!write) {
      write = this.deps.vaults.enablePurgeProtection(resourceId).finally(() => this.protecting.delete(id));
      this.protecting.set(id, write);
    }
    return write;
  }

  private async findDeletedVault(vault: InventoryVault) {
    const list = await this.deps.vaults.listDeletedVaults(vault.subscriptionId);
    return list.ok ? list.value.find((d) => d.name === vault.name) : undefined;
  }

  private newDelivery(record: IncidentRecord, kind: AlertKind): AlertDelivery {
    const content = composeAlert({
      incidentId: record.key.id,
      kind,
      trigger: record.trigger,
      decision: record.decision!,
      caller: record.caller,
      results: record.results,
      key: record.observedKey,
      observeMode: record.observeMode,
    });
    return { content: record.reportOnly?.converted ? foundLateAlert(content, record) : content, sinks: {} };
  }

  /** Sends to every sink that has not had it yet; a failing sink never stops the others. */
  private async deliver(delivery: AlertDelivery, ctx: Ctx): Promise<AlertDelivery> {
    const message = toAlertMessage(delivery.content, this.deps.clock.now());
    const sinks = { ...delivery.sinks };
    await Promise.all(
      this.deps.sinks.map(async (sink) => {
        if (sinks[sink.name]?.delivered) return;
        const result = await sendToSink(sink, message);
        sinks[sink.name] = {
          delivered: result.ok,
          detail: result.ok ? undefined : result.detail,
          at: this.deps.clock.now().toISOString(),
          ...(result.ok ? {} : { retryable: result.retryable }),
        };
        if (!result.ok)
          ctx.log.warn({ sink: sink.name, alert: message.id, detail: result.detail }, 'alert not delivered');
      }),
    );
    ctx.log.info(
      { alert: message.id, severity: message.severity, sinks: Object.keys(sinks).length },
      message.title,
    );
    return { ...delivery, sinks };
  }

  /**
   * Whether a sink still owes this alert a delivery: not tried yet, or failed retryably. A permanent
   * failure (a misconfigured webhook answering 400) is recorded and logged, not retried: retrying it
   * would keep the incident open and the platform redelivering for a day, to no avail.
   */
  private undelivered(delivery: AlertDelivery): boolean {
    return this.deps.sinks.some((sink) => {
      const status = delivery.sinks[sink.name];
      return status === undefined || (!status.delivered && status.retryable !== false);
    });
  }

  private summary(record: IncidentRecord, status: OutcomeStatus): TriggerOutcome {
    return {
      status,
      kind: record.trigger.kind,
      vault: record.vaultName,
      key: record.keyName,
      incidentId: record.key.id,
      decision: record.decision ? summaryOf(record.decision) : undefined,
      results: record.results,
      alerts: Object.values(record.alerts)
        .filter((a): a is AlertDelivery => a !== undefined)
        .map((a) => a.content.id),
    };
  }
}

type Ctx = RunOptions & { deadline: Date };

/**
 * This attempt's results, completed with what an earlier attempt of the same incident finished (it
 * ended with an action pending or throttled): the alert must say everything kvguard did. A recovery
 * the earlier attempt left pending (accepted, not yet readable) that is active now is kvguard's own
 * recovery completing, not someone else's.
 */
function mergeResults(earlier: ActionResult[] | undefined, now: ActionResult[]): ActionResult[] {
  if (!earlier) return now;
  const merged = now.map((r) => {
    const before = earlier.find((e) => e.action === r.action);
    const ours = before?.status === 'pending' || before?.status === 'succeeded';
    return ours && r.status === 'already-done' ? { ...r, status: 'succeeded' as const } : r;
  });
  for (const e of earlier) {
    if (e.status === 'succeeded' && !merged.some((r) => r.action === e.action)) merged.push(e);
  }
  return merged;
}

/**
 * The decision for a deletion the sweep found older than its look-back (RunOptions `reportOnly`): what
 * `decide` would write (a recovery, purge protection) becomes a report, so the deletion is said once and
 * nothing is written. A decision that writes nothing anyway (left deleted, not recoverable) stands.
 * lib/core stays as it is: this is the pipeline's own path on top of the pure decision.
 */
export function reportOnlyDecision(decision: Decision, reason: string): Decision {
  const wouldWrite =
    decision.action === 'recover-key' ||
    decision.action === 'recover-vault' ||
    decision.enablePurgeProtection;
  if (!wouldWrite) return decision;
  return {
    ...decision,
    action: 'alert-only',
    severity: decision.severity === 'critical' ? 'critical' : 'warning',
    reason: `Found late: ${reason}; kvguard reports it once and does not recover it. ${decision.reason.replace(/ It is recovered\.$/, '')}`,
    enablePurgeProtection: false,
    writes: false,
    notify: true,
  };
}

/** The primary alert of a deletion found late: says so, and what a human must decide. */
function foundLateAlert(content: AlertContent, record: IncidentRecord): AlertContent {
  const t = record.trigger;
  const key = 'keyName' in t ? t.keyName : undefined;
  const purgeDate =
    key !== undefined
      ? record.observedKey?.scheduledPurgeDate
      : t.kind === 'sweptDeletedVault'
        ? t.scheduledPurgeDate
        : undefined;
  const recover =
    key !== undefined
      ? `az keyvault key recover --vault-name ${t.vaultName} --name ${key}`
      : `az keyvault recover --name ${t.vaultName}`;
  const subject =
    key !== undefined ? `Key ${key} deleted in vault ${t.vaultName}` : `Vault ${t.vaultName} deleted`;
  return {
    ...content,
    title: `${subject}: found late, not recovered`,
    humanActions: [
      `Decide whether the deletion was intended; if not, recover it before ${purgeDate ?? 'its scheduled purge date'} (${recover}).`,
      key !== undefined
        ? `Find the caller in the vault's AuditEvent log (AZKVAuditLogs, OperationName KeyDelete, around ${t.signalTime}).`
        : `Find the caller in the subscription's activity log (around ${t.signalTime}).`,
    ],
  };
}

function summaryOf(d: Decision) {
  return { action: d.action, code: d.code, reason: d.reason, severity: d.severity };
}

function toObservedVault(f: VaultFacts): ObservedVault {
  return {
    state: 'active',
    purgeProtectionEnabled: f.enablePurgeProtection,
    softDeleteRetentionInDays: f.softDeleteRetentionInDays,
    publicNetworkAccess: f.publicNetworkAccess,
    enableRbacAuthorization: f.enableRbacAuthorization,
  };
}

/** What a decision would do, as `planned` results (observe mode, dry run). */
function plannedActions(decision: Decision): ActionResult[] {
  const results: ActionResult[] = [];
  const wouldWrite = decision.action === 'recover-key' || decision.action === 'recover-vault';
  if (wouldWrite)
    results.push({ action: decision.action as 'recover-key' | 'recover-vault', status: 'planned' });
  if (decision.enablePurgeProtection) results.push({ action: 'enable-purge-protection', status: 'planned' });
  return results;
}

function recoverResult(outcome: Awaited<ReturnType<KeyVaultData['recoverKey']>>): ActionResult {
  switch (outcome.result) {
    case 'recovered':
      return { action: 'recover-key', status: 'succeeded' };
    case 'already-active':
      return { action: 'recover-key', status: 'already-done' };
    case 'already-purged':
      return { action: 'recover-key', status: 'not-recoverable', detail: 'the key was purged' };
    case 'pending':
      return { action: 'recover-key', status: 'pending' };
    case 'error':
      return failureResult('recover-key', outcome.failure);
  }
}

function failureResult(action: ActionResult['action'], failure: CallFailure): ActionResult {
  switch (failure.kind) {
    case 'forbidden':
      return {
        action,
        status: 'forbidden',
        detail: failure.detail,
        requiredPermission: failure.missingPermission,
      };
    case 'throttled':
      return { action, status: 'throttled' };
    case 'transient':
      // A 5xx or a dropped connection after the SDK's own retries: worth another delivery, not final.
      return { action, status: 'pending', detail: `${failure.status}: ${failure.detail}` };
    default:
      return { action, status: 'failed', detail: `${failure.status}: ${failure.detail}` };
  }
}

/** The sinks' view of an alert: the composed content plus the text lines. */
export function toAlertMessage(content: AlertContent, now: Date): AlertMessage {
  const text = [
    content.title,
    `Who: ${content.who.summary}`,
    `What: ${content.what.summary}`,
    `Decision: ${content.decision.reason}`,
    ...content.actions.map((a) => `Action: ${a.summary}`),
    `Outcome: ${content.outcome}`,
    ...content.humanActions.map((h) => `To do: ${h}`),
  ];
  return {
    id: content.id,
    incidentId: content.incidentId,
    kind: content.kind,
    severity: content.severity,
    title: content.title,
    time: now,
    data: content as unknown as Record<string, unknown>,
    text,
  };
}
