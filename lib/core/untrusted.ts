/**
 * Reading values out of untrusted input. Inputs are parsed JSON from the outside (or worse: objects
 * with getters, proxies, `__proto__` keys), so lookups use own properties only and text is cleaned
 * before it can reach a log line or an alert.
 */

export type PlainRecord = Record<string, unknown>;

/** `true` for a non-null, non-array object. */
export function isRecord(value: unknown): value is PlainRecord {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** Own property only: `__proto__`, `constructor` or inherited names never resolve to the prototype. */
export function own(obj: unknown, key: string): unknown {
  if (!isRecord(obj) || !Object.prototype.hasOwnProperty.call(obj, key)) return undefined;
  return obj[key];
}

/**
 * Own property by name, ignoring case and surrounding white space in the *input's* key names: the
 * Key Vault event sample has `"ObjectName "` with a trailing space. An exact match wins.
 */
export function ownLoose(obj: unknown, key: string): unknown {
  if (!isRecord(obj)) return undefined;
  if (Object.prototype.hasOwnProperty.call(obj, key)) return obj[key];
  const wanted = key.toLowerCase();
  for (const k of Object.keys(obj)) {
    if (k.trim().toLowerCase() === wanted) return obj[k];
  }
  return undefined;
}

// C0 and C1 control characters, DEL, and the bidi/line separators that can make text lie in an alert.
// eslint-disable-next-line no-control-regex
const UNSAFE_CHARS = /[\u0000-\u001f\u007f-\u009f\u2028\u2029\u202a-\u202e\u2066-\u2069]/g;

/**
 * A string field fit for a log line or an alert: control characters removed, trimmed, empty → undefined.
 * Longer than `max`: `undefined` when `truncate` is false (identifiers must not be cut into something
 * else), else cut with an ellipsis (free text such as a user agent).
 */
export function cleanText(value: unknown, max = 256, truncate = false): string | undefined {
  if (typeof value !== 'string') return undefined;
  if (!truncate && value.length > max * 4) return undefined;
  const cleaned = value
    .slice(0, max * 4)
    .replace(UNSAFE_CHARS, '')
    .trim();
  if (cleaned === '') return undefined;
  if (cleaned.length <= max) return cleaned;
  return truncate ? `${cleaned.slice(0, max - 1)}…` : undefined;
}

/** Text for messages about an input (event types, operation names): cleaned and short. */
export function describe(value: unknown, max = 120): string {
  return cleanText(value, max, true) ?? (value === undefined ? 'none' : typeof value);
}
