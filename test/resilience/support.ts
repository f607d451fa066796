/**
 * What the resilience suite shares: a log collector, a clock that can be moved on (the wait between
 * Event Grid's redeliveries), Event Grid's redelivery loop, a pipeline built from a runtime's real
 * adapters with some of them wrapped (crash injection), and the scan for secrets in what kvguard
 * wrote and sent.
 */
import { createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import { respondToEvent } from '../../lib/entrypoints';
import { createLogger, type LogTarget } from '../../lib/logging';
import type { PipelineDeps } from '../../lib/pipeline';
import type { Clock } from '../../lib/ports';
import type { Runtime } from '../../lib/runtime';
import { ensureCertificateAuthority } from '../emulator/ca';

/** Every line kvguard logged, through any logger the suite gave it. */
export class LogCollector implements LogTarget {
  readonly lines: string[] = [];
  trace = (m: string) => void this.lines.push(m);
  debug = (m: string) => void this.lines.push(m);
  info = (m: string) => void this.lines.push(m);
  warn = (m: string) => void this.lines.push(m);
  error = (m: string) => void this.lines.push(m);
}

/**
 * Real time, plus an offset the test moves on to stand for the minutes Event Grid waits between
 * redeliveries (so a lease left by a crashed invocation has expired, as it would have).
 */
export class OffsetClock implements Clock {
  private offsetMs = 0;
  now(): Date {
    return new Date(Date.now() + this.offsetMs);
  }
  sleep(ms: number): Promise<void> {
    return new Promise((resolve) => setTimeout(resolve, ms));
  }
  advance(ms: number): void {
    this.offsetMs += ms;
  }
}

let invocations = 0;
/** One invocation as the Functions host gives it: an id and a logger (at debug: everything is scanned). */
export function invocation(target: LogTarget) {
  const invocationId = `res-${++invocations}`;
  return {
    invocationId,
    log: createLogger('debug', target, { invocationId, fn: 'keyDeletionResponder' }),
  };
}

export interface RedeliveryReport {
  /** Deliveries per event until one succeeded (or the rounds ran out). */
  attempts: number[];
  /** Events still failing after the last round. */
  undelivered: number;
  errors: string[];
}

/**
 * Delivers every event as Event Grid would: `concurrency` at a time; an invocation that throws is
 * delivered again in the next round, after `clock` moved on by `waitMs`, for at most `rounds` rounds.
 */
export async function deliverUntilDone(
  rt: Runtime,
  events: unknown[],
  options: { target: LogTarget; clock: OffsetClock; rounds: number; waitMs: number; concurrency: number },
): Promise<RedeliveryReport> {
  const attempts = events.map(() => 0);
  const errors: string[] = [];
  let pending = events.map((_, i) => i);
  for (let round = 0; round < options.rounds && pending.length > 0; round++) {
    if (round > 0) options.clock.advance(options.waitMs);
    const failed: number[] = [];
    let next = 0;
    await Promise.all(
      Array.from({ length: Math.min(options.concurrency, pending.length) }, async () => {
        while (next < pending.length) {
          const i = pending[next++]!;
          attempts[i]!++;
          try {
            await respondToEvent(rt, events[i], invocation(options.target));
          } catch (error) {
            errors.push(error instanceof Error ? error.message : String(error));
            failed.push(i);
          }
        }
      }),
    );
    pending = failed.sort((a, b) => a - b);
  }
  return { attempts, undelivered: pending.length, errors };
}

/** A runtime whose pipeline uses the runtime's own adapters, with some of them replaced (wrapped). */
export function withPipeline(rt: Runtime, replace: Partial<PipelineDeps>): Runtime {
  return { ...rt, pipeline: rt.pipelineWith(replace) };
}

/** A signed-webhook receiver on loopback (HTTPS with the emulator's CA): what it was sent. */
export async function startWebhook(): Promise<{
  url: string;
  hits: Array<{ id: string; headers: Record<string, unknown>; body: string }>;
  close(): Promise<void>;
}> {
  const hits: Array<{ id: string; headers: Record<string, unknown>; body: string }> = [];
  const leaf = ensureCertificateAuthority().leafFor(['127.0.0.1']);
  const server: Server = createServer({ cert: leaf.cert, key: leaf.key }, (req, res) => {
    let body = '';
    req.on('data', (c: Buffer) => (body += c.toString()));
    req.on('end', () => {
      hits.push({ id: String(req.headers['x-kvguard-alert-id']), headers: { ...req.headers }, body });
      res.writeHead(200).end('ok');
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as AddressInfo).port;
  return {
    url: `https://127.0.0.1:${port}/hook`,
    hits,
    close: () => new Promise<void>((r) => server.close(() => r())),
  };
}

/** What must never appear in a log line or an alert (design §6). */
const PATTERNS: Array<[string, RegExp]> = [
  ['a JWT (access token)', /eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]*/],
  ['a bearer credential', /bearer\s+[A-Za-z0-9._~+/-]{16,}/i],
  ['a SAS signature', /[?&]sig=[A-Za-z0-9%+/=]{10,}/i],
  ['a PEM block', /-----BEGIN [A-Z ]+-----/],
  ['a private JWK member', /"(?:d|p|q|dp|dq|qi|k)"\s*:\s*"[A-Za-z0-9_-]{16,}"/],
  // A public modulus or any other long base64url run: key material kvguard has no reason to write.
  ['a long base64 run (key material)', /[A-Za-z0-9+/_-]{200,}/],
];

/**
 * The findings of a scan of `texts` for tokens, the given secrets (client secrets, the webhook
 * secret, the managed-identity header), SAS signatures and key material. Empty when clean.
 */
export function findSecrets(texts: string[], secrets: string[]): string[] {
  const findings: string[] = [];
  for (const text of texts) {
    for (const [what, pattern] of PATTERNS) {
      const m = pattern.exec(text);
      if (m) findings.push(`${what}: …${text.slice(Math.max(0, m.index - 40), m.index + 60)}…`);
    }
    for (const secret of secrets) {
      if (secret.length >= 8 && text.includes(secret))
        findings.push(`a configured secret (${secret.slice(0, 3)}…): …${text.slice(0, 120)}…`);
    }
  }
  return findings;
}
