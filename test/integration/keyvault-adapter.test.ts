/**
 * kvguard's Key Vault adapter (lib/adapters/keyvault.ts) with the real KeyClient against the emulated
 * vault: a recovery is one recover call and one confirming read after the learned completion time —
 * no read of the key before the recover call — and the edge cases (a key already active again, a
 * key purged) end with the right outcome.
 */
import { ManagedIdentityCredential } from '@azure/identity';
import { KeyClient } from '@azure/keyvault-keys';
import { KeyVaultDataAdapter } from '../../lib/adapters/keyvault';
import { systemClock } from '../../lib/runtime';
import { startHarness, type Harness } from '../emulator/testing/harness';

let h: Harness;
let attacker: KeyClient;
let adapter: KeyVaultDataAdapter;
const VAULT = 'kv-adapter';
const HOST = `${VAULT}.vault.azure.net`;

beforeAll(async () => {
  h = await startHarness({ completionLagMs: 120 });
  const mi = h.emulator.addPrincipal({
    kind: 'managedIdentity',
    displayName: 'id-kvguard',
    assignment: 'user',
  });
  h.emulator.addVault({
    name: VAULT,
    resourceGroup: 'rg-adapter',
    location: 'westeurope',
    retentionDays: 7,
    permissionModel: 'rbac',
    purgeProtection: false,
    roleAssignments: [{ principalId: mi.oid, roleName: 'Key Vault Crypto Officer' }],
  });
  const credential = new ManagedIdentityCredential({ clientId: mi.appId! });
  attacker = new KeyClient(`https://${HOST}`, credential, { retryOptions: { retryDelayInMs: 10 } });
  adapter = new KeyVaultDataAdapter({ credential, clock: systemClock, pollMs: 20, retryBaseDelayMs: 10 });
});
afterAll(async () => h.stop());

async function deleted(name: string) {
  await attacker.createKey(name, 'RSA');
  await (await attacker.beginDeleteKey(name, { intervalInMs: 10 })).pollUntilDone();
}

const callsFor = (name: string, since: number) =>
  h.emulator.requests
    .filter((r) => r.seq > since && r.host === HOST && r.path.includes(`/${name}`) && r.status !== 401)
    .map((r) => `${r.method} ${r.path.replace(/\/$/, '')} ${r.status}`);

const lastSeq = () => h.emulator.requests.at(-1)?.seq ?? 0;

it('recovers with the recover call and confirming reads only: no read of the key before it', async () => {
  await deleted('k1');
  const since = lastSeq();
  const outcome = await adapter.recoverKey(HOST, 'k1', new Date(Date.now() + 10_000));
  expect(outcome.result).toBe('recovered');
  const calls = callsFor('k1', since);
  expect(calls[0]).toBe('POST /deletedkeys/k1/recover 200');
  expect(calls.at(-1)).toBe('GET /keys/k1 200');
  expect(calls.slice(1, -1).every((c) => c === 'GET /keys/k1 404')).toBe(true);
  expect((await attacker.getKey('k1')).name).toBe('k1');

  // Every recovery has the same shape; how soon its first read finds the key is learned (see
  // test/unit/completion-lag.test.ts: timing stays out of this test).
  for (const name of ['k2', 'k3', 'k4']) {
    await deleted(name);
    const before = lastSeq();
    expect((await adapter.recoverKey(HOST, name, new Date(Date.now() + 10_000))).result).toBe('recovered');
    const made = callsFor(name, before);
    expect(made[0]).toBe(`POST /deletedkeys/${name}/recover 200`);
    expect(made.at(-1)).toBe(`GET /keys/${name} 200`);
    expect(made.slice(1, -1).every((c) => c === `GET /keys/${name} 404`)).toBe(true);
  }
});

it('answers already-active for a key that is active again, and already-purged for a purged one', async () => {
  await attacker.createKey('a1', 'RSA');
  expect((await adapter.recoverKey(HOST, 'a1', new Date(Date.now() + 10_000))).result).toBe('already-active');
  await deleted('p1');
  await attacker.purgeDeletedKey('p1');
  expect((await adapter.recoverKey(HOST, 'p1', new Date(Date.now() + 10_000))).result).toBe('already-purged');
});
