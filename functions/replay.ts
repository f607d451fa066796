/**
 * replay (HTTP POST /api/replay, function key): any accepted input, acted on like the original
 * signal; `?dryRun=true` plans without writing. 400 with a reason for bad input, never 500.
 */
import { app, type HttpRequest, type HttpResponseInit, type InvocationContext } from '@azure/functions';
import { handleReplay } from '../lib/entrypoints';
import { contextTarget } from '../lib/logging';
import { getRuntime } from '../lib/runtime';

export async function replay(request: HttpRequest, context: InvocationContext): Promise<HttpResponseInit> {
  const rt = getRuntime();
  const log = rt.logger(contextTarget(context), { invocationId: context.invocationId, fn: 'replay' });
  const dryRunParam = request.query.get('dryRun');
  if (dryRunParam !== null && !['true', 'false'].includes(dryRunParam)) {
    return { status: 400, jsonBody: { error: 'dryRun must be true or false' } };
  }
  const answer = await handleReplay(
    rt,
    {
      text: await request.text(),
      dryRun: dryRunParam === 'true',
      principalHeader: request.headers.get('x-ms-client-principal') ?? undefined,
    },
    { invocationId: context.invocationId, log },
  );
  return { status: answer.status, jsonBody: answer.body, headers: answer.headers };
}

app.http('replay', { methods: ['POST'], authLevel: 'function', route: 'replay', handler: replay });
