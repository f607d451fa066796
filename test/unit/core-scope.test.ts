/** checkScope: only vaults of the inventory, the same vault by resource id, exclusions by configuration. */
import type { VaultTrigger } from '../../lib/core/model';
import { checkScope, type ScopeVault } from '../../lib/core/scope';

const live: ScopeVault = {
  name: 'Contoso-Payments',
  vaultUri: 'https://contoso-payments.vault.azure.net/',
  resourceId:
    '/subscriptions/8a7f2c1e-3b4d-4e5f-9a0b-1c2d3e4f5a6b/resourceGroups/rg-payments/providers/Microsoft.KeyVault/vaults/Contoso-Payments',
  subscriptionId: '8a7f2c1e-3b4d-4e5f-9a0b-1c2d3e4f5a6b',
  location: 'westeurope',
  deleted: false,
};
const deleted: ScopeVault = {
  name: 'old-vault',
  vaultUri: 'https://old-vault.vault.azure.net/',
  resourceId:
    '/subscriptions/8a7f2c1e-3b4d-4e5f-9a0b-1c2d3e4f5a6b/resourceGroups/rg-old/providers/Microsoft.KeyVault/vaults/old-vault',
  subscriptionId: '8a7f2c1e-3b4d-4e5f-9a0b-1c2d3e4f5a6b',
  location: 'westeurope',
  deleted: true,
};
const lookAlikeEntry: ScopeVault = {
  ...live,
  name: 'evil',
  vaultUri: 'https://evil.vault.azure.net.evil.test/',
  resourceId: '/x',
};
const inventory = { vaults: [lookAlikeEntry, live, deleted] };

const trigger = (
  vaultHost: string,
  vaultResourceId?: string,
): Pick<VaultTrigger, 'vaultHost' | 'vaultResourceId'> => ({
  vaultHost,
  ...(vaultResourceId !== undefined ? { vaultResourceId } : {}),
});

describe('checkScope', () => {
  it('a vault of the inventory is in scope, host compared case-insensitively', () => {
    expect(checkScope(trigger('CONTOSO-PAYMENTS.vault.azure.net'), inventory)).toEqual({
      outcome: 'in-scope',
      vault: live,
    });
  });

  it('the resource id in the signal must name the same vault (case-insensitively, as records upper-case it)', () => {
    expect(
      checkScope(trigger('contoso-payments.vault.azure.net', live.resourceId.toUpperCase()), inventory),
    ).toMatchObject({ outcome: 'in-scope' });
    expect(
      checkScope(
        trigger('contoso-payments.vault.azure.net', live.resourceId.replace('rg-payments', 'rg-other')),
        inventory,
      ),
    ).toMatchObject({ outcome: 'out-of-scope', reason: 'resource-id-mismatch' });
  });

  it('a deleted vault stays in scope until purged', () => {
    expect(checkScope(trigger('old-vault.vault.azure.net'), inventory)).toEqual({
      outcome: 'in-scope',
      vault: deleted,
    });
  });

  it('prefers the live entry when a name is listed live and deleted', () => {
    const both = { vaults: [{ ...live, deleted: true }, live] };
    expect(checkScope(trigger('contoso-payments.vault.azure.net'), both)).toEqual({
      outcome: 'in-scope',
      vault: live,
    });
  });

  it.each([
    ['a vault outside the inventory', 'other-vault.vault.azure.net', 'unknown-vault'],
    ['a look-alike host', 'contoso-payments.vault.azure.net.evil.test', 'invalid-host'],
    ['a host the inventory lists only as a look-alike URI', 'evil.vault.azure.net', 'unknown-vault'],
    ['a Managed HSM', 'contoso-hsm.managedhsm.azure.net', 'invalid-host'],
    ['an empty host', '', 'invalid-host'],
  ])('%s is out of scope', (_l, host, reason) => {
    expect(checkScope(trigger(host), inventory)).toMatchObject({ outcome: 'out-of-scope', reason });
  });

  it.each([
    ['contoso-payments'],
    ['CONTOSO-PAYMENTS'],
    ['contoso-payments.vault.azure.net'],
    ['https://contoso-payments.vault.azure.net'],
    [live.resourceId.toUpperCase()],
  ])('a vault excluded by configuration as %s is left alone', (entry) => {
    expect(
      checkScope(trigger('contoso-payments.vault.azure.net'), inventory, ['unrelated', entry]),
    ).toMatchObject({
      outcome: 'excluded',
      vault: live,
      reason: expect.stringContaining('excluded by configuration'),
    });
  });

  it('an exclusion never brings a vault outside the inventory into scope', () => {
    expect(checkScope(trigger('other-vault.vault.azure.net'), inventory, ['other-vault'])).toMatchObject({
      outcome: 'out-of-scope',
    });
  });

  it('an empty inventory puts nothing in scope', () => {
    expect(checkScope(trigger('contoso-payments.vault.azure.net'), { vaults: [] })).toMatchObject({
      outcome: 'out-of-scope',
      reason: 'unknown-vault',
    });
  });
});
