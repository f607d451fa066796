/**
 * Design §2 step 6: what to do about a trigger, as a pure function of the trigger, what *observe* and
 * *enrich* found, and the policy. Every decision carries its reason and a severity. Observe mode
 * gives the same decision with `writes: false`.
 */
import { callerLabel, isCallerKnown, mergeCallers } from './caller';
import type {
  Caller,
  Decision,
  DecisionAction,
  DecisionCode,
  ObservedKey,
  ObservedVault,
  Severity,
  VaultTrigger,
  VaultWeakening,
} from './model';
import { parseInstant } from './time';
import { cleanText, own } from './untrusted';

/** The tag that sanctions the deletion of a key while its caller is not known yet. */
export const SANCTION_TAG = 'kvguard-sanctioned-delete';
/** A sanction may reach at most this far ahead of now. */
export const MAX_SANCTION_AHEAD_MS = 24 * 60 * 60 * 1000;

export interface AllowList {
  /** Entra object ids of principals whose deletions are left alone (e.g. a rotation pipeline). */
  objectIds: ReadonlyArray<string>;
  /**
   * Application ids. Matched only for app-only callers (`idtyp: app`, or no `idtyp` and no UPN): in a
   * user's token `appid` names the client the user signed in with (Azure CLI, the portal), and
   * allow-listing that would allow-list every user of it.
   */
  appIds: ReadonlyArray<string>;
}

export interface ResponsePolicy {
  /** `observe`: decide and report, write nothing. */
  mode: 'enforce' | 'observe';
  allowList: AllowList;
  /** What to do about a deleted vault: recover it (default) or only alert. */
  vaultDeletion: 'recover' | 'alert';
}

export interface DecideInput {
  trigger: VaultTrigger;
  /** Now, from the Clock port. */
  now: Date | string;
  policy: ResponsePolicy;
  /** The caller as enrichment found it (Log Analytics, Graph); merged with the trigger's own. */
  caller?: Caller;
  /** The key as observed (step 3), for key triggers. */
  key?: ObservedKey;
  /** The vault as ARM shows it now (or the deleted vault). */
  vault?: ObservedVault;
  /** The vault's last known state before a vault write (the inventory's baseline), when known. */
  vaultBefore?: ObservedVault;
  /** The incident's earlier decision, when this is attribution arriving later. */
  prior?: Pick<Decision, 'action' | 'code'>;
}

export type SanctionStatus =
  | { status: 'sanctioned'; until: string }
  | { status: 'untagged' }
  | { status: 'expired'; value: string }
  | { status: 'too-far-ahead'; value: string }
  | { status: 'unparsable'; value: string };

/**
 * The `kvguard-sanctioned-delete` tag: an ISO 8601 time with a zone, in the future, at most 24 h
 * ahead of now. Anything else does not sanction a deletion, and the status says why.
 */
export function evaluateSanctionTag(
  tags: Readonly<Record<string, string>> | undefined,
  now: Date | string,
): SanctionStatus {
  const raw = own(tags, SANCTION_TAG);
  if (raw === undefined) return { status: 'untagged' };
  const value = cleanText(raw, 64, true) ?? '';
  const until = parseInstant(typeof raw === 'string' ? raw.trim() : raw);
  const nowMs = parseInstant(now);
  if (until === undefined || nowMs === undefined) return { status: 'unparsable', value };
  if (until <= nowMs) return { status: 'expired', value };
  if (until - nowMs > MAX_SANCTION_AHEAD_MS) return { status: 'too-far-ahead', value };
  return { status: 'sanctioned', until: new Date(until).toISOString() };
}

/** Which allow-list entry matches the caller, if any. */
export function allowListMatch(
  caller: Caller | undefined,
  allowList: AllowList,
): 'oid' | 'appId' | undefined {
  if (caller === undefined) return undefined;
  const same = (a: string, b: string) => a.trim().toLowerCase() === b.trim().toLowerCase();
  if (caller.oid !== undefined && allowList.objectIds.some((id) => same(id, caller.oid!))) return 'oid';
  const appOnly =
    caller.idtyp !== undefined ? caller.idtyp.toLowerCase() === 'app' : caller.upn === undefined;
  if (appOnly && caller.appId !== undefined && allowList.appIds.some((id) => same(id, caller.appId!)))
    return 'appId';
  return undefined;
}

const WRITE_ACTIONS: ReadonlySet<DecisionAction> = new Set(['recover-key', 'recover-vault']);

interface Draft {
  action: DecisionAction;
  code: DecisionCode;
  severity: Severity;
  reason: string;
  /** Turn on purge protection too (dropped when the vault already has it). */
  purgeProtection?: boolean;
  notify?: boolean;
  followUp?: string;
  weakenings?: VaultWeakening[];
}

function finish(d: Draft, input: DecideInput, vaultHasProtection: boolean | undefined): Decision {
  const enablePurgeProtection = d.purgeProtection === true && vaultHasProtection !== true;
  const wouldWrite = WRITE_ACTIONS.has(d.action) || enablePurgeProtection;
  const observe = input.policy.mode === 'observe';
  const decision: Decision = {
    action: d.action,
    code: d.code,
    reason: observe && wouldWrite ? `${d.reason} Observe mode: nothing is written.` : d.reason,
    severity: d.severity,
    enablePurgeProtection,
    writes: wouldWrite && !observe,
    notify: d.notify ?? true,
  };
  if (d.followUp !== undefined) decision.followUp = d.followUp;
  if (d.weakenings !== undefined) decision.weakenings = d.weakenings;
  return decision;
}

export function decide(input: DecideInput): Decision {
  const t = input.trigger;
  switch (t.kind) {
    case 'keyDeleted':
    case 'sweptDeletedKey':
      return finish(decideKeyDeletion(input), input, input.vault?.purgeProtectionEnabled);
    case 'keyPurged':
      return finish(
        {
          action: 'alert-only',
          code: 'key-purged',
          severity: 'critical',
          // A caller from enrichment only (the purge record named none) is the deletion's, which a
          // purge joins (one incident per purged key): say whose it is rather than call them the purger.
          reason:
            !isCallerKnown(t.caller) && isCallerKnown(input.caller)
              ? `Key ${t.keyName} in vault ${t.vaultName} was purged (the purge names no caller; ${callerLabel(input.caller)} deleted it): it is not recoverable.`
              : `Key ${t.keyName} in vault ${t.vaultName} was purged by ${callerLabel(mergeCallers(t.caller, input.caller))}: it is not recoverable.`,
          purgeProtection: true,
        },
        input,
        input.vault?.purgeProtectionEnabled,
      );
    case 'keyDeleteDenied':
      return finish(
        {
          action: 'alert-only',
          code: 'delete-denied',
          severity: 'warning',
          reason: `${callerLabel(mergeCallers(t.caller, input.caller))} tried to delete key ${t.keyName} in vault ${t.vaultName}; the vault refused (${t.httpStatusCode}). Nothing was deleted.`,
        },
        input,
        undefined,
      );
    case 'vaultDeleted':
    case 'sweptDeletedVault': {
      const known =
        input.vault?.purgeProtectionEnabled ??
        (t.kind === 'sweptDeletedVault' ? t.purgeProtectionEnabled : undefined);
      return finish(decideVaultDeletion(input), input, known);
    }
    case 'vaultWritten':
      return finish(decideVaultWrite(input), input, undefined);
    case 'accessPolicyChanged':
      return finish(
        {
          action: 'alert-only',
          code: 'access-policy-changed',
          severity: 'warning',
          reason: `The access policy of vault ${t.vaultName} was changed by ${callerLabel(mergeCallers(t.caller, input.caller))}.`,
        },
        input,
        undefined,
      );
  }
}

function sanctionReason(s: Exclude<SanctionStatus, { status: 'sanctioned' }>): {
  code: DecisionCode;
  text: string;
} {
  switch (s.status) {
    case 'untagged':
      return { code: 'untagged', text: `the key carries no ${SANCTION_TAG} tag` };
    case 'expired':
      return { code: 'tag-expired', text: `the key's ${SANCTION_TAG} tag (${s.value}) has expired` };
    case 'too-far-ahead':
      return {
        code: 'tag-too-far-ahead',
        text: `the key's ${SANCTION_TAG} tag (${s.value}) is more than 24 h ahead, and a sanction may last at most 24 h`,
      };
    case 'unparsable':
      return {
        code: 'tag-unparsable',
        text: `the key's ${SANCTION_TAG} tag (${s.value}) is not an ISO 8601 time with a zone`,
      };
  }
}

const TAG_ADVICE = `Tag the key with ${SANCTION_TAG} = an ISO 8601 time at most 24 h ahead before deleting it, or kvguard recovers it.`;

function decideKeyDeletion(input: DecideInput): Draft {
  const t = input.trigger as Extract<VaultTrigger, { kind: 'keyDeleted' | 'sweptDeletedKey' }>;
  const what = `key ${t.keyName} in vault ${t.vaultName}`;
  const caller = mergeCallers(t.caller, input.caller);
  const known = isCallerKnown(caller);
  const label = callerLabel(caller);
  const allowed = known ? allowListMatch(caller, input.policy.allowList) : undefined;
  const sanction = evaluateSanctionTag(input.key?.tags, input.now);
  const state = input.key?.state;

  const recover = (d: Omit<Draft, 'action' | 'purgeProtection'>): Draft =>
    state === 'gone'
      ? {
          action: 'alert-only',
          code: 'key-not-recoverable',
          severity: 'critical',
          reason: `${d.reason.replace(/ It is recovered\.$/, '')} The ${what} is gone (purged): it is not recoverable.`,
          purgeProtection: true,
        }
      : { ...d, action: 'recover-key', purgeProtection: true };

  if (input.prior !== undefined) {
    if (!known) {
      return {
        action: 'none',
        code: 'attribution-nothing-new',
        severity: 'informational',
        reason: 'No caller was identified yet.',
        notify: false,
      };
    }
    const p = input.prior.code;
    if (p === 'sanctioned-tag') {
      if (allowed !== undefined) {
        return {
          action: 'close-incident',
          code: 'attribution-allow-listed-sanctioned',
          severity: 'informational',
          reason: `The sanctioned deletion of the ${what} was made by ${label}, an allow-listed principal; the incident is closed.`,
        };
      }
      return recover({
        code: 'sanctioned-tag-misused',
        severity: 'critical',
        reason: `The ${what} carried a sanction tag, but ${label} is not on the allow-list: the tag was forged or misused. It is recovered.`,
      });
    }
    if (p === 'untagged' || p === 'tag-expired' || p === 'tag-too-far-ahead' || p === 'tag-unparsable') {
      if (allowed !== undefined) {
        return recover({
          code: 'attribution-allow-listed-untagged',
          severity: 'warning',
          reason: `${label} is allow-listed but deleted the ${what} without a valid ${SANCTION_TAG} tag. It is recovered.`,
          followUp: TAG_ADVICE,
        });
      }
      return recover({
        code: 'attribution-not-allow-listed',
        severity: 'warning',
        reason: `The ${what} was deleted by ${label}, who is not on the allow-list. It is recovered.`,
      });
    }
    return {
      action: 'none',
      code: 'attribution-nothing-new',
      severity: 'informational',
      reason: `The caller (${label}) was already known when the incident was decided.`,
      notify: false,
    };
  }

  if (state === 'active') {
    return {
      action: 'none',
      code: 'key-already-active',
      severity: 'informational',
      reason: `The ${what} is active again; nothing to recover.`,
      notify: false,
    };
  }

  if (known) {
    if (allowed !== undefined) {
      return {
        action: 'leave-deleted',
        code: 'allow-listed-caller',
        severity: 'informational',
        reason: `The ${what} was deleted by ${label}, an allow-listed principal (by ${allowed === 'oid' ? 'object id' : 'app id'}); it is left deleted.`,
      };
    }
    if (sanction.status === 'sanctioned') {
      return recover({
        code: 'sanctioned-tag-misused',
        severity: 'critical',
        reason: `The ${what} carried a sanction tag, but ${label} is not on the allow-list: the tag was forged or misused. It is recovered.`,
      });
    }
    return recover({
      code: 'caller-not-allow-listed',
      severity: 'warning',
      reason: `The ${what} was deleted by ${label}, who is not on the allow-list. It is recovered.`,
    });
  }

  if (sanction.status === 'sanctioned') {
    return {
      action: 'leave-deleted',
      code: 'sanctioned-tag',
      severity: 'informational',
      reason: `The caller is not known yet and the ${what} carries ${SANCTION_TAG} until ${sanction.until}; it is left deleted until the caller is identified.`,
    };
  }
  const why = sanctionReason(sanction);
  return recover({
    code: why.code,
    severity: 'warning',
    reason: `The caller of the deletion of the ${what} is not known yet and ${why.text}. It is recovered.`,
  });
}

function decideVaultDeletion(input: DecideInput): Draft {
  const t = input.trigger;
  const by = callerLabel(mergeCallers(t.caller, input.caller));
  const state = input.vault?.state;
  if (state === 'active') {
    return {
      action: 'none',
      code: 'vault-already-active',
      severity: 'informational',
      reason: `Vault ${t.vaultName} is active again; nothing to recover.`,
      notify: false,
    };
  }
  if (state === 'gone') {
    return {
      action: 'alert-only',
      code: 'vault-not-recoverable',
      severity: 'critical',
      reason: `Vault ${t.vaultName} was deleted by ${by} and is gone (purged): it is not recoverable.`,
    };
  }
  if (input.policy.vaultDeletion === 'alert') {
    return {
      action: 'alert-only',
      code: 'vault-deletion-alert-only',
      severity: 'warning',
      reason: `Vault ${t.vaultName} was deleted by ${by}; policy says to alert only, so it stays deleted.`,
    };
  }
  return {
    action: 'recover-vault',
    code: 'vault-deleted',
    severity: 'warning',
    reason: `Vault ${t.vaultName} was deleted by ${by}. It is recovered.`,
    purgeProtection: true,
  };
}

function lower(v: string | undefined): string | undefined {
  return v?.trim().toLowerCase();
}

/** What a vault write weakened, comparing the state before with the state after. */
export function vaultWeakenings(before: ObservedVault, after: ObservedVault): VaultWeakening[] {
  const out: VaultWeakening[] = [];
  if (
    before.softDeleteRetentionInDays !== undefined &&
    after.softDeleteRetentionInDays !== undefined &&
    after.softDeleteRetentionInDays < before.softDeleteRetentionInDays
  ) {
    out.push('retention-lowered');
  }
  if (lower(before.publicNetworkAccess) === 'disabled' && lower(after.publicNetworkAccess) === 'enabled') {
    out.push('public-network-opened');
  }
  if (lower(before.networkDefaultAction) === 'deny' && lower(after.networkDefaultAction) === 'allow') {
    out.push('network-default-allow');
  }
  if (
    before.enableRbacAuthorization !== undefined &&
    after.enableRbacAuthorization !== undefined &&
    before.enableRbacAuthorization !== after.enableRbacAuthorization
  ) {
    out.push('rbac-model-switched');
  }
  // Azure refuses to turn purge protection off; seeing it lost means the vault was replaced.
  if (before.purgeProtectionEnabled === true && after.purgeProtectionEnabled === false)
    out.push('purge-protection-lost');
  return out;
}

const WEAKENING_TEXT: Record<VaultWeakening, (b: ObservedVault, a: ObservedVault) => string> = {
  'retention-lowered': (b, a) =>
    `soft-delete retention lowered from ${b.softDeleteRetentionInDays} to ${a.softDeleteRetentionInDays} days`,
  'public-network-opened': () => 'public network access enabled',
  'network-default-allow': () => 'network ACL default action changed from Deny to Allow',
  'rbac-model-switched': (_b, a) =>
    `permission model switched to ${a.enableRbacAuthorization === true ? 'Azure RBAC' : 'access policies'}`,
  'purge-protection-lost': () => 'purge protection is off although it was on (the vault was replaced?)',
};

function decideVaultWrite(input: DecideInput): Draft {
  const t = input.trigger;
  const by = callerLabel(mergeCallers(t.caller, input.caller));
  if (input.vault === undefined || input.vaultBefore === undefined) {
    return {
      action: 'none',
      code: 'vault-write-no-baseline',
      severity: 'informational',
      reason: `Vault ${t.vaultName} was written by ${by}; without its earlier state kvguard cannot tell whether protection was weakened.`,
      notify: false,
    };
  }
  const weakenings = vaultWeakenings(input.vaultBefore, input.vault);
  if (weakenings.length === 0) {
    return {
      action: 'none',
      code: 'vault-write-no-weakening',
      severity: 'informational',
      reason: `Vault ${t.vaultName} was written by ${by}; its protection was not weakened.`,
      notify: false,
    };
  }
  const details = weakenings.map((w) => WEAKENING_TEXT[w](input.vaultBefore!, input.vault!)).join('; ');
  return {
    action: 'alert-only',
    code: 'vault-weakened',
    severity: weakenings.includes('purge-protection-lost') ? 'critical' : 'warning',
    reason: `Vault ${t.vaultName} was written by ${by} and its protection was weakened: ${details}.`,
    weakenings,
  };
}
