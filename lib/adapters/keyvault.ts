/**
 * Key Vault data plane through @azure/keyvault-keys. What each status means here:
 * - getDeletedKey: 200 deleted; 404 not deleted (active, purged, or the delete still completing);
 *   403 the identity lacks get (access policy) / keys/read (RBAC).
 * - recover (SDK poller): pre-read GET /keys/{name}/ (200 = already active, no POST), then
 *   POST /deletedkeys/{name}/recover: 200 accepted; 404 nothing to recover (purged, or active
 *   again); 409 a recovery is already in flight (someone else's: wait for it); 403 not permitted.
 *   Then GET /keys/{name}/ until 200; 404 = still recovering (the service is eventually consistent).
 * The SDK polls every 2 s by default, and its poller reads the key once more straight after the
 * recover call, when it can only answer 404. kvguard stops the poller once the recover call is
 * accepted and reads on its own schedule: the first read when earlier recoveries found their key
 * readable (`CompletionLag`), else after `pollMs`, then backing off. A recovery thus costs the
 * pre-read, the recover call and, once the lag is learned, one confirming read.
 */
import type { TokenCredential } from '@azure/identity';
import { KeyClient, type DeletedKey } from '@azure/keyvault-keys';
import type { Clock, DeletedKeyState, KeyObservation, KeyVaultData, RecoverOutcome } from '../ports';
import { clientOptions, statusOf, toCallFailure } from './azure';

export interface KeyVaultAdapterOptions {
  credential: TokenCredential;
  clock: Clock;
  /** First poll delay; doubles up to `maxPollMs`. */
  pollMs: number;
  maxPollMs?: number;
  retryBaseDelayMs: number;
}

const PERMISSION = {
  read: 'keys get/list (access policy) or Microsoft.KeyVault/vaults/keys/read (RBAC)',
  recover: 'keys recover (access policy) or Microsoft.KeyVault/vaults/keys/recover/action (RBAC)',
};

function toDeletedState(d: DeletedKey): DeletedKeyState {
  return {
    name: d.name,
    deletedOn: d.properties.deletedOn ?? new Date(0),
    scheduledPurgeDate: d.properties.scheduledPurgeDate,
    recoveryLevel: d.properties.recoveryLevel,
    tags: d.properties.tags ?? {},
  };
}

export class KeyVaultDataAdapter implements KeyVaultData {
  private readonly clients = new Map<string, KeyClient>();
  private readonly lag: CompletionLag;

  constructor(private readonly options: KeyVaultAdapterOptions) {
    this.lag = new CompletionLag({ clock: options.clock, initialMs: options.pollMs });
  }

  /** One client per vault host: the challenge (tenant, scope) is cached per client instance. */
  private client(vaultHost: string): KeyClient {
    const host = vaultHost.toLowerCase();
    let client = this.clients.get(host);
    if (!client) {
      client = new KeyClient(
        `https://${host}`,
        this.options.credential,
        clientOptions(this.options.retryBaseDelayMs),
      );
      this.clients.set(host, client);
    }
    return client;
  }

  async observeKey(vaultHost: string, keyName: string): Promise<KeyObservation> {
    const client = this.client(vaultHost);
    try {
      return { state: 'deleted', deleted: toDeletedState(await client.getDeletedKey(keyName)) };
    } catch (error) {
      if (statusOf(error) !== 404)
        return { state: 'unknown', failure: toCallFailure(error, PERMISSION.read) };
    }
    try {
      const key = await client.getKey(keyName);
      return { state: 'active', tags: key.properties.tags ?? {} };
    } catch (error) {
      if (statusOf(error) === 404) return { state: 'absent' };
      return { state: 'unknown', failure: toCallFailure(error, PERMISSION.read) };
    }
  }

  async recoverKey(vaultHost: string, keyName: string, deadline: Date): Promise<RecoverOutcome> {
    const client = this.client(vaultHost);
    const { clock } = this.options;
    const recover = recoverCall(client);
    if (recover) {
      // One call: kvguard has just read the key as deleted, so the public poller's pre-read of the
      // key (which can only answer 404 here) would add a round trip to every recovery.
      try {
        await recover(keyName);
      } catch (error) {
        return this.recoverFailed(error, vaultHost, keyName, client, deadline);
      }
      return this.confirm(client, keyName, clock.now().getTime(), deadline);
    }
    // The poller's first update sends the pre-read, the recover call and a read of the key. That read
    // can only answer 404 (a recovery takes a while), so the update is stopped once the recover call
    // is accepted: the read after it is aborted before it is sent.
    const stop = new AbortController();
    let acceptedAt: number | undefined;
    try {
      await client.beginRecoverDeletedKey(keyName, {
        abortSignal: stop.signal,
        onResponse: (response) => {
          if (response.request.method === 'POST' && response.status === 200) {
            acceptedAt = clock.now().getTime();
            stop.abort();
          }
        },
      });
      // No recover call: the pre-read found the key active.
      if (acceptedAt === undefined) return { result: 'already-active' };
    } catch (error) {
      if (acceptedAt === undefined || !isAbortError(error))
        return this.recoverFailed(error, vaultHost, keyName, client, deadline);
    }
    return this.confirm(client, keyName, acceptedAt, deadline);
  }

  private async recoverFailed(
    error: unknown,
    vaultHost: string,
    keyName: string,
    client: KeyClient,
    deadline: Date,
  ): Promise<RecoverOutcome> {
    const status = statusOf(error);
    if (status === 404) {
      // Nothing to recover: either it is active again (a concurrent recovery finished) or purged.
      const observed = await this.observeKey(vaultHost, keyName);
      if (observed.state === 'active') return { result: 'already-active' };
      if (observed.state === 'absent') return { result: 'already-purged' };
      if (observed.state === 'unknown') return { result: 'error', failure: observed.failure };
      return {
        result: 'error',
        failure: {
          kind: 'failed',
          status: 404,
          detail: 'recover answered 404 but the key is still listed as deleted',
        },
      };
    }
    if (status === 409) {
      // Another recovery of this key is in flight: wait for the key to be readable.
      return this.awaitActive(client, keyName, deadline, 0);
    }
    return { result: 'error', failure: toCallFailure(error, PERMISSION.recover) };
  }

  /**
   * Reads the recovered key until it is readable: the first read at the learned completion time
   * (measured from when the recover call was accepted), then every `pollMs`, doubling.
   */
  private async confirm(
    client: KeyClient,
    keyName: string,
    acceptedAt: number,
    deadline: Date,
  ): Promise<RecoverOutcome> {
    const { clock } = this.options;
    const maxPollMs = this.options.maxPollMs ?? 1000;
    let firstReadMs = this.lag.firstRead();
    if (firstReadMs === undefined) {
      // Nothing learned yet and another recovery is finding out: wait for what it learns (a burst
      // of recoveries probes once, not once each), but never past the poll schedule's own bound.
      await Promise.race([this.lag.learned(), clock.sleep(maxPollMs)]);
      firstReadMs = this.lag.firstRead() ?? this.lag.probe();
    }
    let wait = Math.max(0, acceptedAt + firstReadMs - clock.now().getTime());
    let delay = this.options.pollMs;
    let polls = 0;
    let first = true;
    while (clock.now().getTime() + wait < deadline.getTime()) {
      if (wait > 0) await clock.sleep(wait);
      const offset = clock.now().getTime() - acceptedAt;
      if (first && offset <= this.lag.knownTooEarly()) {
        // Meanwhile another recovery read this early and missed (the service slowed down): so would
        // this read. Wait past that instead of spending a call.
        wait = this.lag.knownTooEarly() - offset + this.options.pollMs;
        continue;
      }
      try {
        await client.getKey(keyName);
        polls++;
        this.lag.found(offset);
        return { result: 'recovered', polls };
      } catch (error) {
        if (statusOf(error) !== 404) {
          this.lag.abandon();
          return { result: 'error', failure: toCallFailure(error, PERMISSION.read) };
        }
      }
      polls++;
      this.lag.tooEarly(offset);
      first = false;
      wait = delay;
      delay = Math.min(delay * 2, maxPollMs);
    }
    this.lag.abandon();
    return { result: 'pending' };
  }

  private async awaitActive(
    client: KeyClient,
    keyName: string,
    deadline: Date,
    polls: number,
  ): Promise<RecoverOutcome> {
    let delay = this.options.pollMs;
    const { clock } = this.options;
    for (;;) {
      try {
        await client.getKey(keyName);
        return { result: 'recovered', polls };
      } catch (error) {
        if (statusOf(error) !== 404)
          return { result: 'error', failure: toCallFailure(error, PERMISSION.read) };
      }
      polls++;
      if (clock.now().getTime() + delay >= deadline.getTime()) return { result: 'pending' };
      await clock.sleep(delay);
      delay = Math.min(delay * 2, this.options.maxPollMs ?? 1000);
    }
  }

  async listDeletedKeys(vaultHost: string) {
    const keys: DeletedKeyState[] = [];
    try {
      for await (const d of this.client(vaultHost).listDeletedKeys()) keys.push(toDeletedState(d));
      return { ok: true as const, keys };
    } catch (error) {
      return { ok: false as const, failure: toCallFailure(error, PERMISSION.read) };
    }
  }
}

/**
 * The recover call alone (POST /deletedkeys/{name}/recover), through the KeyClient's own generated
 * client and pipeline (challenge authentication, retries): the public API offers it only inside a
 * poller that reads the key first. The generated client is not public API, so its absence (another
 * SDK version) falls back to the poller; test/integration/keyvault-client.test.ts pins the behaviour.
 */
function recoverCall(client: KeyClient): ((name: string) => Promise<unknown>) | undefined {
  const inner = (client as unknown as { client?: { recoverDeletedKey?: unknown } }).client;
  const call = inner?.recoverDeletedKey;
  return typeof call === 'function'
    ? (name) => (call as (name: string) => Promise<unknown>).call(inner, name)
    : undefined;
}

function isAbortError(error: unknown): boolean {
  return error instanceof Error && error.name === 'AbortError';
}

/**
 * How long after an accepted recovery the key becomes readable, learned from the recoveries so far,
 * so that the first confirming read goes out when the key is likely readable: neither too early (a
 * call that answers 404) nor late (latency). `ok` is the smallest read offset (ms after the recover
 * call was accepted) known to have found the key; `miss` the largest known to have been too early.
 * A first read probes halfway between them while they are further apart than `resolutionMs` (and a
 * quarter of `ok`); a first read at `ok` that misses means the service got slower (or jitters past
 * `ok`): `ok` then moves above that miss, and a find at or below a known miss never pulls it back
 * down — completion times jitter, and reading at the lucky edge of that jitter would make every
 * unlucky recovery pay one more call. What was too early is forgotten after `forgetMs`, so a service
 * that got faster is noticed. While nothing is known, one recovery finds out and the others wait.
 */
export class CompletionLag {
  private ok: number | undefined;
  private stale = false;
  private bisecting = false;
  private miss = 0;
  private missAt = 0;
  private probing = false;
  private waiters: Array<() => void> = [];
  private readonly clock: Clock;
  private readonly initialMs: number;
  private readonly resolutionMs: number;
  private readonly forgetMs: number;

  constructor(options: { clock: Clock; initialMs: number; resolutionMs?: number; forgetMs?: number }) {
    this.clock = options.clock;
    this.initialMs = options.initialMs;
    this.resolutionMs = options.resolutionMs ?? Math.max(10, options.initialMs);
    this.forgetMs = options.forgetMs ?? 5 * 60_000;
  }

  /** When to read first; `undefined` while nothing is known and another recovery is probing. */
  firstRead(): number | undefined {
    if (this.ok === undefined) return this.probing ? undefined : this.probe();
    if (this.miss > 0 && this.clock.now().getTime() - this.missAt > this.forgetMs) this.miss = 0;
    // A read at `ok` missed and nothing later has found a key yet: read past that miss.
    if (this.ok <= this.miss) return this.miss + this.resolutionMs;
    const gap = this.ok - this.miss;
    // One probe below `ok` at a time: concurrent recoveries reading early together would all miss.
    if (gap <= Math.max(this.resolutionMs, this.ok / 4) || this.bisecting) return this.ok;
    this.bisecting = true;
    return Math.ceil((this.ok + this.miss) / 2);
  }

  /** The latest read offset lately found too early (0 when none, or forgotten). */
  knownTooEarly(): number {
    return this.clock.now().getTime() - this.missAt > this.forgetMs ? 0 : this.miss;
  }

  /** This recovery finds out (nothing is known): its first read is at the initial delay. */
  probe(): number {
    this.probing = true;
    return this.initialMs;
  }

  /** Resolves once a recovery found its key readable (or gave up). */
  learned(): Promise<void> {
    return new Promise((resolve) => this.waiters.push(resolve));
  }

  found(offsetMs: number): void {
    // A find no later than a known miss is the lucky side of the service's jitter: it must not pull
    // `ok` back to where reads are known to miss.
    if (this.ok === undefined || offsetMs > this.miss) {
      this.ok = this.ok === undefined || this.stale ? offsetMs : Math.min(this.ok, offsetMs);
      this.stale = false;
    }
    this.release();
  }

  tooEarly(offsetMs: number): void {
    // A first read at `ok` missed: the service got slower; what finds the key now is the new `ok`.
    if (this.ok !== undefined && offsetMs >= this.ok) this.stale = true;
    this.miss = Math.max(this.miss, offsetMs);
    this.missAt = this.clock.now().getTime();
  }

  /** The recovery ended without finding its key (an error, the deadline): let the others go on. */
  abandon(): void {
    this.release();
  }

  private release(): void {
    this.probing = false;
    this.bisecting = false;
    const waiters = this.waiters;
    this.waiters = [];
    for (const w of waiters) w();
  }
}
