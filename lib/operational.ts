/**
 * Operational alerts sent once a day per target (e.g. a vault kvguard's identity cannot read), however
 * many runs, signals and instances see the problem. Every path that reports such a problem (the sweep,
 * the pipeline) goes through `raiseOncePerDay` with the same target, so a user gets one alert per
 * problem per (UTC) day whichever path saw it first.
 *
 * The mark is a row of the ledger's table (partition `OPERATIONAL_PARTITION`, row
 * `<target>_<yyyymmdd>`): a conditional insert decides who sends; an undelivered alert (a sink failed)
 * is taken over (ETag-guarded) by the next caller, which sends the same alert (the first caller's,
 * kept in the mark) again to the sinks that did not take it. A claim still sending is left alone for
 * `SEND_LEASE_MS` (concurrent signals of one vault do not each send a copy); after that its sender is
 * taken for dead. The alert id is stable per target and day, so a receiver can drop a repeat.
 */
import type { Logger } from 'pino';
import { sendToSinks } from './alerting';
import { toSafeError } from './core/errors';
import type { AlertMessage, AlertSink, Clock, Ledger } from './ports';

/**
 * Where the marks live in the ledger's table. `sweep` because the sweep wrote them first: rows written
 * before the pipeline shared them stay where they are.
 */
export const OPERATIONAL_PARTITION = 'sweep';

/** How long an attempt that is still sending keeps others from taking its alert over. */
export const SEND_LEASE_MS = 5 * 60_000;

/** A mark in the ledger's table: that an operational alert was sent (or tried) for a target and day. */
export interface OperationalMark {
  kind: 'operational-alert';
  alertId: string;
  delivered: boolean;
  /** When the current (or last) attempt started. */
  at: string;
  /** An attempt started at `at` has not finished yet (absent on rows written before it existed). */
  sending?: boolean;
  /** The sinks that took it (absent on rows written before it existed: a resend goes to every sink). */
  deliveredTo?: string[];
  /**
   * The alert as its first sender composed it, so a resend by another path is the same alert (absent
   * on rows written before it existed, or when it is too large for the row: the resender composes its own).
   */
  message?: StoredMessage;
}

/** An operational alert as the mark keeps it (JSON: the time as ISO 8601). */
export type StoredMessage = Omit<OperationalMessage, 'time'> & { time: string };

/** A stored message larger than this (JSON characters) is not kept: the row's property holds 32 Ki. */
const MAX_STORED_MESSAGE_CHARS = 16 * 1024;

export interface OperationalDeps {
  marks: Ledger<OperationalMark>;
  sinks: AlertSink[];
  clock: Clock;
  log: Logger;
}

export interface OperationalIds {
  alertId: string;
  incidentId: string;
}

/** The alert a caller composes, once it is the one to send: everything but the ids, which are the mark's. */
export type OperationalMessage = Omit<AlertMessage, 'id' | 'incidentId'>;

/** What `raiseOncePerDay` did; informative only (it never throws). */
export type OperationalOutcome =
  'delivered' | 'undelivered' | 'already-delivered' | 'in-progress' | 'lost-race' | 'error';

/** The target of a vault's problems (the sweep's 403 and the pipeline's failed observe share it). */
export function vaultTarget(vaultName: string): string {
  return `vault-${vaultName}`;
}

/** The mark's row id: the target in table-safe characters, then the UTC day. */
export function operationalMarkId(target: string, now: Date): string {
  const day = now.toISOString().slice(0, 10).replace(/-/g, '');
  return `${target.toLowerCase().replace(/[^a-z0-9-]/g, '-')}_${day}`;
}

/** The alert id (also its incident id) of a mark: stable per target and day. */
export function operationalAlertId(markId: string): string {
  return `kvguard-operational/${markId}`;
}

/**
 * Sends the operational alert of `target` unless it was already sent today (or another caller is
 * sending it right now). `message` composes the alert this caller sends when it is the first; a resend
 * sends the first caller's alert again. Errors (the ledger, a sink) are logged, never thrown into the
 * caller.
 */
export async function raiseOncePerDay(
  deps: OperationalDeps,
  target: string,
  message: (ids: OperationalIds) => OperationalMessage,
): Promise<OperationalOutcome> {
  const now = deps.clock.now();
  const id = operationalMarkId(target, now);
  const alertId = operationalAlertId(id);
  try {
    const ids: OperationalIds = { alertId, incidentId: alertId };
    const composed = store(message(ids));
    const mark: OperationalMark = {
      kind: 'operational-alert',
      alertId,
      delivered: false,
      at: now.toISOString(),
      sending: true,
      deliveredTo: [],
      ...(JSON.stringify(composed).length <= MAX_STORED_MESSAGE_CHARS ? { message: composed } : {}),
    };
    const claim = await deps.marks.claim(OPERATIONAL_PARTITION, id, mark);
    let entry = claim.entry;
    if (!claim.claimed) {
      const held = entry.value;
      if (held.delivered) return 'already-delivered';
      if (held.sending === true && now.getTime() - new Date(held.at).getTime() < SEND_LEASE_MS) {
        return 'in-progress';
      }
      // Its delivery failed (or its sender died): take it over (ETag-guarded), and send it again.
      const taken = await deps.marks.update(entry, { ...held, at: now.toISOString(), sending: true });
      if (!taken.ok) return 'lost-race';
      entry = taken.entry;
    }
    const held = entry.value;
    const sent = held.message ?? composed;
    const already = held.deliveredTo ?? [];
    const pending = deps.sinks.filter((sink) => !already.includes(sink.name));
    const results = await sendToSinks(
      pending,
      { ...sent, time: new Date(sent.time), id: held.alertId, incidentId: held.alertId },
      deps.log,
    );
    const deliveredTo = [...already, ...results.filter((d) => d.result.ok).map((d) => d.sink)];
    const delivered = results.every((d) => d.result.ok);
    if (!delivered) deps.log.error({ alert: held.alertId }, 'operational alert not delivered to every sink');
    await deps.marks.update(entry, { ...held, delivered, sending: false, deliveredTo });
    return delivered ? 'delivered' : 'undelivered';
  } catch (error) {
    deps.log.error({ err: toSafeError(error).message, target }, 'operational alert failed');
    return 'error';
  }
}

function store(message: OperationalMessage): StoredMessage {
  return { ...message, time: message.time.toISOString() };
}
