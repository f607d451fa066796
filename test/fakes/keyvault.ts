/**
 * An in-memory Key Vault data plane behind `KeyVaultData`, with the behaviour kvguard relies on
 * (design §1, lib/adapters/keyvault.ts):
 * - eventual consistency: a delete or a recovery completes `deleteLagMs` / `recoverLagMs` after it
 *   was accepted; until then the key is neither listed as deleted nor readable (both GETs 404), so
 *   `observeKey` answers `absent`;
 * - `deletedDate` is whole seconds (the service returns a NumericDate);
 * - `recoverKey` on an active key is `already-active` (the SDK poller's pre-read), on a key that is
 *   neither deleted nor active `already-purged` (404 then nothing to read), on a recovery already in
 *   flight it waits for it (409), and it polls within the deadline, else `pending`;
 * - faults per call (forbidden, throttled, transient, ...) injected with `fail`.
 * Every call is recorded, so a test can prove that nothing was written (`writes`) or that a host was
 * never contacted (`callsTo`).
 */
import type {
  CallFailure,
  Clock,
  DeletedKeyState,
  KeyObservation,
  KeyVaultData,
  RecoverOutcome,
} from '../../lib/ports';
import { FaultPlan } from './failures';

export type KeyVaultOp = 'observeKey' | 'recoverKey' | 'listDeletedKeys';

export interface KeyVaultCall {
  op: KeyVaultOp;
  vaultHost: string;
  keyName?: string;
  at: string;
}

/** What the key is right now, as the fake knows it (more precise than the service would say). */
export type FakeKeyState = 'active' | 'deleting' | 'deleted' | 'recovering' | 'purged' | 'missing';

interface FakeKey {
  name: string;
  tags: Record<string, string>;
  recoveryLevel: string;
  state: 'active' | 'deleting' | 'deleted' | 'recovering' | 'purged';
  /** When the pending transition (deleting, recovering) completes, in epoch ms. */
  completesAt: number;
  deletedOn?: Date;
  scheduledPurgeDate?: Date;
}

interface FakeVault {
  host: string;
  retentionDays: number;
  keys: Map<string, FakeKey>;
}

export interface FakeKeyVaultOptions {
  clock: Clock;
  /** How long an accepted delete takes to complete (virtual ms). */
  deleteLagMs?: number;
  /** How long an accepted recovery takes to complete (virtual ms). */
  recoverLagMs?: number;
  /** First poll delay of `recoverKey` (doubles up to 1 s), like the adapter. */
  pollMs?: number;
  /** Virtual latency of every call. */
  latencyMs?: number;
}

export class FakeKeyVault implements KeyVaultData {
  readonly calls: KeyVaultCall[] = [];
  /** Recoveries the fake accepted: each one changed a key's state (the "one recovery" tests count these). */
  readonly recoveries: Array<{ vaultHost: string; keyName: string; at: string }> = [];
  /** Runs before every call (after it is recorded): a test can hold a call here to interleave others. */
  onCall?: (call: KeyVaultCall) => Promise<void> | void;
  deleteLagMs: number;
  recoverLagMs: number;
  private readonly vaults = new Map<string, FakeVault>();
  private readonly faults = new FaultPlan<KeyVaultOp, CallFailure>();

  constructor(private readonly options: FakeKeyVaultOptions) {
    this.deleteLagMs = options.deleteLagMs ?? 0;
    this.recoverLagMs = options.recoverLagMs ?? 0;
  }

  // ------------------------------------------------------------------ the estate (test side)

  addVault(host: string, options: { retentionDays?: number } = {}): this {
    const h = host.toLowerCase();
    if (!this.vaults.has(h))
      this.vaults.set(h, { host: h, retentionDays: options.retentionDays ?? 90, keys: new Map() });
    return this;
  }

  createKey(
    host: string,
    name: string,
    options: { tags?: Record<string, string>; recoveryLevel?: string } = {},
  ): this {
    this.vault(host).keys.set(name.toLowerCase(), {
      name,
      tags: { ...options.tags },
      recoveryLevel: options.recoveryLevel ?? 'Recoverable+Purgeable',
      state: 'active',
      completesAt: 0,
    });
    return this;
  }

  /** Someone deletes the key (the attacker, a pipeline): accepted at `at`, complete `deleteLagMs` later. */
  deleteKey(host: string, name: string, options: { at?: Date | string } = {}): Date {
    const key = this.key(host, name);
    this.settle(key);
    if (key?.state !== 'active')
      throw new Error(`FakeKeyVault: ${name} in ${host} is not active (${key?.state ?? 'missing'})`);
    const at = options.at !== undefined ? new Date(options.at).getTime() : this.nowMs();
    const deletedOn = new Date(Math.floor(at / 1000) * 1000);
    key.state = 'deleting';
    key.completesAt = at + this.deleteLagMs;
    key.deletedOn = deletedOn;
    key.scheduledPurgeDate = new Date(deletedOn.getTime() + this.vault(host).retentionDays * 86_400_000);
    return deletedOn;
  }

  /** Someone purges the deleted key: it is gone for good. */
  purgeKey(host: string, name: string): void {
    const key = this.key(host, name);
    this.settle(key);
    if (key?.state !== 'deleted')
      throw new Error(`FakeKeyVault: ${name} in ${host} is not deleted (${key?.state ?? 'missing'})`);
    key.state = 'purged';
  }

  setTags(host: string, name: string, tags: Record<string, string>): void {
    const key = this.key(host, name);
    if (!key) throw new Error(`FakeKeyVault: no key ${name} in ${host}`);
    key.tags = { ...tags };
  }

  keyState(host: string, name: string): FakeKeyState {
    const key = this.key(host, name);
    this.settle(key);
    return key?.state ?? 'missing';
  }

  deletedOn(host: string, name: string): Date | undefined {
    return this.key(host, name)?.deletedOn;
  }

  /** The next `times` calls of `op` (for this key, when given) answer with `failure`. */
  fail(op: KeyVaultOp, failure: CallFailure, options: { times?: number; keyName?: string } = {}): void {
    const wanted = options.keyName?.toLowerCase();
    this.faults.add(
      op,
      failure,
      options.times ?? 1,
      wanted === undefined ? undefined : (args) => args[1]?.toLowerCase() === wanted,
    );
  }

  /** Calls that could change the estate (recover). */
  get writes(): KeyVaultCall[] {
    return this.calls.filter((c) => c.op === 'recoverKey');
  }

  callsTo(host: string): KeyVaultCall[] {
    const h = host.toLowerCase();
    return this.calls.filter((c) => c.vaultHost.toLowerCase() === h);
  }

  // ------------------------------------------------------------------ the port

  async observeKey(vaultHost: string, keyName: string): Promise<KeyObservation> {
    const failure = await this.enter('observeKey', vaultHost, keyName);
    if (failure) return { state: 'unknown', failure };
    const key = this.key(vaultHost, keyName);
    this.settle(key);
    if (key?.state === 'deleted') return { state: 'deleted', deleted: this.deletedState(key) };
    if (key?.state === 'active') return { state: 'active', tags: { ...key.tags } };
    return { state: 'absent' };
  }

  async recoverKey(vaultHost: string, keyName: string, deadline: Date): Promise<RecoverOutcome> {
    const failure = await this.enter('recoverKey', vaultHost, keyName);
    if (failure) return { result: 'error', failure };
    const key = this.key(vaultHost, keyName);
    this.settle(key);
    if (key?.state === 'active') return { result: 'already-active' };
    if (key?.state === 'recovering') return this.awaitActive(key, deadline, 0);
    if (key?.state !== 'deleted') return { result: 'already-purged' };
    key.state = 'recovering';
    key.completesAt = this.nowMs() + this.recoverLagMs;
    this.recoveries.push({
      vaultHost: vaultHost.toLowerCase(),
      keyName: key.name,
      at: this.options.clock.now().toISOString(),
    });
    return this.awaitActive(key, deadline, 1);
  }

  async listDeletedKeys(
    vaultHost: string,
  ): Promise<{ ok: true; keys: DeletedKeyState[] } | { ok: false; failure: CallFailure }> {
    const failure = await this.enter('listDeletedKeys', vaultHost);
    if (failure) return { ok: false, failure };
    const keys: DeletedKeyState[] = [];
    for (const key of this.vault(vaultHost).keys.values()) {
      this.settle(key);
      if (key.state === 'deleted') keys.push(this.deletedState(key));
    }
    return { ok: true, keys };
  }

  // ------------------------------------------------------------------ internals

  private async enter(op: KeyVaultOp, vaultHost: string, keyName?: string): Promise<CallFailure | undefined> {
    const call: KeyVaultCall = {
      op,
      vaultHost,
      ...(keyName !== undefined ? { keyName } : {}),
      at: this.options.clock.now().toISOString(),
    };
    this.calls.push(call);
    if (this.onCall) await this.onCall(call);
    if (this.options.latencyMs) await this.options.clock.sleep(this.options.latencyMs);
    else await Promise.resolve();
    if (!this.vaults.has(vaultHost.toLowerCase())) {
      // A host that is not a vault does not resolve: the SDK would fail to connect.
      throw new Error(`getaddrinfo ENOTFOUND ${vaultHost}`);
    }
    return this.faults.take(op, [vaultHost, keyName ?? '']);
  }

  /** Polls (first after `pollMs`, then doubling up to 1 s) until the key is readable or the deadline. */
  private async awaitActive(key: FakeKey, deadline: Date, polls: number): Promise<RecoverOutcome> {
    let delay = this.options.pollMs ?? 25;
    for (;;) {
      this.settle(key);
      if (key.state === 'active') return { result: 'recovered', polls };
      if (key.state !== 'recovering') return { result: 'already-purged' };
      if (this.nowMs() + delay >= deadline.getTime()) return { result: 'pending' };
      await this.options.clock.sleep(delay);
      polls++;
      delay = Math.min(delay * 2, 1000);
    }
  }

  private deletedState(key: FakeKey): DeletedKeyState {
    return {
      name: key.name,
      deletedOn: new Date(key.deletedOn!.getTime()),
      ...(key.scheduledPurgeDate !== undefined
        ? { scheduledPurgeDate: new Date(key.scheduledPurgeDate.getTime()) }
        : {}),
      recoveryLevel: key.recoveryLevel,
      tags: { ...key.tags },
    };
  }

  private settle(key: FakeKey | undefined): void {
    if (!key || this.nowMs() < key.completesAt) return;
    if (key.state === 'deleting') key.state = 'deleted';
    else if (key.state === 'recovering') {
      key.state = 'active';
      key.deletedOn = undefined;
      key.scheduledPurgeDate = undefined;
    }
  }

  private vault(host: string): FakeVault {
    const vault = this.vaults.get(host.toLowerCase());
    if (!vault) throw new Error(`FakeKeyVault: no vault ${host}`);
    return vault;
  }

  private key(host: string, name: string): FakeKey | undefined {
    return this.vaults.get(host.toLowerCase())?.keys.get(name.toLowerCase());
  }

  private nowMs(): number {
    return this.options.clock.now().getTime();
  }
}
