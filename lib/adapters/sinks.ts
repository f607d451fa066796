/**
 * Alert sinks (design §2 step 8): the `kvguard-alerts` Event Grid topic, a Teams Workflows webhook, a
 * Slack incoming webhook, a generic webhook signed with HMAC-SHA256, and the log. Each `send` answers
 * a `SinkResult` and never throws: the ledger records delivery per sink and the pipeline re-delivers a
 * retryable failure later, so no sink retries on its own (except the Event Grid SDK's own retry
 * policy, which every Azure client here shares, see azure.ts `clientOptions`).
 *
 * What each answer means:
 * - 2xx → ok (Slack: only 200 with body `ok`; Event Grid: only 200, the SDK's rule, azure-facts §4.5);
 * - 408, 429, 5xx, a network error or the timeout → retryable;
 * - any other status (3xx is not followed, 4xx) → permanent, with a short detail: the status and, when
 *   it looks like one, the service's error code (`invalid_payload`, `no_service`). Never the URL.
 *
 * Webhook URLs carry their secret (Slack's path, Power Automate's `sig=`), so a URL never reaches a
 * result, an error, a log line or an alert: details are built from the status and a validated code
 * only, then scrubbed of the URL, its path and query, and the signing secret, as a second guard.
 *
 * HTTP for the webhooks: @azure/core-rest-pipeline, not the global fetch. Its `proxyPolicy` reads
 * HTTPS_PROXY/NO_PROXY exactly as every Azure SDK client in this app does (undici's fetch ignores
 * them), and an empty pipeline adds no retry, redirect or logging policy: one request per `send`,
 * bounded by our own abort timer (the client's `timeout` option logs the URL when it fires).
 */
import { createHmac, timingSafeEqual } from 'node:crypto';
import {
  createDefaultHttpClient,
  createEmptyPipeline,
  createHttpHeaders,
  createPipelineRequest,
  isRestError,
  proxyPolicy,
  type HttpClient,
  type Pipeline,
} from '@azure/core-rest-pipeline';
import { EventGridPublisherClient, type SendCloudEventInput } from '@azure/eventgrid';
import type { TokenCredential } from '@azure/identity';
import type { Logger } from 'pino';
import {
  ALERT_SCHEMA_ID,
  renderSlackMessage,
  renderTeamsMessage,
  toAlertPayload,
  type AlertKind,
  type AlertPayloadV1,
} from '../alert-text';
import type { AlertMessage, AlertSink, Clock, SinkResult } from '../ports';
import { clientOptions } from './azure';

/** Default per-request timeout of the webhook sinks and the Event Grid sink. */
export const DEFAULT_SINK_TIMEOUT_MS = 10_000;

/** Header carrying the alert id on every webhook (design §2 step 8), so a receiver can drop a repeat. */
export const ALERT_ID_HEADER = 'X-Kvguard-Alert-Id';
export const TIMESTAMP_HEADER = 'X-Kvguard-Timestamp';
export const SIGNATURE_HEADER = 'X-Kvguard-Signature';

const USER_AGENT = 'kvguard-alert-sink/1';
/** Bytes of a webhook's answer we read at most (enough for Slack's error code or a JSON error). */
const MAX_ANSWER_BYTES = 2048;

// ---------------------------------------------------------------------------------------------
// Outcome mapping
// ---------------------------------------------------------------------------------------------

/** 408, 429 and 5xx are worth another try later; any other non-2xx is not. */
export function isRetryableStatus(status: number): boolean {
  return status === 408 || status === 429 || status >= 500;
}

/** A webhook's non-2xx answer as a SinkResult. */
function failure(status: number, code: string | undefined): SinkResult {
  const detail = `HTTP ${status}${code ? ` ${code}` : ''}${status >= 300 && status < 400 ? ' (redirect not followed)' : ''}`;
  return { ok: false, retryable: isRetryableStatus(status), detail };
}

/** A service error code worth quoting: short, word characters only (it can carry no URL or secret). */
function safeCode(value: unknown): string | undefined {
  return typeof value === 'string' && /^[A-Za-z][A-Za-z0-9_.-]{0,63}$/.test(value) ? value : undefined;
}

/** `error.code` of a JSON error body (`{"error":{"code":…}}`, Power Automate and Azure style), or `code`. */
function jsonErrorCode(body: string): string | undefined {
  try {
    const parsed = JSON.parse(body) as { error?: { code?: unknown }; code?: unknown };
    return safeCode(parsed.error?.code) ?? safeCode(parsed.code);
  } catch {
    return undefined;
  }
}

/** The code of a thrown transport error (ECONNREFUSED, ENOTFOUND, REQUEST_SEND_ERROR…). */
function transportCode(error: unknown): string {
  if (isRestError(error)) return safeCode(error.code) ?? 'REQUEST_SEND_ERROR';
  if (error instanceof Error)
    return safeCode((error as { code?: unknown }).code) ?? safeCode(error.name) ?? 'Error';
  return 'Error';
}

// ---------------------------------------------------------------------------------------------
// Webhook transport
// ---------------------------------------------------------------------------------------------

type WebhookAnswer =
  | { kind: 'response'; status: number; body: string }
  | { kind: 'timeout' }
  | { kind: 'network'; code: string };

/** Checks a URL once, at construction; the message never repeats it (a webhook URL is a secret). */
export function parseHttpsUrl(url: string, who: string, what = 'the webhook URL'): URL {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new TypeError(`${who}: ${what} is not a valid URL`);
  }
  if (parsed.protocol !== 'https:') throw new TypeError(`${who}: ${what} must be https://`);
  return parsed;
}

/** Runs `fn` with an abort signal that fires after `ms`, and says whether that timer caused a failure. */
export async function withTimeout<T>(
  ms: number,
  fn: (signal: AbortSignal) => Promise<T>,
): Promise<{ ok: true; value: T } | { ok: false; error: unknown; timedOut: boolean }> {
  const abort = new AbortController();
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    abort.abort();
  }, ms);
  try {
    return { ok: true, value: await fn(abort.signal) };
  } catch (error) {
    return { ok: false, error, timedOut };
  } finally {
    clearTimeout(timer);
  }
}

/**
 * What a failed Azure SDK send means: the HTTP status and service code when the service answered
 * (retryable for 408/429/5xx), otherwise a transport or credential failure (retryable). The reason
 * is built from the status and a validated code only: it carries no URL, token or body.
 */
export function describeSendFailure(
  error: unknown,
  timedOut: boolean,
  timeoutMs: number,
): { retryable: boolean; status?: number; reason: string } {
  if (timedOut) return { retryable: true, reason: `timeout after ${timeoutMs} ms` };
  if (isRestError(error) && typeof error.statusCode === 'number') {
    const status = error.statusCode;
    const code = safeCode(error.code);
    return {
      retryable: isRetryableStatus(status),
      status,
      reason: `HTTP ${status}${code ? ` ${code}` : ''}`,
    };
  }
  return { retryable: true, reason: transportCode(error) };
}

/**
 * An Event Grid publisher for a CloudEvents-schema topic, with the managed identity (bearer token for
 * https://eventgrid.azure.net) and the retry options every Azure client here shares.
 */
export function createCloudEventClient(
  who: string,
  options: { endpoint: string; credential: TokenCredential; retryBaseDelayMs: number; maxRetries?: number },
): EventGridPublisherClient<'CloudEvent'> {
  const url = parseHttpsUrl(options.endpoint, who, 'the topic endpoint');
  const base = clientOptions(options.retryBaseDelayMs);
  return new EventGridPublisherClient(url.href, 'CloudEvent', options.credential, {
    ...base,
    retryOptions: { ...base.retryOptions, maxRetries: options.maxRetries ?? base.retryOptions.maxRetries },
  });
}

/** The strings that must never appear in a detail: the URL and its secret-bearing parts. */
function secretsOf(url: URL, extra: string[]): string[] {
  const parts = [
    url.href,
    `${url.host}${url.pathname}`,
    url.pathname,
    url.search,
    url.search.slice(1),
    ...extra,
  ];
  return parts.filter((p) => p.length >= 8).sort((a, b) => b.length - a.length);
}

/** One POST per call through a pipeline that only adds the proxy; no retry, redirect or log policy. */
class WebhookTransport {
  private readonly pipeline: Pipeline;
  private readonly client: HttpClient;
  readonly url: URL;
  private readonly secrets: string[];
  private readonly timeoutMs: number;

  constructor(url: string, sink: string, timeoutMs: number | undefined, extraSecrets: string[] = []) {
    this.url = parseHttpsUrl(url, sink);
    this.timeoutMs = timeoutMs ?? DEFAULT_SINK_TIMEOUT_MS;
    if (!Number.isInteger(this.timeoutMs) || this.timeoutMs < 1) {
      throw new RangeError(`${sink}: timeoutMs must be a positive integer`);
    }
    this.secrets = secretsOf(this.url, extraSecrets);
    this.pipeline = createEmptyPipeline();
    // Reads HTTPS_PROXY / NO_PROXY as the Azure SDK clients do (the emulator relies on the same).
    this.pipeline.addPolicy(proxyPolicy());
    this.client = createDefaultHttpClient();
  }

  /** Removes every occurrence of the URL, its parts and the secrets from a text. */
  scrub(text: string): string {
    let out = text;
    for (const secret of this.secrets) out = out.split(secret).join('[redacted]');
    return out;
  }

  /** POSTs a JSON body with the alert id header (and any extra headers). */
  postAlert(body: Buffer, alertId: string, extra: Record<string, string> = {}): Promise<WebhookAnswer> {
    return this.post(body, {
      'Content-Type': 'application/json; charset=utf-8',
      [ALERT_ID_HEADER]: alertIdHeader(alertId),
      ...extra,
    });
  }

  private async post(body: Buffer, headers: Record<string, string>): Promise<WebhookAnswer> {
    const sent = await withTimeout(this.timeoutMs, async (abortSignal) => {
      const request = createPipelineRequest({
        url: this.url.href,
        method: 'POST',
        headers: createHttpHeaders({ 'User-Agent': USER_AGENT, ...headers }),
        body,
        abortSignal,
        // Every status as a stream, so a hostile answer cannot make us buffer megabytes.
        streamResponseStatusCodes: new Set([Number.POSITIVE_INFINITY]),
      });
      const response = await this.pipeline.sendRequest(this.client, request);
      return {
        status: response.status,
        body: await readAtMost(response.readableStreamBody, MAX_ANSWER_BYTES),
      };
    });
    if (sent.ok) return { kind: 'response', ...sent.value };
    return sent.timedOut ? { kind: 'timeout' } : { kind: 'network', code: transportCode(sent.error) };
  }

  /** Maps a transport answer to a SinkResult; `accept` decides on a 2xx answer's body. */
  result(
    answer: WebhookAnswer,
    accept: (status: number, body: string) => SinkResult,
    code?: (body: string) => string | undefined,
  ): SinkResult {
    let result: SinkResult;
    if (answer.kind === 'timeout') {
      result = { ok: false, retryable: true, detail: `timeout after ${this.timeoutMs} ms` };
    } else if (answer.kind === 'network') {
      result = { ok: false, retryable: true, detail: `network error ${answer.code}` };
    } else if (answer.status >= 200 && answer.status < 300) {
      result = accept(answer.status, answer.body);
    } else {
      result = failure(answer.status, (code ?? jsonErrorCode)(answer.body));
    }
    return result.ok ? result : { ...result, detail: this.scrub(result.detail).slice(0, 300) };
  }
}

async function readAtMost(stream: NodeJS.ReadableStream | undefined, max: number): Promise<string> {
  if (!stream) return '';
  const chunks: Buffer[] = [];
  let size = 0;
  try {
    for await (const chunk of stream) {
      const buf = typeof chunk === 'string' ? Buffer.from(chunk) : chunk;
      chunks.push(buf);
      size += buf.length;
      if (size >= max) break;
    }
  } catch {
    // The answer's status is what counts; a body cut short is fine.
  } finally {
    (stream as { destroy?: () => void }).destroy?.();
  }
  return Buffer.concat(chunks).subarray(0, max).toString('utf8');
}

const acceptAny2xx = (): SinkResult => ({ ok: true });

/**
 * The alert id as a header value: printable ASCII as is (every id kvguard composes), anything else
 * percent-encoded, so a malformed id cannot make Node refuse the request (which would look retryable).
 */
export function alertIdHeader(id: string): string {
  return /^[!-~]{1,512}$/.test(id) ? id : encodeURIComponent(id).slice(0, 1024);
}

export interface WebhookSinkOptions {
  /** The webhook URL (https only; it is a secret: never logged). */
  url: string;
  /** Per-request timeout; default 10 s. */
  timeoutMs?: number;
  /** Name under which the ledger records delivery; defaults per sink (`teams`, `slack`, `webhook`). */
  name?: string;
}

// ---------------------------------------------------------------------------------------------
// Teams
// ---------------------------------------------------------------------------------------------

/**
 * Microsoft Teams through a Workflows webhook ("Post to a channel when a webhook request is received"):
 * an Adaptive Card in a message envelope (see alert-text.ts `renderTeamsMessage` for the shape and its
 * sources). Any 2xx is success (a triggered flow typically answers 202 Accepted; UNCONFIRMED).
 */
export class TeamsWorkflowSink implements AlertSink {
  readonly name: string;
  private readonly transport: WebhookTransport;

  constructor(options: WebhookSinkOptions) {
    this.name = options.name ?? 'teams';
    this.transport = new WebhookTransport(options.url, 'TeamsWorkflowSink', options.timeoutMs);
  }

  async send(alert: AlertMessage): Promise<SinkResult> {
    const payload = toAlertPayload(alert);
    const body = Buffer.from(JSON.stringify(renderTeamsMessage(payload)), 'utf8');
    const answer = await this.transport.postAlert(body, payload.id);
    return this.transport.result(answer, acceptAny2xx);
  }
}

// ---------------------------------------------------------------------------------------------
// Slack
// ---------------------------------------------------------------------------------------------

/**
 * A Slack incoming webhook: `{text, blocks}` (alert-text.ts `renderSlackMessage`). Slack answers
 * 200 `ok` on success and a plain-text error code otherwise (`invalid_payload` 400,
 * `action_prohibited` 403, `no_service`/`channel_not_found` 404, `channel_is_archived` 410), 429 when
 * rate limited and 5xx (`rollup_error`) on its own failures: 4xx are permanent, 429/5xx retryable.
 * (The status of each code is from Slack's incoming-webhook error list as remembered, UNCONFIRMED
 * here; the mapping relies only on the status, the code is only quoted in the detail.)
 */
export class SlackWebhookSink implements AlertSink {
  readonly name: string;
  private readonly transport: WebhookTransport;

  constructor(options: WebhookSinkOptions) {
    this.name = options.name ?? 'slack';
    this.transport = new WebhookTransport(options.url, 'SlackWebhookSink', options.timeoutMs);
  }

  async send(alert: AlertMessage): Promise<SinkResult> {
    const payload = toAlertPayload(alert);
    const body = Buffer.from(JSON.stringify(renderSlackMessage(payload)), 'utf8');
    const answer = await this.transport.postAlert(body, payload.id);
    return this.transport.result(
      answer,
      (status, text) =>
        status === 200 && text.trim() === 'ok'
          ? { ok: true }
          : { ok: false, retryable: false, detail: `HTTP ${status} without the expected "ok" answer` },
      (text) => safeCode(text.trim()) ?? jsonErrorCode(text),
    );
  }
}

// ---------------------------------------------------------------------------------------------
// Signed webhook
// ---------------------------------------------------------------------------------------------

/**
 * The bytes that are signed: the ASCII decimal Unix timestamp (seconds, the `X-Kvguard-Timestamp`
 * header), one `.` (0x2E), then the exact request body bytes (UTF-8 JSON, as sent: do not re-serialize).
 */
export function signedMaterial(timestamp: number, body: Buffer): Buffer {
  return Buffer.concat([Buffer.from(`${timestamp}.`, 'ascii'), body]);
}

/** `sha256=<lower-case hex HMAC-SHA256(key = UTF-8 bytes of the secret, message = signedMaterial)>`. */
export function signWebhookBody(secret: string, timestamp: number, body: Buffer): string {
  return `sha256=${createHmac('sha256', Buffer.from(secret, 'utf8')).update(signedMaterial(timestamp, body)).digest('hex')}`;
}

export interface WebhookVerification {
  secret: string;
  /** Value of `X-Kvguard-Timestamp`. */
  timestamp: string | undefined;
  /** Value of `X-Kvguard-Signature`. */
  signature: string | undefined;
  /** The raw request body bytes, before any JSON parsing. */
  body: Buffer;
  now: Date;
  /** Largest accepted |now − timestamp|; default 300 s. */
  toleranceSeconds?: number;
}

/**
 * The receiver's check, as documented on `SignedWebhookSink` (exported so a receiver written in
 * TypeScript, and our tests, use the one recipe). Constant-time comparison; false on any malformed input.
 */
export function verifyWebhookSignature(input: WebhookVerification): boolean {
  const { timestamp, signature, body, secret } = input;
  if (!timestamp || !/^\d{1,12}$/.test(timestamp) || !signature || !/^sha256=[0-9a-f]{64}$/.test(signature))
    return false;
  const ts = Number(timestamp);
  if (Math.abs(Math.floor(input.now.getTime() / 1000) - ts) > (input.toleranceSeconds ?? 300)) return false;
  const expected = Buffer.from(signWebhookBody(secret, ts, body), 'ascii');
  const given = Buffer.from(signature, 'ascii');
  return expected.length === given.length && timingSafeEqual(expected, given);
}

export interface SignedWebhookSinkOptions extends WebhookSinkOptions {
  /** The shared signing secret (at least 32 characters; config enforces it). Never logged. */
  secret: string;
  /** Source of the timestamp; the system clock by default. */
  clock?: Pick<Clock, 'now'>;
}

/**
 * A generic webhook: POSTs the alert payload v1 (lib/schemas/alert.v1.schema.json) as JSON, signed.
 *
 * Headers: `Content-Type: application/json; charset=utf-8`, `X-Kvguard-Alert-Id: <alert id>`,
 * `X-Kvguard-Timestamp: <Unix seconds>`, `X-Kvguard-Signature: sha256=<hex>`.
 *
 * How a receiver verifies a request (`verifyWebhookSignature` does exactly this):
 * 1. Read the raw body bytes; do not parse and re-serialize the JSON first (whitespace and key order
 *    would change the bytes).
 * 2. Reject when `X-Kvguard-Timestamp` is more than 5 minutes away from your clock: the timestamp is
 *    inside the signed bytes, so an attacker who captured a request cannot replay it later with a
 *    fresh timestamp.
 * 3. Compute HMAC-SHA256 with the shared secret (its UTF-8 bytes) as key over
 *    `<timestamp> "." <body bytes>` and compare `sha256=<lower-case hex>` with `X-Kvguard-Signature`
 *    in constant time.
 * 4. Drop a repeat by `X-Kvguard-Alert-Id` (= the payload's `id`): delivery is at least once, and a
 *    redelivery carries a new timestamp and signature but the same id and body.
 * Any 2xx is success; 408/429/5xx are retried later by kvguard's pipeline; other statuses are not.
 */
export class SignedWebhookSink implements AlertSink {
  readonly name: string;
  private readonly transport: WebhookTransport;
  private readonly secret: string;
  private readonly clock: Pick<Clock, 'now'>;

  constructor(options: SignedWebhookSinkOptions) {
    this.name = options.name ?? 'webhook';
    if (typeof options.secret !== 'string' || options.secret.length < 32) {
      throw new TypeError('SignedWebhookSink: the signing secret must have at least 32 characters');
    }
    this.secret = options.secret;
    this.clock = options.clock ?? { now: () => new Date() };
    this.transport = new WebhookTransport(options.url, 'SignedWebhookSink', options.timeoutMs, [
      options.secret,
    ]);
  }

  async send(alert: AlertMessage): Promise<SinkResult> {
    const payload = toAlertPayload(alert);
    const body = Buffer.from(JSON.stringify(payload), 'utf8');
    const timestamp = Math.floor(this.clock.now().getTime() / 1000);
    const answer = await this.transport.postAlert(body, payload.id, {
      [TIMESTAMP_HEADER]: String(timestamp),
      [SIGNATURE_HEADER]: signWebhookBody(this.secret, timestamp, body),
    });
    return this.transport.result(answer, acceptAny2xx);
  }
}

// ---------------------------------------------------------------------------------------------
// Event Grid
// ---------------------------------------------------------------------------------------------

/** CloudEvent types of alerts: `Kvguard.Alert.Primary.v1`, `.Attribution.v1`, `.Operational.v1`, `.Drift.v1`. */
export const ALERT_EVENT_TYPES: Readonly<Record<AlertKind, string>> = {
  primary: 'Kvguard.Alert.Primary.v1',
  attribution: 'Kvguard.Alert.Attribution.v1',
  operational: 'Kvguard.Alert.Operational.v1',
  drift: 'Kvguard.Alert.Drift.v1',
};

/** Default CloudEvent `source` of alerts: with `id` it identifies an alert uniquely (CloudEvents 1.0). */
export const DEFAULT_ALERT_SOURCE = '/kvguard/alerts';

export interface EventGridAlertSinkOptions {
  /** The topic endpoint, `https://kvguard-alerts.<region>-1.eventgrid.azure.net/api/events`. */
  endpoint: string;
  /** The app's managed identity; needs `EventGrid Data Sender` on the topic. */
  credential: TokenCredential;
  /** Base delay of the SDK's retry policy (config `KVGUARD_RETRY_BASE_DELAY_MS`). */
  retryBaseDelayMs: number;
  /** SDK retries within one send; default 3 (azure.ts `clientOptions`). */
  maxRetries?: number;
  /** Abort the whole send (retries included) after this long; default 10 s. */
  timeoutMs?: number;
  /** CloudEvent `source`; default `/kvguard/alerts`. */
  source?: string;
  name?: string;
}

/** The CloudEvent of an alert (exported for tests and for documentation of the mapping). */
export function toAlertCloudEvent(
  alert: AlertMessage,
  source: string = DEFAULT_ALERT_SOURCE,
): SendCloudEventInput<AlertPayloadV1> {
  const payload = toAlertPayload(alert);
  return {
    id: payload.id,
    type: ALERT_EVENT_TYPES[payload.kind],
    source,
    subject: payload.subject,
    time: new Date(payload.time),
    dataschema: ALERT_SCHEMA_ID,
    datacontenttype: 'application/json',
    data: payload,
  };
}

/** Maps what `EventGridPublisherClient.send` threw to a SinkResult (the SDK throws for anything but 200). */
export function eventGridFailure(error: unknown, timedOut: boolean, timeoutMs: number): SinkResult {
  const { retryable, reason } = describeSendFailure(error, timedOut, timeoutMs);
  return { ok: false, retryable, detail: `Event Grid: ${reason}` };
}

/**
 * Publishes each alert as one CloudEvent 1.0 to the `kvguard-alerts` topic with the managed identity
 * (bearer token for https://eventgrid.azure.net). `id` = the alert id, `type` from the kind
 * (`ALERT_EVENT_TYPES`), `source` = `/kvguard/alerts`, `subject` = `vaults/<vault>/keys/<key>` (see
 * alert-text.ts `alertSubject`), `time` = the alert's time, `dataschema` = `urn:kvguard:schema:alert:v1`,
 * `data` = the alert payload v1. A 401/403 (missing `EventGrid Data Sender`) is permanent.
 */
export class EventGridAlertSink implements AlertSink {
  readonly name: string;
  private readonly client: EventGridPublisherClient<'CloudEvent'>;
  private readonly source: string;
  private readonly timeoutMs: number;

  constructor(options: EventGridAlertSinkOptions) {
    this.name = options.name ?? 'eventgrid';
    this.client = createCloudEventClient('EventGridAlertSink', options);
    this.source = options.source ?? DEFAULT_ALERT_SOURCE;
    this.timeoutMs = options.timeoutMs ?? DEFAULT_SINK_TIMEOUT_MS;
  }

  async send(alert: AlertMessage): Promise<SinkResult> {
    const event = toAlertCloudEvent(alert, this.source);
    const sent = await withTimeout(this.timeoutMs, (abortSignal) =>
      this.client.send([event], { abortSignal }),
    );
    return sent.ok ? { ok: true } : eventGridFailure(sent.error, sent.timedOut, this.timeoutMs);
  }
}

// ---------------------------------------------------------------------------------------------
// Log
// ---------------------------------------------------------------------------------------------

/**
 * Writes the alert to the log: one line at a level from the severity (critical → error, warning →
 * warn, informational → info) with the id, kind, severity, subject, title and text lines, and the
 * structured details at debug. Everything comes from the scrubbed payload. Always ok.
 */
export class LogSink implements AlertSink {
  readonly name: string;

  constructor(
    private readonly logger: Logger,
    options: { name?: string } = {},
  ) {
    this.name = options.name ?? 'log';
  }

  async send(alert: AlertMessage): Promise<SinkResult> {
    const p = toAlertPayload(alert);
    const line = {
      event: 'alert',
      alertId: p.id,
      incidentId: p.incidentId,
      kind: p.kind,
      severity: p.severity,
      subject: p.subject,
      alertTime: p.time,
      text: p.text,
    };
    const message = `alert ${p.severity}: ${p.title}`;
    if (p.severity === 'critical') this.logger.error(line, message);
    else if (p.severity === 'warning') this.logger.warn(line, message);
    else this.logger.info(line, message);
    this.logger.debug({ event: 'alert-details', alertId: p.id, details: p.details }, 'alert details');
    return { ok: true };
  }
}
