/** composeAlert(): who, what, what kvguard did and the result, what a human must still do. */
import { composeAlert, REQUIRED_PERMISSION, type AlertInput } from '../../lib/core/alert';
import { decide, SANCTION_TAG, type ResponsePolicy } from '../../lib/core/decide';
import type {
  ActionResult,
  Caller,
  KeyDeletedTrigger,
  ObservedKey,
  VaultTrigger,
} from '../../lib/core/model';

const NOW = '2026-03-14T10:00:00.000Z';
const policy: ResponsePolicy = {
  mode: 'enforce',
  allowList: { objectIds: ['aaaaaaaa-0000-4000-8000-000000000001'], appIds: [] },
  vaultDeletion: 'recover',
};
const attacker: Caller = {
  oid: '6f1c2d3e-4a5b-4c6d-8e7f-90a1b2c3d4e5',
  upn: 'mallory@contoso.example',
  appId: '04b07795-8ddb-461a-bbee-02f9e1bf7b46',
  ipAddress: '203.0.113.47',
  userAgent: 'azsdk-python-keyvault-keys/4.9.0',
};
const rotation: Caller = {
  oid: 'aaaaaaaa-0000-4000-8000-000000000001',
  appId: 'cccccccc-0000-4000-8000-000000000009',
  idtyp: 'app',
  displayName: 'key-rotation',
};

const base = {
  vaultName: 'contoso-payments',
  vaultHost: 'contoso-payments.vault.azure.net',
  signalTime: '2026-03-14T09:26:53.589Z',
  eventId: 'e1',
};
const deletedBy = (caller?: Caller): KeyDeletedTrigger => ({
  ...base,
  source: 'auditLog',
  kind: 'keyDeleted',
  keyName: 'cmk-orders',
  operationName: 'KeyDelete',
  ...(caller ? { caller } : {}),
});
const swept: VaultTrigger = {
  ...base,
  source: 'sweep',
  kind: 'sweptDeletedKey',
  keyName: 'cmk-orders',
  deletedDate: base.signalTime,
  operationName: 'sweep',
};
const untagged: ObservedKey = { state: 'deleted', tags: {} };
const INCIDENT = 'key_contoso-payments_cmk-orders_20260314t092654.000z';

function alertFor(
  partial: Omit<AlertInput, 'incidentId' | 'kind' | 'decision'> & {
    kind?: AlertInput['kind'];
    key?: ObservedKey;
    prior?: Parameters<typeof decide>[0]['prior'];
    mode?: 'enforce' | 'observe';
  },
) {
  const decision = decide({
    trigger: partial.trigger,
    now: NOW,
    policy: { ...policy, mode: partial.mode ?? 'enforce' },
    ...(partial.caller ? { caller: partial.caller } : {}),
    ...(partial.key ? { key: partial.key } : {}),
    ...(partial.prior ? { prior: partial.prior } : {}),
  });
  return composeAlert({
    incidentId: INCIDENT,
    kind: partial.kind ?? 'primary',
    trigger: partial.trigger,
    decision,
    ...(partial.caller ? { caller: partial.caller } : {}),
    ...(partial.results ? { results: partial.results } : {}),
    ...(partial.key ? { key: partial.key } : {}),
    ...(partial.observeMode !== undefined ? { observeMode: partial.observeMode } : {}),
  });
}

const recovered: ActionResult[] = [
  { action: 'recover-key', status: 'succeeded' },
  { action: 'enable-purge-protection', status: 'succeeded' },
];

describe('composeAlert', () => {
  it('a recovered key names the caller, the key, the actions and their results', () => {
    const a = alertFor({ trigger: deletedBy(attacker), key: untagged, results: recovered });
    expect(a).toEqual({
      id: `${INCIDENT}/primary`,
      incidentId: INCIDENT,
      kind: 'primary',
      title: 'Key cmk-orders deleted in vault contoso-payments: recovered',
      severity: 'warning',
      who: {
        known: true,
        summary:
          'mallory@contoso.example (oid 6f1c2d3e-4a5b-4c6d-8e7f-90a1b2c3d4e5, app 04b07795-8ddb-461a-bbee-02f9e1bf7b46) from 203.0.113.47 using azsdk-python-keyvault-keys/4.9.0',
        upn: 'mallory@contoso.example',
        appId: '04b07795-8ddb-461a-bbee-02f9e1bf7b46',
        oid: '6f1c2d3e-4a5b-4c6d-8e7f-90a1b2c3d4e5',
        ipAddress: '203.0.113.47',
        userAgent: 'azsdk-python-keyvault-keys/4.9.0',
      },
      what: {
        summary: 'key cmk-orders in vault contoso-payments (contoso-payments.vault.azure.net)',
        vaultName: 'contoso-payments',
        vaultHost: 'contoso-payments.vault.azure.net',
        keyName: 'cmk-orders',
        signalTime: '2026-03-14T09:26:53.589Z',
        operationName: 'KeyDelete',
      },
      decision: {
        action: 'recover-key',
        code: 'caller-not-allow-listed',
        reason:
          'The key cmk-orders in vault contoso-payments was deleted by mallory@contoso.example, who is not on the allow-list. It is recovered.',
      },
      actions: [
        { action: 'recover-key', status: 'succeeded', summary: 'recover the key: done' },
        { action: 'enable-purge-protection', status: 'succeeded', summary: 'turn on purge protection: done' },
      ],
      outcome: 'kvguard tried to recover the key: done; turn on purge protection: done.',
      humanActions: [
        'Find out why mallory@contoso.example deleted the key; if it was not expected, revoke its access to the vault and review its other activity.',
      ],
      observeMode: false,
    });
  });

  it('when the sweep came first the caller is "still being identified" and a follow-up is promised', () => {
    const a = alertFor({ trigger: swept, key: untagged, results: recovered });
    expect(a.who).toEqual({ known: false, summary: 'still being identified' });
    expect(a.humanActions).toEqual(['kvguard is identifying the caller; a follow-up alert will name them.']);
  });

  it.each<
    [string, Partial<Parameters<typeof alertFor>[0]> & { trigger: VaultTrigger }, string, RegExp | string]
  >([
    [
      'a purge is critical and not recoverable',
      { trigger: { ...deletedBy(attacker), kind: 'keyPurged', operationName: 'KeyPurge' } },
      'critical',
      'purged in vault contoso-payments: not recoverable',
    ],
    [
      'a key gone before recovery is critical',
      { trigger: swept, key: { state: 'gone' } },
      'critical',
      'not recoverable',
    ],
    [
      'a forbidden recovery is critical',
      {
        trigger: deletedBy(attacker),
        key: untagged,
        results: [{ action: 'recover-key', status: 'forbidden' }],
      },
      'critical',
      'recovery forbidden',
    ],
    [
      'a failed recovery is critical',
      {
        trigger: deletedBy(attacker),
        key: untagged,
        results: [{ action: 'recover-key', status: 'failed', detail: 'boom' }],
      },
      'critical',
      'recovery failed',
    ],
    [
      'a recovery already done by someone else stays a warning',
      {
        trigger: deletedBy(attacker),
        key: untagged,
        results: [{ action: 'recover-key', status: 'already-done' }],
      },
      'warning',
      'already active again',
    ],
    [
      'a throttled recovery is a warning in progress',
      {
        trigger: deletedBy(attacker),
        key: untagged,
        results: [{ action: 'recover-key', status: 'throttled' }],
      },
      'warning',
      'recovery in progress',
    ],
    [
      'a forbidden purge-protection write after a recovery is a warning',
      {
        trigger: deletedBy(attacker),
        key: untagged,
        results: [
          { action: 'recover-key', status: 'succeeded' },
          { action: 'enable-purge-protection', status: 'forbidden' },
        ],
      },
      'warning',
      'recovered',
    ],
    [
      'an allow-listed deletion is informational and left deleted',
      { trigger: deletedBy(rotation), key: untagged },
      'informational',
      'left deleted (allow-listed caller)',
    ],
    [
      'a sanctioned deletion is informational and left deleted',
      { trigger: swept, key: { state: 'deleted', tags: { [SANCTION_TAG]: '2026-03-14T12:00:00Z' } } },
      'informational',
      'left deleted (sanctioned)',
    ],
    [
      'a refused deletion',
      { trigger: { ...deletedBy(attacker), kind: 'keyDeleteDenied', httpStatusCode: 403 } },
      'warning',
      'Refused attempt to delete key cmk-orders in vault contoso-payments',
    ],
    [
      'a recovered vault',
      {
        trigger: {
          ...base,
          source: 'eventGrid',
          kind: 'vaultDeleted',
          operationName: 'Microsoft.KeyVault/vaults/delete',
          caller: attacker,
        },
        results: [{ action: 'recover-vault', status: 'succeeded' }],
      },
      'warning',
      'Vault contoso-payments deleted: recovered',
    ],
    [
      'an access policy change',
      {
        trigger: {
          ...base,
          source: 'eventGrid',
          kind: 'accessPolicyChanged',
          operationName: 'Microsoft.KeyVault.VaultAccessPolicyChanged',
        },
      },
      'warning',
      'Access policy of vault contoso-payments changed',
    ],
  ])('%s', (_l, input, severity, title) => {
    const a = alertFor(input);
    expect(a.severity).toBe(severity);
    expect(a.title).toEqual(expect.stringContaining(title as string));
    expect(a.humanActions.length).toBeGreaterThan(0);
  });

  it('a forbidden recovery tells the human which permission kvguard lacks', () => {
    const a = alertFor({
      trigger: deletedBy(attacker),
      key: untagged,
      results: [{ action: 'recover-key', status: 'forbidden' }],
    });
    expect(a.humanActions[0]).toContain(REQUIRED_PERMISSION['recover-key']);
    expect(a.humanActions[0]).toContain(
      'az keyvault key recover --vault-name contoso-payments --name cmk-orders',
    );
  });

  it('a purge tells the human to restore from backup and names the caller', () => {
    const a = alertFor({ trigger: { ...deletedBy(attacker), kind: 'keyPurged', operationName: 'KeyPurge' } });
    expect(a.humanActions.join(' ')).toContain('restore the key from a backup');
    expect(a.humanActions.join(' ')).toContain('mallory@contoso.example');
  });

  it('observe mode lists what would have been done and how to do it by hand', () => {
    const a = alertFor({ trigger: deletedBy(attacker), key: untagged, mode: 'observe', observeMode: true });
    expect(a.observeMode).toBe(true);
    expect(a.title).toBe(
      'Key cmk-orders deleted in vault contoso-payments: would be recovered (observe mode)',
    );
    expect(a.actions.map((x) => x.status)).toEqual(['planned', 'planned']);
    expect(a.outcome).toBe(
      'kvguard would recover the key: planned only (observe mode); turn on purge protection: planned only (observe mode).',
    );
    expect(a.humanActions[0]).toContain('observe mode and wrote nothing');
    expect(a.humanActions[0]).toContain('az keyvault key recover');
  });

  it('the attribution follow-up names the caller and carries the advice to tag first', () => {
    const a = alertFor({
      kind: 'attribution',
      trigger: swept,
      caller: rotation,
      key: { state: 'active' },
      prior: { code: 'untagged', action: 'recover-key' },
      results: [{ action: 'recover-key', status: 'already-done' }],
    });
    expect(a.id).toBe(`${INCIDENT}/attribution`);
    expect(a.title).toBe(
      'Key cmk-orders in vault contoso-payments: deletion made by key-rotation (app cccccccc-0000-4000-8000-000000000009)',
    );
    expect(a.who).toMatchObject({
      known: true,
      oid: 'aaaaaaaa-0000-4000-8000-000000000001',
      displayName: 'key-rotation',
    });
    expect(a.humanActions.at(-1)).toContain(SANCTION_TAG);
  });

  it('scrubs secrets and control characters from every text it carries', () => {
    const sneaky: Caller = {
      ...attacker,
      userAgent: `curl/8 \u001b[31mBearer eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0.sig\u202e`,
    };
    const a = alertFor({
      trigger: deletedBy(sneaky),
      key: untagged,
      results: [{ action: 'recover-key', status: 'failed', detail: 'POST https://x/?sig=SECRETSIG failed' }],
    });
    const strings: string[] = [];
    const walk = (v: unknown): void => {
      if (typeof v === 'string') strings.push(v);
      else if (v !== null && typeof v === 'object') Object.values(v).forEach(walk);
    };
    walk(a);
    expect(a.who.userAgent).toBe('curl/8 [31mBearer [redacted-jwt]');
    for (const s of strings) {
      expect(s).not.toContain('eyJ');
      expect(s).not.toContain('SECRETSIG');
      // eslint-disable-next-line no-control-regex
      expect(s).not.toMatch(/[\u0000-\u001f\u202e]/);
    }
  });
});

describe('access-policy changes: honest about a caller the event does not name', () => {
  const fromKeyVault: VaultTrigger = {
    ...base,
    source: 'eventGrid',
    kind: 'accessPolicyChanged',
    operationName: 'Microsoft.KeyVault.VaultAccessPolicyChanged',
  };
  const fromArm = (caller?: Caller): VaultTrigger => ({
    ...base,
    source: 'eventGrid',
    kind: 'accessPolicyChanged',
    operationName: 'Microsoft.KeyVault/vaults/accessPolicies/write',
    eventType: 'Microsoft.Resources.ResourceWriteSuccess',
    ...(caller ? { caller } : {}),
  });

  it('the Key Vault event: no "still being identified"; a follow-up only if ARM’s event arrives, else the activity log', () => {
    const a = alertFor({ trigger: fromKeyVault });
    expect(a.who.known).toBe(false);
    expect(a.who.summary).not.toContain('still being identified');
    expect(a.who.summary).toBe(
      "not named by the Key Vault event; a follow-up names the caller if ARM's event for the change arrives",
    );
    const todo = a.humanActions.join(' ');
    expect(todo).toContain('unless a follow-up names them');
    expect(todo).toContain('activity log');
    expect(todo).toContain(base.signalTime);
  });

  it('ARM’s event without claims promises nothing', () => {
    const a = alertFor({ trigger: fromArm() });
    expect(a.who).toEqual({ known: false, summary: 'not named by the ARM event' });
    expect(a.humanActions.join(' ')).not.toContain('follow-up');
    expect(a.humanActions.join(' ')).toContain('activity log');
  });

  it('ARM’s event names the caller in the primary', () => {
    const a = alertFor({ trigger: fromArm(attacker) });
    expect(a.who).toMatchObject({ known: true, upn: attacker.upn, oid: attacker.oid });
    expect(a.decision.reason).toBe(
      'The access policy of vault contoso-payments was changed by mallory@contoso.example.',
    );
    expect(a.humanActions.join(' ')).not.toContain('activity log');
  });

  it('the follow-up says who changed the policy, not who deleted something', () => {
    const a = alertFor({ kind: 'attribution', trigger: fromKeyVault, caller: attacker });
    expect(a.id).toBe(`${INCIDENT}/attribution`);
    expect(a.title).toBe('Access policy of vault contoso-payments: changed by mallory@contoso.example');
    expect(a.who).toMatchObject({ known: true, oid: attacker.oid, ipAddress: attacker.ipAddress });
  });
});
