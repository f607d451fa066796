/**
 * An `AlertSink` that records what it received. It can fail the next N sends retryably (a 429 or 5xx
 * from a webhook) or permanently (a 400: the webhook is misconfigured), or fail every send.
 */
import type { AlertMessage, AlertSink, SinkResult } from '../../lib/ports';

export class RecordingSink implements AlertSink {
  /** Messages delivered (the send answered ok), in order. */
  readonly received: AlertMessage[] = [];
  /** Every send, delivered or not. */
  readonly attempts: AlertMessage[] = [];
  /** Runs before every send: a test can hold a send here to interleave other work. */
  onSend?: (alert: AlertMessage) => Promise<void> | void;
  private readonly planned: Array<Extract<SinkResult, { ok: false }>> = [];
  private always: Extract<SinkResult, { ok: false }> | undefined;

  constructor(readonly name: string) {}

  /** The next `times` sends fail. */
  failNext(times = 1, options: { retryable?: boolean; detail?: string } = {}): this {
    for (let i = 0; i < times; i++) this.planned.push(failure(options));
    return this;
  }

  /** Every send fails from now on (until `recover`). */
  failAlways(options: { retryable?: boolean; detail?: string } = {}): this {
    this.always = failure(options);
    return this;
  }

  recover(): this {
    this.always = undefined;
    this.planned.length = 0;
    return this;
  }

  /** Ids of the delivered messages. */
  ids(): string[] {
    return this.received.map((m) => m.id);
  }

  ofKind(kind: AlertMessage['kind']): AlertMessage[] {
    return this.received.filter((m) => m.kind === kind);
  }

  async send(alert: AlertMessage): Promise<SinkResult> {
    this.attempts.push(alert);
    if (this.onSend) await this.onSend(alert);
    else await Promise.resolve();
    const planned = this.planned.shift() ?? this.always;
    if (planned) return planned;
    this.received.push(alert);
    return { ok: true };
  }
}

function failure(options: { retryable?: boolean; detail?: string }): Extract<SinkResult, { ok: false }> {
  const retryable = options.retryable ?? true;
  return {
    ok: false,
    retryable,
    detail: options.detail ?? (retryable ? '503 Service Unavailable' : '400 Bad Request'),
  };
}
