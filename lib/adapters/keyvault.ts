/**
 * Key Vault data plane through @azure/keyvault-keys. What each status means here:
 * - getDeletedKey: 200 deleted; 404 not deleted (active, purged, or the delete still completing);
 *   403 the identity lacks get (access policy) / keys/read (RBAC).
 * - recover (SDK poller): pre-read GET /keys/{name}/ (200 = already active, no POST), then
 *   POST /deletedkeys/{name}/recover: 200 accepted; 404 nothing to recover (purged, or active
 *   again); 409 a recovery is already in flight (someone else's: wait for it); 403 not permitted.
 *   Then GET /keys/{name}/ until 200; 404 = still recovering (the service is eventually consistent).
 * The SDK polls every 2 s by default; kvguard polls on its own schedule, starting in tens of
 * milliseconds and backing off, because the completion lag is typically far below a second.
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

  constructor(private readonly options: KeyVaultAdapterOptions) {}

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
    let poller;
    try {
      poller = await client.beginRecoverDeletedKey(keyName);
    } catch (error) {
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
    // The poller's first update ran the pre-read; with no POST it was already active.
    const posted = recoverWasSent(poller.getOperationState());
    if (poller.isDone() && !posted) return { result: 'already-active' };
    if (poller.isDone()) return { result: 'recovered', polls: 1 };
    let delay = this.options.pollMs;
    let polls = 1;
    while (clock.now().getTime() + delay < deadline.getTime()) {
      await clock.sleep(delay);
      try {
        await poller.poll();
      } catch (error) {
        return { result: 'error', failure: toCallFailure(error, PERMISSION.read) };
      }
      polls++;
      if (poller.isDone()) return { result: 'recovered', polls };
      delay = Math.min(delay * 2, this.options.maxPollMs ?? 1000);
    }
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

/** Whether the poller sent the recover POST (its state says started). */
function recoverWasSent(state: { isStarted?: boolean }): boolean {
  return state.isStarted === true;
}
