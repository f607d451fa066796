/**
 * Event Grid: custom topics (hosts `<topic>.<region>-1.eventgrid.azure.net`, POST /api/events) in
 * the Event Grid or CloudEvents 1.0 input schema, system topics fed by the emulator itself (the
 * subscription's `Microsoft.Resources.*` events, `publishSystem`), and push delivery to webhook
 * subscribers with Event Grid's handshake, headers, retry schedule and dead-lettering.
 *
 * Wire facts (azure-facts §4): the publisher client accepts only 200; it authenticates with
 * `aeg-sas-key`, `aeg-sas-token` (format of @azure/eventgrid 5.12.0 generateSharedAccessSignature) or
 * a bearer token for https://eventgrid.azure.net; Event Grid stamps `topic` and
 * `metadataVersion: "1"` on Event Grid-schema events; 1 MB limits answer 413. Delivery follows
 * learn.microsoft.com/azure/event-grid/delivery-and-retry: success is 200–204, no retry for a
 * webhook's 400/401/403/413, retries at 10 s, 30 s, 1 min, 5 min, 10 min, 30 min, 1 h, 3 h, 6 h, then
 * every 12 h until the TTL (24 h) or maxDeliveryAttempts (30) runs out. The schedule is compressed by
 * `retryScale` so tests see it in milliseconds.
 *
 * Deliveries go straight to the subscriber with node's http/https (never through the proxy):
 * `http://127.0.0.1:<port>` is accepted for the local functions host.
 */
import { createHmac, randomUUID, timingSafeEqual } from 'node:crypto';
import http, { type IncomingHttpHeaders } from 'node:http';
import https from 'node:https';
import type { EmuRequest, EmuResponse, EmulatorCore, ServiceHandler } from './types';

export type EventGridInputSchema = 'EventGridSchema' | 'CloudEventSchemaV1_0';

export interface TopicSpec {
  name: string;
  /** Azure region of the topic; the endpoint host is `<name>.<region>-1.eventgrid.azure.net`. */
  region?: string;
  resourceGroup?: string;
  subscriptionId?: string;
  inputSchema?: EventGridInputSchema;
  /** Access keys (base64); two random keys when absent. */
  keys?: string[];
  /** Topic setting `disableLocalAuth`: keys and SAS tokens are refused, only Entra tokens work. */
  disableLocalAuth?: boolean;
}

export interface SystemTopicSpec {
  name: string;
  /** The ARM id of the source, which Event Grid writes as each event's `topic`. */
  source: string;
  /** e.g. `Microsoft.Resources.Subscriptions`, `Microsoft.KeyVault.vaults`. */
  topicType: string;
  resourceGroup?: string;
  subscriptionId?: string;
  location?: string;
  inputSchema?: EventGridInputSchema;
}

export interface TopicInfo {
  kind: 'custom' | 'system';
  name: string;
  /** ARM id of the topic resource (`…/topics/<name>` or `…/systemTopics/<name>`). */
  id: string;
  inputSchema: EventGridInputSchema;
  /** Custom topics only. */
  endpoint?: string;
  hostname?: string;
  region?: string;
  keys?: { key1: string; key2: string };
  disableLocalAuth?: boolean;
  /** System topics only. */
  source?: string;
  topicType?: string;
}

export interface SubscriptionSpec {
  /** The topic's name, its ARM id, or (system topics) its source id. */
  topicName: string;
  name: string;
  /** https://…, or http:// on a loopback address (the local functions host). */
  endpointUrl: string;
  /** Event type filter, compared without case; all types when absent. */
  includedEventTypes?: string[];
  subjectBeginsWith?: string;
  subjectEndsWith?: string;
  /** 1..30, default 30. */
  maxDeliveryAttempts?: number;
  /** 1..1440, default 1440. */
  eventTimeToLiveInMinutes?: number;
  /** Events per delivery request, default 1 (Event Grid's default). */
  maxEventsPerBatch?: number;
  /**
   * Keep what cannot be delivered (Azure needs a blob container for this and it is off by default;
   * kvguard's templates configure one, so the emulator keeps dead letters unless told not to).
   */
  deadLetter?: boolean;
  /** Skip the validation handshake (as for the AzureFunction endpoint type). Default false. */
  skipValidation?: boolean;
}

export interface SubscriptionInfo {
  name: string;
  topic: string;
  topicId: string;
  endpointUrl: string;
  provisioningState: 'Succeeded' | 'AwaitingManualAction';
  deliverySchema: EventGridInputSchema;
  includedEventTypes?: string[];
  subjectBeginsWith?: string;
  subjectEndsWith?: string;
  maxDeliveryAttempts: number;
  eventTimeToLiveInMinutes: number;
  maxEventsPerBatch: number;
  deadLetter: boolean;
}

export interface StoredEvent {
  topic: string;
  schema: EventGridInputSchema;
  /** The event as Event Grid holds it (topic and metadataVersion stamped for the Event Grid schema). */
  event: Record<string, unknown>;
  publishTime: string;
  via: 'publish' | 'system';
}

export interface DeliveryRecord {
  subscription: string;
  topic: string;
  eventIds: string[];
  /** 1 for the first attempt. */
  attempt: number;
  time: string;
  status?: number;
  outcome: string;
  durationMs: number;
  error?: string;
}

export interface DeadLetterRecord {
  subscription: string;
  topic: string;
  deadLetterReason: string;
  deliveryAttempts: number;
  lastDeliveryOutcome: string;
  lastHttpStatusCode?: number;
  publishTime: string;
  lastDeliveryAttemptTime: string;
  /** The event as written to the dead-letter container (the fields above added; lower-case for CloudEvents). */
  event: Record<string, unknown>;
}

export interface EventFilter {
  topic?: string;
  eventType?: string;
}

export interface EventGridOptions {
  /** Factor applied to the retry schedule: 0.001 turns 10 s into 10 ms. Default 0.001. */
  retryScale?: number;
  /** How long a subscriber may take to answer; Event Grid waits 30 s. */
  deliveryTimeoutMs?: number;
  /** Stored events kept for inspection (oldest dropped first). */
  maxStoredEvents?: number;
}

export interface EventGridService {
  /** ServiceHandler for `*.eventgrid.azure.net`. */
  handle: ServiceHandler;
  createTopic(spec: TopicSpec): TopicInfo;
  createSystemTopic(spec: SystemTopicSpec): TopicInfo;
  topics(): TopicInfo[];
  /** Creates (or replaces) a subscription after the validation handshake; rejects if it fails. */
  subscribe(spec: SubscriptionSpec): Promise<SubscriptionInfo>;
  unsubscribe(topicName: string, name: string): boolean;
  subscriptions(): SubscriptionInfo[];
  /** Publishes events as a system publisher would (no auth), to a system or custom topic. */
  publishSystem(topicName: string, events: Array<Record<string, unknown>>): StoredEvent[];
  events(filter?: string | EventFilter): StoredEvent[];
  deliveries(): DeliveryRecord[];
  deadLetters(): DeadLetterRecord[];
  /** Resolves once no delivery is pending or in flight. */
  whenIdle(): Promise<void>;
  /** Drops topics (but the built-in subscription topic), subscriptions, events and pending deliveries. */
  reset(): void;
  /** Cancels every pending retry and in-flight delivery; nothing is delivered afterwards. */
  stop(): void;
}

/** The subscription's ARM events topic (Microsoft.Resources.Subscriptions system topic). */
export const SUBSCRIPTION_SYSTEM_TOPIC = 'subscription-events';

/** Event Grid's retry schedule in seconds; after the list, every 12 h until the TTL runs out. */
export const RETRY_SCHEDULE_SECONDS = [10, 30, 60, 300, 600, 1800, 3600, 10800, 21600] as const;
const RETRY_AFTER_SCHEDULE_SECONDS = 43200;
export const MAX_EVENT_BYTES = 1024 * 1024;
export const MAX_REQUEST_BYTES = 1024 * 1024;

const EVENTGRID_AUDIENCES = ['https://eventgrid.azure.net', 'https://eventgrid.azure.net/'];
const SEND_ACTION = 'Microsoft.EventGrid/events/send/action';
/** A webhook's errors that Event Grid does not retry (dead-letter at once). */
const NO_RETRY = new Set([400, 401, 403, 413]);
const TOPIC_NAME = /^[a-zA-Z0-9-]{3,50}$/;

interface Topic extends TopicInfo {
  /** Lower-cased names by which publishSystem and subscribe find it. */
  aliases: string[];
  builtIn: boolean;
}

interface Subscription {
  info: SubscriptionInfo;
  topic: Topic;
  url: URL;
  active: boolean;
  validationCode?: string;
}

interface Job {
  sub: Subscription;
  events: StoredEvent[];
  attempts: number;
  /** Time on Event Grid's (uncompressed) clock since the first attempt. */
  virtualElapsedMs: number;
  timer?: NodeJS.Timeout;
  controller?: AbortController;
  lastOutcome?: string;
  lastStatus?: number;
  lastAttemptTime?: string;
  /** Set by stop() and reset(): an answer that arrives afterwards is ignored. */
  cancelled?: boolean;
}

interface HttpResult {
  status?: number;
  headers: IncomingHttpHeaders;
  body: string;
  error?: string;
  timedOut?: boolean;
}

class PublishFailure extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    readonly detailCode: string,
    message: string,
  ) {
    super(message);
  }
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function headerValue(headers: IncomingHttpHeaders, name: string): string | undefined {
  const value = headers[name];
  return Array.isArray(value) ? value[0] : value;
}

/** The .NET-style date Event Grid puts in SAS tokens and error reports: "M/d/yyyy h:mm:ss AM" (UTC). */
export function serviceTimeString(d: Date): string {
  const hours = d.getUTCHours();
  const hour12 = hours % 12 === 0 ? 12 : hours % 12;
  const mm = String(d.getUTCMinutes()).padStart(2, '0');
  const ss = String(d.getUTCSeconds()).padStart(2, '0');
  return `${d.getUTCMonth() + 1}/${d.getUTCDate()}/${d.getUTCFullYear()} ${hour12}:${mm}:${ss} ${hours >= 12 ? 'PM' : 'AM'}`;
}

function parseServiceTime(text: string): number | undefined {
  const m = /^(\d{1,2})\/(\d{1,2})\/(\d{4}) (\d{1,2}):(\d{2}):(\d{2}) (AM|PM)$/i.exec(text.trim());
  if (!m) return undefined;
  const [, month, day, year, hour, minute, second, half] = m;
  let h = Number(hour) % 12;
  if ((half ?? '').toUpperCase() === 'PM') h += 12;
  return Date.UTC(Number(year), Number(month) - 1, Number(day), h, Number(minute), Number(second));
}

/** HTTP status → the outcome name Event Grid records (`lastDeliveryOutcome`; .NET status names). */
function outcomeOf(status: number): string {
  if (status >= 200 && status <= 204) return 'Delivered';
  if (status === 408) return 'TimedOut';
  if (status === 413) return 'RequestEntityTooLarge';
  const phrase = http.STATUS_CODES[status];
  return phrase ? phrase.replace(/[^A-Za-z]/g, '') : `Http${status}`;
}

function retryDelaySeconds(failedAttempts: number): number {
  return RETRY_SCHEDULE_SECONDS[failedAttempts - 1] ?? RETRY_AFTER_SCHEDULE_SECONDS;
}

function isLoopback(hostname: string): boolean {
  const h = hostname.replace(/^\[|\]$/g, '').toLowerCase();
  return h === '127.0.0.1' || h === 'localhost' || h === '::1';
}

export function createEventGridService(core: EmulatorCore, options: EventGridOptions = {}): EventGridService {
  const retryScale = options.retryScale ?? 0.001;
  const deliveryTimeoutMs = options.deliveryTimeoutMs ?? 30_000;
  const maxStoredEvents = options.maxStoredEvents ?? 10_000;

  const topics = new Map<string, Topic>();
  const topicsByHost = new Map<string, Topic>();
  const subs = new Map<string, Subscription>();
  const stored: StoredEvent[] = [];
  const deliveryLog: DeliveryRecord[] = [];
  const deadLetterLog: DeadLetterRecord[] = [];
  const jobs = new Set<Job>();
  let idleWaiters: Array<() => void> = [];
  let stopped = false;

  const iso = () => new Date(core.now()).toISOString();
  const newKey = () => Buffer.from(core.randomHex(64), 'hex').toString('base64');
  const subKey = (topic: Topic, name: string) => `${topic.name.toLowerCase()}|${name.toLowerCase()}`;

  function findTopic(ref: string): Topic | undefined {
    const wanted = ref.replace(/\/+$/, '').toLowerCase();
    for (const t of topics.values()) if (t.aliases.includes(wanted)) return t;
    return undefined;
  }

  function register(topic: Topic): TopicInfo {
    if (topics.has(topic.name.toLowerCase())) throw new Error(`a topic named ${topic.name} already exists`);
    topics.set(topic.name.toLowerCase(), topic);
    if (topic.hostname) topicsByHost.set(topic.hostname, topic);
    return publicTopic(topic);
  }

  function publicTopic(t: Topic): TopicInfo {
    const { aliases: _aliases, builtIn: _builtIn, ...info } = t;
    return { ...info, ...(info.keys ? { keys: { ...info.keys } } : {}) };
  }

  function createSystemTopic(spec: SystemTopicSpec, builtIn = false): TopicInfo {
    if (!spec || !TOPIC_NAME.test(spec.name ?? ''))
      throw new Error('a system topic needs a name of 3-50 letters, digits or hyphens');
    if (typeof spec.source !== 'string' || !spec.source.startsWith('/subscriptions/')) {
      throw new Error('a system topic needs the ARM id of its source');
    }
    const subscriptionId = spec.subscriptionId ?? core.subscriptionId;
    const id = `/subscriptions/${subscriptionId}/resourceGroups/${spec.resourceGroup ?? 'rg-kvguard'}/providers/Microsoft.EventGrid/systemTopics/${spec.name}`;
    return register({
      kind: 'system',
      name: spec.name,
      id,
      inputSchema: spec.inputSchema ?? 'EventGridSchema',
      source: spec.source,
      topicType: spec.topicType,
      region: spec.location ?? 'global',
      aliases: [spec.name.toLowerCase(), id.toLowerCase(), spec.source.replace(/\/+$/, '').toLowerCase()],
      builtIn,
    });
  }

  function createTopic(spec: TopicSpec): TopicInfo {
    if (!spec || !TOPIC_NAME.test(spec.name ?? ''))
      throw new Error('a topic needs a name of 3-50 letters, digits or hyphens');
    const region = (spec.region ?? 'westeurope').replace(/\s+/g, '').toLowerCase();
    const subscriptionId = spec.subscriptionId ?? core.subscriptionId;
    const hostname = `${spec.name.toLowerCase()}.${region}-1.eventgrid.azure.net`;
    const inputSchema = spec.inputSchema ?? 'EventGridSchema';
    if (inputSchema !== 'EventGridSchema' && inputSchema !== 'CloudEventSchemaV1_0') {
      throw new Error("inputSchema must be 'EventGridSchema' or 'CloudEventSchemaV1_0'");
    }
    const id = `/subscriptions/${subscriptionId}/resourceGroups/${spec.resourceGroup ?? 'rg-kvguard'}/providers/Microsoft.EventGrid/topics/${spec.name}`;
    return register({
      kind: 'custom',
      name: spec.name,
      id,
      inputSchema,
      endpoint: `https://${hostname}/api/events`,
      hostname,
      region,
      keys: { key1: spec.keys?.[0] ?? newKey(), key2: spec.keys?.[1] ?? newKey() },
      disableLocalAuth: spec.disableLocalAuth === true,
      aliases: [spec.name.toLowerCase(), id.toLowerCase(), hostname],
      builtIn: false,
    });
  }

  function addBuiltInTopics(): void {
    createSystemTopic(
      {
        name: SUBSCRIPTION_SYSTEM_TOPIC,
        source: `/subscriptions/${core.subscriptionId}`,
        topicType: 'Microsoft.Resources.Subscriptions',
      },
      true,
    );
  }
  addBuiltInTopics();

  // ---------- storage and fan-out ----------

  function eventType(e: StoredEvent): string {
    const v = e.schema === 'EventGridSchema' ? e.event.eventType : e.event.type;
    return typeof v === 'string' ? v : '';
  }

  function subjectOf(e: StoredEvent): string {
    return typeof e.event.subject === 'string' ? e.event.subject : '';
  }

  function matches(sub: Subscription, e: StoredEvent): boolean {
    const { includedEventTypes, subjectBeginsWith, subjectEndsWith } = sub.info;
    const type = eventType(e).toLowerCase();
    if (
      includedEventTypes &&
      includedEventTypes.length > 0 &&
      !includedEventTypes.some((t) => t.toLowerCase() === type)
    ) {
      return false;
    }
    const subject = subjectOf(e).toLowerCase();
    if (subjectBeginsWith && !subject.startsWith(subjectBeginsWith.toLowerCase())) return false;
    if (subjectEndsWith && !subject.endsWith(subjectEndsWith.toLowerCase())) return false;
    return true;
  }

  function accept(
    topic: Topic,
    events: Array<Record<string, unknown>>,
    via: StoredEvent['via'],
  ): StoredEvent[] {
    const publishTime = iso();
    const records = events.map((event) => ({
      topic: topic.name,
      schema: topic.inputSchema,
      event,
      publishTime,
      via,
    }));
    stored.push(...records);
    if (stored.length > maxStoredEvents) stored.splice(0, stored.length - maxStoredEvents);
    if (stopped) return records;
    for (const sub of subs.values()) {
      if (sub.topic !== topic || !sub.active) continue;
      const matching = records.filter((r) => matches(sub, r));
      for (let i = 0; i < matching.length; i += sub.info.maxEventsPerBatch) {
        schedule(
          {
            sub,
            events: matching.slice(i, i + sub.info.maxEventsPerBatch),
            attempts: 0,
            virtualElapsedMs: 0,
          },
          0,
        );
      }
    }
    return records;
  }

  // ---------- delivery ----------

  function schedule(job: Job, delayMs: number): void {
    jobs.add(job);
    // Never inline: the publisher's 200 must not wait for a subscriber.
    job.timer = setTimeout(() => void attempt(job), delayMs);
    job.timer.unref();
  }

  function finish(job: Job): void {
    jobs.delete(job);
    if (jobs.size === 0) {
      const waiters = idleWaiters;
      idleWaiters = [];
      for (const w of waiters) w();
    }
  }

  function deliveryBody(sub: Subscription, events: StoredEvent[]): { contentType: string; body: string } {
    if (sub.info.deliverySchema === 'EventGridSchema') {
      return {
        contentType: 'application/json; charset=utf-8',
        body: JSON.stringify(events.map((e) => e.event)),
      };
    }
    // CloudEvents go out in structured mode: one event as an object, a batch as an array.
    const only = events.length === 1 ? events[0] : undefined;
    return only
      ? { contentType: 'application/cloudevents+json; charset=utf-8', body: JSON.stringify(only.event) }
      : {
          contentType: 'application/cloudevents-batch+json; charset=utf-8',
          body: JSON.stringify(events.map((e) => e.event)),
        };
  }

  async function attempt(job: Job): Promise<void> {
    job.timer = undefined;
    if (stopped || job.cancelled) return;
    const { sub } = job;
    job.attempts += 1;
    const { contentType, body } = deliveryBody(sub, job.events);
    const first = job.events[0]?.event;
    const headers: Record<string, string> = {
      'content-type': contentType,
      'aeg-event-type': 'Notification',
      // Event Grid sends the subscription name upper-cased and the count of earlier attempts.
      'aeg-subscription-name': sub.info.name.toUpperCase(),
      'aeg-delivery-count': String(job.attempts - 1),
      'aeg-metadata-version': sub.info.deliverySchema === 'EventGridSchema' ? '1' : '1.0',
    };
    if (sub.info.deliverySchema === 'EventGridSchema' && typeof first?.dataVersion === 'string') {
      headers['aeg-data-version'] = first.dataVersion;
    }
    const started = Date.now();
    job.controller = new AbortController();
    const result = await send(sub.url, 'POST', headers, body, job.controller.signal);
    job.controller = undefined;
    if (stopped || job.cancelled) return;
    job.lastAttemptTime = iso();
    job.lastStatus = result.status;
    job.lastOutcome =
      result.status !== undefined ? outcomeOf(result.status) : result.timedOut ? 'TimedOut' : 'GenericError';
    deliveryLog.push({
      subscription: sub.info.name,
      topic: sub.topic.name,
      eventIds: job.events.map((e) => String(e.event.id)),
      attempt: job.attempts,
      time: job.lastAttemptTime,
      ...(result.status !== undefined ? { status: result.status } : {}),
      outcome: job.lastOutcome,
      durationMs: Date.now() - started,
      ...(result.error ? { error: result.error } : {}),
    });
    if (result.status !== undefined && result.status >= 200 && result.status <= 204) {
      finish(job);
      return;
    }
    if (result.status !== undefined && NO_RETRY.has(result.status)) {
      // Documented for 400 (UndeliverableDueToHttpBadRequest); the other names follow it (UNCONFIRMED).
      deadLetter(job, `UndeliverableDueToHttp${job.lastOutcome}`);
      return;
    }
    if (job.attempts >= sub.info.maxDeliveryAttempts) {
      deadLetter(job, 'MaxDeliveryAttemptsExceeded');
      return;
    }
    const delayMs = retryDelaySeconds(job.attempts) * 1000;
    if (job.virtualElapsedMs + delayMs > sub.info.eventTimeToLiveInMinutes * 60_000) {
      deadLetter(job, 'TimeToLiveExceeded');
      return;
    }
    job.virtualElapsedMs += delayMs;
    schedule(job, delayMs * retryScale);
  }

  function deadLetter(job: Job, reason: string): void {
    const { sub } = job;
    if (sub.info.deadLetter) {
      for (const e of job.events) {
        const fields = {
          deadLetterReason: reason,
          deliveryAttempts: job.attempts,
          lastDeliveryOutcome: job.lastOutcome ?? 'GenericError',
          ...(job.lastStatus !== undefined ? { lastHttpStatusCode: job.lastStatus } : {}),
          publishTime: e.publishTime,
          lastDeliveryAttemptTime: job.lastAttemptTime ?? iso(),
        };
        // CloudEvents attribute names must be lower-case, so the dead-letter fields are too.
        const added =
          e.schema === 'CloudEventSchemaV1_0'
            ? Object.fromEntries(Object.entries(fields).map(([k, v]) => [k.toLowerCase(), v]))
            : fields;
        deadLetterLog.push({
          subscription: sub.info.name,
          topic: sub.topic.name,
          ...fields,
          event: { ...e.event, ...added },
        });
      }
    } else {
      core.log(
        `eventgrid: dropped ${job.events.length} event(s) for ${sub.info.name} (${reason}); dead-lettering is off`,
      );
    }
    finish(job);
  }

  function send(
    url: URL,
    method: string,
    headers: Record<string, string>,
    body: string | undefined,
    signal: AbortSignal,
  ): Promise<HttpResult> {
    return new Promise((resolve) => {
      const payload = body === undefined ? undefined : Buffer.from(body, 'utf8');
      const transport = url.protocol === 'https:' ? https : http;
      let settled = false;
      const done = (r: HttpResult) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        resolve(r);
      };
      const req = transport.request(
        url,
        {
          method,
          headers: { ...headers, ...(payload ? { 'content-length': String(payload.length) } : {}) },
          signal,
          // Straight to the subscriber: deliveries are Event Grid's own egress, not a client call.
          agent: false,
        },
        (res) => {
          const chunks: Buffer[] = [];
          let size = 0;
          res.on('data', (c: Buffer) => {
            size += c.length;
            if (size <= 64 * 1024) chunks.push(c);
          });
          res.on('end', () =>
            done({
              status: res.statusCode,
              headers: res.headers,
              body: Buffer.concat(chunks).toString('utf8'),
            }),
          );
          res.on('error', (error) => done({ headers: {}, body: '', error: error.message }));
        },
      );
      const timer = setTimeout(() => {
        req.destroy();
        done({ headers: {}, body: '', error: `no answer within ${deliveryTimeoutMs} ms`, timedOut: true });
      }, deliveryTimeoutMs);
      timer.unref();
      req.on('error', (error) => done({ headers: {}, body: '', error: error.message }));
      req.end(payload);
    });
  }

  // ---------- subscriptions ----------

  function validationEvent(sub: Subscription, code: string): Record<string, unknown> {
    const region = sub.topic.region && sub.topic.region !== 'global' ? sub.topic.region : 'westeurope';
    return {
      id: randomUUID(),
      topic: sub.topic.kind === 'system' ? sub.topic.source : sub.topic.id,
      subject: '',
      data: {
        validationCode: code,
        validationUrl: `https://rp-${region}.eventgrid.azure.net:553/eventsubscriptions/${encodeURIComponent(sub.info.name)}/validate?id=${code}&t=${encodeURIComponent(iso())}&apiVersion=2018-05-01-preview&token=${core.randomHex(32)}`,
      },
      eventType: 'Microsoft.EventGrid.SubscriptionValidationEvent',
      eventTime: iso(),
      metadataVersion: '1',
      dataVersion: '1',
    };
  }

  function handshakeFailure(sub: Subscription, method: string, detail: string): Error {
    return new Error(
      `Webhook validation handshake failed for ${sub.url.origin}${sub.url.pathname}. Http ${method} request failed with ${detail}. For troublehooting, visit https://aka.ms/esvalidation. Activity id:${randomUUID()}, timestamp: ${serviceTimeString(new Date(core.now()))} (UTC).`,
    );
  }

  /** Event Grid schema: POST a SubscriptionValidationEvent, expect 200 {validationResponse: code}. */
  async function handshakeEventGrid(sub: Subscription): Promise<'Succeeded' | 'AwaitingManualAction'> {
    const code = randomUUID().toUpperCase();
    sub.validationCode = code;
    const controller = new AbortController();
    const result = await send(
      sub.url,
      'POST',
      {
        'content-type': 'application/json; charset=utf-8',
        'aeg-event-type': 'SubscriptionValidation',
        'aeg-subscription-name': sub.info.name.toUpperCase(),
        'aeg-delivery-count': '0',
        'aeg-data-version': '1',
        'aeg-metadata-version': '1',
      },
      JSON.stringify([validationEvent(sub, code)]),
      controller.signal,
    );
    if (result.status === undefined) throw handshakeFailure(sub, 'POST', result.error ?? 'no response');
    if (result.status !== 200) throw handshakeFailure(sub, 'POST', `response code ${result.status}`);
    let answer: unknown;
    try {
      answer = JSON.parse(result.body || 'null');
    } catch {
      answer = undefined;
    }
    const given = isRecord(answer)
      ? Object.entries(answer).find(([k]) => k.toLowerCase() === 'validationresponse')?.[1]
      : undefined;
    if (given === undefined) {
      // 200 without the code: the owner must GET validationUrl (manual validation).
      return 'AwaitingManualAction';
    }
    if (typeof given !== 'string' || given.toUpperCase() !== code) {
      throw handshakeFailure(sub, 'POST', 'a validationResponse that does not match the validation code');
    }
    return 'Succeeded';
  }

  /** CloudEvents schema: OPTIONS with WebHook-Request-Origin, expect WebHook-Allowed-Origin. */
  async function handshakeCloudEvents(sub: Subscription): Promise<'Succeeded'> {
    const origin = 'eventgrid.azure.net';
    const controller = new AbortController();
    const result = await send(
      sub.url,
      'OPTIONS',
      { 'webhook-request-origin': origin },
      undefined,
      controller.signal,
    );
    if (result.status === undefined) throw handshakeFailure(sub, 'OPTIONS', result.error ?? 'no response');
    const allowed = headerValue(result.headers, 'webhook-allowed-origin');
    if (result.status < 200 || result.status > 204 || (allowed !== origin && allowed !== '*')) {
      throw handshakeFailure(
        sub,
        'OPTIONS',
        `response code ${result.status}${allowed ? '' : ' and no WebHook-Allowed-Origin header'}`,
      );
    }
    return 'Succeeded';
  }

  function boundedInt(value: unknown, name: string, min: number, max: number, fallback: number): number {
    if (value === undefined || value === null) return fallback;
    if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) {
      throw new Error(`${name} must be an integer from ${min} to ${max}`);
    }
    return value;
  }

  async function subscribe(spec: SubscriptionSpec): Promise<SubscriptionInfo> {
    if (!spec || typeof spec.topicName !== 'string') throw new Error('a subscription needs topicName');
    const topic = findTopic(spec.topicName);
    if (!topic) throw new Error(`no topic ${spec.topicName}`);
    if (typeof spec.name !== 'string' || !/^[a-zA-Z0-9-]{3,64}$/.test(spec.name)) {
      throw new Error('a subscription needs a name of 3-64 letters, digits or hyphens');
    }
    let url: URL;
    try {
      url = new URL(spec.endpointUrl);
    } catch {
      throw new Error(`endpointUrl ${String(spec.endpointUrl)} is not a URL`);
    }
    // Azure requires https for webhooks; plain http is allowed only to this machine's functions host.
    if (!(url.protocol === 'https:' || (url.protocol === 'http:' && isLoopback(url.hostname)))) {
      throw new Error(
        'The attribute endpointUrl must be an https:// URL (http:// only for a loopback address)',
      );
    }
    if (
      spec.includedEventTypes !== undefined &&
      (!Array.isArray(spec.includedEventTypes) || spec.includedEventTypes.some((t) => typeof t !== 'string'))
    ) {
      throw new Error('includedEventTypes must be a list of strings');
    }
    const info: SubscriptionInfo = {
      name: spec.name,
      topic: topic.name,
      topicId: topic.id,
      endpointUrl: spec.endpointUrl,
      provisioningState: 'Succeeded',
      deliverySchema: topic.inputSchema,
      ...(spec.includedEventTypes ? { includedEventTypes: [...spec.includedEventTypes] } : {}),
      ...(spec.subjectBeginsWith ? { subjectBeginsWith: spec.subjectBeginsWith } : {}),
      ...(spec.subjectEndsWith ? { subjectEndsWith: spec.subjectEndsWith } : {}),
      maxDeliveryAttempts: boundedInt(spec.maxDeliveryAttempts, 'maxDeliveryAttempts', 1, 30, 30),
      eventTimeToLiveInMinutes: boundedInt(
        spec.eventTimeToLiveInMinutes,
        'eventTimeToLiveInMinutes',
        1,
        1440,
        1440,
      ),
      maxEventsPerBatch: boundedInt(spec.maxEventsPerBatch, 'maxEventsPerBatch', 1, 5000, 1),
      deadLetter: spec.deadLetter !== false,
    };
    const sub: Subscription = { info, topic, url, active: false };
    if (!spec.skipValidation) {
      info.provisioningState =
        topic.inputSchema === 'EventGridSchema'
          ? await handshakeEventGrid(sub)
          : await handshakeCloudEvents(sub);
    }
    sub.active = info.provisioningState === 'Succeeded';
    subs.set(subKey(topic, spec.name), sub);
    return { ...info };
  }

  function unsubscribe(topicName: string, name: string): boolean {
    const topic = findTopic(topicName);
    return topic ? subs.delete(subKey(topic, name)) : false;
  }

  // ---------- publishing ----------

  function reportSuffix(requestId: string): string {
    return ` Report '${requestId}:1:${serviceTimeString(new Date(core.now()))}' to our forums for assistance or raise a support ticket.`;
  }

  function failure(status: number, code: string, detailCode: string, message: string): PublishFailure {
    return new PublishFailure(status, code, detailCode, message);
  }

  function errorResponse(f: PublishFailure, requestId: string, callerOid?: string): EmuResponse {
    const message = `${f.message}${reportSuffix(requestId)}`;
    return {
      status: f.status,
      headers: { 'x-ms-request-id': requestId },
      body: { error: { code: f.code, message, details: [{ code: f.detailCode, message }] } },
      ...(callerOid ? { callerOid } : {}),
    };
  }

  function verifySas(topic: Topic, token: string): PublishFailure | undefined {
    const malformed = failure(
      400,
      'BadRequest',
      'InvalidSas',
      'Invalid key in aeg-sas-token. Valid format :r=UrlEncodedResource&e=UrlEncodedUtcExpiration&s=UrlEncodedSignature.',
    );
    const at = token.lastIndexOf('&s=');
    if (at < 0) return malformed;
    const signed = token.slice(0, at);
    const parts = new Map<string, string>();
    for (const piece of token.split('&')) {
      const eq = piece.indexOf('=');
      if (eq < 0) return malformed;
      try {
        parts.set(piece.slice(0, eq), decodeURIComponent(piece.slice(eq + 1)));
      } catch {
        return malformed;
      }
    }
    const resource = parts.get('r');
    const expiry = parts.get('e');
    const signature = parts.get('s');
    if (!resource || !expiry || !signature) return malformed;
    const notAuthorized = failure(
      401,
      'Unauthorized',
      'Unauthorized',
      `The request authorization token is not authorized for ${topic.hostname?.toUpperCase() ?? topic.name}.`,
    );
    let resourceUrl: URL;
    try {
      resourceUrl = new URL(resource);
    } catch {
      return notAuthorized;
    }
    // The token names the topic endpoint (generateSharedAccessSignature signs `<endpoint>?apiVersion=…`).
    if (
      resourceUrl.hostname.toLowerCase() !== topic.hostname ||
      !'/api/events'.startsWith(resourceUrl.pathname.replace(/\/+$/, '').toLowerCase() || '/')
    ) {
      return notAuthorized;
    }
    const expires = parseServiceTime(expiry);
    if (expires === undefined) return malformed;
    if (expires < core.now()) {
      return failure(
        401,
        'Unauthorized',
        'Unauthorized',
        `The request authorization token has expired at ${expiry}.`,
      );
    }
    const given = Buffer.from(signature, 'base64');
    const keys = topic.keys ? [topic.keys.key1, topic.keys.key2] : [];
    const valid = keys.some((key) => {
      // The SDK signs with the base64-decoded key over the exact `r=…&e=…` text (cryptoHelpers.js).
      const expected = createHmac('sha256', Buffer.from(key, 'base64')).update(signed).digest();
      return expected.length === given.length && timingSafeEqual(expected, given);
    });
    return valid ? undefined : notAuthorized;
  }

  function authenticate(topic: Topic, req: EmuRequest): { failure?: PublishFailure; callerOid?: string } {
    const host = topic.hostname?.toUpperCase() ?? topic.name;
    const localAuthOff = failure(
      401,
      'Unauthorized',
      'Unauthorized',
      `Local authentication is disabled for ${host}: publish with a Microsoft Entra token.`,
    );
    const key = headerValue(req.headers, 'aeg-sas-key');
    if (key !== undefined) {
      if (topic.disableLocalAuth) return { failure: localAuthOff };
      if (key === '')
        return {
          failure: failure(400, 'BadRequest', 'InvalidSas', 'Request must have a value for aeg-sas-key.'),
        };
      const k = Buffer.from(key);
      const ok = [topic.keys?.key1, topic.keys?.key2].some(
        (candidate) =>
          candidate !== undefined &&
          candidate.length === key.length &&
          timingSafeEqual(Buffer.from(candidate), k),
      );
      return ok
        ? {}
        : {
            failure: failure(
              401,
              'Unauthorized',
              'Unauthorized',
              `The request authorization key is not authorized for ${host}.`,
            ),
          };
    }
    const sas = headerValue(req.headers, 'aeg-sas-token');
    if (sas !== undefined) {
      if (topic.disableLocalAuth) return { failure: localAuthOff };
      const f = verifySas(topic, sas);
      return f ? { failure: f } : {};
    }
    const authorization = headerValue(req.headers, 'authorization');
    if (authorization !== undefined) {
      const claims = core.verifyBearer(authorization, EVENTGRID_AUDIENCES);
      if (!claims) {
        return {
          failure: failure(
            401,
            'Unauthorized',
            'Unauthorized',
            `The bearer token presented is not valid for ${host}.`,
          ),
        };
      }
      if (!core.isAuthorized(claims.oid, topic.id, SEND_ACTION)) {
        return {
          callerOid: claims.oid,
          failure: failure(
            401,
            'Unauthorized',
            'Unauthorized',
            `The principal '${claims.oid}' is not authorized to perform '${SEND_ACTION}' on '${topic.id}'.`,
          ),
        };
      }
      return { callerOid: claims.oid };
    }
    return {
      failure: failure(
        401,
        'Unauthorized',
        'Unauthorized',
        'Request must contain one of the following authorization signature: aeg-sas-token, aeg-sas-key.',
      ),
    };
  }

  function schemaMismatch(topic: Topic, detail: string): PublishFailure {
    const name = topic.inputSchema === 'EventGridSchema' ? 'EventGridEvent' : 'CloudEventV10';
    return failure(
      400,
      'BadRequest',
      'InputJsonInvalid',
      `This resource is configured to receive event in '${name}' schema. The JSON received does not conform to the expected schema. ${detail}`,
    );
  }

  function requireString(event: Record<string, unknown>, name: string, index: number): void {
    if (typeof event[name] !== 'string' || (name !== 'subject' && event[name] === '')) {
      throw failure(
        400,
        'BadRequest',
        'InputJsonInvalid',
        `Required property '${name}' was not found or is not a string. Path '[${index}]'.`,
      );
    }
  }

  function parseEventGridEvents(topic: Topic, body: unknown): Array<Record<string, unknown>> {
    if (!Array.isArray(body))
      throw schemaMismatch(topic, 'Token Expected: StartArray, Actual Token Received: StartObject.');
    if (body.length === 0)
      throw failure(400, 'BadRequest', 'InputJsonInvalid', 'The request contains no events.');
    return body.map((raw, i) => {
      if (!isRecord(raw)) throw schemaMismatch(topic, `Path '[${i}]'.`);
      for (const name of ['id', 'subject', 'eventType', 'eventTime', 'dataVersion'])
        requireString(raw, name, i);
      if (Number.isNaN(Date.parse(raw.eventTime as string))) {
        throw failure(
          400,
          'BadRequest',
          'InputJsonInvalid',
          `Could not convert string to DateTime: ${String(raw.eventTime)}. Path '[${i}].eventTime'.`,
        );
      }
      // Event Grid owns these two: the topic's ARM id and metadata version 1 (azure-facts §4.5).
      return { ...raw, topic: topic.id, metadataVersion: '1' };
    });
  }

  function parseCloudEvents(topic: Topic, body: unknown, batch: boolean): Array<Record<string, unknown>> {
    const list: unknown[] = batch ? (Array.isArray(body) ? body : []) : [body];
    if (batch && !Array.isArray(body))
      throw schemaMismatch(topic, 'Token Expected: StartArray, Actual Token Received: StartObject.');
    if (!batch && !isRecord(body))
      throw schemaMismatch(topic, 'Token Expected: StartObject, Actual Token Received: StartArray.');
    if (list.length === 0)
      throw failure(400, 'BadRequest', 'InputJsonInvalid', 'The request contains no events.');
    return list.map((raw, i) => {
      if (!isRecord(raw)) throw schemaMismatch(topic, `Path '[${i}]'.`);
      if (raw.specversion !== '1.0') {
        throw failure(
          400,
          'BadRequest',
          'InputJsonInvalid',
          `The CloudEvent at index ${i} must have specversion '1.0'.`,
        );
      }
      for (const name of ['id', 'source', 'type']) requireString(raw, name, i);
      if (raw.time !== undefined && (typeof raw.time !== 'string' || Number.isNaN(Date.parse(raw.time)))) {
        throw failure(
          400,
          'BadRequest',
          'InputJsonInvalid',
          `The CloudEvent at index ${i} has an invalid time.`,
        );
      }
      const badName = Object.keys(raw).find((k) => !/^[a-z0-9_]+$/.test(k));
      if (badName) {
        throw failure(
          400,
          'BadRequest',
          'InputJsonInvalid',
          `The CloudEvent attribute name '${badName}' must be lower-case letters or digits.`,
        );
      }
      return { ...raw };
    });
  }

  function publish(topic: Topic, req: EmuRequest): StoredEvent[] {
    if (req.body.length > MAX_REQUEST_BYTES) {
      throw failure(
        413,
        'RequestEntityTooLarge',
        'PayloadTooLarge',
        `The maximum size (${MAX_REQUEST_BYTES}) has been exceeded.`,
      );
    }
    const contentType =
      (headerValue(req.headers, 'content-type') ?? '').split(';')[0]?.trim().toLowerCase() ?? '';
    let body: unknown;
    try {
      body = JSON.parse(req.body.toString('utf8'));
    } catch (error) {
      throw failure(
        400,
        'BadRequest',
        'InputJsonInvalid',
        `The request body is not valid JSON: ${error instanceof Error ? error.message : String(error)}.`,
      );
    }
    let events: Array<Record<string, unknown>>;
    if (topic.inputSchema === 'EventGridSchema') {
      if (contentType.startsWith('application/cloudevents')) {
        throw schemaMismatch(topic, `Content-Type '${contentType}' is for CloudEvents.`);
      }
      events = parseEventGridEvents(topic, body);
    } else {
      if (contentType === 'application/cloudevents-batch+json') events = parseCloudEvents(topic, body, true);
      else if (contentType === 'application/cloudevents+json' || contentType === 'application/json') {
        events = parseCloudEvents(topic, body, false);
      } else {
        throw failure(
          415,
          'UnsupportedMediaType',
          'InvalidContentType',
          "The Content-Type header is either missing or it doesn't have a valid value. The content type header must either be application/cloudevents+json; charset=utf-8 or application/cloudevents-batch+json; charset=UTF-8.",
        );
      }
    }
    for (const e of events) {
      if (Buffer.byteLength(JSON.stringify(e), 'utf8') > MAX_EVENT_BYTES) {
        throw failure(
          413,
          'RequestEntityTooLarge',
          'PayloadTooLarge',
          `The maximum size (${MAX_EVENT_BYTES}) has been exceeded for an event.`,
        );
      }
    }
    return accept(topic, events, 'publish');
  }

  function manualValidation(req: EmuRequest): EmuResponse | undefined {
    const m = /^\/eventsubscriptions\/([^/]+)\/validate$/i.exec(req.path);
    if (!m || req.method.toUpperCase() !== 'GET') return undefined;
    const name = decodeURIComponent(m[1] ?? '').toLowerCase();
    const code = (req.query.get('id') ?? '').toUpperCase();
    for (const sub of subs.values()) {
      if (sub.info.name.toLowerCase() === name && sub.validationCode === code && !sub.active) {
        sub.active = true;
        sub.info.provisioningState = 'Succeeded';
        return { status: 200, body: 'Webhook successfully validated as a result of user action.' };
      }
    }
    return {
      status: 400,
      body: { error: { code: 'BadRequest', message: 'The validation code is not valid or has expired.' } },
    };
  }

  const handle: ServiceHandler = (req: EmuRequest): EmuResponse => {
    const requestId = randomUUID();
    const manual = manualValidation(req);
    if (manual) return manual;
    const topic = topicsByHost.get(req.host.toLowerCase());
    if (!topic || topic.kind !== 'custom') {
      return errorResponse(
        failure(404, 'NotFound', 'ResourceNotFound', `No topic is reachable at ${req.host}.`),
        requestId,
      );
    }
    if (req.path.replace(/\/+$/, '').toLowerCase() !== '/api/events') {
      return errorResponse(
        failure(
          404,
          'NotFound',
          'ResourceNotFound',
          `No HTTP resource was found that matches the request URI '${encodeURIComponent(req.url)}'.`,
        ),
        requestId,
      );
    }
    const method = req.method.toUpperCase();
    if (method === 'OPTIONS') {
      return { status: 200, headers: { allow: 'POST, OPTIONS', 'x-ms-request-id': requestId } };
    }
    if (method !== 'POST') {
      return {
        ...errorResponse(
          failure(
            405,
            'MethodNotAllowed',
            'MethodNotAllowed',
            `The requested resource does not support http method '${method}'.`,
          ),
          requestId,
        ),
        headers: { allow: 'OPTIONS, POST', 'x-ms-request-id': requestId },
      };
    }
    const auth = authenticate(topic, req);
    if (auth.failure) return errorResponse(auth.failure, requestId, auth.callerOid);
    try {
      publish(topic, req);
    } catch (error) {
      if (error instanceof PublishFailure) return errorResponse(error, requestId, auth.callerOid);
      throw error;
    }
    // Exactly 200 with no body: EventGridPublisherClient.send accepts nothing else (azure-facts §0.1 #8).
    return {
      status: 200,
      headers: { 'x-ms-request-id': requestId },
      ...(auth.callerOid ? { callerOid: auth.callerOid } : {}),
    };
  };

  function publishSystem(topicName: string, events: Array<Record<string, unknown>>): StoredEvent[] {
    const topic = findTopic(topicName);
    if (!topic) throw new Error(`no topic ${topicName}`);
    const now = iso();
    const prepared = events.map((raw) => {
      if (topic.inputSchema === 'CloudEventSchemaV1_0') {
        return { specversion: '1.0', id: randomUUID(), time: now, ...raw };
      }
      // A system topic's events name their source as `topic` (resources-Resource*Success.json).
      const topicValue =
        topic.kind === 'system' ? (typeof raw.topic === 'string' ? raw.topic : topic.source) : topic.id;
      return {
        id: randomUUID(),
        eventTime: now,
        subject: '',
        dataVersion: '1',
        ...raw,
        topic: topicValue,
        metadataVersion: '1',
      };
    });
    return accept(topic, prepared, 'system').map((e) => ({ ...e, event: { ...e.event } }));
  }

  function events(filter?: string | EventFilter): StoredEvent[] {
    const f: EventFilter = typeof filter === 'string' ? { topic: filter } : (filter ?? {});
    const topic = f.topic ? findTopic(f.topic) : undefined;
    if (f.topic && !topic) return [];
    return stored
      .filter(
        (e) =>
          (!topic || e.topic === topic.name) &&
          (!f.eventType || eventType(e).toLowerCase() === f.eventType.toLowerCase()),
      )
      .map((e) => ({ ...e, event: { ...e.event } }));
  }

  function cancelAll(): void {
    for (const job of jobs) {
      job.cancelled = true;
      if (job.timer) clearTimeout(job.timer);
      job.controller?.abort();
    }
    jobs.clear();
    const waiters = idleWaiters;
    idleWaiters = [];
    for (const w of waiters) w();
  }

  return {
    handle,
    createTopic,
    createSystemTopic: (spec) => createSystemTopic(spec),
    topics: () => [...topics.values()].map(publicTopic),
    subscribe(spec) {
      const pending = subscribe(spec);
      // A caller that fires and forgets (e.g. an admin route that does not await) must not crash
      // the emulator with an unhandled rejection; awaiting callers still receive the error.
      pending.catch((error: unknown) =>
        core.log(
          `eventgrid: subscription ${String(spec?.name)} failed: ${error instanceof Error ? error.message : String(error)}`,
        ),
      );
      return pending;
    },
    unsubscribe,
    subscriptions: () => [...subs.values()].map((s) => ({ ...s.info })),
    publishSystem,
    events,
    deliveries: () => deliveryLog.map((d) => ({ ...d })),
    deadLetters: () => deadLetterLog.map((d) => ({ ...d, event: { ...d.event } })),
    whenIdle: () =>
      jobs.size === 0 ? Promise.resolve() : new Promise<void>((resolve) => idleWaiters.push(resolve)),
    reset() {
      cancelAll();
      stopped = false;
      subs.clear();
      stored.length = 0;
      deliveryLog.length = 0;
      deadLetterLog.length = 0;
      topics.clear();
      topicsByHost.clear();
      addBuiltInTopics();
    },
    stop() {
      stopped = true;
      cancelAll();
    },
  };
}
