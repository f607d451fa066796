/** decide(): design §2 step 6 as decision tables. */
import {
  decide,
  evaluateSanctionTag,
  SANCTION_TAG,
  vaultWeakenings,
  type DecideInput,
  type ResponsePolicy,
} from '../../lib/core/decide';
import type {
  Caller,
  DecisionCode,
  KeyDeletedTrigger,
  ObservedKey,
  ObservedVault,
  VaultTrigger,
} from '../../lib/core/model';

const NOW = '2026-03-14T10:00:00.000Z';
const policy: ResponsePolicy = {
  mode: 'enforce',
  allowList: {
    objectIds: ['AAAAAAAA-0000-4000-8000-000000000001'],
    appIds: ['bbbbbbbb-0000-4000-8000-000000000002'],
  },
  vaultDeletion: 'recover',
};

const base = {
  source: 'sweep' as const,
  vaultName: 'kv1',
  vaultHost: 'kv1.vault.azure.net',
  signalTime: '2026-03-14T09:59:00.000Z',
  eventId: 'e1',
};
const swept: VaultTrigger = {
  ...base,
  kind: 'sweptDeletedKey',
  keyName: 'k1',
  deletedDate: base.signalTime,
  operationName: 'sweep',
};
const deleted = (caller?: Caller): KeyDeletedTrigger => ({
  ...base,
  source: 'auditLog',
  kind: 'keyDeleted',
  keyName: 'k1',
  operationName: 'KeyDelete',
  ...(caller ? { caller } : {}),
});

const rotation: Caller = {
  oid: 'aaaaaaaa-0000-4000-8000-000000000001',
  appId: 'cccccccc-0000-4000-8000-000000000009',
  idtyp: 'app',
};
const pipelineApp: Caller = {
  oid: 'dddddddd-0000-4000-8000-000000000004',
  appId: 'BBBBBBBB-0000-4000-8000-000000000002',
  idtyp: 'app',
};
const userViaAllowListedClient: Caller = {
  oid: 'eeeeeeee-0000-4000-8000-000000000005',
  appId: 'bbbbbbbb-0000-4000-8000-000000000002',
  upn: 'mallory@contoso.example',
  idtyp: 'user',
};
const attacker: Caller = {
  oid: 'ffffffff-0000-4000-8000-000000000006',
  upn: 'mallory@contoso.example',
  ipAddress: '203.0.113.47',
};
const ipOnly: Caller = { ipAddress: '203.0.113.47' };

const tagged = (value: string): ObservedKey => ({ state: 'deleted', tags: { [SANCTION_TAG]: value } });
const inOneHour = '2026-03-14T11:00:00Z';
const untagged: ObservedKey = { state: 'deleted', tags: {} };

describe('key deletions, first decision', () => {
  it.each<[string, VaultTrigger, Caller | undefined, ObservedKey | undefined, DecisionCode, string, string]>([
    // label, trigger, enriched caller, key, code, action, severity
    [
      'allow-listed object id: left alone',
      deleted(rotation),
      undefined,
      untagged,
      'allow-listed-caller',
      'leave-deleted',
      'informational',
    ],
    [
      'allow-listed app id of an app-only caller: left alone',
      deleted(pipelineApp),
      undefined,
      untagged,
      'allow-listed-caller',
      'leave-deleted',
      'informational',
    ],
    [
      'allow-listed app id but a user token (the client app): recovered',
      deleted(userViaAllowListedClient),
      undefined,
      untagged,
      'caller-not-allow-listed',
      'recover-key',
      'warning',
    ],
    [
      'anyone else: recovered',
      deleted(attacker),
      undefined,
      untagged,
      'caller-not-allow-listed',
      'recover-key',
      'warning',
    ],
    [
      'anyone else with a valid sanction tag: the tag is misused, critical',
      deleted(attacker),
      undefined,
      tagged(inOneHour),
      'sanctioned-tag-misused',
      'recover-key',
      'critical',
    ],
    [
      'allow-listed with a valid tag: left alone',
      deleted(rotation),
      undefined,
      tagged(inOneHour),
      'allow-listed-caller',
      'leave-deleted',
      'informational',
    ],
    [
      'caller from enrichment counts as known',
      swept,
      attacker,
      untagged,
      'caller-not-allow-listed',
      'recover-key',
      'warning',
    ],
    [
      'sweep, caller unknown, no tag: recovered',
      swept,
      undefined,
      untagged,
      'untagged',
      'recover-key',
      'warning',
    ],
    [
      'sweep, caller unknown, key not observed: recovered',
      swept,
      undefined,
      undefined,
      'untagged',
      'recover-key',
      'warning',
    ],
    [
      'an IP alone is not a known caller',
      deleted(ipOnly),
      undefined,
      untagged,
      'untagged',
      'recover-key',
      'warning',
    ],
    [
      'sweep, unexpired tag within 24 h: left deleted',
      swept,
      undefined,
      tagged(inOneHour),
      'sanctioned-tag',
      'leave-deleted',
      'informational',
    ],
    [
      'tag with an offset, 23 h 59 ahead: sanctioned',
      swept,
      undefined,
      tagged('2026-03-15T10:59:00+01:00'),
      'sanctioned-tag',
      'leave-deleted',
      'informational',
    ],
    [
      'tag exactly 24 h ahead: sanctioned',
      swept,
      undefined,
      tagged('2026-03-15T10:00:00Z'),
      'sanctioned-tag',
      'leave-deleted',
      'informational',
    ],
    [
      'tag 24 h and 1 s ahead: not sanctioned',
      swept,
      undefined,
      tagged('2026-03-15T10:00:01Z'),
      'tag-too-far-ahead',
      'recover-key',
      'warning',
    ],
    [
      'tag a year ahead: not sanctioned',
      swept,
      undefined,
      tagged('2027-03-14T10:00:00Z'),
      'tag-too-far-ahead',
      'recover-key',
      'warning',
    ],
    [
      'tag expired: recovered',
      swept,
      undefined,
      tagged('2026-03-14T09:00:00Z'),
      'tag-expired',
      'recover-key',
      'warning',
    ],
    ['tag equal to now: expired', swept, undefined, tagged(NOW), 'tag-expired', 'recover-key', 'warning'],
    [
      'tag not a time: recovered',
      swept,
      undefined,
      tagged('tomorrow'),
      'tag-unparsable',
      'recover-key',
      'warning',
    ],
    [
      'tag without a zone: recovered',
      swept,
      undefined,
      tagged('2026-03-14T11:00:00'),
      'tag-unparsable',
      'recover-key',
      'warning',
    ],
    [
      'tag with an impossible date: recovered',
      swept,
      undefined,
      tagged('2026-02-30T11:00:00Z'),
      'tag-unparsable',
      'recover-key',
      'warning',
    ],
    [
      'tag name in another case does not count',
      swept,
      undefined,
      { state: 'deleted', tags: { 'Kvguard-Sanctioned-Delete': inOneHour } },
      'untagged',
      'recover-key',
      'warning',
    ],
    [
      'key already active again: nothing to do',
      swept,
      undefined,
      { state: 'active' },
      'key-already-active',
      'none',
      'informational',
    ],
    [
      'key gone (purged) before kvguard acted: not recoverable',
      swept,
      undefined,
      { state: 'gone' },
      'key-not-recoverable',
      'alert-only',
      'critical',
    ],
    [
      'key gone, known attacker: not recoverable',
      deleted(attacker),
      undefined,
      { state: 'gone' },
      'key-not-recoverable',
      'alert-only',
      'critical',
    ],
  ])('%s', (_label, trigger, caller, key, code, action, severity) => {
    const d = decide({ trigger, now: NOW, policy, ...(caller ? { caller } : {}), ...(key ? { key } : {}) });
    expect({ code: d.code, action: d.action, severity: d.severity }).toEqual({ code, action, severity });
    expect(d.reason.length).toBeGreaterThan(20);
  });

  it('says why a tag did not sanction the deletion', () => {
    expect(
      decide({ trigger: swept, now: NOW, policy, key: tagged('2027-03-14T10:00:00Z') }).reason,
    ).toContain('more than 24 h ahead');
    expect(decide({ trigger: swept, now: NOW, policy, key: tagged('tomorrow') }).reason).toContain(
      'not an ISO 8601 time',
    );
    expect(
      decide({ trigger: swept, now: NOW, policy, key: tagged('2026-03-14T09:00:00Z') }).reason,
    ).toContain('has expired');
  });

  it('names the caller in the reason', () => {
    expect(decide({ trigger: deleted(attacker), now: NOW, policy, key: untagged }).reason).toContain(
      'mallory@contoso.example',
    );
  });
});

describe('key deletions, attribution arriving later', () => {
  it.each<[string, DecisionCode, Caller | undefined, ObservedKey, DecisionCode, string, string, boolean]>([
    // label, prior code, caller now known, key, code, action, severity, follow-up advice
    [
      'sanctioned, allow-listed caller: incident closed',
      'sanctioned-tag',
      rotation,
      tagged(inOneHour),
      'attribution-allow-listed-sanctioned',
      'close-incident',
      'informational',
      false,
    ],
    [
      'sanctioned, anyone else: forged or misused tag, recovered, critical',
      'sanctioned-tag',
      attacker,
      tagged(inOneHour),
      'sanctioned-tag-misused',
      'recover-key',
      'critical',
      false,
    ],
    [
      'sanctioned, anyone else, key purged meanwhile: not recoverable',
      'sanctioned-tag',
      attacker,
      { state: 'gone' },
      'key-not-recoverable',
      'alert-only',
      'critical',
      false,
    ],
    [
      'untagged and recovered, allow-listed caller: follow-up says to tag first',
      'untagged',
      rotation,
      { state: 'active' },
      'attribution-allow-listed-untagged',
      'recover-key',
      'warning',
      true,
    ],
    [
      'expired tag and recovered, allow-listed caller: same advice',
      'tag-expired',
      pipelineApp,
      { state: 'active' },
      'attribution-allow-listed-untagged',
      'recover-key',
      'warning',
      true,
    ],
    [
      'untagged and recovered, anyone else: named in the follow-up',
      'untagged',
      attacker,
      { state: 'active' },
      'attribution-not-allow-listed',
      'recover-key',
      'warning',
      false,
    ],
    [
      'still no caller: nothing new',
      'untagged',
      undefined,
      { state: 'active' },
      'attribution-nothing-new',
      'none',
      'informational',
      false,
    ],
    [
      'caller was already known: nothing new',
      'caller-not-allow-listed',
      attacker,
      { state: 'active' },
      'attribution-nothing-new',
      'none',
      'informational',
      false,
    ],
  ])('%s', (_label, priorCode, caller, key, code, action, severity, advice) => {
    const d = decide({
      trigger: swept,
      now: NOW,
      policy,
      key,
      prior: { code: priorCode, action: 'recover-key' },
      ...(caller ? { caller } : {}),
    });
    expect({ code: d.code, action: d.action, severity: d.severity }).toEqual({ code, action, severity });
    expect(d.followUp !== undefined).toBe(advice);
    if (advice) expect(d.followUp).toContain(SANCTION_TAG);
  });
});

describe('purges, refused deletions, vaults, access policies', () => {
  const purged: VaultTrigger = { ...deleted(attacker), kind: 'keyPurged', operationName: 'KeyPurge' };
  const denied: VaultTrigger = { ...deleted(attacker), kind: 'keyDeleteDenied', httpStatusCode: 403 };
  const vaultDeleted: VaultTrigger = {
    ...base,
    source: 'eventGrid',
    kind: 'vaultDeleted',
    operationName: 'Microsoft.KeyVault/vaults/delete',
    caller: attacker,
  };
  const sweptVault: VaultTrigger = {
    ...base,
    kind: 'sweptDeletedVault',
    deletionDate: base.signalTime,
    operationName: 'sweep',
    purgeProtectionEnabled: true,
  };
  const written: VaultTrigger = {
    ...base,
    source: 'eventGrid',
    kind: 'vaultWritten',
    operationName: 'Microsoft.KeyVault/vaults/write',
    caller: attacker,
  };
  const policyChanged: VaultTrigger = {
    ...base,
    source: 'eventGrid',
    kind: 'accessPolicyChanged',
    operationName: 'Microsoft.KeyVault.VaultAccessPolicyChanged',
  };
  const strong: ObservedVault = {
    state: 'active',
    purgeProtectionEnabled: true,
    softDeleteRetentionInDays: 90,
    publicNetworkAccess: 'Disabled',
    networkDefaultAction: 'Deny',
    enableRbacAuthorization: true,
  };

  it.each<[string, Partial<DecideInput> & { trigger: VaultTrigger }, DecisionCode, string, string, boolean]>([
    // label, input, code, action, severity, enable purge protection
    [
      'a purge is critical and not recoverable',
      { trigger: purged },
      'key-purged',
      'alert-only',
      'critical',
      true,
    ],
    [
      'a purge on a protected vault needs no protection write',
      { trigger: purged, vault: { purgeProtectionEnabled: true } },
      'key-purged',
      'alert-only',
      'critical',
      false,
    ],
    [
      'a refused deletion is alert only',
      { trigger: denied },
      'delete-denied',
      'alert-only',
      'warning',
      false,
    ],
    [
      'a deleted vault is recovered, with purge protection',
      { trigger: vaultDeleted },
      'vault-deleted',
      'recover-vault',
      'warning',
      true,
    ],
    [
      'a swept deleted vault that had protection is recovered without a protection write',
      { trigger: sweptVault },
      'vault-deleted',
      'recover-vault',
      'warning',
      false,
    ],
    [
      'policy "alert" leaves a deleted vault deleted',
      { trigger: vaultDeleted, policy: { ...policy, vaultDeletion: 'alert' } },
      'vault-deletion-alert-only',
      'alert-only',
      'warning',
      false,
    ],
    [
      'a vault active again needs nothing',
      { trigger: vaultDeleted, vault: { state: 'active' } },
      'vault-already-active',
      'none',
      'informational',
      false,
    ],
    [
      'a purged vault is critical',
      { trigger: vaultDeleted, vault: { state: 'gone' } },
      'vault-not-recoverable',
      'alert-only',
      'critical',
      false,
    ],
    [
      'a vault write without a baseline cannot be judged',
      { trigger: written, vault: strong },
      'vault-write-no-baseline',
      'none',
      'informational',
      false,
    ],
    [
      'a vault write that weakens nothing',
      { trigger: written, vaultBefore: strong, vault: { ...strong, softDeleteRetentionInDays: 90 } },
      'vault-write-no-weakening',
      'none',
      'informational',
      false,
    ],
    [
      'retention lowered',
      { trigger: written, vaultBefore: strong, vault: { ...strong, softDeleteRetentionInDays: 7 } },
      'vault-weakened',
      'alert-only',
      'warning',
      false,
    ],
    [
      'public network access opened',
      { trigger: written, vaultBefore: strong, vault: { ...strong, publicNetworkAccess: 'Enabled' } },
      'vault-weakened',
      'alert-only',
      'warning',
      false,
    ],
    [
      'RBAC model switched to access policies',
      { trigger: written, vaultBefore: strong, vault: { ...strong, enableRbacAuthorization: false } },
      'vault-weakened',
      'alert-only',
      'warning',
      false,
    ],
    [
      'purge protection lost (impossible in Azure: a replaced vault)',
      { trigger: written, vaultBefore: strong, vault: { ...strong, purgeProtectionEnabled: false } },
      'vault-weakened',
      'alert-only',
      'critical',
      false,
    ],
    [
      'an access policy change is alert only',
      { trigger: policyChanged },
      'access-policy-changed',
      'alert-only',
      'warning',
      false,
    ],
  ])('%s', (_label, partial, code, action, severity, protect) => {
    const d = decide({ now: NOW, policy, ...partial });
    expect({
      code: d.code,
      action: d.action,
      severity: d.severity,
      protect: d.enablePurgeProtection,
    }).toEqual({ code, action, severity, protect });
  });

  it('lists every weakening of a vault write and says it in the reason', () => {
    const d = decide({
      trigger: written,
      now: NOW,
      policy,
      vaultBefore: strong,
      vault: {
        ...strong,
        softDeleteRetentionInDays: 7,
        publicNetworkAccess: 'Enabled',
        networkDefaultAction: 'Allow',
        enableRbacAuthorization: false,
      },
    });
    expect(d.weakenings).toEqual([
      'retention-lowered',
      'public-network-opened',
      'network-default-allow',
      'rbac-model-switched',
    ]);
    expect(d.reason).toContain('from 90 to 7 days');
    expect(d.reason).toContain('mallory@contoso.example');
  });

  it('vaultWeakenings ignores unknown fields', () => {
    expect(vaultWeakenings({}, { softDeleteRetentionInDays: 7, publicNetworkAccess: 'Enabled' })).toEqual([]);
  });
});

describe('observe mode', () => {
  const observe: ResponsePolicy = { ...policy, mode: 'observe' };

  it.each<[string, DecideInput]>([
    ['a recovery', { trigger: swept, now: NOW, policy: observe, key: untagged }],
    [
      'a vault recovery',
      {
        trigger: {
          ...base,
          kind: 'sweptDeletedVault',
          deletionDate: base.signalTime,
          operationName: 'sweep',
        },
        now: NOW,
        policy: observe,
      },
    ],
    [
      'a purge (protection write)',
      {
        trigger: { ...deleted(attacker), kind: 'keyPurged', operationName: 'KeyPurge' },
        now: NOW,
        policy: observe,
      },
    ],
  ])('decides %s the same way but writes nothing', (_l, input) => {
    const observed = decide(input);
    const enforced = decide({ ...input, policy });
    expect({ ...observed, reason: '', writes: true }).toEqual({ ...enforced, reason: '' });
    expect(enforced.writes).toBe(true);
    expect(observed.writes).toBe(false);
    expect(observed.reason).toContain('Observe mode: nothing is written.');
  });

  it('decisions that change nothing never write', () => {
    expect(decide({ trigger: deleted(rotation), now: NOW, policy, key: untagged }).writes).toBe(false);
    expect(
      decide({
        trigger: { ...deleted(attacker), kind: 'keyDeleteDenied', httpStatusCode: 403 },
        now: NOW,
        policy,
      }).writes,
    ).toBe(false);
  });
});

describe('evaluateSanctionTag', () => {
  it.each([
    [undefined, { status: 'untagged' }],
    [{}, { status: 'untagged' }],
    [{ [SANCTION_TAG]: inOneHour }, { status: 'sanctioned', until: '2026-03-14T11:00:00.000Z' }],
    [
      { [SANCTION_TAG]: ' 2026-03-14T11:00:00Z ' },
      { status: 'sanctioned', until: '2026-03-14T11:00:00.000Z' },
    ],
    [{ [SANCTION_TAG]: '' }, { status: 'unparsable', value: '' }],
    [{ [SANCTION_TAG]: 'x'.repeat(500) }, { status: 'unparsable', value: `${'x'.repeat(63)}…` }],
  ])('%j → %j', (tags, expected) => {
    expect(evaluateSanctionTag(tags, NOW)).toEqual(expected);
  });

  it('an unparsable now sanctions nothing', () => {
    expect(evaluateSanctionTag({ [SANCTION_TAG]: inOneHour }, 'garbage').status).toBe('unparsable');
  });
});
