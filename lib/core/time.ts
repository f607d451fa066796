/**
 * Strict ISO 8601 instants. `Date.parse` is lenient (it rolls `2026-02-30` over to March and accepts
 * times without a zone as local time), and a signal's time keys incidents and sanctions deletions, so
 * kvguard accepts only a full date, a time and an explicit zone, and checks every field's range.
 */

/** Date, time (seconds and up to 9 fractional digits optional), and `Z` or `±hh:mm`. */
export const ISO_INSTANT_PATTERN =
  /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2})(?::(\d{2})(?:\.(\d{1,9}))?)?(Z|[+-]\d{2}:\d{2})$/;

const MAX_INSTANT_LENGTH = 40;

function daysInMonth(year: number, month: number): number {
  return new Date(Date.UTC(year, month, 0)).getUTCDate();
}

/** Epoch milliseconds of a strict ISO instant string or a valid `Date`; `undefined` otherwise. */
export function parseInstant(value: unknown): number | undefined {
  if (value instanceof Date) {
    const ms = value.getTime();
    return Number.isFinite(ms) ? ms : undefined;
  }
  if (typeof value !== 'string' || value.length > MAX_INSTANT_LENGTH) return undefined;
  const m = ISO_INSTANT_PATTERN.exec(value);
  if (!m) return undefined;
  const [, ys, mos, ds, hs, mis, ss, frac, zone] = m;
  const year = Number(ys);
  const month = Number(mos);
  const day = Number(ds);
  const hour = Number(hs);
  const minute = Number(mis);
  const second = ss === undefined ? 0 : Number(ss);
  if (year < 1970 || month < 1 || month > 12 || day < 1 || day > daysInMonth(year, month)) return undefined;
  if (hour > 23 || minute > 59 || second > 59) return undefined;
  let offsetMinutes = 0;
  if (zone !== undefined && zone !== 'Z') {
    const oh = Number(zone.slice(1, 3));
    const om = Number(zone.slice(4, 6));
    if (oh > 23 || om > 59) return undefined;
    offsetMinutes = (zone.startsWith('-') ? -1 : 1) * (oh * 60 + om);
  }
  const millis = frac === undefined ? 0 : Number(frac.padEnd(3, '0').slice(0, 3));
  return Date.UTC(year, month - 1, day, hour, minute, second, millis) - offsetMinutes * 60_000;
}

/** Canonical form (`toISOString`, UTC, milliseconds) of a strict instant; `undefined` if invalid. */
export function toIsoInstant(value: unknown): string | undefined {
  const ms = parseInstant(value);
  if (ms === undefined) return undefined;
  const date = new Date(ms);
  return Number.isFinite(date.getTime()) ? date.toISOString() : undefined;
}

/** `PT10M`, `PT1H`, `P1D`, `PT30S`, `P1DT2H`: the durations alert rules use. Milliseconds, or undefined. */
export function parseDuration(value: unknown): number | undefined {
  if (typeof value !== 'string' || value.length > 32) return undefined;
  const m = /^P(?:(\d{1,4})D)?(?:T(?:(\d{1,5})H)?(?:(\d{1,6})M)?(?:(\d{1,7})S)?)?$/.exec(value);
  if (!m || value === 'P' || value.endsWith('T')) return undefined;
  const [, d, h, mi, s] = m;
  const ms =
    (Number(d ?? 0) * 86_400 + Number(h ?? 0) * 3_600 + Number(mi ?? 0) * 60 + Number(s ?? 0)) * 1000;
  return ms > 0 ? ms : undefined;
}
