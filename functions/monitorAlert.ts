/**
 * monitorAlert (HTTP, function key): Azure Monitor's common alert schema from the log-search rule on
 * AZKVAuditLogs. Only alerts whose target is the configured workspace are accepted.
 */
import { app, type HttpRequest, type HttpResponseInit, type InvocationContext } from '@azure/functions';
import { handleMonitorAlert } from '../lib/entrypoints';
import { contextTarget } from '../lib/logging';
import { getRuntime } from '../lib/runtime';

export async function monitorAlert(
  request: HttpRequest,
  context: InvocationContext,
): Promise<HttpResponseInit> {
  const rt = getRuntime();
  const log = rt.logger(contextTarget(context), { invocationId: context.invocationId, fn: 'monitorAlert' });
  const answer = await handleMonitorAlert(rt, await request.text(), {
    invocationId: context.invocationId,
    log,
  });
  return { status: answer.status, jsonBody: answer.body, headers: answer.headers };
}

app.http('monitorAlert', { methods: ['POST'], authLevel: 'function', handler: monitorAlert });
