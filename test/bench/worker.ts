/**
 * The benchmark's kvguard instance for the flood, in a process of its own as a Functions worker would
 * be: it builds the runtime from the settings it is given and answers the deliveries run.ts sends it
 * over IPC (`respondToEvent`, delivered again after a failure as Event Grid would, at most 6 times).
 * Its figures — CPU, peak RSS (`maxRSS` of the process) — are kvguard's alone, without the driver.
 */
import { loadConfig } from '../../lib/config';
import { respondToEvent } from '../../lib/entrypoints';
import type { LogTarget } from '../../lib/logging';
import { createRuntime } from '../../lib/runtime';
import { keepProxyConnectionsAlive } from './keepalive';

export type WorkerRequest =
  | { type: 'refresh' }
  | { type: 'deliver'; id: number; event: unknown }
  | { type: 'stats' }
  | { type: 'exit' };

export type WorkerReply =
  | { type: 'ready' }
  | { type: 'refreshed' }
  | { type: 'delivered'; id: number; attempts: number; error?: string }
  | { type: 'stats'; maxRssMb: number };

const noop = () => undefined;
const quiet: LogTarget = { trace: noop, debug: noop, info: noop, warn: noop, error: noop };

function main(): void {
  keepProxyConnectionsAlive();
  const settings = JSON.parse(process.argv[2] ?? '{}') as Record<string, string>;
  const rt = createRuntime(loadConfig(settings), { processLog: quiet });
  let invocations = 0;
  const reply = (m: WorkerReply) => process.send!(m);
  process.on('message', (m: WorkerRequest) => {
    switch (m.type) {
      case 'refresh':
        void rt.inventory.refresh().then(() => reply({ type: 'refreshed' }));
        return;
      case 'deliver':
        void (async () => {
          let error: string | undefined;
          for (let attempt = 1; attempt <= 6; attempt++) {
            const invocationId = `flood-${++invocations}`;
            try {
              await respondToEvent(rt, m.event, {
                invocationId,
                log: rt.logger(quiet, { invocationId, fn: 'keyDeletionResponder' }),
              });
              reply({ type: 'delivered', id: m.id, attempts: attempt });
              return;
            } catch (e) {
              error = e instanceof Error ? e.message : String(e);
            }
          }
          reply({ type: 'delivered', id: m.id, attempts: 6, error });
        })();
        return;
      case 'stats':
        reply({ type: 'stats', maxRssMb: process.resourceUsage().maxRSS / 1024 });
        return;
      case 'exit':
        process.exit(0);
    }
  });
  reply({ type: 'ready' });
}

main();
