/**
 * Alert sinks and the signals publisher against real local HTTPS receivers (certificates from the
 * emulator CA, which `npm test` makes this process trust): what each receiver got, how each status
 * maps to a SinkResult, the HMAC recipe, escaping of caller-controlled strings, that no webhook URL or
 * secret leaks into a result or a log line, and that every payload matches alert.v1.schema.json.
 */
import { createHmac } from 'node:crypto';
import { createServer as createHttpServer, type IncomingHttpHeaders } from 'node:http';
import { createServer, type Server } from 'node:https';
import { connect, type AddressInfo, type Socket } from 'node:net';
import Ajv2020 from 'ajv/dist/2020';
import type { TokenCredential } from '@azure/identity';
import {
  ALERT_SCHEMA_ID,
  escapeSlack,
  escapeTeamsMarkdown,
  renderPlainText,
  renderSlackMessage,
  renderTeamsMessage,
  scrubAlertString,
  toAlertPayload,
  type AlertPayloadV1,
} from '../../lib/alert-text';
import {
  ALERT_EVENT_TYPES,
  alertIdHeader,
  EventGridAlertSink,
  LogSink,
  SignedWebhookSink,
  SlackWebhookSink,
  TeamsWorkflowSink,
  signWebhookBody,
  verifyWebhookSignature,
} from '../../lib/adapters/sinks';
import {
  chunkBySize,
  cloudEventBytes,
  EventGridSignalPublisher,
  SignalPublishError,
  toSignalCloudEvent,
} from '../../lib/adapters/signals';
import { composeAlert } from '../../lib/core/alert';
import { decide, type ResponsePolicy } from '../../lib/core/decide';
import type {
  ActionResult,
  ActionStatus,
  AlertContent,
  Caller,
  DecisionAction,
  DecisionCode,
  ObservedKey,
  VaultTrigger,
} from '../../lib/core/model';
import { toAlertMessage } from '../../lib/pipeline';
import { createLogger } from '../../lib/logging';
import type { AlertMessage, SignalEvent } from '../../lib/ports';
import schema from '../../lib/schemas/alert.v1.schema.json';
import { ensureCertificateAuthority } from '../emulator/ca';

// ---------------------------------------------------------------------------------------------
// Receivers
// ---------------------------------------------------------------------------------------------

interface Received {
  method: string;
  url: string;
  headers: IncomingHttpHeaders;
  body: Buffer;
}

type Reply = { status: number; body?: string; headers?: Record<string, string> } | 'hang';

interface Receiver {
  base: string;
  port: number;
  received: Received[];
  reply: (req: Received) => Reply;
  close(): Promise<void>;
}

async function startReceiver(hosts: string[] = ['127.0.0.1', 'localhost']): Promise<Receiver> {
  const { cert, key } = ensureCertificateAuthority().leafFor(hosts);
  const receiver = {
    received: [] as Received[],
    reply: (): Reply => ({ status: 200, body: 'ok' }),
  } as unknown as Receiver;
  const server: Server = createServer({ cert, key }, (req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const got: Received = {
        method: req.method ?? '',
        url: req.url ?? '',
        headers: req.headers,
        body: Buffer.concat(chunks),
      };
      receiver.received.push(got);
      const reply = receiver.reply(got);
      if (reply === 'hang') return;
      res.writeHead(reply.status, { 'content-type': 'text/plain', ...(reply.headers ?? {}) });
      res.end(reply.body ?? '');
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  receiver.port = port;
  receiver.base = `https://127.0.0.1:${port}`;
  receiver.close = () =>
    new Promise<void>((resolve) => {
      server.closeAllConnections();
      server.close(() => resolve());
    });
  return receiver;
}

/** An HTTPS CONNECT proxy that tunnels every host to one local port and records what it was asked. */
async function startConnectProxy(
  targetPort: number,
): Promise<{ url: string; connects: string[]; close(): Promise<void> }> {
  const connects: string[] = [];
  const sockets = new Set<Socket>();
  const server = createHttpServer();
  server.on('connect', (req, client: Socket) => {
    connects.push(req.url ?? '');
    const upstream = connect(targetPort, '127.0.0.1', () => {
      client.write('HTTP/1.1 200 Connection Established\r\n\r\n');
      upstream.pipe(client);
      client.pipe(upstream);
    });
    for (const s of [client, upstream]) {
      sockets.add(s);
      s.on('error', () => s.destroy());
      s.on('close', () => sockets.delete(s));
    }
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    connects,
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}

const fakeCredential: TokenCredential = {
  getToken: async () => ({ token: 'fake-eventgrid-token', expiresOnTimestamp: Date.now() + 3600_000 }),
};

// ---------------------------------------------------------------------------------------------
// Alerts
// ---------------------------------------------------------------------------------------------

const HOSTILE_UA =
  'curl/8.5 [click here](https://evil.test/phish) <!channel> <https://evil.test|log in> **urgent** _it_ {{DATE(2017-02-14T06:08:39Z, SHORT)}} & more';
const JWT =
  'eyJ0eXAiOiJKV1QiLCJhbGciOiJSUzI1NiJ9.eyJhdWQiOiJodHRwczovL3ZhdWx0LmF6dXJlLm5ldCIsIm9pZCI6IngifQ.c2lnbmF0dXJlLXBhcnQtb2YtdGhlLXRva2Vu';

function incidentDetails(): Omit<AlertContent, 'id' | 'incidentId' | 'kind' | 'title' | 'severity'> {
  return {
    who: {
      known: true,
      summary: `mallory@contoso.com (oid 6f1c…) from 203.0.113.7 using ${HOSTILE_UA}`,
      upn: 'mallory_ext#EXT#@contoso.onmicrosoft.com',
      oid: '6f1c9d4e-6a1b-4c0e-9f59-3f6a2b7c8d90',
      ipAddress: '203.0.113.7',
      userAgent: HOSTILE_UA,
    },
    what: {
      summary: 'key payments-signing in vault kv-prod-weu',
      vaultName: 'kv-prod-weu',
      vaultHost: 'kv-prod-weu.vault.azure.net',
      vaultResourceId:
        '/subscriptions/00000000-0000-4000-8000-000000000001/resourceGroups/rg-kv/providers/Microsoft.KeyVault/vaults/kv-prod-weu',
      keyName: 'payments-signing',
      signalTime: '2026-11-27T10:00:00.000Z',
      operationName: 'KeyDelete',
    },
    decision: {
      action: 'recover-key',
      code: 'caller-not-allow-listed',
      reason: 'the caller is not on the allow-list',
    },
    actions: [
      { action: 'recover-key', status: 'succeeded', summary: 'recovered after 3 polls (412 ms)' },
      {
        action: 'enable-purge-protection',
        status: 'already-done',
        summary: 'purge protection was already on',
      },
    ],
    outcome: 'kvguard recovered payments-signing; purge protection is on.',
    humanActions: ['Ask mallory@contoso.com why the key was deleted and review their access.'],
    observeMode: false,
  };
}

function primaryAlert(overrides: Partial<AlertMessage> = {}): AlertMessage {
  return {
    id: 'kv-prod-weu.key.payments-signing.1795773600/primary',
    incidentId: 'kv-prod-weu.key.payments-signing.1795773600',
    kind: 'primary',
    severity: 'warning',
    title: 'Key payments-signing deleted in kv-prod-weu: recovered',
    time: new Date('2026-11-27T10:00:01.234Z'),
    data: incidentDetails(),
    text: [
      `Who: mallory@contoso.com from 203.0.113.7 using ${HOSTILE_UA}`,
      'What: key payments-signing in kv-prod-weu (KeyDelete at 2026-11-27T10:00:00.000Z)',
      'Did: recovered the key; purge protection already on',
      '- Next: ask mallory why',
    ],
    ...overrides,
  };
}

const ajv = new Ajv2020({ strict: true, allErrors: true });
const validateAlert = ajv.compile<AlertPayloadV1>(schema);

function expectValid(payload: unknown): void {
  const ok = validateAlert(payload);
  expect(validateAlert.errors ?? []).toEqual([]);
  expect(ok).toBe(true);
}

const SECRET = 'whsec-0123456789abcdef0123456789abcdef';

let rx: Receiver;
beforeAll(async () => {
  rx = await startReceiver();
});
afterAll(async () => rx.close());
beforeEach(() => {
  rx.received.length = 0;
  rx.reply = () => ({ status: 200, body: 'ok' });
});

// ---------------------------------------------------------------------------------------------

describe('alert payload v1', () => {
  it('validates against alert.v1.schema.json for every kind', () => {
    expectValid(toAlertPayload(primaryAlert()));
    expectValid(
      toAlertPayload(primaryAlert({ id: 'i1/attribution', kind: 'attribution', severity: 'critical' })),
    );
    expectValid(
      toAlertPayload(
        primaryAlert({
          id: 'op/forwarder-poison',
          incidentId: 'op',
          kind: 'operational',
          data: { records: 3, container: 'kvguard-poison' },
        }),
      ),
    );
    expectValid(
      toAlertPayload(
        primaryAlert({ id: 'drift/2026-11-27', incidentId: 'drift', kind: 'drift', data: { items: [] } }),
      ),
    );
  });

  it('validates the alerts the pipeline composes (composeAlert → toAlertMessage)', () => {
    const policy: ResponsePolicy = {
      mode: 'enforce',
      allowList: { objectIds: ['aaaaaaaa-0000-4000-8000-000000000001'], appIds: [] },
      vaultDeletion: 'recover',
    };
    const attacker: Caller = {
      oid: '6f1c2d3e-4a5b-4c6d-8e7f-90a1b2c3d4e5',
      upn: 'mallory@contoso.example',
      ipAddress: '203.0.113.47',
      userAgent: HOSTILE_UA,
    };
    const base = {
      vaultName: 'contoso-payments',
      vaultHost: 'contoso-payments.vault.azure.net',
      signalTime: '2026-03-14T09:26:53.589Z',
      eventId: 'e1',
    };
    const deleted: VaultTrigger = {
      ...base,
      source: 'auditLog',
      kind: 'keyDeleted',
      keyName: 'cmk-orders',
      operationName: 'KeyDelete',
      caller: attacker,
    };
    const swept: VaultTrigger = {
      ...base,
      source: 'sweep',
      kind: 'sweptDeletedKey',
      keyName: 'cmk-orders',
      deletedDate: base.signalTime,
      operationName: 'sweep',
    };
    const key: ObservedKey = { state: 'deleted', tags: {} };
    const cases: Array<{
      trigger: VaultTrigger;
      kind: 'primary' | 'attribution';
      results?: ActionResult[];
      mode?: 'observe';
    }> = [
      {
        trigger: deleted,
        kind: 'primary',
        results: [
          { action: 'recover-key', status: 'succeeded' },
          { action: 'enable-purge-protection', status: 'succeeded' },
        ],
      },
      {
        trigger: deleted,
        kind: 'primary',
        results: [{ action: 'recover-key', status: 'forbidden', requiredPermission: 'keys/recover' }],
      },
      { trigger: swept, kind: 'primary' },
      { trigger: deleted, kind: 'attribution' },
      { trigger: deleted, kind: 'primary', mode: 'observe' },
    ];
    for (const c of cases) {
      const decision = decide({
        trigger: c.trigger,
        now: '2026-03-14T10:00:00.000Z',
        policy: { ...policy, mode: c.mode ?? 'enforce' },
        key,
      });
      const content = composeAlert({
        incidentId: 'key_contoso-payments_cmk-orders_20260314t092654.000z',
        kind: c.kind,
        trigger: c.trigger,
        decision,
        key,
        ...(c.results ? { results: c.results } : {}),
        ...(c.mode ? { observeMode: true } : {}),
      });
      const payload = toAlertPayload(toAlertMessage(content, new Date('2026-03-14T10:00:01.000Z')));
      expectValid(payload);
      expect(payload.subject).toBe('vaults/contoso-payments/keys/cmk-orders');
    }
  });

  it('is refused by the schema when an incident alert lacks the incident details', () => {
    const payload = toAlertPayload(primaryAlert({ data: { who: { known: false } } }));
    expect(validateAlert(payload)).toBe(false);
  });

  it('lists exactly the decision codes, actions and action statuses of lib/core/model.ts', () => {
    // Exhaustive records: a value added to a union without being added here fails to compile.
    const codes: Record<DecisionCode, true> = {
      'allow-listed-caller': true,
      'caller-not-allow-listed': true,
      'sanctioned-tag': true,
      'sanctioned-tag-misused': true,
      untagged: true,
      'tag-expired': true,
      'tag-too-far-ahead': true,
      'tag-unparsable': true,
      'attribution-allow-listed-sanctioned': true,
      'attribution-allow-listed-untagged': true,
      'attribution-not-allow-listed': true,
      'attribution-nothing-new': true,
      'key-already-active': true,
      'key-purged': true,
      'key-not-recoverable': true,
      'delete-denied': true,
      'vault-deleted': true,
      'vault-deletion-alert-only': true,
      'vault-already-active': true,
      'vault-not-recoverable': true,
      'vault-weakened': true,
      'vault-write-no-weakening': true,
      'vault-write-no-baseline': true,
      'access-policy-changed': true,
    };
    const actions: Record<DecisionAction, true> = {
      'recover-key': true,
      'recover-vault': true,
      'leave-deleted': true,
      'close-incident': true,
      'alert-only': true,
      none: true,
    };
    const statuses: Record<ActionStatus, true> = {
      succeeded: true,
      'already-done': true,
      planned: true,
      'not-recoverable': true,
      forbidden: true,
      throttled: true,
      pending: true,
      failed: true,
    };
    const defs = schema.$defs;
    expect([...defs.decisionCode.enum].sort()).toEqual(Object.keys(codes).sort());
    expect([...defs.decisionAction.enum].sort()).toEqual(Object.keys(actions).sort());
    expect([...defs.incidentDetails.properties.actions.items.properties.status.enum].sort()).toEqual(
      Object.keys(statuses).sort(),
    );
  });

  it('names the vault and key as subject, the schema id, and the time in UTC milliseconds', () => {
    const p = toAlertPayload(primaryAlert());
    expect(p).toMatchObject({
      schema: ALERT_SCHEMA_ID,
      subject: 'vaults/kv-prod-weu/keys/payments-signing',
      time: '2026-11-27T10:00:01.234Z',
    });
    expect(toAlertPayload(primaryAlert({ kind: 'operational', incidentId: 'op-1', data: {} })).subject).toBe(
      'incidents/op-1',
    );
  });

  it('scrubs JWTs, sig= values, bearer tokens, key material and PEM blocks from every string', () => {
    const modulus = 'A'.repeat(20) + 'x9_-'.repeat(80);
    const alert = primaryAlert({
      title: `token ${JWT}`,
      text: [
        `url https://prod-12.westeurope.logic.azure.com/workflows/abc?sv=1.0&sig=S3cr3tSigValue123`,
        `Authorization: Bearer abc.def`,
      ],
      data: {
        ...incidentDetails(),
        extra: {
          jwk: { kty: 'RSA', n: modulus, d: 'private-exponent' },
          clientSecret: 'hunter2-client-secret',
          pem: '-----BEGIN PRIVATE KEY-----\nMIIEv\n-----END PRIVATE KEY-----',
        },
      },
    });
    const json = JSON.stringify(toAlertPayload(alert));
    for (const secret of [
      JWT,
      'S3cr3tSigValue123',
      'abc.def',
      modulus,
      'private-exponent',
      'hunter2',
      'MIIEv',
    ]) {
      expect(json).not.toContain(secret);
    }
    expect(json).toContain('[redacted-jwt]');
    // ARM ids and URLs are not mistaken for key material.
    expect(json).toContain(
      '/subscriptions/00000000-0000-4000-8000-000000000001/resourceGroups/rg-kv/providers/Microsoft.KeyVault/vaults/kv-prod-weu',
    );
  });

  it('removes bidi overrides and control characters', () => {
    expect(scrubAlertString('evil\u202Etxt.exe\u0007')).toBe('eviltxt.exe');
  });

  it('survives cyclic, throwing and odd details without throwing', () => {
    const cyclic: Record<string, unknown> = {
      n: 1n,
      f: () => 1,
      nan: Number.NaN,
      when: new Date('2026-01-01T00:00:00Z'),
    };
    cyclic.self = cyclic;
    Object.defineProperty(cyclic, 'boom', {
      enumerable: true,
      get() {
        throw new Error('getter');
      },
    });
    const p = toAlertPayload(primaryAlert({ kind: 'operational', data: cyclic }));
    expect(p.details).toEqual({ n: '1', nan: null, when: '2026-01-01T00:00:00.000Z', self: '[circular]' });
  });
});

describe('escaping caller-controlled strings', () => {
  it('Slack: escapes the control characters so no link, mention or broadcast can be injected', () => {
    expect(escapeSlack('<!channel> <https://evil.test|x> & <@U123>')).toBe(
      '&lt;!channel&gt; &lt;https://evil.test|x&gt; &amp; &lt;@U123&gt;',
    );
    const message = renderSlackMessage(toAlertPayload(primaryAlert()));
    const texts: string[] = [message.text];
    for (const block of message.blocks) {
      const b = block as {
        text?: { text: string; verbatim?: boolean };
        fields?: Array<{ text: string; verbatim?: boolean }>;
        elements?: Array<{ text: string; verbatim?: boolean }>;
      };
      for (const t of [b.text, ...(b.fields ?? []), ...(b.elements ?? [])]) {
        if (!t) continue;
        expect(t.verbatim).toBe(true);
        texts.push(t.text);
      }
    }
    for (const t of texts) expect(t).not.toMatch(/[<>]/);
    expect(texts.join('\n')).toContain('&lt;!channel&gt;');
    expect(message).toMatchObject({ unfurl_links: false, unfurl_media: false });
  });

  it('Teams: escapes markdown so no link or formatting can be injected', () => {
    expect(escapeTeamsMarkdown('[x](https://evil.test) **b** _i_ `c` ~s~ <at>me</at>')).toBe(
      '\\[x\\](https://evil.test) \\*\\*b\\*\\* \\_i\\_ \\`c\\` \\~s\\~ \\<at\\>me\\</at\\>',
    );
    expect(escapeTeamsMarkdown('- item')).toBe('\\- item');
    expect(escapeTeamsMarkdown('1. item')).toBe('1\\. item');
    expect(escapeTeamsMarkdown('{{DATE(x)}}')).toBe('{\u200b{DATE(x)}}');
    const card = renderTeamsMessage(toAlertPayload(primaryAlert())).attachments[0]!.content;
    const texts = card.body.flatMap((el) =>
      el.type === 'FactSet' ? (el.facts as Array<{ value: string }>).map((f) => f.value) : [String(el.text)],
    );
    for (const t of texts) {
      expect(t).not.toMatch(/(?<!\\)\]\(/); // no link can form, even where backslash escapes are ignored
      expect(t).not.toMatch(/(?<!\\)[*_`<>[]/);
    }
    expect(texts.join('\n')).toContain('\\[click here\\](https://evil.test/phish)');
  });

  it('plain text keeps one line per text line', () => {
    const text = renderPlainText(toAlertPayload(primaryAlert({ text: ['a\nb', 'c'] })));
    expect(text.split('\n')).toEqual([
      '[WARNING] Key payments-signing deleted in kv-prod-weu: recovered',
      'alert kv-prod-weu.key.payments-signing.1795773600/primary (primary) at 2026-11-27T10:00:01.234Z on vaults/kv-prod-weu/keys/payments-signing',
      '  a b',
      '  c',
    ]);
  });
});

describe('TeamsWorkflowSink', () => {
  it('posts an Adaptive Card 1.4 in the Workflows message envelope with the alert id header', async () => {
    rx.reply = () => ({ status: 202 });
    const sink = new TeamsWorkflowSink({
      url: `${rx.base}/workflows/abc/triggers/manual/paths/invoke?api-version=1&sig=TopSecretSig0001`,
    });
    await expect(sink.send(primaryAlert())).resolves.toEqual({ ok: true });
    expect(rx.received).toHaveLength(1);
    const got = rx.received[0]!;
    expect(got.method).toBe('POST');
    expect(got.headers['x-kvguard-alert-id']).toBe('kv-prod-weu.key.payments-signing.1795773600/primary');
    expect(got.headers['content-type']).toBe('application/json; charset=utf-8');
    const body = JSON.parse(got.body.toString('utf8'));
    expect(Object.keys(body).sort()).toEqual(['attachments', 'type']);
    expect(body.type).toBe('message');
    expect(body.attachments).toHaveLength(1);
    expect(body.attachments[0].contentType).toBe('application/vnd.microsoft.card.adaptive');
    const card = body.attachments[0].content;
    expect(card).toMatchObject({
      type: 'AdaptiveCard',
      version: '1.4',
      $schema: 'http://adaptivecards.io/schemas/adaptive-card.json',
    });
    expect(Array.isArray(card.body)).toBe(true);
    for (const el of card.body) {
      expect(['TextBlock', 'FactSet']).toContain(el.type);
      if (el.type === 'TextBlock') expect(typeof el.text).toBe('string');
      else for (const f of el.facts) expect(Object.keys(f).sort()).toEqual(['title', 'value']);
    }
    expect(card.body[0].text).toContain('WARNING: Key payments-signing deleted in kv-prod-weu: recovered');
    expect(got.body.length).toBeLessThan(28 * 1024);
  });

  it('keeps a huge alert under the 28 KB Teams limit', async () => {
    const sink = new TeamsWorkflowSink({ url: `${rx.base}/t` });
    await sink.send(primaryAlert({ text: Array.from({ length: 60 }, (_, i) => `${i} ${'x'.repeat(1900)}`) }));
    expect(rx.received[0]!.body.length).toBeLessThan(28 * 1024);
    expect(rx.received[0]!.body.toString()).toContain('more lines');
  });

  it.each([
    [200, { ok: true }],
    [202, { ok: true }],
    [204, { ok: true }],
    [400, { ok: false, retryable: false }],
    [401, { ok: false, retryable: false }],
    [404, { ok: false, retryable: false }],
    [302, { ok: false, retryable: false }],
    [408, { ok: false, retryable: true }],
    [429, { ok: false, retryable: true }],
    [500, { ok: false, retryable: true }],
    [502, { ok: false, retryable: true }],
  ])('maps HTTP %i to %j', async (status, expected) => {
    rx.reply = () => ({
      status,
      body: '{"error":{"code":"TriggerInputSchemaMismatch","message":"x"}}',
      headers: { location: `${rx.base}/elsewhere` },
    });
    const result = await new TeamsWorkflowSink({ url: `${rx.base}/t` }).send(primaryAlert());
    expect(result).toMatchObject(expected);
    expect(rx.received).toHaveLength(1); // no retry, no redirect followed
    if (!result.ok)
      expect(result.detail).toBe(
        `HTTP ${status} TriggerInputSchemaMismatch${status === 302 ? ' (redirect not followed)' : ''}`,
      );
  });
});

describe('SlackWebhookSink', () => {
  const url = () => `${rx.base}/services/T0000000/B0000000/SlackPathSecret0123456789`;

  it('posts {text, blocks} with the alert id header; 200 "ok" is success', async () => {
    const result = await new SlackWebhookSink({ url: url() }).send(primaryAlert());
    expect(result).toEqual({ ok: true });
    const got = rx.received[0]!;
    expect(got.headers['x-kvguard-alert-id']).toBe('kv-prod-weu.key.payments-signing.1795773600/primary');
    const body = JSON.parse(got.body.toString('utf8'));
    expect(body.text).toBe('WARNING: Key payments-signing deleted in kv-prod-weu: recovered');
    expect(body.blocks.length).toBeGreaterThan(2);
    expect(body.blocks.length).toBeLessThanOrEqual(50);
    expect(got.body.toString('utf8')).toContain('&lt;!channel&gt;');
    expect(got.body.toString('utf8')).not.toContain('<!channel>');
  });

  it.each([
    [400, 'invalid_payload', false],
    [403, 'action_prohibited', false],
    [404, 'no_service', false],
    [410, 'channel_is_archived', false],
    [429, 'rate_limited', true],
    [500, 'rollup_error', true],
  ])('maps HTTP %i %s to retryable=%s with the code in the detail', async (status, code, retryable) => {
    rx.reply = () => ({ status, body: code });
    const result = await new SlackWebhookSink({ url: url() }).send(primaryAlert());
    expect(result).toEqual({ ok: false, retryable, detail: `HTTP ${status} ${code}` });
  });

  it('does not take a 200 without "ok" for success', async () => {
    rx.reply = () => ({ status: 200, body: '<html>captive portal</html>' });
    expect(await new SlackWebhookSink({ url: url() }).send(primaryAlert())).toMatchObject({
      ok: false,
      retryable: false,
    });
  });
});

describe('SignedWebhookSink', () => {
  const now = new Date('2026-11-27T10:00:05Z');
  const clock = { now: () => now };

  it('posts the alert payload signed over "<timestamp>.<body>"; the documented recipe verifies it', async () => {
    rx.reply = () => ({ status: 204 });
    const sink = new SignedWebhookSink({ url: `${rx.base}/hooks/kvguard`, secret: SECRET, clock });
    expect(await sink.send(primaryAlert())).toEqual({ ok: true });
    const got = rx.received[0]!;
    const timestamp = got.headers['x-kvguard-timestamp'] as string;
    const signature = got.headers['x-kvguard-signature'] as string;
    expect(got.headers['x-kvguard-alert-id']).toBe('kv-prod-weu.key.payments-signing.1795773600/primary');
    expect(timestamp).toBe(String(now.getTime() / 1000));
    // The recipe, written out independently of the sink's code:
    const expected = createHmac('sha256', SECRET).update(`${timestamp}.`).update(got.body).digest('hex');
    expect(signature).toBe(`sha256=${expected}`);
    expect(verifyWebhookSignature({ secret: SECRET, timestamp, signature, body: got.body, now })).toBe(true);
    // The body is the schema-valid payload.
    const payload = JSON.parse(got.body.toString('utf8'));
    expectValid(payload);
    expect(payload.id).toBe(got.headers['x-kvguard-alert-id']);
  });

  it('fails verification with a wrong secret, a changed body, a changed timestamp or a stale request', async () => {
    const sink = new SignedWebhookSink({ url: `${rx.base}/hooks/kvguard`, secret: SECRET, clock });
    await sink.send(primaryAlert());
    const got = rx.received[0]!;
    const timestamp = got.headers['x-kvguard-timestamp'] as string;
    const signature = got.headers['x-kvguard-signature'] as string;
    const base = { secret: SECRET, timestamp, signature, body: got.body, now };
    expect(verifyWebhookSignature({ ...base, secret: 'another-secret-another-secret-000000' })).toBe(false);
    expect(verifyWebhookSignature({ ...base, body: Buffer.concat([got.body, Buffer.from(' ')]) })).toBe(
      false,
    );
    expect(verifyWebhookSignature({ ...base, timestamp: String(Number(timestamp) + 1) })).toBe(false);
    expect(verifyWebhookSignature({ ...base, now: new Date(now.getTime() + 301_000) })).toBe(false);
    expect(verifyWebhookSignature({ ...base, signature: undefined })).toBe(false);
    expect(signWebhookBody(SECRET, Number(timestamp), got.body)).toBe(signature);
  });

  it('never puts the URL, its secret path or query, or the signing secret in a result', async () => {
    const url = `${rx.base}/hooks/PathSecret0123456789?code=QuerySecret0123456789`;
    rx.reply = (req) => ({ status: 400, body: `bad request to ${url} ${req.url} ${SECRET}` });
    const result = await new SignedWebhookSink({ url, secret: SECRET, clock }).send(primaryAlert());
    expect(result).toEqual({ ok: false, retryable: false, detail: 'HTTP 400' });
    const text = JSON.stringify(result);
    for (const s of ['PathSecret0123456789', 'QuerySecret0123456789', SECRET, rx.base])
      expect(text).not.toContain(s);
  });

  it('refuses a non-https URL or a short secret at construction, without repeating the URL', () => {
    expect(
      () => new SignedWebhookSink({ url: 'http://hooks.example.test/PathSecret0123456789', secret: SECRET }),
    ).toThrow(/^SignedWebhookSink: the webhook URL must be https:\/\/$/);
    expect(() => new TeamsWorkflowSink({ url: 'not a url PathSecret0123456789' })).toThrow(
      /^TeamsWorkflowSink: the webhook URL is not a valid URL$/,
    );
    expect(() => new SlackWebhookSink({ url: 'http://x.test/y' })).toThrow(/must be https/);
    expect(() => new SignedWebhookSink({ url: `${rx.base}/x`, secret: 'short' })).toThrow(
      /at least 32 characters/,
    );
  });
});

describe('webhook transport', () => {
  it('answers a refused connection as retryable', async () => {
    const closed = await startReceiver();
    const url = `${closed.base}/x`;
    await closed.close();
    const result = await new SignedWebhookSink({ url, secret: SECRET }).send(primaryAlert());
    expect(result).toEqual({ ok: false, retryable: true, detail: 'network error ECONNREFUSED' });
  });

  it('percent-encodes an alert id that is not printable ASCII instead of failing the request', async () => {
    const result = await new TeamsWorkflowSink({ url: `${rx.base}/t` }).send(
      primaryAlert({ id: 'inc-\u00e9/primary' }),
    );
    expect(result).toEqual({ ok: true });
    expect(rx.received[0]!.headers['x-kvguard-alert-id']).toBe('inc-%C3%A9%2Fprimary');
    expect(alertIdHeader('a.b-c/primary')).toBe('a.b-c/primary');
  });

  it('gives up after the timeout, retryable', async () => {
    rx.reply = () => 'hang';
    const started = Date.now();
    const result = await new TeamsWorkflowSink({ url: `${rx.base}/slow`, timeoutMs: 300 }).send(
      primaryAlert(),
    );
    expect(result).toEqual({ ok: false, retryable: true, detail: 'timeout after 300 ms' });
    expect(Date.now() - started).toBeLessThan(5000);
  });

  it('goes through HTTPS_PROXY like the Azure SDK (CONNECT to the webhook host)', async () => {
    const named = await startReceiver(['hooks.kvguard.test']);
    const proxy = await startConnectProxy(named.port);
    const saved = process.env.HTTPS_PROXY;
    process.env.HTTPS_PROXY = proxy.url;
    try {
      const sink = new SlackWebhookSink({
        url: `https://hooks.kvguard.test:${named.port}/services/T/B/Secret0123456789`,
      });
      expect(await sink.send(primaryAlert())).toEqual({ ok: true });
      expect(proxy.connects).toEqual([`hooks.kvguard.test:${named.port}`]);
      expect(named.received).toHaveLength(1);
    } finally {
      if (saved === undefined) delete process.env.HTTPS_PROXY;
      else process.env.HTTPS_PROXY = saved;
      await proxy.close();
      await named.close();
    }
  });
});

describe('LogSink', () => {
  function capture() {
    const lines: Array<{ level: string; line: Record<string, unknown>; raw: string }> = [];
    const push = (level: string) => (raw: string) => lines.push({ level, raw, line: JSON.parse(raw) });
    const target = {
      trace: push('trace'),
      debug: push('debug'),
      info: push('info'),
      warn: push('warn'),
      error: push('error'),
    };
    return { lines, logger: createLogger('debug', target, { invocationId: 'inv-1' }) };
  }

  it('writes one line at the severity level with the alert id and text, details at debug, no secret', async () => {
    const { lines, logger } = capture();
    const alert = primaryAlert({
      severity: 'critical',
      text: [`leaked ${JWT}`, 'sig=AbCdEf0123456789 in text'],
    });
    expect(await new LogSink(logger).send(alert)).toEqual({ ok: true });
    expect(lines.map((l) => l.level)).toEqual(['error', 'debug']);
    expect(lines[0]!.line).toMatchObject({
      event: 'alert',
      alertId: alert.id,
      incidentId: alert.incidentId,
      kind: 'primary',
      severity: 'critical',
      subject: 'vaults/kv-prod-weu/keys/payments-signing',
      msg: 'alert critical: Key payments-signing deleted in kv-prod-weu: recovered',
    });
    expect(lines[1]!.line).toMatchObject({ event: 'alert-details', alertId: alert.id });
    const all = lines.map((l) => l.raw).join('\n');
    expect(all).not.toContain(JWT);
    expect(all).not.toContain('AbCdEf0123456789');
  });

  it.each([
    ['informational', 'info'],
    ['warning', 'warn'],
  ] as const)('logs a %s alert at %s', async (severity, level) => {
    const { lines, logger } = capture();
    await new LogSink(logger).send(primaryAlert({ severity }));
    expect(lines[0]!.level).toBe(level);
  });
});

describe('EventGridAlertSink (local HTTPS topic)', () => {
  const endpoint = () => `${rx.base}/api/events`;

  it('publishes one CloudEvent 1.0 with the alert id, type, source, subject, time, dataschema and payload', async () => {
    const sink = new EventGridAlertSink({
      endpoint: endpoint(),
      credential: fakeCredential,
      retryBaseDelayMs: 1,
    });
    expect(await sink.send(primaryAlert())).toEqual({ ok: true });
    const got = rx.received[0]!;
    expect(got.headers.authorization).toBe('Bearer fake-eventgrid-token');
    expect(got.headers['content-type']).toBe('application/cloudevents-batch+json; charset=utf-8');
    expect(got.url).toBe('/api/events?api-version=2018-01-01');
    const [event, ...rest] = JSON.parse(got.body.toString('utf8'));
    expect(rest).toEqual([]);
    expect(event).toMatchObject({
      specversion: '1.0',
      id: 'kv-prod-weu.key.payments-signing.1795773600/primary',
      type: 'Kvguard.Alert.Primary.v1',
      source: '/kvguard/alerts',
      subject: 'vaults/kv-prod-weu/keys/payments-signing',
      time: '2026-11-27T10:00:01.234Z',
      dataschema: ALERT_SCHEMA_ID,
      datacontenttype: 'application/json',
    });
    expectValid(event.data);
  });

  it('names a type per kind', () => {
    expect(ALERT_EVENT_TYPES).toEqual({
      primary: 'Kvguard.Alert.Primary.v1',
      attribution: 'Kvguard.Alert.Attribution.v1',
      operational: 'Kvguard.Alert.Operational.v1',
      drift: 'Kvguard.Alert.Drift.v1',
    });
  });

  it.each([
    [400, false],
    [401, false],
    [403, false],
    [413, false],
    [204, false], // the SDK accepts only 200
    [429, true],
    [500, true],
    [503, true],
  ])('maps HTTP %i to retryable=%s', async (status, retryable) => {
    rx.reply = () => ({
      status,
      body: '{"error":{"code":"Unauthorized","message":"no"}}',
      headers: { 'content-type': 'application/json' },
    });
    const sink = new EventGridAlertSink({
      endpoint: endpoint(),
      credential: fakeCredential,
      retryBaseDelayMs: 1,
      maxRetries: 0,
    });
    const result = await sink.send(primaryAlert());
    expect(result).toMatchObject({ ok: false, retryable });
    if (!result.ok) expect(result.detail).toMatch(new RegExp(`^Event Grid: HTTP ${status}`));
  });

  it('answers a credential that cannot get a token as retryable', async () => {
    const broken: TokenCredential = {
      getToken: async () => {
        throw new Error('ManagedIdentityCredential: no endpoint');
      },
    };
    const result = await new EventGridAlertSink({
      endpoint: endpoint(),
      credential: broken,
      retryBaseDelayMs: 1,
      maxRetries: 0,
    }).send(primaryAlert());
    expect(result).toMatchObject({ ok: false, retryable: true });
    expect(rx.received).toHaveLength(0);
  });

  it('refuses a non-https endpoint', () => {
    expect(
      () =>
        new EventGridAlertSink({
          endpoint: 'http://t.westeurope-1.eventgrid.azure.net/api/events',
          credential: fakeCredential,
          retryBaseDelayMs: 1,
        }),
    ).toThrow(/must be https/);
  });
});

// ---------------------------------------------------------------------------------------------
// Signals
// ---------------------------------------------------------------------------------------------

function signal(i: number, dataBytes = 100): SignalEvent {
  return {
    id: `sig-${String(i).padStart(4, '0')}`,
    type: 'Kvguard.KeyVault.KeyDeleted.v1',
    source: '/kvguard/auditLogForwarder',
    subject: `vaults/kv1/keys/k${i}`,
    time: `2026-11-27T10:00:${String(i % 60).padStart(2, '0')}.1234567Z`,
    dataschema: 'urn:kvguard:schema:signal-data:v1',
    data: { vaultName: 'kv1', keyName: `k${i}`, padding: 'p'.repeat(dataBytes) },
  };
}

describe('signal chunking', () => {
  it('keeps every chunk within the budget, in order, and loses nothing', () => {
    const events = Array.from({ length: 40 }, (_, i) => toSignalCloudEvent(signal(i, 60_000)));
    const chunks = chunkBySize(events, 1_000_000);
    expect(chunks.length).toBeGreaterThan(2);
    expect(chunks.flat().map((e) => e.id)).toEqual(events.map((e) => e.id));
    for (const chunk of chunks) {
      const bytes = 2 + chunk.reduce((n, e) => n + cloudEventBytes(e), 0) + chunk.length - 1;
      expect(bytes).toBeLessThanOrEqual(1_000_000);
    }
  });

  it('refuses an event that alone is over the budget, as not retryable', () => {
    const events = [signal(1), signal(2, 1_100_000), signal(3)].map(toSignalCloudEvent);
    expect(() => chunkBySize(events, 1_000_000)).toThrow(SignalPublishError);
    try {
      chunkBySize(events, 1_000_000);
    } catch (error) {
      expect(error).toMatchObject({
        retryable: false,
        published: 0,
        status: 413,
        unpublishedIds: ['sig-0002', 'sig-0003'],
      });
    }
  });

  it('refuses an event without a valid time instead of letting the SDK invent one', () => {
    expect(() => toSignalCloudEvent({ ...signal(1), time: 'yesterday' })).toThrow(
      /time must be an ISO 8601 instant/,
    );
    expect(() => toSignalCloudEvent({ ...signal(1), id: '' })).toThrow(/id is required/);
  });
});

describe('EventGridSignalPublisher (local HTTPS topic)', () => {
  const publisher = (extra: Partial<ConstructorParameters<typeof EventGridSignalPublisher>[0]> = {}) =>
    new EventGridSignalPublisher({
      endpoint: `${rx.base}/api/events`,
      credential: fakeCredential,
      retryBaseDelayMs: 1,
      maxRetries: 0,
      ...extra,
    });

  it('sends the given ids, times (same instant), subjects and data, in requests under 1 MB', async () => {
    const events = Array.from({ length: 30 }, (_, i) => signal(i, 80_000));
    await publisher().publish(events);
    expect(rx.received.length).toBeGreaterThan(2);
    const sent = rx.received.flatMap((r) => {
      expect(r.body.length).toBeLessThanOrEqual(1_000_000);
      return JSON.parse(r.body.toString('utf8')) as Array<Record<string, unknown>>;
    });
    expect(sent.map((e) => e.id)).toEqual(events.map((e) => e.id));
    sent.forEach((e, i) => {
      expect(Date.parse(e.time as string)).toBe(Date.parse(events[i]!.time));
      expect(e.time).toBe(new Date(events[i]!.time).toISOString());
      expect(e).toMatchObject({
        specversion: '1.0',
        type: events[i]!.type,
        source: events[i]!.source,
        subject: events[i]!.subject,
        dataschema: events[i]!.dataschema,
        data: events[i]!.data,
      });
    });
  });

  it('does nothing for no events', async () => {
    await publisher().publish([]);
    expect(rx.received).toHaveLength(0);
  });

  it('stops at the first failed chunk and says how many were published and whether to retry', async () => {
    let calls = 0;
    rx.reply = () => (++calls === 2 ? { status: 503, body: '' } : { status: 200, body: '' });
    const events = Array.from({ length: 30 }, (_, i) => signal(i, 80_000));
    const error = await publisher()
      .publish(events)
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(SignalPublishError);
    const e = error as SignalPublishError;
    const firstChunk = (JSON.parse(rx.received[0]!.body.toString('utf8')) as unknown[]).length;
    expect(e).toMatchObject({ retryable: true, status: 503, published: firstChunk });
    expect(e.unpublishedIds).toEqual(events.slice(firstChunk).map((x) => x.id));
    expect(rx.received).toHaveLength(2);
    expect(e.message).not.toContain(rx.base);
  });

  it('answers 403 as not retryable', async () => {
    rx.reply = () => ({ status: 403, body: '{"error":{"code":"Unauthorized"}}' });
    await expect(publisher().publish([signal(1)])).rejects.toMatchObject({
      name: 'SignalPublishError',
      retryable: false,
      status: 403,
      published: 0,
    });
  });
});
