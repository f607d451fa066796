/**
 * Sending one alert to the sinks: a sink that throws is a failed, retryable delivery (never an
 * exception for the caller), and one sink's failure never stops the others. Every place that
 * alerts (the pipeline, the forwarder, the sweep, the posture timer) goes through here.
 */
import type { Logger } from 'pino';
import { toSafeError } from './core/errors';
import type { AlertMessage, AlertSink, SinkResult } from './ports';

/** One sink's answer; a throw becomes `{ ok: false, retryable: true }` with a scrubbed detail. */
export async function sendToSink(sink: AlertSink, message: AlertMessage): Promise<SinkResult> {
  try {
    return await sink.send(message);
  } catch (error) {
    return { ok: false, retryable: true, detail: toSafeError(error).message };
  }
}

export interface Delivery {
  sink: string;
  result: SinkResult;
}

/** Sends to every given sink concurrently; failures are logged (without secrets) and returned. */
export async function sendToSinks(
  sinks: AlertSink[],
  message: AlertMessage,
  log: Logger,
): Promise<Delivery[]> {
  const deliveries = await Promise.all(
    sinks.map(async (sink) => ({ sink: sink.name, result: await sendToSink(sink, message) })),
  );
  for (const d of deliveries) {
    if (!d.result.ok)
      log.warn({ sink: d.sink, alert: message.id, detail: d.result.detail }, 'alert not delivered');
  }
  return deliveries;
}
