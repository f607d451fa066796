/**
 * The scope without KVGUARD_SUBSCRIPTIONS: the inventory discovers the subscriptions kvguard's
 * identity can see (VaultManagement.listSubscriptions, ARM `GET /subscriptions`) at each refresh,
 * keeps only GUIDs of subscriptions that are not `Deleted`, and never lets a failed discovery shrink
 * the scope. The sweep takes its subscriptions from the inventory.
 */
import { ConfigError, DEFAULT_SWEEP_SCHEDULE, loadConfig } from '../../lib/config';
import { Inventory, type InventorySnapshot } from '../../lib/inventory';
import { Pipeline } from '../../lib/pipeline';
import { sweepDeletedKeys } from '../../lib/sweep';
import {
  failures,
  FakeClock,
  FakeVaultManagement,
  MemoryLedger,
  parsedLogs,
  PAYMENTS_HOST,
  SUBSCRIPTION,
  testPipeline,
} from '../fakes';

const SUB_B = '5d0c9b1a-2e3f-4a5b-8c7d-6e5f4a3b2c1d';
const SUB_C = 'c3b2a190-8f7e-4d6c-9b5a-4f3e2d1c0b9a';

const BASE_SETTINGS = {
  AZURE_TENANT_ID: '72f988bf-86f1-41af-91ab-2d7cd011db47',
  KVGUARD_TABLE_ENDPOINT: 'https://stkvguard.table.core.windows.net/',
  KVGUARD_BLOB_ENDPOINT: 'https://stkvguard.blob.core.windows.net/',
  KVGUARD_SIGNALS_TOPIC_ENDPOINT: 'https://kvguard-signals.westeurope-1.eventgrid.azure.net/api/events',
};

describe('KVGUARD_SUBSCRIPTIONS', () => {
  it('may be unset or empty: the subscriptions are then discovered', () => {
    expect(loadConfig(BASE_SETTINGS).subscriptions).toEqual([]);
    expect(loadConfig({ ...BASE_SETTINGS, KVGUARD_SUBSCRIPTIONS: '' }).subscriptions).toEqual([]);
    expect(loadConfig({ ...BASE_SETTINGS, KVGUARD_SUBSCRIPTIONS: ' , ' }).subscriptions).toEqual([]);
  });

  it('when set, is still a list of GUIDs (lower-cased, each once)', () => {
    expect(
      loadConfig({ ...BASE_SETTINGS, KVGUARD_SUBSCRIPTIONS: `${SUB_B.toUpperCase()}, ${SUB_B},${SUB_C}` })
        .subscriptions,
    ).toEqual([SUB_B, SUB_C]);
    expect(() => loadConfig({ ...BASE_SETTINGS, KVGUARD_SUBSCRIPTIONS: `${SUB_B},contoso` })).toThrow(
      ConfigError,
    );
    expect(() => loadConfig({ ...BASE_SETTINGS, KVGUARD_SUBSCRIPTIONS: `${SUB_B},contoso` })).toThrow(
      /KVGUARD_SUBSCRIPTIONS.*GUID/,
    );
  });
});

function estate(configured: string[] = []) {
  const clock = new FakeClock('2026-03-14T09:27:20.000Z');
  const vaults = new FakeVaultManagement({ clock });
  const store = new MemoryLedger<InventorySnapshot>({ clock });
  const { logs, log } = parsedLogs();
  vaults.addVault({ name: 'kv-a-payments' });
  vaults.addVault({ name: 'kv-b-orders', subscriptionId: SUB_B, resourceGroup: 'rg-orders' });
  vaults.addVault({ name: 'kv-b-gone', subscriptionId: SUB_B, resourceGroup: 'rg-orders' });
  vaults.deleteVault('kv-b-gone');
  const inventory = () => new Inventory({ vaults, store, clock, subscriptions: configured, log });
  return { clock, vaults, store, logs, log, inventory };
}

const names = (s: InventorySnapshot) =>
  s.vaults.map((v) => `${v.name}${v.deleted ? ' (deleted)' : ''}`).sort();
const calls = (vaults: FakeVaultManagement, op: string) =>
  vaults.calls.filter((c) => c.op === op).map((c) => c.target);

describe('Inventory without configured subscriptions', () => {
  it('lists the vaults and deleted vaults of every subscription the identity can see', async () => {
    const e = estate();
    const inventory = e.inventory();

    const snapshot = await inventory.refresh();

    expect(calls(e.vaults, 'listSubscriptions')).toHaveLength(1);
    expect(snapshot.subscriptions.sort()).toEqual([SUBSCRIPTION, SUB_B].sort());
    expect(names(snapshot)).toEqual(['kv-a-payments', 'kv-b-gone (deleted)', 'kv-b-orders']);
    expect(snapshot.failures).toEqual([]);
    expect((await inventory.subscriptions()).sort()).toEqual([SUBSCRIPTION, SUB_B].sort());
    expect(await inventory.findByHost('KV-B-ORDERS.vault.azure.net')).toMatchObject({
      subscriptionId: SUB_B,
      deleted: false,
    });
    // The count is logged, not the ids.
    const discovered = e.logs.find((l) => l.entry.msg === 'subscriptions discovered');
    expect(discovered?.entry).toMatchObject({ discovered: 2 });
    expect(JSON.stringify(discovered?.entry)).not.toContain(SUB_B);
  });

  it('discovers again at each refresh: a subscription granted later comes into scope', async () => {
    const e = estate();
    const inventory = e.inventory();
    await inventory.refresh();
    e.vaults.addVault({ name: 'kv-c-new', subscriptionId: SUB_C });

    const snapshot = await inventory.refresh();

    expect(calls(e.vaults, 'listSubscriptions')).toHaveLength(2);
    expect(snapshot.subscriptions).toContain(SUB_C);
    expect(names(snapshot)).toContain('kv-c-new');
  });

  it('reports a failed discovery and keeps the previous scope (its subscriptions listed afresh)', async () => {
    const e = estate();
    const inventory = e.inventory();
    const first = await inventory.refresh();
    e.vaults.addVault({ name: 'kv-c-new', subscriptionId: SUB_C });
    e.vaults.addVault({ name: 'kv-b-later', subscriptionId: SUB_B });
    e.vaults.fail('listSubscriptions', failures.throttled(2000));
    e.clock.advance(60_000);

    const second = await inventory.refresh();

    expect(second.failures).toEqual([{ detail: 'list subscriptions: throttled' }]);
    expect(second.subscriptions.sort()).toEqual(first.subscriptions.sort());
    // The kept subscriptions are listed again (fresh vaults), the unseen one is not in scope.
    expect(names(second)).toEqual(['kv-a-payments', 'kv-b-gone (deleted)', 'kv-b-later', 'kv-b-orders']);
    expect(calls(e.vaults, 'listVaults')).not.toContain(SUB_C);
    expect(e.logs.some((l) => l.level === 'warn' && /previous scope is kept/.test(String(l.entry.msg)))).toBe(
      true,
    );

    // The next discovery that works brings the new subscription in.
    const third = await inventory.refresh();
    expect(third.failures).toEqual([]);
    expect(third.subscriptions).toContain(SUB_C);
  });

  it('after a cold start, a failed discovery keeps the stored scope', async () => {
    const e = estate();
    await e.inventory().refresh();
    e.vaults.fail('listSubscriptions', failures.forbidden('a role assignment in each subscription'));

    const restarted = e.inventory();
    const snapshot = await restarted.refresh();

    expect(snapshot.failures).toEqual([{ detail: 'list subscriptions: forbidden' }]);
    expect(snapshot.subscriptions.sort()).toEqual([SUBSCRIPTION, SUB_B].sort());
    expect(names(snapshot)).toEqual(['kv-a-payments', 'kv-b-gone (deleted)', 'kv-b-orders']);
    // And it stored that scope for the other instances.
    expect((await e.inventory().current()).subscriptions.sort()).toEqual([SUBSCRIPTION, SUB_B].sort());
  });

  it('with no scope before it, a failed discovery leaves an empty scope and says so', async () => {
    const e = estate();
    e.vaults.fail('listSubscriptions', failures.transient(503));

    const snapshot = await e.inventory().refresh();

    expect(snapshot).toMatchObject({
      subscriptions: [],
      vaults: [],
      failures: [{ detail: 'list subscriptions: transient' }],
    });
    expect(calls(e.vaults, 'listVaults')).toEqual([]);
  });

  it('ignores a subscription id from ARM that is not a GUID: it never reaches a request path', async () => {
    const e = estate();
    e.vaults.subscriptions = [
      { subscriptionId: SUB_B, state: 'Enabled' },
      { subscriptionId: '../../providers/Microsoft.Evil', state: 'Enabled' },
      { subscriptionId: 'contoso-prod', state: 'Enabled' },
      { subscriptionId: '', state: 'Enabled' },
      { subscriptionId: `${SUBSCRIPTION}/resourceGroups/x`, state: 'Enabled' },
    ];

    const snapshot = await e.inventory().refresh();

    expect(snapshot.subscriptions).toEqual([SUB_B]);
    expect(calls(e.vaults, 'listVaults')).toEqual([SUB_B]);
    expect(calls(e.vaults, 'listDeletedVaults')).toEqual([SUB_B]);
    expect(snapshot.failures).toEqual([]);
    const warned = e.logs.find((l) => l.level === 'warn' && /not GUIDs/.test(String(l.entry.msg)));
    expect(warned?.entry).toMatchObject({ ignored: 4 });
    expect(JSON.stringify(warned?.entry)).not.toContain('Evil');
  });

  it('keeps every subscription state but Deleted, and each subscription once', async () => {
    const e = estate();
    e.vaults.subscriptions = [
      { subscriptionId: SUBSCRIPTION.toUpperCase(), state: 'PastDue' },
      { subscriptionId: SUBSCRIPTION, state: 'PastDue' },
      { subscriptionId: SUB_B, state: 'Warned' },
      { subscriptionId: SUB_C, state: 'Deleted' },
      { subscriptionId: '0f1e2d3c-4b5a-4968-8776-a5b4c3d2e1f0', state: 'Disabled' },
    ];

    const snapshot = await e.inventory().refresh();

    expect(snapshot.subscriptions).toEqual([SUBSCRIPTION, SUB_B, '0f1e2d3c-4b5a-4968-8776-a5b4c3d2e1f0']);
    expect(calls(e.vaults, 'listVaults')).not.toContain(SUB_C);
  });

  it('completes a snapshot stored before it carried its subscriptions', async () => {
    const e = estate();
    await e.store.claim('inventory', 'snapshot', {
      refreshedAt: '2026-03-14T09:00:00.000Z',
      vaults: [
        {
          name: 'kv-b-orders',
          host: 'kv-b-orders.vault.azure.net',
          vaultUri: 'https://kv-b-orders.vault.azure.net/',
          resourceId: `/subscriptions/${SUB_B}/resourceGroups/rg-orders/providers/Microsoft.KeyVault/vaults/kv-b-orders`,
          subscriptionId: SUB_B,
          resourceGroup: 'rg-orders',
          location: 'westeurope',
          deleted: false,
        },
      ],
      failures: [],
    } as unknown as InventorySnapshot);

    expect(await e.inventory().subscriptions()).toEqual([SUB_B]);
    expect(calls(e.vaults, 'listSubscriptions')).toEqual([]);
  });
});

describe('Inventory with configured subscriptions', () => {
  it('never discovers: the configured list is the scope', async () => {
    const e = estate([SUB_B]);
    const inventory = e.inventory();

    const snapshot = await inventory.refresh();

    expect(calls(e.vaults, 'listSubscriptions')).toEqual([]);
    expect(snapshot.subscriptions).toEqual([SUB_B]);
    expect(names(snapshot)).toEqual(['kv-b-gone (deleted)', 'kv-b-orders']);
    expect(await inventory.subscriptions()).toEqual([SUB_B]);
  });

  it('does not serve a stored scope listed for other subscriptions: a removed one leaves at once', async () => {
    const before = estate([SUBSCRIPTION, SUB_B]);
    await before.inventory().refresh();
    // The setting changes to the first subscription only; a new instance starts on the same table.
    const after = new Inventory({
      vaults: before.vaults,
      store: before.store,
      clock: before.clock,
      subscriptions: [SUBSCRIPTION],
      log: before.log,
    });

    const snapshot = await after.current();

    expect(snapshot.subscriptions).toEqual([SUBSCRIPTION]);
    expect(names(snapshot)).toEqual(['kv-a-payments']);
    expect(await after.findByHost('kv-b-orders.vault.azure.net')).toBeUndefined();
  });
});

describe('sweepDeletedKeys without configured subscriptions', () => {
  function discoveringSweeper() {
    const tp = testPipeline({ keyVault: { latencyMs: 5 }, latencyMs: 2 });
    const facts = tp.vaults.addVault({ name: 'kv-b-orders', subscriptionId: SUB_B, resourceGroup: 'rg-b' });
    tp.keyVault.addVault(new URL(facts.vaultUri).hostname).createKey('kv-b-orders.vault.azure.net', 'cmk-b');
    tp.inventory = new Inventory({
      vaults: tp.vaults,
      store: tp.inventoryStore,
      clock: tp.clock,
      subscriptions: [],
      log: tp.log,
    });
    tp.deps.inventory = tp.inventory;
    tp.pipeline = new Pipeline(tp.deps);
    let runs = 0;
    const run = () =>
      sweepDeletedKeys(
        {
          config: {
            excludedVaults: [],
            invocationBudgetMs: 25_000,
            sweep: {
              schedule: DEFAULT_SWEEP_SCHEDULE,
              lookbackMinutes: 60,
              concurrency: 8,
              inventoryRefreshSeconds: 300,
            },
          },
          clock: tp.clock,
          pipeline: tp.pipeline,
          inventory: tp.inventory,
          keyVault: tp.keyVault,
          vaults: tp.vaults,
          ledger: tp.ledger,
          marks: tp.marks,
          sinks: tp.sinks,
          auditLog: tp.auditLog,
        },
        { invocationId: `sweep-${++runs}`, log: tp.log },
      );
    return { tp, run };
  }

  it('recovers a deleted key in each discovered subscription', async () => {
    const { tp, run } = discoveringSweeper();
    tp.keyVault.deleteKey(PAYMENTS_HOST, 'cmk-orders');
    tp.keyVault.deleteKey('kv-b-orders.vault.azure.net', 'cmk-b');
    tp.clock.advance(5_000);

    const report = await run();

    expect(report).toMatchObject({
      subscriptions: 2,
      vaults: 3,
      deletedKeysSeen: 2,
      recovered: 2,
      failures: [],
    });
    expect(tp.keyVault.keyState(PAYMENTS_HOST, 'cmk-orders')).toBe('active');
    expect(tp.keyVault.keyState('kv-b-orders.vault.azure.net', 'cmk-b')).toBe('active');
  });

  it('reports a failed discovery as a failure of the run and sweeps the previous scope', async () => {
    const { tp, run } = discoveringSweeper();
    await run();
    tp.vaults.fail('listSubscriptions', failures.transient(503));
    tp.keyVault.deleteKey('kv-b-orders.vault.azure.net', 'cmk-b');
    tp.clock.advance(600_000); // the inventory is stale: this run refreshes it

    const report = await run();

    expect(report.failures).toEqual([
      expect.objectContaining({
        target: 'subscriptions',
        step: 'inventory',
        detail: 'list subscriptions: transient',
      }),
    ]);
    expect(report).toMatchObject({ inventoryRefreshed: true, subscriptions: 2, recovered: 1 });
    expect(tp.keyVault.keyState('kv-b-orders.vault.azure.net', 'cmk-b')).toBe('active');
  });
});
