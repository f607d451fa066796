/**
 * What each function does, independent of the Functions runtime: functions/*.ts only register the
 * trigger and map these results. Bad input is answered with a reason and never throws; only a
 * retryable failure is rethrown (so Event Grid or the Event Hub retry policy delivers again).
 */
import { createHash } from 'node:crypto';
import type { Logger } from 'pino';
import { sendToSinks } from './alerting';
import { toSafeError } from './core/errors';
import type { NormaliseResult, Rejection } from './core/model';
import { isRejection, normalise, toSignalCloudEvents } from './core/normalise';
import { own } from './core/untrusted';
import { RetryableError, type TriggerOutcome } from './pipeline';
import type { AlertMessage, SignalEvent } from './ports';
import type { Runtime } from './runtime';

export interface Invocation {
  invocationId: string;
  log: Logger;
  /** Event Hub retry policy state: the last attempt must not throw (the batch would be dropped). */
  retry?: { retryCount: number; maxRetryCount: number };
}

export interface ItemResult {
  rejection?: Pick<Rejection, 'reason' | 'message' | 'path'>;
  outcomes?: TriggerOutcome[];
  error?: string;
}

function rejectionOf(r: Rejection): ItemResult {
  return { rejection: { reason: r.reason, message: r.message, path: r.path } };
}

async function runAll(
  rt: Runtime,
  results: NormaliseResult[],
  inv: Invocation,
  dryRun: boolean,
): Promise<ItemResult[]> {
  const out: ItemResult[] = [];
  for (const r of results) {
    if (isRejection(r)) {
      inv.log.info(
        { reason: r.reason, path: r.path, eventType: r.eventType, operation: r.operationName },
        `input ignored: ${r.message}`,
      );
      out.push(rejectionOf(r));
      continue;
    }
    out.push({
      outcomes: await rt.pipeline.run(r, { log: inv.log, invocationId: inv.invocationId, dryRun }),
    });
  }
  return out;
}

/**
 * keyDeletionResponder: one Event Grid delivery (EventGrid or CloudEvents schema). Types kvguard
 * does not handle are acknowledged and ignored with the reason logged; a RetryableError propagates.
 */
export async function respondToEvent(rt: Runtime, event: unknown, inv: Invocation): Promise<ItemResult[]> {
  return runAll(rt, normalise(event, 'eventGrid'), inv, false);
}

export interface HttpAnswer {
  status: number;
  body: unknown;
  headers?: Record<string, string>;
}

/** Largest body replay and monitorAlert read (the common alert schema caps payloads at 256 KB). */
export const MAX_BODY_BYTES = 1024 * 1024;

function parseBody(text: string): { ok: true; value: unknown } | { ok: false; answer: HttpAnswer } {
  if (Buffer.byteLength(text) > MAX_BODY_BYTES) {
    return {
      ok: false,
      answer: { status: 400, body: { error: `the body is larger than ${MAX_BODY_BYTES} bytes` } },
    };
  }
  if (text.trim() === '')
    return { ok: false, answer: { status: 400, body: { error: 'the body is empty: send JSON' } } };
  try {
    return { ok: true, value: JSON.parse(text) as unknown };
  } catch (error) {
    return {
      ok: false,
      answer: { status: 400, body: { error: `the body is not JSON: ${(error as Error).message}` } },
    };
  }
}

/** monitorAlert: Azure Monitor's common alert schema, from the configured workspace only. */
export async function handleMonitorAlert(rt: Runtime, text: string, inv: Invocation): Promise<HttpAnswer> {
  const parsed = parseBody(text);
  if (!parsed.ok) return parsed.answer;
  const results = normalise(parsed.value, 'monitorAlert');
  const workspace = rt.config.workspace.resourceId?.toLowerCase();
  const accepted: NormaliseResult[] = [];
  for (const r of results) {
    if (!isRejection(r) && r.alert) {
      const target = r.alert.workspaceResourceId?.toLowerCase();
      if (!workspace || target !== workspace) {
        inv.log.warn(
          { alert: r.alert.alertId },
          'alert rejected: its target is not the configured workspace',
        );
        return {
          status: 403,
          body: { error: 'the alert does not target the configured Log Analytics workspace' },
        };
      }
    }
    accepted.push(r);
  }
  if (accepted.length > 0 && accepted.every(isRejection)) {
    return {
      status: 400,
      body: { error: 'the alert could not be used', items: accepted.map((r) => rejectionOf(r)) },
    };
  }
  try {
    return { status: 200, body: { items: await runAll(rt, accepted, inv, false) } };
  } catch (error) {
    if (error instanceof RetryableError)
      return { status: 503, body: { error: error.message }, headers: { 'Retry-After': '10' } };
    throw error;
  }
}

/** The principal the platform's authentication put in `x-ms-client-principal` (base64 JSON). */
function clientPrincipal(header: string | undefined): { name?: string; roles: string[] } | undefined {
  if (!header) return undefined;
  try {
    const p = JSON.parse(Buffer.from(header, 'base64').toString('utf8')) as {
      claims?: Array<{ typ?: string; val?: string }>;
      role_typ?: string;
      name_typ?: string;
    };
    const claims = Array.isArray(p.claims) ? p.claims : [];
    const roleType = p.role_typ ?? 'http://schemas.microsoft.com/ws/2008/06/identity/claims/role';
    const nameType = p.name_typ ?? 'name';
    return {
      name: claims.find((c) => c.typ === nameType || c.typ === 'preferred_username')?.val,
      roles: claims.filter((c) => c.typ === roleType || c.typ === 'roles').map((c) => String(c.val)),
    };
  } catch {
    return undefined;
  }
}

/**
 * replay: one input or an array of inputs in any accepted shape, acted on like the original signal;
 * `dryRun` plans without writing. The answer lists, per input, the outcomes or the rejection.
 */
export async function handleReplay(
  rt: Runtime,
  request: { text: string; dryRun: boolean; principalHeader?: string },
  inv: Invocation,
): Promise<HttpAnswer> {
  let who = 'anonymous (function key)';
  if (rt.config.replay.role) {
    // Only trusted when the platform's authentication runs in front of the app (infra sets it up).
    const principal = clientPrincipal(request.principalHeader);
    if (!principal)
      return { status: 401, body: { error: 'sign in: replay requires an authenticated caller' } };
    if (!principal.roles.includes(rt.config.replay.role)) {
      return { status: 403, body: { error: `replay requires the app role ${rt.config.replay.role}` } };
    }
    who = principal.name ?? 'an authenticated caller';
  }
  const parsed = parseBody(request.text);
  if (!parsed.ok) return parsed.answer;
  const inputs = Array.isArray(parsed.value) ? parsed.value : [parsed.value];
  if (inputs.length === 0)
    return { status: 400, body: { error: 'the body is an empty array: send at least one input' } };
  if (inputs.length > rt.config.replay.maxInputs) {
    return {
      status: 400,
      body: {
        error: `${inputs.length} inputs: replay takes at most ${rt.config.replay.maxInputs} per request`,
      },
    };
  }
  inv.log.info({ who, inputs: inputs.length, dryRun: request.dryRun }, 'replay requested');
  const answers = [];
  for (let i = 0; i < inputs.length; i++) {
    const results = normalise(inputs[i], 'replay');
    try {
      answers.push({ index: i, items: await runAll(rt, results, inv, request.dryRun) });
    } catch (error) {
      const safe = toSafeError(error);
      inv.log.warn({ index: i, err: safe.message }, 'replay input failed');
      answers.push({
        index: i,
        error: error instanceof RetryableError ? `retryable: ${safe.message}` : safe.message,
      });
    }
  }
  return { status: 200, body: { dryRun: request.dryRun, replayedBy: who, inputs: answers } };
}

export interface ForwardResult {
  published: number;
  ignored: number;
  rejected: Array<Pick<Rejection, 'reason' | 'message' | 'path'>>;
  poisoned: number;
}

/**
 * auditLogForwarder: Event Hub messages (each a diagnostic `{records: [...]}` batch) → kvguard
 * signal CloudEvents on the signals topic. One bad record is counted and never fails the batch.
 * A publish failure throws for the retry policy, except on the last attempt: then the unpublished
 * records go to the poison container and an operational alert is raised — nothing is lost silently.
 */
export async function forwardAuditRecords(
  rt: Runtime,
  messages: unknown[],
  inv: Invocation,
): Promise<ForwardResult> {
  const events: SignalEvent[] = [];
  /** The record each event came from: what the poison file keeps, so that replay can read it. */
  const sources: unknown[] = [];
  const rejected: ForwardResult['rejected'] = [];
  let ignored = 0;
  messages.forEach((message, m) => {
    const body =
      typeof message === 'string' || Buffer.isBuffer(message) ? safeJson(message.toString()) : message;
    // toSignalCloudEvents answers one item per record, in order: item i is records[i].
    const wrapped = own(body, 'records');
    const records: unknown[] = Array.isArray(wrapped) ? wrapped : Array.isArray(body) ? body : [body];
    toSignalCloudEvents(body).forEach((item, i) => {
      if ('kind' in item && item.kind === 'rejection') {
        // Most records of a vault's log are reads, and every client's first call is answered 401 (the
        // challenge): records that are not deletions are expected, not errors.
        if (
          item.reason === 'not-a-deletion' ||
          item.reason === 'left-to-arm-events' ||
          item.reason === 'refused-request'
        )
          ignored++;
        else rejected.push({ reason: item.reason, message: item.message, path: `[${m}]${item.path}` });
        return;
      }
      const ev = item as Exclude<typeof item, Rejection>;
      events.push({
        id: ev.id,
        type: ev.type,
        source: ev.source,
        subject: ev.subject,
        time: ev.time,
        data: ev.data,
      });
      sources.push(records[i]);
    });
  });
  for (const r of rejected)
    inv.log.warn({ reason: r.reason, path: r.path }, `audit record rejected: ${r.message}`);
  if (events.length === 0) return { published: 0, ignored, rejected, poisoned: 0 };
  try {
    await rt.publisher.publish(events);
    inv.log.info({ published: events.length, ignored, rejected: rejected.length }, 'audit records forwarded');
    return { published: events.length, ignored, rejected, poisoned: 0 };
  } catch (error) {
    const safe = toSafeError(error);
    const last = !inv.retry || inv.retry.retryCount >= inv.retry.maxRetryCount;
    if (!last) {
      inv.log.warn(
        { attempt: inv.retry?.retryCount, err: safe.message },
        'publish failed; the retry policy runs the batch again',
      );
      throw new RetryableError(`publishing ${events.length} signals failed: ${safe.message}`);
    }
    const batchId = createHash('sha256')
      .update(events.map((e) => e.id).join(','))
      .digest('hex')
      .slice(0, 24);
    const now = rt.clock.now();
    const day = now.toISOString().slice(0, 10);
    // Each file is a body POST /api/replay accepts as it is (`{records: [...]}`; the other fields are
    // ignored): within its body limit and its inputs per request, so a large batch (a mass deletion is
    // when an outage hurts most) is kept in several files, each replayable on its own. `events` alone
    // is not an input shape replay reads, so the records themselves are kept.
    const parts = splitForReplay(sources, events, {
      maxInputs: rt.config.replay.maxInputs,
      maxBytes: MAX_BODY_BYTES - POISON_ENVELOPE_BYTES,
    });
    const names = parts.map((_, i) =>
      parts.length === 1
        ? `forwarder/${day}/${batchId}.json`
        : `forwarder/${day}/${batchId}-${i + 1}of${parts.length}.json`,
    );
    for (const [i, part] of parts.entries()) {
      await rt.poison.write(names[i]!, {
        reason: safe.message,
        failedAt: now.toISOString(),
        ...(parts.length > 1 ? { part: `${i + 1}/${parts.length}` } : {}),
        records: part.records,
        events: part.events,
      });
    }
    const listed =
      names.length <= 5
        ? names
        : [
            ...names.slice(0, 3),
            `… and ${names.length - 3} more: forwarder/${day}/${batchId}-*of${names.length}.json`,
          ];
    await raiseOperationalAlert(rt, inv, {
      id: `ops_forwarder_${batchId}/primary`,
      title: `kvguard could not publish ${events.length} key-deletion signal(s); they were kept in the poison container`,
      text: [
        `The audit-log forwarder could not publish to the signals topic after its last retry: ${safe.message}`,
        names.length === 1
          ? `The records are in the poison container as ${names[0]}.`
          : `The records are in the poison container in ${names.length} files: ${listed.join(', ')}.`,
        names.length === 1
          ? 'To do: fix the topic or the identity, then replay the file with POST /api/replay.'
          : 'To do: fix the topic or the identity, then replay each file with POST /api/replay.',
      ],
      data: { poisonBlobs: names, events: events.length },
    });
    return { published: 0, ignored, rejected, poisoned: events.length };
  }
}

/** Room left in a poison file's body for what surrounds the records and events (reason, dates). */
const POISON_ENVELOPE_BYTES = 8 * 1024;

/**
 * Splits the records that could not be published (and the events made of them, in the same order)
 * into parts that replay accepts one request each: at most `maxInputs` records, and records plus
 * events within `maxBytes` of JSON. A record too large for any part alone still gets a part of its
 * own: it is kept, though replay will refuse it as a body.
 */
export function splitForReplay<R, E>(
  records: R[],
  events: E[],
  limits: { maxInputs: number; maxBytes: number },
): Array<{ records: R[]; events: E[] }> {
  const parts: Array<{ records: R[]; events: E[] }> = [];
  let current: { records: R[]; events: E[] } = { records: [], events: [] };
  let bytes = 0;
  records.forEach((record, i) => {
    const size =
      Buffer.byteLength(JSON.stringify(record) ?? '') +
      Buffer.byteLength(JSON.stringify(events[i]) ?? '') +
      2;
    if (
      current.records.length > 0 &&
      (current.records.length >= limits.maxInputs || bytes + size > limits.maxBytes)
    ) {
      parts.push(current);
      current = { records: [], events: [] };
      bytes = 0;
    }
    current.records.push(record);
    if (i < events.length) current.events.push(events[i]!);
    bytes += size;
  });
  if (current.records.length > 0 || parts.length === 0) parts.push(current);
  return parts;
}

function safeJson(text: string): unknown {
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return text;
  }
}

/** An operational alert (kvguard itself needs a human), sent to every sink. */
export async function raiseOperationalAlert(
  rt: Runtime,
  inv: Invocation,
  alert: { id: string; title: string; text: string[]; data: Record<string, unknown> },
): Promise<void> {
  const message: AlertMessage = {
    id: alert.id,
    incidentId: alert.id.replace(/\/primary$/, ''),
    kind: 'operational',
    severity: 'critical',
    title: alert.title,
    time: rt.clock.now(),
    data: { ...alert.data, title: alert.title, text: alert.text },
    text: [alert.title, ...alert.text],
  };
  await sendToSinks(rt.sinks, message, inv.log);
}
