/**
 * reconcilePosture (timer; default hourly, `KVGUARD_POSTURE_SCHEDULE`): compares the desired posture
 * (`KVGUARD_POSTURE` / `KVGUARD_POSTURE_FILE`, design §3) with Azure and, in `enforce` mode, applies
 * the difference (lib/posture/). On demand: the Functions admin endpoint
 * `POST /admin/functions/reconcilePosture` (master key), which runs it with the configured mode; there
 * is deliberately no function-key HTTP route that could switch a run to `enforce`.
 */
import { app, type InvocationContext, type Timer } from '@azure/functions';
import { postureScheduleFromSettings } from '../lib/config';
import { contextTarget } from '../lib/logging';
import { runPostureReconciliation } from '../lib/posture/run';
import { getRuntime } from '../lib/runtime';

export async function reconcilePosture(timer: Timer, context: InvocationContext): Promise<void> {
  const rt = getRuntime();
  const log = rt.logger(contextTarget(context), {
    invocationId: context.invocationId,
    fn: 'reconcilePosture',
  });
  if (timer.isPastDue) log.warn('posture reconciliation is running late (a schedule occurrence was missed)');
  await runPostureReconciliation(rt, { invocationId: context.invocationId, log });
}

app.timer('reconcilePosture', {
  schedule: postureScheduleFromSettings(),
  runOnStartup: false,
  handler: reconcilePosture,
});
