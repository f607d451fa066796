/**
 * The pipeline of design §2: normalise → check scope → observe → claim incident → enrich → decide
 * → act → alert → close. Every entry point (the Event Grid responder, the monitor alert, replay, the
 * sweep) ends here with a `Trigger`. The event is only a trigger: state is re-read before acting,
 * so duplicates and replays are harmless; the ledger makes each incident act and alert once.
 */
import type { Logger } from 'pino';
import { isCallerKnown, mergeCallers } from './core/caller';
import { decide, type ResponsePolicy } from './core/decide';
import { composeAlert } from './core/alert';
import { toSafeError } from './core/errors';
import { findAttachable, incidentKeyFor, keyIncidentPrefix } from './core/incident';
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
import type {
  AlertMessage,
  AlertSink,
  AuditLogQuery,
  CallFailure,
  Clock,
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
  /** Per sink: delivered, or the last failure. */
  sinks: Record<string, { delivered: boolean; detail?: string; at: string }>;
}

/** One incident as the ledger keeps it. */
export interface IncidentRecord {
  version: 1;
  key: IncidentKey;
  vaultName: string;
  keyName?: string;
  /** The key's deletedDate (key deletions): what the attach rule compares. */
  deletedDate?: string;
  state: 'open' | 'acted' | 'awaiting-attribution' | 'closed';
  /** Who is working on it and until when (another delivery waits, then resumes). */
  lease?: { owner: string; until: string };
  trigger: VaultTrigger;
  caller?: Caller;
  observedKey?: ObservedKey;
  decision?: Decision;
  results?: ActionResult[];
  alerts: Partial<Record<AlertKind, AlertDelivery>>;
  observeMode: boolean;
  signals: number;
  createdAt: string;
  updatedAt: string;
}

export interface PipelineDeps {
  clock: Clock;
  keyVault: KeyVaultData;
  vaults: VaultManagement;
  ledger: Ledger<IncidentRecord>;
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

export class Pipeline {
  /** Vault facts per resource id, fetched once per vault for a while (a flood hits a few vaults). */
  private readonly vaultFacts = new Map<string, { at: number; facts: Promise<VaultFacts | undefined> }>();

  constructor(private readonly deps: PipelineDeps) {}

  async run(trigger: Trigger, options: RunOptions): Promise<TriggerOutcome[]> {
    const deadline = options.deadline ?? new Date(this.deps.clock.now().getTime() + this.deps.budgetMs);
    const ctx = { ...options, deadline };
    if (trigger.kind === 'queryNeeded') return this.runQuery(trigger, ctx);
    return [await this.runVaultTrigger(trigger, ctx)];
  }

  /** A log alert without dimensions: kvguard's own query against the configured workspace. */
  private async runQuery(trigger: Extract<Trigger, { kind: 'queryNeeded' }>, ctx: Ctx): Promise<TriggerOutcome[]> {
    if (!this.deps.auditLog) {
      return [{ status: 'failed', kind: trigger.kind, reason: 'no Log Analytics workspace is configured to query' }];
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
      outcomes.push({ status: 'failed', kind: trigger.kind, reason: 'the workspace holds no key deletion in the alert window' });
    }
    return outcomes;
  }

  private async runVaultTrigger(trigger: VaultTrigger, ctx: Ctx): Promise<TriggerOutcome> {
    const base = { kind: trigger.kind, vault: trigger.vaultName, key: 'keyName' in trigger ? trigger.keyName : undefined };
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
      default:
        // keyPurged, keyDeleteDenied, accessPolicyChanged: alert-only incidents keyed by the signal.
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
    const observation = await this.observeKey(trigger, ctx);
    if (observation.state === 'unknown') return this.observeFailed(trigger, observation.failure, ctx);
    if (observation.state === 'deleted') {
      const deletedDate = observation.deleted.deletedOn.toISOString();
      const keyed = incidentKeyFor(trigger, { deletedDate });
      if (!keyed.ok) return { ...base, status: 'failed', reason: keyed.message };
      const observedKey: ObservedKey = {
        state: 'deleted',
        deletedDate,
        scheduledPurgeDate: observation.deleted.scheduledPurgeDate?.toISOString(),
        recoveryLevel: observation.deleted.recoveryLevel,
        tags: observation.deleted.tags,
      };
      return this.incident(keyed.key, trigger, vault, observedKey, ctx, deletedDate);
    }
    // The key is not deleted (any more): a late signal attaches to the incident within two minutes.
    const incidents = await this.deps.ledger.list(trigger.vaultName, keyIncidentPrefix(trigger.vaultName, trigger.keyName));
    const attachable = findAttachable(
      incidents
        .filter((e) => e.value.deletedDate !== undefined)
        .map((e) => ({ id: e.id, vaultName: e.value.vaultName, keyName: e.value.keyName ?? '', deletedDate: e.value.deletedDate!, entry: e })),
      { vaultName: trigger.vaultName, keyName: trigger.keyName },
      trigger.signalTime,
    );
    if (attachable) return this.attach(attachable.entry, trigger, vault, ctx);
    if (observation.state === 'active') {
      ctx.log.info({ vault: trigger.vaultName, key: trigger.keyName }, 'key already active; no incident');
      return { ...base, status: 'already-active', reason: 'the key is active and no incident of its deletion is near the signal time' };
    }
    // Neither deleted nor active: purged (or never existed). Keyed by the signal time; critical.
    const keyed = incidentKeyFor(trigger, { deletedDate: trigger.signalTime });
    if (!keyed.ok) return { ...base, status: 'failed', reason: keyed.message };
    return this.incident(keyed.key, trigger, vault, { state: 'gone' }, ctx, trigger.signalTime);
  }

  /**
   * Reads the key's state. A deletion that was just accepted may not be visible yet (the service is
   * eventually consistent: 404 until it completes), so an absent key is re-read briefly.
   */
  private async observeKey(trigger: { vaultHost: string; keyName: string }, ctx: Ctx): Promise<KeyObservation> {
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

  private observeFailed(trigger: VaultTrigger, failure: CallFailure, ctx: Ctx): TriggerOutcome {
    if (failure.kind === 'transient' || failure.kind === 'throttled') {
      throw new RetryableError(`could not read ${trigger.vaultName}: ${failure.kind} (${failure.status})`);
    }
    ctx.log.error({ vault: trigger.vaultName, failure: failure.kind, status: failure.status }, 'could not observe');
    return {
      status: 'failed',
      kind: trigger.kind,
      vault: trigger.vaultName,
      reason:
        failure.kind === 'forbidden'
          ? `kvguard cannot read the vault: missing ${failure.missingPermission}`
          : `reading the vault failed: ${failure.detail}`,
    };
  }

  // ---------------------------------------------------------------- vault-level triggers

  private async vaultDeletion(
    trigger: Extract<VaultTrigger, { kind: 'vaultDeleted' | 'sweptDeletedVault' }>,
    vault: InventoryVault,
    ctx: Ctx,
  ): Promise<TriggerOutcome> {
    const deleted = await this.deps.vaults.listDeletedVaults(vault.subscriptionId);
    if (!deleted.ok) return this.observeFailed(trigger, deleted.failure, ctx);
    const facts = deleted.value.find((d) => d.name === trigger.vaultName);
    const live = facts ? undefined : await this.deps.vaults.getVault(vault.resourceId);
    const deletionDate = facts?.deletionDate?.toISOString() ?? trigger.signalTime;
    const keyed = incidentKeyFor(trigger, { deletionDate });
    if (!keyed.ok) return { status: 'failed', kind: trigger.kind, vault: trigger.vaultName, reason: keyed.message };
    const observedVault: ObservedVault = facts
      ? { state: 'deleted', purgeProtectionEnabled: facts.purgeProtectionEnabled }
      : live?.ok && live.value
        ? { state: 'active', purgeProtectionEnabled: live.value.enablePurgeProtection }
        : { state: 'gone' };
    return this.incident(keyed.key, trigger, vault, undefined, ctx, undefined, observedVault);
  }

  private async vaultWrite(trigger: Extract<VaultTrigger, { kind: 'vaultWritten' }>, vault: InventoryVault, ctx: Ctx): Promise<TriggerOutcome> {
    const now = await this.deps.vaults.getVault(vault.resourceId);
    if (!now.ok) return this.observeFailed(trigger, now.failure, ctx);
    const before = vault.facts ? toObservedVault(vault.facts) : undefined;
    if (now.value) await this.deps.inventory.remember(now.value);
    const keyed = incidentKeyFor(trigger);
    if (!keyed.ok) return { status: 'failed', kind: trigger.kind, vault: trigger.vaultName, reason: keyed.message };
    return this.incident(keyed.key, trigger, vault, undefined, ctx, undefined, now.value ? toObservedVault(now.value) : { state: 'gone' }, before);
  }

  private async alertOnly(trigger: VaultTrigger, vault: InventoryVault, ctx: Ctx): Promise<TriggerOutcome> {
    const keyed = incidentKeyFor(trigger);
    if (!keyed.ok) return { status: 'failed', kind: trigger.kind, vault: trigger.vaultName, reason: keyed.message };
    return this.incident(keyed.key, trigger, vault, trigger.kind === 'keyPurged' ? { state: 'gone' } : undefined, ctx);
  }

  // ---------------------------------------------------------------- incidents

  /**
   * Claims the incident (a conditional insert), or resumes it when an earlier delivery left it
   * unfinished; a finished incident makes this signal a duplicate, unless it brings the caller that
   * the incident still waits for.
   */
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
      signals: 1,
      createdAt: now,
      updatedAt: now,
    };
    if (ctx.dryRun) return this.plan(fresh, vault, ctx, observedVault, vaultBefore);

    const claim = await this.deps.ledger.claim(key.partitionKey, key.id, { ...fresh, lease: this.lease(ctx) });
    let entry = claim.entry;
    if (!claim.claimed) {
      if (entry.value.state === 'closed' || entry.value.state === 'awaiting-attribution') {
        if (isCallerKnown(trigger.caller) && !isCallerKnown(entry.value.caller)) return this.attach(entry, trigger, vault, ctx);
        ctx.log.info({ incident: key.id }, 'duplicate signal: incident already handled');
        return this.summary(entry.value, 'duplicate');
      }
      const leased = await this.takeLease(entry, ctx);
      if (!leased) return this.summary(entry.value, 'in-progress');
      entry = leased;
    }
    const log = ctx.log.child({ incident: key.id });
    log.info({ kind: trigger.kind, vault: trigger.vaultName, source: trigger.source }, claim.claimed ? 'incident opened' : 'incident resumed');
    return this.work(entry, vault, { ...ctx, log }, observedVault, vaultBefore);
  }

  private lease(ctx: Ctx) {
    return { owner: ctx.invocationId, until: new Date(this.deps.clock.now().getTime() + leaseMs(this.deps)).toISOString() };
  }

  /** Takes over an unfinished incident whose lease expired (or is ours); undefined when it is held. */
  private async takeLease(entry: LedgerEntry<IncidentRecord>, ctx: Ctx): Promise<LedgerEntry<IncidentRecord> | undefined> {
    for (let attempt = 0; attempt < 3; attempt++) {
      const lease = entry.value.lease;
      const held = lease && lease.owner !== ctx.invocationId && new Date(lease.until).getTime() > this.deps.clock.now().getTime();
      if (held || entry.value.state === 'closed') return undefined;
      const updated = await this.deps.ledger.update(entry, { ...entry.value, lease: this.lease(ctx) });
      if (updated.ok) return updated.entry;
      const again = await this.deps.ledger.get(entry.partition, entry.id);
      if (!again) return undefined;
      entry = again;
    }
    return undefined;
  }

  /** Saves the record; an ETag conflict means another delivery took over, which must not happen under a lease. */
  private async save(entry: LedgerEntry<IncidentRecord>, value: IncidentRecord): Promise<LedgerEntry<IncidentRecord>> {
    const updated = await this.deps.ledger.update(entry, { ...value, updatedAt: this.deps.clock.now().toISOString() });
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
      const caller = await this.enrich(record.trigger, record.caller, ctx);
      const vaultState = observedVault ?? (await this.observedVault(vault));
      const decision = decide({
        trigger: record.trigger,
        now: this.deps.clock.now(),
        policy: this.deps.policy,
        caller,
        key: record.observedKey,
        vault: vaultState,
        vaultBefore,
      });
      ctx.log.info({ action: decision.action, code: decision.code, severity: decision.severity }, decision.reason);
      const results = await this.act(record.trigger, decision, vault, ctx);
      ctx.log.info({ results: results.map((r) => `${r.action}:${r.status}`) }, 'acted');
      record = { ...record, caller, decision, results, state: 'acted' };
      entry = await this.save(entry, record);
      if (results.some((r) => r.status === 'pending' || r.status === 'throttled')) {
        // Continue on redelivery (or the next sweep): the alert waits for a result worth sending.
        record = { ...record, decision: undefined, results: undefined, state: 'open' };
        entry = await this.save(entry, { ...record, lease: undefined });
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
    const pendingSinks = record.alerts.primary && Object.values(record.alerts.primary.sinks).some((s) => !s.delivered);
    const waitsForCaller =
      (record.trigger.kind === 'sweptDeletedKey' || record.trigger.kind === 'keyDeleted') && !isCallerKnown(record.caller);
    record = { ...record, state: pendingSinks ? 'acted' : waitsForCaller ? 'awaiting-attribution' : 'closed', lease: undefined };
    entry = await this.save(entry, record);
    if (pendingSinks) throw new RetryableError(`incident ${record.key.id}: an alert sink failed; will retry`);
    ctx.log.info({ state: record.state }, 'incident done');
    return this.summary(record, 'acted');
  }

  /** A late signal (the AuditEvent record after the sweep) brings the caller: decide again, follow up once. */
  private async attach(entry: LedgerEntry<IncidentRecord>, trigger: VaultTrigger, vault: InventoryVault, ctx: Ctx): Promise<TriggerOutcome> {
    const log = ctx.log.child({ incident: entry.id });
    const record = entry.value;
    if (!isCallerKnown(trigger.caller) || isCallerKnown(record.caller) || record.alerts.attribution) {
      log.info('duplicate signal: nothing new for the incident');
      return this.summary(record, 'duplicate');
    }
    if (ctx.dryRun) return { ...this.summary(record, 'planned'), reason: 'would attach the caller to the incident and follow up' };
    const leased = await this.takeLease(entry, { ...ctx, log });
    if (!leased) return this.summary(record, 'in-progress');
    const caller = await this.enrich(trigger, mergeCallers(trigger.caller, record.caller), { ...ctx, log });
    const decision = decide({
      trigger: record.trigger,
      now: this.deps.clock.now(),
      policy: this.deps.policy,
      caller,
      key: record.observedKey,
      vault: await this.observedVault(vault),
      prior: record.decision ? { action: record.decision.action, code: record.decision.code } : undefined,
    });
    log.info({ action: decision.action, code: decision.code }, `attribution: ${decision.reason}`);
    const results = decision.writes ? await this.act(record.trigger, decision, vault, { ...ctx, log }) : [];
    let updated: IncidentRecord = { ...record, caller, signals: record.signals + 1, results: [...(record.results ?? []), ...results] };
    const delivery: AlertDelivery = {
      content: composeAlert({
        incidentId: record.key.id,
        kind: 'attribution',
        trigger: record.trigger,
        decision,
        caller,
        results: results.length > 0 ? results : record.results,
        key: record.observedKey,
        observeMode: record.observeMode,
      }),
      sinks: {},
    };
    updated = { ...updated, alerts: { ...updated.alerts, attribution: await this.deliver(delivery, { ...ctx, log }) } };
    const pending = Object.values(updated.alerts.attribution!.sinks).some((s) => !s.delivered);
    updated = { ...updated, state: pending ? 'awaiting-attribution' : 'closed', lease: undefined };
    if (pending) updated = { ...updated, caller: record.caller, alerts: { ...updated.alerts, attribution: undefined } };
    await this.save(leased, updated);
    if (pending) throw new RetryableError(`incident ${record.key.id}: the attribution alert was not delivered`);
    return { ...this.summary(updated, 'attributed'), decision: summaryOf(decision) };
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

  private async enrich(trigger: VaultTrigger, known: Caller | undefined, ctx: Ctx): Promise<Caller | undefined> {
    let caller = mergeCallers(trigger.caller, known);
    if (!isCallerKnown(caller) && this.deps.auditLog && 'keyName' in trigger && trigger.kind === 'keyDeleted') {
      // A deletion signal without its caller (e.g. a log alert without dimensions): ask the workspace.
      const at = new Date(trigger.signalTime).getTime();
      try {
        const found = await this.deps.auditLog.findKeyDeletion(trigger.vaultName, trigger.keyName, {
          from: new Date(at - 5 * 60_000),
          to: new Date(at + 5 * 60_000),
        });
        if (found) caller = mergeCallers(caller, { oid: found.oid, upn: found.upn, appId: found.appId, idtyp: found.idtyp, ipAddress: found.ipAddress, userAgent: found.userAgent });
      } catch (error) {
        ctx.log.warn({ err: toSafeError(error).message }, 'workspace query failed; the caller stays unknown');
      }
    }
    if (caller?.oid && !caller.displayName && this.deps.directory) {
      try {
        const described = await this.deps.directory.describe(caller.oid);
        if (described) caller = { ...caller, displayName: described.displayName, principalType: described.type };
      } catch (error) {
        ctx.log.warn({ err: toSafeError(error).message }, 'directory lookup failed');
      }
    }
    return caller;
  }

  private observedVault(vault: InventoryVault): Promise<ObservedVault | undefined> {
    if (vault.deleted) {
      return Promise.resolve({ state: 'deleted', purgeProtectionEnabled: vault.deletedFacts?.purgeProtectionEnabled });
    }
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

  private async act(trigger: VaultTrigger, decision: Decision, vault: InventoryVault, ctx: Ctx): Promise<ActionResult[]> {
    if (!decision.writes) return plannedActions(decision);
    const results: ActionResult[] = [];
    if (decision.action === 'recover-key' && 'keyName' in trigger) {
      const outcome = await this.deps.keyVault.recoverKey(trigger.vaultHost, trigger.keyName, ctx.deadline);
      results.push(recoverResult(outcome));
    }
    if (decision.action === 'recover-vault') {
      const deleted = vault.deletedFacts ?? (await this.findDeletedVault(vault));
      if (!deleted) {
        results.push({ action: 'recover-vault', status: 'not-recoverable', detail: 'the vault is not listed as deleted (purged?)' });
      } else {
        const r = await this.deps.vaults.recoverVault(deleted, vault.resourceGroup);
        results.push(r.ok ? { action: 'recover-vault', status: 'succeeded' } : failureResult('recover-vault', r.failure));
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
        const r = await this.deps.vaults.enablePurgeProtection(vault.resourceId);
        results.push(r.ok ? { action: 'enable-purge-protection', status: 'succeeded' } : failureResult('enable-purge-protection', r.failure));
        if (r.ok) {
          this.vaultFacts.set(vault.resourceId.toLowerCase(), { at: this.deps.clock.now().getTime(), facts: Promise.resolve(r.value) });
          await this.deps.inventory.remember(r.value);
        }
      }
    }
    void ctx;
    return results;
  }

  private async findDeletedVault(vault: InventoryVault) {
    const list = await this.deps.vaults.listDeletedVaults(vault.subscriptionId);
    return list.ok ? list.value.find((d) => d.name === vault.name) : undefined;
  }

  private newDelivery(record: IncidentRecord, kind: AlertKind): AlertDelivery {
    return {
      content: composeAlert({
        incidentId: record.key.id,
        kind,
        trigger: record.trigger,
        decision: record.decision!,
        caller: record.caller,
        results: record.results,
        key: record.observedKey,
        observeMode: record.observeMode,
      }),
      sinks: {},
    };
  }

  /** Sends to every sink that has not had it yet; a failing sink never stops the others. */
  private async deliver(delivery: AlertDelivery, ctx: Ctx): Promise<AlertDelivery> {
    const message = toAlertMessage(delivery.content, this.deps.clock.now());
    const sinks = { ...delivery.sinks };
    await Promise.all(
      this.deps.sinks.map(async (sink) => {
        if (sinks[sink.name]?.delivered) return;
        let result;
        try {
          result = await sink.send(message);
        } catch (error) {
          result = { ok: false as const, retryable: true, detail: toSafeError(error).message };
        }
        sinks[sink.name] = { delivered: result.ok, detail: result.ok ? undefined : result.detail, at: this.deps.clock.now().toISOString() };
        if (!result.ok) ctx.log.warn({ sink: sink.name, alert: message.id, detail: result.detail }, 'alert not delivered');
      }),
    );
    ctx.log.info({ alert: message.id, severity: message.severity, sinks: Object.keys(sinks).length }, message.title);
    return { ...delivery, sinks };
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
  if (wouldWrite) results.push({ action: decision.action as 'recover-key' | 'recover-vault', status: 'planned' });
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
      return { action, status: 'forbidden', detail: failure.detail, requiredPermission: failure.missingPermission };
    case 'throttled':
      return { action, status: 'throttled' };
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
