/**
 * The Event Grid alert sink and the signals publisher with the real @azure/eventgrid client and
 * ManagedIdentityCredential, through the emulator's proxy, against emulated custom topics in the
 * CloudEvents schema: what the topic stored (ids, times, attributes), RBAC (`EventGrid Data Sender`),
 * the 1 MB request limit and an injected outage.
 */
import { ManagedIdentityCredential } from '@azure/identity';
import Ajv2020 from 'ajv/dist/2020';
import { EventGridAlertSink } from '../../lib/adapters/sinks';
import { EventGridSignalPublisher, SignalPublishError } from '../../lib/adapters/signals';
import { ALERT_SCHEMA_ID } from '../../lib/alert-text';
import type { AlertMessage, SignalEvent } from '../../lib/ports';
import schema from '../../lib/schemas/alert.v1.schema.json';
import { startHarness, type Harness } from '../emulator/testing/harness';

let h: Harness;
beforeAll(async () => {
  h = await startHarness();
});
afterAll(async () => h.stop());
beforeEach(() => h.emulator.reset());

const validateAlert = new Ajv2020({ strict: true, allErrors: true }).compile(schema);

/** A topic in the CloudEvents schema and the app's user-assigned identity, with or without the sender role. */
function topicWithIdentity(name: string, grant: boolean) {
  const topic = h.emulator.eventGrid.createTopic({
    name,
    region: 'westeurope',
    inputSchema: 'CloudEventSchemaV1_0',
  });
  const mi = h.emulator.addPrincipal({
    kind: 'managedIdentity',
    displayName: 'id-kvguard',
    assignment: 'user',
    roleAssignments: grant ? [{ scope: topic.id, roleName: 'EventGrid Data Sender' }] : [],
  });
  return { topic, mi, credential: new ManagedIdentityCredential({ clientId: mi.appId! }) };
}

function alert(): AlertMessage {
  return {
    id: 'kv-prod-weu.key.k1.1795773600/primary',
    incidentId: 'kv-prod-weu.key.k1.1795773600',
    kind: 'primary',
    severity: 'critical',
    title: 'Key k1 deleted in kv-prod-weu: recovery failed',
    time: new Date('2026-11-27T10:00:01.234Z'),
    data: {
      who: { known: true, summary: 'mallory@contoso.com from 203.0.113.7', upn: 'mallory@contoso.com' },
      what: {
        summary: 'key k1 in kv-prod-weu',
        vaultName: 'kv-prod-weu',
        vaultHost: 'kv-prod-weu.vault.azure.net',
        keyName: 'k1',
        signalTime: '2026-11-27T10:00:00.000Z',
        operationName: 'KeyDelete',
      },
      decision: { action: 'recover-key', code: 'caller-not-allow-listed', reason: 'not allow-listed' },
      actions: [{ action: 'recover-key', status: 'forbidden', summary: 'kvguard lacks keys/recover' }],
      outcome: 'kvguard could not recover k1.',
      humanActions: ['Grant kvguard Microsoft.KeyVault/vaults/keys/recover/action and recover k1.'],
      observeMode: false,
    },
    text: ['Who: mallory@contoso.com', 'Result: recovery forbidden'],
  };
}

function signal(i: number, padding = 10): SignalEvent {
  return {
    id: `0f6c1d2e${String(i).padStart(4, '0')}`,
    type: 'Kvguard.KeyVault.KeyDeleted.v1',
    source: '/kvguard/auditLogForwarder',
    subject: `vaults/kv1/keys/k${i}`,
    time: `2026-11-27T09:59:${String(i % 60).padStart(2, '0')}.5Z`,
    dataschema: 'urn:kvguard:schema:signal-data:v1',
    data: { vaultName: 'kv1', keyName: `k${i}`, note: 'n'.repeat(padding) },
  };
}

describe('EventGridAlertSink against the emulated kvguard-alerts topic', () => {
  it('publishes the alert as a CloudEvent with its id, type, subject, time and schema-valid data', async () => {
    const { topic, mi, credential } = topicWithIdentity('kvguard-alerts', true);
    const sink = new EventGridAlertSink({ endpoint: topic.endpoint!, credential, retryBaseDelayMs: 10 });
    await expect(sink.send(alert())).resolves.toEqual({ ok: true });

    const stored = h.emulator.eventGrid.events('kvguard-alerts');
    expect(stored).toHaveLength(1);
    const event = stored[0]!.event;
    expect(event).toMatchObject({
      specversion: '1.0',
      id: 'kv-prod-weu.key.k1.1795773600/primary',
      type: 'Kvguard.Alert.Primary.v1',
      source: '/kvguard/alerts',
      subject: 'vaults/kv-prod-weu/keys/k1',
      time: '2026-11-27T10:00:01.234Z',
      dataschema: ALERT_SCHEMA_ID,
    });
    expect(validateAlert(event.data)).toBe(true);
    // Through the proxy, with the managed identity's token.
    const published = h.emulator.requests.filter((r) => r.host === topic.hostname && r.method === 'POST');
    expect(published).toEqual([
      expect.objectContaining({ callerOid: mi.oid, status: 200, outcome: 'served' }),
    ]);
  });

  it('answers a missing EventGrid Data Sender role as a permanent failure', async () => {
    const { topic, credential } = topicWithIdentity('kvguard-alerts', false);
    const result = await new EventGridAlertSink({
      endpoint: topic.endpoint!,
      credential,
      retryBaseDelayMs: 10,
    }).send(alert());
    expect(result).toEqual({ ok: false, retryable: false, detail: 'Event Grid: HTTP 401 Unauthorized' });
    expect(h.emulator.eventGrid.events('kvguard-alerts')).toHaveLength(0);
  });

  it('answers an outage that outlasts the SDK retries as retryable', async () => {
    const { topic, credential } = topicWithIdentity('kvguard-alerts', true);
    h.emulator.faults.add({ host: topic.hostname!, kind: 'error', status: 503 });
    const result = await new EventGridAlertSink({
      endpoint: topic.endpoint!,
      credential,
      retryBaseDelayMs: 5,
      maxRetries: 1,
    }).send(alert());
    expect(result).toMatchObject({ ok: false, retryable: true });
    expect(h.emulator.eventGrid.events('kvguard-alerts')).toHaveLength(0);
  });
});

describe('EventGridSignalPublisher against the emulated kvguard-signals topic', () => {
  it('preserves each event id and time (same instant) and its attributes', async () => {
    const { topic, credential } = topicWithIdentity('kvguard-signals', true);
    const events = [signal(1), signal(2), signal(3)];
    await new EventGridSignalPublisher({
      endpoint: topic.endpoint!,
      credential,
      retryBaseDelayMs: 10,
    }).publish(events);

    const stored = h.emulator.eventGrid.events('kvguard-signals').map((s) => s.event);
    expect(stored.map((e) => e.id)).toEqual(events.map((e) => e.id));
    stored.forEach((e, i) => {
      const given = events[i]!;
      expect(e.time).toBe(new Date(given.time).toISOString());
      expect(e).toMatchObject({
        type: given.type,
        source: given.source,
        subject: given.subject,
        dataschema: given.dataschema,
        data: given.data,
      });
    });
  });

  it('splits a batch over 1 MB into requests Event Grid accepts, losing nothing', async () => {
    const { topic, credential } = topicWithIdentity('kvguard-signals', true);
    const events = Array.from({ length: 24 }, (_, i) => signal(i, 120_000)); // ~2.9 MB
    await new EventGridSignalPublisher({
      endpoint: topic.endpoint!,
      credential,
      retryBaseDelayMs: 10,
    }).publish(events);

    const posts = h.emulator.requests.filter((r) => r.host === topic.hostname && r.method === 'POST');
    expect(posts.length).toBeGreaterThanOrEqual(3);
    expect(posts.every((r) => r.status === 200)).toBe(true);
    expect(h.emulator.eventGrid.events('kvguard-signals').map((s) => s.event.id)).toEqual(
      events.map((e) => e.id),
    );
  });

  it('throws a retryable SignalPublishError when the topic stays unavailable', async () => {
    const { topic, credential } = topicWithIdentity('kvguard-signals', true);
    h.emulator.faults.add({ host: topic.hostname!, kind: 'error', status: 503 });
    const error = await new EventGridSignalPublisher({
      endpoint: topic.endpoint!,
      credential,
      retryBaseDelayMs: 5,
      maxRetries: 1,
    })
      .publish([signal(1), signal(2)])
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(SignalPublishError);
    expect(error).toMatchObject({
      retryable: true,
      status: 503,
      published: 0,
      unpublishedIds: [signal(1).id, signal(2).id],
    });
  });
});
