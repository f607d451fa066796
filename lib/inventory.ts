/**
 * The inventory: the vaults and deleted vaults (until purged) that ARM lists in the allowed
 * subscriptions. It is the scope of kvguard (design §2 step 2): a signal's vault host must equal
 * the host of a `vaultUri` listed here, so an event can never point kvguard's identity at another
 * host. Kept in the ledger's table (partition `inventory`) so every instance shares it, cached in
 * memory, refreshed on demand (a scope miss; at most once per `minRefreshMs`) and by the sweep.
 *
 * The allowed subscriptions are KVGUARD_SUBSCRIPTIONS, or, when it is empty, every subscription the
 * identity can see (ARM `GET /subscriptions`, filtered by RBAC), resolved again at each refresh and
 * kept in the snapshot, so the sweep and the posture run work on the same list.
 */
import pLimit from 'p-limit';
import type { Logger } from 'pino';
import { isGuid } from './config';
import type { Clock, DeletedVaultFacts, Ledger, VaultFacts, VaultManagement } from './ports';

export interface InventoryVault {
  name: string;
  /** `<name>.vault.azure.net`, lower-cased, from the vault's own `vaultUri`. */
  host: string;
  vaultUri: string;
  resourceId: string;
  subscriptionId: string;
  resourceGroup: string;
  location: string;
  deleted: boolean;
  /** The last facts ARM gave for a live vault: the baseline a vault write is compared with. */
  facts?: VaultFacts;
  deletedFacts?: DeletedVaultFacts;
}

export interface InventorySnapshot {
  refreshedAt: string;
  /** The subscriptions in scope at this refresh (lower-case GUIDs): configured, else discovered. */
  subscriptions: string[];
  vaults: InventoryVault[];
  /**
   * Listings that failed in the last refresh (reported, not fatal): a subscription's vaults or
   * deleted vaults, or (no `subscriptionId`) the discovery of the subscriptions themselves.
   */
  failures: Array<{ subscriptionId?: string; detail: string }>;
}

const PARTITION = 'inventory';
/** Subscriptions listed at once by a refresh (two ARM calls each). */
const LIST_CONCURRENCY = 8;
const ROW = 'snapshot';

/**
 * Subscription states kept in scope when discovering. Every state but `Deleted` still serves GET and
 * DELETE ("Azure subscription states", learn.microsoft.com/azure/cost-management-billing/manage/
 * subscription-states: Warned and Disabled refuse PUT/PATCH/POST but "you can retrieve or delete
 * resources"; PastDue is still active), so a key or vault can still be deleted there and kvguard must
 * at least see it and say so; a `Deleted` subscription serves no operation at all. The values are
 * SubscriptionState of Subscriptions - List (Enabled, Warned, PastDue, Disabled, Deleted).
 */
function inScopeState(state: string): boolean {
  return state.toLowerCase() !== 'deleted';
}

function unique(ids: string[]): string[] {
  return [...new Set(ids.map((s) => s.toLowerCase()))];
}

function sameSet(a: string[], b: string[]): boolean {
  const set = new Set(b.map((s) => s.toLowerCase()));
  return a.length === set.size && a.every((s) => set.has(s.toLowerCase()));
}

function hostOf(vaultUri: string): string | undefined {
  try {
    const url = new URL(vaultUri);
    return url.protocol === 'https:' && url.port === '' ? url.hostname.toLowerCase() : undefined;
  } catch {
    return undefined;
  }
}

export class Inventory {
  private snapshot: InventorySnapshot | undefined;
  private refreshing: Promise<InventorySnapshot> | undefined;
  private lastRefreshAt = 0;

  constructor(
    private readonly deps: {
      vaults: VaultManagement;
      store: Ledger<InventorySnapshot>;
      clock: Clock;
      /** KVGUARD_SUBSCRIPTIONS; empty: every subscription the identity can see (discovered). */
      subscriptions: string[];
      log: Logger;
      /** A scope miss refreshes at most this often (ARM list calls are not free). */
      minRefreshMs?: number;
    },
  ) {}

  /** The current snapshot: memory, else the table, else a refresh from ARM. */
  async current(): Promise<InventorySnapshot> {
    if (this.snapshot) return this.snapshot;
    const stored = await this.deps.store.get(PARTITION, ROW);
    if (stored) {
      const snapshot = this.complete(stored.value);
      // Listed for other subscriptions than this instance is configured with (the setting changed):
      // a subscription taken out of KVGUARD_SUBSCRIPTIONS leaves the scope now, not at the next refresh.
      const configured = unique(this.deps.subscriptions);
      if (configured.length > 0 && !sameSet(configured, snapshot.subscriptions)) return this.refresh();
      this.snapshot = snapshot;
      return snapshot;
    }
    return this.refresh();
  }

  /**
   * The subscriptions in scope, for the sweep and the posture run: KVGUARD_SUBSCRIPTIONS as
   * configured, else those the current snapshot resolved (discovered at its refresh).
   */
  async subscriptions(): Promise<string[]> {
    if (this.deps.subscriptions.length > 0) return unique(this.deps.subscriptions);
    return [...(await this.current()).subscriptions];
  }

  /** Finds a vault by host (case-insensitive); on a miss, refreshes once if allowed, then retries. */
  async findByHost(host: string): Promise<InventoryVault | undefined> {
    const wanted = host.toLowerCase();
    const hit = (await this.current()).vaults.find((v) => v.host === wanted);
    if (hit) return hit;
    const minRefreshMs = this.deps.minRefreshMs ?? 30_000;
    if (this.deps.clock.now().getTime() - this.lastRefreshAt < minRefreshMs) return undefined;
    return (await this.refresh()).vaults.find((v) => v.host === wanted);
  }

  /** Lists every allowed subscription's vaults and deleted vaults from ARM; one refresh at a time. */
  refresh(): Promise<InventorySnapshot> {
    this.refreshing ??= this.doRefresh().finally(() => {
      this.refreshing = undefined;
    });
    return this.refreshing;
  }

  /** Records fresh facts of one vault (after kvguard changed it) so the baseline stays current. */
  async remember(facts: VaultFacts): Promise<void> {
    const snapshot = await this.current();
    const vault = snapshot.vaults.find((v) => v.resourceId.toLowerCase() === facts.id.toLowerCase());
    if (vault) vault.facts = facts;
  }

  private async doRefresh(): Promise<InventorySnapshot> {
    this.lastRefreshAt = this.deps.clock.now().getTime();
    const vaults: InventoryVault[] = [];
    const failures: InventorySnapshot['failures'] = [];
    const subscriptions = await this.resolveSubscriptions(failures);
    // A tenant can have hundreds of subscriptions: a few listed at a time, not all at once (ARM
    // throttles reads per identity).
    const limit = pLimit(LIST_CONCURRENCY);
    await Promise.all(
      subscriptions.map((subscriptionId) =>
        limit(async () => {
          const [live, deleted] = await Promise.all([
            this.deps.vaults.listVaults(subscriptionId),
            this.deps.vaults.listDeletedVaults(subscriptionId),
          ]);
          if (!live.ok) failures.push({ subscriptionId, detail: `list vaults: ${live.failure.kind}` });
          if (!deleted.ok)
            failures.push({ subscriptionId, detail: `list deleted vaults: ${deleted.failure.kind}` });
          for (const v of live.ok ? live.value : []) {
            const host = hostOf(v.vaultUri);
            if (!host) continue;
            vaults.push({
              name: v.name,
              host,
              vaultUri: v.vaultUri,
              resourceId: v.id,
              subscriptionId,
              resourceGroup: v.resourceGroup,
              location: v.location,
              deleted: false,
              facts: v,
            });
          }
          for (const d of deleted.ok ? deleted.value : []) {
            const rg = /\/resourceGroups\/([^/]+)\//i.exec(d.vaultId)?.[1] ?? '';
            vaults.push({
              name: d.name,
              // A deleted vault's DNS name stays reserved for it until it is purged.
              host: `${d.name}.vault.azure.net`,
              vaultUri: `https://${d.name}.vault.azure.net/`,
              resourceId: d.vaultId,
              subscriptionId,
              resourceGroup: rg,
              location: d.location,
              deleted: true,
              deletedFacts: d,
            });
          }
        }),
      ),
    );
    // On a cold start (the sweep's refresh may be the process's first read) the previous scope is the
    // stored snapshot, not nothing: otherwise one failed listing would drop that subscription's vaults
    // and persist the shrunken scope for every instance.
    const previous = failures.length > 0 ? (this.snapshot ?? (await this.stored())) : undefined;
    const snapshot: InventorySnapshot = {
      refreshedAt: this.deps.clock.now().toISOString(),
      subscriptions,
      vaults,
      failures,
    };
    if (failures.length > 0 && previous) {
      // A failed listing must not shrink the scope: keep what that subscription had before.
      for (const f of failures) {
        if (f.subscriptionId === undefined) continue;
        for (const v of previous.vaults) {
          if (
            v.subscriptionId === f.subscriptionId &&
            !vaults.some((n) => n.resourceId.toLowerCase() === v.resourceId.toLowerCase())
          ) {
            vaults.push(v);
          }
        }
      }
    }
    this.snapshot = snapshot;
    await this.persist(snapshot);
    this.deps.log.info(
      { subscriptions: subscriptions.length, vaults: vaults.length, failures: failures.length },
      'inventory refreshed',
    );
    return snapshot;
  }

  /**
   * The subscriptions this refresh lists: the configured ones, else those ARM lists for the identity
   * (RBAC decides what it sees). Only GUIDs are used: an id from ARM is still only a string to
   * kvguard, and it goes into request paths. A failed discovery is reported and keeps the previous
   * snapshot's subscriptions: like a failed listing, it must not shrink the scope.
   */
  private async resolveSubscriptions(failures: InventorySnapshot['failures']): Promise<string[]> {
    if (this.deps.subscriptions.length > 0) return unique(this.deps.subscriptions);
    const listed = await this.deps.vaults.listSubscriptions();
    if (!listed.ok) {
      failures.push({ detail: `list subscriptions: ${listed.failure.kind}` });
      const previous = (this.snapshot ?? (await this.stored()))?.subscriptions ?? [];
      this.deps.log.warn(
        { failure: listed.failure.kind, status: listed.failure.status, kept: previous.length },
        'subscriptions not discovered: the previous scope is kept',
      );
      return [...previous];
    }
    const visible = listed.value.filter((s) => inScopeState(s.state));
    const valid = visible.filter((s) => isGuid(s.subscriptionId));
    const subscriptions = unique(valid.map((s) => s.subscriptionId));
    const ignored = visible.length - valid.length;
    if (ignored > 0)
      this.deps.log.warn({ ignored }, 'subscriptions discovered: ids that are not GUIDs were ignored');
    this.deps.log.info(
      { discovered: subscriptions.length, notInScope: listed.value.length - visible.length },
      'subscriptions discovered',
    );
    return subscriptions;
  }

  /** A snapshot as stored by an older kvguard (before `subscriptions`) completed from what it holds. */
  private complete(value: InventorySnapshot): InventorySnapshot {
    if (Array.isArray(value.subscriptions)) return value;
    const subscriptions =
      this.deps.subscriptions.length > 0
        ? unique(this.deps.subscriptions)
        : unique(value.vaults.map((v) => v.subscriptionId).filter((id) => isGuid(id)));
    return { ...value, subscriptions };
  }

  private async stored(): Promise<InventorySnapshot | undefined> {
    try {
      const value = (await this.deps.store.get(PARTITION, ROW))?.value;
      return value ? this.complete(value) : undefined;
    } catch (error) {
      this.deps.log.warn(
        { err: error instanceof Error ? error.message : String(error) },
        'stored inventory not readable',
      );
      return undefined;
    }
  }

  private async persist(snapshot: InventorySnapshot): Promise<void> {
    try {
      const existing = await this.deps.store.get(PARTITION, ROW);
      if (!existing) {
        const claimed = await this.deps.store.claim(PARTITION, ROW, snapshot);
        if (claimed.claimed) return;
        await this.deps.store.update(claimed.entry, snapshot);
        return;
      }
      // Last writer wins: every refresh is a complete listing, so a lost race loses nothing.
      const result = await this.deps.store.update(existing, snapshot);
      if (!result.ok) this.deps.log.debug('inventory snapshot written concurrently by another instance');
    } catch (error) {
      this.deps.log.warn(
        { err: error instanceof Error ? error.message : String(error) },
        'inventory not persisted',
      );
    }
  }
}
