/**
 * The local Functions host: loads a built app through the `@azure/functions-core` stand-in
 * (loader.ts) and serves it over HTTP on 127.0.0.1 the way the Functions host does, routing by the
 * registered triggers, so `func start` (Core Tools) is never needed.
 *
 * - `GET|POST|... /api/<route>`: HTTP triggers. The route is the registration's (default: the
 *   function name), methods as registered. With `functionKey` set, `authLevel` `function` and
 *   `admin` need `?code=<key>` or the `x-functions-key` header, else 401; without it no key is
 *   checked (as under `func start`). A function that throws answers 500.
 * - `POST /runtime/webhooks/eventgrid?functionName=<name>`: the Event Grid extension's webhook
 *   (Microsoft.Azure.WebJobs.Extensions.EventGrid `HttpRequestProcessor` and
 *   `EventGridExtensionConfigProvider`): `aeg-event-type: SubscriptionValidation` answers 200
 *   `{"validationResponse": code}` itself (EventGrid schema array, or a CloudEvent whose `data` may
 *   be double-encoded); `Notification` takes an array of events or one object and invokes the
 *   function once per event, concurrently; any failure answers 500 (Event Grid redelivers the whole
 *   request), success 202 Accepted; `Unsubscribe` 202; anything else 400; an unknown function 404.
 *   `OPTIONS` answers the CloudEvents abuse-protection handshake with `WebHook-Allowed-Origin`.
 *   With `systemKey` set (the `eventgrid_extension` system key), `?code=` must carry it.
 * - `POST /admin/functions/<name>` with `{"input": "<string>"}`: runs a non-HTTP function as the
 *   host's admin API does, answering 202 at once (the invocation runs on; `idle()` waits for it).
 *   The input is an Event Grid event's JSON, an Event Hubs body, or ignored for a timer.
 *   With `functionKey` set it is required here too (the local stand-in for the master key).
 * - `GET /admin/host/status`: `{ state: 'Running', ... }`, for readiness checks.
 * - Programmatic: `deliverEventHubBatch` (cardinality `many`: one invocation per batch; `one`: one
 *   per record) and `runTimer`, both applying the function's retry policy as the host does;
 *   `invocations` keeps every result, log lines included.
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { timingSafeEqual } from 'node:crypto';
import {
  loadFunctionsApp,
  messageOf,
  type FunctionInfo,
  type HostLogRecord,
  type InvocationResult,
  type LoadedApp,
  type RetriedInvocation,
} from './loader';
import { nextOccurrence } from './ncrontab';
import { compareRoutes, compileRoute, type CompiledRoute } from './routes';
import { isBatchTrigger, type EventHubTriggerInput, type TriggerInput } from './triggers';

export interface FunctionsHostOptions {
  /** The built entry file (e.g. dist/index.js), `@azure/functions` bundled in. */
  entryFile: string;
  /** When set, keyed HTTP triggers and the admin API require it (`?code=` or `x-functions-key`). */
  functionKey?: string;
  /** When set, the Event Grid webhook requires `?code=<systemKey>` (Azure's `eventgrid_extension` key). */
  systemKey?: string;
  /** Host log lines (default: stderr, prefixed `[functions]`). */
  log?: (line: string) => void;
  /** Default 0 (any free port). */
  port?: number;
  /** Default `api` (host.json `extensions.http.routePrefix`). */
  routePrefix?: string;
  /** Multiplies retry-policy delays (tests use a small factor). Default 1. */
  retryDelayScale?: number;
  /** App settings for `%NAME%` references (default `process.env`). */
  env?: Record<string, string | undefined>;
  /** How many invocation results `invocations` keeps (oldest dropped). Default 1000. */
  keepInvocations?: number;
}

export interface EventHubDeliveryOptions {
  partitionId?: string;
  firstSequenceNumber?: number;
  properties?: Array<Record<string, unknown>>;
}

export interface TimerRunOptions {
  isPastDue?: boolean;
}

export interface FunctionsHost {
  /** `http://127.0.0.1:<port>` */
  readonly url: string;
  readonly app: LoadedApp;
  readonly functions: FunctionInfo[];
  readonly functionKey?: string;
  /** Every invocation result, in completion order. */
  readonly invocations: InvocationResult[];
  /** The Event Grid delivery endpoint for a function (with `code` when a system key is set). */
  eventGridUrl(functionName: string): string;
  /** Delivers records to an Event Hubs trigger; resolves after the invocations (and retries) end. */
  deliverEventHubBatch(
    functionName: string,
    records: unknown[],
    options?: EventHubDeliveryOptions,
  ): Promise<RetriedInvocation[]>;
  /** Fires a timer trigger now. */
  runTimer(functionName: string, options?: TimerRunOptions): Promise<RetriedInvocation>;
  /** Resolves when no invocation started by the admin API is still running. */
  idle(): Promise<void>;
  stop(): Promise<void>;
}

const EVENT_GRID_PATH = '/runtime/webhooks/eventgrid';
const EVENT_GRID_ORIGINS = [
  'eventgrid.azure.net',
  'eventgrid.azure.us',
  'eventgrid.azure.eaglex.ic.gov',
  'eventgrid.azure.microsoft.scloud',
  'eventgrid.azure.cn',
];

interface Reply {
  status: number;
  headers?: Record<string, string | string[]>;
  body?: Buffer | string;
}

export async function startFunctionsHost(options: FunctionsHostOptions): Promise<FunctionsHost> {
  const log = options.log ?? ((line: string) => process.stderr.write(`[functions] ${line}\n`));
  const app = await loadFunctionsApp(options.entryFile, {
    env: options.env,
    onLog: (record) => log(formatLog(record)),
  });
  for (const warning of app.warnings) log(`warning: ${warning}`);
  const prefix = (options.routePrefix ?? 'api').replace(/^\/+|\/+$/g, '');
  const keep = options.keepInvocations ?? 1000;
  const retry = { delayScale: options.retryDelayScale ?? 1 };
  const invocations: InvocationResult[] = [];
  const inflight = new Set<Promise<unknown>>();
  const lastTimerRun = new Map<string, Date>();

  const record = (result: InvocationResult): InvocationResult => {
    invocations.push(result);
    if (invocations.length > keep) invocations.splice(0, invocations.length - keep);
    return result;
  };
  const recordAll = (run: RetriedInvocation): RetriedInvocation => {
    for (const attempt of run.attempts) record(attempt);
    return run;
  };
  const track = <T>(work: Promise<T>): Promise<T> => {
    inflight.add(work);
    void work.finally(() => inflight.delete(work)).catch(() => undefined);
    return work;
  };

  const httpRoutes: Array<{ info: FunctionInfo; route: CompiledRoute }> = app.functions
    .filter((f) => f.triggerType.toLowerCase() === 'httptrigger')
    .map((info) => ({ info, route: compileRoute(info.route!) }))
    .sort((a, b) => compareRoutes(a.route, b.route));

  const functionOf = (name: string, triggerType: string): FunctionInfo => {
    const info = app.getFunction(name);
    if (!info || info.triggerType.toLowerCase() !== triggerType.toLowerCase()) {
      throw new Error(`No ${triggerType} function named '${name}'.`);
    }
    return info;
  };

  const deliverEventHubBatch = async (
    name: string,
    records: unknown[],
    deliveryOptions: EventHubDeliveryOptions = {},
  ): Promise<RetriedInvocation[]> => {
    const info = functionOf(name, 'eventHubTrigger');
    const many = isBatchTrigger(info.trigger);
    const base = {
      kind: 'eventHub' as const,
      partitionId: deliveryOptions.partitionId,
      enqueuedTime: new Date(),
    };
    const first = deliveryOptions.firstSequenceNumber ?? 0;
    const inputs: EventHubTriggerInput[] = many
      ? [{ ...base, records, firstSequenceNumber: first, properties: deliveryOptions.properties }]
      : records.map((r, i) => ({
          ...base,
          records: [r],
          firstSequenceNumber: first + i,
          properties: deliveryOptions.properties ? [deliveryOptions.properties[i] ?? {}] : undefined,
        }));
    const results: RetriedInvocation[] = [];
    // The host never invokes a trigger with an empty batch.
    if (records.length === 0) return results;
    for (const input of inputs) results.push(recordAll(await app.invokeWithRetries(info.name, input, retry)));
    return results;
  };

  const runTimer = async (name: string, timerOptions: TimerRunOptions = {}): Promise<RetriedInvocation> => {
    const info = functionOf(name, 'timerTrigger');
    const now = new Date();
    const monitored = info.trigger.useMonitor !== false;
    const input: TriggerInput = {
      kind: 'timer',
      isPastDue: timerOptions.isPastDue ?? false,
      ...(monitored
        ? {
            last: lastTimerRun.get(info.name) ?? now,
            next: info.schedule ? nextOccurrence(info.schedule, now) : undefined,
            lastUpdated: now,
          }
        : {}),
    };
    lastTimerRun.set(info.name, now);
    return recordAll(await app.invokeWithRetries(info.name, input, retry));
  };

  const keyOk = (req: IncomingMessage, url: URL, key: string | undefined): boolean => {
    if (!key) return true;
    const given = url.searchParams.get('code') ?? headerOf(req, 'x-functions-key');
    if (!given) return false;
    const a = Buffer.from(given);
    const b = Buffer.from(key);
    return a.length === b.length && timingSafeEqual(a, b);
  };

  const serveHttpTrigger = async (
    req: IncomingMessage,
    url: URL,
    path: string,
    body: Buffer,
  ): Promise<Reply> => {
    const method = (req.method ?? 'GET').toUpperCase();
    for (const { info, route } of httpRoutes) {
      const params = route.match(path);
      if (!params || !info.methods!.includes(method)) continue;
      if (info.authLevel !== 'anonymous' && !keyOk(req, url, options.functionKey)) return { status: 401 };
      const result = record(
        await app.invoke(info.name, {
          kind: 'http',
          method,
          url: `http://${headerOf(req, 'host') ?? url.host}${req.url ?? '/'}`,
          headers: req.headers,
          body,
          params,
        }),
      );
      if (!result.ok || !result.http) return { status: 500 };
      const headers: Record<string, string | string[]> = { ...result.http.headers };
      if (result.http.cookies.length > 0) headers['set-cookie'] = result.http.cookies;
      return { status: result.http.status, headers, body: result.http.body };
    }
    return { status: 404 };
  };

  const serveEventGrid = async (req: IncomingMessage, url: URL, body: Buffer): Promise<Reply> => {
    const name = url.searchParams.get('functionName') ?? '';
    const info = app.getFunction(name);
    if (!info || info.triggerType.toLowerCase() !== 'eventgridtrigger') {
      return { status: 404, body: `cannot find function: '${name}'` };
    }
    if (!keyOk(req, url, options.systemKey)) return { status: 401 };
    if (req.method === 'OPTIONS') {
      const origin = headerOf(req, 'webhook-request-origin');
      const allowed = origin && EVENT_GRID_ORIGINS.includes(origin) ? origin : 'eventgrid.azure.net';
      return { status: 200, headers: { 'webhook-allowed-origin': allowed } };
    }
    if (req.method !== 'POST') return { status: 405 };
    const eventType = (headerOf(req, 'aeg-event-type') ?? '').toLowerCase();
    if (eventType === 'subscriptionvalidation') {
      const code = validationCodeOf(body);
      if (code === undefined) return { status: 500, body: 'no validationCode in the validation event' };
      log(`perform handshake with eventGrid for function: ${info.name}`);
      return {
        status: 200,
        headers: { 'content-type': 'text/plain; charset=utf-8' },
        body: JSON.stringify({ validationResponse: code }),
      };
    }
    if (eventType === 'unsubscribe') return { status: 202 };
    if (eventType !== 'notification') return { status: 400 };
    let parsed: unknown;
    try {
      parsed = JSON.parse(body.toString('utf8'));
    } catch (error) {
      return { status: 500, body: messageOf(error) };
    }
    if (typeof parsed !== 'object' || parsed === null) {
      return { status: 500, body: 'The request content should be parseable into a JSON object or array.' };
    }
    const events: unknown[] = Array.isArray(parsed) ? parsed : [parsed];
    const results = await Promise.all(
      events.map(async (event) => record(await app.invoke(info.name, { kind: 'eventGrid', event }))),
    );
    const failed = results.find((r) => !r.ok);
    if (failed) return { status: 500, body: failed.errorMessage ?? 'function failed' };
    return { status: 202 };
  };

  const serveAdminInvoke = (req: IncomingMessage, url: URL, name: string, body: Buffer): Reply => {
    if (req.method !== 'POST') return { status: 405 };
    if (!keyOk(req, url, options.functionKey)) return { status: 401 };
    const info = app.getFunction(name);
    if (!info) return { status: 404 };
    let input: string;
    try {
      const parsed = JSON.parse(body.length > 0 ? body.toString('utf8') : '{}') as { input?: unknown };
      input =
        typeof parsed.input === 'string'
          ? parsed.input
          : parsed.input === undefined
            ? ''
            : JSON.stringify(parsed.input);
    } catch {
      return { status: 400, body: 'the body must be JSON: {"input": "<string>"}' };
    }
    let work: () => Promise<unknown>;
    switch (info.triggerType.toLowerCase()) {
      case 'httptrigger':
        return { status: 400, body: `'${info.name}' is an HTTP function: call /${prefix}/${info.route}` };
      case 'timertrigger':
        work = () => runTimer(info.name);
        break;
      case 'eventhubtrigger':
        work = () => deliverEventHubBatch(info.name, [input]);
        break;
      case 'eventgridtrigger': {
        let event: unknown;
        try {
          event = JSON.parse(input);
        } catch {
          return { status: 400, body: 'the input must be an Event Grid event as JSON' };
        }
        work = async () => record(await app.invoke(info.name, { kind: 'eventGrid', event }));
        break;
      }
      default:
        work = async () =>
          recordAll(
            await app.invokeWithRetries(info.name, {
              kind: 'rpc',
              inputData: [{ name: info.triggerName, data: { string: input } }],
            }),
          );
    }
    void track(work()).catch((error: unknown) =>
      log(`admin invocation of ${info.name} failed: ${messageOf(error)}`),
    );
    return { status: 202 };
  };

  const handle = async (req: IncomingMessage, body: Buffer): Promise<Reply> => {
    const url = new URL(req.url ?? '/', 'http://127.0.0.1');
    const path = url.pathname;
    const lower = path.toLowerCase();
    if (lower === EVENT_GRID_PATH || lower === `${EVENT_GRID_PATH}/`) return serveEventGrid(req, url, body);
    const admin = /^\/admin\/functions\/([^/]+)\/?$/i.exec(path);
    if (admin) return serveAdminInvoke(req, url, decodeURIComponent(admin[1]!), body);
    if (lower === '/admin/host/status') {
      return {
        status: 200,
        headers: { 'content-type': 'application/json; charset=utf-8' },
        body: JSON.stringify({ state: 'Running', functions: app.functions.map((f) => f.name) }),
      };
    }
    const prefixPath = prefix === '' ? '/' : `/${prefix}/`;
    if (lower.startsWith(prefixPath.toLowerCase()) || (prefix !== '' && lower === `/${prefix}`)) {
      return serveHttpTrigger(req, url, path.slice(prefixPath.length), body);
    }
    return { status: 404 };
  };

  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('error', () => res.destroy());
    req.on('end', () => {
      handle(req, Buffer.concat(chunks))
        .catch((error: unknown): Reply => {
          log(`error serving ${req.method} ${req.url}: ${messageOf(error)}`);
          return { status: 500 };
        })
        .then((reply) => {
          const body = reply.body === undefined ? Buffer.alloc(0) : Buffer.from(reply.body);
          const headers: Record<string, string | string[]> = { ...(reply.headers ?? {}) };
          for (const key of Object.keys(headers))
            if (key.toLowerCase() === 'content-length') delete headers[key];
          headers['content-length'] = String(body.length);
          res.writeHead(reply.status, headers);
          res.end(req.method === 'HEAD' ? undefined : body);
        })
        .catch(() => res.destroy());
    });
  });
  await new Promise<void>((resolveListen, reject) => {
    server.once('error', reject);
    server.listen(options.port ?? 0, '127.0.0.1', () => resolveListen());
  });
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  log(
    `${app.functions.length} function(s) at ${url}: ${app.functions.map((f) => `${f.name} (${f.triggerType})`).join(', ')}`,
  );

  const idle = async (): Promise<void> => {
    while (inflight.size > 0) await Promise.allSettled([...inflight]);
  };

  return {
    url,
    app,
    functions: app.functions,
    functionKey: options.functionKey,
    invocations,
    eventGridUrl(name: string): string {
      const u = new URL(`${url}${EVENT_GRID_PATH}`);
      u.searchParams.set('functionName', name);
      if (options.systemKey) u.searchParams.set('code', options.systemKey);
      return u.toString();
    },
    deliverEventHubBatch,
    runTimer,
    idle,
    async stop() {
      await new Promise<void>((done) => {
        server.close(() => done());
        server.closeAllConnections();
      });
      await idle();
      await app.dispose();
    },
  };
}

function headerOf(req: IncomingMessage, name: string): string | undefined {
  const value = req.headers[name];
  return Array.isArray(value) ? value[0] : value;
}

/** The validation code of a SubscriptionValidation request (EventGrid array, or a CloudEvent object). */
function validationCodeOf(body: Buffer): string | undefined {
  try {
    const parsed = JSON.parse(body.toString('utf8')) as unknown;
    const event = (Array.isArray(parsed) ? parsed[0] : parsed) as { data?: unknown } | undefined;
    let data = event?.data;
    // The CloudEvent subscription event carries its data double-encoded.
    if (typeof data === 'string') data = JSON.parse(data) as unknown;
    const code = (data as { validationCode?: unknown } | undefined)?.validationCode;
    if (typeof code === 'string') return code;
    return code === undefined || code === null ? undefined : JSON.stringify(code);
  } catch {
    return undefined;
  }
}

function formatLog(record: HostLogRecord): string {
  const who = record.functionName ? `${record.functionName}: ` : '';
  return `${record.level} ${record.category} ${who}${record.message}`;
}
