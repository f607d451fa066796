/**
 * sweepDeletedKeys (design §1: the sweep is the fastest signal; attribution comes later). One run:
 *
 * 1. refreshes the inventory when it is older than its own cadence (`inventoryRefreshSeconds`);
 * 2. lists the deleted vaults of every subscription (ONE ARM list per subscription) and the deleted
 *    keys of every live, not excluded vault of the inventory (ONE `GET /deletedkeys` per vault, paged
 *    by the SDK), with bounded concurrency;
 * 3. feeds each deletion the ledger does not hold yet (or holds unfinished) through the same pipeline
 *    as a signal, its list row serving as the observe read (RunOptions `observed`). A deletion older
 *    than the look-back is reported once and not recovered (RunOptions `reportOnly`);
 * 4. asks the workspace who deleted the keys of incidents still awaiting attribution (younger than
 *    `ATTRIBUTION_WINDOW_MS`); a record found becomes a `keyDeleted` trigger with its caller, which
 *    attaches to the incident and sends its one follow-up.
 *
 * A vault the identity cannot read (403) is reported with one operational alert per vault per day
 * (lib/operational.ts: a mark in the ledger's table, shared with the pipeline), never fatal; one
 * vault's failure never stops the run, and the run keeps within the invocation budget: what is left
 * waits for the next run.
 */
import pLimit from 'p-limit';
import type { Logger } from 'pino';
import { toSafeError } from './core/errors';
import { ATTACH_WINDOW_MS, keyDeletionIncident, vaultDeletionIncident } from './core/incident';
import type { KeyDeletedTrigger, VaultTrigger } from './core/model';
import { fromSweptDeletedKey, fromSweptDeletedVault, isRejection } from './core/normalise';
import { checkScope } from './core/scope';
import type { Config } from './config';
import type { Inventory, InventorySnapshot, InventoryVault } from './inventory';
import { raiseOncePerDay, vaultTarget, type OperationalMark } from './operational';
import type { IncidentRecord, Pipeline, RunOptions, TriggerOutcome } from './pipeline';
import type {
  AlertSink,
  AuditLogQuery,
  CallFailure,
  Clock,
  DeletedKeyState,
  DeletedVaultFacts,
  KeyVaultData,
  Ledger,
  LedgerEntry,
  VaultManagement,
} from './ports';

/** Incidents awaiting attribution are looked up in the workspace for this long after they were written. */
export const ATTRIBUTION_WINDOW_MS = 30 * 60 * 1000;
/** A new item is not started when less than this is left of the budget (a recovery needs a moment). */
const BUDGET_MARGIN_MS = 2000;

/** What the sweep needs of the runtime (lib/runtime.ts `Runtime` has all of it). */
export interface SweepRuntime {
  config: Pick<Config, 'excludedVaults' | 'invocationBudgetMs' | 'sweep'>;
  clock: Clock;
  pipeline: Pipeline;
  inventory: Inventory;
  keyVault: KeyVaultData;
  vaults: VaultManagement;
  ledger: Ledger<IncidentRecord>;
  /** The operational alerts' once-a-day marks (lib/operational.ts), shared with the pipeline. */
  marks: Ledger<OperationalMark>;
  sinks: AlertSink[];
  auditLog?: AuditLogQuery;
}

export interface SweepInvocation {
  invocationId: string;
  log: Logger;
}

export interface SweepFailure {
  /** A vault name, or `subscription <id>`, or `subscriptions` (their discovery), or an incident id. */
  target: string;
  step: 'inventory' | 'list-deleted-keys' | 'list-deleted-vaults' | 'incident' | 'attribution' | 'ledger';
  /** `forbidden`, `throttled`, `transient`, `failed`, `error` (an exception), `budget`. */
  kind: CallFailure['kind'] | 'error' | 'budget';
  detail: string;
}

export interface SweepReport {
  startedAt: string;
  durationMs: number;
  inventoryRefreshed: boolean;
  /** Live vaults whose deleted keys were listed (successfully or not). */
  vaults: number;
  subscriptions: number;
  deletedKeysSeen: number;
  deletedVaultsSeen: number;
  /** Deletions fed through the pipeline that the ledger did not hold yet. */
  incidentsOpened: number;
  /** Unfinished incidents the sweep resumed. */
  incidentsResumed: number;
  /** Keys and vaults recovered by this run. */
  recovered: number;
  /** Deletions older than the look-back, reported once and not recovered. */
  reportedLate: number;
  /** Incidents that got their caller (and their follow-up) from the workspace. */
  attributed: number;
  /** Items not started because the budget ran out (the next run takes them). */
  leftForNextRun: number;
  failures: SweepFailure[];
}

/** One deletion to feed through the pipeline. */
interface Item {
  trigger: VaultTrigger;
  options: Pick<RunOptions, 'observed' | 'reportOnly'>;
  incident: { partition: string; id: string };
  /** The ledger held it, unfinished: a resume, not a new incident. */
  resume: boolean;
}

export async function sweepDeletedKeys(rt: SweepRuntime, invocation: SweepInvocation): Promise<SweepReport> {
  const started = rt.clock.now();
  const deadline = new Date(started.getTime() + rt.config.invocationBudgetMs);
  const log = invocation.log;
  const limit = pLimit(rt.config.sweep.concurrency);
  const report: SweepReport = {
    startedAt: started.toISOString(),
    durationMs: 0,
    inventoryRefreshed: false,
    vaults: 0,
    subscriptions: 0,
    deletedKeysSeen: 0,
    deletedVaultsSeen: 0,
    incidentsOpened: 0,
    incidentsResumed: 0,
    recovered: 0,
    reportedLate: 0,
    attributed: 0,
    leftForNextRun: 0,
    failures: [],
  };
  const fail = (f: SweepFailure, level: 'warn' | 'error' = 'warn') => {
    report.failures.push(f);
    log[level]({ target: f.target, step: f.step, failure: f.kind, detail: f.detail }, 'sweep: step failed');
  };
  const lookbackFrom = started.getTime() - rt.config.sweep.lookbackMinutes * 60_000;

  // 1. the inventory, on its own slower cadence.
  let snapshot: InventorySnapshot;
  let inScope: string[];
  try {
    snapshot = await rt.inventory.current();
    const age = started.getTime() - new Date(snapshot.refreshedAt).getTime();
    const stale = !(age < rt.config.sweep.inventoryRefreshSeconds * 1000);
    if (stale) snapshot = await rt.inventory.refresh();
    // Refreshed by this run (here, or by `current` on a cold start with nothing stored): its listing
    // started after this run did, so its deleted vaults stand for this run's list.
    report.inventoryRefreshed = stale || new Date(snapshot.refreshedAt).getTime() > started.getTime();
    // The subscriptions in scope: configured, else those the inventory discovered.
    inScope = await rt.inventory.subscriptions();
  } catch (error) {
    // Without an inventory there is no scope: nothing may be swept.
    fail(
      { target: 'inventory', step: 'inventory', kind: 'error', detail: toSafeError(error).message },
      'error',
    );
    return finish(rt, report, started, log);
  }
  for (const f of snapshot.failures)
    fail({
      target: f.subscriptionId === undefined ? 'subscriptions' : `subscription ${f.subscriptionId}`,
      step: 'inventory',
      kind: 'failed',
      detail: f.detail,
    });

  const items: Array<Promise<void>> = [];
  const runItems = (batch: Item[]) => {
    for (const item of batch) items.push(limit(() => runItem(rt, invocation, item, deadline, report, fail)));
  };

  // The incidents written lately: unfinished ones nobody holds are resumed (a recovery left pending
  // completes on its own, so its key may no longer be listed as deleted), and those awaiting their
  // caller are looked up in the workspace (4, once every recovery of this run is done).
  const recent = await recentIncidents(rt, fail);
  const taken = new Set<string>();
  const awaiting: Array<LedgerEntry<IncidentRecord>> = [];
  for (const entry of recent) {
    const r = entry.value;
    if (r.state === 'closed') continue;
    if (r.state === 'awaiting-attribution') {
      if (r.keyName !== undefined && r.deletedDate !== undefined) awaiting.push(entry);
      continue;
    }
    taken.add(`${entry.partition}/${entry.id}`);
    if (r.lease && new Date(r.lease.until).getTime() > started.getTime()) continue;
    runItems([
      {
        trigger: r.trigger,
        options: {},
        incident: { partition: entry.partition, id: entry.id },
        resume: true,
      },
    ]);
  }

  // 2. deleted vaults per subscription (the refresh that just ran listed them already).
  const subscriptions = [...new Set(inScope.map((s) => s.toLowerCase()))];
  report.subscriptions = subscriptions.length;
  const deletedVaults: Array<{ subscriptionId: string; facts: DeletedVaultFacts }> = [];
  await Promise.all(
    subscriptions.map((subscriptionId) =>
      limit(async () => {
        const reuse =
          report.inventoryRefreshed &&
          !snapshot.failures.some((f) => f.subscriptionId?.toLowerCase() === subscriptionId);
        if (reuse) {
          for (const v of snapshot.vaults) {
            if (v.deleted && v.deletedFacts && v.subscriptionId.toLowerCase() === subscriptionId)
              deletedVaults.push({ subscriptionId, facts: v.deletedFacts });
          }
          return;
        }
        const listed = await guard(() => rt.vaults.listDeletedVaults(subscriptionId));
        if (!listed.ok) {
          fail({
            target: `subscription ${subscriptionId}`,
            step: 'list-deleted-vaults',
            kind: listed.failure.kind,
            detail: describeFailure(listed.failure),
          });
          if (listed.failure.kind === 'forbidden')
            await reportForbiddenOnce(rt, invocation, `subscription-${subscriptionId}`, listed.failure, {
              title: `kvguard cannot list the deleted vaults of subscription ${subscriptionId}`,
              what: `the deleted vaults of subscription ${subscriptionId}`,
            });
          return;
        }
        for (const facts of listed.value) deletedVaults.push({ subscriptionId, facts });
      }),
    ),
  );
  report.deletedVaultsSeen = deletedVaults.length;
  const deletedNames = new Set(deletedVaults.map((d) => d.facts.name.toLowerCase()));

  // 3a. deleted vaults → sweptDeletedVault triggers.
  const excluded = rt.config.excludedVaults;
  const vaultItems = await Promise.all(
    deletedVaults.map(({ facts }) =>
      limit(() => vaultItem(rt, snapshot, facts, excluded, lookbackFrom, taken, fail)),
    ),
  );
  runItems(vaultItems.filter((i): i is Item => i !== undefined));

  // 2 + 3b. deleted keys per live vault → sweptDeletedKey triggers, each vault's as soon as it is listed.
  const live = snapshot.vaults.filter(
    (v) =>
      !v.deleted &&
      !deletedNames.has(v.name.toLowerCase()) &&
      checkScope({ vaultHost: v.host }, { vaults: [v] }, excluded).outcome === 'in-scope',
  );
  report.vaults = live.length;
  await Promise.all(
    live.map((vault) =>
      limit(() => listVault(rt, invocation, vault, lookbackFrom, taken, report, fail)).then(runItems),
    ),
  );
  await Promise.all(items);
  // Attribution last: naming a caller can wait, bringing keys back cannot. Queued first, the workspace
  // queries of a backlog took the run's slots and budget ahead of the recoveries.
  await attributeAwaiting(rt, invocation, awaiting, deadline, limit, report, fail);
  return finish(rt, report, started, log);
}

function finish(rt: SweepRuntime, report: SweepReport, started: Date, log: Logger): SweepReport {
  report.durationMs = rt.clock.now().getTime() - started.getTime();
  const { failures, ...counts } = report;
  log.info(
    { ...counts, failures: failures.length, failed: failures.map((f) => `${f.target}:${f.step}:${f.kind}`) },
    'sweep done',
  );
  return report;
}

/** Lists one vault's deleted keys and turns each deletion the ledger does not hold (done) into an item. */
async function listVault(
  rt: SweepRuntime,
  invocation: SweepInvocation,
  vault: InventoryVault,
  lookbackFrom: number,
  taken: Set<string>,
  report: SweepReport,
  fail: (f: SweepFailure) => void,
): Promise<Item[]> {
  const listed = await guard(() => rt.keyVault.listDeletedKeys(vault.host));
  if (!listed.ok) {
    fail({
      target: vault.name,
      step: 'list-deleted-keys',
      kind: listed.failure.kind,
      detail: describeFailure(listed.failure),
    });
    if (listed.failure.kind === 'forbidden')
      await reportForbiddenOnce(rt, invocation, vaultTarget(vault.name), listed.failure, {
        title: `kvguard cannot read the deleted keys of vault ${vault.name}`,
        what: `the deleted keys of vault ${vault.name} (${vault.host})`,
      });
    return [];
  }
  report.deletedKeysSeen += listed.keys.length;
  const rows = listed.keys.flatMap((row) => {
    const trigger = fromSweptDeletedKey({
      vaultUrl: vault.vaultUri,
      keyName: row.name,
      deletedDate: row.deletedOn,
    });
    if (isRejection(trigger)) {
      fail({ target: vault.name, step: 'list-deleted-keys', kind: 'failed', detail: trigger.message });
      return [];
    }
    const key = keyDeletionIncident(trigger.vaultName, trigger.keyName, trigger.deletedDate);
    return taken.has(`${key.partitionKey}/${key.id}`) ? [] : [{ row, trigger, key }];
  });
  // The ledger is asked about every row at once: one after the other, a vault of many deletions
  // would hold its slot for a ledger round trip per row before its first recovery starts.
  const states = await Promise.all(rows.map(({ key }) => ledgerState(rt, key.partitionKey, key.id, fail)));
  const out: Item[] = [];
  for (const [i, { row, trigger, key }] of rows.entries()) {
    const held = states[i]!;
    if (held === 'done' || held === 'busy' || held === 'error') continue;
    out.push({
      trigger,
      options: {
        observed: { deletedKey: copyDeletedKey(row) },
        ...(row.deletedOn.getTime() < lookbackFrom
          ? { reportOnly: { reason: lateReason(row.deletedOn, rt) } }
          : {}),
      },
      incident: { partition: key.partitionKey, id: key.id },
      resume: held === 'unfinished',
    });
  }
  return out;
}

/** A deleted vault the ledger does not hold (done) → an item; excluded or out-of-scope vaults are left. */
async function vaultItem(
  rt: SweepRuntime,
  snapshot: InventorySnapshot,
  facts: DeletedVaultFacts,
  excluded: string[],
  lookbackFrom: number,
  taken: Set<string>,
  fail: (f: SweepFailure) => void,
): Promise<Item | undefined> {
  const trigger = fromSweptDeletedVault({
    vaultName: facts.name,
    vaultResourceId: facts.vaultId,
    deletionDate: facts.deletionDate ?? new Date(NaN),
    location: facts.location,
    scheduledPurgeDate: facts.scheduledPurgeDate,
    purgeProtectionEnabled: facts.purgeProtectionEnabled,
  });
  if (isRejection(trigger)) {
    fail({ target: facts.name, step: 'list-deleted-vaults', kind: 'failed', detail: trigger.message });
    return undefined;
  }
  // The pipeline checks scope too; checking here keeps excluded vaults from being fed every run.
  if (checkScope(trigger, snapshot, excluded).outcome === 'excluded') return undefined;
  const key = vaultDeletionIncident(trigger.vaultName, trigger.deletionDate);
  if (taken.has(`${key.partitionKey}/${key.id}`)) return undefined;
  const held = await ledgerState(rt, key.partitionKey, key.id, fail);
  if (held === 'done' || held === 'busy' || held === 'error') return undefined;
  const deletedAt = facts.deletionDate!;
  return {
    trigger,
    options: {
      observed: { deletedVault: facts },
      ...(deletedAt.getTime() < lookbackFrom ? { reportOnly: { reason: lateReason(deletedAt, rt) } } : {}),
    },
    incident: { partition: key.partitionKey, id: key.id },
    resume: held === 'unfinished',
  };
}

/**
 * What the ledger holds for an incident id: nothing (`new`), a finished incident (`done`: closed, or
 * waiting for attribution only), one another delivery is working on (`busy`: its lease is live; the
 * sweep does not wait for it), or an unfinished one nobody holds (`unfinished`: the sweep resumes it).
 * Finished ids are remembered per ledger for the process, so a deletion left deleted costs one read,
 * not one per run (a finished incident never becomes unfinished again).
 */
const finishedByLedger = new WeakMap<object, Set<string>>();
const FINISHED_CACHE_LIMIT = 50_000;

async function ledgerState(
  rt: SweepRuntime,
  partition: string,
  id: string,
  fail: (f: SweepFailure) => void,
): Promise<'new' | 'done' | 'busy' | 'unfinished' | 'error'> {
  let finishedIncidents = finishedByLedger.get(rt.ledger);
  if (!finishedIncidents) {
    finishedIncidents = new Set();
    finishedByLedger.set(rt.ledger, finishedIncidents);
  }
  const cacheKey = `${partition}/${id}`;
  if (finishedIncidents.has(cacheKey)) return 'done';
  let entry: LedgerEntry<IncidentRecord> | undefined;
  try {
    entry = await rt.ledger.get(partition, id);
  } catch (error) {
    fail({ target: id, step: 'ledger', kind: 'error', detail: toSafeError(error).message });
    return 'error';
  }
  if (!entry) return 'new';
  const r = entry.value;
  if (r.state === 'closed' || r.state === 'awaiting-attribution') {
    if (finishedIncidents.size >= FINISHED_CACHE_LIMIT) finishedIncidents.clear();
    finishedIncidents.add(cacheKey);
    return 'done';
  }
  if (r.lease && new Date(r.lease.until).getTime() > rt.clock.now().getTime()) return 'busy';
  return 'unfinished';
}

/** Runs one deletion through the pipeline, within the budget; a failure is the item's, never the run's. */
async function runItem(
  rt: SweepRuntime,
  invocation: SweepInvocation,
  item: Item,
  deadline: Date,
  report: SweepReport,
  fail: (f: SweepFailure) => void,
): Promise<void> {
  if (rt.clock.now().getTime() > deadline.getTime() - BUDGET_MARGIN_MS) {
    report.leftForNextRun++;
    if (report.leftForNextRun === 1)
      fail({ target: item.incident.id, step: 'incident', kind: 'budget', detail: 'the run budget is spent' });
    return;
  }
  let outcomes: TriggerOutcome[];
  try {
    outcomes = await rt.pipeline.run(item.trigger, {
      log: invocation.log,
      invocationId: invocation.invocationId,
      deadline,
      ...item.options,
    });
  } catch (error) {
    // RetryableError included: the incident stays unfinished in the ledger and the next run resumes it.
    fail({ target: item.incident.id, step: 'incident', kind: 'error', detail: toSafeError(error).message });
    return;
  }
  for (const o of outcomes) {
    if (o.status === 'failed') {
      fail({
        target: o.incidentId ?? item.incident.id,
        step: 'incident',
        kind: 'failed',
        detail: o.reason ?? '',
      });
      continue;
    }
    if (o.status !== 'acted') continue;
    if (item.resume) report.incidentsResumed++;
    else report.incidentsOpened++;
    if (item.options.reportOnly) report.reportedLate++;
    if (
      o.results?.some(
        (r) => (r.action === 'recover-key' || r.action === 'recover-vault') && r.status === 'succeeded',
      )
    )
      report.recovered++;
  }
}

/** Key and vault incidents written within the attribution window, across every vault's partition. */
async function recentIncidents(
  rt: SweepRuntime,
  fail: (f: SweepFailure) => void,
): Promise<Array<LedgerEntry<IncidentRecord>>> {
  const since = new Date(rt.clock.now().getTime() - ATTRIBUTION_WINDOW_MS);
  const out: Array<LedgerEntry<IncidentRecord>> = [];
  await Promise.all(
    ['key_', 'vault_'].map(async (prefix) => {
      try {
        out.push(...(await rt.ledger.listRecent(prefix, since)));
      } catch (error) {
        fail({
          target: `${prefix}* incidents`,
          step: 'ledger',
          kind: 'error',
          detail: toSafeError(error).message,
        });
      }
    }),
  );
  return out;
}

/**
 * Incidents of key deletions that wait for their caller, written within the attribution window: asks
 * the workspace for the deletion's record; a record found is fed as a `keyDeleted` signal with its
 * caller, which attaches to the incident (the pipeline sends the one follow-up).
 */
async function attributeAwaiting(
  rt: SweepRuntime,
  invocation: SweepInvocation,
  candidates: Array<LedgerEntry<IncidentRecord>>,
  deadline: Date,
  limit: ReturnType<typeof pLimit>,
  report: SweepReport,
  fail: (f: SweepFailure) => void,
): Promise<void> {
  const auditLog = rt.auditLog;
  if (!auditLog) return;
  const now = rt.clock.now().getTime();
  // Younger than the window by their deletion too (a row rewritten lately may be an old deletion's).
  const awaiting = candidates.filter(
    (e) => now - new Date(e.value.deletedDate!).getTime() <= ATTRIBUTION_WINDOW_MS,
  );
  await Promise.all(
    awaiting.map((entry) =>
      limit(async () => {
        if (rt.clock.now().getTime() > deadline.getTime() - BUDGET_MARGIN_MS) {
          report.leftForNextRun++;
          return;
        }
        const r = entry.value;
        const at = new Date(r.deletedDate!).getTime();
        try {
          const found = await auditLog.findKeyDeletion(r.vaultName, r.keyName!, {
            from: new Date(at - ATTACH_WINDOW_MS),
            to: new Date(at + ATTACH_WINDOW_MS),
          });
          if (!found) return;
          const trigger: KeyDeletedTrigger = {
            kind: 'keyDeleted',
            source: 'sweep',
            vaultName: r.trigger.vaultName,
            vaultHost: r.trigger.vaultHost,
            keyName: r.keyName!,
            signalTime: found.time.toISOString(),
            caller: {
              ...(found.oid !== undefined ? { oid: found.oid } : {}),
              ...(found.upn !== undefined ? { upn: found.upn } : {}),
              ...(found.appId !== undefined ? { appId: found.appId } : {}),
              ...(found.idtyp !== undefined ? { idtyp: found.idtyp } : {}),
              ...(found.ipAddress !== undefined ? { ipAddress: found.ipAddress } : {}),
              ...(found.userAgent !== undefined ? { userAgent: found.userAgent } : {}),
            },
            eventId: `sweep-attribution-${entry.id}`,
            operationName: 'KeyDelete',
          };
          const outcomes = await rt.pipeline.run(trigger, {
            log: invocation.log,
            invocationId: invocation.invocationId,
            deadline,
          });
          for (const o of outcomes) if (o.status === 'attributed') report.attributed++;
        } catch (error) {
          fail({ target: entry.id, step: 'attribution', kind: 'error', detail: toSafeError(error).message });
        }
      }),
    ),
  );
}

/**
 * A 403 is a configuration problem a human must fix: one operational alert per target per (UTC) day,
 * however many runs see it and on however many instances (lib/operational.ts: a conditional insert in
 * the ledger's table decides who sends it; an undelivered one is tried again by the next run). A
 * vault's target is shared with the pipeline, so a vault it could not read either is alerted once.
 */
async function reportForbiddenOnce(
  rt: SweepRuntime,
  invocation: SweepInvocation,
  target: string,
  failure: Extract<CallFailure, { kind: 'forbidden' }>,
  text: { title: string; what: string },
): Promise<void> {
  await raiseOncePerDay(
    { marks: rt.marks, sinks: rt.sinks, clock: rt.clock, log: invocation.log },
    target,
    () => ({
      kind: 'operational',
      severity: 'critical',
      title: text.title,
      time: rt.clock.now(),
      data: {
        title: text.title,
        target,
        missingPermission: failure.missingPermission,
        detail: failure.detail,
      },
      text: [
        text.title,
        `The sweep cannot see ${text.what}: a key deleted there is not recovered by the sweep, only by a signal.`,
        `Grant kvguard's identity ${failure.missingPermission}.`,
        'This alert is sent once a day while the problem lasts.',
      ],
    }),
  );
}

function lateReason(deletedOn: Date, rt: SweepRuntime): string {
  return `deleted at ${deletedOn.toISOString()}, more than ${rt.config.sweep.lookbackMinutes} minutes before the sweep found it (its look-back)`;
}

function describeFailure(f: CallFailure): string {
  switch (f.kind) {
    case 'forbidden':
      return `${f.status}: ${f.detail} (needs ${f.missingPermission})`;
    case 'throttled':
      return `429${f.retryAfterMs !== undefined ? ` (retry after ${f.retryAfterMs} ms)` : ''}`;
    default:
      return `${f.status}: ${f.detail}`;
  }
}

/** An adapter call that throws (a bug, a connection failure) becomes a typed failure of that target. */
async function guard<T extends { ok: boolean }>(
  call: () => Promise<T>,
): Promise<T | { ok: false; failure: CallFailure }> {
  try {
    return await call();
  } catch (error) {
    return { ok: false, failure: { kind: 'transient', status: 0, detail: toSafeError(error).message } };
  }
}

function copyDeletedKey(row: DeletedKeyState): DeletedKeyState {
  return { ...row, tags: { ...row.tags } };
}
