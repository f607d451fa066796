/**
 * Strict parsing of the identifiers a signal uses to name a vault or a key. A signal is untrusted
 * input and must never point kvguard's identity at another host (design §2 step 2, §6), so only
 * `https://<name>.vault.azure.net[/path][?query]` is a vault URL: no port, no userinfo, no IP literal,
 * no trailing dot, no percent-encoding in the host, nothing after the host but a path or a query.
 * The regular expressions work on the raw string on purpose: WHATWG `URL` normalises (backslashes,
 * tabs, IDNA, percent-decoding) and would let a look-alike through.
 */
import type { RejectionReason } from './model';

/** Public-cloud DNS suffix of Key Vault vaults (the cloud kvguard is deployed to). */
export const VAULT_DNS_SUFFIX = 'vault.azure.net';
/** Managed HSM pools: out of scope for now (design §2 step 2), rejected as `unsupported-resource`. */
export const MANAGED_HSM_DNS_SUFFIX = 'managedhsm.azure.net';

/** A parse that either gives a value or says why not, with a rejection reason code. */
export type Parsed<T> = { ok: true; value: T } | { ok: false; reason: RejectionReason; message: string };

function fail<T>(reason: RejectionReason, message: string): Parsed<T> {
  return { ok: false, reason, message };
}

/**
 * Key Vault naming rules: 3–24 characters, alphanumerics and hyphens, starts with a letter, ends with
 * a letter or digit, no consecutive hyphens (Azure refuses to create any other name).
 */
export function isValidVaultName(name: unknown): name is string {
  return (
    typeof name === 'string' && /^[A-Za-z][A-Za-z0-9-]{1,22}[A-Za-z0-9]$/.test(name) && !name.includes('--')
  );
}

/** Key names: 1–127 alphanumerics and hyphens. */
export function isValidKeyName(name: unknown): name is string {
  return typeof name === 'string' && /^[A-Za-z0-9-]{1,127}$/.test(name);
}

/** `<name>.vault.azure.net`, lower-cased, or undefined for an invalid name. */
export function vaultHostFromName(name: unknown): string | undefined {
  return isValidVaultName(name) ? `${name.toLowerCase()}.${VAULT_DNS_SUFFIX}` : undefined;
}

export interface VaultHost {
  /** Lower-cased vault name. */
  vaultName: string;
  /** Lower-cased `<name>.vault.azure.net`. */
  vaultHost: string;
}

/** A bare host name (`kv1.vault.azure.net`, any case). Managed HSM hosts → `unsupported-resource`. */
export function parseVaultHost(host: unknown): Parsed<VaultHost> {
  if (typeof host !== 'string' || host.length > 253)
    return fail('invalid-vault-host', 'the host is not a string');
  const lower = host.toLowerCase();
  const hsm = /^([a-z0-9-]+)\.managedhsm\.azure\.net$/.exec(lower);
  if (hsm) return fail('unsupported-resource', 'Managed HSM is not supported');
  const m = /^([a-z0-9-]+)\.vault\.azure\.net$/.exec(lower);
  if (!m || !isValidVaultName(m[1])) {
    return fail('invalid-vault-host', 'the host is not <vault-name>.vault.azure.net');
  }
  return { ok: true, value: { vaultName: m[1], vaultHost: lower } };
}

export interface VaultUrl extends VaultHost {
  /** The path after the host (`/keys/k1`), `''` when there is none. Not decoded. */
  path: string;
}

// Scheme, then a host made only of characters that cannot start userinfo, a port, a path, a query
// or a fragment, then optionally a path and a query. White space and backslashes are never allowed.
const HTTPS_URL = /^https:\/\/([^/?#@:\\\s[\]%]+)(\/[^?#\\\s]*)?(\?[^#\\\s]*)?$/;

/** A URL on a vault host (see the file comment for what is refused). */
export function parseVaultUrl(url: unknown): Parsed<VaultUrl> {
  if (typeof url !== 'string') return fail('invalid-vault-host', 'the URL is not a string');
  if (url.length > 2048) return fail('invalid-vault-host', 'the URL is too long');
  const m = HTTPS_URL.exec(url);
  if (!m) return fail('invalid-vault-host', 'not an https URL with a plain host name');
  const host = parseVaultHost(m[1]);
  if (!host.ok) return host;
  return { ok: true, value: { ...host.value, path: m[2] ?? '' } };
}

/** Which collection a key URL points into. */
export type KeyCollection = 'keys' | 'deletedkeys';

export interface KeyUrl extends VaultHost {
  keyName: string;
  collection: KeyCollection;
  /** The key version, when the URL names one (`/keys/{name}/{version}`). */
  version?: string;
}

/**
 * `https://<vault>.vault.azure.net/keys/<name>[/<version>][/]` or `/deletedkeys/<name>[/]`, with an
 * optional query. Anything else on the path (e.g. `/keys/k/backup`, `/secrets/s`) is not a key URL.
 */
export function parseKeyUrl(url: unknown): Parsed<KeyUrl> {
  const base = parseVaultUrl(url);
  if (!base.ok) return base;
  const m = /^\/(keys|deletedkeys)\/([^/]+)(?:\/([^/]+))?\/?$/i.exec(base.value.path);
  if (!m) return fail('malformed', 'the URL does not name a key');
  const [, collection, name, version] = m;
  if (!isValidKeyName(name))
    return fail('invalid-key-name', 'the key name is not 1-127 alphanumerics and hyphens');
  const coll = collection!.toLowerCase() as KeyCollection;
  if (version !== undefined && (coll === 'deletedkeys' || !/^[A-Za-z0-9]{1,64}$/.test(version))) {
    return fail('malformed', 'the URL does not name a key');
  }
  return {
    ok: true,
    value: {
      vaultName: base.value.vaultName,
      vaultHost: base.value.vaultHost,
      keyName: name,
      collection: coll,
      ...(version !== undefined ? { version } : {}),
    },
  };
}

export interface VaultResourceId {
  /** The id as given (casing kept: AuditEvent records upper-case it). */
  resourceId: string;
  subscriptionId: string;
  resourceGroup: string;
  /** Lower-cased. */
  vaultName: string;
  vaultHost: string;
}

// Segments exclude `/`, white space and control characters; casing is not significant in ARM ids.
const SEGMENT = '[^/\\u0000-\\u0020\\u007f]';
const KEY_VAULT_ID = new RegExp(
  `^/subscriptions/(${SEGMENT}{1,64})/resourceGroups/(${SEGMENT}{1,90})/providers/Microsoft\\.KeyVault/(vaults|managedHSMs)/(${SEGMENT}{1,64})$`,
  'i',
);

/** `/subscriptions/{s}/resourceGroups/{rg}/providers/Microsoft.KeyVault/vaults/{name}`, any case. */
export function parseVaultResourceId(id: unknown): Parsed<VaultResourceId> {
  if (typeof id !== 'string' || id.length > 512) return fail('malformed', 'the resource id is not a string');
  const m = KEY_VAULT_ID.exec(id);
  if (!m) {
    if (/\/providers\/Microsoft\.KeyVault\/managedHSMs\//i.test(id)) {
      return fail('unsupported-resource', 'Managed HSM is not supported');
    }
    return fail('unsupported-resource', 'the resource is not a Key Vault vault');
  }
  const [, subscriptionId, resourceGroup, type, name] = m;
  if (type!.toLowerCase() === 'managedhsms')
    return fail('unsupported-resource', 'Managed HSM is not supported');
  const host = vaultHostFromName(name);
  if (host === undefined)
    return fail('malformed', 'the vault name in the resource id is not a valid vault name');
  return {
    ok: true,
    value: {
      resourceId: id,
      subscriptionId: subscriptionId!,
      resourceGroup: resourceGroup!,
      vaultName: name!.toLowerCase(),
      vaultHost: host,
    },
  };
}

// No control characters, white space, scheme, query or fragment anywhere in an ARM id.
// eslint-disable-next-line no-control-regex
const ARM_ID = new RegExp('^/subscriptions/[^\\u0000-\\u0020\\u007f:?#\\\\]+$', 'i');

/** Any ARM resource id (`/subscriptions/...`), no scheme, no white space; the id as given. */
export function isArmResourceId(id: unknown): id is string {
  return typeof id === 'string' && id.length <= 1024 && ARM_ID.test(id);
}

/** A Log Analytics workspace id (`.../providers/Microsoft.OperationalInsights/workspaces/{name}`). */
export function isWorkspaceResourceId(id: unknown): id is string {
  return (
    isArmResourceId(id) &&
    /^\/subscriptions\/[^/]+\/resourceGroups\/[^/]+\/providers\/Microsoft\.OperationalInsights\/workspaces\/[^/]+$/i.test(
      id,
    )
  );
}
