/**
 * One reconcilePosture run, independent of the Functions runtime (functions/reconcilePosture.ts only
 * registers the timer): the desired state is read and validated (an invalid document raises one
 * operational alert listing every problem, and nothing is requested from Azure), then reconciled
 * for every subscription in scope: the inventory's (KVGUARD_SUBSCRIPTIONS, else the subscriptions
 * the identity can see, as the inventory's last refresh discovered them).
 */
import { createHash, randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { raiseOperationalAlert, type Invocation } from '../entrypoints';
import type { Runtime } from '../runtime';
import { parseDesiredState } from './desired';
import { reconcilePosture, type PostureReport } from './reconcile';

export type PostureRunResult = { ok: true; report: PostureReport } | { ok: false; problems: string[] };

export async function runPostureReconciliation(
  rt: Runtime,
  inv: Invocation,
  readFile: (path: string) => string = (path) => readFileSync(path, 'utf8'),
): Promise<PostureRunResult> {
  const subscriptions = await rt.inventory.subscriptions();
  const parsed = parseDesiredState(rt.config.posture, subscriptions, readFile);
  if (!parsed.ok) {
    inv.log.error({ problems: parsed.problems }, 'the desired posture is invalid: nothing reconciled');
    const digest = createHash('sha256').update(parsed.problems.join('\n')).digest('hex').slice(0, 16);
    const day = rt.clock.now().toISOString().slice(0, 10);
    await raiseOperationalAlert(rt, inv, {
      id: `ops_posture_${day}_${digest}/primary`,
      title: 'kvguard cannot reconcile the posture: the desired state is invalid',
      text: [
        ...parsed.problems.map((p) => `- ${p}`),
        'To do: fix KVGUARD_POSTURE (or the file KVGUARD_POSTURE_FILE names); the next run reads it again.',
      ],
      data: { problems: parsed.problems },
    });
    return { ok: false, problems: parsed.problems };
  }
  const report = await reconcilePosture(
    {
      arm: rt.postureArm,
      vaults: rt.vaults,
      ledger: rt.postureLedger,
      sinks: rt.sinks,
      clock: rt.clock,
      log: inv.log,
      concurrency: rt.config.posture.concurrency,
      excludedVaults: rt.config.excludedVaults,
    },
    parsed.desired,
    subscriptions,
    `${rt.clock.now().toISOString().replace(/[-:.]/g, '').slice(0, 15)}_${randomUUID().slice(0, 8)}`,
  );
  return { ok: true, report };
}
