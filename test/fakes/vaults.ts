/**
 * An in-memory ARM `Microsoft.KeyVault/vaults` behind `VaultManagement`: live vaults with their facts,
 * deleted vaults (until purged), `enablePurgeProtection` (sets `true`; nothing can set it back) and
 * `recoverVault` (PUT `createMode: recover`: the deleted vault comes back with its properties).
 * Resource ids compare case-insensitively, as ARM's do. Every call is recorded; `writes` are the calls
 * that change the estate, so a test can prove that observe mode and dry runs wrote nothing.
 * `sticky = false` makes `enablePurgeProtection` answer ok, change nothing and answer the vault as it
 * was (a write that does not take).
 * `listSubscriptions` answers `subscriptions` when a test set it, else every subscription holding a
 * live or deleted vault, `Enabled` (what an identity with a role on each would see).
 */
import type {
  ArmResult,
  CallFailure,
  Clock,
  DeletedVaultFacts,
  SubscriptionFacts,
  VaultFacts,
  VaultManagement,
} from '../../lib/ports';
import { failures, FaultPlan } from './failures';

export type VaultOp =
  | 'getVault'
  | 'enablePurgeProtection'
  | 'recoverVault'
  | 'listVaults'
  | 'listDeletedVaults'
  | 'listSubscriptions';

export interface VaultCall {
  op: VaultOp;
  /** The vault id, vault name or subscription the call named. */
  target: string;
  at: string;
}

export interface FakeVaultSpec {
  name: string;
  subscriptionId?: string;
  resourceGroup?: string;
  location?: string;
  enablePurgeProtection?: boolean;
  softDeleteRetentionInDays?: number;
  enableRbacAuthorization?: boolean;
  publicNetworkAccess?: string;
  tags?: Record<string, string>;
}

export const DEFAULT_SUBSCRIPTION = '8a7f2c1e-3b4d-4e5f-9a0b-1c2d3e4f5a6b';

export function vaultResourceId(subscriptionId: string, resourceGroup: string, name: string): string {
  return `/subscriptions/${subscriptionId}/resourceGroups/${resourceGroup}/providers/Microsoft.KeyVault/vaults/${name}`;
}

interface DeletedEntry {
  facts: DeletedVaultFacts;
  /** The vault as it was, so a recovery brings back its properties. */
  before: VaultFacts;
}

export class FakeVaultManagement implements VaultManagement {
  readonly calls: VaultCall[] = [];
  /** `enablePurgeProtection` changes the vault; false: it answers ok with the vault unchanged. */
  sticky = true;
  onCall?: (call: VaultCall) => Promise<void> | void;
  /** What `listSubscriptions` answers; undefined: the subscriptions of the estate, all `Enabled`. */
  subscriptions?: SubscriptionFacts[];
  private readonly live = new Map<string, VaultFacts>();
  private readonly deleted = new Map<string, DeletedEntry>();
  private readonly faults = new FaultPlan<VaultOp, CallFailure>();

  constructor(private readonly options: { clock: Clock; latencyMs?: number }) {}

  // ------------------------------------------------------------------ the estate (test side)

  addVault(spec: FakeVaultSpec): VaultFacts {
    const subscriptionId = spec.subscriptionId ?? DEFAULT_SUBSCRIPTION;
    const resourceGroup = spec.resourceGroup ?? 'rg-payments';
    const facts: VaultFacts = {
      id: vaultResourceId(subscriptionId, resourceGroup, spec.name),
      name: spec.name.toLowerCase(),
      subscriptionId,
      resourceGroup,
      location: spec.location ?? 'westeurope',
      vaultUri: `https://${spec.name.toLowerCase()}.vault.azure.net/`,
      enablePurgeProtection: spec.enablePurgeProtection ?? false,
      enableSoftDelete: true,
      softDeleteRetentionInDays: spec.softDeleteRetentionInDays ?? 90,
      enableRbacAuthorization: spec.enableRbacAuthorization ?? true,
      publicNetworkAccess: spec.publicNetworkAccess ?? 'Enabled',
      tags: { ...spec.tags },
    };
    this.live.set(facts.id.toLowerCase(), facts);
    return copyFacts(facts);
  }

  /** Someone deletes the vault: it is listed in `deletedVaults` until purged. */
  deleteVault(name: string, options: { at?: Date | string } = {}): DeletedVaultFacts {
    const facts = this.vault(name);
    if (!facts) throw new Error(`FakeVaultManagement: no live vault ${name}`);
    const at = options.at !== undefined ? new Date(options.at) : this.options.clock.now();
    const deletedFacts: DeletedVaultFacts = {
      id: `/subscriptions/${facts.subscriptionId}/providers/Microsoft.KeyVault/locations/${facts.location}/deletedVaults/${facts.name}`,
      name: facts.name,
      subscriptionId: facts.subscriptionId,
      location: facts.location,
      vaultId: facts.id,
      deletionDate: at,
      scheduledPurgeDate: new Date(at.getTime() + facts.softDeleteRetentionInDays * 86_400_000),
      purgeProtectionEnabled: facts.enablePurgeProtection,
    };
    this.live.delete(facts.id.toLowerCase());
    this.deleted.set(facts.name, { facts: deletedFacts, before: facts });
    return copyDeleted(deletedFacts);
  }

  purgeVault(name: string): void {
    if (!this.deleted.delete(name.toLowerCase()))
      throw new Error(`FakeVaultManagement: no deleted vault ${name}`);
  }

  /** Someone else writes the vault (a PUT/PATCH kvguard did not make). */
  changeVault(
    name: string,
    change: Partial<Omit<VaultFacts, 'id' | 'name' | 'subscriptionId' | 'resourceGroup'>>,
  ): VaultFacts {
    const facts = this.vault(name);
    if (!facts) throw new Error(`FakeVaultManagement: no live vault ${name}`);
    Object.assign(facts, change, change.tags ? { tags: { ...change.tags } } : {});
    return copyFacts(facts);
  }

  /** The live vault's facts, by name. */
  vault(name: string): VaultFacts | undefined {
    const n = name.toLowerCase();
    for (const v of this.live.values()) if (v.name === n) return v;
    return undefined;
  }

  deletedVault(name: string): DeletedVaultFacts | undefined {
    return this.deleted.get(name.toLowerCase())?.facts;
  }

  fail(op: VaultOp, failure: CallFailure, options: { times?: number } = {}): void {
    this.faults.add(op, failure, options.times ?? 1);
  }

  get writes(): VaultCall[] {
    return this.calls.filter((c) => c.op === 'enablePurgeProtection' || c.op === 'recoverVault');
  }

  // ------------------------------------------------------------------ the port

  async getVault(vaultId: string): Promise<ArmResult<VaultFacts | undefined>> {
    const failure = await this.enter('getVault', vaultId);
    if (failure) return { ok: false, failure };
    const facts = this.live.get(vaultId.toLowerCase());
    return { ok: true, value: facts ? copyFacts(facts) : undefined };
  }

  async enablePurgeProtection(vaultId: string): Promise<ArmResult<VaultFacts>> {
    const failure = await this.enter('enablePurgeProtection', vaultId);
    if (failure) return { ok: false, failure };
    const facts = this.live.get(vaultId.toLowerCase());
    if (!facts)
      return { ok: false, failure: failures.failed(404, 'ResourceNotFound: the vault was not found') };
    if (this.sticky) facts.enablePurgeProtection = true;
    return { ok: true, value: copyFacts(facts) };
  }

  async recoverVault(deleted: DeletedVaultFacts, resourceGroup: string): Promise<ArmResult<VaultFacts>> {
    const failure = await this.enter('recoverVault', deleted.name);
    if (failure) return { ok: false, failure };
    const entry = this.deleted.get(deleted.name.toLowerCase());
    if (!entry)
      return {
        ok: false,
        failure: failures.failed(404, 'DeletedVaultNotFound: no deleted vault of that name'),
      };
    const facts: VaultFacts = {
      ...entry.before,
      resourceGroup,
      id: vaultResourceId(entry.before.subscriptionId, resourceGroup, entry.before.name),
    };
    this.deleted.delete(deleted.name.toLowerCase());
    this.live.set(facts.id.toLowerCase(), facts);
    return { ok: true, value: copyFacts(facts) };
  }

  async listVaults(subscriptionId: string): Promise<ArmResult<VaultFacts[]>> {
    const failure = await this.enter('listVaults', subscriptionId);
    if (failure) return { ok: false, failure };
    const s = subscriptionId.toLowerCase();
    return {
      ok: true,
      value: [...this.live.values()].filter((v) => v.subscriptionId.toLowerCase() === s).map(copyFacts),
    };
  }

  async listDeletedVaults(subscriptionId: string): Promise<ArmResult<DeletedVaultFacts[]>> {
    const failure = await this.enter('listDeletedVaults', subscriptionId);
    if (failure) return { ok: false, failure };
    const s = subscriptionId.toLowerCase();
    return {
      ok: true,
      value: [...this.deleted.values()]
        .filter((d) => d.facts.subscriptionId.toLowerCase() === s)
        .map((d) => copyDeleted(d.facts)),
    };
  }

  async listSubscriptions(): Promise<ArmResult<SubscriptionFacts[]>> {
    const failure = await this.enter('listSubscriptions', '/subscriptions');
    if (failure) return { ok: false, failure };
    if (this.subscriptions) return { ok: true, value: this.subscriptions.map((s) => ({ ...s })) };
    const ids = new Set<string>();
    for (const v of this.live.values()) ids.add(v.subscriptionId.toLowerCase());
    for (const d of this.deleted.values()) ids.add(d.facts.subscriptionId.toLowerCase());
    return { ok: true, value: [...ids].map((subscriptionId) => ({ subscriptionId, state: 'Enabled' })) };
  }

  private async enter(op: VaultOp, target: string): Promise<CallFailure | undefined> {
    const call: VaultCall = { op, target, at: this.options.clock.now().toISOString() };
    this.calls.push(call);
    if (this.onCall) await this.onCall(call);
    if (this.options.latencyMs) await this.options.clock.sleep(this.options.latencyMs);
    else await Promise.resolve();
    return this.faults.take(op, [target]);
  }
}

/**
 * Fresh copies per call, as the SDK hands out. Not `structuredClone`: under jest it is the outer
 * realm's, and its Dates fail `instanceof Date` in the test realm (lib/core/time.ts relies on it).
 */
function copyFacts(f: VaultFacts): VaultFacts {
  return { ...f, tags: { ...f.tags } };
}

function copyDeleted(d: DeletedVaultFacts): DeletedVaultFacts {
  return {
    ...d,
    ...(d.deletionDate ? { deletionDate: new Date(d.deletionDate.getTime()) } : {}),
    ...(d.scheduledPurgeDate ? { scheduledPurgeDate: new Date(d.scheduledPurgeDate.getTime()) } : {}),
  };
}
