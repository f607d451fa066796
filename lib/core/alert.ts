/**
 * Design §2 step 8: the content of an alert, composed once and sent to every sink. It joins who and
 * from where, what was touched, what kvguard did and how it ended, and what a human must still do.
 * Severity comes from the outcome: anything not recoverable, or a recovery that failed, is critical.
 */
import { callerLabel, isCallerKnown, mergeCallers } from './caller';
import { scrubSecrets } from './errors';
import { accessPolicyOrigin, alertId } from './incident';
import type {
  ActionKind,
  ActionResult,
  ActionStatus,
  AlertContent,
  AlertKind,
  Caller,
  Decision,
  ObservedKey,
  Severity,
  VaultTrigger,
} from './model';
import { cleanText } from './untrusted';

export interface AlertInput {
  incidentId: string;
  kind: AlertKind;
  trigger: VaultTrigger;
  decision: Decision;
  /** The caller as enrichment found it (merged with the trigger's). */
  caller?: Caller;
  /** What the act step did; omitted → derived from the decision (nothing done yet). */
  results?: ReadonlyArray<ActionResult>;
  /** The key as observed (for its scheduled purge date). */
  key?: ObservedKey;
  /** kvguard runs in observe mode (or this is a dry run): nothing was written. */
  observeMode?: boolean;
}

/** The permission each write needs, named in the alert when the write was forbidden (facts §7). */
export const REQUIRED_PERMISSION: Record<ActionKind, string> = {
  'recover-key':
    'Microsoft.KeyVault/vaults/keys/recover/action (RBAC; "recover" key permission on access-policy vaults)',
  'recover-vault': 'Microsoft.KeyVault/vaults/write',
  'enable-purge-protection': 'Microsoft.KeyVault/vaults/write',
};

const SEVERITY_RANK: Record<Severity, number> = { informational: 0, warning: 1, critical: 2 };

function maxSeverity(a: Severity, b: Severity): Severity {
  return SEVERITY_RANK[a] >= SEVERITY_RANK[b] ? a : b;
}

const RECOVERY: ReadonlySet<ActionKind> = new Set(['recover-key', 'recover-vault']);

/** The severity an outcome forces, on top of the decision's. */
function outcomeSeverity(results: ReadonlyArray<ActionResult>): Severity {
  let s: Severity = 'informational';
  for (const r of results) {
    if (
      RECOVERY.has(r.action) &&
      (r.status === 'not-recoverable' || r.status === 'forbidden' || r.status === 'failed')
    ) {
      s = maxSeverity(s, 'critical');
    } else if (
      r.status === 'forbidden' ||
      r.status === 'failed' ||
      r.status === 'throttled' ||
      r.status === 'pending'
    ) {
      s = maxSeverity(s, 'warning');
    }
  }
  return s;
}

const ACTION_TEXT: Record<ActionKind, string> = {
  'recover-key': 'recover the key',
  'recover-vault': 'recover the vault',
  'enable-purge-protection': 'turn on purge protection',
};

const STATUS_TEXT: Record<ActionStatus, string> = {
  succeeded: 'done',
  'already-done': 'already done',
  planned: 'planned only (observe mode)',
  'not-recoverable': 'not recoverable (purged)',
  forbidden: 'forbidden',
  throttled: 'throttled; will be retried',
  pending: 'still in progress; will be finished by the next delivery or sweep',
  failed: 'failed',
};

function safe(text: string, max = 1024): string {
  return cleanText(scrubSecrets(text), max, true) ?? '';
}

function plannedFrom(decision: Decision): ActionResult[] {
  const out: ActionResult[] = [];
  if (decision.action === 'recover-key' || decision.action === 'recover-vault')
    out.push({ action: decision.action, status: 'planned' });
  if (decision.enablePurgeProtection) out.push({ action: 'enable-purge-protection', status: 'planned' });
  return out;
}

/**
 * What an alert says of a caller its signal does not name. Only a key deletion waits for the log
 * record that names its caller; an access-policy change can learn it only from ARM's event for the
 * same change, and only when that event is its second (the Key Vault event came first): say so
 * rather than promise a follow-up that cannot come.
 */
function unknownCallerText(t: VaultTrigger): string {
  if (t.kind !== 'accessPolicyChanged') return 'still being identified';
  return accessPolicyOrigin(t) === 'keyVault'
    ? "not named by the Key Vault event; a follow-up names the caller if ARM's event for the change arrives"
    : 'not named by the ARM event';
}

function whoOf(caller: Caller | undefined, t: VaultTrigger): AlertContent['who'] {
  if (caller === undefined || !isCallerKnown(caller)) {
    const from = caller?.ipAddress !== undefined ? ` (the request came from ${caller.ipAddress})` : '';
    return {
      known: false,
      summary: `${unknownCallerText(t)}${from}`,
      ...(caller?.ipAddress !== undefined ? { ipAddress: caller.ipAddress } : {}),
      ...(caller?.userAgent !== undefined ? { userAgent: caller.userAgent } : {}),
    };
  }
  const parts = [callerLabel(caller)];
  const ids: string[] = [];
  if (caller.oid !== undefined && caller.upn !== undefined) ids.push(`oid ${caller.oid}`);
  if (caller.oid !== undefined && caller.upn === undefined && caller.appId !== undefined)
    ids.push(`oid ${caller.oid}`);
  if (caller.appId !== undefined && caller.upn !== undefined) ids.push(`app ${caller.appId}`);
  if (ids.length > 0) parts.push(`(${ids.join(', ')})`);
  if (caller.ipAddress !== undefined) parts.push(`from ${caller.ipAddress}`);
  if (caller.userAgent !== undefined) parts.push(`using ${caller.userAgent}`);
  const who: AlertContent['who'] = { known: true, summary: safe(parts.join(' ')) };
  for (const f of ['upn', 'appId', 'oid', 'displayName', 'ipAddress', 'userAgent'] as const) {
    const v = caller[f];
    if (v !== undefined) who[f] = safe(v, 512);
  }
  return who;
}

function keyNameOf(t: VaultTrigger): string | undefined {
  return 'keyName' in t ? t.keyName : undefined;
}

function whatOf(t: VaultTrigger): AlertContent['what'] {
  const keyName = keyNameOf(t);
  const summary =
    keyName !== undefined
      ? `key ${keyName} in vault ${t.vaultName} (${t.vaultHost})`
      : t.kind === 'accessPolicyChanged'
        ? `the access policy of vault ${t.vaultName} (${t.vaultHost})`
        : `vault ${t.vaultName} (${t.vaultHost})`;
  return {
    summary,
    vaultName: t.vaultName,
    vaultHost: t.vaultHost,
    ...(t.vaultResourceId !== undefined ? { vaultResourceId: t.vaultResourceId } : {}),
    ...(keyName !== undefined ? { keyName } : {}),
    signalTime: t.signalTime,
    operationName: t.operationName,
  };
}

function find(results: ReadonlyArray<ActionResult>, action: ActionKind): ActionResult | undefined {
  return results.find((r) => r.action === action);
}

function titleOf(input: AlertInput, results: ReadonlyArray<ActionResult>, who: string): string {
  const t = input.trigger;
  const d = input.decision;
  const key = keyNameOf(t);
  if (input.kind === 'attribution') {
    // An access-policy change is no deletion: its follow-up says who changed the policy.
    if (t.kind === 'accessPolicyChanged') return `Access policy of vault ${t.vaultName}: changed by ${who}`;
    const subject = key !== undefined ? `Key ${key} in vault ${t.vaultName}` : `Vault ${t.vaultName}`;
    return `${subject}: ${t.kind === 'keyDeleteDenied' ? 'attempt' : 'deletion'} made by ${who}`;
  }
  const recovery = find(results, d.action === 'recover-vault' ? 'recover-vault' : 'recover-key');
  const recoveryText = (): string => {
    switch (recovery?.status) {
      case 'succeeded':
        return 'recovered';
      case 'already-done':
        return 'already active again';
      case 'planned':
        return 'would be recovered (observe mode)';
      case 'not-recoverable':
        return 'not recoverable';
      case 'forbidden':
        return 'recovery forbidden';
      case 'throttled':
      case 'pending':
        return 'recovery in progress';
      case 'failed':
        return 'recovery failed';
      case undefined:
        return 'recovery not started';
    }
  };
  switch (t.kind) {
    case 'keyDeleted':
    case 'sweptDeletedKey': {
      const head = `Key ${t.keyName} deleted in vault ${t.vaultName}`;
      if (d.code === 'key-not-recoverable') return `${head}: not recoverable`;
      if (d.action === 'leave-deleted')
        return `${head}: left deleted (${d.code === 'sanctioned-tag' ? 'sanctioned' : 'allow-listed caller'})`;
      if (d.action === 'close-incident') return `${head}: sanctioned deletion confirmed`;
      if (d.action === 'none') return `${head}: nothing to do`;
      return `${head}: ${recoveryText()}`;
    }
    case 'keyPurged':
      return `Key ${t.keyName} purged in vault ${t.vaultName}: not recoverable`;
    case 'keyDeleteDenied':
      return `Refused attempt to delete key ${t.keyName} in vault ${t.vaultName}`;
    case 'vaultDeleted':
    case 'sweptDeletedVault': {
      const head = `Vault ${t.vaultName} deleted`;
      if (d.code === 'vault-not-recoverable') return `${head}: not recoverable`;
      if (d.action === 'alert-only') return `${head}: left deleted by policy`;
      if (d.action === 'none') return `${head}: nothing to do`;
      return `${head}: ${recoveryText()}`;
    }
    case 'vaultWritten':
      return d.code === 'vault-weakened'
        ? `Protection of vault ${t.vaultName} weakened`
        : `Vault ${t.vaultName} changed`;
    case 'accessPolicyChanged':
      return `Access policy of vault ${t.vaultName} changed`;
  }
}

function outcomeOf(d: Decision, results: ReadonlyArray<ActionResult>, observeMode: boolean): string {
  if (results.length === 0) {
    switch (d.action) {
      case 'leave-deleted':
        return 'kvguard left it deleted and changed nothing.';
      case 'close-incident':
        return 'kvguard closed the incident and changed nothing.';
      default:
        return 'kvguard changed nothing.';
    }
  }
  const parts = results.map(
    (r) =>
      `${ACTION_TEXT[r.action]}: ${STATUS_TEXT[r.status]}${r.detail !== undefined ? ` (${r.detail})` : ''}`,
  );
  return `${observeMode ? 'kvguard would' : 'kvguard tried to'} ${parts.join('; ')}.`;
}

function humanActionsOf(
  input: AlertInput,
  results: ReadonlyArray<ActionResult>,
  who: string,
  known: boolean,
): string[] {
  const t = input.trigger;
  const d = input.decision;
  const out: string[] = [];
  const key = keyNameOf(t);
  const recoverKeyCmd =
    key !== undefined ? `az keyvault key recover --vault-name ${t.vaultName} --name ${key}` : '';
  const recoverVaultCmd = `az keyvault recover --name ${t.vaultName}`;
  const protectCmd = `az keyvault update --name ${t.vaultName} --enable-purge-protection true`;

  if (input.observeMode === true && results.some((r) => r.status === 'planned')) {
    for (const r of results.filter((x) => x.status === 'planned')) {
      const cmd =
        r.action === 'recover-key'
          ? recoverKeyCmd
          : r.action === 'recover-vault'
            ? recoverVaultCmd
            : protectCmd;
      out.push(
        `kvguard runs in observe mode and wrote nothing: ${ACTION_TEXT[r.action]} yourself if needed (${cmd}).`,
      );
    }
  }
  for (const r of results) {
    const cmd =
      r.action === 'recover-key'
        ? recoverKeyCmd
        : r.action === 'recover-vault'
          ? recoverVaultCmd
          : protectCmd;
    if (r.status === 'forbidden') {
      out.push(
        `Grant kvguard's identity ${r.requiredPermission ?? REQUIRED_PERMISSION[r.action]} on vault ${t.vaultName} so it can ${ACTION_TEXT[r.action]}; until then do it by hand (${cmd}).`,
      );
    } else if (r.status === 'failed') {
      out.push(
        `${ACTION_TEXT[r.action][0]!.toUpperCase()}${ACTION_TEXT[r.action].slice(1)} by hand (${cmd}) and check kvguard's log for the failure.`,
      );
    } else if (r.status === 'throttled' || r.status === 'pending') {
      out.push(
        `Nothing yet: kvguard finishes this on redelivery or the next sweep. If no recovery follows within minutes, ${ACTION_TEXT[r.action]} by hand (${cmd}).`,
      );
    }
  }
  const notRecoverable =
    d.code === 'key-purged' ||
    d.code === 'key-not-recoverable' ||
    d.code === 'vault-not-recoverable' ||
    results.some((r) => r.status === 'not-recoverable');
  if (notRecoverable) {
    out.push(
      key !== undefined
        ? `The key material is gone: restore the key from a backup if one exists (az keyvault key restore), otherwise rotate or re-encrypt whatever depended on it.`
        : `The vault is gone: recreate it and restore its keys, secrets and certificates from backups.`,
    );
    if (known) out.push(`Remove purge and delete permissions from ${who} unless the purge was planned.`);
  }
  switch (d.code) {
    case 'caller-not-allow-listed':
    case 'attribution-not-allow-listed':
    case 'sanctioned-tag-misused':
      out.push(
        `Find out why ${who} deleted the key; if it was not expected, revoke its access to the vault and review its other activity.`,
      );
      break;
    case 'untagged':
    case 'tag-expired':
    case 'tag-too-far-ahead':
    case 'tag-unparsable':
      out.push('kvguard is identifying the caller; a follow-up alert will name them.');
      break;
    case 'allow-listed-caller':
    case 'sanctioned-tag':
      out.push(
        `None if the deletion was planned. The key stays recoverable${input.key?.scheduledPurgeDate !== undefined ? ` until ${input.key.scheduledPurgeDate}` : ' until its scheduled purge date'}.`,
      );
      break;
    case 'delete-denied':
      out.push(`Find out why ${who} tried to delete the key, and review that principal's access.`);
      break;
    case 'vault-deleted':
      out.push(`Find out why ${who} deleted the vault.`);
      break;
    case 'vault-deletion-alert-only':
      out.push(
        `Decide whether to recover the vault (${recoverVaultCmd}); it is purged at its scheduled purge date.`,
      );
      break;
    case 'vault-weakened':
      out.push(`Review the change with ${who} and revert it if it was not intended.`);
      break;
    case 'access-policy-changed':
      out.push(
        `Review the vault's access policies and revert the change if it was not intended${known ? '' : unknownPolicyCallerAdvice(t)}.`,
      );
      break;
    default:
      break;
  }
  if (d.followUp !== undefined) out.push(d.followUp);
  if (out.length === 0) out.push('Nothing.');
  return out.map((s) => safe(s));
}

/** Where to find who changed an access policy when no event named them (the activity log). */
function unknownPolicyCallerAdvice(t: VaultTrigger): string {
  const lookUp = `look it up in the activity log (Microsoft.KeyVault/vaults/accessPolicies/write or Microsoft.KeyVault/vaults/write around ${t.signalTime})`;
  // A change made with a vault PUT or PATCH raises a vaults/write event, not an access-policy one:
  // then no follow-up comes, and the activity log is the only place that names the caller.
  return t.kind === 'accessPolicyChanged' && accessPolicyOrigin(t) === 'keyVault'
    ? `; the Key Vault event names no caller: unless a follow-up names them, ${lookUp}`
    : `; the caller is not in the event, ${lookUp}`;
}

export function composeAlert(input: AlertInput): AlertContent {
  const t = input.trigger;
  const d = input.decision;
  const observeMode = input.observeMode === true;
  const results = input.results ?? (observeMode ? plannedFrom(d) : []);
  const caller = mergeCallers(t.caller, input.caller);
  const who = whoOf(caller, t);
  const label = who.known ? callerLabel(caller) : 'the caller';
  const severity = maxSeverity(d.severity, outcomeSeverity(results));
  return {
    id: alertId(input.incidentId, input.kind),
    incidentId: input.incidentId,
    kind: input.kind,
    title: safe(titleOf(input, results, who.known ? callerLabel(caller) : 'an unidentified caller'), 256),
    severity,
    who,
    what: whatOf(t),
    decision: { action: d.action, code: d.code, reason: safe(d.reason) },
    actions: results.map((r) => ({
      action: r.action,
      status: r.status,
      summary: safe(
        `${ACTION_TEXT[r.action]}: ${STATUS_TEXT[r.status]}${r.detail !== undefined ? ` (${r.detail})` : ''}`,
      ),
    })),
    outcome: safe(outcomeOf(d, results, observeMode)),
    humanActions: humanActionsOf(input, results, label, who.known),
    observeMode,
  };
}
