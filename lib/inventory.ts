/**
 * The inventory: the vaults and deleted vaults (until purged) that ARM lists in the allowed
 * subscriptions. It is the scope of kvguard (design §2 step 2): a signal's vault host must equal
 * the host of a `vaultUri` listed here, so an event can never point kvguard's identity at another
 * host. Kept in the ledger's table (partition `inventory`) so every instance shares it, cached in
 * memory, refreshed on demand (a scope miss; at most once per `minRefreshMs`) and by the sweep.
 */
import type { Logger } from 'pino';
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
  vaults: InventoryVault[];
  /** Subscriptions whose listing failed in the last refresh (reported, not fatal). */
  failures: Array<{ subscriptionId: string; detail: string }>;
}

const PARTITION = 'inventory';
const ROW = 'snapshot';

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
      this.snapshot = stored.value;
      return stored.value;
    }
    return this.refresh();
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
    await Promise.all(
      this.deps.subscriptions.map(async (subscriptionId) => {
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
    );
    // On a cold start (the sweep's refresh may be the process's first read) the previous scope is the
    // stored snapshot, not nothing: otherwise one failed listing would drop that subscription's vaults
    // and persist the shrunken scope for every instance.
    const previous = failures.length > 0 ? (this.snapshot ?? (await this.stored())) : undefined;
    const snapshot: InventorySnapshot = {
      refreshedAt: this.deps.clock.now().toISOString(),
      vaults,
      failures,
    };
    if (failures.length > 0 && previous) {
      // A failed listing must not shrink the scope: keep what that subscription had before.
      for (const f of failures) {
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
    this.deps.log.info({ vaults: vaults.length, failures: failures.length }, 'inventory refreshed');
    return snapshot;
  }

  private async stored(): Promise<InventorySnapshot | undefined> {
    try {
      return (await this.deps.store.get(PARTITION, ROW))?.value;
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
