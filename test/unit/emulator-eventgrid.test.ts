/**
 * The emulated Event Grid (test/emulator/eventgrid.ts), driven directly with a fake core and real
 * local HTTP servers as webhooks: publishing in both schemas with keys, SAS tokens and Entra tokens,
 * the limits and error shapes, the validation handshakes, delivery headers, retries on the
 * (compressed) schedule, dead-lettering, and the subscription topic fed by ARM.
 */
import http, { type IncomingHttpHeaders } from 'node:http';
import type { AddressInfo } from 'node:net';
import { AzureKeyCredential, EventGridDeserializer, generateSharedAccessSignature } from '@azure/eventgrid';
import { createArmService } from '../emulator/arm';
import {
  createEventGridService,
  RETRY_SCHEDULE_SECONDS,
  SUBSCRIPTION_SYSTEM_TOPIC,
  type EventGridService,
  type TopicInfo,
} from '../emulator/eventgrid';
import { createFakeCore, request, type FakeCore } from '../emulator/testing/fake-core';
import type { EmuResponse } from '../emulator/types';

// eslint-disable-next-line @typescript-eslint/no-explicit-any -- JSON bodies, read field by field
type Body = Record<string, any>;

const SCALE = 0.001;

interface Received {
  method: string;
  url: string;
  headers: IncomingHttpHeaders;
  body: string;
  at: number;
}

interface Reply {
  status?: number;
  headers?: Record<string, string>;
  body?: unknown;
  /** Never answer (the delivery times out). */
  hang?: boolean;
}

interface Webhook {
  url: string;
  received: Received[];
  notifications(): Received[];
  close(): Promise<void>;
}

const webhooks: Webhook[] = [];

/** A real HTTP server as Event Grid's subscriber; `reply` decides each answer. */
async function startWebhook(
  reply: (r: Received, index: number) => Reply = () => ({ status: 200 }),
): Promise<Webhook> {
  const received: Received[] = [];
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const r: Received = {
        method: req.method ?? '',
        url: req.url ?? '',
        headers: req.headers,
        body: Buffer.concat(chunks).toString('utf8'),
        at: Date.now(),
      };
      received.push(r);
      const answer = reply(r, received.length - 1);
      if (answer.hang) return;
      const payload = answer.body === undefined ? '' : JSON.stringify(answer.body);
      res.writeHead(answer.status ?? 200, { 'content-type': 'application/json', ...(answer.headers ?? {}) });
      res.end(payload);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  const hook: Webhook = {
    url: `http://127.0.0.1:${port}/runtime/webhooks/eventgrid?functionName=keyDeletionResponder`,
    received,
    notifications: () => received.filter((r) => r.headers['aeg-event-type'] === 'Notification'),
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
  webhooks.push(hook);
  return hook;
}

/** Answers Event Grid's validation handshake (either schema), then `then` for notifications. */
function validating(then: (r: Received, index: number) => Reply = () => ({ status: 200 })) {
  let notification = 0;
  return (r: Received): Reply => {
    if (r.headers['aeg-event-type'] === 'SubscriptionValidation') {
      const [event] = JSON.parse(r.body) as Body[];
      return { status: 200, body: { validationResponse: event!.data.validationCode } };
    }
    if (r.method === 'OPTIONS') {
      return {
        status: 200,
        headers: { 'webhook-allowed-origin': String(r.headers['webhook-request-origin']) },
      };
    }
    return then(r, notification++);
  };
}

let core: FakeCore;
let eg: EventGridService;

function setup(options: { deliveryTimeoutMs?: number } = {}) {
  core = createFakeCore();
  eg = createEventGridService(core, {
    retryScale: SCALE,
    deliveryTimeoutMs: options.deliveryTimeoutMs ?? 2000,
  });
}

beforeEach(() => setup());

afterEach(async () => {
  eg.stop();
  await Promise.all(webhooks.splice(0).map((w) => w.close()));
});

function publish(topic: TopicInfo, events: unknown, headers: Record<string, string> = {}): EmuResponse {
  const res = eg.handle(
    request({
      method: 'POST',
      host: topic.hostname!,
      path: '/api/events',
      query: { 'api-version': '2018-01-01' },
      headers: { 'content-type': 'application/json', 'aeg-sas-key': topic.keys!.key1, ...headers },
      body: events,
    }),
  );
  if (res instanceof Promise) throw new Error('the event grid handler is synchronous');
  return res;
}

/** A POST to the topic with exactly the given headers (no key added). */
function post(topic: TopicInfo, events: unknown, headers: Record<string, string> = {}): EmuResponse {
  return eg.handle(
    request({ method: 'POST', host: topic.hostname!, path: '/api/events', headers, body: events }),
  ) as EmuResponse;
}

function egEvent(n: number, type = 'Kvguard.KeyVault.KeyDeleted.v1'): Body {
  return {
    id: `evt-${n}`,
    eventType: type,
    subject: `/vaults/kv1/keys/k${n}`,
    eventTime: '2026-01-01T00:00:00.000Z',
    data: { n },
    dataVersion: '1.0',
  };
}

function cloudEvent(n: number): Body {
  return {
    specversion: '1.0',
    id: `ce-${n}`,
    source: '/kvguard/forwarder',
    type: 'Kvguard.KeyVault.KeyDeleted.v1',
    time: '2026-01-01T00:00:00.000Z',
    datacontenttype: 'application/json',
    data: { n },
  };
}

function expectEventGridError(res: EmuResponse, status: number, code: string): Body {
  expect(res.status).toBe(status);
  const error = (res.body as Body).error as Body;
  expect(error.code).toBe(code);
  expect(error.message).toMatch(/Report '.+' to our forums for assistance or raise a support ticket\.$/);
  expect(error.details).toEqual([{ code: expect.any(String), message: error.message }]);
  return error;
}

describe('topics', () => {
  it('creates a topic with an endpoint two labels deep, an ARM id and two base64 keys', () => {
    const topic = eg.createTopic({ name: 'kvguard-signals', region: 'West Europe' });
    expect(topic).toMatchObject({
      kind: 'custom',
      name: 'kvguard-signals',
      endpoint: 'https://kvguard-signals.westeurope-1.eventgrid.azure.net/api/events',
      hostname: 'kvguard-signals.westeurope-1.eventgrid.azure.net',
      id: `/subscriptions/${core.subscriptionId}/resourceGroups/rg-kvguard/providers/Microsoft.EventGrid/topics/kvguard-signals`,
      inputSchema: 'EventGridSchema',
    });
    expect(Buffer.from(topic.keys!.key1, 'base64')).toHaveLength(32);
    expect(topic.keys!.key1).not.toBe(topic.keys!.key2);
    expect(() => eg.createTopic({ name: 'kvguard-signals' })).toThrow(/already exists/);
    expect(() => eg.createTopic({ name: 'x' })).toThrow(/name/);
  });

  it('has the subscription’s ARM topic built in', () => {
    expect(eg.topics().find((t) => t.name === SUBSCRIPTION_SYSTEM_TOPIC)).toMatchObject({
      kind: 'system',
      source: `/subscriptions/${core.subscriptionId}`,
      topicType: 'Microsoft.Resources.Subscriptions',
    });
  });
});

describe('publishing (Event Grid schema)', () => {
  it('answers exactly 200 without a body and stamps topic and metadataVersion', async () => {
    const topic = eg.createTopic({ name: 'kvguard-signals' });
    const res = publish(topic, [egEvent(1), { ...egEvent(2), topic: 'spoofed', metadataVersion: '9' }]);
    expect(res.status).toBe(200);
    expect(res.body).toBeUndefined();
    const stored = eg.events('kvguard-signals').map((e) => e.event);
    expect(stored).toEqual([
      { ...egEvent(1), topic: topic.id, metadataVersion: '1' },
      { ...egEvent(2), topic: topic.id, metadataVersion: '1' },
    ]);
    // What Event Grid hands on is what the SDK's consumer accepts (it needs topic and metadataVersion 1).
    const parsed = await new EventGridDeserializer().deserializeEventGridEvents(JSON.stringify(stored));
    expect(parsed.map((e) => e.id)).toEqual(['evt-1', 'evt-2']);
    expect(eg.events({ eventType: 'kvguard.keyvault.keydeleted.v1' })).toHaveLength(2);
  });

  it('refuses a request without credentials, with a wrong key, and with an empty key', () => {
    const topic = eg.createTopic({ name: 'kvguard-signals' });
    expect(expectEventGridError(post(topic, [egEvent(1)]), 401, 'Unauthorized').message).toMatch(
      /^Request must contain one of the following authorization signature: aeg-sas-token, aeg-sas-key\./,
    );
    const wrong = publish(topic, [egEvent(1)], { 'aeg-sas-key': Buffer.alloc(32).toString('base64') });
    expect(expectEventGridError(wrong, 401, 'Unauthorized').message).toMatch(
      /^The request authorization key is not authorized for KVGUARD-SIGNALS\.WESTEUROPE-1\.EVENTGRID\.AZURE\.NET\./,
    );
    expectEventGridError(publish(topic, [egEvent(1)], { 'aeg-sas-key': '' }), 400, 'BadRequest');
    expect(eg.events()).toEqual([]);
  });

  it('accepts key2 as well as key1', () => {
    const topic = eg.createTopic({ name: 'kvguard-signals' });
    expect(publish(topic, [egEvent(1)], { 'aeg-sas-key': topic.keys!.key2 }).status).toBe(200);
  });

  it('verifies SAS tokens made by @azure/eventgrid generateSharedAccessSignature', async () => {
    const topic = eg.createTopic({ name: 'kvguard-signals' });
    const key = new AzureKeyCredential(topic.keys!.key1);
    const valid = await generateSharedAccessSignature(topic.endpoint!, key, new Date(core.now() + 3_600_000));
    const withToken = (token: string) => post(topic, [egEvent(1)], { 'aeg-sas-token': token });
    expect(withToken(valid).status).toBe(200);

    const expired = await generateSharedAccessSignature(topic.endpoint!, key, new Date(core.now() - 1000));
    expect(expectEventGridError(withToken(expired), 401, 'Unauthorized').message).toMatch(/expired/);

    const otherKey = new AzureKeyCredential(Buffer.alloc(32, 7).toString('base64'));
    const forged = await generateSharedAccessSignature(
      topic.endpoint!,
      otherKey,
      new Date(core.now() + 3_600_000),
    );
    expectEventGridError(withToken(forged), 401, 'Unauthorized');

    const other = eg.createTopic({ name: 'kvguard-alerts' });
    const elsewhere = await generateSharedAccessSignature(
      other.endpoint!,
      key,
      new Date(core.now() + 3_600_000),
    );
    expectEventGridError(withToken(elsewhere), 401, 'Unauthorized');

    const malformed = expectEventGridError(withToken(topic.keys!.key1), 400, 'BadRequest');
    expect(malformed.message).toMatch(
      /^Invalid key in aeg-sas-token\. Valid format :r=UrlEncodedResource&e=UrlEncodedUtcExpiration&s=UrlEncodedSignature\./,
    );
  });

  it('accepts an Entra token with EventGrid Data Sender on the topic, and only then', () => {
    const topic = eg.createTopic({ name: 'kvguard-signals' });
    const sender = core.addPrincipal({ kind: 'managedIdentity', displayName: 'id-forwarder' });
    const stranger = core.addPrincipal({ kind: 'managedIdentity', displayName: 'id-other' });
    core.grant(sender.oid, topic.id, 'EventGrid Data Sender');
    const send = (authorization: string) => post(topic, [egEvent(1)], { authorization });
    const ok = send(core.bearer(sender, { audience: 'https://eventgrid.azure.net' }));
    expect(ok.status).toBe(200);
    expect(ok.callerOid).toBe(sender.oid);
    const denied = send(core.bearer(stranger, { audience: 'https://eventgrid.azure.net' }));
    expectEventGridError(denied, 401, 'Unauthorized');
    expect(denied.callerOid).toBe(stranger.oid);
    expectEventGridError(
      send(core.bearer(sender, { audience: 'https://management.azure.com' })),
      401,
      'Unauthorized',
    );
  });

  it('refuses keys and SAS tokens when local authentication is disabled', () => {
    const topic = eg.createTopic({ name: 'kvguard-signals', disableLocalAuth: true });
    expectEventGridError(publish(topic, [egEvent(1)]), 401, 'Unauthorized');
  });

  it('answers 413 above 1 MB', () => {
    const topic = eg.createTopic({ name: 'kvguard-signals' });
    const big = { ...egEvent(1), data: { blob: 'x'.repeat(1024 * 1024) } };
    expectEventGridError(publish(topic, [big]), 413, 'RequestEntityTooLarge');
  });

  it.each([
    ['an object instead of an array', egEvent(1), 'InputJsonInvalid'],
    ['an empty array', [], 'InputJsonInvalid'],
    ['an event without eventType', [{ ...egEvent(1), eventType: undefined }], 'InputJsonInvalid'],
    ['an event without dataVersion', [{ ...egEvent(1), dataVersion: undefined }], 'InputJsonInvalid'],
    ['an unparseable eventTime', [{ ...egEvent(1), eventTime: 'yesterday' }], 'InputJsonInvalid'],
    ['a body that is not JSON', '[{', 'InputJsonInvalid'],
  ])('answers 400 to %s', (_what, events, detail) => {
    const topic = eg.createTopic({ name: 'kvguard-signals' });
    const error = expectEventGridError(publish(topic, events), 400, 'BadRequest');
    expect(error.details[0].code).toBe(detail);
  });

  it('answers 400 to CloudEvents sent to an Event Grid schema topic', () => {
    const topic = eg.createTopic({ name: 'kvguard-signals' });
    const error = expectEventGridError(
      publish(topic, [cloudEvent(1)], {
        'content-type': 'application/cloudevents-batch+json; charset=utf-8',
      }),
      400,
      'BadRequest',
    );
    expect(error.message).toMatch(
      /^This resource is configured to receive event in 'EventGridEvent' schema\./,
    );
  });

  it('serves /api/events only: 404 elsewhere, 405 for GET, 200 for OPTIONS', () => {
    const topic = eg.createTopic({ name: 'kvguard-signals' });
    const at = (method: string, path: string) =>
      eg.handle(
        request({ method, host: topic.hostname!, path, headers: { 'aeg-sas-key': topic.keys!.key1 } }),
      ) as EmuResponse;
    expectEventGridError(at('POST', '/api/other'), 404, 'NotFound');
    expectEventGridError(at('GET', '/api/events'), 405, 'MethodNotAllowed');
    expect(at('OPTIONS', '/api/events').status).toBe(200);
    const unknownHost = eg.handle(
      request({ method: 'POST', host: 'nope.westeurope-1.eventgrid.azure.net', path: '/api/events' }),
    ) as EmuResponse;
    expectEventGridError(unknownHost, 404, 'NotFound');
  });
});

describe('publishing (CloudEvents 1.0)', () => {
  it('accepts a batch and a single event in the content types the SDK and the spec use', async () => {
    const topic = eg.createTopic({ name: 'kvguard-alerts', inputSchema: 'CloudEventSchemaV1_0' });
    const batch = publish(topic, [cloudEvent(1), cloudEvent(2)], {
      'content-type': 'application/cloudevents-batch+json; charset=utf-8',
    });
    expect(batch.status).toBe(200);
    const single = publish(topic, cloudEvent(3), {
      'content-type': 'application/cloudevents+json; charset=utf-8',
    });
    expect(single.status).toBe(200);
    const stored = eg.events('kvguard-alerts').map((e) => e.event);
    // CloudEvents are kept as published: no topic or metadataVersion is added.
    expect(stored).toEqual([cloudEvent(1), cloudEvent(2), cloudEvent(3)]);
    expect(await new EventGridDeserializer().deserializeCloudEvents(JSON.stringify(stored))).toHaveLength(3);
  });

  it.each([
    ['a wrong specversion', [{ ...cloudEvent(1), specversion: '0.3' }]],
    ['no source', [{ ...cloudEvent(1), source: undefined }]],
    ['an upper-case attribute', [{ ...cloudEvent(1), myExtension: 'x' }]],
    ['an object for a batch', cloudEvent(1)],
  ])('answers 400 to %s', (_what, events) => {
    const topic = eg.createTopic({ name: 'kvguard-alerts', inputSchema: 'CloudEventSchemaV1_0' });
    expectEventGridError(
      publish(topic, events, { 'content-type': 'application/cloudevents-batch+json; charset=utf-8' }),
      400,
      'BadRequest',
    );
  });

  it('answers 415 to another content type', () => {
    const topic = eg.createTopic({ name: 'kvguard-alerts', inputSchema: 'CloudEventSchemaV1_0' });
    expectEventGridError(
      publish(topic, [cloudEvent(1)], { 'content-type': 'text/plain' }),
      415,
      'UnsupportedMediaType',
    );
  });
});

describe('subscriptions and the validation handshake', () => {
  it('validates an Event Grid schema webhook with a SubscriptionValidationEvent', async () => {
    const topic = eg.createTopic({ name: 'kvguard-signals' });
    const hook = await startWebhook(validating());
    const sub = await eg.subscribe({
      topicName: 'kvguard-signals',
      name: 'responder',
      endpointUrl: hook.url,
    });
    expect(sub).toMatchObject({
      provisioningState: 'Succeeded',
      deliverySchema: 'EventGridSchema',
      maxDeliveryAttempts: 30,
    });
    expect(hook.received).toHaveLength(1);
    const [validation] = hook.received;
    expect(validation!.method).toBe('POST');
    expect(validation!.headers).toMatchObject({
      'aeg-event-type': 'SubscriptionValidation',
      'aeg-subscription-name': 'RESPONDER',
      'content-type': 'application/json; charset=utf-8',
    });
    const events = JSON.parse(validation!.body) as Body[];
    expect(events).toHaveLength(1);
    expect(events[0]).toMatchObject({
      eventType: 'Microsoft.EventGrid.SubscriptionValidationEvent',
      subject: '',
      topic: topic.id,
      metadataVersion: '1',
      dataVersion: '1',
      data: {
        validationCode: expect.any(String),
        validationUrl: expect.stringMatching(
          /^https:\/\/rp-westeurope\.eventgrid\.azure\.net:553\/eventsubscriptions\/responder\/validate\?id=/,
        ),
      },
    });
  });

  it.each([
    ['a wrong code', () => ({ status: 200, body: { validationResponse: 'nope' } })],
    ['a 500', () => ({ status: 500 })],
    ['a 202', () => ({ status: 202, body: {} })],
  ])('fails the subscription when the webhook answers %s', async (_what, answer) => {
    eg.createTopic({ name: 'kvguard-signals' });
    const hook = await startWebhook(answer);
    await expect(
      eg.subscribe({ topicName: 'kvguard-signals', name: 'responder', endpointUrl: hook.url }),
    ).rejects.toThrow(
      /^Webhook validation handshake failed for http:\/\/127\.0\.0\.1:\d+\/runtime\/webhooks\/eventgrid/,
    );
    expect(eg.subscriptions()).toEqual([]);
  });

  it('waits for manual validation when the webhook answers 200 without the code', async () => {
    const topic = eg.createTopic({ name: 'kvguard-signals' });
    const hook = await startWebhook((r) =>
      r.headers['aeg-event-type'] === 'Notification' ? { status: 200 } : { status: 200, body: {} },
    );
    const sub = await eg.subscribe({ topicName: 'kvguard-signals', name: 'manual', endpointUrl: hook.url });
    expect(sub.provisioningState).toBe('AwaitingManualAction');
    publish(topic, [egEvent(1)]);
    await eg.whenIdle();
    expect(hook.notifications()).toHaveLength(0);
    const url = new URL((JSON.parse(hook.received[0]!.body) as Body[])[0]!.data.validationUrl as string);
    const validated = eg.handle(
      request({ method: 'GET', host: url.hostname, path: url.pathname, query: url.search.slice(1) }),
    ) as EmuResponse;
    expect(validated.status).toBe(200);
    expect(eg.subscriptions()[0]!.provisioningState).toBe('Succeeded');
    publish(topic, [egEvent(2)]);
    await eg.whenIdle();
    expect(hook.notifications()).toHaveLength(1);
  });

  it('validates a CloudEvents webhook with an OPTIONS request and WebHook-Allowed-Origin', async () => {
    eg.createTopic({ name: 'kvguard-alerts', inputSchema: 'CloudEventSchemaV1_0' });
    const hook = await startWebhook(validating());
    const sub = await eg.subscribe({ topicName: 'kvguard-alerts', name: 'alerts', endpointUrl: hook.url });
    expect(sub.provisioningState).toBe('Succeeded');
    expect(hook.received[0]).toMatchObject({
      method: 'OPTIONS',
      headers: { 'webhook-request-origin': 'eventgrid.azure.net' },
    });

    const refusing = await startWebhook(() => ({ status: 200 }));
    await expect(
      eg.subscribe({ topicName: 'kvguard-alerts', name: 'alerts2', endpointUrl: refusing.url }),
    ).rejects.toThrow(/Http OPTIONS request failed/);
  });

  it('refuses plain http to another host, an unknown topic and a bad name', async () => {
    eg.createTopic({ name: 'kvguard-signals' });
    await expect(
      eg.subscribe({
        topicName: 'kvguard-signals',
        name: 'responder',
        endpointUrl: 'http://example.com/hook',
      }),
    ).rejects.toThrow(/https/);
    await expect(
      eg.subscribe({ topicName: 'nope', name: 'responder', endpointUrl: 'https://x/' }),
    ).rejects.toThrow(/no topic/);
    await expect(
      eg.subscribe({ topicName: 'kvguard-signals', name: 'a', endpointUrl: 'https://x/' }),
    ).rejects.toThrow(/name/);
  });
});

describe('delivery', () => {
  async function subscribed(
    then: (r: Received, index: number) => Reply = () => ({ status: 200 }),
    extra: Partial<Parameters<EventGridService['subscribe']>[0]> = {},
    schema: 'EventGridSchema' | 'CloudEventSchemaV1_0' = 'EventGridSchema',
  ) {
    const topic = eg.createTopic({ name: 'kvguard-signals', inputSchema: schema });
    const hook = await startWebhook(validating(then));
    await eg.subscribe({ topicName: 'kvguard-signals', name: 'responder', endpointUrl: hook.url, ...extra });
    return { topic, hook };
  }

  it('posts each event on its own, with Event Grid’s headers, after the publisher got its 200', async () => {
    const { topic, hook } = await subscribed();
    const res = publish(topic, [egEvent(1), egEvent(2)]);
    expect(res.status).toBe(200);
    expect(hook.notifications()).toHaveLength(0);
    await eg.whenIdle();
    const sent = hook.notifications();
    expect(sent).toHaveLength(2);
    for (const r of sent) {
      expect(r.headers).toMatchObject({
        'content-type': 'application/json; charset=utf-8',
        'aeg-event-type': 'Notification',
        'aeg-subscription-name': 'RESPONDER',
        'aeg-delivery-count': '0',
        'aeg-data-version': '1.0',
        'aeg-metadata-version': '1',
      });
    }
    const bodies = sent.map((r) => JSON.parse(r.body) as Body[]);
    expect(bodies.map((b) => b.map((e) => e.id)).sort()).toEqual([['evt-1'], ['evt-2']]);
    expect(bodies[0]![0]).toMatchObject({ topic: topic.id, metadataVersion: '1' });
    expect(eg.deliveries().map((d) => [d.attempt, d.status, d.outcome])).toEqual([
      [1, 200, 'Delivered'],
      [1, 200, 'Delivered'],
    ]);
  });

  it('filters by event type without case and by subject prefix', async () => {
    const { topic, hook } = await subscribed(undefined, {
      includedEventTypes: ['KVGUARD.KEYVAULT.KEYDELETED.V1'],
      subjectBeginsWith: '/VAULTS/kv1/',
    });
    publish(topic, [
      egEvent(1),
      egEvent(2, 'Kvguard.Other'),
      { ...egEvent(3), subject: '/vaults/kv2/keys/k3' },
    ]);
    await eg.whenIdle();
    expect(hook.notifications().map((r) => (JSON.parse(r.body) as Body[])[0]!.id)).toEqual(['evt-1']);
  });

  it('batches up to maxEventsPerBatch events per request', async () => {
    const { topic, hook } = await subscribed(undefined, { maxEventsPerBatch: 2 });
    publish(topic, [egEvent(1), egEvent(2), egEvent(3)]);
    await eg.whenIdle();
    expect(
      hook
        .notifications()
        .map((r) => (JSON.parse(r.body) as Body[]).length)
        .sort(),
    ).toEqual([1, 2]);
  });

  it('retries on Event Grid’s schedule (compressed) until the subscriber succeeds', async () => {
    const { topic, hook } = await subscribed((_r, i) => ({ status: i < 2 ? 503 : 200 }));
    publish(topic, [egEvent(1)]);
    await eg.whenIdle();
    const sent = hook.notifications();
    expect(sent.map((r) => r.headers['aeg-delivery-count'])).toEqual(['0', '1', '2']);
    expect(sent[1]!.at - sent[0]!.at).toBeGreaterThanOrEqual(RETRY_SCHEDULE_SECONDS[0] * 1000 * SCALE - 2);
    expect(sent[2]!.at - sent[1]!.at).toBeGreaterThanOrEqual(RETRY_SCHEDULE_SECONDS[1] * 1000 * SCALE - 2);
    expect(eg.deliveries().map((d) => [d.attempt, d.outcome])).toEqual([
      [1, 'ServiceUnavailable'],
      [2, 'ServiceUnavailable'],
      [3, 'Delivered'],
    ]);
    expect(eg.deadLetters()).toEqual([]);
  });

  it('dead-letters after maxDeliveryAttempts with the reason, attempts and last outcome', async () => {
    const { topic } = await subscribed(() => ({ status: 500 }), { maxDeliveryAttempts: 3 });
    publish(topic, [egEvent(1)]);
    await eg.whenIdle();
    const [dead] = eg.deadLetters();
    expect(dead).toMatchObject({
      subscription: 'responder',
      deadLetterReason: 'MaxDeliveryAttemptsExceeded',
      deliveryAttempts: 3,
      lastDeliveryOutcome: 'InternalServerError',
      lastHttpStatusCode: 500,
      event: {
        id: 'evt-1',
        deadLetterReason: 'MaxDeliveryAttemptsExceeded',
        deliveryAttempts: 3,
        lastDeliveryOutcome: 'InternalServerError',
        publishTime: expect.any(String),
        lastDeliveryAttemptTime: expect.any(String),
      },
    });
    expect(eg.deadLetters()).toHaveLength(1);
  });

  it.each([
    [400, 'UndeliverableDueToHttpBadRequest', 'BadRequest'],
    [401, 'UndeliverableDueToHttpUnauthorized', 'Unauthorized'],
    [403, 'UndeliverableDueToHttpForbidden', 'Forbidden'],
    [413, 'UndeliverableDueToHttpRequestEntityTooLarge', 'RequestEntityTooLarge'],
  ])('does not retry a %i: dead-letters it at once', async (status, reason, outcome) => {
    const { topic, hook } = await subscribed(() => ({ status }));
    publish(topic, [egEvent(1)]);
    await eg.whenIdle();
    expect(hook.notifications()).toHaveLength(1);
    expect(eg.deadLetters()[0]).toMatchObject({
      deadLetterReason: reason,
      deliveryAttempts: 1,
      lastDeliveryOutcome: outcome,
    });
  });

  it('dead-letters when the next retry would fall after the event’s time to live', async () => {
    // 1 minute: retries after 10 s and 30 s fit, the one after another 60 s does not.
    const { topic, hook } = await subscribed(() => ({ status: 503 }), { eventTimeToLiveInMinutes: 1 });
    publish(topic, [egEvent(1)]);
    await eg.whenIdle();
    expect(hook.notifications()).toHaveLength(3);
    expect(eg.deadLetters()[0]).toMatchObject({
      deadLetterReason: 'TimeToLiveExceeded',
      deliveryAttempts: 3,
    });
  });

  it('drops instead of dead-lettering when dead-lettering is off', async () => {
    const { topic } = await subscribed(() => ({ status: 400 }), { deadLetter: false });
    publish(topic, [egEvent(1)]);
    await eg.whenIdle();
    expect(eg.deadLetters()).toEqual([]);
    expect(core.logs.some((l) => l.includes('dropped 1 event(s) for responder'))).toBe(true);
  });

  it('counts a subscriber that does not answer in time as TimedOut and retries it', async () => {
    setup({ deliveryTimeoutMs: 100 });
    const { topic, hook } = await subscribed((_r, i) => (i === 0 ? { hang: true } : { status: 200 }));
    publish(topic, [egEvent(1)]);
    await eg.whenIdle();
    expect(eg.deliveries().map((d) => d.outcome)).toEqual(['TimedOut', 'Delivered']);
    expect(hook.notifications()).toHaveLength(2);
  });

  it('delivers CloudEvents one by one as application/cloudevents+json, dead letters in lower case', async () => {
    const { topic, hook } = await subscribed(() => ({ status: 400 }), {}, 'CloudEventSchemaV1_0');
    publish(topic, [cloudEvent(1)], { 'content-type': 'application/cloudevents-batch+json; charset=utf-8' });
    await eg.whenIdle();
    const [sent] = hook.notifications();
    expect(sent!.headers['content-type']).toBe('application/cloudevents+json; charset=utf-8');
    expect(sent!.headers['aeg-metadata-version']).toBe('1.0');
    expect(sent!.headers).not.toHaveProperty('aeg-data-version');
    expect(JSON.parse(sent!.body)).toEqual(cloudEvent(1));
    expect(eg.deadLetters()[0]!.event).toMatchObject({
      id: 'ce-1',
      deadletterreason: 'UndeliverableDueToHttpBadRequest',
      deliveryattempts: 1,
      lastdeliveryoutcome: 'BadRequest',
    });
  });

  it('stops: pending retries are cancelled and nothing more is sent', async () => {
    const { topic, hook } = await subscribed(() => ({ status: 503 }));
    publish(topic, [egEvent(1)]);
    for (let i = 0; i < 100 && hook.notifications().length === 0; i++)
      await new Promise((r) => setTimeout(r, 5));
    eg.stop();
    await eg.whenIdle();
    await new Promise((r) => setTimeout(r, 60));
    expect(hook.notifications()).toHaveLength(1);
    publish(topic, [egEvent(2)]);
    await new Promise((r) => setTimeout(r, 20));
    expect(hook.notifications()).toHaveLength(1);
  });

  it('resets to the built-in topic only', async () => {
    const { topic } = await subscribed();
    publish(topic, [egEvent(1)]);
    await eg.whenIdle();
    eg.reset();
    expect(eg.topics().map((t) => t.name)).toEqual([SUBSCRIPTION_SYSTEM_TOPIC]);
    expect([eg.events(), eg.deliveries(), eg.subscriptions()]).toEqual([[], [], []]);
  });
});

describe('the subscription topic fed by ARM', () => {
  it('delivers the ResourceWriteSuccess of a vault PATCH to a subscriber of the subscription topic', async () => {
    core.publishSubscriptionEvent = (event) => {
      eg.publishSystem(`/subscriptions/${core.subscriptionId}`, [event]);
    };
    const arm = createArmService(core);
    const admin = core.addPrincipal({ kind: 'user', upn: 'alice@contoso.com' });
    core.grant(admin.oid, `/subscriptions/${core.subscriptionId}`, 'Contributor');
    core.addVault({ name: 'kv1' });
    const hook = await startWebhook(validating());
    await eg.subscribe({
      topicName: `/subscriptions/${core.subscriptionId}`,
      name: 'vault-changes',
      endpointUrl: hook.url,
      includedEventTypes: [
        'Microsoft.Resources.ResourceWriteSuccess',
        'Microsoft.Resources.ResourceDeleteSuccess',
      ],
    });
    const res = await arm(
      request({
        method: 'PATCH',
        host: 'management.azure.com',
        path: `/subscriptions/${core.subscriptionId}/resourceGroups/rg-test/providers/Microsoft.KeyVault/vaults/kv1`,
        query: { 'api-version': '2026-02-01' },
        headers: { authorization: core.bearer(admin, { audience: 'https://management.azure.com' }) },
        body: { properties: { enablePurgeProtection: true } },
      }),
    );
    expect(res.status).toBe(200);
    await eg.whenIdle();
    const [sent] = hook.notifications();
    const [event] = JSON.parse(sent!.body) as Body[];
    expect(event).toMatchObject({
      eventType: 'Microsoft.Resources.ResourceWriteSuccess',
      topic: `/subscriptions/${core.subscriptionId}`,
      metadataVersion: '1',
      dataVersion: '2',
      data: { operationName: 'Microsoft.KeyVault/vaults/write' },
    });
    expect(await new EventGridDeserializer().deserializeEventGridEvents(sent!.body)).toHaveLength(1);
    expect(eg.events(SUBSCRIPTION_SYSTEM_TOPIC)).toHaveLength(1);
  });

  it('refuses to publish to a topic it does not have', () => {
    expect(() => eg.publishSystem('/subscriptions/other', [egEvent(1)])).toThrow(/no topic/);
  });
});
