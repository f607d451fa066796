/**
 * The desired posture (design §3) as data: a JSON document in the app setting `KVGUARD_POSTURE` or
 * in the file `KVGUARD_POSTURE_FILE` names. Validated here, every problem listed at once; an invalid
 * document fails the reconciliation run (an operational alert), never the rest of kvguard.
 *
 * ```json
 * {
 *   "mode": "report",
 *   "defaults": {
 *     "defenderPlans": { "KeyVaults": { "tier": "Standard", "subPlan": "PerKeyVault" },
 *                        "VirtualMachines": { "tier": "Standard", "subPlan": "P2" } },
 *     "jit": { "selector": { "tag": { "name": "kvguard-jit", "value": "on" } },
 *              "ports": [ { "number": 22, "protocol": "TCP", "allowedSourceAddressPrefixes": ["10.0.0.0/8"],
 *                           "maxRequestAccessDuration": "PT3H" } ] },
 *     "diagnostics": { "workspaceResourceId": "/subscriptions/…/workspaces/log-kvguard",
 *                      "eventHubs": { "westeurope": { "authorizationRuleId": "/subscriptions/…/authorizationRules/send",
 *                                                     "name": "kvguard-audit" } } },
 *     "purgeProtection": true,
 *     "policy": { "effect": "Audit" },
 *     "flowLogs": { "storageAccountPerRegion": { "westeurope": "/subscriptions/…/storageAccounts/stflowweu" },
 *                   "retentionDays": 30 },
 *     "autoProvisioning": "Off",
 *     "defenderAlerts": true
 *   },
 *   "subscriptions": { "<subscription id>": { "jit": null, "policy": { "effect": "Deny" } } }
 * }
 * ```
 * An item absent from `defaults` is not reconciled; a subscription's override replaces the default
 * item (for `defenderPlans`, plan by plan), and `null` turns an item off for that subscription.
 */
import * as z from 'zod';

/** "Key vaults should have deletion protection enabled" (Azure/azure-policy, `built-in-policies/
 * policyDefinitions/Key Vault/Recoverable_Audit.json`: effect Audit (default), Deny or Disabled). */
export const DELETION_PROTECTION_POLICY_ID =
  '/providers/Microsoft.Authorization/policyDefinitions/0b60c0b2-2dc2-4e1c-b5c9-abbed971de53';
export const DELETION_PROTECTION_POLICY_NAME = 'Key vaults should have deletion protection enabled';

const GUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const REGION = /^[a-z0-9]+$/;

/** ISO-8601 duration in minutes (PnDTnHnMnS), or undefined when it is not one. */
export function isoDurationMinutes(value: string): number | undefined {
  const m = /^P(?:(\d+)D)?(?:T(?:(\d+)H)?(?:(\d+)M)?(?:(\d+)S)?)?$/.exec(value);
  if (!m || value === 'P' || value.endsWith('T')) return undefined;
  return Number(m[1] ?? 0) * 1440 + Number(m[2] ?? 0) * 60 + Number(m[3] ?? 0) + Number(m[4] ?? 0) / 60;
}

const armId = (what: string, pattern: RegExp) =>
  z.string().regex(pattern, `must be the resource id of ${what}`);

const workspaceId = armId(
  'a Log Analytics workspace',
  /^\/subscriptions\/[^/]+\/resourceGroups\/[^/]+\/providers\/Microsoft\.OperationalInsights\/workspaces\/[^/]+$/i,
);
const eventHubRuleId = armId(
  'an Event Hubs namespace authorization rule',
  /^\/subscriptions\/[^/]+\/resourceGroups\/[^/]+\/providers\/Microsoft\.EventHub\/namespaces\/[^/]+\/authorizationRules\/[^/]+$/i,
);
const storageId = armId(
  'a storage account',
  /^\/subscriptions\/[^/]+\/resourceGroups\/[^/]+\/providers\/Microsoft\.Storage\/storageAccounts\/[^/]+$/i,
);
const region = z.string().regex(REGION, 'a region name in lower case without spaces (e.g. westeurope)');

const plan = z
  .object({ tier: z.enum(['Free', 'Standard']), subPlan: z.string().min(1).optional() })
  .strict()
  .refine((p) => p.tier === 'Standard' || p.subPlan === undefined, {
    message: 'the Free tier has no sub-plan',
    path: ['subPlan'],
  });

const port = z
  .object({
    number: z.number().int().min(1).max(65535),
    protocol: z.enum(['TCP', 'UDP', '*']).default('*'),
    allowedSourceAddressPrefixes: z.array(z.string().min(1)).min(1),
    maxRequestAccessDuration: z.string().refine((d) => {
      const minutes = isoDurationMinutes(d);
      return minutes !== undefined && minutes >= 5 && minutes <= 1440;
    }, 'an ISO-8601 duration between PT5M and P1D'),
  })
  .strict();

const selector = z.union([
  z.object({ all: z.literal(true) }).strict(),
  z.object({ tag: z.object({ name: z.string().min(1), value: z.string().optional() }).strict() }).strict(),
  z.object({ resourceGroups: z.array(z.string().min(1)).min(1) }).strict(),
]);

const jit = z
  .object({ selector, ports: z.array(port).min(1) })
  .strict()
  .refine((j) => new Set(j.ports.map((p) => p.number)).size === j.ports.length, {
    message: 'each port number appears once',
    path: ['ports'],
  });

const diagnostics = z
  .object({
    workspaceResourceId: workspaceId.optional(),
    eventHubs: z
      .record(region, z.object({ authorizationRuleId: eventHubRuleId, name: z.string().min(1) }).strict())
      .default({}),
  })
  .strict();

const policy = z
  .object({
    /** Default: the subscription (`/subscriptions/<id>`). */
    scope: z
      .string()
      .regex(
        /^\/(subscriptions\/[^/]+(\/resourceGroups\/[^/]+)?|providers\/Microsoft\.Management\/managementGroups\/[^/]+)$/i,
        'a subscription, resource group or management group scope',
      )
      .optional(),
    effect: z.enum(['Audit', 'Deny', 'Disabled']).default('Audit'),
  })
  .strict();

const flowLogs = z
  .object({
    storageAccountPerRegion: z.record(region, storageId),
    retentionDays: z.number().int().min(0).max(365).default(0),
  })
  .strict();

/** The items; in an override each may be `null` (not reconciled for that subscription). */
const items = {
  defenderPlans: z.record(z.string().regex(/^[A-Za-z]+$/, 'a plan name'), plan),
  jit,
  diagnostics,
  purgeProtection: z.literal(true),
  policy,
  flowLogs,
  autoProvisioning: z.literal('Off'),
  defenderAlerts: z.literal(true),
};

const defaults = z
  .object({
    defenderPlans: items.defenderPlans.optional(),
    jit: items.jit.optional(),
    diagnostics: items.diagnostics.optional(),
    purgeProtection: items.purgeProtection.optional(),
    policy: items.policy.optional(),
    flowLogs: items.flowLogs.optional(),
    autoProvisioning: items.autoProvisioning.optional(),
    defenderAlerts: items.defenderAlerts.optional(),
  })
  .strict();

const override = z
  .object({
    defenderPlans: items.defenderPlans.nullable().optional(),
    jit: items.jit.nullable().optional(),
    diagnostics: items.diagnostics.nullable().optional(),
    purgeProtection: items.purgeProtection.nullable().optional(),
    policy: items.policy.nullable().optional(),
    flowLogs: items.flowLogs.nullable().optional(),
    autoProvisioning: items.autoProvisioning.nullable().optional(),
    defenderAlerts: items.defenderAlerts.nullable().optional(),
  })
  .strict();

export const desiredStateSchema = z
  .object({
    mode: z.enum(['report', 'enforce']).default('report'),
    defaults: defaults.default({}),
    subscriptions: z.record(z.string().regex(GUID, 'a subscription id (GUID)'), override).default({}),
  })
  .strict();

export type DesiredState = z.output<typeof desiredStateSchema>;
export type PostureSettings = z.output<typeof defaults>;
export type JitSettings = z.output<typeof jit>;
export type JitPortSettings = z.output<typeof port>;
export type DiagnosticsSettings = z.output<typeof diagnostics>;
export type FlowLogSettings = z.output<typeof flowLogs>;
export type PolicySettings = z.output<typeof policy>;

export type DesiredResult = { ok: true; desired: DesiredState } | { ok: false; problems: string[] };

/**
 * Validates a parsed document; `subscriptions` are those in scope (an override for any other is an
 * error: it would silently do nothing). Every problem at once, as `path: message`.
 */
export function validateDesiredState(value: unknown, subscriptions: string[]): DesiredResult {
  const parsed = desiredStateSchema.safeParse(value);
  if (!parsed.success) {
    return {
      ok: false,
      problems: parsed.error.issues.map((i) => `${i.path.map(String).join('.') || 'document'}: ${i.message}`),
    };
  }
  const inScope = new Set(subscriptions.map((s) => s.toLowerCase()));
  const problems = Object.keys(parsed.data.subscriptions)
    .filter((s) => !inScope.has(s.toLowerCase()))
    .map(
      (s) =>
        `subscriptions.${s}: not one of the subscriptions in scope (KVGUARD_SUBSCRIPTIONS, or those kvguard's identity can see)`,
    );
  return problems.length > 0 ? { ok: false, problems } : { ok: true, desired: parsed.data };
}

/** Parses and validates the document from the setting's JSON text or the file's content. */
export function parseDesiredState(
  source: { document?: string; file?: string },
  subscriptions: string[],
  readFile: (path: string) => string,
): DesiredResult {
  let text: string;
  let origin: string;
  if (source.document !== undefined) {
    text = source.document;
    origin = 'KVGUARD_POSTURE';
  } else if (source.file !== undefined) {
    origin = `KVGUARD_POSTURE_FILE (${source.file})`;
    try {
      text = readFile(source.file);
    } catch (error) {
      return { ok: false, problems: [`${origin}: cannot be read: ${(error as Error).message}`] };
    }
  } else {
    return { ok: false, problems: ['no desired posture: set KVGUARD_POSTURE or KVGUARD_POSTURE_FILE'] };
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (error) {
    return { ok: false, problems: [`${origin}: not JSON: ${(error as Error).message}`] };
  }
  return validateDesiredState(json, subscriptions);
}

/** What applies to one subscription: the defaults with its override laid over them. */
export function settingsFor(desired: DesiredState, subscriptionId: string): PostureSettings {
  const key = Object.keys(desired.subscriptions).find(
    (s) => s.toLowerCase() === subscriptionId.toLowerCase(),
  );
  const o = key ? desired.subscriptions[key] : undefined;
  const d = desired.defaults;
  if (!o) return d;
  const pick = <K extends keyof PostureSettings>(k: K): PostureSettings[K] =>
    o[k] === null ? undefined : o[k] === undefined ? d[k] : (o[k] as PostureSettings[K]);
  return {
    defenderPlans:
      o.defenderPlans === null
        ? undefined
        : o.defenderPlans === undefined
          ? d.defenderPlans
          : { ...(d.defenderPlans ?? {}), ...o.defenderPlans },
    jit: pick('jit'),
    diagnostics: pick('diagnostics'),
    purgeProtection: pick('purgeProtection'),
    policy: pick('policy'),
    flowLogs: pick('flowLogs'),
    autoProvisioning: pick('autoProvisioning'),
    defenderAlerts: pick('defenderAlerts'),
  };
}
