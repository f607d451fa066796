/**
 * keyDeletionResponder (Event Grid trigger, EventGrid and CloudEvents schema): kvguard signals from
 * the forwarder, ARM vault events from the subscription topic, Key Vault access-policy events.
 * Throws only for a retryable failure, so Event Grid redelivers; everything else is acknowledged.
 */
import { app, type EventGridEvent, type InvocationContext } from '@azure/functions';
import { respondToEvent } from '../lib/entrypoints';
import { contextTarget } from '../lib/logging';
import { getRuntime } from '../lib/runtime';

export async function keyDeletionResponder(event: EventGridEvent, context: InvocationContext): Promise<void> {
  const rt = getRuntime();
  const log = rt.logger(contextTarget(context), {
    invocationId: context.invocationId,
    fn: 'keyDeletionResponder',
  });
  await respondToEvent(rt, event, { invocationId: context.invocationId, log });
}

app.eventGrid('keyDeletionResponder', { handler: keyDeletionResponder });
