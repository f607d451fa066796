/**
 * Azure RBAC as the emulator applies it: role assignments at a scope are inherited by every scope
 * below it; a role grants actions (management plane) and data actions (data plane), each a pattern
 * where `*` matches any run of characters; notActions/notDataActions subtract.
 * Built-in role contents from the RBAC reference (azure-facts.md §7).
 */
import type { RoleAssignment } from './types';

interface RoleDefinition {
  actions: string[];
  notActions?: string[];
  dataActions: string[];
  notDataActions?: string[];
}

export const BUILT_IN_ROLES: Record<string, RoleDefinition> = {
  Owner: { actions: ['*'], dataActions: [] },
  Contributor: { actions: ['*'], dataActions: [] },
  Reader: { actions: ['*/read'], dataActions: [] },
  'Key Vault Contributor': {
    actions: [
      'Microsoft.Authorization/*/read',
      'Microsoft.Insights/alertRules/*',
      'Microsoft.KeyVault/*',
      'Microsoft.Resources/deployments/*',
      'Microsoft.Resources/subscriptions/resourceGroups/read',
      'Microsoft.Support/*',
    ],
    notActions: [
      'Microsoft.KeyVault/locations/deletedVaults/purge/action',
      'Microsoft.KeyVault/hsmPools/*',
      'Microsoft.KeyVault/managedHsms/*',
    ],
    dataActions: [],
  },
  'Key Vault Administrator': {
    actions: [
      'Microsoft.Authorization/*/read',
      'Microsoft.Insights/alertRules/*',
      'Microsoft.Resources/deployments/*',
      'Microsoft.Resources/subscriptions/resourceGroups/read',
      'Microsoft.Support/*',
      'Microsoft.KeyVault/checkNameAvailability/read',
      'Microsoft.KeyVault/deletedVaults/read',
      'Microsoft.KeyVault/locations/*/read',
      'Microsoft.KeyVault/vaults/*/read',
      'Microsoft.KeyVault/operations/read',
    ],
    dataActions: ['Microsoft.KeyVault/vaults/*'],
  },
  'Key Vault Crypto Officer': {
    actions: [
      'Microsoft.Authorization/*/read',
      'Microsoft.Insights/alertRules/*',
      'Microsoft.Resources/deployments/*',
      'Microsoft.Resources/subscriptions/resourceGroups/read',
      'Microsoft.Support/*',
      'Microsoft.KeyVault/checkNameAvailability/read',
      'Microsoft.KeyVault/deletedVaults/read',
      'Microsoft.KeyVault/locations/*/read',
      'Microsoft.KeyVault/vaults/*/read',
      'Microsoft.KeyVault/operations/read',
    ],
    dataActions: ['Microsoft.KeyVault/vaults/keys/*', 'Microsoft.KeyVault/vaults/keyrotationpolicies/*'],
  },
  'Key Vault Crypto User': {
    actions: [],
    dataActions: [
      'Microsoft.KeyVault/vaults/keys/read',
      'Microsoft.KeyVault/vaults/keys/update/action',
      'Microsoft.KeyVault/vaults/keys/backup/action',
      'Microsoft.KeyVault/vaults/keys/encrypt/action',
      'Microsoft.KeyVault/vaults/keys/decrypt/action',
      'Microsoft.KeyVault/vaults/keys/wrap/action',
      'Microsoft.KeyVault/vaults/keys/unwrap/action',
      'Microsoft.KeyVault/vaults/keys/sign/action',
      'Microsoft.KeyVault/vaults/keys/verify/action',
    ],
  },
  'Key Vault Reader': {
    actions: [
      'Microsoft.Authorization/*/read',
      'Microsoft.KeyVault/checkNameAvailability/read',
      'Microsoft.KeyVault/deletedVaults/read',
      'Microsoft.KeyVault/locations/*/read',
      'Microsoft.KeyVault/vaults/*/read',
      'Microsoft.KeyVault/operations/read',
    ],
    dataActions: [
      'Microsoft.KeyVault/vaults/*/read',
      'Microsoft.KeyVault/vaults/secrets/readMetadata/action',
    ],
  },
  'Security Admin': {
    actions: [
      'Microsoft.Authorization/*/read',
      'Microsoft.Authorization/policyAssignments/*',
      'Microsoft.Authorization/policyDefinitions/*',
      'Microsoft.Authorization/policyExemptions/*',
      'Microsoft.Authorization/policySetDefinitions/*',
      'Microsoft.Insights/alertRules/*',
      'Microsoft.Management/managementGroups/read',
      'Microsoft.operationalInsights/workspaces/*/read',
      'Microsoft.Resources/deployments/*',
      'Microsoft.Resources/subscriptions/resourceGroups/read',
      'Microsoft.Security/*',
      'Microsoft.Support/*',
    ],
    dataActions: [],
  },
  'EventGrid Data Sender': { actions: [], dataActions: ['Microsoft.EventGrid/events/send/action'] },
};

/** Each action pattern's expression, compiled once: every ARM request (and every item of a list) asks. */
const compiledPatterns = new Map<string, RegExp>();

function patternMatches(pattern: string, action: string): boolean {
  let re = compiledPatterns.get(pattern);
  if (!re) {
    const source = pattern
      .split('*')
      .map((part) => part.replace(/[.+?^${}()|[\]\\/]/g, '\\$&'))
      .join('.*');
    re = new RegExp(`^${source}$`, 'i');
    compiledPatterns.set(pattern, re);
  }
  return re.test(action);
}

function trimTrailingSlashes(s: string): string {
  let end = s.length;
  while (end > 0 && s.charCodeAt(end - 1) === 0x2f) end--;
  return end === s.length ? s : s.slice(0, end);
}

/** Whether `scope` is `parent` or lies below it (ARM ids compare case-insensitively, by segment). */
export function scopeContains(parent: string, scope: string): boolean {
  const p = trimTrailingSlashes(parent).toLowerCase();
  const s = trimTrailingSlashes(scope).toLowerCase();
  return p === '' || p === '/' || s === p || s.startsWith(`${p}/`);
}

/** Data actions are the ones the data plane checks; everything else is a management action. */
function isDataAction(action: string): boolean {
  return /^Microsoft\.KeyVault\/vaults\/(keys|secrets|certificates|keyrotationpolicies)\//i.test(action) ||
    /^Microsoft\.EventGrid\/events\//i.test(action)
    ? true
    : false;
}

export function isAuthorized(
  assignments: RoleAssignment[],
  principalId: string,
  scope: string,
  action: string,
): boolean {
  const data = isDataAction(action);
  const principal = principalId.toLowerCase();
  for (const a of assignments) {
    if (a.principalId.toLowerCase() !== principal) continue;
    if (!scopeContains(a.scope, scope)) continue;
    const role: RoleDefinition | undefined = a.roleName
      ? BUILT_IN_ROLES[a.roleName]
      : { actions: a.actions ?? [], dataActions: a.dataActions ?? [] };
    if (!role) continue;
    const allow = data ? role.dataActions : role.actions;
    const deny = (data ? role.notDataActions : role.notActions) ?? [];
    if (allow.some((p) => patternMatches(p, action)) && !deny.some((p) => patternMatches(p, action))) {
      return true;
    }
  }
  return false;
}

/**
 * Whether the principal holds any role assignment at, above (inherited) or below `scope`, whatever
 * the role grants: what ARM asks before it shows a subscription in `GET /subscriptions` (a role on one
 * resource group or one resource of it is enough to see the subscription).
 */
export function hasAssignmentWithin(
  assignments: RoleAssignment[],
  principalId: string,
  scope: string,
): boolean {
  return assignments.some(
    (a) =>
      a.principalId.toLowerCase() === principalId.toLowerCase() &&
      (scopeContains(a.scope, scope) || scopeContains(scope, a.scope)),
  );
}
