/**
 * What an alert looks like outside kvguard: the versioned JSON payload (`lib/schemas/alert.v1.schema.json`)
 * that the Event Grid topic and the signed webhook carry, and its renderings for people (a Teams
 * Adaptive Card, a Slack Block Kit message, plain text).
 *
 * Everything here treats every string of an `AlertMessage` as untrusted: key names, UPNs, user agents
 * and IP addresses come from the deleting caller's request (design §6). So:
 * - every string is scrubbed of secrets first (JWTs, `sig=` values, bearer tokens, key material, PEM
 *   blocks, long base64 runs), even though an AlertMessage should hold none (defence in depth);
 * - bidi overrides and control characters are removed, so a user agent cannot reorder what a human reads;
 * - each rendering escapes what its markup gives meaning to, so a caller-chosen string can never become a
 *   link, a mention or formatting that hides the rest of the alert (see `escapeSlack`, `escapeTeamsMarkdown`).
 * The payload keeps the scrubbed values verbatim (machines parse it); only renderings escape.
 */
import { scrubSecrets } from './core/errors';
import type { AlertMessage } from './ports';

/** `$id` of the alert payload schema; the CloudEvent `dataschema` and the payload's `schema` field. */
export const ALERT_SCHEMA_ID = 'urn:kvguard:schema:alert:v1';

export type AlertKind = AlertMessage['kind'];
export type AlertSeverity = AlertMessage['severity'];

/** The alert as machines receive it (Event Grid `data`, signed webhook body). See alert.v1.schema.json. */
export interface AlertPayloadV1 {
  schema: typeof ALERT_SCHEMA_ID;
  /** `<incident>/primary`, `<incident>/attribution`, …: stable, so a receiver can drop a repeat. */
  id: string;
  incidentId: string;
  kind: AlertKind;
  severity: AlertSeverity;
  title: string;
  /** ISO 8601 UTC with milliseconds (`Date.toISOString`). */
  time: string;
  /** What the alert is about: `vaults/<vault>/keys/<key>`, `vaults/<vault>` or `incidents/<incident>`. */
  subject: string;
  /** Human-readable lines, scrubbed, not escaped. */
  text: string[];
  /** `AlertMessage.data`, scrubbed and made JSON-safe (Dates as ISO strings). */
  details: Record<string, unknown>;
}

/** Bounds that keep every rendering within its channel's limits whatever the input. */
export const ALERT_LIMITS = {
  title: 300,
  line: 2000,
  lines: 50,
  detailString: 4096,
  detailDepth: 8,
  detailArray: 100,
  detailKeys: 100,
} as const;

// ---------------------------------------------------------------------------------------------
// Scrubbing
// ---------------------------------------------------------------------------------------------

const EXTRA_SECRET_PATTERNS: ReadonlyArray<readonly [RegExp, string]> = [
  // PEM blocks (private keys, certificates).
  [/-----BEGIN [A-Z0-9 ]+-----[\s\S]*?(-----END [A-Z0-9 ]+-----|$)/g, '[redacted-pem]'],
  // Long base64/base64url runs that start at a word boundary: key material (an RSA-2048 modulus is
  // 342 characters), SAS keys, tokens of unknown shape. ARM ids and URLs never match: every position
  // inside them follows a `/` or a word character, which the lookbehind excludes.
  [/(?<![/\w+-])[A-Za-z0-9+_-][A-Za-z0-9+/_-]{199,}={0,2}/g, '[redacted-blob]'],
];

/** Bidi embeddings/overrides/isolates and C0/C1 controls except tab and newline. */
const UNSAFE_CHARACTERS =
  /[\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f-\u009f\u200e\u200f\u202a-\u202e\u2066-\u2069]/g; // eslint-disable-line no-control-regex

/** Removes secrets (lib/core/errors.ts patterns plus key-material shapes) and unsafe characters. */
export function scrubAlertString(value: string): string {
  let out = scrubSecrets(value.replace(UNSAFE_CHARACTERS, ''));
  for (const [pattern, replacement] of EXTRA_SECRET_PATTERNS) out = out.replace(pattern, replacement);
  return out;
}

function clip(value: string, max: number): string {
  return value.length <= max ? value : `${value.slice(0, max - 1)}…`;
}

/** Property names whose value is a secret whatever it looks like. */
const SECRET_NAMES =
  /^(secret|password|passwd|token|access_?token|refresh_?token|id_?token|client_?secret|sig|signature|authorization|api_?key|sas(_?token)?|connection_?string|webhook_?url|account_?key|shared_?access_?key)$/i;
/** Private members of a JSON Web Key (RFC 7518 §6.2.2, §6.3.2, §6.4): key material. */
const JWK_PRIVATE = new Set(['d', 'p', 'q', 'dp', 'dq', 'qi', 'k', 'oth']);

/** A JSON-safe, scrubbed, bounded copy of any value (cycles, getters that throw and bigints included). */
function toSafeJson(value: unknown, depth: number, seen: Set<object>): unknown {
  if (value === null || typeof value === 'boolean') return value;
  if (typeof value === 'string') return clip(scrubAlertString(value), ALERT_LIMITS.detailString);
  if (typeof value === 'number') return Number.isFinite(value) ? value : null;
  if (typeof value === 'bigint') return value.toString();
  if (value instanceof Date) return Number.isNaN(value.getTime()) ? null : value.toISOString();
  if (typeof value !== 'object') return undefined; // functions, symbols, undefined: dropped
  if (depth >= ALERT_LIMITS.detailDepth) return '[truncated]';
  if (seen.has(value)) return '[circular]';
  seen.add(value);
  try {
    if (Array.isArray(value)) {
      return value
        .slice(0, ALERT_LIMITS.detailArray)
        .map((item) => toSafeJson(item, depth + 1, seen) ?? null);
    }
    const out: Record<string, unknown> = {};
    const isJwk = Object.prototype.hasOwnProperty.call(value, 'kty');
    for (const key of Object.keys(value).slice(0, ALERT_LIMITS.detailKeys)) {
      if (SECRET_NAMES.test(key) || (isJwk && JWK_PRIVATE.has(key))) {
        out[key] = '[redacted]';
        continue;
      }
      let item: unknown;
      try {
        item = (value as Record<string, unknown>)[key];
      } catch {
        continue;
      }
      const safe = toSafeJson(item, depth + 1, seen);
      if (safe !== undefined) out[clip(scrubAlertString(key), 128)] = safe;
    }
    return out;
  } finally {
    seen.delete(value);
  }
}

// ---------------------------------------------------------------------------------------------
// The payload
// ---------------------------------------------------------------------------------------------

const VAULT_NAME = /^[A-Za-z][A-Za-z0-9-]{1,22}[A-Za-z0-9]$/;
const KEY_NAME = /^[A-Za-z0-9-]{1,127}$/;

/**
 * `vaults/<vault>/keys/<key>` when the details name a key (`details.what.vaultName`/`keyName`, the
 * AlertContent shape), `vaults/<vault>` for a vault, else `incidents/<incident id>`. Subscribers can
 * filter on it with Event Grid's `subjectBeginsWith` (e.g. `vaults/kv-prod/`).
 */
export function alertSubject(incidentId: string, details: Record<string, unknown>): string {
  const what = details.what;
  if (what && typeof what === 'object') {
    const { vaultName, keyName } = what as { vaultName?: unknown; keyName?: unknown };
    if (typeof vaultName === 'string' && VAULT_NAME.test(vaultName)) {
      const vault = `vaults/${vaultName.toLowerCase()}`;
      return typeof keyName === 'string' && KEY_NAME.test(keyName) ? `${vault}/keys/${keyName}` : vault;
    }
  }
  return `incidents/${incidentId}`;
}

/** The alert payload v1: what the Event Grid sink and the signed webhook send. Never throws. */
export function toAlertPayload(alert: AlertMessage): AlertPayloadV1 {
  const details = toSafeJson(alert.data, 0, new Set());
  const safeDetails =
    details && typeof details === 'object' && !Array.isArray(details)
      ? (details as Record<string, unknown>)
      : {};
  const incidentId = clip(scrubAlertString(alert.incidentId), 400);
  const time = alert.time instanceof Date && !Number.isNaN(alert.time.getTime()) ? alert.time : new Date(0);
  const lines = alert.text
    .slice(0, ALERT_LIMITS.lines)
    .map((line) => clip(scrubAlertString(line), ALERT_LIMITS.line));
  if (alert.text.length > ALERT_LIMITS.lines)
    lines.push(`… ${alert.text.length - ALERT_LIMITS.lines} more lines not shown`);
  return {
    schema: ALERT_SCHEMA_ID,
    id: clip(scrubAlertString(alert.id), 512),
    incidentId,
    kind: alert.kind,
    severity: alert.severity,
    title: clip(scrubAlertString(alert.title), ALERT_LIMITS.title),
    time: time.toISOString(),
    subject: alertSubject(incidentId, safeDetails),
    text: lines,
    details: safeDetails,
  };
}

// ---------------------------------------------------------------------------------------------
// Escaping
// ---------------------------------------------------------------------------------------------

/** One line: newlines and tabs become spaces (each rendering decides its own line breaks). */
export function oneLine(value: string): string {
  return value.replace(/[\r\n\t]+/g, ' ');
}

/**
 * Slack mrkdwn: `&`, `<`, `>` are the control characters (Slack's "Formatting text" reference says to
 * HTML-escape exactly these). Links (`<url|text>`), user/channel mentions (`<@U…>`, `<#C…>`) and
 * broadcasts (`<!channel>`) all need `<`, so none can be injected. Slack has no escape for `*`, `_`,
 * `~` or backticks: a caller-chosen string can at worst change emphasis. The blocks set
 * `verbatim: true` so Slack does not auto-link URLs, channel names or bare `@here`.
 */
export function escapeSlack(value: string): string {
  return value.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
}

/**
 * Adaptive Card TextBlock markdown (bold `**`, italic `_`, links `[text](url)`, lists): every inline
 * markup character is backslash-escaped, and list/heading markers at the start of a line. `\]` also
 * breaks the `](` of a link for a renderer that ignores backslash escapes (some Teams mobile versions
 * did, microsoft/AdaptiveCards#5590): it then shows a stray backslash, never a link. `{{` starts a
 * TextBlock date/time function, so a zero-width space is put between the braces. HTML is not rendered
 * by Adaptive Cards; `<`/`>` are escaped anyway (Teams `<at>` mentions need an entity we never send).
 */
export function escapeTeamsMarkdown(value: string): string {
  return value
    .replace(/[\\*_[\]`~<>]/g, (c) => `\\${c}`)
    .replace(/\{\{/g, '{\u200b{')
    .replace(/^(\s*)([-+#])/, '$1\\$2')
    .replace(/^(\s*\d+)\.(\s)/, '$1\\.$2');
}

const SEVERITY_LABEL: Record<AlertSeverity, string> = {
  critical: 'CRITICAL',
  warning: 'WARNING',
  informational: 'INFO',
};

// ---------------------------------------------------------------------------------------------
// Teams (Adaptive Card in the Workflows message envelope)
// ---------------------------------------------------------------------------------------------

export interface AdaptiveCard {
  type: 'AdaptiveCard';
  $schema: 'http://adaptivecards.io/schemas/adaptive-card.json';
  version: '1.4';
  body: Array<Record<string, unknown>>;
  msteams: { width: 'Full' };
}

/**
 * The body a Teams Workflows webhook ("Post to a channel when a webhook request is received", trigger
 * "When a Teams webhook request is received") expects: a message activity whose `attachments` each hold
 * one Adaptive Card; the template's "Send each adaptive card" loop posts `attachments[*].content`.
 * Sources: learn.microsoft.com/microsoftteams/platform/webhooks-and-connectors/how-to/connectors-using
 * ("Workflows support Adaptive Cards only"), and the same envelope in public senders for that template
 * (argo-cd notifications "Teams Workflows", Kestra TeamsIncomingWebhook). Microsoft's page that shows
 * the exact body was not available to us: UNCONFIRMED beyond those.
 */
export interface TeamsWorkflowMessage {
  type: 'message';
  attachments: Array<{ contentType: 'application/vnd.microsoft.card.adaptive'; content: AdaptiveCard }>;
}

/** Teams refuses messages over 28 KB (connectors-using.md); stay well below with the envelope. */
const TEAMS_MAX_CARD_BYTES = 24 * 1024;

/** Adaptive Card 1.4: the newest version every Teams client (desktop, web, mobile) renders. */
export function renderTeamsCard(payload: AlertPayloadV1): AdaptiveCard {
  const esc = (s: string) => escapeTeamsMarkdown(oneLine(s));
  const color =
    payload.severity === 'critical' ? 'Attention' : payload.severity === 'warning' ? 'Warning' : 'Accent';
  const head: Array<Record<string, unknown>> = [
    {
      type: 'TextBlock',
      text: esc(`${SEVERITY_LABEL[payload.severity]}: ${payload.title}`),
      weight: 'Bolder',
      size: 'Medium',
      color,
      wrap: true,
    },
    {
      type: 'FactSet',
      facts: [
        { title: 'Severity', value: payload.severity },
        { title: 'Kind', value: payload.kind },
        { title: 'Subject', value: esc(payload.subject) },
        { title: 'Time (UTC)', value: payload.time },
        { title: 'Alert id', value: esc(payload.id) },
      ],
    },
  ];
  const lines = payload.text.map((line) => ({
    type: 'TextBlock',
    text: esc(line),
    wrap: true,
    spacing: 'Small',
  }));
  const card = (body: Array<Record<string, unknown>>): AdaptiveCard => ({
    type: 'AdaptiveCard',
    $schema: 'http://adaptivecards.io/schemas/adaptive-card.json',
    version: '1.4',
    body,
    msteams: { width: 'Full' },
  });
  let shown = lines.length;
  let result = card([...head, ...lines]);
  while (shown > 0 && Buffer.byteLength(JSON.stringify(result)) > TEAMS_MAX_CARD_BYTES) {
    shown -= 1;
    const more = {
      type: 'TextBlock',
      text: esc(`… ${lines.length - shown} more lines: see the alert topic or the log`),
      wrap: true,
      isSubtle: true,
    };
    result = card([...head, ...lines.slice(0, shown), more]);
  }
  return result;
}

export function renderTeamsMessage(payload: AlertPayloadV1): TeamsWorkflowMessage {
  return {
    type: 'message',
    attachments: [
      { contentType: 'application/vnd.microsoft.card.adaptive', content: renderTeamsCard(payload) },
    ],
  };
}

// ---------------------------------------------------------------------------------------------
// Slack (incoming webhook)
// ---------------------------------------------------------------------------------------------

export interface SlackMrkdwn {
  type: 'mrkdwn';
  text: string;
  verbatim: true;
}

export interface SlackMessage {
  /** The notification/fallback text (mrkdwn, escaped). */
  text: string;
  blocks: Array<Record<string, unknown>>;
  /** Never let Slack fetch a URL a caller put in a user agent or key name. */
  unfurl_links: false;
  unfurl_media: false;
}

/** Block Kit limits: 3000 characters per section text, 2000 per field, 50 blocks per message. */
const SLACK_SECTION_MAX = 3000;
const SLACK_FIELD_MAX = 2000;
const SLACK_MAX_BLOCKS = 50;

const mrkdwn = (text: string): SlackMrkdwn => ({ type: 'mrkdwn', text, verbatim: true });

/** Splits escaped lines into section texts of at most `max` characters (a longer line is cut). */
function packLines(lines: string[], max: number): string[] {
  const out: string[] = [];
  let current = '';
  for (const raw of lines) {
    const line = clip(raw, max);
    if (current && current.length + 1 + line.length > max) {
      out.push(current);
      current = '';
    }
    current = current ? `${current}\n${line}` : line;
  }
  if (current) out.push(current);
  return out;
}

export function renderSlackMessage(payload: AlertPayloadV1): SlackMessage {
  const esc = (s: string) => escapeSlack(oneLine(s));
  const label = SEVERITY_LABEL[payload.severity];
  const blocks: Array<Record<string, unknown>> = [
    { type: 'section', text: mrkdwn(clip(`*${label}: ${esc(payload.title)}*`, SLACK_SECTION_MAX)) },
    {
      type: 'section',
      fields: [
        mrkdwn(`*Severity*\n${payload.severity}`),
        mrkdwn(`*Kind*\n${payload.kind}`),
        mrkdwn(clip(`*Subject*\n${esc(payload.subject)}`, SLACK_FIELD_MAX)),
        mrkdwn(`*Time (UTC)*\n${payload.time}`),
      ],
    },
  ];
  const sections = packLines(payload.text.map(esc), SLACK_SECTION_MAX);
  const room = SLACK_MAX_BLOCKS - blocks.length - 1;
  for (const text of sections.slice(0, room)) blocks.push({ type: 'section', text: mrkdwn(text) });
  blocks.push({
    type: 'context',
    elements: [mrkdwn(clip(`kvguard alert ${esc(payload.id)}`, SLACK_FIELD_MAX))],
  });
  return {
    text: clip(`${label}: ${esc(payload.title)}`, 3000),
    blocks,
    unfurl_links: false,
    unfurl_media: false,
  };
}

// ---------------------------------------------------------------------------------------------
// Plain text
// ---------------------------------------------------------------------------------------------

/** For logs, consoles and the local run's timeline. Scrubbed; no markup to escape. */
export function renderPlainText(payload: AlertPayloadV1): string {
  return [
    `[${SEVERITY_LABEL[payload.severity]}] ${oneLine(payload.title)}`,
    `alert ${payload.id} (${payload.kind}) at ${payload.time} on ${payload.subject}`,
    ...payload.text.map((line) => `  ${oneLine(line)}`),
  ].join('\n');
}
