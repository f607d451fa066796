/**
 * One way to turn anything thrown into an `Error` that is safe to log or put in an alert (style.md,
 * after `ensureErrorType` in the Functions library): secrets are scrubbed from the message and the
 * stack, and nothing else of the original is kept. An Azure SDK `RestError` carries the request (with
 * its `Authorization` header) and the response body; neither is copied.
 */

/** Patterns of secrets and what replaces them. Order matters: JWTs first, then the named forms. */
const SECRET_PATTERNS: ReadonlyArray<readonly [RegExp, string]> = [
  // JWTs (access tokens, id tokens, client assertions): three base64url parts, the first `eyJ`.
  [/eyJ[A-Za-z0-9_-]{2,}\.[A-Za-z0-9_-]{2,}\.[A-Za-z0-9_-]*/g, '[redacted-jwt]'],
  // A JWT-looking fragment cut short (a truncated header or log line).
  [/eyJ[A-Za-z0-9_-]{16,}/g, '[redacted-jwt]'],
  // Authorization schemes.
  [/\b(Bearer|Basic|SharedAccessSignature)\s+[^\s"',;]+/gi, '$1 [redacted]'],
  // Connection-string parts (storage, Event Hubs, Service Bus).
  [/\b(AccountKey|SharedAccessKey|SharedSecretValue)\s*=\s*[^;"'\s]+/gi, '$1=[redacted]'],
  // SAS signatures and function keys in URLs.
  [/([?&;\s"']sig=)[^&\s"';]+/gi, '$1[redacted]'],
  [/([?&]code=)[^&\s"';]+/gi, '$1[redacted]'],
  // Event Grid keys and tokens, function keys, and common secret-bearing names, as header, JSON or form.
  [
    /\b(aeg-sas-key|aeg-sas-token|x-functions-key|client_secret|clientSecret|access_token|accessToken|refresh_token|id_token|token|password|secret|apiKey|api_key|primaryKey|secondaryKey|primaryConnectionString|secondaryConnectionString)(["']?\s*[:=]\s*["']?)[^\s"'&,;}]+/gi,
    '$1$2[redacted]',
  ],
  // Private parts of a JSON Web Key (key material).
  [/"(d|p|q|dp|dq|qi|k)"\s*:\s*"[^"]*"/g, '"$1":"[redacted]"'],
  // Slack incoming-webhook URLs carry their secret in the path.
  [/(hooks\.slack\.com\/services\/)[^\s"'?]+/gi, '$1[redacted]'],
];

/**
 * Text that any pattern above could match contains one of these (case-insensitively): every log
 * line goes through `scrubSecrets`, and most contain none of them, so one pass spares nine.
 */
const SECRET_HINT =
  /eyj|bearer|basic|sharedaccess|accountkey|sharedsecret|sig=|code=|aeg-sas|x-functions-key|secret|token|password|api_?key|primarykey|secondarykey|connectionstring|"(?:d|p|q|dp|dq|qi|k)"\s*:|hooks\.slack\.com/i;

/** Replaces tokens, keys, signatures and passwords in free text. */
export function scrubSecrets(text: string): string {
  if (!SECRET_HINT.test(text)) return text;
  let out = text;
  for (const [pattern, replacement] of SECRET_PATTERNS) out = out.replace(pattern, replacement);
  return out;
}

/** The safe error `toSafeError` returns: name, message, stack, and the HTTP status and code if any. */
export class SafeError extends Error {
  /** A service error code (`KeyNotFound`, `Forbidden`…), when the original had a short string code. */
  readonly code?: string;
  /** The HTTP status, when the original had one. */
  readonly statusCode?: number;

  constructor(
    name: string,
    message: string,
    options: { stack?: string; code?: string; statusCode?: number; cause?: SafeError },
  ) {
    super(message, options.cause !== undefined ? { cause: options.cause } : undefined);
    this.name = name;
    if (options.code !== undefined) this.code = options.code;
    if (options.statusCode !== undefined) this.statusCode = options.statusCode;
    this.stack = options.stack ?? `${name}: ${message}`;
  }
}

const MAX_MESSAGE = 4096;
const MAX_STACK = 16_384;
const MAX_CAUSE_DEPTH = 3;

/** Reads a property without letting a throwing getter or proxy escape. */
function read(value: object, key: string): unknown {
  try {
    return (value as Record<string, unknown>)[key];
  } catch {
    return undefined;
  }
}

function describeValue(value: unknown): string {
  try {
    if (typeof value === 'string') return value;
    if (
      value === undefined ||
      value === null ||
      typeof value === 'number' ||
      typeof value === 'boolean' ||
      typeof value === 'bigint'
    ) {
      return String(value);
    }
    if (typeof value === 'symbol') return value.toString();
    if (typeof value === 'function') return `function ${value.name || '(anonymous)'}`;
    const json = JSON.stringify(value);
    return typeof json === 'string' ? json : Object.prototype.toString.call(value);
  } catch {
    return Object.prototype.toString.call(value);
  }
}

function clip(text: string, max: number): string {
  return text.length <= max ? text : `${text.slice(0, max)}… [${text.length - max} more characters]`;
}

/**
 * Any thrown value → a `SafeError` with secrets scrubbed. Never throws (not even for a proxy whose
 * every trap throws, a cyclic object or a getter that throws).
 */
export function toSafeError(value: unknown): SafeError {
  return safe(value, 0);
}

function safe(value: unknown, depth: number): SafeError {
  try {
    if (
      value instanceof Error ||
      (typeof value === 'object' && value !== null && typeof read(value, 'message') === 'string')
    ) {
      const obj: object = value;
      const rawName = read(obj, 'name');
      const name =
        typeof rawName === 'string' && /^[A-Za-z][A-Za-z0-9_.]{0,63}$/.test(rawName) ? rawName : 'Error';
      const message = clip(scrubSecrets(String(read(obj, 'message'))), MAX_MESSAGE);
      const rawStack = read(obj, 'stack');
      const stack = typeof rawStack === 'string' ? clip(scrubSecrets(rawStack), MAX_STACK) : undefined;
      const rawCode = read(obj, 'code');
      const code =
        typeof rawCode === 'string' && /^[A-Za-z0-9_.-]{1,64}$/.test(rawCode) ? rawCode : undefined;
      const rawStatus = read(obj, 'statusCode') ?? read(obj, 'status');
      const statusCode =
        typeof rawStatus === 'number' && Number.isInteger(rawStatus) && rawStatus >= 100 && rawStatus <= 599
          ? rawStatus
          : undefined;
      const rawCause = depth < MAX_CAUSE_DEPTH ? read(obj, 'cause') : undefined;
      const cause = rawCause !== undefined && rawCause !== value ? safe(rawCause, depth + 1) : undefined;
      return new SafeError(name, message, {
        ...(stack !== undefined ? { stack } : {}),
        ...(code !== undefined ? { code } : {}),
        ...(statusCode !== undefined ? { statusCode } : {}),
        ...(cause !== undefined ? { cause } : {}),
      });
    }
    return new SafeError('Error', clip(scrubSecrets(describeValue(value)), MAX_MESSAGE), {});
  } catch {
    return new SafeError('Error', 'an error that could not be read', {});
  }
}
