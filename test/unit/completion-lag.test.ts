/** The recovery's learned confirm schedule (lib/adapters/keyvault.ts `CompletionLag`). */
import { CompletionLag } from '../../lib/adapters/keyvault';
import { FakeClock } from '../fakes';

function lag(clock = new FakeClock()) {
  return { clock, lag: new CompletionLag({ clock, initialMs: 20 }) };
}

describe('CompletionLag', () => {
  it('lets one recovery find out while nothing is known; the others wait for what it learns', async () => {
    const { lag: l } = lag();
    expect(l.firstRead()).toBe(20);
    expect(l.firstRead()).toBeUndefined();
    const waiting = l.learned();
    l.tooEarly(20);
    l.found(160);
    await expect(waiting).resolves.toBeUndefined();
    expect(l.firstRead()).toBe(90); // halfway between the miss and the find
  });

  it('narrows the first read down to the service’s completion time, then stays there', () => {
    const { lag: l } = lag();
    l.firstRead();
    l.tooEarly(20);
    l.found(200);
    const reads: number[] = [];
    // The service makes the key readable 130 ms after it accepted the recovery.
    for (let i = 0; i < 8; i++) {
      const at = l.firstRead()!;
      reads.push(at);
      if (at >= 130) l.found(at);
      else {
        l.tooEarly(at);
        l.found(at + 20);
      }
    }
    const last = reads.slice(-3);
    expect(new Set(last).size).toBe(1);
    expect(last[0]).toBeGreaterThanOrEqual(130);
    expect(last[0]).toBeLessThanOrEqual(160);
    // Once settled, no first read misses.
    expect(reads.slice(-4).every((r) => r >= 130)).toBe(true);
  });

  it('learns a slower service again from the read that finds the key', () => {
    const { lag: l } = lag();
    l.firstRead();
    l.tooEarly(90);
    l.found(100);
    expect(l.firstRead()).toBe(100);
    l.tooEarly(100);
    l.found(180);
    expect(l.firstRead()).toBeLessThanOrEqual(180);
    expect(l.firstRead()).toBeGreaterThan(100);
  });

  it('forgets what was too early after a while, so a faster service is noticed', () => {
    const { clock, lag: l } = lag();
    l.firstRead();
    l.tooEarly(120);
    l.found(130);
    expect(l.firstRead()).toBe(130);
    clock.advance(6 * 60_000);
    expect(l.firstRead()).toBe(65);
  });

  it('settles above the service’s jitter: after a few misses, first reads stop missing', () => {
    const { lag: l } = lag();
    // The key becomes readable 130 to 160 ms after the recovery was accepted, at random (seeded);
    // recoveries run 16 at a time, and their reads come back in any order.
    let seed = 7;
    const random = () => (seed = (seed * 48271) % 2147483647);
    let misses = 0;
    let lateMisses = 0;
    const reads: number[] = [];
    for (let batch = 0; batch < 20; batch++) {
      // While nothing is known, one recovery probes and the others wait for what it learns.
      const firsts = Array.from({ length: 16 }, () => l.firstRead());
      const order = firsts.map((at) => ({ at, key: random() }));
      order.sort((a, b) => (a.at === undefined ? 1 : 0) - (b.at === undefined ? 1 : 0) || a.key - b.key);
      for (const recovery of order) {
        const firstAt = recovery.at ?? l.firstRead()!;
        const readyAt = 130 + (random() % 31);
        if (batch >= 5) reads.push(firstAt);
        let at = firstAt;
        // Poll as the adapter does: 20 ms, doubling; every read that misses is reported.
        for (let delay = 20; at < readyAt; delay *= 2) {
          l.tooEarly(at);
          misses++;
          if (batch >= 5) lateMisses++;
          at += delay;
        }
        l.found(at);
      }
    }
    expect(misses).toBeLessThan(20);
    expect(lateMisses).toBe(0);
    // …and the first read stays close to the slowest completion (160 ms), not far past it.
    expect(Math.max(...reads)).toBeLessThanOrEqual(200);
  });
});
