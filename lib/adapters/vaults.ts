/**
 * ARM `Microsoft.KeyVault/vaults` through @azure/arm-keyvault (one client per subscription).
 * - PATCH sets `enablePurgeProtection: true` only: the property cannot be set to false (the
 *   service answers 400), and kvguard never tries (design §6).
 * - Recovering a deleted vault is a PUT with `properties.createMode: "recover"` in the vault's
 *   original location (a long-running operation; the SDK polls it).
 * 403 means the identity lacks the action named below; 404 on get means no such vault.
 * The subscriptions the identity can see (when KVGUARD_SUBSCRIPTIONS is empty) come from
 * @azure/arm-resources-subscriptions 2.x (`GET /subscriptions`, api-version 2022-12-01; 3.x needs
 * Node 22): ARM lists every subscription where the caller holds a role, nothing else.
 */
import type { TokenCredential } from '@azure/identity';
import { KeyVaultManagementClient, type DeletedVault, type Vault } from '@azure/arm-keyvault';
import { SubscriptionClient } from '@azure/arm-resources-subscriptions';
import type { ArmResult, DeletedVaultFacts, SubscriptionFacts, VaultFacts, VaultManagement } from '../ports';
import { clientOptions, statusOf, toCallFailure } from './azure';

/** `/subscriptions/{s}/resourceGroups/{rg}/providers/Microsoft.KeyVault/vaults/{name}` → parts. */
export function parseVaultId(
  id: string,
): { subscriptionId: string; resourceGroup: string; name: string } | undefined {
  const m =
    /^\/subscriptions\/([^/]+)\/resourceGroups\/([^/]+)\/providers\/Microsoft\.KeyVault\/vaults\/([^/]+)$/i.exec(
      id,
    );
  return m
    ? { subscriptionId: m[1]!.toLowerCase(), resourceGroup: m[2]!, name: m[3]!.toLowerCase() }
    : undefined;
}

function toFacts(v: Vault): VaultFacts {
  const parts = parseVaultId(v.id ?? '');
  const p = v.properties;
  return {
    id: v.id ?? '',
    name: (v.name ?? parts?.name ?? '').toLowerCase(),
    subscriptionId: parts?.subscriptionId ?? '',
    resourceGroup: parts?.resourceGroup ?? '',
    location: v.location ?? '',
    vaultUri: p.vaultUri ?? `https://${v.name ?? ''}.vault.azure.net/`,
    enablePurgeProtection: p.enablePurgeProtection === true,
    enableSoftDelete: p.enableSoftDelete !== false,
    softDeleteRetentionInDays: p.softDeleteRetentionInDays ?? 90,
    enableRbacAuthorization: p.enableRbacAuthorization === true,
    publicNetworkAccess: p.publicNetworkAccess ?? 'Enabled',
    tags: v.tags ?? {},
  };
}

function toDeletedFacts(d: DeletedVault, subscriptionId: string): DeletedVaultFacts {
  const p = d.properties ?? {};
  return {
    id: d.id ?? '',
    name: (d.name ?? '').toLowerCase(),
    subscriptionId,
    location: p.location ?? '',
    vaultId: p.vaultId ?? '',
    deletionDate: p.deletionDate,
    scheduledPurgeDate: p.scheduledPurgeDate,
    purgeProtectionEnabled: p.purgeProtectionEnabled === true,
  };
}

export class VaultManagementAdapter implements VaultManagement {
  private readonly clients = new Map<string, KeyVaultManagementClient>();
  private subscriptionClient: SubscriptionClient | undefined;

  constructor(
    private readonly credential: TokenCredential,
    private readonly tenantId: string,
    private readonly retryBaseDelayMs: number,
  ) {}

  private client(subscriptionId: string): KeyVaultManagementClient {
    let client = this.clients.get(subscriptionId);
    if (!client) {
      client = new KeyVaultManagementClient(
        this.credential,
        subscriptionId,
        clientOptions(this.retryBaseDelayMs),
      );
      this.clients.set(subscriptionId, client);
    }
    return client;
  }

  async getVault(vaultId: string): Promise<ArmResult<VaultFacts | undefined>> {
    const parts = parseVaultId(vaultId);
    if (!parts)
      return { ok: false, failure: { kind: 'failed', status: 400, detail: `not a vault id: ${vaultId}` } };
    try {
      return {
        ok: true,
        value: toFacts(await this.client(parts.subscriptionId).vaults.get(parts.resourceGroup, parts.name)),
      };
    } catch (error) {
      if (statusOf(error) === 404) return { ok: true, value: undefined };
      return { ok: false, failure: toCallFailure(error, 'Microsoft.KeyVault/vaults/read') };
    }
  }

  async enablePurgeProtection(vaultId: string): Promise<ArmResult<VaultFacts>> {
    const parts = parseVaultId(vaultId);
    if (!parts)
      return { ok: false, failure: { kind: 'failed', status: 400, detail: `not a vault id: ${vaultId}` } };
    try {
      const vault = await this.client(parts.subscriptionId).vaults.update(parts.resourceGroup, parts.name, {
        properties: { enablePurgeProtection: true },
      });
      return { ok: true, value: toFacts(vault) };
    } catch (error) {
      return { ok: false, failure: toCallFailure(error, 'Microsoft.KeyVault/vaults/write') };
    }
  }

  async recoverVault(deleted: DeletedVaultFacts, resourceGroup: string): Promise<ArmResult<VaultFacts>> {
    try {
      const vault = await this.client(deleted.subscriptionId).vaults.createOrUpdate(
        resourceGroup,
        deleted.name,
        {
          location: deleted.location,
          properties: {
            tenantId: this.tenantId,
            sku: { family: 'A', name: 'standard' },
            createMode: 'recover',
          },
        },
      );
      return { ok: true, value: toFacts(vault) };
    } catch (error) {
      return { ok: false, failure: toCallFailure(error, 'Microsoft.KeyVault/vaults/write') };
    }
  }

  async listVaults(subscriptionId: string): Promise<ArmResult<VaultFacts[]>> {
    try {
      const vaults: VaultFacts[] = [];
      for await (const v of this.client(subscriptionId).vaults.listBySubscription()) vaults.push(toFacts(v));
      return { ok: true, value: vaults };
    } catch (error) {
      return { ok: false, failure: toCallFailure(error, 'Microsoft.KeyVault/vaults/read') };
    }
  }

  async listSubscriptions(): Promise<ArmResult<SubscriptionFacts[]>> {
    this.subscriptionClient ??= new SubscriptionClient(this.credential, clientOptions(this.retryBaseDelayMs));
    try {
      const subscriptions: SubscriptionFacts[] = [];
      for await (const s of this.subscriptionClient.subscriptions.list())
        subscriptions.push({ subscriptionId: s.subscriptionId ?? '', state: s.state ?? '' });
      return { ok: true, value: subscriptions };
    } catch (error) {
      // No action is needed to list: ARM shows each subscription where the caller holds any role.
      return { ok: false, failure: toCallFailure(error, 'a role assignment in each subscription') };
    }
  }

  async listDeletedVaults(subscriptionId: string): Promise<ArmResult<DeletedVaultFacts[]>> {
    try {
      const vaults: DeletedVaultFacts[] = [];
      for await (const d of this.client(subscriptionId).vaults.listDeleted())
        vaults.push(toDeletedFacts(d, subscriptionId));
      return { ok: true, value: vaults };
    } catch (error) {
      return { ok: false, failure: toCallFailure(error, 'Microsoft.KeyVault/deletedVaults/read') };
    }
  }
}
