/**
 * sweepDeletedKeys (timer; default every 30 s, `KVGUARD_SWEEP_SCHEDULE`): lists the deleted keys of
 * every vault in the inventory and the deleted vaults of every subscription, and feeds each deletion
 * the ledger does not hold through the pipeline (lib/sweep.ts). The fastest signal: no log needed.
 * Never throws for one vault's failure; the run report is logged.
 */
import { app, type InvocationContext, type Timer } from '@azure/functions';
import { sweepScheduleFromSettings } from '../lib/config';
import { contextTarget } from '../lib/logging';
import { getRuntime } from '../lib/runtime';
import { sweepDeletedKeys as sweep } from '../lib/sweep';

export async function sweepDeletedKeys(timer: Timer, context: InvocationContext): Promise<void> {
  const rt = getRuntime();
  const log = rt.logger(contextTarget(context), {
    invocationId: context.invocationId,
    fn: 'sweepDeletedKeys',
  });
  if (timer.isPastDue) log.warn('sweep is running late (a schedule occurrence was missed)');
  await sweep(rt, { invocationId: context.invocationId, log });
}

app.timer('sweepDeletedKeys', {
  schedule: sweepScheduleFromSettings(),
  runOnStartup: false,
  handler: sweepDeletedKeys,
});
