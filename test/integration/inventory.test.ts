/**
 * The inventory of a large tenant, with the real ARM and Tables clients against the emulator and
 * Azurite: 400 vaults are listed once, stored, and read back by another instance (a fresh runtime
 * on the same storage) without listing ARM again.
 */
import { createRuntime } from '../../lib/runtime';
import { startKvguardEnv, type KvguardEnv } from '../emulator/kvguard-env';

const VAULTS = 400;
let env: KvguardEnv;

beforeAll(async () => {
  env = await startKvguardEnv();
  for (let i = 0; i < VAULTS; i++) {
    env.h.emulator.addVault({
      name: `kv-inv-${String(i).padStart(3, '0')}`,
      resourceGroup: `rg-inv-${i % 7}`,
      location: i % 2 ? 'westeurope' : 'northeurope',
      permissionModel: i % 3 ? 'rbac' : 'accessPolicy',
      purgeProtection: i % 4 === 0,
      retentionDays: 90,
    });
  }
}, 120_000);

afterAll(async () => {
  await env?.stop();
});

const armCalls = () => env.h.emulator.requests.filter((r) => r.host === 'management.azure.com').length;

it('stores the inventory of 400 vaults and another instance reads it without listing ARM', async () => {
  const first = createRuntime(env.config);
  const listed = await first.inventory.refresh();
  expect(listed.vaults.filter((v) => !v.deleted)).toHaveLength(VAULTS);
  expect(listed.failures).toEqual([]);

  const before = armCalls();
  const second = createRuntime(env.config);
  const read = await second.inventory.current();
  expect(armCalls()).toBe(before);
  expect(read.vaults).toHaveLength(VAULTS);
  expect(read.refreshedAt).toBe(listed.refreshedAt);
  const found = await second.inventory.findByHost('KV-INV-399.vault.azure.net');
  expect(found).toMatchObject({ name: 'kv-inv-399', deleted: false, resourceGroup: 'rg-inv-0' });
  expect(found?.facts?.enablePurgeProtection).toBe(false);
  expect(
    (await second.inventory.findByHost('kv-inv-000.vault.azure.net'))?.facts?.enablePurgeProtection,
  ).toBe(true);
  expect(armCalls()).toBe(before);
});
