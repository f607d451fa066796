/**
 * Design §2 step 2, as a pure function: a vault is in scope only when the trigger's host equals the
 * host of a `vaultUri` in kvguard's inventory (case-insensitively), and the resource id the signal
 * carries, if any, names that same vault. No token is requested and no request is sent to a vault
 * host before this answers `in-scope`. Excluded vaults are configuration, never a vault tag: a tag
 * writer must not be able to silence kvguard.
 */
import { parseVaultHost, parseVaultResourceId, parseVaultUrl } from './identifiers';
import type { VaultTrigger } from './model';

/** One vault (or deleted vault, until purged) of the inventory; extra fields are ignored. */
export interface ScopeVault {
  name: string;
  vaultUri: string;
  resourceId: string;
  subscriptionId: string;
  location: string;
  deleted: boolean;
}

export interface ScopeInventory {
  vaults: ReadonlyArray<ScopeVault>;
}

export type ScopeResult<V extends ScopeVault = ScopeVault> =
  | { outcome: 'in-scope'; vault: V }
  /** In the inventory but excluded by configuration: left alone (and said so). */
  | { outcome: 'excluded'; vault: V; reason: string }
  | {
      outcome: 'out-of-scope';
      reason: 'unknown-vault' | 'resource-id-mismatch' | 'invalid-host';
      message: string;
    };

/**
 * Excluded vaults from configuration, each given as a vault name, a host, a vault URI or a resource id.
 * Matching is case-insensitive against the inventory entry.
 */
function isExcluded(vault: ScopeVault, host: string, excluded: ReadonlyArray<string>): string | undefined {
  for (const entry of excluded) {
    const e = entry.trim().toLowerCase();
    if (e === '') continue;
    if (
      e === vault.name.toLowerCase() ||
      e === host ||
      e === vault.resourceId.toLowerCase() ||
      e.replace(/\/+$/, '') === vault.vaultUri.trim().toLowerCase().replace(/\/+$/, '')
    ) {
      return entry.trim();
    }
  }
  return undefined;
}

/** Host of an inventory vault's `vaultUri`, by the same strict rules as a signal's. */
function inventoryHost(vault: ScopeVault): string | undefined {
  const url = parseVaultUrl(vault.vaultUri);
  return url.ok && (url.value.path === '' || url.value.path === '/') ? url.value.vaultHost : undefined;
}

export function checkScope<V extends ScopeVault>(
  trigger: Pick<VaultTrigger, 'vaultHost' | 'vaultResourceId'>,
  inventory: { vaults: ReadonlyArray<V> },
  excludedVaults: ReadonlyArray<string> = [],
): ScopeResult<V> {
  // Re-check the host: a trigger built anywhere but normalise must not widen the scope either.
  const host = parseVaultHost(trigger.vaultHost);
  if (!host.ok) return { outcome: 'out-of-scope', reason: 'invalid-host', message: host.message };
  const wanted = host.value.vaultHost;

  const matches = inventory.vaults.filter((v) => inventoryHost(v) === wanted);
  // A live vault wins over a deleted entry of the same name (there is at most one of each).
  const vault = matches.find((v) => !v.deleted) ?? matches[0];
  if (vault === undefined) {
    return {
      outcome: 'out-of-scope',
      reason: 'unknown-vault',
      message: `${wanted} is not a vault in kvguard's inventory`,
    };
  }

  if (trigger.vaultResourceId !== undefined) {
    const rid = parseVaultResourceId(trigger.vaultResourceId);
    if (!rid.ok || trigger.vaultResourceId.toLowerCase() !== vault.resourceId.toLowerCase()) {
      return {
        outcome: 'out-of-scope',
        reason: 'resource-id-mismatch',
        message: `the signal's resource id does not name the inventory's vault ${vault.name}`,
      };
    }
  }

  const excludedBy = isExcluded(vault, wanted, excludedVaults);
  if (excludedBy !== undefined) {
    return {
      outcome: 'excluded',
      vault,
      reason: `vault ${vault.name} is excluded by configuration (${excludedBy})`,
    };
  }
  return { outcome: 'in-scope', vault };
}
