/**
 * The signals publisher: the audit-log forwarder's CloudEvents (`Kvguard.KeyVault.*.v1`) to the
 * `kvguard-signals` topic, with `EventGridPublisherClient(endpoint, 'CloudEvent', credential)` and the
 * managed identity (design §1).
 *
 * - Each event keeps the `id` and `time` it was given: the forwarder derives the id from the record (a
 *   re-run republishes the same ids) and the time is the deletion time. The SDK would invent both when
 *   absent, so both are required here. The SDK types `time` as a Date and serialises it with
 *   `toISOString()`: the instant is kept, written as UTC with milliseconds (`…:03.1234567Z` → `…:03.123Z`).
 * - Event Grid refuses a request over 1 MB with 413 (azure-facts §4.1), so events go in chunks whose
 *   serialised size, plus room for the `traceparent`/`tracestate` attributes the SDK's tracing policy
 *   may add to each event, stays under `maxRequestBytes` (default 1,000,000 bytes: below 1 MB however
 *   Event Grid counts it). Chunks go one after another, in order.
 * - `publish` resolves when every chunk got 200 and throws `SignalPublishError` otherwise, saying how
 *   many events were published before the failure and whether another try can help. Events already
 *   published may be published again by a retry; their ids are stable, so a consumer can drop repeats.
 */
import type { EventGridPublisherClient, SendCloudEventInput } from '@azure/eventgrid';
import type { TokenCredential } from '@azure/identity';
import type { SignalEvent, SignalPublisher } from '../ports';
import { createCloudEventClient, DEFAULT_SINK_TIMEOUT_MS, describeSendFailure, withTimeout } from './sinks';

/** Default request budget: below Event Grid's 1 MB limit (azure-facts §4.1) whether 1 MB is 10^6 or 2^20. */
export const DEFAULT_MAX_REQUEST_BYTES = 1_000_000;
/**
 * Room per event for `traceparent` (55 characters) and `tracestate` (up to 512) that the SDK's
 * cloudEventDistributedTracingEnricherPolicy copies into each event when a trace is active.
 */
export const TRACING_ROOM_BYTES = 640;

export interface EventGridSignalPublisherOptions {
  /** The topic endpoint, `https://kvguard-signals.<region>-1.eventgrid.azure.net/api/events`. */
  endpoint: string;
  /** The app's managed identity; needs `EventGrid Data Sender` on the topic. */
  credential: TokenCredential;
  /** Base delay of the SDK's retry policy (config `KVGUARD_RETRY_BASE_DELAY_MS`). */
  retryBaseDelayMs: number;
  /** SDK retries per chunk; default 3 (azure.ts `clientOptions`). */
  maxRetries?: number;
  /** Budget of one request body, in bytes; default 1,000,000. */
  maxRequestBytes?: number;
  /** Abort one chunk's send (its retries included) after this long; default 10 s. */
  timeoutMs?: number;
}

/** Why `publish` did not publish everything. Its message holds no endpoint, token or event content. */
export class SignalPublishError extends Error {
  /** Events published (in order) before the failure: `events.slice(published)` were not. */
  readonly published: number;
  /** Whether publishing the rest again can succeed (408/429/5xx, network, timeout). */
  readonly retryable: boolean;
  /** Event Grid's HTTP status, when it answered. */
  readonly status?: number;
  /** Ids of the events that were not published. */
  readonly unpublishedIds: string[];

  constructor(
    message: string,
    details: { published: number; retryable: boolean; status?: number; unpublishedIds: string[] },
  ) {
    super(message);
    this.name = 'SignalPublishError';
    this.published = details.published;
    this.retryable = details.retryable;
    if (details.status !== undefined) this.status = details.status;
    this.unpublishedIds = details.unpublishedIds;
  }
}

/** The CloudEvent the SDK will send for a SignalEvent (no generated id or time). Throws on a bad event. */
export function toSignalCloudEvent(event: SignalEvent): SendCloudEventInput<Record<string, unknown>> {
  if (typeof event.id !== 'string' || event.id.length === 0)
    throw new TypeError('SignalEvent.id is required');
  if (typeof event.type !== 'string' || event.type.length === 0)
    throw new TypeError(`SignalEvent ${event.id}: type is required`);
  if (typeof event.source !== 'string' || event.source.length === 0)
    throw new TypeError(`SignalEvent ${event.id}: source is required`);
  const time = new Date(event.time);
  if (typeof event.time !== 'string' || Number.isNaN(time.getTime())) {
    throw new TypeError(`SignalEvent ${event.id}: time must be an ISO 8601 instant`);
  }
  return {
    id: event.id,
    type: event.type,
    source: event.source,
    subject: event.subject,
    time,
    ...(event.dataschema !== undefined ? { dataschema: event.dataschema } : {}),
    datacontenttype: 'application/json',
    data: event.data,
  };
}

/**
 * Bytes this event takes in the request body: the JSON of exactly the attributes the SDK writes
 * (`specversion` added, `time` as `toISOString()`), plus `TRACING_ROOM_BYTES`.
 */
export function cloudEventBytes(event: SendCloudEventInput<unknown>): number {
  const wire = {
    specversion: '1.0',
    type: event.type,
    source: event.source,
    id: event.id,
    time: event.time?.toISOString(),
    subject: event.subject,
    dataschema: event.dataschema,
    datacontenttype: event.datacontenttype,
    data: event.data,
  };
  return Buffer.byteLength(JSON.stringify(wire), 'utf8') + TRACING_ROOM_BYTES;
}

/**
 * Splits events, in order, into chunks whose JSON array (`[` + events joined by `,` + `]`) stays
 * within `maxBytes`. An event that alone exceeds the budget throws a non-retryable SignalPublishError:
 * Event Grid would refuse it (413) however often it is sent.
 */
export function chunkBySize<T extends SendCloudEventInput<unknown>>(events: T[], maxBytes: number): T[][] {
  const chunks: T[][] = [];
  let current: T[] = [];
  let size = 2; // [ and ]
  events.forEach((event, index) => {
    const bytes = cloudEventBytes(event);
    if (2 + bytes > maxBytes) {
      throw new SignalPublishError(
        `signal ${String(event.id)} is ${bytes} bytes: larger than one request may be (${maxBytes})`,
        {
          published: 0,
          retryable: false,
          status: 413,
          unpublishedIds: events.slice(index).map((e) => String(e.id)),
        },
      );
    }
    const added = bytes + (current.length > 0 ? 1 : 0);
    if (current.length > 0 && size + added > maxBytes) {
      chunks.push(current);
      current = [];
      size = 2;
    }
    size += bytes + (current.length > 0 ? 1 : 0);
    current.push(event);
  });
  if (current.length > 0) chunks.push(current);
  return chunks;
}

export class EventGridSignalPublisher implements SignalPublisher {
  private readonly client: EventGridPublisherClient<'CloudEvent'>;
  private readonly maxRequestBytes: number;
  private readonly timeoutMs: number;

  constructor(options: EventGridSignalPublisherOptions) {
    this.client = createCloudEventClient('EventGridSignalPublisher', options);
    this.maxRequestBytes = options.maxRequestBytes ?? DEFAULT_MAX_REQUEST_BYTES;
    if (!Number.isInteger(this.maxRequestBytes) || this.maxRequestBytes < 1024) {
      throw new RangeError('EventGridSignalPublisher: maxRequestBytes must be an integer of at least 1024');
    }
    this.timeoutMs = options.timeoutMs ?? DEFAULT_SINK_TIMEOUT_MS;
  }

  async publish(events: SignalEvent[]): Promise<void> {
    if (events.length === 0) return;
    const chunks = chunkBySize(events.map(toSignalCloudEvent), this.maxRequestBytes);
    let published = 0;
    for (const chunk of chunks) {
      const sent = await withTimeout(this.timeoutMs, (abortSignal) =>
        this.client.send(chunk, { abortSignal }),
      );
      if (!sent.ok) {
        const { retryable, status, reason } = describeSendFailure(sent.error, sent.timedOut, this.timeoutMs);
        throw new SignalPublishError(
          `publishing signals to Event Grid failed (${reason}) after ${published} of ${events.length} were published`,
          {
            published,
            retryable,
            ...(status !== undefined ? { status } : {}),
            unpublishedIds: events.slice(published).map((e) => e.id),
          },
        );
      }
      published += chunk.length;
    }
  }
}
