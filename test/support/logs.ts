/** kvguard's log lines, kept for the test to read (and scan for secrets), and invocations writing them. */
import type { Invocation } from '../../lib/entrypoints';
import { createLogger, type LogTarget } from '../../lib/logging';

export function captureLogs(prefix: string) {
  const lines: string[] = [];
  const push = (line: string) => void lines.push(line);
  const target: LogTarget = { trace: push, debug: push, info: push, warn: push, error: push };
  /** One invocation as the Functions host gives it: an id, a logger at debug, and its retry context. */
  const inv = (retry?: Invocation['retry']): Invocation => ({
    invocationId: `${prefix}-${Math.random().toString(16).slice(2)}`,
    log: createLogger('debug', target),
    ...(retry ? { retry } : {}),
  });
  return { lines, target, inv };
}
