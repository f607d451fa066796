/**
 * auditLogForwarder (Event Hub trigger, one registration per regional hub: a diagnostic setting can
 * only stream to a hub in the vault's region). An Event Hub trigger checkpoints its batch even when
 * the function throws, so the retry policy below bounds the attempts, and the last attempt keeps
 * what it could not publish in the poison container (lib/entrypoints.ts forwardAuditRecords).
 */
import { app, type InvocationContext } from '@azure/functions';
import { eventHubConnectionName, eventHubsFromSettings } from '../lib/config';
import { forwardAuditRecords } from '../lib/entrypoints';
import { contextTarget } from '../lib/logging';
import { getRuntime } from '../lib/runtime';

/** Retries of one batch: 5 more attempts, 10 s growing to 5 min (about 10 minutes in all). */
export const FORWARDER_RETRY = {
  strategy: 'exponentialBackoff' as const,
  maxRetryCount: 5,
  minimumInterval: { seconds: 10 },
  maximumInterval: { minutes: 5 },
};

export async function auditLogForwarder(messages: unknown[], context: InvocationContext): Promise<void> {
  const rt = getRuntime();
  const log = rt.logger(contextTarget(context), {
    invocationId: context.invocationId,
    fn: context.functionName,
  });
  const retry = context.retryContext
    ? { retryCount: context.retryContext.retryCount, maxRetryCount: context.retryContext.maxRetryCount }
    : { retryCount: 0, maxRetryCount: FORWARDER_RETRY.maxRetryCount };
  await forwardAuditRecords(rt, Array.isArray(messages) ? messages : [messages], {
    invocationId: context.invocationId,
    log,
    retry,
  });
}

for (const hub of eventHubsFromSettings()) {
  app.eventHub(`auditLogForwarder-${hub.region}`, {
    connection: eventHubConnectionName(hub.region),
    eventHubName: hub.hub,
    cardinality: 'many',
    consumerGroup: 'kvguard',
    retry: FORWARDER_RETRY,
    handler: auditLogForwarder,
  });
}
