/**
 * A whole kvguard environment on the emulated Azure, as the templates in infra/ would set it up:
 * kvguard's user-assigned identity with least-privilege grants, the signals and alerts topics,
 * Azurite for the ledger and poison container, a Log Analytics workspace, and the configuration
 * that points kvguard at all of it. Used by the end-to-end tests, the local run and the benchmark.
 */
import { loadConfig, type Config } from '../../lib/config';
import { startAzurite, type Azurite } from './azurite';
import { grantGraphPermissions } from './graph';
import { addWorkspace } from './loganalytics';
import { startHarness, type Harness } from './testing/harness';
import type { Principal } from './types';

export interface KvguardEnv {
  h: Harness;
  azurite: Azurite;
  identity: Principal;
  config: Config;
  /** Settings as app settings (what local.settings.json would hold). */
  settings: Record<string, string>;
  signalsTopic: string;
  alertsTopic: string;
  workspaceId: string;
  workspaceResourceId: string;
  /** The custom role kvguard gets at subscription scope (infra/subscription.json holds the same). */
  stop(): Promise<void>;
}

/** What kvguard needs at subscription scope, and nothing more (data actions for RBAC vaults). */
export const KVGUARD_ACTIONS = [
  'Microsoft.KeyVault/vaults/read',
  'Microsoft.KeyVault/vaults/write',
  'Microsoft.KeyVault/deletedVaults/read',
  'Microsoft.KeyVault/locations/deletedVaults/read',
];
export const KVGUARD_DATA_ACTIONS = [
  'Microsoft.KeyVault/vaults/keys/read',
  'Microsoft.KeyVault/vaults/keys/recover/action',
];

export async function startKvguardEnv(
  options: { settings?: Record<string, string>; completionLagMs?: number; latencyMs?: number } = {},
): Promise<KvguardEnv> {
  const [h, azurite] = await Promise.all([
    startHarness({ completionLagMs: options.completionLagMs ?? 30, latencyMs: options.latencyMs ?? 0 }),
    startAzurite(),
  ]);
  const e = h.emulator;
  const subscriptionScope = `/subscriptions/${e.subscriptionId}`;
  const identity = e.addPrincipal({
    kind: 'managedIdentity',
    assignment: 'user',
    displayName: 'id-kvguard',
    roleAssignments: [
      { scope: subscriptionScope, actions: KVGUARD_ACTIONS, dataActions: KVGUARD_DATA_ACTIONS },
      { scope: subscriptionScope, roleName: 'EventGrid Data Sender' },
    ],
  });
  const signals = e.eventGrid.createTopic({
    name: 'kvguard-signals',
    region: 'westeurope',
    inputSchema: 'CloudEventSchemaV1_0',
  });
  const alerts = e.eventGrid.createTopic({
    name: 'kvguard-alerts',
    region: 'westeurope',
    inputSchema: 'CloudEventSchemaV1_0',
  });
  const workspaceId = '6a1c3f44-7d2e-4b8a-9f0e-2c5d8b7a1e90';
  const workspaceResourceId = `${subscriptionScope}/resourceGroups/rg-kvguard/providers/Microsoft.OperationalInsights/workspaces/log-kvguard`;
  addWorkspace(e.core, { id: workspaceId, resourceId: workspaceResourceId });
  grantGraphPermissions(e.core, identity.oid, ['Directory.Read.All']);
  e.core.roleAssignments.push({
    id: 'ra-kvguard-workspace',
    principalId: identity.oid,
    scope: workspaceResourceId,
    actions: [
      'Microsoft.OperationalInsights/workspaces/query/read',
      'Microsoft.OperationalInsights/workspaces/query/*/read',
    ],
  });
  const settings: Record<string, string> = {
    AZURE_CLIENT_ID: identity.appId!,
    AZURE_TENANT_ID: e.tenantId,
    KVGUARD_SUBSCRIPTIONS: e.subscriptionId,
    KVGUARD_TABLE_ENDPOINT: azurite.tableEndpoint,
    KVGUARD_BLOB_ENDPOINT: azurite.blobEndpoint,
    KVGUARD_SIGNALS_TOPIC_ENDPOINT: signals.endpoint!,
    KVGUARD_ALERTS_TOPIC_ENDPOINT: alerts.endpoint!,
    KVGUARD_WORKSPACE_ID: workspaceId,
    KVGUARD_WORKSPACE_RESOURCE_ID: workspaceResourceId,
    KVGUARD_RETRY_BASE_DELAY_MS: '20',
    KVGUARD_GRAPH_ENABLED: 'true',
    KVGUARD_EVENTHUBS: 'westeurope=ehns-kvguard-weu/kvguard-audit',
    ...options.settings,
  };
  return {
    h,
    azurite,
    identity,
    config: loadConfig(settings),
    settings,
    signalsTopic: signals.endpoint!,
    alertsTopic: alerts.endpoint!,
    workspaceId,
    workspaceResourceId,
    async stop() {
      await Promise.all([h.stop(), azurite.stop()]);
    },
  };
}
