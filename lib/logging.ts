/**
 * Logging: pino with redaction, one child logger per invocation carrying the invocation id (and the
 * incident id once known), written through the Functions `InvocationContext` so Application
 * Insights ties each line to its invocation. Payloads are logged only at debug, already redacted.
 */
import pino, { type Logger } from 'pino';
import { scrubSecrets } from './core/errors';

export type { Logger };

/** Where formatted lines go: the InvocationContext's methods, or a test's array. */
export interface LogTarget {
  trace(message: string): void;
  debug(message: string): void;
  info(message: string): void;
  warn(message: string): void;
  error(message: string): void;
}

/** Property names that never reach a log line, wherever they appear. */
export const REDACTED_PATHS = [
  'authorization',
  '*.authorization',
  'headers.authorization',
  '*.headers.authorization',
  'token',
  '*.token',
  'accessToken',
  '*.accessToken',
  'access_token',
  '*.access_token',
  'secret',
  '*.secret',
  'clientSecret',
  '*.clientSecret',
  'client_secret',
  '*.client_secret',
  'sig',
  '*.sig',
  'webhookUrl',
  '*.webhookUrl',
];

export function createLogger(
  level: string,
  target: LogTarget,
  bindings: Record<string, unknown> = {},
): Logger {
  const stream = {
    write(line: string) {
      const safe = scrubSecrets(line.trimEnd());
      // pino writes the level first (`{"level":30,…`): read it there rather than parse the line.
      const lvl = Number(/^\{"level":(\d+)/.exec(line)?.[1] ?? 30);
      if (lvl >= 50) target.error(safe);
      else if (lvl >= 40) target.warn(safe);
      else if (lvl >= 30) target.info(safe);
      else if (lvl >= 20) target.debug(safe);
      else target.trace(safe);
    },
  };
  return pino(
    {
      level,
      base: undefined,
      timestamp: pino.stdTimeFunctions.isoTime,
      redact: { paths: REDACTED_PATHS, censor: '[redacted]' },
    },
    stream,
  ).child(bindings);
}

/** A target that writes to an InvocationContext-like object (`ctx.info`, `ctx.warn`, ...). */
export function contextTarget(ctx: {
  trace(...args: unknown[]): void;
  debug(...args: unknown[]): void;
  info(...args: unknown[]): void;
  warn(...args: unknown[]): void;
  error(...args: unknown[]): void;
}): LogTarget {
  return {
    trace: (m) => ctx.trace(m),
    debug: (m) => ctx.debug(m),
    info: (m) => ctx.info(m),
    warn: (m) => ctx.warn(m),
    error: (m) => ctx.error(m),
  };
}
