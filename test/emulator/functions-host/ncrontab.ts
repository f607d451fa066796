/**
 * Timer schedules as the Functions timer extension reads them, so a schedule Azure would refuse at
 * indexing is refused locally too, and a timer invocation carries a realistic `scheduleStatus`.
 *
 * - NCRONTAB (the NCrontab library the extension uses): 6 fields `sec min hour day month dow`, or 5
 *   fields without seconds (the extension's `CronSchedule.TryCreate` picks "including seconds"
 *   unless the expression has exactly 5 fields). Each field: `*`, `n`, `a-b`, with an optional
 *   `/step`, comma-separated; months and days of week also by name (`JAN`, `MON`, full names too).
 *   NCrontab requires day-of-month AND day-of-week to match (not the classic cron OR).
 * - Otherwise a TimeSpan `[d.]hh:mm[:ss]` (a constant interval).
 * - `%NAME%` is an app-setting reference, resolved before parsing.
 * Times are UTC (the Functions default; `WEBSITE_TIME_ZONE` is not modelled).
 */

export type TimerSchedule =
  | { kind: 'cron'; expression: string; includesSeconds: boolean; fields: CronFields }
  | { kind: 'interval'; expression: string; intervalMs: number };

export interface CronFields {
  seconds: Set<number>;
  minutes: Set<number>;
  hours: Set<number>;
  days: Set<number>;
  months: Set<number>;
  daysOfWeek: Set<number>;
}

const MONTHS = ['jan', 'feb', 'mar', 'apr', 'may', 'jun', 'jul', 'aug', 'sep', 'oct', 'nov', 'dec'];
const MONTH_NAMES = [
  'january',
  'february',
  'march',
  'april',
  'may',
  'june',
  'july',
  'august',
  'september',
  'october',
  'november',
  'december',
];
const DAYS = ['sun', 'mon', 'tue', 'wed', 'thu', 'fri', 'sat'];
const DAY_NAMES = ['sunday', 'monday', 'tuesday', 'wednesday', 'thursday', 'friday', 'saturday'];

interface FieldSpec {
  label: string;
  min: number;
  max: number;
  names?: (token: string) => number | undefined;
}

const SECOND: FieldSpec = { label: 'second', min: 0, max: 59 };
const MINUTE: FieldSpec = { label: 'minute', min: 0, max: 59 };
const HOUR: FieldSpec = { label: 'hour', min: 0, max: 23 };
const DAY: FieldSpec = { label: 'day', min: 1, max: 31 };
const MONTH: FieldSpec = {
  label: 'month',
  min: 1,
  max: 12,
  names: (t) => {
    const i = MONTHS.indexOf(t) >= 0 ? MONTHS.indexOf(t) : MONTH_NAMES.indexOf(t);
    return i >= 0 ? i + 1 : undefined;
  },
};
const DAY_OF_WEEK: FieldSpec = {
  label: 'day of week',
  min: 0,
  max: 6,
  names: (t) => {
    const i = DAYS.indexOf(t) >= 0 ? DAYS.indexOf(t) : DAY_NAMES.indexOf(t);
    return i >= 0 ? i : undefined;
  },
};

/** Replaces `%NAME%` references with app settings; throws when one is missing, as the host does. */
export function resolveAppSettingReferences(value: string, env: Record<string, string | undefined>): string {
  return value.replace(/%([^%]+)%/g, (_match, name: string) => {
    const resolved = env[name];
    if (resolved === undefined) throw new Error(`'%${name}%' does not resolve to a value.`);
    return resolved;
  });
}

/** Parses a timer schedule; throws the host's message for an expression it would not accept. */
export function parseTimerSchedule(expression: string): TimerSchedule {
  const cron = tryParseCron(expression);
  if (cron) return cron;
  const interval = tryParseTimeSpan(expression);
  if (interval !== undefined) return { kind: 'interval', expression, intervalMs: interval };
  throw new Error(
    `The schedule expression '${expression}' was not recognized as a valid cron expression or timespan string.`,
  );
}

function tryParseCron(expression: string): TimerSchedule | undefined {
  const parts = expression.split(' ').filter((p) => p.length > 0);
  if (parts.length !== 5 && parts.length !== 6) return undefined;
  const includesSeconds = parts.length === 6;
  const all = includesSeconds ? parts : ['0', ...parts];
  const specs = [SECOND, MINUTE, HOUR, DAY, MONTH, DAY_OF_WEEK];
  const sets: Set<number>[] = [];
  for (let i = 0; i < 6; i++) {
    const set = parseField(all[i]!, specs[i]!);
    if (!set) return undefined;
    sets.push(set);
  }
  const [seconds, minutes, hours, days, months, daysOfWeek] = sets as [
    Set<number>,
    Set<number>,
    Set<number>,
    Set<number>,
    Set<number>,
    Set<number>,
  ];
  return {
    kind: 'cron',
    expression,
    includesSeconds,
    fields: { seconds, minutes, hours, days, months, daysOfWeek },
  };
}

function parseField(text: string, spec: FieldSpec): Set<number> | undefined {
  const values = new Set<number>();
  for (const item of text.split(',')) {
    if (item.length === 0) return undefined;
    const [rangeText, stepText, extra] = item.split('/');
    if (extra !== undefined || rangeText === undefined || rangeText.length === 0) return undefined;
    let step = 1;
    if (stepText !== undefined) {
      if (!/^\d+$/.test(stepText)) return undefined;
      step = Number(stepText);
      if (step < 1) return undefined;
    }
    let first: number;
    let last: number;
    if (rangeText === '*') {
      first = spec.min;
      last = spec.max;
    } else {
      const bounds = rangeText.split('-');
      if (bounds.length > 2) return undefined;
      const a = parseValue(bounds[0]!, spec);
      if (a === undefined) return undefined;
      first = a;
      if (bounds.length === 2) {
        const b = parseValue(bounds[1]!, spec);
        if (b === undefined || b < a) return undefined;
        last = b;
      } else {
        // `n/step` means from n to the end of the range, stepping (NCrontab).
        last = stepText !== undefined ? spec.max : a;
      }
    }
    for (let v = first; v <= last; v += step) values.add(v);
  }
  return values;
}

function parseValue(token: string, spec: FieldSpec): number | undefined {
  if (/^\d+$/.test(token)) {
    const n = Number(token);
    return n >= spec.min && n <= spec.max ? n : undefined;
  }
  return spec.names?.(token.toLowerCase());
}

/** `[d.]hh:mm[:ss]` as .NET `TimeSpan.TryParse` reads the common forms; a positive interval only. */
function tryParseTimeSpan(text: string): number | undefined {
  const match = /^(?:(\d+)\.)?(\d{1,2}):(\d{1,2})(?::(\d{1,2})(?:\.(\d{1,7}))?)?$/.exec(text.trim());
  if (!match) return undefined;
  const [, d, h, m, s, f] = match;
  const hours = Number(h);
  const minutes = Number(m);
  const seconds = Number(s ?? '0');
  if (hours > 23 || minutes > 59 || seconds > 59) return undefined;
  const fraction = f ? Number(`0.${f}`) : 0;
  const ms = ((Number(d ?? '0') * 24 + hours) * 60 + minutes) * 60_000 + (seconds + fraction) * 1000;
  return ms > 0 ? ms : undefined;
}

/**
 * The first occurrence strictly after `after` (UTC), or undefined when the schedule never fires
 * within the next five years (e.g. `0 0 0 30 2 *`). For an interval, `after + interval`.
 */
export function nextOccurrence(schedule: TimerSchedule, after: Date): Date | undefined {
  if (schedule.kind === 'interval') return new Date(after.getTime() + schedule.intervalMs);
  const f = schedule.fields;
  const t = new Date(Math.floor(after.getTime() / 1000) * 1000 + 1000);
  const limit = after.getTime() + 5 * 366 * 24 * 3600_000;
  while (t.getTime() <= limit) {
    if (!f.months.has(t.getUTCMonth() + 1)) {
      t.setUTCMonth(t.getUTCMonth() + 1, 1);
      t.setUTCHours(0, 0, 0, 0);
      continue;
    }
    if (!f.days.has(t.getUTCDate()) || !f.daysOfWeek.has(t.getUTCDay())) {
      t.setUTCDate(t.getUTCDate() + 1);
      t.setUTCHours(0, 0, 0, 0);
      continue;
    }
    if (!f.hours.has(t.getUTCHours())) {
      t.setUTCHours(t.getUTCHours() + 1, 0, 0, 0);
      continue;
    }
    if (!f.minutes.has(t.getUTCMinutes())) {
      t.setUTCMinutes(t.getUTCMinutes() + 1, 0, 0);
      continue;
    }
    if (!f.seconds.has(t.getUTCSeconds())) {
      t.setUTCSeconds(t.getUTCSeconds() + 1, 0);
      continue;
    }
    return t;
  }
  return undefined;
}
