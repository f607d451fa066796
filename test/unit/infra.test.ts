/**
 * The ARM templates in infra/, checked without Azure (no Bicep compiler or what-if runs here):
 * structure and expressions (every parameters(), variables(), copyIndex() and resourceId()/
 * reference() target exists), the app settings a deployment writes (computed from the template and
 * held against lib/config.ts and local.settings.sample.json), Flex Consumption's rules, the roles
 * against infra/roles.json, and the wiring of signals, alerts and vaults against the code that
 * receives them.
 */
import { readFileSync, readdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { SETTING_NAMES, eventHubConnectionName, eventHubsFromSettings, loadConfig } from '../../lib/config';
import { KEY_DELETION_ALERT_QUERY } from '../../lib/adapters/loganalytics';
import {
  KEY_DELETED_V1,
  KEY_DELETE_ALIAS,
  KEY_DELETE_DENIED_V1,
  KEY_PURGED_V1,
} from '../../lib/core/signal-data';
import { normalise } from '../../lib/core/normalise';
import {
  ARM_FUNCTIONS,
  asObject,
  calls,
  evaluateValue,
  resourceTypeOf,
  scopesOf,
  type Json,
  type JsonObject,
  text,
  type TemplateScope,
} from './arm-template';

const ROOT = resolve(__dirname, '../..');
const INFRA = join(ROOT, 'infra');
const TEMPLATE_FILES = ['main.json', 'subscription.json', 'eventgrid-subscriptions.json', 'vault.json'];
const RG_SCHEMA = 'https://schema.management.azure.com/schemas/2019-04-01/deploymentTemplate.json#';
const SUB_SCHEMA =
  'https://schema.management.azure.com/schemas/2018-05-01/subscriptionDeploymentTemplate.json#';

/**
 * App settings main.json writes that are not kvguard settings: identity-based host storage and
 * Application Insights with Entra ID auth. Nothing else (Flex Consumption rejects the classic
 * FUNCTIONS_WORKER_RUNTIME / WEBSITE_* settings: the runtime is functionAppConfig.runtime).
 */
const PLATFORM_SETTINGS = [
  'AzureWebJobsStorage__accountName',
  'AzureWebJobsStorage__credential',
  'AzureWebJobsStorage__clientId',
  'APPLICATIONINSIGHTS_CONNECTION_STRING',
  'APPLICATIONINSIGHTS_AUTHENTICATION_STRING',
];

/** local.settings.sample.json entries that only `func start` on a developer machine needs. */
const LOCAL_ONLY_SETTINGS = ['FUNCTIONS_WORKER_RUNTIME', 'AzureWebJobsStorage'];

/** Settings and site properties Flex Consumption rejects or ignores (functions-app-settings.md, "Flex Consumption plan deprecations"). */
const FLEX_FORBIDDEN = [
  'FUNCTIONS_WORKER_RUNTIME',
  'FUNCTIONS_WORKER_RUNTIME_VERSION',
  'FUNCTIONS_EXTENSION_VERSION',
  'WEBSITE_NODE_DEFAULT_VERSION',
  'WEBSITE_RUN_FROM_PACKAGE',
  'WEBSITE_CONTENTAZUREFILECONNECTIONSTRING',
  'WEBSITE_CONTENTSHARE',
  'WEBSITE_CONTENTOVERVNET',
  'WEBSITE_MAX_DYNAMIC_APPLICATION_SCALE_OUT',
  'SCM_DO_BUILD_DURING_DEPLOYMENT',
  'ENABLE_ORYX_BUILD',
  'WEBSITE_TIME_ZONE',
  'TZ',
  'linuxFxVersion',
];

const OWNER = '8e3af657-a8ff-443c-a75c-2fe8c4bcb635';
const CONTRIBUTOR = 'b24988ac-6180-42a0-ab88-20f7382dd24c';

const read = (file: string): string => readFileSync(join(INFRA, file), 'utf8');
const templates: Record<string, JsonObject> = Object.fromEntries(
  TEMPLATE_FILES.map((f) => [f, JSON.parse(read(f)) as JsonObject]),
);
const scopes: TemplateScope[] = TEMPLATE_FILES.flatMap((f) => scopesOf(f, templates[f]!));

interface RoleAction {
  action: string;
  why: string;
  source: string;
}
interface CustomRole {
  key: string;
  template: string;
  actions: RoleAction[];
  dataActions: RoleAction[];
}
interface RolesFile {
  customRoles: CustomRole[];
  builtInRoles: Array<{ name: string; id: string; template: string; why: string }>;
  forbiddenRoleIds: Record<string, string>;
}
const roles = JSON.parse(read('roles.json')) as RolesFile;

/** Every object in a JSON value, depth first. */
function objectsIn(value: Json, out: JsonObject[] = []): JsonObject[] {
  if (Array.isArray(value)) for (const v of value) objectsIn(v, out);
  else if (value !== null && typeof value === 'object') {
    out.push(value);
    for (const v of Object.values(value)) objectsIn(v, out);
  }
  return out;
}

/** Resources of every scope of one template file, nested deployments' templates included. */
function resourcesOf(file: string, type?: string): JsonObject[] {
  return scopes
    .filter((s) => s.label === file || s.label.startsWith(`${file} >`))
    .flatMap((s) => s.resources)
    .filter((r) => type === undefined || r.type === type);
}

function scope(label: string): TemplateScope {
  const s = scopes.find((x) => x.label === label);
  if (!s) throw new Error(`no scope ${label} (have ${scopes.map((x) => x.label).join(', ')})`);
  return s;
}

const literalArg = (call: { args: Array<{ kind: string; value?: unknown }> }, i = 0): string | undefined => {
  const a = call.args[i];
  return a?.kind === 'string' && typeof a.value === 'string' ? a.value : undefined;
};

describe('infra/: every template', () => {
  it('is exactly the four documented templates and roles.json', () => {
    expect(readdirSync(INFRA).sort()).toEqual([...TEMPLATE_FILES, 'roles.json'].sort());
  });

  it.each(TEMPLATE_FILES)('%s is JSON with the $schema of its scope and a contentVersion', (file) => {
    const t = templates[file]!;
    expect(t.$schema).toBe(file === 'subscription.json' ? SUB_SCHEMA : RG_SCHEMA);
    expect(t.contentVersion).toBe('1.0.0.0');
    expect(Array.isArray(t.resources)).toBe(true);
  });

  it.each(TEMPLATE_FILES)('%s: every parameter says what it is for', (file) => {
    for (const [name, p] of Object.entries(asObject(templates[file]!.parameters, 'parameters'))) {
      const description = asObject(asObject(p, name).metadata ?? {}, `${name}.metadata`).description;
      expect({ name, description: typeof description === 'string' && description.length > 10 }).toEqual({
        name,
        description: true,
      });
    }
  });

  it.each(scopes.map((s) => [s.label, s] as const))(
    '%s: every expression parses and calls only ARM template functions',
    (_label, s) => {
      expect(s.expressions.length).toBeGreaterThan(0);
      const unknown = s.expressions.flatMap(({ path, expr }) =>
        calls(expr)
          .filter((c) => !ARM_FUNCTIONS.has(c.name))
          .map((c) => `${path}: ${c.name}()`),
      );
      expect(unknown).toEqual([]);
    },
  );

  it.each(scopes.map((s) => [s.label, s] as const))(
    '%s: every parameters(), variables(), copyIndex() and lambdaVariables() names something declared, and everything declared is used',
    (_label, s) => {
      const params = Object.keys(asObject(s.template.parameters ?? {}, 'parameters'));
      const variablesSection = asObject(s.template.variables ?? {}, 'variables');
      const variableCopies = Array.isArray(variablesSection.copy)
        ? variablesSection.copy.map((c) => text(asObject(c, 'copy').name))
        : [];
      const variables = [...Object.keys(variablesSection).filter((k) => k !== 'copy'), ...variableCopies];
      const problems: string[] = [];
      const usedParams = new Set<string>();
      const usedVariables = new Set<string>();
      for (const { path, expr } of s.expressions) {
        const all = calls(expr);
        const lambdaNames = all.filter((c) => c.name === 'lambda').map((c) => literalArg(c));
        for (const c of all) {
          const name = literalArg(c);
          if (['parameters', 'variables', 'lambdaVariables'].includes(c.name) && name === undefined)
            problems.push(`${path}: ${c.name}() needs a literal name`);
          if (c.name === 'parameters' && name !== undefined) {
            usedParams.add(name);
            if (!params.includes(name)) problems.push(`${path}: no parameter '${name}'`);
          }
          if (c.name === 'variables' && name !== undefined) {
            usedVariables.add(name);
            if (!variables.includes(name)) problems.push(`${path}: no variable '${name}'`);
          }
          if (c.name === 'copyIndex' && name !== undefined && !s.copyNames.has(name))
            problems.push(`${path}: no copy loop '${name}'`);
          if (c.name === 'lambdaVariables' && name !== undefined && !lambdaNames.includes(name))
            problems.push(`${path}: no lambda declares '${name}'`);
        }
      }
      for (const p of params) if (!usedParams.has(p)) problems.push(`parameter '${p}' is never used`);
      for (const v of variables) if (!usedVariables.has(v)) problems.push(`variable '${v}' is never used`);
      expect(problems).toEqual([]);
    },
  );

  it.each(scopes.map((s) => [s.label, s] as const))(
    '%s: every resourceId()/reference()/list*() target is declared here or documented as external',
    (_label, s) => {
      const declared = new Set(s.resources.map((r) => text(r.type).toLowerCase()));
      const metadata = asObject(s.template.metadata ?? {}, 'metadata');
      const external = new Set(
        Object.keys(asObject(metadata.externalResourceTypes ?? {}, 'externalResourceTypes')).map((t) =>
          t.toLowerCase(),
        ),
      );
      const problems: string[] = [];
      const usedExternal = new Set<string>();
      for (const { path, expr } of s.expressions) {
        for (const c of calls(expr)) {
          if (/^(resourceId|subscriptionResourceId|tenantResourceId|extensionResourceId)$/.test(c.name)) {
            const type = resourceTypeOf(c)?.toLowerCase();
            if (type === undefined) problems.push(`${path}: ${c.name}() without a literal type`);
            else if (!declared.has(type)) {
              if (external.has(type)) usedExternal.add(type);
              else problems.push(`${path}: ${c.name}('${type}') is neither declared nor documented external`);
            }
          }
          if (/^(reference|list\w*)$/.test(c.name)) {
            const target = c.args[0];
            const ok =
              target?.kind === 'call' &&
              /^(resourceId|subscriptionResourceId|extensionResourceId|parameters|variables)$/.test(
                target.name,
              );
            if (!ok) problems.push(`${path}: ${c.name}() of something that is not a resource id`);
          }
        }
      }
      // A child resource (`provider/parent/child`) needs its parent declared here or external.
      for (const type of declared) {
        const parent = type.split('/').slice(0, -1).join('/');
        if (parent.split('/').length < 2) continue;
        if (external.has(parent)) usedExternal.add(parent);
        else if (!declared.has(parent))
          problems.push(`${type}: parent ${parent} is neither declared nor external`);
      }
      for (const t of external) if (!usedExternal.has(t)) problems.push(`external type ${t} is never used`);
      expect(problems).toEqual([]);
    },
  );

  it.each(scopes.map((s) => [s.label, s] as const))(
    '%s: every dependsOn names a resource or copy loop of the same scope',
    (_label, s) => {
      const declaredTypes = new Set(s.resources.map((r) => text(r.type).toLowerCase()));
      const problems: string[] = [];
      for (const r of s.resources) {
        for (const d of (r.dependsOn as Json[] | undefined) ?? []) {
          if (typeof d !== 'string') problems.push(`${text(r.name)}: dependsOn entry is not a string`);
          else if (d.startsWith('[')) {
            const e = s.expressions.find((x) => x.text === d)?.expr;
            const type = e?.kind === 'call' ? resourceTypeOf(e)?.toLowerCase() : undefined;
            if (!(e?.kind === 'call' && /resourceId$/i.test(e.name) && type && declaredTypes.has(type)))
              problems.push(`${text(r.name)}: dependsOn ${d} is not a declared resource`);
            // An extension resource deployed with `scope` has its id under that scope.
            const scoped = s.resources.filter(
              (x) => text(x.type).toLowerCase() === type && x.scope !== undefined,
            );
            if (e?.kind === 'call' && scoped.length > 0 && e.name !== 'extensionResourceId')
              problems.push(
                `${text(r.name)}: dependsOn ${d} names a scoped ${type} without extensionResourceId()`,
              );
          } else if (!s.copyNames.has(d) && !s.resources.some((x) => x.name === d)) {
            problems.push(`${text(r.name)}: dependsOn '${d}' is not a copy loop or resource name`);
          }
        }
      }
      expect(problems).toEqual([]);
    },
  );

  it.each(TEMPLATE_FILES)(
    '%s: nested deployments evaluate in inner scope and get every parameter their template declares',
    (file) => {
      for (const d of resourcesOf(file, 'Microsoft.Resources/deployments')) {
        const props = asObject(d.properties, 'properties');
        expect(asObject(props.expressionEvaluationOptions, 'options').scope).toBe('inner');
        const inner = asObject(props.template, 'template');
        const declared = Object.entries(asObject(inner.parameters ?? {}, 'parameters'))
          .filter(([, p]) => asObject(p, 'p').defaultValue === undefined)
          .map(([n]) => n)
          .sort();
        expect(Object.keys(asObject(props.parameters ?? {}, 'parameters')).sort()).toEqual(declared);
      }
    },
  );

  it.each(TEMPLATE_FILES)('%s: every resource has a type, an apiVersion and a name', (file) => {
    for (const r of resourcesOf(file)) {
      expect(typeof r.type).toBe('string');
      expect(text(r.apiVersion)).toMatch(/^\d{4}-\d{2}-\d{2}(-preview)?$/);
      expect(typeof r.name).toBe('string');
    }
  });
});

// ---------------------------------------------------------------------------------------------

const APP_SETTINGS_SCOPE = 'main.json > kvguard-app-settings';

/** Values for the nested deployment's parameters that the outer template computes with reference(). */
const COMPUTED: Record<string, Json> = {
  functionAppName: 'func-kvguard-abc123',
  storageAccountName: 'stkvguardabcd1234',
  identityClientId: '11111111-2222-4333-8444-555555555555',
  appInsightsConnectionString:
    'InstrumentationKey=00000000-0000-4000-8000-00000000000a;IngestionEndpoint=https://westeurope-5.in.applicationinsights.azure.com/',
  tenantId: '72f988bf-86f1-41af-91ab-2d7cd011db47',
  subscriptionsInScope: ['00000000-0000-4000-8000-000000000001', '00000000-0000-4000-8000-000000000002'],
  signalsTopicEndpoint: 'https://kvguard-signals-abc123.westeurope-1.eventgrid.azure.net/api/events',
  alertsTopicEndpoint: 'https://kvguard-alerts-abc123.westeurope-1.eventgrid.azure.net/api/events',
  workspaceCustomerId: '22222222-3333-4444-8555-666666666666',
  workspaceResourceId:
    '/subscriptions/00000000-0000-4000-8000-000000000001/resourceGroups/rg-kvguard/providers/Microsoft.OperationalInsights/workspaces/log-kvguard-abcd1234',
  regions: ['westeurope', 'northeurope'],
  eventHubNamespaceNames: ['evhns-kvguard-westeurope-abcd1234', 'evhns-kvguard-northeurope-abcd1234'],
  eventHubName: 'kvguard-audit',
};

/**
 * The inner parameters a deployment of main.json passes: the outer default where the outer template
 * passes a parameter through unchanged, else COMPUTED. A new setting with an outer parameter and a
 * literal default needs no change here.
 */
function appSettingsParameters(overrides: Record<string, Json> = {}): Record<string, Json> {
  const main = templates['main.json']!;
  const outerParams = asObject(main.parameters, 'parameters');
  const deployment = resourcesOf('main.json', 'Microsoft.Resources/deployments').find(
    (r) => r.name === 'kvguard-app-settings',
  )!;
  const passed = asObject(asObject(deployment.properties, 'properties').parameters, 'parameters');
  const values: Record<string, Json> = {};
  for (const [name, v] of Object.entries(passed)) {
    if (name in overrides) values[name] = overrides[name]!;
    else if (name in COMPUTED) values[name] = COMPUTED[name]!;
    else {
      const m = /^\[parameters\('(\w+)'\)\]$/.exec(text(asObject(v, name).value));
      const outer = m ? asObject(outerParams[m[1]!], m[1]!).defaultValue : undefined;
      if (outer === undefined || (typeof outer === 'string' && outer.startsWith('[')))
        throw new Error(`no sample value for the app-settings parameter ${name}: add it to COMPUTED`);
      values[name] = outer;
    }
  }
  return values;
}

function appSettings(overrides: Record<string, Json> = {}): Record<string, string> {
  const s = scope(APP_SETTINGS_SCOPE);
  const resource = s.resources.find((r) => r.type === 'Microsoft.Web/sites/config')!;
  const settings = evaluateValue(resource.properties!, {
    parameters: appSettingsParameters(overrides),
    variables: asObject(s.template.variables, 'variables'),
  });
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(asObject(settings, 'settings'))) {
    expect({ setting: k, type: typeof v }).toEqual({ setting: k, type: 'string' });
    out[k] = v as string;
  }
  return out;
}

const EVERYTHING_ON = {
  replayRole: 'Kvguard.Replay',
  teamsWebhookSecretUri: 'https://kv-ops.vault.azure.net/secrets/teams-webhook',
  slackWebhookSecretUri: 'https://kv-ops.vault.azure.net/secrets/slack-webhook',
  webhookUrlSecretUri: 'https://kv-ops.vault.azure.net/secrets/webhook-url',
  webhookSecretSecretUri: 'https://kv-ops.vault.azure.net/secrets/webhook-secret',
  graphEnabled: true,
};

function eventHubSettingNames(regions: string[]): string[] {
  return regions.flatMap((r) =>
    ['fullyQualifiedNamespace', 'credential', 'clientId'].map((p) => `${eventHubConnectionName(r)}__${p}`),
  );
}

describe('main.json: the Function App on Flex Consumption', () => {
  const main = templates['main.json']!;
  const site = resourcesOf('main.json', 'Microsoft.Web/sites')[0]!;
  const siteProps = asObject(site.properties, 'site.properties');

  it('runs on an FC1 plan with Node 22 in functionAppConfig, deployed from a blob container with the user-assigned identity', () => {
    const plan = resourcesOf('main.json', 'Microsoft.Web/serverfarms')[0]!;
    expect(plan.sku).toEqual({ tier: 'FlexConsumption', name: 'FC1' });
    expect(site.kind).toBe('functionapp,linux');
    const config = asObject(siteProps.functionAppConfig, 'functionAppConfig');
    expect(config.runtime).toEqual({ name: 'node', version: '22' });
    const storage = asObject(asObject(config.deployment, 'deployment').storage, 'storage');
    expect(storage.type).toBe('blobContainer');
    expect(asObject(storage.authentication, 'authentication').type).toBe('UserAssignedIdentity');
    expect(Object.keys(asObject(config.scaleAndConcurrency, 'scale')).sort()).toEqual([
      'instanceMemoryMB',
      'maximumInstanceCount',
    ]);
    expect(asObject(site.identity, 'identity').type).toBe('UserAssigned');
    expect(siteProps.httpsOnly).toBe(true);
  });

  it('holds none of the settings and site properties Flex Consumption rejects', () => {
    const names = new Set<string>();
    for (const o of objectsIn(main)) {
      for (const k of Object.keys(o)) names.add(k);
      if (typeof o.name === 'string') names.add(o.name);
    }
    for (const k of Object.keys(appSettings(EVERYTHING_ON))) names.add(k);
    const found = [...names].filter((n) =>
      FLEX_FORBIDDEN.some((f) => n.toLowerCase() === f.toLowerCase() || n.startsWith('WEBSITE_CONTENT')),
    );
    expect(found).toEqual([]);
  });

  it('keeps storage keyless: no shared keys, the host and kvguard reach it with the identity', () => {
    const account = resourcesOf('main.json', 'Microsoft.Storage/storageAccounts')[0]!;
    expect(asObject(account.properties, 'properties')).toMatchObject({
      allowSharedKeyAccess: false,
      allowBlobPublicAccess: false,
      minimumTlsVersion: 'TLS1_2',
    });
    const settings = appSettings();
    expect(settings.AzureWebJobsStorage__credential).toBe('managedidentity');
    expect(settings.AzureWebJobsStorage__clientId).toBe(COMPUTED.identityClientId);
    expect(settings.AzureWebJobsStorage__accountName).toBe(COMPUTED.storageAccountName);
    expect(settings.APPLICATIONINSIGHTS_AUTHENTICATION_STRING).toBe(
      `ClientId=${text(COMPUTED.identityClientId)};Authorization=AAD`,
    );
    expect(settings).not.toHaveProperty('AzureWebJobsStorage');
  });

  it('creates the ledger table and the deployment, poison and dead-letter containers', () => {
    const names = resourcesOf('main.json').map((r) => text(r.name));
    expect(names).toEqual(
      expect.arrayContaining([
        "[format('{0}/default/{1}', variables('storageAccountName'), parameters('ledgerTableName'))]",
        "[format('{0}/default/{1}', variables('storageAccountName'), variables('deploymentContainerName'))]",
        "[format('{0}/default/{1}', variables('storageAccountName'), parameters('poisonContainerName'))]",
        "[format('{0}/default/{1}', variables('storageAccountName'), parameters('deadLetterContainerName'))]",
      ]),
    );
  });

  it('writes exactly the lib/config.ts settings, the explicit platform list and one connection per regional hub', () => {
    const settings = appSettings(EVERYTHING_ON);
    const regions = COMPUTED.regions as string[];
    const keys = Object.keys(settings);
    const hubKeys = eventHubSettingNames(regions);
    expect(keys.filter((k) => (SETTING_NAMES as string[]).includes(k)).sort()).toEqual(
      [...SETTING_NAMES].sort(),
    );
    expect(keys.filter((k) => hubKeys.includes(k)).sort()).toEqual([...hubKeys].sort());
    expect(
      keys.filter((k) => !(SETTING_NAMES as string[]).includes(k) && !hubKeys.includes(k)).sort(),
    ).toEqual([...PLATFORM_SETTINGS].sort());
    // The secrets are Key Vault references, never values in the template.
    for (const name of [
      'KVGUARD_TEAMS_WEBHOOK_URL',
      'KVGUARD_SLACK_WEBHOOK_URL',
      'KVGUARD_WEBHOOK_URL',
      'KVGUARD_WEBHOOK_SECRET',
    ]) {
      expect(settings[name]).toMatch(
        /^@Microsoft\.KeyVault\(SecretUri=https:\/\/kv-ops\.vault\.azure\.net\/secrets\/[a-z-]+\)$/,
      );
    }
  });

  it('leaves out a setting that lib/config.ts would refuse empty (replay role, webhook secret), and the result loads', () => {
    const settings = appSettings();
    expect(settings).not.toHaveProperty('KVGUARD_REPLAY_ROLE');
    expect(settings).not.toHaveProperty('KVGUARD_WEBHOOK_SECRET');
    const config = loadConfig(settings);
    expect(config).toMatchObject({
      mode: 'enforce',
      managedIdentityClientId: COMPUTED.identityClientId,
      subscriptions: COMPUTED.subscriptionsInScope,
      storage: {
        tableEndpoint: `https://${text(COMPUTED.storageAccountName)}.table.core.windows.net/`,
        blobEndpoint: `https://${text(COMPUTED.storageAccountName)}.blob.core.windows.net/`,
        ledgerTable: 'kvguardledger',
        poisonContainer: 'kvguard-poison',
      },
      topics: { signals: COMPUTED.signalsTopicEndpoint, alerts: COMPUTED.alertsTopicEndpoint },
      sinks: {},
      workspace: { id: COMPUTED.workspaceCustomerId, resourceId: COMPUTED.workspaceResourceId },
      graphEnabled: false,
    });
  });

  it('without subscriptionsInScope (its default) leaves KVGUARD_SUBSCRIPTIONS empty: kvguard discovers its subscriptions', () => {
    const outer = asObject(
      asObject(templates['main.json']!.parameters, 'parameters').subscriptionsInScope,
      'p',
    );
    expect(outer.defaultValue).toEqual([]);
    const settings = appSettings({ subscriptionsInScope: [] });
    expect(settings.KVGUARD_SUBSCRIPTIONS).toBe('');
    expect(loadConfig(settings).subscriptions).toEqual([]);
  });

  it('names each regional hub so that auditLogForwarder-<region> finds its identity-based connection', () => {
    const settings = appSettings();
    const hubs = eventHubsFromSettings(settings);
    expect(hubs).toEqual([
      { region: 'westeurope', namespace: 'evhns-kvguard-westeurope-abcd1234', hub: 'kvguard-audit' },
      { region: 'northeurope', namespace: 'evhns-kvguard-northeurope-abcd1234', hub: 'kvguard-audit' },
    ]);
    for (const hub of hubs) {
      const c = eventHubConnectionName(hub.region);
      expect(settings[`${c}__fullyQualifiedNamespace`]).toBe(`${hub.namespace}.servicebus.windows.net`);
      expect(settings[`${c}__credential`]).toBe('managedidentity');
      expect(settings[`${c}__clientId`]).toBe(COMPUTED.identityClientId);
    }
    const none = appSettings({ regions: [], eventHubNamespaceNames: [] });
    expect(none.KVGUARD_EVENTHUBS).toBe('');
    expect(Object.keys(none).filter((k) => k.startsWith('KVGUARD_EVENTHUB_'))).toEqual([]);
  });

  it('gives each region a hub with the consumer group the forwarder reads and a Manage/Send/Listen rule for diagnostic settings', () => {
    const group = resourcesOf('main.json', 'Microsoft.EventHub/namespaces/eventhubs/consumergroups')[0]!;
    expect(group.name).toContain("variables('auditConsumerGroup')");
    expect(asObject(main.variables, 'variables').auditConsumerGroup).toBe('kvguard');
    expect(readFileSync(join(ROOT, 'functions/auditLogForwarder.ts'), 'utf8')).toContain(
      "consumerGroup: 'kvguard'",
    );
    const rule = resourcesOf('main.json', 'Microsoft.EventHub/namespaces/authorizationRules')[0]!;
    expect(asObject(rule.properties, 'rule').rights).toEqual(['Listen', 'Send', 'Manage']);
    for (const type of [
      'Microsoft.EventHub/namespaces',
      'Microsoft.EventHub/namespaces/eventhubs',
      'Microsoft.EventHub/namespaces/eventhubs/consumergroups',
      'Microsoft.EventHub/namespaces/authorizationRules',
    ]) {
      expect(asObject(resourcesOf('main.json', type)[0]!.copy, 'copy').count).toBe(
        "[length(parameters('regions'))]",
      );
    }
  });

  it('publishes to two CloudEvents topics that accept only Entra ID', () => {
    const topics = resourcesOf('main.json', 'Microsoft.EventGrid/topics');
    expect(topics.map((t) => t.name).sort()).toEqual([
      "[parameters('alertsTopicName')]",
      "[parameters('signalsTopicName')]",
    ]);
    for (const t of topics) {
      expect(asObject(t.properties, 'topic')).toMatchObject({
        inputSchema: 'CloudEventSchemaV1_0',
        disableLocalAuth: true,
      });
    }
  });

  it('turns on App Service Authentication only with a replay role, letting unauthenticated requests through', () => {
    const auth = resourcesOf('main.json', 'Microsoft.Web/sites/config').find((r) =>
      text(r.name).includes('authsettingsV2'),
    )!;
    expect(auth.condition).toBe("[not(empty(parameters('replayRole')))]");
    expect(asObject(auth.properties, 'auth').globalValidation).toEqual({
      requireAuthentication: false,
      unauthenticatedClientAction: 'AllowAnonymous',
    });
  });

  it('holds the operational alert rules, each sent to the operations action group', () => {
    const rules = [
      ...resourcesOf('main.json', 'Microsoft.Insights/scheduledQueryRules'),
      ...resourcesOf('main.json', 'Microsoft.Insights/metricAlerts'),
    ];
    expect(rules.map((r) => r.name).sort()).toEqual([
      'kvguard-alerts-publish-failed',
      'kvguard-function-failures',
      'kvguard-operational-alert',
      'kvguard-signals-dead-lettered',
      'kvguard-signals-publish-failed',
      'kvguard-sweep-missed',
    ]);
    for (const r of rules) expect(JSON.stringify(r.properties)).toContain("variables('opsActionGroupName')");
  });
});

describe('local.settings.sample.json and lib/config.ts', () => {
  const sample = JSON.parse(readFileSync(join(ROOT, 'local.settings.sample.json'), 'utf8')) as {
    Values: Record<string, string>;
  };

  it('list the same settings (plus what only a local func start needs)', () => {
    const names = Object.keys(sample.Values);
    expect(names.filter((n) => !LOCAL_ONLY_SETTINGS.includes(n)).sort()).toEqual([...SETTING_NAMES].sort());
    expect(names.filter((n) => LOCAL_ONLY_SETTINGS.includes(n)).sort()).toEqual(
      [...LOCAL_ONLY_SETTINGS].sort(),
    );
  });
});

// ---------------------------------------------------------------------------------------------

/** Every roleDefinitions resource of every template, with its file. */
function roleDefinitions(): Array<{
  file: string;
  key: string;
  actions: string[];
  dataActions: string[];
  resource: JsonObject;
}> {
  return TEMPLATE_FILES.flatMap((file) =>
    resourcesOf(file, 'Microsoft.Authorization/roleDefinitions').map((resource) => {
      const props = asObject(resource.properties, 'properties');
      const key = /(kvguard-[a-z-]+)/.exec(text(props.roleName))?.[1] ?? '';
      const permissions = props.permissions as JsonObject[];
      expect(permissions).toHaveLength(1);
      const p = permissions[0]!;
      expect(p.notActions).toEqual([]);
      expect(p.notDataActions).toEqual([]);
      return {
        file,
        key,
        actions: p.actions as string[],
        dataActions: p.dataActions as string[],
        resource,
      };
    }),
  );
}

/** Built-in role GUIDs the templates assign (literals anywhere in a template, minus custom-role guid() names). */
function builtInRoleIds(file: string): string[] {
  const text = read(file);
  return [...new Set(text.match(/[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}/g) ?? [])];
}

describe('roles: exactly what infra/roles.json lists, each action with its reason', () => {
  const definitions = roleDefinitions();

  it('every custom role in roles.json is defined in its template with exactly its actions and data actions', () => {
    for (const role of roles.customRoles) {
      const found = definitions.filter((d) => d.key === role.key);
      expect({ role: role.key, count: found.length, file: found[0]?.file }).toEqual({
        role: role.key,
        count: 1,
        file: role.template,
      });
      expect([...found[0]!.actions].sort()).toEqual(role.actions.map((a) => a.action).sort());
      expect([...found[0]!.dataActions].sort()).toEqual(role.dataActions.map((a) => a.action).sort());
    }
    expect(definitions.map((d) => d.key).sort()).toEqual(roles.customRoles.map((r) => r.key).sort());
  });

  it('every action is listed with why kvguard needs it and where the action string comes from', () => {
    for (const role of roles.customRoles) {
      for (const a of [...role.actions, ...role.dataActions]) {
        expect(a.action).toMatch(/^Microsoft\.[A-Za-z]+\/[A-Za-z0-9/]+$/);
        expect(a.why.length).toBeGreaterThan(15);
        expect(a.source.length).toBeGreaterThan(5);
      }
    }
  });

  it('grants no wildcard, delete or purge: kvguard never deletes or purges anything', () => {
    const all = roles.customRoles.flatMap((r) => [...r.actions, ...r.dataActions].map((a) => a.action));
    expect(all.filter((a) => a.includes('*') || /\/delete$|purge/i.test(a))).toEqual([]);
  });

  it('every permission an adapter names in its 403 handling is granted by a kvguard role', () => {
    const granted = new Set(
      roles.customRoles.flatMap((r) => [...r.actions, ...r.dataActions].map((a) => a.action.toLowerCase())),
    );
    const dir = join(ROOT, 'lib/adapters');
    const named = readdirSync(dir)
      .filter((f) => f.endsWith('.ts'))
      .flatMap((f) =>
        [
          ...readFileSync(join(dir, f), 'utf8').matchAll(
            /Microsoft\.[A-Za-z]+\/[A-Za-z0-9/]+\/(?:read|write|action)\b/g,
          ),
        ].map((m) => `${f}: ${m[0]}`),
      );
    expect(named.length).toBeGreaterThan(5);
    expect(named.filter((n) => !granted.has(n.split(': ')[1]!.toLowerCase()))).toEqual([]);
  });

  it('names subscription roles per subscription and scopes each role to where it is assigned', () => {
    for (const d of definitions) {
      const props = asObject(d.resource.properties, 'properties');
      if (d.file === 'subscription.json') {
        expect(props.roleName).toBe(`[format('${d.key} ({0})', subscription().subscriptionId)]`);
        expect(props.assignableScopes).toEqual(['[subscription().id]']);
        expect(JSON.stringify(templates['subscription.json']!.variables)).toContain(
          `guid(subscription().id, '${d.key}')`,
        );
      } else {
        expect(props.roleName).toBe(`[format('${d.key} ({0})', resourceGroup().id)]`);
        expect(props.assignableScopes).toEqual(['[resourceGroup().id]']);
      }
    }
  });

  it('assigns only the documented built-in roles, and never Owner, Contributor or User Access Administrator', () => {
    const documented = roles.builtInRoles.map((r) => r.id);
    const used = TEMPLATE_FILES.flatMap((f) => builtInRoleIds(f));
    expect([...new Set(used)].sort()).toEqual([...documented].sort());
    for (const id of [OWNER, CONTRIBUTOR, ...Object.keys(roles.forbiddenRoleIds)]) {
      for (const f of TEMPLATE_FILES)
        expect({ f, has: read(f).toLowerCase().includes(id) }).toEqual({ f, has: false });
    }
  });

  it('every role assignment goes to kvguard (a service principal) with a deterministic name', () => {
    for (const file of TEMPLATE_FILES) {
      for (const a of resourcesOf(file, 'Microsoft.Authorization/roleAssignments')) {
        expect(text(a.name)).toMatch(/^\[guid\(/);
        expect(asObject(a.properties, 'assignment').principalType).toBe('ServicePrincipal');
      }
    }
  });
});

// ---------------------------------------------------------------------------------------------

describe('subscription.json', () => {
  it('creates the subscription system topic (global, Microsoft.Resources.Subscriptions) in the named group, or reuses one by name', () => {
    const deployment = resourcesOf('subscription.json', 'Microsoft.Resources/deployments')[0]!;
    expect(deployment.condition).toBe("[parameters('createSystemTopic')]");
    expect(deployment.resourceGroup).toBe("[parameters('systemTopicResourceGroup')]");
    const topic = resourcesOf('subscription.json', 'Microsoft.EventGrid/systemTopics')[0]!;
    expect(topic.location).toBe('global');
    expect(asObject(topic.properties, 'topic').topicType).toBe('Microsoft.Resources.Subscriptions');
  });

  it('assigns the posture roles by mode, the vault role always, the key role only when asked for the whole subscription', () => {
    const conditions = Object.fromEntries(
      resourcesOf('subscription.json', 'Microsoft.Authorization/roleAssignments').map((a) => [
        /kvguard-[a-z-]+/.exec(text(a.name))![0],
        a.condition ?? true,
      ]),
    );
    expect(conditions).toEqual({
      'kvguard-vault-responder': true,
      'kvguard-key-recovery': "[equals(parameters('keyRecoveryRoleScope'), 'subscription')]",
      'kvguard-posture-reader': "[not(equals(parameters('postureMode'), 'none'))]",
      'kvguard-posture-writer': "[equals(parameters('postureMode'), 'enforce')]",
    });
  });
});

describe('vault.json', () => {
  const t = templates['vault.json']!;

  it('sends AuditEvent to the region hub and the workspace in resource-specific tables (AZKVAuditLogs)', () => {
    const setting = resourcesOf('vault.json', 'Microsoft.Insights/diagnosticSettings')[0]!;
    expect(setting.name).toBe('kvguard-audit');
    const props = evaluateValue(setting.properties!, {
      parameters: {
        workspaceResourceId:
          '/subscriptions/s/resourceGroups/rg/providers/Microsoft.OperationalInsights/workspaces/w',
        eventHubAuthorizationRuleId:
          '/subscriptions/s/resourceGroups/rg/providers/Microsoft.EventHub/namespaces/n/authorizationRules/kvguard-diagnostics',
        eventHubName: 'kvguard-audit',
      },
      variables: asObject(t.variables, 'variables'),
    });
    expect(props).toEqual({
      workspaceId: '/subscriptions/s/resourceGroups/rg/providers/Microsoft.OperationalInsights/workspaces/w',
      logAnalyticsDestinationType: 'Dedicated',
      logs: [{ category: 'AuditEvent', enabled: true }],
      eventHubAuthorizationRuleId:
        '/subscriptions/s/resourceGroups/rg/providers/Microsoft.EventHub/namespaces/n/authorizationRules/kvguard-diagnostics',
      eventHubName: 'kvguard-audit',
    });
  });

  it('grants keys get, list, recover on an access-policy vault and the kvguard-key-recovery role on an RBAC vault', () => {
    const policy = resourcesOf('vault.json', 'Microsoft.KeyVault/vaults/accessPolicies')[0]!;
    expect(policy.condition).toBe("[equals(parameters('permissionModel'), 'accessPolicy')]");
    const entries = asObject(policy.properties, 'policy').accessPolicies as JsonObject[];
    expect(entries).toHaveLength(1);
    expect(entries[0]!.permissions).toEqual({ keys: ['get', 'list', 'recover'] });
    expect(asObject(t.metadata, 'metadata').accessPolicyKeyPermissions).toEqual(['get', 'list', 'recover']);
    const assignment = resourcesOf('vault.json', 'Microsoft.Authorization/roleAssignments')[0]!;
    expect(assignment.condition).toBe("[equals(parameters('permissionModel'), 'rbac')]");
    expect(asObject(t.variables, 'variables').keyRecoveryRoleId).toBe(
      "[subscriptionResourceId('Microsoft.Authorization/roleDefinitions', guid(subscription().id, 'kvguard-key-recovery'))]",
    );
  });

  it('subscribes keyDeletionResponder to the vault system topic for VaultAccessPolicyChanged only', () => {
    const topic = resourcesOf('vault.json', 'Microsoft.EventGrid/systemTopics')[0]!;
    expect(asObject(topic.properties, 'topic').topicType).toBe('Microsoft.KeyVault.vaults');
    expect(topic.condition).toBe("[parameters('createSystemTopic')]");
    const sub = asObject(
      resourcesOf('vault.json', 'Microsoft.EventGrid/systemTopics/eventSubscriptions')[0]!.properties,
      'sub',
    );
    expect(sub.filter).toEqual({ includedEventTypes: ['Microsoft.KeyVault.VaultAccessPolicyChanged'] });
    const destination = asObject(sub.destination, 'destination');
    expect(destination.endpointType).toBe('AzureFunction');
    expect(asObject(destination.properties, 'props').resourceId).toBe(
      "[format('{0}/functions/keyDeletionResponder', parameters('functionAppResourceId'))]",
    );
  });
});

describe('eventgrid-subscriptions.json', () => {
  const subscriptionsOf = (type: string) =>
    resourcesOf('eventgrid-subscriptions.json', type).map((r) => asObject(r.properties, 'subscription'));

  it('sends the signal types keyDeletionResponder understands, with retries and a dead-letter the topic writes with its identity', () => {
    const [signals] = subscriptionsOf('Microsoft.EventGrid/topics/eventSubscriptions');
    expect(asObject(signals!.filter, 'filter').includedEventTypes).toEqual([
      KEY_DELETED_V1,
      KEY_PURGED_V1,
      KEY_DELETE_DENIED_V1,
      KEY_DELETE_ALIAS,
    ]);
    expect(signals!.eventDeliverySchema).toBe('CloudEventSchemaV1_0');
    expect(signals!.retryPolicy).toBe("[variables('retryPolicy')]");
    expect(asObject(signals!.destination, 'destination')).toMatchObject({
      endpointType: 'AzureFunction',
      properties: { resourceId: "[variables('responderResourceId')]" },
    });
    const deadLetter = asObject(signals!.deadLetterWithResourceIdentity, 'deadLetter');
    expect(deadLetter.identity).toEqual({ type: 'SystemAssigned' });
    expect(asObject(deadLetter.deadLetterDestination, 'dl').endpointType).toBe('StorageBlob');
    expect(asObject(templates['eventgrid-subscriptions.json']!.variables, 'v').responderResourceId).toBe(
      "[resourceId('Microsoft.Web/sites/functions', parameters('functionAppName'), 'keyDeletionResponder')]",
    );
  });

  // accessPolicies/write: ARM's event of an access-policy change names the caller the Key Vault
  // system event lacks (the responder's attribution follow-up for VaultAccessPolicyChanged).
  it("routes each subscription's vault deletes and writes, filtered on data.operationName", () => {
    const [vaultEvents] = subscriptionsOf('Microsoft.EventGrid/systemTopics/eventSubscriptions');
    expect(vaultEvents!.filter).toEqual({
      includedEventTypes: [
        'Microsoft.Resources.ResourceDeleteSuccess',
        'Microsoft.Resources.ResourceWriteSuccess',
      ],
      advancedFilters: [
        {
          operatorType: 'StringIn',
          key: 'data.operationName',
          values: [
            'Microsoft.KeyVault/vaults/delete',
            'Microsoft.KeyVault/vaults/write',
            'Microsoft.KeyVault/vaults/accessPolicies/write',
          ],
        },
      ],
    });
  });

  const rule = asObject(
    resourcesOf('eventgrid-subscriptions.json', 'Microsoft.Insights/scheduledQueryRules')[0]!.properties,
    'rule',
  );
  const condition = asObject((asObject(rule.criteria, 'criteria').allOf as Json[])[0], 'condition');
  const dimensions = (condition.dimensions as JsonObject[]).map((d) => text(d.name));

  it("runs kvguard's own AZKVAuditLogs query, with the time as a string so that it can be a dimension", () => {
    expect(condition.query).toBe(
      `${KEY_DELETION_ALERT_QUERY}\n| extend TimeGenerated = tostring(TimeGenerated)`,
    );
    expect(rule.scopes).toEqual([
      "[resourceId('Microsoft.OperationalInsights/workspaces', parameters('workspaceName'))]",
    ]);
    expect(condition).not.toHaveProperty('resourceIdColumn');
  });

  it('splits by at most six projected columns, the key and TimeGenerated among them', () => {
    expect(dimensions.length).toBeLessThanOrEqual(6);
    expect(dimensions).toEqual(expect.arrayContaining(['Id', 'TimeGenerated', 'CallerObjectId']));
    const projected = /\| project (.+)/
      .exec(KEY_DELETION_ALERT_QUERY)![1]!
      .split(',')
      .map((c) => c.trim());
    expect(dimensions.filter((d) => !projected.includes(d))).toEqual([]);
  });

  it('its dimensions become a key-deletion trigger with the caller in monitorAlert', () => {
    const values: Record<string, string> = {
      Id: 'https://kv-payments.vault.azure.net/keys/card-key',
      TimeGenerated: '2026-03-01T10:15:30.1234567Z',
      CallerObjectId: '33333333-4444-4555-8666-777777777777',
      CallerUpn: 'mallory@contoso.com',
      CallerAppId: '44444444-5555-4666-8777-888888888888',
      CallerIpAddress: '203.0.113.66',
    };
    const payload = {
      schemaId: 'azureMonitorCommonAlertSchema',
      data: {
        essentials: {
          alertId: '/subscriptions/s/providers/Microsoft.AlertsManagement/alerts/a1',
          alertRule: 'kvguard-key-deletion',
          monitorCondition: 'Fired',
          monitoringService: 'Log Alerts V2',
          alertTargetIDs: [COMPUTED.workspaceResourceId],
          firedDateTime: '2026-03-01T10:20:00Z',
        },
        alertContext: {
          condition: {
            windowSize: 'PT15M',
            allOf: [{ dimensions: dimensions.map((name) => ({ name, value: values[name] })) }],
          },
        },
      },
    };
    const [trigger] = normalise(payload, 'monitorAlert');
    expect(trigger).toMatchObject({
      kind: 'keyDeleted',
      vaultName: 'kv-payments',
      keyName: 'card-key',
      signalTime: '2026-03-01T10:15:30.123Z',
      caller: {
        oid: values.CallerObjectId,
        upn: values.CallerUpn,
        appId: values.CallerAppId,
        ipAddress: values.CallerIpAddress,
      },
    });
  });

  it('fires into an action group that calls monitorAlert with its function key and the common alert schema', () => {
    const group = resourcesOf('eventgrid-subscriptions.json', 'Microsoft.Insights/actionGroups')[0]!;
    const [webhook] = asObject(group.properties, 'group').webhookReceivers as JsonObject[];
    expect(webhook!.useCommonAlertSchema).toBe(true);
    expect(webhook!.serviceUri).toContain('/api/monitorAlert?code={1}');
    expect(webhook!.serviceUri).toContain(
      "listKeys(resourceId('Microsoft.Web/sites/functions', parameters('functionAppName'), 'monitorAlert'), '2024-04-01').default",
    );
    expect(rule.actions).toEqual({
      actionGroups: [
        "[resourceId('Microsoft.Insights/actionGroups', variables('monitorAlertActionGroupName'))]",
      ],
    });
    expect(readFileSync(join(ROOT, 'functions/monitorAlert.ts'), 'utf8')).toMatch(
      /app\.http\('monitorAlert', \{[^}]*authLevel: 'function'/,
    );
  });
});
