/**
 * Configuration: the only module that reads `process.env`. Every setting is read once, validated,
 * and every problem is reported at once (one error that lists them all), before any request is
 * made. `local.settings.sample.json` lists every setting; a test keeps the two in sync.
 */
import * as z from 'zod';

const GUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** A GUID (any case), the form of subscription, tenant, object and app ids. */
export function isGuid(value: unknown): value is string {
  return typeof value === 'string' && GUID.test(value);
}

const list = z
  .string()
  .optional()
  .transform((v) =>
    (v ?? '')
      .split(',')
      .map((s) => s.trim())
      .filter(Boolean),
  );

const httpsUrl = z
  .string()
  .url()
  .refine((v) => v.startsWith('https://'), 'must be an https:// URL');

const optionalHttpsUrl = z
  .string()
  .optional()
  .transform((v) => (v === undefined || v.trim() === '' ? undefined : v.trim()))
  .pipe(httpsUrl.optional());

const intSetting = (fallback: number, min: number, max: number) =>
  z
    .string()
    .optional()
    .transform((v) => (v === undefined || v.trim() === '' ? fallback : Number(v)))
    .pipe(z.number({ error: 'must be a whole number' }).int().min(min).max(max));

const boolSetting = (fallback: boolean) =>
  z
    .string()
    .optional()
    .transform((v, ctx) => {
      if (v === undefined || v.trim() === '') return fallback;
      if (/^(true|1|yes)$/i.test(v)) return true;
      if (/^(false|0|no)$/i.test(v)) return false;
      ctx.addIssue({ code: 'custom', message: 'must be true or false' });
      return z.NEVER;
    });

/** `westeurope=ehns-kvguard-weu/kvguard-audit,northeurope=...`: one Event Hub per region. */
const eventHubs = z
  .string()
  .optional()
  .transform((v, ctx) => {
    const hubs: Array<{ region: string; namespace: string; hub: string }> = [];
    for (const item of (v ?? '')
      .split(',')
      .map((s) => s.trim())
      .filter(Boolean)) {
      const m =
        /^([a-z0-9]+)=([a-zA-Z][a-zA-Z0-9-]{4,48}[a-zA-Z0-9])\/([a-zA-Z0-9][a-zA-Z0-9._-]{0,255})$/.exec(
          item,
        );
      if (!m) {
        ctx.addIssue({ code: 'custom', message: `"${item}" is not region=namespace/hub` });
        continue;
      }
      hubs.push({ region: m[1]!, namespace: m[2]!, hub: m[3]! });
    }
    return hubs;
  });

/** The sweep's default schedule: every 30 seconds (NCRONTAB, six fields: seconds first). */
export const DEFAULT_SWEEP_SCHEDULE = '*/30 * * * * *';

/** An NCRONTAB expression of six fields (`{second} {minute} {hour} {day} {month} {day-of-week}`). */
const sweepSchedule = z
  .string()
  .optional()
  .transform((v) => (v === undefined || v.trim() === '' ? DEFAULT_SWEEP_SCHEDULE : v.trim()))
  .pipe(
    z
      .string()
      .regex(
        /^[0-9A-Za-z*/,-]+( [0-9A-Za-z*/,-]+){5}$/,
        'an NCRONTAB expression of six fields, seconds first (e.g. */30 * * * * *)',
      ),
  );

/** reconcilePosture's timer: hourly, on the hour (NCRONTAB, seconds first). */
export const DEFAULT_POSTURE_SCHEDULE = '0 0 * * * *';

const postureSchedule = z
  .string()
  .optional()
  .transform((v) => (v === undefined || v.trim() === '' ? DEFAULT_POSTURE_SCHEDULE : v.trim()))
  .pipe(
    z
      .string()
      .regex(
        /^[0-9A-Za-z*/,-]+( [0-9A-Za-z*/,-]+){5}$/,
        'an NCRONTAB expression of six fields, seconds first (e.g. 0 0 * * * *)',
      ),
  );

const optionalText = z
  .string()
  .optional()
  .transform((v) => (v === undefined || v.trim() === '' ? undefined : v));

/** Every app setting kvguard reads (Azure platform settings such as AZURE_CLIENT_ID included). */
export const SETTINGS = {
  AZURE_CLIENT_ID: z.string().regex(GUID, 'must be a GUID (the user-assigned identity client id)').optional(),
  AZURE_TENANT_ID: z.string().regex(GUID, 'must be a GUID (the tenant of the vaults)'),
  KVGUARD_MODE: z.enum(['enforce', 'observe']).default('enforce'),
  /** Empty or unset: every subscription the identity can see (lib/inventory.ts discovers them). */
  KVGUARD_SUBSCRIPTIONS: list.pipe(z.array(z.string().regex(GUID, 'each subscription must be a GUID'))),
  KVGUARD_EXCLUDED_VAULTS: list,
  KVGUARD_ALLOWED_PRINCIPALS: list.pipe(
    z.array(z.string().regex(GUID, 'each allowed principal must be an object id or app id (GUID)')),
  ),
  KVGUARD_TABLE_ENDPOINT: httpsUrl,
  KVGUARD_BLOB_ENDPOINT: httpsUrl,
  KVGUARD_LEDGER_TABLE: z
    .string()
    .regex(/^[A-Za-z][A-Za-z0-9]{2,62}$/, 'a table name: 3-63 letters and digits')
    .default('kvguardledger'),
  KVGUARD_POISON_CONTAINER: z
    .string()
    .regex(/^[a-z0-9](?!.*--)[a-z0-9-]{1,61}[a-z0-9]$/, 'a container name')
    .default('kvguard-poison'),
  KVGUARD_SIGNALS_TOPIC_ENDPOINT: httpsUrl,
  KVGUARD_ALERTS_TOPIC_ENDPOINT: optionalHttpsUrl,
  KVGUARD_TEAMS_WEBHOOK_URL: optionalHttpsUrl,
  KVGUARD_SLACK_WEBHOOK_URL: optionalHttpsUrl,
  KVGUARD_WEBHOOK_URL: optionalHttpsUrl,
  KVGUARD_WEBHOOK_SECRET: z.string().min(32, 'at least 32 characters').optional(),
  KVGUARD_WORKSPACE_ID: z.string().regex(GUID, 'the workspace (customer) id GUID').optional(),
  KVGUARD_WORKSPACE_RESOURCE_ID: z
    .string()
    .regex(
      /^\/subscriptions\/[^/]+\/resourcegroups\/[^/]+\/providers\/microsoft\.operationalinsights\/workspaces\/[^/]+$/i,
      'a Log Analytics workspace resource id',
    )
    .optional(),
  KVGUARD_GRAPH_ENABLED: boolSetting(false),
  KVGUARD_REPLAY_ROLE: z.string().min(1).optional(),
  KVGUARD_REPLAY_MAX_INPUTS: intSetting(100, 1, 1000),
  KVGUARD_EVENTHUBS: eventHubs,
  KVGUARD_RECOVERY_POLL_MS: intSetting(20, 5, 2000),
  KVGUARD_INVOCATION_BUDGET_MS: intSetting(25000, 1000, 25000),
  KVGUARD_RETRY_BASE_DELAY_MS: intSetting(1000, 1, 60000),
  KVGUARD_LOG_LEVEL: z.enum(['trace', 'debug', 'info', 'warn', 'error']).default('info'),
  KVGUARD_SWEEP_SCHEDULE: sweepSchedule,
  KVGUARD_SWEEP_LOOKBACK_MINUTES: intSetting(60, 1, 7 * 24 * 60),
  KVGUARD_SWEEP_CONCURRENCY: intSetting(8, 1, 64),
  KVGUARD_INVENTORY_REFRESH_SECONDS: intSetting(300, 30, 86_400),
  KVGUARD_POSTURE: optionalText,
  KVGUARD_POSTURE_FILE: optionalText,
  KVGUARD_POSTURE_SCHEDULE: postureSchedule,
  KVGUARD_POSTURE_CONCURRENCY: intSetting(4, 1, 32),
} as const;

export type SettingName = keyof typeof SETTINGS;
export const SETTING_NAMES = Object.keys(SETTINGS) as SettingName[];

const schema = z.object(SETTINGS).superRefine((c, ctx) => {
  if (c.KVGUARD_WEBHOOK_URL && !c.KVGUARD_WEBHOOK_SECRET) {
    ctx.addIssue({
      code: 'custom',
      path: ['KVGUARD_WEBHOOK_SECRET'],
      message: 'required when KVGUARD_WEBHOOK_URL is set',
    });
  }
  if (c.KVGUARD_POSTURE && c.KVGUARD_POSTURE_FILE) {
    ctx.addIssue({
      code: 'custom',
      path: ['KVGUARD_POSTURE_FILE'],
      message: 'set either KVGUARD_POSTURE or KVGUARD_POSTURE_FILE, not both',
    });
  }
});

export type RawConfig = z.output<typeof schema>;

export interface Config {
  mode: 'enforce' | 'observe';
  managedIdentityClientId?: string;
  tenantId: string;
  /** KVGUARD_SUBSCRIPTIONS; empty: every subscription the identity can see, discovered at each refresh. */
  subscriptions: string[];
  excludedVaults: string[];
  allowedPrincipals: string[];
  storage: { tableEndpoint: string; blobEndpoint: string; ledgerTable: string; poisonContainer: string };
  topics: { signals: string; alerts?: string };
  sinks: { teams?: string; slack?: string; webhook?: { url: string; secret: string } };
  workspace: { id?: string; resourceId?: string };
  graphEnabled: boolean;
  replay: { role?: string; maxInputs: number };
  eventHubs: Array<{ region: string; namespace: string; hub: string }>;
  recoveryPollMs: number;
  invocationBudgetMs: number;
  retryBaseDelayMs: number;
  logLevel: 'trace' | 'debug' | 'info' | 'warn' | 'error';
  /** sweepDeletedKeys (lib/sweep.ts). */
  sweep: {
    schedule: string;
    /** Deletions older than this are reported once, not recovered. */
    lookbackMinutes: number;
    /** Vault listings and incidents in flight at once. */
    concurrency: number;
    /** The sweep refreshes the inventory when it is older than this. */
    inventoryRefreshSeconds: number;
  };
  /** reconcilePosture (lib/posture/): the desired state is validated when the function runs. */
  posture: {
    /** The desired-state JSON (KVGUARD_POSTURE) or the path of a file holding it. */
    document?: string;
    file?: string;
    schedule: string;
    /** Subscriptions, and resources within one item, worked on at once. */
    concurrency: number;
  };
}

export class ConfigError extends Error {
  constructor(readonly problems: string[]) {
    super(`kvguard configuration is invalid:\n- ${problems.join('\n- ')}`);
    this.name = 'ConfigError';
  }
}

/** Reads and validates every setting; throws one ConfigError listing every problem. */
export function loadConfig(env: Record<string, string | undefined> = process.env): Config {
  const input = Object.fromEntries(SETTING_NAMES.map((name) => [name, env[name]]));
  const parsed = schema.safeParse(input);
  if (!parsed.success) {
    throw new ConfigError(parsed.error.issues.map((i) => `${i.path.join('.') || 'settings'}: ${i.message}`));
  }
  const c = parsed.data;
  return {
    mode: c.KVGUARD_MODE,
    managedIdentityClientId: c.AZURE_CLIENT_ID,
    tenantId: c.AZURE_TENANT_ID.toLowerCase(),
    subscriptions: [...new Set(c.KVGUARD_SUBSCRIPTIONS.map((s) => s.toLowerCase()))],
    excludedVaults: c.KVGUARD_EXCLUDED_VAULTS.map((v) => v.toLowerCase()),
    allowedPrincipals: c.KVGUARD_ALLOWED_PRINCIPALS.map((p) => p.toLowerCase()),
    storage: {
      tableEndpoint: c.KVGUARD_TABLE_ENDPOINT,
      blobEndpoint: c.KVGUARD_BLOB_ENDPOINT,
      ledgerTable: c.KVGUARD_LEDGER_TABLE,
      poisonContainer: c.KVGUARD_POISON_CONTAINER,
    },
    topics: { signals: c.KVGUARD_SIGNALS_TOPIC_ENDPOINT, alerts: c.KVGUARD_ALERTS_TOPIC_ENDPOINT },
    sinks: {
      teams: c.KVGUARD_TEAMS_WEBHOOK_URL,
      slack: c.KVGUARD_SLACK_WEBHOOK_URL,
      webhook:
        c.KVGUARD_WEBHOOK_URL && c.KVGUARD_WEBHOOK_SECRET
          ? { url: c.KVGUARD_WEBHOOK_URL, secret: c.KVGUARD_WEBHOOK_SECRET }
          : undefined,
    },
    workspace: { id: c.KVGUARD_WORKSPACE_ID, resourceId: c.KVGUARD_WORKSPACE_RESOURCE_ID },
    graphEnabled: c.KVGUARD_GRAPH_ENABLED,
    replay: { role: c.KVGUARD_REPLAY_ROLE, maxInputs: c.KVGUARD_REPLAY_MAX_INPUTS },
    eventHubs: c.KVGUARD_EVENTHUBS,
    recoveryPollMs: c.KVGUARD_RECOVERY_POLL_MS,
    invocationBudgetMs: c.KVGUARD_INVOCATION_BUDGET_MS,
    retryBaseDelayMs: c.KVGUARD_RETRY_BASE_DELAY_MS,
    logLevel: c.KVGUARD_LOG_LEVEL,
    sweep: {
      schedule: c.KVGUARD_SWEEP_SCHEDULE,
      lookbackMinutes: c.KVGUARD_SWEEP_LOOKBACK_MINUTES,
      concurrency: c.KVGUARD_SWEEP_CONCURRENCY,
      inventoryRefreshSeconds: c.KVGUARD_INVENTORY_REFRESH_SECONDS,
    },
    posture: {
      document: c.KVGUARD_POSTURE,
      file: c.KVGUARD_POSTURE_FILE,
      schedule: c.KVGUARD_POSTURE_SCHEDULE,
      concurrency: c.KVGUARD_POSTURE_CONCURRENCY,
    },
  };
}

/**
 * The regional Event Hubs alone: read when the functions register (one auditLogForwarder per hub),
 * before any invocation loads the whole configuration.
 */
export function eventHubsFromSettings(
  env: Record<string, string | undefined> = process.env,
): Config['eventHubs'] {
  const parsed = SETTINGS.KVGUARD_EVENTHUBS.safeParse(env.KVGUARD_EVENTHUBS);
  if (!parsed.success)
    throw new ConfigError(parsed.error.issues.map((i) => `KVGUARD_EVENTHUBS: ${i.message}`));
  return parsed.data;
}

/** The app setting prefix of a regional hub's identity-based connection (`<prefix>__fullyQualifiedNamespace`). */
export function eventHubConnectionName(region: string): string {
  return `KVGUARD_EVENTHUB_${region.toUpperCase()}`;
}

/**
 * The sweep timer's `schedule`, read when the functions register: the app-setting reference
 * `%KVGUARD_SWEEP_SCHEDULE%` when the setting is present (the Functions host resolves it, and it is
 * validated here first so a bad value fails with kvguard's message), else the default. The host
 * refuses to index a timer whose `%NAME%` does not resolve, so a missing setting must not reach it.
 */
export function sweepScheduleFromSettings(env: Record<string, string | undefined> = process.env): string {
  const raw = env.KVGUARD_SWEEP_SCHEDULE;
  const parsed = SETTINGS.KVGUARD_SWEEP_SCHEDULE.safeParse(raw);
  if (!parsed.success)
    throw new ConfigError(parsed.error.issues.map((i) => `KVGUARD_SWEEP_SCHEDULE: ${i.message}`));
  return raw !== undefined && raw.trim() !== '' ? '%KVGUARD_SWEEP_SCHEDULE%' : DEFAULT_SWEEP_SCHEDULE;
}

/**
 * reconcilePosture's timer `schedule`, read when the functions register (as the sweep's): the
 * app-setting reference `%KVGUARD_POSTURE_SCHEDULE%` when the setting is present (validated here
 * first), else the default.
 */
export function postureScheduleFromSettings(env: Record<string, string | undefined> = process.env): string {
  const raw = env.KVGUARD_POSTURE_SCHEDULE;
  const parsed = SETTINGS.KVGUARD_POSTURE_SCHEDULE.safeParse(raw);
  if (!parsed.success)
    throw new ConfigError(parsed.error.issues.map((i) => `KVGUARD_POSTURE_SCHEDULE: ${i.message}`));
  return raw !== undefined && raw.trim() !== '' ? '%KVGUARD_POSTURE_SCHEDULE%' : DEFAULT_POSTURE_SCHEDULE;
}
