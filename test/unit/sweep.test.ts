/**
 * sweepDeletedKeys (lib/sweep.ts) against the in-memory fakes: what a run does to the estate, what
 * the sinks receive, what the ledger holds, which calls the sweep made, and its run report.
 */
import { DEFAULT_SWEEP_SCHEDULE } from '../../lib/config';
import type { AlertContent } from '../../lib/core/model';
import { Pipeline } from '../../lib/pipeline';
import { SEND_LEASE_MS } from '../../lib/operational';
import type {
  AlertMessage,
  CallFailure,
  DeletedKeyState,
  KeyObservation,
  KeyVaultData,
  RecoverOutcome,
} from '../../lib/ports';
import { sweepDeletedKeys, type SweepReport, type SweepRuntime } from '../../lib/sweep';
import {
  failures,
  ORDERS,
  ORDERS_HOST,
  PAYMENTS,
  PAYMENTS_HOST,
  testPipeline,
  type TestPipeline,
  type TestPipelineOptions,
} from '../fakes';

const MALLORY = {
  oid: '6f1c2d3e-4a5b-4c6d-8e7f-90a1b2c3d4e5',
  upn: 'mallory@contoso.example',
  ipAddress: '203.0.113.47',
  userAgent: 'azsdk-python-keyvault-keys/4.9.0',
};
const ROTATION_APP = {
  oid: '2c9d8e7f-6a5b-4c3d-9e1f-0a9b8c7d6e5f',
  appId: 'a1b2c3d4-e5f6-4a7b-8c9d-0e1f2a3b4c5d',
};

const READ_KEYS = 'keys get/list (access policy) or Microsoft.KeyVault/vaults/keys/read (RBAC)';

/**
 * A KeyVaultData over the fake that answers 403 for the vault hosts given (to the sweep's list and the
 * pipeline's observe read), and counts the list calls in flight.
 */
class GatedKeyVault implements KeyVaultData {
  readonly forbidden = new Set<string>();
  inFlight = 0;
  maxInFlight = 0;

  constructor(private readonly inner: KeyVaultData) {}

  async observeKey(vaultHost: string, keyName: string): Promise<KeyObservation> {
    const observed = await this.inner.observeKey(vaultHost, keyName);
    if (this.forbidden.has(vaultHost.toLowerCase()))
      return { state: 'unknown', failure: failures.forbidden(READ_KEYS) };
    return observed;
  }

  recoverKey(vaultHost: string, keyName: string, deadline: Date): Promise<RecoverOutcome> {
    return this.inner.recoverKey(vaultHost, keyName, deadline);
  }

  async listDeletedKeys(
    vaultHost: string,
  ): Promise<{ ok: true; keys: DeletedKeyState[] } | { ok: false; failure: CallFailure }> {
    this.inFlight++;
    this.maxInFlight = Math.max(this.maxInFlight, this.inFlight);
    try {
      const answer = await this.inner.listDeletedKeys(vaultHost);
      if (this.forbidden.has(vaultHost.toLowerCase()))
        return { ok: false, failure: failures.forbidden(READ_KEYS) };
      return answer;
    } finally {
      this.inFlight--;
    }
  }
}

interface Sweeper {
  tp: TestPipeline;
  gate: GatedKeyVault;
  config: SweepRuntime['config'];
  run(): Promise<SweepReport>;
}

let runs = 0;

function sweeper(
  options: TestPipelineOptions = {},
  sweep: Partial<SweepRuntime['config']['sweep']> & { budgetMs?: number } = {},
): Sweeper {
  const tp = testPipeline({ keyVault: { latencyMs: 5 }, latencyMs: 2, ...options });
  const gate = new GatedKeyVault(tp.keyVault);
  const config: SweepRuntime['config'] = {
    excludedVaults: options.excludedVaults ?? [],
    invocationBudgetMs: sweep.budgetMs ?? 25_000,
    sweep: {
      schedule: DEFAULT_SWEEP_SCHEDULE,
      lookbackMinutes: sweep.lookbackMinutes ?? 60,
      concurrency: sweep.concurrency ?? 8,
      inventoryRefreshSeconds: sweep.inventoryRefreshSeconds ?? 300,
    },
  };
  // The pipeline reads Key Vault through the same gate (a 403 vault is 403 for it too).
  tp.deps.keyVault = gate;
  tp.pipeline = new Pipeline(tp.deps);
  const s: Sweeper = {
    tp,
    gate,
    config,
    run: () =>
      sweepDeletedKeys(
        {
          config,
          clock: tp.clock,
          pipeline: tp.pipeline,
          inventory: tp.inventory,
          keyVault: gate,
          vaults: tp.vaults,
          ledger: tp.ledger,
          marks: tp.marks,
          sinks: tp.sinks,
          auditLog: tp.auditLog,
        },
        { invocationId: `sweep-${++runs}`, log: tp.log },
      ),
  };
  return s;
}

function contentOf(tp: TestPipeline, kind: 'primary' | 'attribution' | 'operational') {
  return tp
    .sink('teams')
    .ofKind(kind)
    .map((m) => ({ ...m, content: m.data as unknown as AlertContent }));
}

describe('sweepDeletedKeys', () => {
  it('recovers a deleted key no signal reported, at once, with an alert saying the caller is still being identified', async () => {
    const s = sweeper();
    const { tp } = s;
    const deletedOn = tp.keyVault.deleteKey(PAYMENTS_HOST, 'cmk-orders');
    tp.clock.advance(10_000);

    const report = await s.run();

    expect(tp.keyVault.keyState(PAYMENTS_HOST, 'cmk-orders')).toBe('active');
    expect(tp.keyVault.recoveries).toHaveLength(1);
    expect(tp.vaults.vault(PAYMENTS)!.enablePurgeProtection).toBe(true);
    const [primary, ...more] = contentOf(tp, 'primary');
    expect(more).toEqual([]);
    expect(primary!.content.who).toMatchObject({ known: false, summary: 'still being identified' });
    expect(primary!.content.what.signalTime).toBe(deletedOn.toISOString());
    expect(primary!.content.actions).toEqual(
      expect.arrayContaining([expect.objectContaining({ action: 'recover-key', status: 'succeeded' })]),
    );
    expect(primary!.content.humanActions.join(' ')).toMatch(/follow-up alert will name them/);
    expect(tp.incidents()).toEqual([
      expect.objectContaining({ state: 'awaiting-attribution', keyName: 'cmk-orders' }),
    ]);
    // One list per vault, the list row as the observe read: no GET of the key before the recovery.
    const ops = tp.keyVault.calls.map((c) => `${c.op} ${c.vaultHost}${c.keyName ? ` ${c.keyName}` : ''}`);
    expect(ops.filter((o) => o.startsWith('listDeletedKeys')).sort()).toEqual([
      `listDeletedKeys ${ORDERS_HOST}`,
      `listDeletedKeys ${PAYMENTS_HOST}`,
    ]);
    expect(ops.filter((o) => o.startsWith('observeKey'))).toEqual([]);
    expect(tp.vaults.calls.filter((c) => c.op === 'listDeletedVaults')).toHaveLength(1);
    expect(report).toMatchObject({
      vaults: 2,
      subscriptions: 1,
      deletedKeysSeen: 1,
      deletedVaultsSeen: 0,
      incidentsOpened: 1,
      recovered: 1,
      attributed: 0,
      reportedLate: 0,
      failures: [],
    });
  });

  it('sends exactly one attribution follow-up when a later run finds the AuditEvent caller in the workspace', async () => {
    const s = sweeper();
    const { tp } = s;
    const deletedOn = tp.keyVault.deleteKey(PAYMENTS_HOST, 'cmk-orders');
    tp.clock.advance(5_000);
    await s.run();

    // The next run: the record is not in the workspace yet.
    tp.clock.advance(30_000);
    const second = await s.run();
    expect(second.attributed).toBe(0);
    expect(contentOf(tp, 'attribution')).toEqual([]);
    expect(tp.auditLog.queries.filter((q) => q.op === 'findKeyDeletion')).toHaveLength(1);

    // Minutes later the record arrives (AuditEvent time: milliseconds after the whole-second deletedDate).
    tp.auditLog.add({
      vaultName: PAYMENTS,
      keyName: 'cmk-orders',
      time: new Date(deletedOn.getTime() + 412),
      caller: MALLORY,
    });
    tp.clock.advance(5 * 60_000);
    const third = await s.run();
    expect(third.attributed).toBe(1);
    for (let i = 0; i < 3; i++) {
      tp.clock.advance(30_000);
      expect((await s.run()).attributed).toBe(0);
    }

    const follow = contentOf(tp, 'attribution');
    expect(follow).toHaveLength(1);
    expect(follow[0]!.content.who).toMatchObject({ known: true, oid: MALLORY.oid, upn: MALLORY.upn });
    expect(follow[0]!.id).toBe(`${tp.incidents()[0]!.key.id}/attribution`);
    expect(contentOf(tp, 'primary')).toHaveLength(1);
    expect(tp.keyVault.recoveries).toHaveLength(1);
    expect(tp.incidents()).toEqual([expect.objectContaining({ state: 'closed' })]);
  });

  it('leaves a key with an unexpired sanction tag deleted, and recovers it with a critical alert when the caller is not allow-listed', async () => {
    const s = sweeper();
    const { tp } = s;
    tp.keyVault.setTags(PAYMENTS_HOST, 'rotation-temp-01', {
      'kvguard-sanctioned-delete': '2026-03-14T12:00:00Z',
    });
    tp.keyVault.setTags(PAYMENTS_HOST, 'cmk-invoices', {
      'kvguard-sanctioned-delete': '2026-03-14T09:00:00Z',
    });
    const deletedOn = tp.keyVault.deleteKey(PAYMENTS_HOST, 'rotation-temp-01');
    tp.keyVault.deleteKey(PAYMENTS_HOST, 'cmk-invoices');
    tp.clock.advance(4_000);

    await s.run();
    expect(tp.keyVault.keyState(PAYMENTS_HOST, 'rotation-temp-01')).toBe('deleted');
    // An expired tag is ignored: recovered.
    expect(tp.keyVault.keyState(PAYMENTS_HOST, 'cmk-invoices')).toBe('active');
    const left = contentOf(tp, 'primary').find((p) => p.content.what.keyName === 'rotation-temp-01')!;
    expect(left.content.decision.code).toBe('sanctioned-tag');

    tp.auditLog.add({
      vaultName: PAYMENTS,
      keyName: 'rotation-temp-01',
      time: new Date(deletedOn.getTime() + 250),
      caller: MALLORY,
    });
    tp.clock.advance(3 * 60_000);
    const report = await s.run();
    expect(report.attributed).toBe(1);
    expect(tp.keyVault.keyState(PAYMENTS_HOST, 'rotation-temp-01')).toBe('active');
    const follow = contentOf(tp, 'attribution').filter((a) => a.content.what.keyName === 'rotation-temp-01');
    expect(follow).toHaveLength(1);
    expect(follow[0]!.content.severity).toBe('critical');
    expect(follow[0]!.content.decision.code).toBe('sanctioned-tag-misused');
  });

  it('does not reopen a key a signal already handled', async () => {
    // The rotation app (allow-listed) deleted the key; the responder left it deleted and closed the incident.
    const s = sweeper({ allowList: { objectIds: [ROTATION_APP.oid] } });
    const { tp } = s;
    const deletedOn = tp.keyVault.deleteKey(PAYMENTS_HOST, 'rotation-temp-01');
    tp.clock.advance(2_000);
    const outcome = await tp.runOne({
      kind: 'keyDeleted',
      source: 'eventGrid',
      vaultName: PAYMENTS,
      vaultHost: PAYMENTS_HOST,
      keyName: 'rotation-temp-01',
      signalTime: new Date(deletedOn.getTime() + 300).toISOString(),
      caller: { oid: ROTATION_APP.oid, appId: ROTATION_APP.appId, idtyp: 'app' },
      eventId: 'evt-1',
      operationName: 'KeyDelete',
    });
    expect(outcome.decision?.code).toBe('allow-listed-caller');
    // The attacker deletes another key; the responder already recovered it before the sweep runs.
    tp.keyVault.deleteKey(PAYMENTS_HOST, 'cmk-invoices');
    tp.clock.advance(1_000);
    await tp.runOne({
      kind: 'keyDeleted',
      source: 'eventGrid',
      vaultName: PAYMENTS,
      vaultHost: PAYMENTS_HOST,
      keyName: 'cmk-invoices',
      signalTime: tp.clock.now().toISOString(),
      caller: { oid: MALLORY.oid, upn: MALLORY.upn },
      eventId: 'evt-2',
      operationName: 'KeyDelete',
    });
    const alertsBefore = tp.received().length;
    const recoveriesBefore = tp.keyVault.recoveries.length;

    tp.clock.advance(20_000);
    const report = await s.run();
    tp.clock.advance(30_000);
    await s.run();

    expect(report.deletedKeysSeen).toBe(1);
    expect(report.incidentsOpened).toBe(0);
    expect(tp.received()).toHaveLength(alertsBefore);
    expect(tp.keyVault.recoveries).toHaveLength(recoveriesBefore);
    expect(tp.keyVault.keyState(PAYMENTS_HOST, 'rotation-temp-01')).toBe('deleted');
    expect(tp.incidents()).toHaveLength(2);
  });

  it('leaves a deletion another delivery is working on to it, and resumes an unfinished one nobody holds', async () => {
    const s = sweeper();
    const { tp } = s;
    const deletedOn = tp.keyVault.deleteKey(PAYMENTS_HOST, 'cmk-orders');
    // A responder delivery claimed the incident and is still at work (its lease is live)...
    await tp.ledger.claim('contoso-payments', `key_contoso-payments_cmk-orders_${compact(deletedOn)}`, {
      ...placeholder(deletedOn),
      lease: { owner: 'responder', until: new Date(tp.clock.now().getTime() + 30_000).toISOString() },
    });
    tp.clock.advance(1_000);
    const busy = await s.run();
    expect(busy.incidentsOpened + busy.incidentsResumed).toBe(0);
    expect(tp.keyVault.recoveries).toEqual([]);
    // ...then it died: its lease ran out, and the next run finishes the incident.
    tp.clock.advance(60_000);
    const resumed = await s.run();
    expect(resumed.incidentsResumed).toBe(1);
    expect(tp.keyVault.keyState(PAYMENTS_HOST, 'cmk-orders')).toBe('active');
    expect(contentOf(tp, 'primary')).toHaveLength(1);
  });

  it('reports a deletion older than the look-back once, does not recover it, and does not report it again', async () => {
    const s = sweeper({}, { lookbackMinutes: 60 });
    const { tp } = s;
    const deletedOn = tp.keyVault.deleteKey(PAYMENTS_HOST, 'cmk-invoices', {
      at: new Date(tp.clock.now().getTime() - 2 * 3600_000),
    });

    const first = await s.run();
    tp.clock.advance(30_000);
    const second = await s.run();
    tp.clock.advance(10 * 60_000);
    await s.run();

    expect(tp.keyVault.keyState(PAYMENTS_HOST, 'cmk-invoices')).toBe('deleted');
    expect(tp.keyVault.writes).toEqual([]);
    expect(tp.vaults.writes).toEqual([]);
    const primaries = contentOf(tp, 'primary');
    expect(primaries).toHaveLength(1);
    const alert = primaries[0]!.content;
    expect(alert.title).toBe('Key cmk-invoices deleted in vault contoso-payments: found late, not recovered');
    expect(alert.severity).toBe('warning');
    expect(alert.decision.action).toBe('alert-only');
    expect(alert.decision.reason).toContain(`deleted at ${deletedOn.toISOString()}`);
    expect(alert.decision.reason).toContain('does not recover it');
    expect(alert.actions).toEqual([]);
    expect(alert.humanActions[0]).toContain(
      'az keyvault key recover --vault-name contoso-payments --name cmk-invoices',
    );
    expect(tp.sink('alerts-topic').ofKind('primary')).toHaveLength(1);
    expect(tp.incidents()).toEqual([
      expect.objectContaining({ state: 'closed', reportOnly: expect.anything() }),
    ]);
    expect(first).toMatchObject({ incidentsOpened: 1, reportedLate: 1, recovered: 0 });
    expect(second).toMatchObject({ deletedKeysSeen: 1, incidentsOpened: 0, reportedLate: 0 });
    // Found late means no attribution is awaited either: nobody queries the workspace about it.
    expect(tp.auditLog.queries).toEqual([]);
  });

  it('reports a vault it cannot read (403) once a day, and still sweeps the others', async () => {
    const s = sweeper();
    const { tp } = s;
    s.gate.forbidden.add(ORDERS_HOST);
    tp.keyVault.deleteKey(PAYMENTS_HOST, 'cmk-orders');
    tp.clock.advance(3_000);

    const first = await s.run();
    tp.clock.advance(30_000);
    const second = await s.run();

    expect(tp.keyVault.keyState(PAYMENTS_HOST, 'cmk-orders')).toBe('active');
    expect(first.recovered).toBe(1);
    expect(first.failures).toEqual([
      expect.objectContaining({ target: 'contoso-orders', step: 'list-deleted-keys', kind: 'forbidden' }),
    ]);
    expect(second.failures).toHaveLength(1);
    let operational = contentOf(tp, 'operational');
    expect(operational).toHaveLength(1);
    expect(operational[0]!.title).toBe('kvguard cannot read the deleted keys of vault contoso-orders');
    expect(operational[0]!.text.join(' ')).toContain('Microsoft.KeyVault/vaults/keys/read');
    expect(tp.sink('alerts-topic').ofKind('operational')).toHaveLength(1);

    // The next day, while it lasts: one more.
    tp.clock.advance(24 * 3600_000);
    await s.run();
    operational = contentOf(tp, 'operational');
    expect(operational).toHaveLength(2);
    expect(new Set(operational.map((o) => o.id)).size).toBe(2);
  });

  it('retries an operational alert a sink did not take on the next run, and sends it once', async () => {
    const s = sweeper();
    const { tp } = s;
    s.gate.forbidden.add(ORDERS_HOST);
    tp.sink('teams').failNext(1);
    await s.run();
    expect(tp.sink('teams').ofKind('operational')).toHaveLength(0);
    tp.clock.advance(30_000);
    await s.run();
    tp.clock.advance(30_000);
    await s.run();
    expect(tp.sink('teams').ofKind('operational')).toHaveLength(1);
  });

  it('recovers a deleted vault it finds in the deleted-vaults list', async () => {
    const s = sweeper();
    const { tp } = s;
    await tp.inventory.refresh();
    tp.vaults.deleteVault(PAYMENTS);
    tp.clock.advance(8_000);
    const listsBefore = tp.vaults.calls.filter((c) => c.op === 'listDeletedVaults').length;

    const report = await s.run();

    expect(tp.vaults.vault(PAYMENTS)).toBeDefined();
    expect(tp.vaults.deletedVault(PAYMENTS)).toBeUndefined();
    expect(tp.vaults.vault(PAYMENTS)!.enablePurgeProtection).toBe(true);
    expect(report).toMatchObject({ deletedVaultsSeen: 1, incidentsOpened: 1, recovered: 1, failures: [] });
    // Its keys were not listed (the vault was deleted), the other vault's were.
    expect(tp.keyVault.calls.filter((c) => c.op === 'listDeletedKeys').map((c) => c.vaultHost)).toEqual([
      ORDERS_HOST,
    ]);
    // One deleted-vaults list per subscription; the pipeline reused it (no list of its own before recovering).
    const recoverAt = tp.vaults.calls.findIndex((c) => c.op === 'recoverVault');
    expect(tp.vaults.calls.slice(0, recoverAt).filter((c) => c.op === 'listDeletedVaults')).toHaveLength(
      listsBefore + 1,
    );
    const primary = contentOf(tp, 'primary');
    expect(primary).toHaveLength(1);
    expect(primary[0]!.content.decision.code).toBe('vault-deleted');
    expect(primary[0]!.content.title).toBe('Vault contoso-payments deleted: recovered');

    tp.clock.advance(30_000);
    await s.run();
    expect(tp.vaults.calls.filter((c) => c.op === 'recoverVault')).toHaveLength(1);
  });

  it('reports a vault deleted before the look-back once, and does not recover it', async () => {
    const s = sweeper();
    const { tp } = s;
    await tp.inventory.refresh();
    tp.vaults.deleteVault(PAYMENTS, { at: new Date(tp.clock.now().getTime() - 3 * 3600_000) });
    const first = await s.run();
    tp.clock.advance(30_000);
    await s.run();
    expect(tp.vaults.deletedVault(PAYMENTS)).toBeDefined();
    expect(tp.vaults.writes).toEqual([]);
    expect(first).toMatchObject({ deletedVaultsSeen: 1, reportedLate: 1, recovered: 0 });
    const primary = contentOf(tp, 'primary');
    expect(primary).toHaveLength(1);
    expect(primary[0]!.content.title).toBe('Vault contoso-payments deleted: found late, not recovered');
    expect(primary[0]!.content.humanActions[0]).toContain('az keyvault recover --name contoso-payments');
  });

  it('leaves excluded vaults alone: no listing, no incident', async () => {
    const s = sweeper({ excludedVaults: ['contoso-orders'] });
    const { tp } = s;
    tp.keyVault.deleteKey(ORDERS_HOST, 'cmk-ledger');
    await s.run();
    expect(tp.keyVault.callsTo(ORDERS_HOST)).toEqual([]);
    expect(tp.keyVault.keyState(ORDERS_HOST, 'cmk-ledger')).toBe('deleted');
    expect(tp.received()).toEqual([]);
  });

  it('keeps to its concurrency and refreshes the inventory only on its own cadence', async () => {
    const vaults = Array.from({ length: 20 }, (_, i) => ({ name: `kv-many-${i}`, resourceGroup: 'rg-many' }));
    const s = sweeper({ vaults }, { concurrency: 3, inventoryRefreshSeconds: 300 });
    const { tp } = s;
    tp.keyVault.createKey('kv-many-7.vault.azure.net', 'k1').createKey('kv-many-13.vault.azure.net', 'k2');
    tp.keyVault.deleteKey('kv-many-7.vault.azure.net', 'k1');
    tp.keyVault.deleteKey('kv-many-13.vault.azure.net', 'k2');

    const first = await s.run();
    expect(first).toMatchObject({ vaults: 20, inventoryRefreshed: true, recovered: 2, failures: [] });
    expect(s.gate.maxInFlight).toBe(3);
    tp.clock.advance(30_000);
    expect((await s.run()).inventoryRefreshed).toBe(false);
    tp.clock.advance(300_000);
    expect((await s.run()).inventoryRefreshed).toBe(true);
    expect(tp.vaults.calls.filter((c) => c.op === 'listVaults')).toHaveLength(2);
  });

  it('stays within its budget: a recovery still running is left to the next run', async () => {
    const s = sweeper({ keyVault: { latencyMs: 5, recoverLagMs: 8_000 } }, { budgetMs: 5_000 });
    const { tp } = s;
    tp.keyVault.deleteKey(PAYMENTS_HOST, 'cmk-orders');
    const started = tp.clock.now().getTime();
    const first = await s.run();
    expect(tp.clock.now().getTime() - started).toBeLessThanOrEqual(5_000);
    expect(first.failures).toEqual([expect.objectContaining({ step: 'incident', kind: 'error' })]);
    expect(contentOf(tp, 'primary')).toEqual([]);
    tp.clock.advance(30_000);
    const second = await s.run();
    expect(second.incidentsResumed).toBe(1);
    expect(tp.keyVault.keyState(PAYMENTS_HOST, 'cmk-orders')).toBe('active');
    expect(tp.keyVault.recoveries).toHaveLength(1);
    const primary = contentOf(tp, 'primary');
    expect(primary).toHaveLength(1);
    expect(primary[0]!.content.actions).toEqual(
      expect.arrayContaining([expect.objectContaining({ action: 'recover-key', status: 'succeeded' })]),
    );
  });
});

describe('one operational alert per vault and day, shared by the sweep and the pipeline', () => {
  /** contoso-orders answers 403 to every read of its keys; an attacker deleted its key. */
  function lockedVault() {
    const s = sweeper();
    const { tp } = s;
    s.gate.forbidden.add(ORDERS_HOST);
    const deletedOn = tp.keyVault.deleteKey(ORDERS_HOST, 'cmk-ledger');
    tp.clock.advance(2_000);
    let signals = 0;
    const signal = () =>
      tp.runOne({
        kind: 'keyDeleted',
        source: 'eventGrid',
        vaultName: ORDERS,
        vaultHost: ORDERS_HOST,
        keyName: 'cmk-ledger',
        signalTime: deletedOn.toISOString(),
        caller: { oid: MALLORY.oid, upn: MALLORY.upn },
        eventId: `evt-locked-${++signals}`,
        operationName: 'KeyDelete',
      });
    return { ...s, signal };
  }

  /** Each sink's operational alerts (delivered). */
  function operational(tp: TestPipeline): Record<string, AlertMessage[]> {
    return Object.fromEntries(tp.sinks.map((sink) => [sink.name, sink.ofKind('operational')]));
  }

  /** Exactly one operational alert per sink, the same alert everywhere; returns it. */
  function expectOnePerSink(tp: TestPipeline): AlertMessage {
    const bySink = operational(tp);
    for (const name of Object.keys(bySink)) expect({ [name]: bySink[name]!.length }).toEqual({ [name]: 1 });
    const [first, ...others] = Object.values(bySink).map((alerts) => alerts[0]!);
    for (const other of others) expect(other).toEqual(first);
    return first!;
  }

  it('the pipeline first: its alert is the one, and the sweep sends none', async () => {
    const s = lockedVault();
    const { tp } = s;

    const outcome = await s.signal();
    tp.clock.advance(5_000);
    await s.signal();
    tp.clock.advance(30_000);
    const report = await s.run();
    tp.clock.advance(30_000);
    await s.run();

    expect(outcome).toMatchObject({ status: 'failed', vault: ORDERS });
    expect(outcome.reason).toContain('Microsoft.KeyVault/vaults/keys/read');
    expect(report.failures).toEqual([
      expect.objectContaining({ target: ORDERS, step: 'list-deleted-keys', kind: 'forbidden' }),
    ]);
    const alert = expectOnePerSink(tp);
    expect(alert.severity).toBe('critical');
    expect(alert.title).toBe('kvguard cannot respond in vault contoso-orders');
    expect(alert.text[0]).toContain('kvguard received KeyDelete for vault contoso-orders but could not act');
    expect(alert.text.join(' ')).toContain('Microsoft.KeyVault/vaults/keys/read');
    expect(alert.text.join(' ')).toContain('To do:');
    expect(alert.id).toContain('contoso-orders');
  });

  it('the sweep first: its alert is the one, and the pipeline sends none', async () => {
    const s = lockedVault();
    const { tp } = s;

    await s.run();
    tp.clock.advance(5_000);
    const outcome = await s.signal();
    tp.clock.advance(5_000);
    await s.signal();

    expect(outcome.status).toBe('failed');
    const alert = expectOnePerSink(tp);
    expect(alert.title).toBe('kvguard cannot read the deleted keys of vault contoso-orders');
    expect(alert.text.join(' ')).toContain('This alert is sent once a day while the problem lasts.');
  });

  it('sends one more the next day, whichever path sees it then', async () => {
    const s = lockedVault();
    const { tp } = s;
    await s.signal();
    await s.run();
    const firstDay = expectOnePerSink(tp);

    tp.clock.advance(24 * 3600_000);
    await s.run();
    tp.clock.advance(5_000);
    await s.signal();

    for (const [name, alerts] of Object.entries(operational(tp))) {
      expect({ [name]: alerts.length }).toEqual({ [name]: 2 });
      expect(alerts[0]).toEqual(firstDay);
      expect(alerts[1]!.id).not.toBe(firstDay.id);
      expect(alerts[1]!.title).toBe('kvguard cannot read the deleted keys of vault contoso-orders');
    }
  });

  it('an alert a sink did not take is sent again by the other path, to that sink only, as the same alert', async () => {
    const s = lockedVault();
    const { tp } = s;
    tp.sink('teams').failNext(1);

    await s.signal();
    expect(tp.sink('teams').ofKind('operational')).toHaveLength(0);
    expect(tp.sink('alerts-topic').ofKind('operational')).toHaveLength(1);
    tp.clock.advance(30_000);
    await s.run();
    tp.clock.advance(30_000);
    await s.run();
    await s.signal();

    const alert = expectOnePerSink(tp);
    // The pipeline's alert, as it composed it, though the sweep delivered it to Teams.
    expect(alert.title).toBe('kvguard cannot respond in vault contoso-orders');
    expect(tp.sink('teams').attempts.filter((a) => a.kind === 'operational')).toHaveLength(2);
    expect(tp.sink('alerts-topic').attempts.filter((a) => a.kind === 'operational')).toHaveLength(1);
  });

  it('the sweep first, its delivery failed: the pipeline sends it again', async () => {
    const s = lockedVault();
    const { tp } = s;
    tp.sink('alerts-topic').failNext(1);

    await s.run();
    expect(tp.sink('alerts-topic').ofKind('operational')).toHaveLength(0);
    tp.clock.advance(5_000);
    await s.signal();

    const alert = expectOnePerSink(tp);
    expect(alert.title).toBe('kvguard cannot read the deleted keys of vault contoso-orders');
  });

  it('concurrent signals of the vault send it once, while its first sender is still sending', async () => {
    const s = lockedVault();
    const { tp } = s;
    // Slow sinks: the others see the claim while its alert is on its way.
    for (const sink of tp.sinks) sink.onSend = () => tp.clock.sleep(2_000);

    const outcomes = await Promise.all([s.signal(), s.signal(), s.signal(), s.run()]);

    expect(outcomes.slice(0, 3).map((o) => (o as { status: string }).status)).toEqual([
      'failed',
      'failed',
      'failed',
    ]);
    expectOnePerSink(tp);
    for (const sink of tp.sinks)
      expect(sink.attempts.filter((a) => a.kind === 'operational')).toHaveLength(1);
  });

  it('takes over a claim whose sender died mid-way once its lease is over', async () => {
    const s = lockedVault();
    const { tp } = s;
    // The first sender's send fails on Teams, and it dies before it can say so in the mark.
    tp.sink('teams').failNext(1);
    tp.marks.failNext('update');
    await s.signal();
    expect(tp.sink('teams').ofKind('operational')).toHaveLength(0);

    // Still within its lease: left alone.
    tp.clock.advance(60_000);
    await s.signal();
    expect(tp.sink('teams').ofKind('operational')).toHaveLength(0);

    tp.clock.advance(SEND_LEASE_MS);
    await s.signal();
    const teams = tp.sink('teams').ofKind('operational');
    expect(teams).toHaveLength(1);
    // Who took what was lost with the sender: every sink gets it again, with the same id.
    expect(tp.sink('alerts-topic').ids()).toEqual([teams[0]!.id, teams[0]!.id]);
  });
});

function compact(d: Date): string {
  return d.toISOString().replace(/[-:]/g, '').toLowerCase();
}

/** The row a delivery claims before it acts (what lib/pipeline.ts `incident` writes). */
function placeholder(deletedOn: Date) {
  const deletedDate = deletedOn.toISOString();
  const id = `key_contoso-payments_cmk-orders_${compact(deletedOn)}`;
  return {
    version: 1 as const,
    key: { kind: 'key-deletion' as const, partitionKey: 'contoso-payments', id },
    vaultName: 'contoso-payments',
    keyName: 'cmk-orders',
    deletedDate,
    state: 'open' as const,
    trigger: {
      kind: 'sweptDeletedKey' as const,
      source: 'sweep' as const,
      vaultName: 'contoso-payments',
      vaultHost: PAYMENTS_HOST,
      keyName: 'cmk-orders',
      deletedDate,
      signalTime: deletedDate,
      eventId: 'sweep-x',
      operationName: 'sweep',
    },
    observedKey: { state: 'deleted' as const, deletedDate, tags: {} },
    alerts: {},
    observeMode: false,
    signals: 1,
    createdAt: deletedDate,
    updatedAt: deletedDate,
  };
}
