/**
 * The expected failures the ports describe (lib/ports.ts `CallFailure`), ready to inject into a fake,
 * and the per-call fault queue every fake shares.
 */
import type { CallFailure } from '../../lib/ports';

export const failures = {
  forbidden(
    missingPermission: string,
    detail = 'Forbidden: the caller is not authorized to perform this action',
  ): CallFailure {
    return { kind: 'forbidden', status: 403, detail, missingPermission };
  },
  throttled(retryAfterMs = 2000): CallFailure {
    return { kind: 'throttled', status: 429, retryAfterMs };
  },
  transient(
    status = 503,
    detail = 'ServiceUnavailable: the service is temporarily unavailable',
  ): CallFailure {
    return { kind: 'transient', status, detail };
  },
  failed(status = 400, detail = 'BadParameter: the request is not valid'): CallFailure {
    return { kind: 'failed', status, detail };
  },
};

/** One injected fault: the next `times` calls of `op` (matching `when`, if given) fail with `failure`. */
interface Fault<Op extends string, F> {
  op: Op;
  failure: F;
  times: number;
  when?: (args: readonly string[]) => boolean;
}

/** A queue of injected faults, consumed call by call. */
export class FaultPlan<Op extends string, F> {
  private readonly faults: Array<Fault<Op, F>> = [];

  add(op: Op, failure: F, times = 1, when?: (args: readonly string[]) => boolean): void {
    this.faults.push({ op, failure, times, when });
  }

  /** The failure for this call, if one is planned (and counts it down). */
  take(op: Op, args: readonly string[]): F | undefined {
    const fault = this.faults.find(
      (f) => f.op === op && f.times > 0 && (f.when === undefined || f.when(args)),
    );
    if (fault === undefined) return undefined;
    fault.times--;
    return fault.failure;
  }

  clear(): void {
    this.faults.length = 0;
  }
}
