/** Strict vault hosts, key names, resource ids and instants. */
import {
  isValidKeyName,
  isValidVaultName,
  isWorkspaceResourceId,
  parseKeyUrl,
  parseVaultHost,
  parseVaultResourceId,
  parseVaultUrl,
  vaultHostFromName,
} from '../../lib/core/identifiers';
import { parseDuration, parseInstant, toIsoInstant } from '../../lib/core/time';

describe('vault URLs', () => {
  it.each([
    ['https://kv1.vault.azure.net', 'kv1', ''],
    ['https://kv1.vault.azure.net/', 'kv1', '/'],
    ['https://Contoso-Payments.VAULT.azure.net/keys/k1?api-version=7.5', 'contoso-payments', '/keys/k1'],
    ['https://a23456789012345678901234.vault.azure.net/', 'a23456789012345678901234', '/'],
  ])('accepts %s', (url, vaultName, path) => {
    expect(parseVaultUrl(url)).toEqual({
      ok: true,
      value: { vaultName, vaultHost: `${vaultName}.vault.azure.net`, path },
    });
  });

  it.each([
    ['a look-alike suffix', 'https://kv.vault.azure.net.evil.test/keys/x'],
    ['a foreign host', 'https://evil.test/keys/x'],
    ['userinfo before a foreign host', 'https://kv.vault.azure.net@evil.test/'],
    ['userinfo before the vault host', 'https://user@kv1.vault.azure.net/'],
    ['a port', 'https://kv1.vault.azure.net:443/'],
    ['another port', 'https://kv1.vault.azure.net:8443/keys/k'],
    ['an IPv4 literal', 'https://10.0.0.1/keys/k'],
    ['an IPv6 literal', 'https://[::1]/keys/k'],
    ['plain http', 'http://kv1.vault.azure.net/'],
    ['no scheme', 'kv1.vault.azure.net'],
    ['a trailing dot', 'https://kv1.vault.azure.net./'],
    ['a backslash', 'https://kv1.vault.azure.net\\@evil.test/'],
    ['percent-encoding in the host', 'https://kv1%2evault.azure.net/'],
    ['white space', 'https://kv1.vault.azure.net /'],
    ['a tab', 'https://kv1.vault.azure.net\t/'],
    ['a name too short', 'https://kv.vault.azure.net/'],
    ['a name too long', 'https://a234567890123456789012345.vault.azure.net/'],
    ['a name starting with a digit', 'https://1kv.vault.azure.net/'],
    ['a name ending with a hyphen', 'https://kv1-.vault.azure.net/'],
    ['consecutive hyphens', 'https://kv--1.vault.azure.net/'],
    ['a sub-domain', 'https://x.kv1.vault.azure.net/'],
    ['an underscore', 'https://kv_1.vault.azure.net/'],
    ['a unicode look-alike', 'https://kv1.vault.azure.nеt/'],
    ['a fragment right after the host', 'https://kv1.vault.azure.net#@evil.test/'],
    ['a huge string', `https://${'a'.repeat(5000)}.vault.azure.net/`],
    ['not a string', 42],
  ])('rejects %s', (_label, url) => {
    expect(parseVaultUrl(url)).toMatchObject({ ok: false, reason: 'invalid-vault-host' });
  });

  it('rejects Managed HSM hosts as unsupported, not as invalid', () => {
    expect(parseVaultUrl('https://contoso-hsm.managedhsm.azure.net/keys/k')).toMatchObject({
      ok: false,
      reason: 'unsupported-resource',
    });
    expect(parseVaultHost('contoso-hsm.managedhsm.azure.net')).toMatchObject({
      ok: false,
      reason: 'unsupported-resource',
    });
  });
});

describe('key URLs', () => {
  it.each([
    ['https://kv1.vault.azure.net/keys/k1', { keyName: 'k1', collection: 'keys' }],
    ['https://kv1.vault.azure.net/keys/k1/', { keyName: 'k1', collection: 'keys' }],
    [
      'https://kv1.vault.azure.net/keys/k1/78deebed173b48e48f55abf87ed4cf71',
      { keyName: 'k1', collection: 'keys', version: '78deebed173b48e48f55abf87ed4cf71' },
    ],
    [
      'https://kv1.vault.azure.net/deletedkeys/Key-2?api-version=7.5',
      { keyName: 'Key-2', collection: 'deletedkeys' },
    ],
  ])('parses %s', (url, expected) => {
    expect(parseKeyUrl(url)).toEqual({
      ok: true,
      value: { vaultName: 'kv1', vaultHost: 'kv1.vault.azure.net', ...expected },
    });
  });

  it.each([
    ['https://kv1.vault.azure.net/secrets/s1', 'malformed'],
    ['https://kv1.vault.azure.net/keys/k1/backup/x', 'malformed'],
    ['https://kv1.vault.azure.net/keys', 'malformed'],
    ['https://kv1.vault.azure.net/keys/k%2F1', 'invalid-key-name'],
    ['https://kv1.vault.azure.net/keys/k.1', 'invalid-key-name'],
    [`https://kv1.vault.azure.net/keys/${'k'.repeat(128)}`, 'invalid-key-name'],
    ['https://kv1.vault.azure.net/deletedkeys/k1/78deebed', 'malformed'],
  ])('rejects %s (%s)', (url, reason) => {
    expect(parseKeyUrl(url)).toMatchObject({ ok: false, reason });
  });
});

describe('names', () => {
  it.each([['kv1'], ['Contoso-Payments'], ['a'.repeat(24)]])('%s is a vault name', (n) =>
    expect(isValidVaultName(n)).toBe(true),
  );
  it.each([['kv'], ['1kv'], ['kv-'], ['k--v'], ['a'.repeat(25)], ['kv_1'], [''], [null]])(
    '%s is not a vault name',
    (n) => expect(isValidVaultName(n)).toBe(false),
  );
  it.each([['k'], ['Key-1'], ['k'.repeat(127)]])('%s is a key name', (n) =>
    expect(isValidKeyName(n)).toBe(true),
  );
  it.each([[''], ['k.1'], ['k/1'], ['k 1'], ['k'.repeat(128)], [7]])('%s is not a key name', (n) =>
    expect(isValidKeyName(n)).toBe(false),
  );
  it('derives the lower-cased host from a name', () => {
    expect(vaultHostFromName('Contoso-Payments')).toBe('contoso-payments.vault.azure.net');
    expect(vaultHostFromName('bad_name')).toBeUndefined();
  });
});

describe('resource ids', () => {
  it('parses an upper-cased id as AuditEvent records write it', () => {
    expect(
      parseVaultResourceId(
        '/SUBSCRIPTIONS/8A7F2C1E/RESOURCEGROUPS/RG-PAYMENTS/PROVIDERS/MICROSOFT.KEYVAULT/VAULTS/CONTOSO-PAYMENTS',
      ),
    ).toEqual({
      ok: true,
      value: {
        resourceId:
          '/SUBSCRIPTIONS/8A7F2C1E/RESOURCEGROUPS/RG-PAYMENTS/PROVIDERS/MICROSOFT.KEYVAULT/VAULTS/CONTOSO-PAYMENTS',
        subscriptionId: '8A7F2C1E',
        resourceGroup: 'RG-PAYMENTS',
        vaultName: 'contoso-payments',
        vaultHost: 'contoso-payments.vault.azure.net',
      },
    });
  });

  it.each([
    [
      '/subscriptions/s/resourceGroups/r/providers/Microsoft.KeyVault/managedHSMs/hsm1',
      'unsupported-resource',
    ],
    [
      '/subscriptions/s/resourceGroups/r/providers/Microsoft.Storage/storageAccounts/sa',
      'unsupported-resource',
    ],
    [
      '/subscriptions/s/resourceGroups/r/providers/Microsoft.KeyVault/vaults/kv1/keys/k',
      'unsupported-resource',
    ],
    ['/subscriptions/s/resourceGroups/r/providers/Microsoft.KeyVault/vaults/bad_name', 'malformed'],
    [
      'https://management.azure.com/subscriptions/s/resourceGroups/r/providers/Microsoft.KeyVault/vaults/kv1',
      'unsupported-resource',
    ],
  ])('rejects %s', (id, reason) => {
    expect(parseVaultResourceId(id)).toMatchObject({ ok: false, reason });
  });

  it('recognises workspace ids and nothing with a scheme', () => {
    expect(
      isWorkspaceResourceId(
        '/subscriptions/s/resourcegroups/rg/providers/microsoft.operationalinsights/workspaces/ws',
      ),
    ).toBe(true);
    expect(isWorkspaceResourceId('https://api.loganalytics.io/v1/workspaces/ws')).toBe(false);
  });
});

describe('instants', () => {
  it.each([
    ['2026-03-14T09:26:53.5897932Z', '2026-03-14T09:26:53.589Z'],
    ['2026-03-14T09:26:53Z', '2026-03-14T09:26:53.000Z'],
    ['2026-03-14T10:26+01:00', '2026-03-14T09:26:00.000Z'],
    ['2024-02-29T00:00:00Z', '2024-02-29T00:00:00.000Z'],
  ])('%s → %s', (input, expected) => expect(toIsoInstant(input)).toBe(expected));

  it.each([
    ['2026-02-29T00:00:00Z'],
    ['2026-02-30T00:00:00Z'],
    ['2026-13-01T00:00:00Z'],
    ['2026-01-01T24:00:00Z'],
    ['2026-01-01T23:60:00Z'],
    ['2026-01-01T23:59:60Z'],
    ['2026-01-01T00:00:00'],
    ['2026-01-01'],
    ['1712126805788'],
    [''],
  ])('rejects %s', (input) => expect(parseInstant(input)).toBeUndefined());

  it('parses the durations alert rules use', () => {
    expect(parseDuration('PT10M')).toBe(600_000);
    expect(parseDuration('PT1H')).toBe(3_600_000);
    expect(parseDuration('P1DT2H')).toBe(93_600_000);
    expect(parseDuration('P')).toBeUndefined();
    expect(parseDuration('PT')).toBeUndefined();
    expect(parseDuration('10 minutes')).toBeUndefined();
  });
});
