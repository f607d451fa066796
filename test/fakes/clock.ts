/**
 * Virtual time for unit tests. `now()` reads it; `sleep(ms)` books a wake-up at `now + ms` and never
 * waits in real time: when every other piece of work is idle (all pending promise jobs have run, so
 * a `setImmediate` callback gets its turn), the clock jumps to the earliest wake-up and resolves it.
 * Concurrent sleepers therefore overlap as they would in real time (two 100 ms sleeps started
 * together both end 100 ms later, not 200 ms), and a test never waits on a real timer.
 */
import type { Clock } from '../../lib/ports';

interface Wakeup {
  at: number;
  seq: number;
  resolve: () => void;
}

export class FakeClock implements Clock {
  private nowMs: number;
  private readonly wakeups: Wakeup[] = [];
  private seq = 0;
  private flushScheduled = false;
  /** Every `sleep` asked for, in order (e.g. to check a poll schedule). */
  readonly sleeps: number[] = [];

  constructor(start: Date | string = '2026-03-14T09:27:00.000Z') {
    this.nowMs = new Date(start).getTime();
    if (!Number.isFinite(this.nowMs)) throw new Error(`FakeClock: not a time: ${String(start)}`);
  }

  now(): Date {
    return new Date(this.nowMs);
  }

  sleep(ms: number): Promise<void> {
    this.sleeps.push(ms);
    return new Promise<void>((resolve) => {
      this.wakeups.push({ at: this.nowMs + Math.max(0, ms), seq: this.seq++, resolve });
      this.scheduleFlush();
    });
  }

  /** Moves time forward by hand (e.g. the minutes between a delivery and its redelivery). */
  advance(ms: number): void {
    this.nowMs += ms;
  }

  /** Sets the time; it never goes backwards. */
  set(time: Date | string): void {
    this.nowMs = Math.max(this.nowMs, new Date(time).getTime());
  }

  /** Sleepers not woken yet. */
  get pendingSleeps(): number {
    return this.wakeups.length;
  }

  private scheduleFlush(): void {
    if (this.flushScheduled) return;
    this.flushScheduled = true;
    setImmediate(() => this.wakeEarliest());
  }

  private wakeEarliest(): void {
    this.flushScheduled = false;
    if (this.wakeups.length === 0) return;
    this.wakeups.sort((a, b) => a.at - b.at || a.seq - b.seq);
    const next = this.wakeups.shift()!;
    this.nowMs = Math.max(this.nowMs, next.at);
    next.resolve();
    if (this.wakeups.length > 0) this.scheduleFlush();
  }
}
