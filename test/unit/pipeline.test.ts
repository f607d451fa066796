/**
 * The pipeline of design §2 (lib/pipeline.ts) against the in-memory fakes of test/fakes: what happens
 * to the estate (the fakes' state and write logs), what the ledger holds, and what every sink
 * received. Triggers are built from realistic inputs through `normalise()` (the AuditEvent fixtures,
 * the forwarder's CloudEvent, ARM and Key Vault events, common alert payloads, sweep rows).
 */
import { keyDeletionIncident } from '../../lib/core/incident';
import type { AlertContent, KeyTrigger, NormaliseResult, Trigger, VaultTrigger } from '../../lib/core/model';
import {
  fromSweptDeletedKey,
  fromSweptDeletedVault,
  normalise,
  toSignalCloudEvent,
} from '../../lib/core/normalise';
import { RetryableError, type TriggerOutcome } from '../../lib/pipeline';
import type { AlertMessage } from '../../lib/ports';
import {
  failures,
  ORDERS,
  ORDERS_HOST,
  PAYMENTS,
  PAYMENTS_HOST,
  SUBSCRIPTION,
  testPipeline,
  vaultResourceId,
  type TestPipeline,
} from '../fakes';
import { clone, loadJson } from './core-fixtures';

// ---------------------------------------------------------------------------------------------
// Realistic inputs
// ---------------------------------------------------------------------------------------------

/** The callers the AuditEvent fixtures name. */
const MALLORY = {
  oid: '6f1c2d3e-4a5b-4c6d-8e7f-90a1b2c3d4e5',
  upn: 'mallory@contoso.example',
  cliAppId: '04b07795-8ddb-461a-bbee-02f9e1bf7b46',
  ip: '203.0.113.47',
  userAgent: 'azsdk-python-keyvault-keys/4.9.0 Python/3.12.3 (Linux-6.8.0-x86_64-with-glibc2.39)',
};
const ROTATION_APP = {
  oid: '2c9d8e7f-6a5b-4c3d-9e1f-0a9b8c7d6e5f',
  appId: 'a1b2c3d4-e5f6-4a7b-8c9d-0e1f2a3b4c5d',
  ip: '198.51.100.23',
};
const TRUDY = {
  oid: '9e8d7c6b-5a4f-4e3d-8c2b-1a0f9e8d7c6b',
  upn: 'trudy@contoso.example',
  ip: '192.0.2.150',
};
const EVE = { oid: '0b1c2d3e-4f5a-4b6c-8d7e-9f0a1b2c3d4e', upn: 'eve@contoso.example', ip: '203.0.113.99' };

const PAYMENTS_ID = vaultResourceId(SUBSCRIPTION, 'rg-payments', PAYMENTS);
const WORKSPACE_ID = `/subscriptions/${SUBSCRIPTION}/resourceGroups/rg-security/providers/Microsoft.OperationalInsights/workspaces/kvguard-logs`;
const RECOVER_PERMISSION =
  'keys recover (access policy) or Microsoft.KeyVault/vaults/keys/recover/action (RBAC)';

type RecordName =
  'keydelete-user-short-claims' | 'keydelete-app-uri-claims' | 'keydelete-forbidden' | 'keypurge-success';

function record(name: RecordName): Record<string, unknown> {
  return clone(loadJson(`auditevent/${name}.json`)) as Record<string, unknown>;
}

function only(results: NormaliseResult[]): Trigger {
  expect(results).toHaveLength(1);
  const r = results[0]!;
  if (r.kind === 'rejection') throw new Error(`normalise rejected the input: ${r.reason}: ${r.message}`);
  return r;
}

function keyTrigger(results: NormaliseResult[]): KeyTrigger {
  const t = only(results);
  if (t.kind === 'queryNeeded' || !('keyName' in t)) throw new Error(`not a key trigger: ${t.kind}`);
  return t;
}

/** The trigger the diagnostic log's record becomes (auditLog entry point). */
function fromRecord(name: RecordName, via: 'auditLog' | 'replay' = 'auditLog'): KeyTrigger {
  return keyTrigger(normalise(record(name), via));
}

/** The forwarder's CloudEvent for the record, as the responder receives it from the signals topic. */
function forwarded(name: RecordName): KeyTrigger {
  const ce = toSignalCloudEvent(record(name));
  if ('kind' in ce) throw new Error(`the forwarder rejected the record: ${ce.message}`);
  return keyTrigger(normalise({ specversion: '1.0', ...ce }, 'eventGrid'));
}

/** The key is deleted as the record says (in the fake vault), and the record's trigger. */
function deletedAsIn(tp: TestPipeline, name: RecordName): KeyTrigger {
  const trigger = fromRecord(name);
  tp.keyVault.deleteKey(trigger.vaultHost, trigger.keyName, { at: trigger.signalTime });
  return trigger;
}

function sweepRow(tp: TestPipeline, host: string, keyName: string): VaultTrigger {
  const deletedDate = tp.keyVault.deletedOn(host, keyName);
  if (!deletedDate) throw new Error(`${keyName} is not deleted`);
  const t = fromSweptDeletedKey({ vaultUrl: `https://${host}/`, keyName, deletedDate });
  if (t.kind === 'rejection') throw new Error(t.message);
  return t;
}

function aliasEvent(keyId: string, time: string, caller?: Record<string, string>): unknown {
  return {
    id: 'b7d5c1e2-3f4a-4b5c-8d6e-7f8091a2b3c4',
    eventType: 'Microsoft.KeyVault.vaults.keys.delete',
    subject: keyId,
    eventTime: time,
    data: { keyId, time, ...(caller ? { caller } : {}) },
    dataVersion: '1',
    metadataVersion: '1',
  };
}

function commonAlert(options: {
  dimensions: Array<{ name: string; value: string }>;
  windowStart: string;
  windowEnd: string;
}): unknown {
  return {
    schemaId: 'azureMonitorCommonAlertSchema',
    data: {
      essentials: {
        alertId: `/subscriptions/${SUBSCRIPTION}/providers/Microsoft.AlertsManagement/alerts/0b5e8d43-6f2a-4c1e-9a7b-3d2c1b0a9f8e`,
        alertRule: 'kvguard-key-deleted',
        severity: 'Sev1',
        signalType: 'Log',
        monitorCondition: 'Fired',
        monitoringService: 'Log Alerts V2',
        alertTargetIDs: [WORKSPACE_ID.toLowerCase()],
        firedDateTime: options.windowEnd,
      },
      alertContext: {
        conditionType: 'LogQueryCriteria',
        condition: {
          windowSize: 'PT5M',
          windowStartTime: options.windowStart,
          windowEndTime: options.windowEnd,
          allOf: [
            {
              searchQuery: 'AZKVAuditLogs | where OperationName == "KeyDelete"',
              dimensions: options.dimensions,
              linkToSearchResultsAPI: 'https://evil.test/v1/query',
            },
          ],
        },
      },
    },
  };
}

/** An ARM resource event for a vault, from Microsoft's sample with the vault and a real caller put in. */
function armEvent(
  kind: 'delete' | 'write',
  vaultId: string,
  time: string,
  caller: { oid: string; upn: string; ip: string },
): unknown {
  const sample = file(
    kind === 'delete' ? 'resources-ResourceDeleteSuccess.json' : 'resources-ResourceWriteSuccess.json',
  );
  const event = (sample as Array<Record<string, unknown>>)[0]!;
  const data = event.data as Record<string, Record<string, unknown>>;
  const op = `Microsoft.KeyVault/vaults/${kind}`;
  event.id =
    kind === 'delete' ? '5b7e0c5d-7f52-4a43-9c31-2e1d6f4b8a01' : '8c2d4e6f-1a3b-4c5d-9e7f-0a1b2c3d4e5f';
  event.subject = vaultId;
  event.eventTime = time;
  event.topic = `/subscriptions/${SUBSCRIPTION}`;
  data.authorization!.scope = vaultId;
  data.authorization!.action = op;
  data.claims = {
    ...data.claims,
    'http://schemas.microsoft.com/identity/claims/objectidentifier': caller.oid,
    'http://schemas.xmlsoap.org/ws/2005/05/identity/claims/upn': caller.upn,
    'http://schemas.xmlsoap.org/ws/2005/05/identity/claims/name': caller.upn,
    appid: MALLORY.cliAppId,
    ipaddr: caller.ip,
    name: 'Eve Example',
  };
  data.httpRequest = {
    ...data.httpRequest,
    clientIpAddress: caller.ip,
    method: kind === 'delete' ? 'DELETE' : 'PUT',
  };
  (data as Record<string, unknown>).resourceUri = vaultId;
  (data as Record<string, unknown>).operationName = op;
  (data as Record<string, unknown>).resourceProvider = 'Microsoft.KeyVault';
  return event;
}

function file(name: string): unknown {
  return clone(loadJson(`azure-specs/docs-samples/event-grid/${name}`));
}

/** `Microsoft.KeyVault.VaultAccessPolicyChanged` from the vault's system topic (PascalCase data). */
function accessPolicyChanged(time: string): unknown {
  return {
    id: 'c4a1e2f3-9b8d-4e7f-a6c5-b4d3e2f1a0b9',
    topic: PAYMENTS_ID,
    subject: PAYMENTS,
    eventType: 'Microsoft.KeyVault.VaultAccessPolicyChanged',
    eventTime: time,
    data: {
      Id: `https://${PAYMENTS_HOST}/`,
      VaultName: PAYMENTS,
      ObjectType: 'Vault',
      ObjectName: PAYMENTS,
      Version: '',
      NBF: '',
      EXP: '',
    },
    dataVersion: '1',
    metadataVersion: '1',
  };
}

/**
 * The same change made through ARM (`PUT …/accessPolicies/add`): `ResourceWriteSuccess` for
 * `Microsoft.KeyVault/vaults/accessPolicies/write`, with the caller's claims.
 */
function accessPolicyWrite(time: string, caller: { oid: string; upn: string; ip: string }): unknown {
  const event = armEvent('write', PAYMENTS_ID, time, caller) as Record<string, unknown>;
  const data = event.data as Record<string, unknown>;
  const op = 'Microsoft.KeyVault/vaults/accessPolicies/write';
  event.id = '3e9f1a2b-4c5d-4e6f-8a7b-9c0d1e2f3a4b';
  event.subject = `${PAYMENTS_ID}/accessPolicies/add`;
  data.resourceUri = event.subject;
  data.operationName = op;
  (data.authorization as Record<string, unknown>).action = op;
  return event;
}

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

function content(message: AlertMessage): AlertContent {
  return message.data as unknown as AlertContent;
}

/** Event Grid's redelivery: after a failed invocation, again 10 s, 30 s, 1 min, 5 min, ... later. */
const EVENT_GRID_BACKOFF_MS = [10_000, 30_000, 60_000, 300_000, 600_000, 1_800_000, 3_600_000];

async function deliverLikeEventGrid(
  tp: TestPipeline,
  trigger: Trigger,
  options: { restartAfterFailure?: boolean } = {},
): Promise<{ outcomes: TriggerOutcome[]; errors: unknown[] }> {
  const errors: unknown[] = [];
  for (let attempt = 0; ; attempt++) {
    try {
      return { outcomes: await tp.run(trigger), errors };
    } catch (error) {
      errors.push(error);
      if (attempt >= EVENT_GRID_BACKOFF_MS.length) throw error;
      if (options.restartAfterFailure) tp.restart();
      tp.clock.advance(EVENT_GRID_BACKOFF_MS[attempt]!);
    }
  }
}

/** Resolves once `condition` holds (checked between turns of the event loop). */
async function until(condition: () => boolean, what: string): Promise<void> {
  for (let i = 0; i < 10_000; i++) {
    if (condition()) return;
    await new Promise((resolve) => setImmediate(resolve));
  }
  throw new Error(`timed out waiting until ${what}`);
}

function gate(): { wait: () => Promise<void>; open: () => void } {
  let open!: () => void;
  const opened = new Promise<void>((resolve) => (open = resolve));
  return { wait: () => opened, open };
}

function primaries(tp: TestPipeline, sinkName = 'teams'): AlertMessage[] {
  return tp.sink(sinkName).ofKind('primary');
}

function attributions(tp: TestPipeline, sinkName = 'teams'): AlertMessage[] {
  return tp.sink(sinkName).ofKind('attribution');
}

/** Every sink received exactly these alert ids, once each. */
function expectEverySinkReceived(tp: TestPipeline, ids: string[]): void {
  for (const sink of tp.sinks) expect({ sink: sink.name, ids: sink.ids() }).toEqual({ sink: sink.name, ids });
}

function expectNoWrites(tp: TestPipeline): void {
  expect(tp.keyVault.writes).toEqual([]);
  expect(tp.vaults.writes).toEqual([]);
}

const PAYMENTS_ORDERS_INCIDENT = (deletedOn: Date) =>
  keyDeletionIncident(PAYMENTS, 'cmk-orders', deletedOn).id;

// ---------------------------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------------------------

describe('a key deleted by a principal outside the allow-list', () => {
  it('is recovered, the vault gets purge protection, and every sink gets one alert naming the caller', async () => {
    const tp = testPipeline();
    const trigger = deletedAsIn(tp, 'keydelete-user-short-claims');
    const incidentId = PAYMENTS_ORDERS_INCIDENT(tp.keyVault.deletedOn(PAYMENTS_HOST, 'cmk-orders')!);

    const outcome = await tp.runOne(trigger);

    expect(outcome).toMatchObject({
      status: 'acted',
      vault: PAYMENTS,
      key: 'cmk-orders',
      incidentId,
      decision: { action: 'recover-key', code: 'caller-not-allow-listed' },
      results: [
        { action: 'recover-key', status: 'succeeded' },
        { action: 'enable-purge-protection', status: 'succeeded' },
      ],
      alerts: [`${incidentId}/primary`],
    });
    expect(tp.keyVault.keyState(PAYMENTS_HOST, 'cmk-orders')).toBe('active');
    expect(tp.keyVault.recoveries).toHaveLength(1);
    expect(tp.vaults.vault(PAYMENTS)!.enablePurgeProtection).toBe(true);
    expectEverySinkReceived(tp, [`${incidentId}/primary`]);
    const alert = content(primaries(tp)[0]!);
    expect(alert.who).toMatchObject({
      known: true,
      upn: MALLORY.upn,
      oid: MALLORY.oid,
      ipAddress: MALLORY.ip,
      userAgent: MALLORY.userAgent,
    });
    expect(alert.what).toMatchObject({
      keyName: 'cmk-orders',
      vaultName: PAYMENTS,
      signalTime: trigger.signalTime,
    });
    expect(alert.actions.map((a) => [a.action, a.status])).toEqual([
      ['recover-key', 'succeeded'],
      ['enable-purge-protection', 'succeeded'],
    ]);
    expect(alert.severity).toBe('warning');
    const text = primaries(tp)[0]!.text.join('\n');
    for (const fact of [MALLORY.upn, MALLORY.oid, MALLORY.ip, MALLORY.userAgent, 'cmk-orders'])
      expect(text).toContain(fact);
    expect(tp.ledger.value(PAYMENTS, incidentId)).toMatchObject({
      state: 'closed',
      caller: { upn: MALLORY.upn },
    });
  });

  it('logs the decision and the outcome with the incident id', async () => {
    const tp = testPipeline();
    const outcome = await tp.runOne(deletedAsIn(tp, 'keydelete-user-short-claims'));
    const incidentLines = tp.logs.filter(
      (l) => l.entry.incident === outcome.incidentId && l.level === 'info',
    );
    expect(
      incidentLines.some(
        (l) => l.entry.action === 'recover-key' && l.entry.decisionCode === 'caller-not-allow-listed',
      ),
    ).toBe(true);
    expect(incidentLines.some((l) => Array.isArray(l.entry.results))).toBe(true);
  });

  const shapes: Array<[string, (tp: TestPipeline) => Trigger]> = [
    ['the AuditEvent record (diagnostic log)', () => fromRecord('keydelete-user-short-claims')],
    ['the forwarder CloudEvent from the signals topic', () => forwarded('keydelete-user-short-claims')],
    ['a replayed AuditEvent record', () => fromRecord('keydelete-user-short-claims', 'replay')],
    [
      'the alias event type Microsoft.KeyVault.vaults.keys.delete',
      () =>
        only(
          normalise(
            aliasEvent(`https://${PAYMENTS_HOST}/keys/cmk-orders`, '2026-03-14T09:26:53.5897932Z', {
              oid: MALLORY.oid,
              upn: MALLORY.upn,
              ipAddress: MALLORY.ip,
              userAgent: MALLORY.userAgent,
            }),
            'eventGrid',
          ),
        ),
    ],
    [
      'a log alert whose dimensions name the key, the time and the caller',
      () =>
        only(
          normalise(
            commonAlert({
              windowStart: '2026-03-14T09:22:00Z',
              windowEnd: '2026-03-14T09:27:00Z',
              dimensions: [
                { name: 'Id', value: `https://${PAYMENTS_HOST}/keys/cmk-orders` },
                { name: 'TimeGenerated', value: '2026-03-14T09:26:53.5897932Z' },
                { name: 'identity_claim_oid_g', value: MALLORY.oid },
                { name: 'identity_claim_upn_s', value: MALLORY.upn },
                { name: 'CallerIpAddress', value: MALLORY.ip },
                { name: 'clientInfo_s', value: MALLORY.userAgent },
              ],
            }),
            'monitorAlert',
          ),
        ),
    ],
    [
      'a log alert without dimensions (kvguard queries the workspace itself)',
      (tp) => {
        tp.auditLog.add({
          vaultName: PAYMENTS,
          keyName: 'cmk-orders',
          time: new Date('2026-03-14T09:26:53.589Z'),
          caller: {
            oid: MALLORY.oid,
            upn: MALLORY.upn,
            idtyp: 'user',
            ipAddress: MALLORY.ip,
            userAgent: MALLORY.userAgent,
          },
        });
        return only(
          normalise(
            commonAlert({
              windowStart: '2026-03-14T09:22:00Z',
              windowEnd: '2026-03-14T09:27:00Z',
              dimensions: [],
            }),
            'monitorAlert',
          ),
        );
      },
    ],
  ];

  it.each(shapes)('reaches the same incident and outcome from %s', async (_shape, build) => {
    const tp = testPipeline();
    tp.keyVault.deleteKey(PAYMENTS_HOST, 'cmk-orders', { at: '2026-03-14T09:26:53.589Z' });
    const incidentId = PAYMENTS_ORDERS_INCIDENT(tp.keyVault.deletedOn(PAYMENTS_HOST, 'cmk-orders')!);

    const outcomes = await tp.run(build(tp));

    expect(outcomes).toHaveLength(1);
    expect(outcomes[0]).toMatchObject({
      status: 'acted',
      incidentId,
      decision: { action: 'recover-key', code: 'caller-not-allow-listed' },
    });
    expect(tp.keyVault.keyState(PAYMENTS_HOST, 'cmk-orders')).toBe('active');
    expect(tp.vaults.vault(PAYMENTS)!.enablePurgeProtection).toBe(true);
    expectEverySinkReceived(tp, [`${incidentId}/primary`]);
    expect(content(primaries(tp)[0]!).who).toMatchObject({
      upn: MALLORY.upn,
      oid: MALLORY.oid,
      ipAddress: MALLORY.ip,
    });
  });

  it('recovers once and alerts once when the same signal arrives 10 times, one after the other', async () => {
    const tp = testPipeline();
    const trigger = deletedAsIn(tp, 'keydelete-user-short-claims');
    const outcomes: TriggerOutcome[] = [];
    for (let i = 0; i < 10; i++) {
      outcomes.push(await tp.runOne(trigger));
      tp.clock.advance(1000);
    }
    expect(outcomes.map((o) => o.status)).toEqual(['acted', ...Array<string>(9).fill('duplicate')]);
    expect(new Set(outcomes.map((o) => o.incidentId)).size).toBe(1);
    expect(tp.keyVault.recoveries).toHaveLength(1);
    expect(tp.vaults.writes).toHaveLength(1);
    expectEverySinkReceived(tp, [`${outcomes[0]!.incidentId}/primary`]);
  });

  it.each([
    ['instantly', 0],
    ['with 20 ms per ledger and ARM call', 20],
  ])(
    'recovers once and alerts once when the same signal arrives 10 times concurrently (%s), and again later',
    async (_how, latencyMs) => {
      const tp = testPipeline({ latencyMs, keyVault: { latencyMs, recoverLagMs: 300 } });
      const trigger = forwarded('keydelete-user-short-claims');
      tp.keyVault.deleteKey(trigger.vaultHost, trigger.keyName, { at: trigger.signalTime });

      const concurrent = await Promise.all(Array.from({ length: 10 }, () => tp.runOne(trigger)));
      tp.clock.advance(60_000);
      const later = await Promise.all(Array.from({ length: 10 }, () => tp.runOne(trigger)));

      const statuses = [...concurrent, ...later].map((o) => o.status);
      expect(statuses.filter((s) => s === 'acted')).toHaveLength(1);
      expect(statuses.every((s) => s === 'acted' || s === 'duplicate')).toBe(true);
      expect(tp.keyVault.recoveries).toHaveLength(1);
      expect(tp.keyVault.keyState(PAYMENTS_HOST, 'cmk-orders')).toBe('active');
      expectEverySinkReceived(tp, [`${concurrent[0]!.incidentId}/primary`]);
    },
  );
});

describe('a deletion the sweep finds before the log names the caller', () => {
  it('is recovered at once, the alert says the caller is being identified, and one follow-up names them', async () => {
    const tp = testPipeline();
    const signal = deletedAsIn(tp, 'keydelete-user-short-claims');
    const sweep = sweepRow(tp, PAYMENTS_HOST, 'cmk-orders');
    const incidentId = PAYMENTS_ORDERS_INCIDENT(tp.keyVault.deletedOn(PAYMENTS_HOST, 'cmk-orders')!);

    const first = await tp.runOne(sweep);
    expect(first).toMatchObject({
      status: 'acted',
      incidentId,
      decision: { action: 'recover-key', code: 'untagged' },
    });
    expect(tp.keyVault.keyState(PAYMENTS_HOST, 'cmk-orders')).toBe('active');
    const primary = content(primaries(tp)[0]!);
    expect(primary.who).toMatchObject({ known: false });
    expect(primary.who.summary).toContain('still being identified');
    expect(tp.ledger.value(PAYMENTS, incidentId)!.state).toBe('awaiting-attribution');

    // Minutes later the log record (through the forwarder) arrives: the key is active again.
    tp.clock.advance(8 * 60_000);
    const late = await tp.runOne(forwarded('keydelete-user-short-claims'));
    expect(late).toMatchObject({ status: 'attributed', incidentId });
    expect(
      Math.abs(
        Date.parse(signal.signalTime) - Date.parse(tp.ledger.value(PAYMENTS, incidentId)!.deletedDate!),
      ),
    ).toBeLessThan(120_000);
    expectEverySinkReceived(tp, [`${incidentId}/primary`, `${incidentId}/attribution`]);
    const follow = content(attributions(tp)[0]!);
    expect(follow.who).toMatchObject({
      known: true,
      upn: MALLORY.upn,
      oid: MALLORY.oid,
      ipAddress: MALLORY.ip,
      userAgent: MALLORY.userAgent,
    });
    expect(follow.title).toContain(MALLORY.upn);
    expect(tp.ledger.value(PAYMENTS, incidentId)!.state).toBe('closed');

    // Another copy of the record (the diagnostic log, a log alert) adds nothing.
    tp.clock.advance(60_000);
    const again = await tp.runOne(signal);
    expect(again.status).toBe('duplicate');
    expectEverySinkReceived(tp, [`${incidentId}/primary`, `${incidentId}/attribution`]);
    expect(tp.keyVault.recoveries).toHaveLength(1);
  });

  it('does not take the caller of another deletion of the key from the workspace', async () => {
    // The allow-listed app deleted the key at T1 (its record is in the workspace) and the sweep
    // recovered it; three minutes later a security product reports a new deletion without a caller.
    const tp = testPipeline({
      allowList: { appIds: [ROTATION_APP.appId] },
      start: '2026-03-14T09:27:30.000Z',
    });
    const t1 = deletedAsIn(tp, 'keydelete-app-uri-claims');
    tp.auditLog.add({
      vaultName: PAYMENTS,
      keyName: 'rotation-temp-01',
      time: new Date(t1.signalTime),
      caller: { oid: ROTATION_APP.oid, appId: ROTATION_APP.appId, ipAddress: ROTATION_APP.ip },
    });
    await tp.runOne(sweepRow(tp, PAYMENTS_HOST, 'rotation-temp-01'));
    tp.clock.advance(3 * 60_000);
    const t2 = tp.keyVault.deleteKey(PAYMENTS_HOST, 'rotation-temp-01');
    tp.clock.advance(2_000);
    const report = only(
      normalise(aliasEvent(`https://${PAYMENTS_HOST}/keys/rotation-temp-01`, t2.toISOString()), 'eventGrid'),
    );
    const outcome = await tp.runOne(report);
    expect(outcome.decision?.action).toBe('recover-key');
    expect(tp.keyVault.keyState(PAYMENTS_HOST, 'rotation-temp-01')).toBe('active');
  });

  it('records a signal as already-active when no incident is within two minutes of its time', async () => {
    const tp = testPipeline();
    deletedAsIn(tp, 'keydelete-user-short-claims');
    await tp.runOne(sweepRow(tp, PAYMENTS_HOST, 'cmk-orders'));
    const trigger = forwarded('keydelete-user-short-claims');
    const late = await tp.runOne({ ...trigger, signalTime: '2026-03-14T09:29:10.000Z' });
    expect(late.status).toBe('already-active');
    expect(attributions(tp)).toHaveLength(0);
  });

  it.each([
    ['while the sweep is still recovering the key', 'recover'],
    ['while the sweep is sending its alert', 'alert'],
  ])('does not lose the caller of a signal that arrives %s', async (_when, holdAt) => {
    const tp = testPipeline();
    const trigger = deletedAsIn(tp, 'keydelete-user-short-claims');
    const held = gate();
    let heldOnce = false;
    const hold = async () => {
      if (heldOnce) return;
      heldOnce = true;
      await held.wait();
    };
    if (holdAt === 'recover') tp.keyVault.onCall = (c) => (c.op === 'recoverKey' ? hold() : undefined);
    else tp.sink('teams').onSend = hold;

    const sweepRun = tp.run(sweepRow(tp, PAYMENTS_HOST, 'cmk-orders'));
    await until(() => heldOnce, 'the sweep is held');
    const reads = () => tp.keyVault.calls.filter((c) => c.op === 'observeKey').length;
    const readsBefore = reads();
    const signalRun = deliverLikeEventGrid(tp, trigger);
    await until(() => reads() > readsBefore, 'the signal re-reads the key');
    await new Promise((resolve) => setImmediate(resolve));
    held.open();
    await sweepRun;
    await signalRun;

    const named = tp.received().filter((m) => content(m).who.upn === MALLORY.upn);
    expect(named.length).toBeGreaterThan(0);
    for (const sink of tp.sinks) {
      expect(sink.ofKind('primary')).toHaveLength(1);
      expect(sink.ofKind('attribution').length).toBeLessThanOrEqual(1);
      expect(sink.received.some((m) => content(m).who.upn === MALLORY.upn)).toBe(true);
    }
    expect(tp.keyVault.recoveries).toHaveLength(1);
  });

  it('does not let a late record of an earlier deletion decide a later deletion of the same key', async () => {
    // The rotation app (allow-listed) deleted the key at T1 without a tag; the sweep recovered it.
    // Five minutes later someone else deletes it again. T1's record arrives while the key is deleted.
    const tp = testPipeline({
      allowList: { appIds: [ROTATION_APP.appId] },
      start: '2026-03-14T09:27:30.000Z',
    });
    const t1 = deletedAsIn(tp, 'keydelete-app-uri-claims');
    const t1Incident = keyDeletionIncident(
      PAYMENTS,
      'rotation-temp-01',
      tp.keyVault.deletedOn(PAYMENTS_HOST, 'rotation-temp-01')!,
    ).id;
    await tp.runOne(sweepRow(tp, PAYMENTS_HOST, 'rotation-temp-01'));
    expect(tp.keyVault.keyState(PAYMENTS_HOST, 'rotation-temp-01')).toBe('active');

    tp.clock.advance(5 * 60_000);
    tp.keyVault.deleteKey(PAYMENTS_HOST, 'rotation-temp-01');
    const t2Incident = keyDeletionIncident(
      PAYMENTS,
      'rotation-temp-01',
      tp.keyVault.deletedOn(PAYMENTS_HOST, 'rotation-temp-01')!,
    ).id;
    tp.clock.advance(5_000);
    await deliverLikeEventGrid(tp, t1);

    // T1's caller attributes T1's incident, never T2's: the allow-listed app did not delete the key at T2.
    expect(content(attributions(tp)[0]!)).toMatchObject({
      incidentId: t1Incident,
      who: { appId: ROTATION_APP.appId },
    });
    const t2 = tp.ledger.value(PAYMENTS, t2Incident);
    expect(t2?.caller?.appId).toBeUndefined();
    expect(t2?.decision?.action).not.toBe('leave-deleted');
    // The second deletion is recovered and reported in its own right, its caller still to be identified.
    expect(tp.keyVault.keyState(PAYMENTS_HOST, 'rotation-temp-01')).toBe('active');
    expect(tp.sink('teams').ids()).toContain(`${t2Incident}/primary`);
    expect(t2?.caller).toBeUndefined();
  });
});

describe('the allow-list', () => {
  it.each([
    [
      'an allow-listed user (by object id)',
      { objectIds: [MALLORY.oid] },
      'keydelete-user-short-claims',
      'leave-deleted',
      'deleted',
      'informational',
    ],
    [
      'an allow-listed app-only caller (by app id)',
      { appIds: [ROTATION_APP.appId] },
      'keydelete-app-uri-claims',
      'leave-deleted',
      'deleted',
      'informational',
    ],
    [
      'a user whose client app (Azure CLI) is allow-listed',
      { appIds: [MALLORY.cliAppId] },
      'keydelete-user-short-claims',
      'recover-key',
      'active',
      'warning',
    ],
    ['a caller on no list', {}, 'keydelete-user-short-claims', 'recover-key', 'active', 'warning'],
  ] as const)('a deletion by %s', async (_who, allowList, recordName, action, keyState, severity) => {
    const tp = testPipeline({ allowList });
    const trigger = deletedAsIn(tp, recordName);
    const outcome = await tp.runOne(trigger);
    expect(outcome.decision?.action).toBe(action);
    expect(tp.keyVault.keyState(PAYMENTS_HOST, trigger.keyName)).toBe(keyState);
    expectEverySinkReceived(tp, [`${outcome.incidentId}/primary`]);
    expect(content(primaries(tp)[0]!).severity).toBe(severity);
    if (action === 'leave-deleted') {
      expectNoWrites(tp);
      expect(tp.ledger.value(PAYMENTS, outcome.incidentId!)!.state).toBe('closed');
    }
  });
});

describe('the sanctioned-deletion tag', () => {
  const SANCTION = 'kvguard-sanctioned-delete';

  function sanctionedSweep(tp: TestPipeline, tag: string): { sweep: VaultTrigger; record: KeyTrigger } {
    tp.keyVault.setTags(PAYMENTS_HOST, 'rotation-temp-01', { [SANCTION]: tag, owner: 'rotation' });
    const record = deletedAsIn(tp, 'keydelete-app-uri-claims');
    return { sweep: sweepRow(tp, PAYMENTS_HOST, 'rotation-temp-01'), record };
  }

  it('leaves a tagged key deleted while the caller is unknown, and closes when an allow-listed caller did it', async () => {
    const tp = testPipeline({ allowList: { appIds: [ROTATION_APP.appId] } });
    const { sweep, record: late } = sanctionedSweep(tp, '2026-03-14T12:00:00Z');
    const first = await tp.runOne(sweep);
    expect(first.decision).toMatchObject({ action: 'leave-deleted', code: 'sanctioned-tag' });
    expect(tp.keyVault.keyState(PAYMENTS_HOST, 'rotation-temp-01')).toBe('deleted');
    expect(content(primaries(tp)[0]!).severity).toBe('informational');

    tp.clock.advance(6 * 60_000);
    const attributed = await tp.runOne(late);
    expect(attributed).toMatchObject({
      status: 'attributed',
      decision: { action: 'close-incident', code: 'attribution-allow-listed-sanctioned' },
    });
    expect(tp.keyVault.keyState(PAYMENTS_HOST, 'rotation-temp-01')).toBe('deleted');
    expectNoWrites(tp);
    expect(content(attributions(tp)[0]!)).toMatchObject({
      severity: 'informational',
      who: { appId: ROTATION_APP.appId },
    });
    expect(tp.ledger.value(PAYMENTS, first.incidentId!)!.state).toBe('closed');
  });

  it('recovers a tagged key and raises a critical follow-up when the caller turns out not to be allow-listed', async () => {
    const tp = testPipeline();
    const { sweep, record: late } = sanctionedSweep(tp, '2026-03-14T12:00:00Z');
    await tp.runOne(sweep);
    expect(tp.keyVault.keyState(PAYMENTS_HOST, 'rotation-temp-01')).toBe('deleted');

    tp.clock.advance(6 * 60_000);
    const attributed = await tp.runOne(late);
    expect(attributed.decision).toMatchObject({
      action: 'recover-key',
      code: 'sanctioned-tag-misused',
      severity: 'critical',
    });
    expect(tp.keyVault.keyState(PAYMENTS_HOST, 'rotation-temp-01')).toBe('active');
    expect(tp.keyVault.recoveries).toHaveLength(1);
    expect(content(attributions(tp)[0]!)).toMatchObject({
      severity: 'critical',
      who: { appId: ROTATION_APP.appId },
    });
    expectEverySinkReceived(tp, [`${attributed.incidentId}/primary`, `${attributed.incidentId}/attribution`]);
  });

  it.each([
    ['expired', '2026-03-14T09:00:00Z', 'tag-expired'],
    ['more than 24 h ahead', '2026-03-16T09:00:00Z', 'tag-too-far-ahead'],
    ['not a time', 'tomorrow', 'tag-unparsable'],
  ])('recovers a key whose tag is %s', async (_why, tag, code) => {
    const tp = testPipeline();
    const { sweep } = sanctionedSweep(tp, tag);
    const outcome = await tp.runOne(sweep);
    expect(outcome.decision).toMatchObject({ action: 'recover-key', code });
    expect(tp.keyVault.keyState(PAYMENTS_HOST, 'rotation-temp-01')).toBe('active');
  });

  it('recovers a tagged key at once when the signal names a caller outside the allow-list', async () => {
    const tp = testPipeline();
    const { record } = sanctionedSweep(tp, '2026-03-14T12:00:00Z');
    const outcome = await tp.runOne(record);
    expect(outcome.decision).toMatchObject({
      action: 'recover-key',
      code: 'sanctioned-tag-misused',
      severity: 'critical',
    });
    expect(tp.keyVault.keyState(PAYMENTS_HOST, 'rotation-temp-01')).toBe('active');
  });
});

describe('scope', () => {
  it('leaves an excluded vault alone: no call to the vault, no ledger row, no alert', async () => {
    const tp = testPipeline({ excludedVaults: [PAYMENTS] });
    const trigger = deletedAsIn(tp, 'keydelete-user-short-claims');
    const outcome = await tp.runOne(trigger);
    expect(outcome.status).toBe('excluded');
    expect(outcome.reason).toContain(PAYMENTS);
    expect(tp.keyVault.calls).toEqual([]);
    expect(tp.vaults.writes).toEqual([]);
    expect(tp.ledger.writes).toEqual([]);
    expect(tp.received()).toEqual([]);
    expect(tp.keyVault.keyState(PAYMENTS_HOST, 'cmk-orders')).toBe('deleted');
  });

  it.each([
    ['a vault that is not in the inventory', 'contoso-unknown.vault.azure.net'],
    ['a look-alike host under another domain', 'contoso-payments.vault.azure.net.evil.test'],
    ['a foreign host', 'evil.test'],
    ['a host with a port', 'contoso-payments.vault.azure.net:443'],
    ['a Managed HSM', 'contoso-payments.managedhsm.azure.net'],
  ])('rejects %s without a single call to any vault host', async (_what, host) => {
    const tp = testPipeline();
    const trigger = deletedAsIn(tp, 'keydelete-user-short-claims');
    const { vaultResourceId: _ignored, ...rest } = trigger;
    const outcome = await tp.runOne({ ...rest, vaultHost: host });
    expect(outcome.status).toBe('out-of-scope');
    expect(tp.keyVault.calls).toEqual([]);
    expect(tp.ledger.writes).toEqual([]);
    expect(tp.received()).toEqual([]);
    expectNoWrites(tp);
  });

  it('rejects a signal whose resource id names a vault in another subscription', async () => {
    const tp = testPipeline();
    const trigger = deletedAsIn(tp, 'keydelete-user-short-claims');
    const outcome = await tp.runOne({
      ...trigger,
      vaultResourceId: vaultResourceId('00000000-0000-4000-8000-000000000000', 'rg-payments', PAYMENTS),
    });
    expect(outcome.status).toBe('out-of-scope');
    expect(tp.keyVault.calls).toEqual([]);
  });

  it.each([
    ['https://contoso-payments.vault.azure.net.evil.test/keys/cmk-orders'],
    ['https://evil.test/keys/cmk-orders'],
    ['https://contoso-payments.vault.azure.net:8443/keys/cmk-orders'],
  ])('never turns an event naming %s into a trigger', (keyId) => {
    const results = normalise(aliasEvent(keyId, '2026-03-14T09:26:53Z'), 'eventGrid');
    expect(results).toHaveLength(1);
    expect(results[0]!.kind).toBe('rejection');
  });

  it('treats the vault host case-insensitively', async () => {
    const tp = testPipeline();
    const trigger = deletedAsIn(tp, 'keydelete-user-short-claims');
    const outcome = await tp.runOne({ ...trigger, vaultHost: PAYMENTS_HOST.toUpperCase() });
    expect(outcome.status).toBe('acted');
    expect(tp.keyVault.keyState(PAYMENTS_HOST, 'cmk-orders')).toBe('active');
  });
});

describe('observe mode and dry runs', () => {
  it('observe mode decides and alerts, writes nothing, and says what it would have done', async () => {
    const tp = testPipeline({ mode: 'observe' });
    const trigger = deletedAsIn(tp, 'keydelete-user-short-claims');
    const outcome = await tp.runOne(trigger);
    expect(outcome.decision?.action).toBe('recover-key');
    expect(outcome.results).toEqual([
      { action: 'recover-key', status: 'planned' },
      { action: 'enable-purge-protection', status: 'planned' },
    ]);
    expectNoWrites(tp);
    expect(tp.keyVault.keyState(PAYMENTS_HOST, 'cmk-orders')).toBe('deleted');
    expect(tp.vaults.vault(PAYMENTS)!.enablePurgeProtection).toBe(false);
    const alert = content(primaries(tp)[0]!);
    expect(alert.observeMode).toBe(true);
    expect(alert.outcome).toMatch(/^kvguard would /);
    expect(alert.humanActions.join(' ')).toContain('az keyvault key recover');

    // The sweep keeps seeing the deleted key: still one incident, one alert.
    tp.clock.advance(30_000);
    expect((await tp.runOne(sweepRow(tp, PAYMENTS_HOST, 'cmk-orders'))).status).toBe('duplicate');
    expectEverySinkReceived(tp, [`${outcome.incidentId}/primary`]);
    expectNoWrites(tp);
  });

  it('a dry run plans without a single write, not even to the ledger, and leaves nothing behind', async () => {
    const tp = testPipeline();
    const trigger = deletedAsIn(tp, 'keydelete-user-short-claims');
    const planned = await tp.runOne(trigger, { dryRun: true });
    expect(planned).toMatchObject({
      status: 'planned',
      decision: { action: 'recover-key', code: 'caller-not-allow-listed' },
      results: [
        { action: 'recover-key', status: 'planned' },
        { action: 'enable-purge-protection', status: 'planned' },
      ],
    });
    expectNoWrites(tp);
    expect(tp.ledger.writes).toEqual([]);
    expect(tp.received()).toEqual([]);

    const real = await tp.runOne(trigger);
    expect(real.status).toBe('acted');
    expect(tp.keyVault.keyState(PAYMENTS_HOST, 'cmk-orders')).toBe('active');
    expectEverySinkReceived(tp, [`${real.incidentId}/primary`]);
  });

  const dryRuns: Array<[string, (tp: TestPipeline) => Promise<Trigger>]> = [
    [
      'a vault deletion',
      async (tp) => {
        tp.vaults.deleteVault(PAYMENTS, { at: '2026-03-14T09:27:10Z' });
        return only(normalise(armEvent('delete', PAYMENTS_ID, '2026-03-14T09:27:10.5Z', EVE), 'eventGrid'));
      },
    ],
    [
      'a weakening vault write',
      async (tp) => {
        await tp.inventory.refresh();
        tp.vaults.changeVault(PAYMENTS, { softDeleteRetentionInDays: 7 });
        return only(normalise(armEvent('write', PAYMENTS_ID, '2026-03-14T09:27:10.5Z', EVE), 'eventGrid'));
      },
    ],
    [
      'an access-policy change',
      async () => only(normalise(accessPolicyChanged('2026-03-14T09:27:10Z'), 'eventGrid')),
    ],
    ['a refused deletion', async () => fromRecord('keydelete-forbidden')],
    [
      'a purged key',
      async (tp) => {
        deletedAsIn(tp, 'keydelete-user-short-claims');
        tp.keyVault.purgeKey(PAYMENTS_HOST, 'cmk-orders');
        tp.clock.advance(4 * 60_000); // the log record arrives minutes after the deletion
        return fromRecord('keydelete-user-short-claims');
      },
    ],
  ];

  it.each(dryRuns)(
    'a dry run of %s writes nothing and then the real delivery still acts',
    async (_what, build) => {
      const tp = testPipeline();
      const trigger = await build(tp);
      const planned = await tp.runOne(trigger, { dryRun: true });
      expect(planned.status).toBe('planned');
      expectNoWrites(tp);
      expect(tp.ledger.writes).toEqual([]);
      expect(tp.received()).toEqual([]);

      const real = await tp.runOne(trigger);
      expect(real.status).toBe('acted');
      expect(real.decision?.action).toBe(planned.decision?.action);
      expect(real.decision?.code).toBe(planned.decision?.code);
      expect(tp.sink('teams').received).toHaveLength(1);
    },
  );
});

describe('what cannot be undone, and what kvguard may not do', () => {
  it('raises a critical alert, and does not crash, when the deleted key was purged before kvguard saw it', async () => {
    const tp = testPipeline();
    const trigger = deletedAsIn(tp, 'keydelete-user-short-claims');
    tp.keyVault.purgeKey(PAYMENTS_HOST, 'cmk-orders');
    tp.clock.advance(4 * 60_000); // the log record arrives minutes after the deletion
    const outcome = await tp.runOne(trigger);
    expect(outcome).toMatchObject({
      status: 'acted',
      decision: { action: 'alert-only', code: 'key-not-recoverable', severity: 'critical' },
    });
    const alert = content(primaries(tp)[0]!);
    expect(alert.severity).toBe('critical');
    expect(alert.title).toContain('not recoverable');
    expect(alert.who.upn).toBe(MALLORY.upn);
    expect(tp.keyVault.recoveries).toEqual([]);
    expect(tp.vaults.vault(PAYMENTS)!.enablePurgeProtection).toBe(true);
  });

  it('retries a fresh signal for a key that is gone, then raises the critical alert', async () => {
    const tp = testPipeline({ start: '2026-03-14T09:26:55.000Z' });
    const trigger = deletedAsIn(tp, 'keydelete-user-short-claims');
    tp.keyVault.purgeKey(PAYMENTS_HOST, 'cmk-orders');
    const { outcomes, errors } = await deliverLikeEventGrid(tp, trigger);
    expect(errors.length).toBeGreaterThan(0);
    expect(errors.every((e) => e instanceof RetryableError)).toBe(true);
    expect(outcomes[0]!.decision).toMatchObject({ code: 'key-not-recoverable', severity: 'critical' });
    expect(tp.sink('teams').received).toHaveLength(1);
  });

  it('does not report a key as purged while its deletion is still completing', async () => {
    // A fast signal (a security product's event, a replay) can arrive before the service has finished
    // the delete: until then both GET /keys and GET /deletedkeys answer 404.
    const tp = testPipeline({ start: '2026-03-14T09:26:53.600Z', keyVault: { deleteLagMs: 8_000 } });
    const trigger = deletedAsIn(tp, 'keydelete-user-short-claims');
    const { outcomes } = await deliverLikeEventGrid(tp, trigger);
    expect(outcomes[0]!.decision).toMatchObject({ action: 'recover-key', code: 'caller-not-allow-listed' });
    expect(tp.keyVault.keyState(PAYMENTS_HOST, 'cmk-orders')).toBe('active');
    expectEverySinkReceived(
      tp,
      [
        PAYMENTS_ORDERS_INCIDENT(
          tp.keyVault.deletedOn(PAYMENTS_HOST, 'cmk-orders') ?? new Date('2026-03-14T09:26:53Z'),
        ),
      ].map((id) => `${id}/primary`),
    );
    expect(tp.received().every((m) => m.severity !== 'critical')).toBe(true);
  });

  it('raises a critical alert for a purge signal', async () => {
    const tp = testPipeline({ start: '2026-03-14T09:31:10Z' });
    tp.keyVault.deleteKey(PAYMENTS_HOST, 'cmk-orders', { at: '2026-03-14T09:26:53.589Z' });
    tp.keyVault.purgeKey(PAYMENTS_HOST, 'cmk-orders');
    const outcome = await tp.runOne(fromRecord('keypurge-success'));
    expect(outcome).toMatchObject({
      status: 'acted',
      kind: 'keyPurged',
      decision: { code: 'key-purged', severity: 'critical' },
    });
    expect(content(primaries(tp)[0]!)).toMatchObject({ severity: 'critical', who: { upn: MALLORY.upn } });
  });

  describe('a purged key is one critical incident, whichever of its records comes first', () => {
    // The purge 47 s after the deletion (the fixture's purge record is minutes later: moved into the window).
    const PURGE_TIME = '2026-03-14T09:27:40.000Z';
    const purgeRecord = (options: { caller?: boolean } = {}): Trigger => {
      const r = record('keypurge-success');
      r.time = PURGE_TIME;
      const t = keyTrigger(normalise(r, 'auditLog'));
      if (options.caller === false) delete (t as { caller?: unknown }).caller;
      return t;
    };
    const purged = () => {
      const tp = testPipeline({ start: '2026-03-14T09:29:00Z' });
      const deletion = deletedAsIn(tp, 'keydelete-user-short-claims');
      tp.keyVault.purgeKey(PAYMENTS_HOST, 'cmk-orders');
      return { tp, deletion };
    };

    it('the purge first: the deletion record of the gone key joins the purge incident', async () => {
      const { tp, deletion } = purged();
      const purge = await tp.runOne(purgeRecord());
      expect(purge).toMatchObject({
        status: 'acted',
        decision: { code: 'key-purged', severity: 'critical' },
      });
      const joined = await tp.runOne(deletion);
      expect(joined).toMatchObject({ status: 'duplicate', incidentId: purge.incidentId });
      tp.clock.advance(60_000);
      expect(await tp.runOne(deletion)).toMatchObject({ status: 'duplicate', incidentId: purge.incidentId });
      expect(await tp.runOne(purgeRecord())).toMatchObject({
        status: 'duplicate',
        incidentId: purge.incidentId,
      });
      expectEverySinkReceived(tp, [`${purge.incidentId}/primary`]);
      expect(tp.received().every((m) => m.severity === 'critical')).toBe(true);
      expect(tp.keyVault.recoveries).toEqual([]);
    });

    it('the deletion record first: the purge record joins its "not recoverable" incident', async () => {
      const { tp, deletion } = purged();
      const gone = await tp.runOne(deletion);
      expect(gone).toMatchObject({
        status: 'acted',
        decision: { code: 'key-not-recoverable', severity: 'critical' },
      });
      const joined = await tp.runOne(purgeRecord());
      expect(joined).toMatchObject({ status: 'duplicate', incidentId: gone.incidentId });
      expect(await tp.runOne(purgeRecord())).toMatchObject({
        status: 'duplicate',
        incidentId: gone.incidentId,
      });
      expect(await tp.runOne(deletion)).toMatchObject({ status: 'duplicate', incidentId: gone.incidentId });
      expectEverySinkReceived(tp, [`${gone.incidentId}/primary`]);
    });

    it('a purge record without a caller: the deletion record brings one follow-up, and calls its caller the deleter', async () => {
      const { tp, deletion } = purged();
      const purge = await tp.runOne(purgeRecord({ caller: false }));
      expect(content(primaries(tp)[0]!).who.known).toBe(false);
      const joined = await tp.runOne(deletion);
      expect(joined).toMatchObject({ status: 'attributed', incidentId: purge.incidentId });
      const followUp = content(attributions(tp)[0]!);
      expect(followUp.who).toMatchObject({ known: true, upn: MALLORY.upn, oid: MALLORY.oid });
      expect(followUp.title).toBe(`Key cmk-orders in vault ${PAYMENTS}: deletion made by ${MALLORY.upn}`);
      expect(followUp.decision.reason).toContain(`the purge names no caller; ${MALLORY.upn} deleted it`);
      expect(await tp.runOne(deletion)).toMatchObject({ status: 'duplicate', incidentId: purge.incidentId });
      expectEverySinkReceived(tp, [`${purge.incidentId}/primary`, `${purge.incidentId}/attribution`]);
    });

    it('a deletion record that arrives before the key has settled is still retried, then joins the purge', async () => {
      const tp = testPipeline({ start: '2026-03-14T09:27:41Z' });
      const deletion = deletedAsIn(tp, 'keydelete-user-short-claims');
      tp.keyVault.purgeKey(PAYMENTS_HOST, 'cmk-orders');
      const purge = await tp.runOne(purgeRecord());
      // 47 s after the deletion: a gone key may still be a delete completing, so the record is retried.
      const { outcomes, errors } = await deliverLikeEventGrid(tp, deletion);
      expect(errors.every((e) => e instanceof RetryableError)).toBe(true);
      expect(outcomes[0]).toMatchObject({ status: 'duplicate', incidentId: purge.incidentId });
      expect(primaries(tp)).toHaveLength(1);
    });
  });

  it('names the missing permission when the vault refuses the recovery (403)', async () => {
    const tp = testPipeline();
    tp.keyVault.fail('recoverKey', failures.forbidden(RECOVER_PERMISSION));
    const outcome = await tp.runOne(deletedAsIn(tp, 'keydelete-user-short-claims'));
    expect(outcome.status).toBe('acted');
    expect(outcome.results).toContainEqual(
      expect.objectContaining({
        action: 'recover-key',
        status: 'forbidden',
        requiredPermission: RECOVER_PERMISSION,
      }),
    );
    expect(tp.keyVault.keyState(PAYMENTS_HOST, 'cmk-orders')).toBe('deleted');
    const alert = content(primaries(tp)[0]!);
    expect(alert.severity).toBe('critical');
    expect(alert.humanActions.join('\n')).toContain(RECOVER_PERMISSION);
    expect(alert.title).toContain('recovery forbidden');
  });

  it('reports a key it cannot read (403 on observe) as failed, naming the permission, without throwing', async () => {
    const tp = testPipeline();
    tp.keyVault.fail(
      'observeKey',
      failures.forbidden('keys get/list (access policy) or Microsoft.KeyVault/vaults/keys/read (RBAC)'),
    );
    const trigger = deletedAsIn(tp, 'keydelete-user-short-claims');
    const outcome = await tp.runOne(trigger);
    expect(outcome.status).toBe('failed');
    expect(outcome.reason).toContain('Microsoft.KeyVault/vaults/keys/read');
    expectNoWrites(tp);
    // A permanent failure is alerted, once per vault and day however many signals hit it.
    tp.keyVault.fail(
      'observeKey',
      failures.forbidden('keys get/list (access policy) or Microsoft.KeyVault/vaults/keys/read (RBAC)'),
    );
    await tp.runOne(trigger);
    const operational = tp.sink('teams').received.filter((a) => a.kind === 'operational');
    expect(operational).toHaveLength(1);
    expect(operational[0]!.severity).toBe('critical');
    expect(operational[0]!.text.join(' ')).toContain('Microsoft.KeyVault/vaults/keys/read');
  });

  it('retries a recovery that failed with a 5xx instead of reporting it failed', async () => {
    const tp = testPipeline();
    const trigger = deletedAsIn(tp, 'keydelete-user-short-claims');
    tp.keyVault.fail('recoverKey', failures.transient());
    await expect(tp.run(trigger)).rejects.toBeInstanceOf(RetryableError);
    expect(tp.sink('teams').received).toHaveLength(0);
    tp.clock.advance(10_000);
    const outcome = await tp.runOne(trigger);
    expect(outcome.results).toContainEqual(
      expect.objectContaining({ action: 'recover-key', status: 'succeeded' }),
    );
    expect(tp.keyVault.keyState(PAYMENTS_HOST, 'cmk-orders')).toBe('active');
    expect(primaries(tp)).toHaveLength(1);
  });
});

describe('retries', () => {
  it('throws RetryableError when the read is throttled, writes nothing, and the redelivery completes', async () => {
    const tp = testPipeline();
    const trigger = deletedAsIn(tp, 'keydelete-user-short-claims');
    tp.keyVault.fail('observeKey', failures.throttled());
    await expect(tp.run(trigger)).rejects.toBeInstanceOf(RetryableError);
    expect(tp.ledger.writes).toEqual([]);
    expectNoWrites(tp);
    tp.clock.advance(10_000);
    expect((await tp.runOne(trigger)).status).toBe('acted');
    expect(tp.sink('teams').received).toHaveLength(1);
  });

  it('throws RetryableError when the recovery is throttled; the redelivery recovers and sends exactly one alert', async () => {
    const tp = testPipeline();
    const trigger = deletedAsIn(tp, 'keydelete-user-short-claims');
    tp.keyVault.fail('recoverKey', failures.throttled(2000));
    await expect(tp.run(trigger)).rejects.toBeInstanceOf(RetryableError);
    expect(tp.received()).toEqual([]);

    tp.clock.advance(10_000);
    const outcome = await tp.runOne(trigger);
    expect(outcome.status).toBe('acted');
    expect(tp.keyVault.keyState(PAYMENTS_HOST, 'cmk-orders')).toBe('active');
    expect(tp.vaults.vault(PAYMENTS)!.enablePurgeProtection).toBe(true);
    expectEverySinkReceived(tp, [`${outcome.incidentId}/primary`]);
    // The alert reports everything kvguard did, including what the first attempt finished.
    expect(content(primaries(tp)[0]!).actions.map((a) => [a.action, a.status])).toEqual([
      ['recover-key', 'succeeded'],
      ['enable-purge-protection', 'succeeded'],
    ]);
  });

  it('throws RetryableError when the recovery outlasts the invocation; the redelivery finishes with one alert', async () => {
    const tp = testPipeline({ keyVault: { recoverLagMs: 40_000 } });
    const trigger = deletedAsIn(tp, 'keydelete-user-short-claims');
    const { outcomes, errors } = await deliverLikeEventGrid(tp, trigger);
    expect(errors.length).toBeGreaterThan(0);
    expect(errors.every((e) => e instanceof RetryableError)).toBe(true);
    expect(outcomes[0]!.status).toBe('acted');
    expect(tp.keyVault.recoveries).toHaveLength(1);
    expect(tp.keyVault.keyState(PAYMENTS_HOST, 'cmk-orders')).toBe('active');
    expectEverySinkReceived(tp, [`${outcomes[0]!.incidentId}/primary`]);
    const alert = content(primaries(tp)[0]!);
    expect(alert.title).toContain('recovered');
    expect(alert.actions.map((a) => [a.action, a.status])).toEqual([
      ['recover-key', 'succeeded'],
      ['enable-purge-protection', 'succeeded'],
    ]);
  });

  it('keeps each invocation within its budget while it waits for a recovery', async () => {
    const tp = testPipeline({ keyVault: { recoverLagMs: 40_000 } });
    const trigger = deletedAsIn(tp, 'keydelete-user-short-claims');
    const start = tp.clock.now().getTime();
    await expect(tp.run(trigger)).rejects.toBeInstanceOf(RetryableError);
    expect(tp.clock.now().getTime() - start).toBeLessThanOrEqual(25_000);
  });

  it('retries only the sink that failed: the redelivery does not send the alert twice to the other', async () => {
    const tp = testPipeline();
    const trigger = deletedAsIn(tp, 'keydelete-user-short-claims');
    tp.sink('teams').failNext(1, { retryable: true, detail: '429 Too Many Requests' });
    await expect(tp.run(trigger)).rejects.toBeInstanceOf(RetryableError);
    expect(tp.sink('teams').received).toEqual([]);
    expect(tp.sink('alerts-topic').received).toHaveLength(1);
    expect(tp.keyVault.recoveries).toHaveLength(1);

    tp.clock.advance(10_000);
    const outcome = await tp.runOne(trigger);
    expectEverySinkReceived(tp, [`${outcome.incidentId}/primary`]);
    expect(tp.keyVault.recoveries).toHaveLength(1);
    expect(tp.ledger.value(PAYMENTS, outcome.incidentId!)!.state).toBe('closed');
  });

  it('records a sink that fails permanently and closes the incident instead of retrying for ever', async () => {
    const tp = testPipeline();
    tp.sink('teams').failAlways({
      retryable: false,
      detail: '400 Bad Request: the workflow URL is not valid',
    });
    const outcome = await tp.runOne(deletedAsIn(tp, 'keydelete-user-short-claims'));
    expect(outcome.status).toBe('acted');
    expect(tp.sink('alerts-topic').ids()).toEqual([`${outcome.incidentId}/primary`]);
    const stored = tp.ledger.value(PAYMENTS, outcome.incidentId!)!;
    expect(stored.state).toBe('closed');
    expect(stored.alerts.primary!.sinks.teams).toMatchObject({
      delivered: false,
      detail: expect.stringContaining('400'),
    });
    expect(tp.logs.some((l) => l.level === 'warn' && l.entry.sink === 'teams')).toBe(true);
  });

  it('retries an attribution follow-up only to the sink that failed', async () => {
    const tp = testPipeline();
    deletedAsIn(tp, 'keydelete-user-short-claims');
    await tp.runOne(sweepRow(tp, PAYMENTS_HOST, 'cmk-orders'));
    tp.clock.advance(8 * 60_000);
    tp.sink('teams').failNext(1);
    const late = forwarded('keydelete-user-short-claims');
    await expect(tp.run(late)).rejects.toBeInstanceOf(RetryableError);
    expect(attributions(tp, 'alerts-topic')).toHaveLength(1);

    tp.clock.advance(10_000);
    const outcome = await tp.runOne(late);
    expect(outcome.status).toBe('attributed');
    expectEverySinkReceived(tp, [`${outcome.incidentId}/primary`, `${outcome.incidentId}/attribution`]);
    expect(tp.keyVault.recoveries).toHaveLength(1);
    expect(tp.ledger.value(PAYMENTS, outcome.incidentId!)!.state).toBe('closed');
  });

  it('finishes after a crash between act and alert: one alert, no second recovery', async () => {
    const tp = testPipeline();
    const trigger = deletedAsIn(tp, 'keydelete-user-short-claims');
    // The first ledger update after the claim is the save that follows the act step.
    tp.ledger.failNext('update', new Error('the process died'));
    await expect(tp.run(trigger)).rejects.toThrow('the process died');
    expect(tp.keyVault.keyState(PAYMENTS_HOST, 'cmk-orders')).toBe('active');
    expect(tp.received()).toEqual([]);

    tp.restart();
    const { outcomes } = await deliverLikeEventGrid(tp, trigger, { restartAfterFailure: false });
    expect(outcomes[0]!.status).toMatch(/^(acted|duplicate)$/);
    const incidentId = PAYMENTS_ORDERS_INCIDENT(new Date('2026-03-14T09:26:53Z'));
    expectEverySinkReceived(tp, [`${incidentId}/primary`]);
    expect(tp.keyVault.recoveries).toHaveLength(1);
    expect(tp.ledger.value(PAYMENTS, incidentId)!.state).toBe('closed');
    expect(content(primaries(tp)[0]!).who.upn).toBe(MALLORY.upn);
  });

  it('resends an alert with the same id after a crash between sending and closing (receivers drop the repeat)', async () => {
    const tp = testPipeline();
    const trigger = deletedAsIn(tp, 'keydelete-user-short-claims');
    // Update 1 saves the act step's results; update 2, after the alert went out, would close the incident.
    tp.ledger.failNext('update', new Error('the process died'), 1, { after: 1 });
    await expect(tp.run(trigger)).rejects.toThrow('the process died');
    expect(tp.sink('teams').received).toHaveLength(1);

    tp.restart();
    await deliverLikeEventGrid(tp, trigger);
    const ids = tp.sink('teams').ids();
    expect(ids.length).toBeGreaterThanOrEqual(1);
    expect(new Set(ids).size).toBe(1);
    expect(tp.keyVault.recoveries).toHaveLength(1);
  });
});

describe('vaults', () => {
  it('recovers a deleted vault, turns on purge protection and names who deleted it', async () => {
    const tp = testPipeline();
    await tp.inventory.refresh();
    tp.vaults.deleteVault(PAYMENTS, { at: '2026-03-14T09:27:10Z' });
    const outcome = await tp.runOne(
      only(normalise(armEvent('delete', PAYMENTS_ID, '2026-03-14T09:27:10.5Z', EVE), 'eventGrid')),
    );
    expect(outcome).toMatchObject({
      status: 'acted',
      kind: 'vaultDeleted',
      decision: { action: 'recover-vault', code: 'vault-deleted' },
    });
    expect(tp.vaults.vault(PAYMENTS)).toMatchObject({ enablePurgeProtection: true });
    expect(tp.vaults.deletedVault(PAYMENTS)).toBeUndefined();
    const alert = content(primaries(tp)[0]!);
    expect(alert.who).toMatchObject({ upn: EVE.upn, oid: EVE.oid, ipAddress: EVE.ip });
    expect(alert.actions.map((a) => [a.action, a.status])).toEqual([
      ['recover-vault', 'succeeded'],
      ['enable-purge-protection', 'succeeded'],
    ]);
  });

  it('recovers a deleted vault the sweep finds, once, even when the ARM event follows', async () => {
    const tp = testPipeline();
    await tp.inventory.refresh();
    const deleted = tp.vaults.deleteVault(PAYMENTS, { at: '2026-03-14T09:27:10Z' });
    const sweep = fromSweptDeletedVault({
      vaultName: PAYMENTS,
      vaultResourceId: deleted.vaultId,
      deletionDate: deleted.deletionDate!,
      location: deleted.location,
      purgeProtectionEnabled: false,
    });
    if (sweep.kind === 'rejection') throw new Error(sweep.message);
    expect((await tp.runOne(sweep)).decision?.action).toBe('recover-vault');
    expect(tp.vaults.vault(PAYMENTS)).toBeDefined();
    await tp.runOne(
      only(normalise(armEvent('delete', PAYMENTS_ID, '2026-03-14T09:27:10.5Z', EVE), 'eventGrid')),
    );
    expect(tp.vaults.writes.filter((w) => w.op === 'recoverVault')).toHaveLength(1);
    expect(primaries(tp)).toHaveLength(1);
  });

  it('leaves a deleted vault deleted, with an alert, when policy says alert only', async () => {
    const tp = testPipeline({ vaultDeletion: 'alert' });
    await tp.inventory.refresh();
    tp.vaults.deleteVault(PAYMENTS, { at: '2026-03-14T09:27:10Z' });
    const outcome = await tp.runOne(
      only(normalise(armEvent('delete', PAYMENTS_ID, '2026-03-14T09:27:10.5Z', EVE), 'eventGrid')),
    );
    expect(outcome.decision).toMatchObject({ action: 'alert-only', code: 'vault-deletion-alert-only' });
    expect(tp.vaults.vault(PAYMENTS)).toBeUndefined();
    expectNoWrites(tp);
    expect(content(primaries(tp)[0]!).who.upn).toBe(EVE.upn);
  });

  it.each([
    ['lowers the soft-delete retention', { softDeleteRetentionInDays: 7 }, 'retention-lowered'],
    ['switches the permission model', { enableRbacAuthorization: false }, 'rbac-model-switched'],
  ] as const)('alerts, naming the caller, when a vault write %s', async (_what, change, weakening) => {
    const tp = testPipeline();
    await tp.inventory.refresh();
    tp.vaults.changeVault(PAYMENTS, change);
    const outcome = await tp.runOne(
      only(normalise(armEvent('write', PAYMENTS_ID, '2026-03-14T09:27:10.5Z', EVE), 'eventGrid')),
    );
    expect(outcome.decision).toMatchObject({ action: 'alert-only', code: 'vault-weakened' });
    const alert = content(primaries(tp)[0]!);
    expect(alert.who).toMatchObject({ upn: EVE.upn, ipAddress: EVE.ip });
    expect(alert.decision.reason).toContain(EVE.upn);
    expect(tp.ledger.value(PAYMENTS, outcome.incidentId!)!.decision!.weakenings).toEqual([weakening]);
    expectNoWrites(tp);
  });

  it('alerts when public network access is opened', async () => {
    const tp = testPipeline({ vaults: [{ name: PAYMENTS, publicNetworkAccess: 'Disabled' }] });
    await tp.inventory.refresh();
    tp.vaults.changeVault(PAYMENTS, { publicNetworkAccess: 'Enabled' });
    const outcome = await tp.runOne(
      only(normalise(armEvent('write', PAYMENTS_ID, '2026-03-14T09:27:10.5Z', EVE), 'eventGrid')),
    );
    expect(outcome.decision?.code).toBe('vault-weakened');
  });

  it('stays quiet about a vault write that weakens nothing', async () => {
    const tp = testPipeline();
    await tp.inventory.refresh();
    tp.vaults.changeVault(PAYMENTS, { tags: { costCenter: '42' } });
    const outcome = await tp.runOne(
      only(normalise(armEvent('write', PAYMENTS_ID, '2026-03-14T09:27:10.5Z', EVE), 'eventGrid')),
    );
    expect(outcome.decision?.code).toBe('vault-write-no-weakening');
    expect(tp.received()).toEqual([]);
  });

  it('still alerts about a weakening vault write whose first delivery failed', async () => {
    const tp = testPipeline();
    await tp.inventory.refresh();
    tp.vaults.changeVault(PAYMENTS, { softDeleteRetentionInDays: 7 });
    const event = only(normalise(armEvent('write', PAYMENTS_ID, '2026-03-14T09:27:10.5Z', EVE), 'eventGrid'));
    tp.ledger.failNext('claim', new Error('ServiceUnavailable: the table service is busy'));
    const { outcomes, errors } = await deliverLikeEventGrid(tp, event);
    expect(errors).toHaveLength(1);
    expect(outcomes[0]!.decision?.code).toBe('vault-weakened');
    expect(primaries(tp)).toHaveLength(1);
  });

  it('alerts on an access-policy change', async () => {
    const tp = testPipeline();
    const outcome = await tp.runOne(
      only(normalise(accessPolicyChanged('2026-03-14T09:27:10Z'), 'eventGrid')),
    );
    expect(outcome.decision).toMatchObject({ action: 'alert-only', code: 'access-policy-changed' });
    expect(content(primaries(tp)[0]!).what.summary).toContain('access policy');
    expectNoWrites(tp);
    // The same event redelivered: no second alert.
    await tp.runOne(only(normalise(accessPolicyChanged('2026-03-14T09:27:10Z'), 'eventGrid')));
    expect(primaries(tp)).toHaveLength(1);
  });
});

describe('an access-policy change: one incident for its two events', () => {
  const KV_TIME = '2026-03-14T09:27:10Z';
  // ARM's event of the same change, a few seconds later.
  const ARM_TIME = '2026-03-14T09:27:13.2Z';
  const kvEvent = (time = KV_TIME) => only(normalise(accessPolicyChanged(time), 'eventGrid'));
  const armWrite = (time = ARM_TIME) => only(normalise(accessPolicyWrite(time, EVE), 'eventGrid'));

  it('the Key Vault event first: an honest primary, then exactly one follow-up naming the caller from ARM', async () => {
    const tp = testPipeline();
    const first = await tp.runOne(kvEvent());
    expect(first).toMatchObject({ status: 'acted', kind: 'accessPolicyChanged' });
    const primary = content(primaries(tp)[0]!);
    expect(primary.who.known).toBe(false);
    expect(primary.who.summary).not.toContain('still being identified');
    expect(primary.humanActions.join(' ')).toContain('activity log');

    tp.clock.advance(4_000);
    const second = await tp.runOne(armWrite());
    expect(second).toMatchObject({ status: 'attributed', incidentId: first.incidentId });
    const followUp = content(attributions(tp)[0]!);
    expect(followUp.id).toBe(`${first.incidentId}/attribution`);
    expect(followUp.title).toBe(`Access policy of vault ${PAYMENTS}: changed by ${EVE.upn}`);
    expect(followUp.who).toMatchObject({ known: true, upn: EVE.upn, oid: EVE.oid, ipAddress: EVE.ip });
    expect(followUp.decision.code).toBe('access-policy-changed');

    // Redeliveries of either event, now and later: duplicates of the same incident.
    for (const again of [armWrite(), kvEvent(), armWrite()]) {
      tp.clock.advance(30_000);
      expect(await tp.runOne(again)).toMatchObject({ status: 'duplicate', incidentId: first.incidentId });
    }
    expectEverySinkReceived(tp, [`${first.incidentId}/primary`, `${first.incidentId}/attribution`]);
    expect(tp.ledger.value(PAYMENTS, first.incidentId!)!.state).toBe('closed');
    expectNoWrites(tp);
  });

  it('ARM’s event first: the primary names the caller, and the Key Vault event adds nothing', async () => {
    const tp = testPipeline();
    const first = await tp.runOne(armWrite('2026-03-14T09:27:09.8Z'));
    expect(first).toMatchObject({ status: 'acted', kind: 'accessPolicyChanged' });
    expect(content(primaries(tp)[0]!).who).toMatchObject({ known: true, upn: EVE.upn, oid: EVE.oid });
    tp.clock.advance(2_000);
    expect(await tp.runOne(kvEvent())).toMatchObject({ status: 'duplicate', incidentId: first.incidentId });
    expect(await tp.runOne(armWrite('2026-03-14T09:27:09.8Z'))).toMatchObject({
      status: 'duplicate',
      incidentId: first.incidentId,
    });
    expect(await tp.runOne(kvEvent())).toMatchObject({ status: 'duplicate', incidentId: first.incidentId });
    expectEverySinkReceived(tp, [`${first.incidentId}/primary`]);
  });

  it('both events at the same instant, on two instances: still one incident, one primary, one follow-up', async () => {
    const tp = testPipeline({ latencyMs: 5 });
    const events = [kvEvent, armWrite];
    const settled = await Promise.allSettled(events.map((e) => tp.runOne(e())));
    // A delivery told to come again (RetryableError) is redelivered by Event Grid a while later.
    for (const [i, r] of settled.entries()) {
      if (r.status === 'fulfilled') continue;
      expect(r.reason).toBeInstanceOf(RetryableError);
      tp.clock.advance(10_000);
      await tp.runOne(events[i]!());
    }
    expect(primaries(tp)).toHaveLength(1);
    const incident = primaries(tp)[0]!.incidentId;
    // Whichever came first, the caller ARM names reaches the sinks once: in the primary or in one follow-up.
    const sent = [...primaries(tp), ...attributions(tp)];
    expect(sent.filter((a) => JSON.stringify(a.data).includes(EVE.oid))).toHaveLength(1);
    expectEverySinkReceived(
      tp,
      attributions(tp).length ? [`${incident}/primary`, `${incident}/attribution`] : [`${incident}/primary`],
    );
    for (const e of events) expect((await tp.runOne(e())).status).toBe('duplicate');
  });

  it('two changes a few seconds apart stay two incidents, each with its own caller', async () => {
    const tp = testPipeline();
    const a = await tp.runOne(kvEvent('2026-03-14T09:27:10Z'));
    await tp.runOne(armWrite('2026-03-14T09:27:12Z'));
    const b = await tp.runOne(kvEvent('2026-03-14T09:27:40Z'));
    expect(b.incidentId).not.toBe(a.incidentId);
    const bArm = await tp.runOne(armWrite('2026-03-14T09:27:41Z'));
    expect(bArm).toMatchObject({ status: 'attributed', incidentId: b.incidentId });
    expectEverySinkReceived(tp, [
      `${a.incidentId}/primary`,
      `${a.incidentId}/attribution`,
      `${b.incidentId}/primary`,
      `${b.incidentId}/attribution`,
    ]);
  });

  it('an ARM event outside the window opens its own incident (the caller’s own change)', async () => {
    const tp = testPipeline();
    const a = await tp.runOne(kvEvent('2026-03-14T09:27:10Z'));
    const late = await tp.runOne(armWrite('2026-03-14T09:29:10.001Z'));
    expect(late).toMatchObject({ status: 'acted' });
    expect(late.incidentId).not.toBe(a.incidentId);
    expect(attributions(tp)).toEqual([]);
  });

  it('ARM’s event while the primary is still owed to a sink: the primary goes out, then the follow-up', async () => {
    const tp = testPipeline();
    tp.sink('teams').failNext(1);
    await expect(tp.runOne(kvEvent())).rejects.toBeInstanceOf(RetryableError);
    const second = await tp.runOne(armWrite());
    expect(second.status).toBe('attributed');
    expectEverySinkReceived(tp, [`${second.incidentId}/primary`, `${second.incidentId}/attribution`]);
    expect(content(attributions(tp)[0]!).who.oid).toBe(EVE.oid);
    expect((await tp.runOne(kvEvent())).status).toBe('duplicate');
  });

  it('dry run: plans the follow-up without a write', async () => {
    const tp = testPipeline();
    const first = await tp.runOne(kvEvent());
    const before = JSON.stringify(tp.ledger.value(PAYMENTS, first.incidentId!));
    const planned = await tp.runOne(armWrite(), { dryRun: true });
    expect(planned).toMatchObject({ status: 'planned', incidentId: first.incidentId });
    expect(JSON.stringify(tp.ledger.value(PAYMENTS, first.incidentId!))).toBe(before);
    expect(attributions(tp)).toEqual([]);
  });
});

describe('a refused deletion (403 KeyDelete)', () => {
  it('alerts naming the caller, recovers nothing, and alerts once', async () => {
    const tp = testPipeline();
    const trigger = fromRecord('keydelete-forbidden');
    const outcome = await tp.runOne(trigger);
    expect(outcome).toMatchObject({
      status: 'acted',
      kind: 'keyDeleteDenied',
      decision: { action: 'alert-only', code: 'delete-denied' },
    });
    expect(content(primaries(tp)[0]!).who).toMatchObject({
      upn: TRUDY.upn,
      oid: TRUDY.oid,
      ipAddress: TRUDY.ip,
    });
    expectNoWrites(tp);
    expect(tp.keyVault.keyState(PAYMENTS_HOST, 'cmk-orders')).toBe('active');
    tp.clock.advance(60_000);
    expect((await tp.runOne(trigger)).status).toBe('duplicate');
    expectEverySinkReceived(tp, [`${outcome.incidentId}/primary`]);
  });
});

describe('the inventory (scope)', () => {
  it('keeps the stored scope when an ARM listing fails on a cold start', async () => {
    const tp = testPipeline();
    await tp.inventory.refresh();
    tp.restart();
    tp.vaults.fail('listVaults', failures.transient(503));
    await tp.inventory.refresh();
    const trigger = deletedAsIn(tp, 'keydelete-user-short-claims');
    expect((await tp.runOne(trigger)).status).toBe('acted');
  });

  it('finds a vault created after the last refresh (a scope miss refreshes)', async () => {
    const tp = testPipeline();
    await tp.inventory.refresh();
    tp.clock.advance(60_000);
    tp.vaults.addVault({ name: 'contoso-new', resourceGroup: 'rg-payments' });
    tp.keyVault.addVault('contoso-new.vault.azure.net').createKey('contoso-new.vault.azure.net', 'k1');
    tp.keyVault.deleteKey('contoso-new.vault.azure.net', 'k1');
    const trigger = fromSweptDeletedKey({
      vaultUrl: 'https://contoso-new.vault.azure.net/',
      keyName: 'k1',
      deletedDate: tp.keyVault.deletedOn('contoso-new.vault.azure.net', 'k1')!,
    });
    if (trigger.kind === 'rejection') throw new Error(trigger.message);
    expect((await tp.runOne(trigger)).status).toBe('acted');
    expect(tp.keyVault.keyState('contoso-new.vault.azure.net', 'k1')).toBe('active');
  });
});

describe('a vault that already has purge protection', () => {
  it('recovers the key and does not write the vault', async () => {
    const tp = testPipeline();
    tp.keyVault.deleteKey(ORDERS_HOST, 'cmk-ledger');
    const trigger = fromSweptDeletedKey({
      vaultUrl: `https://${ORDERS_HOST}/`,
      keyName: 'cmk-ledger',
      deletedDate: tp.keyVault.deletedOn(ORDERS_HOST, 'cmk-ledger')!,
    });
    if (trigger.kind === 'rejection') throw new Error(trigger.message);
    const outcome = await tp.runOne(trigger);
    expect(outcome.results).toEqual([{ action: 'recover-key', status: 'succeeded' }]);
    expect(tp.vaults.writes).toEqual([]);
    expect(tp.vaults.vault(ORDERS)!.enablePurgeProtection).toBe(true);
  });
});
