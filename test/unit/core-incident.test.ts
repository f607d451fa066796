/** Incident keys (design §2 step 4), the two-minute attach rule and alert ids. */
import {
  accessPolicyChangeIncident,
  accessPolicyIncident,
  accessPolicyIncidentPrefix,
  accessPolicyOrigin,
  alertId,
  findAccessPolicyIncident,
  deniedDeletionIncident,
  findAttachable,
  incidentKeyFor,
  keyDeletionIncident,
  keyIncidentPrefix,
  keyPurgeIncident,
  vaultDeletionIncident,
  vaultWriteIncident,
} from '../../lib/core/incident';
import type { VaultTrigger } from '../../lib/core/model';
import { normalise, fromSweptDeletedKey, toSignalCloudEvent } from '../../lib/core/normalise';
import type { SignalCloudEvent } from '../../lib/core/signal-data';
import { clone, loadJson } from './core-fixtures';

/** Azure Table RowKey rules: no / \ # ?, no control characters, at most 1 KiB. */
function isRowKeySafe(id: string): boolean {
  // eslint-disable-next-line no-control-regex
  return !/[/\\#?\u0000-\u001f\u007f-\u009f]/.test(id) && Buffer.byteLength(id, 'utf8') <= 1024;
}

describe('incident keys', () => {
  it('a key deletion is keyed by vault, key and deletedDate', () => {
    expect(keyDeletionIncident('Contoso-Payments', 'CMK-Orders', new Date('2026-03-14T09:26:54Z'))).toEqual({
      kind: 'key-deletion',
      partitionKey: 'contoso-payments',
      id: 'key_contoso-payments_cmk-orders_20260314t092654.000z',
    });
  });

  it('the same deletion seen by the sweep, the forwarder, a log alert and a replay gets one key', () => {
    const record = loadJson('auditevent/keydelete-user-short-claims.json');
    const ce = { specversion: '1.0', ...(toSignalCloudEvent(record) as SignalCloudEvent) };
    const deletedDate = '2026-03-14T09:26:54Z';
    const triggers = [
      fromSweptDeletedKey({
        vaultUrl: 'https://contoso-payments.vault.azure.net/',
        keyName: 'cmk-orders',
        deletedDate,
      }),
      normalise(record, 'auditLog')[0],
      normalise(ce, 'eventGrid')[0],
      normalise(ce, 'replay')[0],
    ] as VaultTrigger[];
    const ids = triggers.map((t) => {
      const r = incidentKeyFor(t, { deletedDate });
      return r.ok ? r.key.id : r.message;
    });
    expect(new Set(ids)).toEqual(new Set(['key_contoso-payments_cmk-orders_20260314t092654.000z']));
  });

  it('a key deletion without an observed deletedDate cannot be keyed yet (never by event id)', () => {
    const t = normalise(
      loadJson('auditevent/keydelete-user-short-claims.json'),
      'auditLog',
    )[0] as VaultTrigger;
    expect(incidentKeyFor(t)).toMatchObject({ ok: false, needs: 'deletedDate' });
  });

  it.each([
    [
      'vault deletion',
      vaultDeletionIncident('kv1', '2026-03-14T09:00:00Z'),
      'vault_kv1_20260314t090000.000z',
    ],
    [
      'access policy by event id',
      accessPolicyIncident('kv1', '00eccf70-95a7-4e7c-8299-2eb17ee9ad64'),
      'policy_kv1_00eccf70-95a7-4e7c-8299-2eb17ee9ad64',
    ],
    [
      'vault write by event id',
      vaultWriteIncident('kv1', '4db48cba-50a2-455a-93b4-de41a3b5b7f6'),
      'vaultwrite_kv1_4db48cba-50a2-455a-93b4-de41a3b5b7f6',
    ],
    [
      'refused deletion',
      deniedDeletionIncident(
        'kv1',
        'k1',
        '2026-03-14T09:20:41.3004127Z',
        '9E8D7C6B-5A4F-4E3D-8C2B-1A0F9E8D7C6B',
      ),
      'denied_kv1_k1_20260314t092041.300z_9e8d7c6b-5a4f-4e3d-8c2b-1a0f9e8d7c6b',
    ],
    [
      'refused deletion, caller unknown',
      deniedDeletionIncident('kv1', 'k1', '2026-03-14T09:20:41Z', undefined),
      'denied_kv1_k1_20260314t092041.000z_none',
    ],
    ['purge', keyPurgeIncident('kv1', 'k1', '2026-03-14T09:31:02Z'), 'purge_kv1_k1_20260314t093102.000z'],
  ])('%s', (_l, key, id) => {
    expect(key.id).toBe(id);
    expect(isRowKeySafe(key.id)).toBe(true);
  });

  it.each([
    ['an event id with / # ? \\ and control characters', 'a/b#c?d\\e\u0000f'],
    ['a huge event id', 'x'.repeat(10_000)],
    ['a unicode event id', 'événement-ß-🔑'],
  ])('hashes %s into a safe RowKey', (_l, eventId) => {
    const key = accessPolicyIncident('kv1', eventId);
    expect(isRowKeySafe(key.id)).toBe(true);
    expect(key.id).toMatch(/^policy_kv1_h[0-9a-f]{24}$/);
    expect(accessPolicyIncident('kv1', eventId).id).toBe(key.id);
  });

  it('the longest key deletion id stays well under 1 KiB', () => {
    const key = keyDeletionIncident('a'.repeat(24), 'k'.repeat(127), '2026-03-14T09:00:00Z');
    expect(isRowKeySafe(key.id)).toBe(true);
    expect(key.id.length).toBeLessThan(200);
  });

  it('refuses invalid names and times (programming errors)', () => {
    expect(() => keyDeletionIncident('kv/1', 'k', '2026-03-14T09:00:00Z')).toThrow();
    expect(() => keyDeletionIncident('kv1', 'k#1', '2026-03-14T09:00:00Z')).toThrow();
    expect(() => keyDeletionIncident('kv1', 'k1', 'yesterday')).toThrow();
  });

  it('key names are case-insensitive, so the incident is too', () => {
    expect(keyDeletionIncident('kv1', 'Key-A', '2026-03-14T09:00:00Z').id).toBe(
      keyDeletionIncident('KV1', 'key-a', '2026-03-14T09:00:00.000Z').id,
    );
    expect(
      keyDeletionIncident('kv1', 'key-a', '2026-03-14T09:00:00Z').id.startsWith(
        keyIncidentPrefix('KV1', 'KEY-A'),
      ),
    ).toBe(true);
  });

  it('incidentKeyFor covers every trigger kind', () => {
    const record = clone(loadJson('auditevent/records-batch.json'));
    const kinds = normalise(record, 'auditLog')
      .filter((r): r is VaultTrigger => r.kind !== 'rejection' && r.kind !== 'queryNeeded')
      .map((t) => {
        const r = incidentKeyFor(t, { deletedDate: '2026-03-14T09:26:54Z' });
        return r.ok ? r.key.kind : 'error';
      });
    expect(kinds).toEqual(['key-deletion', 'key-purge', 'delete-denied', 'key-deletion']);
  });
});

describe('findAttachable (the two-minute rule)', () => {
  const incidents = [
    { id: 'a', vaultName: 'kv1', keyName: 'k1', deletedDate: '2026-03-14T09:00:00Z' },
    { id: 'b', vaultName: 'kv1', keyName: 'k1', deletedDate: '2026-03-14T09:01:30Z' },
    { id: 'c', vaultName: 'kv1', keyName: 'k2', deletedDate: '2026-03-14T09:01:00Z' },
    { id: 'd', vaultName: 'kv2', keyName: 'k1', deletedDate: '2026-03-14T09:01:00Z' },
    { id: 'e', vaultName: 'kv1', keyName: 'k1', deletedDate: 'garbage' },
  ];

  it.each([
    ['the latest incident within two minutes', '2026-03-14T09:01:00Z', 'b'],
    ['exactly two minutes after the deletion', '2026-03-14T09:03:30Z', 'b'],
    ['a signal slightly before the deletedDate (clock skew)', '2026-03-14T08:59:00Z', 'a'],
    ['only the older one within the window', '2026-03-14T08:58:00Z', 'a'],
    ['nothing within two minutes', '2026-03-14T09:03:30.001Z', undefined],
    ['an invalid signal time', 'later', undefined],
  ])('%s', (_l, signalTime, expected) => {
    expect(findAttachable(incidents, { vaultName: 'KV1', keyName: 'K1' }, signalTime)?.id).toBe(expected);
  });
});

describe('alert ids', () => {
  it('are <incident>/primary and <incident>/attribution', () => {
    expect(alertId('key_kv1_k1_20260314t090000.000z', 'primary')).toBe(
      'key_kv1_k1_20260314t090000.000z/primary',
    );
    expect(alertId('key_kv1_k1_20260314t090000.000z', 'attribution')).toBe(
      'key_kv1_k1_20260314t090000.000z/attribution',
    );
  });
});

describe('access-policy changes: one incident for the two events of one change', () => {
  it('keys a change by vault, the time of its first event and that event’s origin', () => {
    const kv = accessPolicyChangeIncident('KV1', '2026-03-14T09:27:10Z', 'keyVault');
    const arm = accessPolicyChangeIncident('kv1', '2026-03-14T09:27:13.5Z', 'arm');
    expect(kv).toEqual({
      kind: 'access-policy',
      partitionKey: 'kv1',
      id: 'policy_kv1_20260314t092710.000z_kv',
    });
    expect(arm.id).toBe('policy_kv1_20260314t092713.500z_arm');
    expect(isRowKeySafe(kv.id) && isRowKeySafe(arm.id)).toBe(true);
    expect(kv.id.startsWith(accessPolicyIncidentPrefix('kv1'))).toBe(true);
  });

  it('tells the two origins apart by the operation name', () => {
    expect(accessPolicyOrigin({ operationName: 'Microsoft.KeyVault.VaultAccessPolicyChanged' })).toBe(
      'keyVault',
    );
    expect(accessPolicyOrigin({ operationName: 'MICROSOFT.KEYVAULT/VAULTS/ACCESSPOLICIES/WRITE' })).toBe(
      'arm',
    );
  });

  it('incidentKeyFor keys both events by time, not by the Event Grid id', () => {
    const base = {
      kind: 'accessPolicyChanged' as const,
      source: 'eventGrid' as const,
      vaultName: 'kv1',
      vaultHost: 'kv1.vault.azure.net',
      signalTime: '2026-03-14T09:27:10.000Z',
      eventId: 'same-id',
      operationName: 'Microsoft.KeyVault.VaultAccessPolicyChanged',
    };
    const r = incidentKeyFor(base);
    expect(r).toEqual({ ok: true, key: accessPolicyChangeIncident('kv1', base.signalTime, 'keyVault') });
    const other = incidentKeyFor({ ...base, signalTime: '2026-03-14T09:27:40.000Z' });
    expect(other.ok && r.ok && other.key.id !== r.key.id).toBe(true);
  });

  const incidents = [
    { id: 'a', vaultName: 'kv1', events: { keyVault: '2026-03-14T09:00:00.000Z' } },
    { id: 'b', vaultName: 'kv1', events: { keyVault: '2026-03-14T09:01:00.000Z' } },
    {
      id: 'c',
      vaultName: 'kv1',
      events: { arm: '2026-03-14T09:10:00.000Z', keyVault: '2026-03-14T09:10:02.000Z' },
    },
    { id: 'd', vaultName: 'kv2', events: { keyVault: '2026-03-14T09:00:30.000Z' } },
  ];

  it.each([
    [
      'the ARM event of the nearest change the Key Vault event opened',
      'arm',
      '2026-03-14T09:00:40Z',
      'b',
      false,
    ],
    ['… and of the older one when it is nearer', 'arm', '2026-03-14T09:00:20Z', 'a', false],
    ['a redelivery of the Key Vault event', 'keyVault', '2026-03-14T09:01:00Z', 'b', true],
    ['a redelivery of the ARM event after both met', 'arm', '2026-03-14T09:10:00Z', 'c', true],
    [
      'another Key Vault event near them: a change of its own',
      'keyVault',
      '2026-03-14T09:00:30Z',
      undefined,
      false,
    ],
    [
      'an ARM event when both events of the change near it were seen',
      'arm',
      '2026-03-14T09:10:05Z',
      undefined,
      false,
    ],
    ['an ARM event outside the window', 'arm', '2026-03-14T09:03:00.001Z', undefined, false],
    ['an invalid time', 'arm', 'later', undefined, false],
  ] as const)('%s', (_l, origin, signalTime, id, sameEvent) => {
    const found = findAccessPolicyIncident(incidents, { vaultName: 'KV1', origin, signalTime });
    expect(found?.incident.id).toBe(id);
    if (found) expect(found.sameEvent).toBe(sameEvent);
  });
});
