/**
 * Fault and latency injection by host, path and method: fixed latency, 429 with Retry-After and
 * retry-after-ms, 5xx, connection resets; each for a count of requests or at a rate. A seeded
 * generator keeps a rate-based run reproducible.
 */
import type { FaultRule } from './types';

export type FaultSpec = Omit<FaultRule, 'id' | 'fired'>;

/** mulberry32: a small, seedable PRNG; enough for reproducible fault rates. */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export class FaultInjector {
  private rules: FaultRule[] = [];
  private nextId = 1;
  private random: () => number;

  constructor(seed = 1) {
    this.random = seededRandom(seed);
  }

  add(spec: FaultSpec): FaultRule {
    const kinds = ['latency', 'throttle', 'error', 'reset'];
    if (!kinds.includes(spec.kind)) throw new Error(`fault kind must be one of ${kinds.join(', ')}`);
    if (spec.rate !== undefined && (spec.rate < 0 || spec.rate > 1))
      throw new Error('fault rate must be in 0..1');
    if (spec.kind === 'error' && (spec.status === undefined || spec.status < 500 || spec.status > 599)) {
      throw new Error('an error fault needs a 5xx status');
    }
    if (spec.path !== undefined) new RegExp(spec.path); // throws on a bad pattern, before it is stored
    const rule: FaultRule = { ...spec, id: `f${this.nextId++}`, fired: 0 };
    this.rules.push(rule);
    return rule;
  }

  clear(seed?: number): void {
    this.rules = [];
    if (seed !== undefined) this.random = seededRandom(seed);
  }

  list(): FaultRule[] {
    return this.rules.map((r) => ({ ...r }));
  }

  /** The rules that apply to this request, in order: latencies first, then at most one failure. */
  match(method: string, host: string, path: string): { latencyMs: number; failure?: FaultRule } {
    let latencyMs = 0;
    let failure: FaultRule | undefined;
    for (const rule of this.rules) {
      if (rule.count !== undefined && rule.fired >= rule.count) continue;
      if (rule.method && rule.method.toUpperCase() !== method.toUpperCase()) continue;
      if (rule.host) {
        const h = rule.host.toLowerCase();
        if (h.startsWith('.') ? !host.endsWith(h) : host !== h) continue;
      }
      if (rule.path && !new RegExp(rule.path).test(path)) continue;
      if (rule.kind !== 'latency' && failure) continue;
      if (rule.rate !== undefined && this.random() >= rule.rate) continue;
      rule.fired++;
      if (rule.kind === 'latency') latencyMs += rule.latencyMs ?? 0;
      else failure = rule;
    }
    this.rules = this.rules.filter((r) => r.count === undefined || r.fired < r.count);
    return { latencyMs, failure };
  }
}
