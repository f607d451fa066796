/**
 * The invocation requests the Functions host sends the Node.js worker, per trigger, and the decoding
 * of what comes back. Encodings follow the host's `RpcMessageConversionExtensions.ToRpc` with the
 * capabilities the Node.js worker advertises (`RawHttpBodyBytes`, `RpcHttpBodyOnly`,
 * `RpcHttpTriggerMetadataRemoved`, `TypedDataCollection`):
 * - HTTP: `RpcHttpData` with method, full url, lower-cased headers, query (empty values dropped,
 *   repeated keys joined by `,`), route params, and the body as bytes only when there is one; no
 *   trigger metadata.
 * - Event Grid: each event is its own invocation; a JSON object becomes `json` data; the binding
 *   data is `{ data: event.data }`.
 * - Event Hubs: `cardinality: 'many'` sends the bodies as a string collection (`collectionString`;
 *   the host drops empty strings) or, with `dataType: 'binary'`, `collectionBytes`; the trigger
 *   metadata carries the `...Array` properties and `PartitionContext`. `cardinality: 'one'` sends one
 *   body as `string` (or `bytes`).
 * - Timer: the `TimerInfo` JSON in the host's PascalCase (`IsPastDue`, `Schedule.AdjustForDST`,
 *   `ScheduleStatus.Last/Next/LastUpdated`); the library camel-cases it.
 * Every trigger's metadata also carries the host's `sys` entry.
 */
import { randomUUID } from 'node:crypto';
import type {
  RpcBindingInfo,
  RpcHttpCookie,
  RpcHttpData,
  RpcInvocationResponse,
  RpcParameterBinding,
  RpcTypedData,
} from './functions-core-standin';

export interface HttpTriggerInput {
  kind: 'http';
  method: string;
  /** Absolute URL as the client called it (query included). */
  url: string;
  headers?: Record<string, string | string[] | undefined>;
  body?: Buffer | Uint8Array | string;
  /** Route parameters (the local host fills these from the registered route). */
  params?: Record<string, string>;
}

export interface EventGridTriggerInput {
  kind: 'eventGrid';
  /** One event, Event Grid schema or CloudEvents (a JSON object). */
  event: unknown;
}

export interface EventHubTriggerInput {
  kind: 'eventHub';
  /** Event bodies: strings and Buffers as they are, anything else JSON-serialised (the producer's side). */
  records: unknown[];
  partitionId?: string;
  /** Sequence number of the first record (default 0). */
  firstSequenceNumber?: number;
  enqueuedTime?: Date;
  /** Application properties, one object per record. */
  properties?: Array<Record<string, unknown>>;
}

export interface TimerTriggerInput {
  kind: 'timer';
  isPastDue?: boolean;
  last?: Date;
  next?: Date;
  lastUpdated?: Date;
  adjustForDST?: boolean;
}

/** A raw request, for triggers the local host has no builder for. */
export interface RpcTriggerInput {
  kind: 'rpc';
  inputData: RpcParameterBinding[];
  triggerMetadata?: Record<string, RpcTypedData>;
}

export type TriggerInput =
  HttpTriggerInput | EventGridTriggerInput | EventHubTriggerInput | TimerTriggerInput | RpcTriggerInput;

export interface BuiltRequest {
  inputData: RpcParameterBinding[];
  triggerMetadata?: Record<string, RpcTypedData>;
}

/** A trigger option as text (non-strings JSON-encoded, so a wrong value still reads in a message). */
export function optionOf(binding: RpcBindingInfo, key: string): string | undefined {
  const value = binding[key];
  if (value === undefined || value === null) return undefined;
  return typeof value === 'string' ? value : JSON.stringify(value);
}

/** Event Hubs: `cardinality: 'many'` (the default is one event per invocation). */
export function isBatchTrigger(binding: RpcBindingInfo): boolean {
  return (optionOf(binding, 'cardinality') ?? 'one').toLowerCase() === 'many';
}

/** Which `TriggerInput.kind` a registered trigger type takes. */
export function inputKindFor(triggerType: string): TriggerInput['kind'] {
  switch (triggerType.toLowerCase()) {
    case 'httptrigger':
      return 'http';
    case 'eventgridtrigger':
      return 'eventGrid';
    case 'eventhubtrigger':
      return 'eventHub';
    case 'timertrigger':
      return 'timer';
    default:
      return 'rpc';
  }
}

export function buildRequest(
  functionName: string,
  triggerName: string,
  trigger: RpcBindingInfo,
  input: TriggerInput,
  now: Date = new Date(),
): BuiltRequest {
  const sys = jsonData({ MethodName: functionName, UtcNow: now.toISOString(), RandGuid: randomUUID() });
  switch (input.kind) {
    case 'http':
      return { inputData: [{ name: triggerName, data: { http: toRpcHttpRequest(input) } }] };
    case 'eventGrid': {
      if (typeof input.event !== 'object' || input.event === null || Array.isArray(input.event)) {
        throw new Error(
          `Unable to bind ${JSON.stringify(input.event)} to an Event Grid event: expected a JSON object.`,
        );
      }
      const data = (input.event as { data?: unknown }).data;
      const triggerMetadata: Record<string, RpcTypedData> = { sys };
      const encoded = encodeValue(data);
      if (encoded) triggerMetadata.data = encoded;
      return { inputData: [{ name: triggerName, data: jsonData(input.event) }], triggerMetadata };
    }
    case 'eventHub':
      return buildEventHubRequest(triggerName, trigger, input, sys, now);
    case 'timer': {
      const status =
        input.last || input.next
          ? {
              Last: (input.last ?? now).toISOString(),
              Next: (input.next ?? now).toISOString(),
              LastUpdated: (input.lastUpdated ?? now).toISOString(),
            }
          : null;
      const timerInfo = {
        Schedule: { AdjustForDST: input.adjustForDST ?? true },
        ScheduleStatus: status,
        IsPastDue: input.isPastDue ?? false,
      };
      return { inputData: [{ name: triggerName, data: jsonData(timerInfo) }], triggerMetadata: { sys } };
    }
    case 'rpc':
      return { inputData: input.inputData, triggerMetadata: input.triggerMetadata };
  }
}

function buildEventHubRequest(
  triggerName: string,
  trigger: RpcBindingInfo,
  input: EventHubTriggerInput,
  sys: RpcTypedData,
  now: Date,
): BuiltRequest {
  const many = isBatchTrigger(trigger);
  const binary = trigger.dataType === 'binary';
  if (!many && input.records.length !== 1) {
    throw new Error(
      `cardinality 'one' takes exactly one record per invocation, got ${input.records.length}.`,
    );
  }
  const bodies = input.records.map(toBody);
  const first = input.firstSequenceNumber ?? 0;
  const enqueued = (input.enqueuedTime ?? now).toISOString();
  const partitionId = input.partitionId ?? '0';
  const systemProperties = bodies.map((_b, i) => ({
    'x-opt-sequence-number': first + i,
    'x-opt-offset': String((first + i) * 1024),
    'x-opt-enqueued-time': enqueued,
    SequenceNumber: first + i,
    Offset: String((first + i) * 1024),
    PartitionKey: null,
    EnqueuedTimeUtc: enqueued,
  }));
  const properties = bodies.map((_b, i) => input.properties?.[i] ?? {});
  const partitionContext = jsonData({
    ConsumerGroup: optionOf(trigger, 'consumerGroup') ?? '$Default',
    EventHubName: optionOf(trigger, 'eventHubName') ?? '',
    FullyQualifiedNamespace: 'local.servicebus.windows.net',
    PartitionId: partitionId,
  });
  if (many) {
    const data: RpcTypedData = binary
      ? { collectionBytes: { bytes: bodies } }
      : { collectionString: { string: bodies.map((b) => b.toString('utf8')).filter((s) => s.length > 0) } };
    return {
      inputData: [{ name: triggerName, data }],
      triggerMetadata: {
        PartitionContext: partitionContext,
        PartitionKeyArray: jsonData(bodies.map(() => null)),
        OffsetArray: jsonData(systemProperties.map((p) => p.Offset)),
        SequenceNumberArray: jsonData(systemProperties.map((p) => p.SequenceNumber)),
        EnqueuedTimeUtcArray: jsonData(systemProperties.map(() => enqueued)),
        PropertiesArray: jsonData(properties),
        SystemPropertiesArray: jsonData(systemProperties),
        sys,
      },
    };
  }
  const body = bodies[0]!;
  return {
    inputData: [{ name: triggerName, data: binary ? { bytes: body } : { string: body.toString('utf8') } }],
    triggerMetadata: {
      PartitionContext: partitionContext,
      PartitionKey: jsonData(null),
      Offset: { string: systemProperties[0]!.Offset },
      SequenceNumber: { int: first },
      EnqueuedTimeUtc: { string: enqueued },
      Properties: jsonData(properties[0]),
      SystemProperties: jsonData(systemProperties[0]),
      sys,
    },
  };
}

function toBody(record: unknown): Buffer {
  if (Buffer.isBuffer(record)) return record;
  if (ArrayBuffer.isView(record)) return Buffer.from(record.buffer, record.byteOffset, record.byteLength);
  if (typeof record === 'string') return Buffer.from(record, 'utf8');
  return Buffer.from(JSON.stringify(record) ?? 'null', 'utf8');
}

export function toRpcHttpRequest(input: HttpTriggerInput): RpcHttpData {
  const url = new URL(input.url);
  const query: Record<string, string> = {};
  for (const key of new Set(url.searchParams.keys())) {
    const value = url.searchParams.getAll(key).join(',');
    if (value !== '') query[key] = value;
  }
  const headers: Record<string, string> = {};
  for (const [key, value] of Object.entries(input.headers ?? {})) {
    if (value === undefined) continue;
    const joined = Array.isArray(value) ? value.join(',') : value;
    if (joined !== '') headers[key.toLowerCase()] = joined;
  }
  const http: RpcHttpData = {
    method: input.method.toUpperCase(),
    url: url.toString(),
    headers,
    query,
    params: { ...(input.params ?? {}) },
  };
  const body =
    input.body === undefined
      ? undefined
      : typeof input.body === 'string'
        ? Buffer.from(input.body)
        : Buffer.from(input.body);
  if (body && body.length > 0) http.body = { bytes: new Uint8Array(body) };
  return http;
}

export function jsonData(value: unknown): RpcTypedData {
  return { json: JSON.stringify(value) ?? 'null' };
}

/** The host's `ToRpc` for a binding-data value (null and undefined give no entry). */
function encodeValue(value: unknown): RpcTypedData | undefined {
  if (value === undefined || value === null) return undefined;
  if (typeof value === 'string') return { string: value };
  if (Buffer.isBuffer(value)) return { bytes: new Uint8Array(value) };
  return jsonData(value);
}

/** Decodes typed data the way the host reads a return value (strings stay strings). */
export function decodeTypedData(data: RpcTypedData | null | undefined): unknown {
  if (!data) return undefined;
  if (data.string !== undefined && data.string !== null) return data.string;
  if (data.json !== undefined && data.json !== null) return JSON.parse(data.json) as unknown;
  if (data.bytes) return Buffer.from(data.bytes);
  if (data.stream) return Buffer.from(data.stream);
  if (data.int !== undefined && data.int !== null) return Number(data.int);
  if (data.double !== undefined && data.double !== null) return data.double;
  if (data.collectionString?.string) return [...data.collectionString.string];
  if (data.collectionBytes?.bytes) return data.collectionBytes.bytes.map((b) => Buffer.from(b));
  if (data.collectionDouble?.double) return [...data.collectionDouble.double];
  if (data.collectionSint64?.sint64) return data.collectionSint64.sint64.map(Number);
  if (data.http) return data.http;
  return undefined;
}

export interface HttpResult {
  status: number;
  headers: Record<string, string>;
  /** `Set-Cookie` header values. */
  cookies: string[];
  body: Buffer;
}

/**
 * The HTTP response in an invocation response: the `http` output binding (`$return` by default).
 * No response at all answers 204 (the host's answer when an HTTP function returns nothing).
 */
export function toHttpResult(
  response: RpcInvocationResponse,
  bindings: Record<string, RpcBindingInfo>,
): HttpResult {
  let http: RpcHttpData | null | undefined;
  for (const [name, binding] of Object.entries(bindings)) {
    if (binding.direction !== 'out' || String(binding.type).toLowerCase() !== 'http') continue;
    http =
      name === '$return'
        ? response.returnValue?.http
        : response.outputData?.find((o) => o.name === name)?.data?.http;
    if (http) break;
  }
  if (!http) return { status: 204, headers: {}, cookies: [], body: Buffer.alloc(0) };
  const raw = decodeTypedData(http.body);
  const body = Buffer.isBuffer(raw)
    ? raw
    : raw === undefined
      ? Buffer.alloc(0)
      : Buffer.from(typeof raw === 'string' ? raw : JSON.stringify(raw));
  return {
    status: http.statusCode ? Number(http.statusCode) : 200,
    headers: { ...(http.headers ?? {}) },
    cookies: (http.cookies ?? []).map(serializeCookie),
    body,
  };
}

function serializeCookie(cookie: RpcHttpCookie): string {
  const parts = [`${cookie.name ?? ''}=${cookie.value ?? ''}`];
  if (cookie.domain?.value) parts.push(`Domain=${cookie.domain.value}`);
  if (cookie.path?.value) parts.push(`Path=${cookie.path.value}`);
  const expires = cookie.expires?.value?.seconds;
  if (expires !== undefined && expires !== null)
    parts.push(`Expires=${new Date(Number(expires) * 1000).toUTCString()}`);
  if (cookie.maxAge?.value !== undefined && cookie.maxAge.value !== null)
    parts.push(`Max-Age=${cookie.maxAge.value}`);
  if (cookie.secure?.value) parts.push('Secure');
  if (cookie.httpOnly?.value) parts.push('HttpOnly');
  if (cookie.sameSite && cookie.sameSite !== 'none') {
    parts.push(
      `SameSite=${cookie.sameSite === 'explicitNone' ? 'None' : cookie.sameSite[0]!.toUpperCase() + cookie.sameSite.slice(1)}`,
    );
  }
  return parts.join('; ');
}
