/** normalise(): AuditEvent records, kvguard signal CloudEvents, alias, access policy, log alerts, sweep rows. */
import { createHash } from 'node:crypto';
import type { KeyDeletedTrigger, NormaliseResult, Rejection, Trigger } from '../../lib/core/model';
import {
  fromSweptDeletedKey,
  fromSweptDeletedVault,
  isRejection,
  MAX_ITEMS,
  normalise,
  toSignalCloudEvent,
  toSignalCloudEvents,
} from '../../lib/core/normalise';
import type { SignalCloudEvent } from '../../lib/core/signal-data';
import { clone, loadJson, VAULT_ID } from './core-fixtures';

const audit = (name: string): Record<string, unknown> =>
  clone(loadJson(`auditevent/${name}.json`)) as Record<string, unknown>;

function idOf(resourceId: string, op: string, time: string, requestUri: string, oid: string): string {
  return createHash('sha256')
    .update(JSON.stringify([resourceId.toLowerCase(), op, time, requestUri, oid]))
    .digest('hex')
    .slice(0, 32);
}

describe('AuditEvent records', () => {
  it('a 2xx KeyDelete with short-name claims is a key deletion with the full caller', () => {
    expect(normalise(audit('keydelete-user-short-claims'), 'auditLog')).toEqual([
      {
        kind: 'keyDeleted',
        source: 'auditLog',
        vaultName: 'contoso-payments',
        vaultHost: 'contoso-payments.vault.azure.net',
        vaultResourceId: VAULT_ID,
        keyName: 'cmk-orders',
        signalTime: '2026-03-14T09:26:53.589Z',
        caller: {
          oid: '6f1c2d3e-4a5b-4c6d-8e7f-90a1b2c3d4e5',
          upn: 'mallory@contoso.example',
          appId: '04b07795-8ddb-461a-bbee-02f9e1bf7b46',
          idtyp: 'user',
          ipAddress: '203.0.113.47',
          userAgent: 'azsdk-python-keyvault-keys/4.9.0 Python/3.12.3 (Linux-6.8.0-x86_64-with-glibc2.39)',
        },
        eventId: idOf(
          VAULT_ID,
          'KeyDelete',
          '2026-03-14T09:26:53.5897932Z',
          'https://contoso-payments.vault.azure.net/keys/cmk-orders?api-version=7.5',
          '6f1c2d3e-4a5b-4c6d-8e7f-90a1b2c3d4e5',
        ),
        operationName: 'KeyDelete',
        httpStatusCode: 200,
      },
    ]);
  });

  it('a KeyDelete with URI-name claims (older records) reads the object id from the URI claim', () => {
    const [t] = normalise(audit('keydelete-app-uri-claims'), 'auditLog') as KeyDeletedTrigger[];
    expect(t).toMatchObject({
      kind: 'keyDeleted',
      keyName: 'rotation-temp-01',
      signalTime: '2026-03-14T09:27:10.012Z',
      caller: {
        oid: '2c9d8e7f-6a5b-4c3d-9e1f-0a9b8c7d6e5f',
        appId: 'a1b2c3d4-e5f6-4a7b-8c9d-0e1f2a3b4c5d',
        ipAddress: '198.51.100.23',
        userAgent:
          'azsdk-js-keyvault-keys/4.8.0 core-rest-pipeline/1.16.0 Node/v20.12.2 OS/(x64-Linux-5.15.0)',
      },
    });
    expect(t!.caller).not.toHaveProperty('upn');
  });

  it('reads the upn from the URI claim when there is no short one', () => {
    const r = audit('keydelete-app-uri-claims');
    (r.identity as { claim: Record<string, string> }).claim[
      'http://schemas.xmlsoap.org/ws/2005/05/identity/claims/upn'
    ] = 'live.com#alice@outlook.example';
    const [t] = normalise(r, 'auditLog') as KeyDeletedTrigger[];
    expect(t!.caller!.upn).toBe('live.com#alice@outlook.example');
  });

  it('a 204 KeyPurge on /deletedkeys/ is a purge', () => {
    const [t] = normalise(audit('keypurge-success'), 'auditLog');
    expect(t).toMatchObject({
      kind: 'keyPurged',
      keyName: 'cmk-orders',
      httpStatusCode: 204,
      operationName: 'KeyPurge',
      signalTime: '2026-03-14T09:31:02.771Z',
    });
  });

  it('a 403 KeyDelete ("Success" in resultType) is a refused deletion, not a deletion', () => {
    const [t] = normalise(audit('keydelete-forbidden'), 'auditLog');
    expect(t).toMatchObject({
      kind: 'keyDeleteDenied',
      keyName: 'cmk-orders',
      httpStatusCode: 403,
      caller: {
        oid: '9e8d7c6b-5a4f-4e3d-8c2b-1a0f9e8d7c6b',
        upn: 'trudy@contoso.example',
        ipAddress: '192.0.2.150',
      },
    });
  });

  it.each([
    ['keypurge-forbidden', 'refused-request', 'KeyPurge answered 403: nothing was purged'],
    ['keydelete-notfound', 'refused-request', 'KeyDelete answered 404: nothing was deleted'],
    ['managedhsm-keydelete', 'unsupported-resource', 'resourceId: Managed HSM is not supported'],
  ])('%s is rejected (%s)', (name, reason, message) => {
    expect(normalise(audit(name), 'auditLog')).toEqual([
      {
        kind: 'rejection',
        reason,
        message,
        source: 'auditLog',
        path: '',
        operationName: name.startsWith('keypurge') ? 'KeyPurge' : 'KeyDelete',
      },
    ]);
  });

  it('a batch keeps one result per record, in order, so one bad record hides nothing', () => {
    const results = normalise(loadJson('auditevent/records-batch.json'), 'auditLog');
    expect(results.map((r) => [r.kind, 'path' in r ? r.path : '', isRejection(r) ? r.reason : ''])).toEqual([
      ['rejection', 'records[0]', 'not-a-deletion'],
      ['keyDeleted', '', ''],
      ['keyPurged', '', ''],
      ['keyDeleteDenied', '', ''],
      ['rejection', 'records[4]', 'left-to-arm-events'],
      ['rejection', 'records[5]', 'unsupported-resource'],
      ['keyDeleted', '', ''],
    ]);
  });

  it('falls back to resultSignature when httpStatusCode is missing, and accepts a numeric string', () => {
    const a = audit('keydelete-forbidden');
    delete (a.properties as Record<string, unknown>).httpStatusCode;
    expect(normalise(a, 'auditLog')[0]!.kind).toBe('keyDeleteDenied');
    const b = audit('keydelete-user-short-claims');
    (b.properties as Record<string, unknown>).httpStatusCode = '200';
    expect(normalise(b, 'auditLog')[0]!.kind).toBe('keyDeleted');
    const c = audit('keydelete-user-short-claims');
    delete (c.properties as Record<string, unknown>).httpStatusCode;
    delete c.resultSignature;
    expect(normalise(c, 'auditLog')[0]).toMatchObject({
      reason: 'malformed',
      message: 'the record carries no HTTP status',
    });
  });

  it.each([
    ['VaultGet', 'not-a-deletion'],
    ['KeyGet', 'not-a-deletion'],
    ['KeyRecover', 'not-a-deletion'],
    ['SecretDelete', 'not-a-deletion'],
    ['VaultDelete', 'left-to-arm-events'],
    ['VaultPatch', 'left-to-arm-events'],
    ['VaultPut', 'left-to-arm-events'],
    ['VaultRecover', 'left-to-arm-events'],
  ])('operation %s is rejected as %s', (op, reason) => {
    const r = audit('keydelete-user-short-claims');
    r.operationName = op;
    expect(normalise(r, 'auditLog')[0]).toMatchObject({ kind: 'rejection', reason, operationName: op });
  });

  it('a record of another diagnostic category is an unsupported type', () => {
    const r = audit('keydelete-user-short-claims');
    r.category = 'AzurePolicyEvaluationDetails';
    expect(normalise(r, 'auditLog')[0]).toMatchObject({ reason: 'unsupported-type' });
  });

  it.each([
    [
      'properties.id names another vault',
      { id: 'https://other-vault.vault.azure.net/keys/cmk-orders' },
      'inconsistent',
    ],
    [
      'requestUri names another key',
      { requestUri: 'https://contoso-payments.vault.azure.net/keys/other?api-version=7.5' },
      'inconsistent',
    ],
    [
      'properties.id is a look-alike host',
      { id: 'https://contoso-payments.vault.azure.net.evil.test/keys/cmk-orders' },
      'invalid-vault-host',
    ],
    [
      'requestUri carries userinfo',
      { requestUri: 'https://contoso-payments.vault.azure.net@evil.test/keys/cmk-orders' },
      'invalid-vault-host',
    ],
    [
      'the key name is invalid',
      { id: 'https://contoso-payments.vault.azure.net/keys/bad_name', requestUri: undefined },
      'invalid-key-name',
    ],
    [
      'a KeyDelete names /deletedkeys/',
      { id: 'https://contoso-payments.vault.azure.net/deletedkeys/cmk-orders', requestUri: undefined },
      'inconsistent',
    ],
    ['no key is named', { id: undefined, requestUri: undefined }, 'malformed'],
  ])('rejects a record where %s', (_label, props, reason) => {
    const r = audit('keydelete-user-short-claims');
    const p = r.properties as Record<string, unknown>;
    for (const [k, v] of Object.entries(props)) {
      if (v === undefined) delete p[k];
      else p[k] = v;
    }
    expect(normalise(r, 'auditLog')[0]).toMatchObject({ kind: 'rejection', reason });
  });

  it.each([['2026-02-30T10:00:00Z'], ['2026-03-14 09:26:53'], ['2026-03-14T09:26:53'], ['yesterday']])(
    'rejects an invalid record time %s',
    (time) => {
      const r = audit('keydelete-user-short-claims');
      r.time = time;
      expect(normalise(r, 'auditLog')[0]).toMatchObject({ reason: 'malformed' });
    },
  );
});

describe('the forwarder mapping (toSignalCloudEvent)', () => {
  it('maps a 2xx KeyDelete to Kvguard.KeyVault.KeyDeleted.v1 with the record time and a stable id', () => {
    const ce = toSignalCloudEvent(audit('keydelete-user-short-claims')) as SignalCloudEvent;
    expect(ce).toEqual({
      id: idOf(
        VAULT_ID,
        'KeyDelete',
        '2026-03-14T09:26:53.5897932Z',
        'https://contoso-payments.vault.azure.net/keys/cmk-orders?api-version=7.5',
        '6f1c2d3e-4a5b-4c6d-8e7f-90a1b2c3d4e5',
      ),
      type: 'Kvguard.KeyVault.KeyDeleted.v1',
      source: VAULT_ID.toLowerCase(),
      subject: '/keys/cmk-orders',
      time: '2026-03-14T09:26:53.5897932Z',
      data: {
        vaultName: 'contoso-payments',
        vaultHost: 'contoso-payments.vault.azure.net',
        vaultResourceId: VAULT_ID,
        keyName: 'cmk-orders',
        recordTime: '2026-03-14T09:26:53.5897932Z',
        operationName: 'KeyDelete',
        httpStatusCode: 200,
        caller: {
          oid: '6f1c2d3e-4a5b-4c6d-8e7f-90a1b2c3d4e5',
          upn: 'mallory@contoso.example',
          appId: '04b07795-8ddb-461a-bbee-02f9e1bf7b46',
          idtyp: 'user',
          ipAddress: '203.0.113.47',
          userAgent: 'azsdk-python-keyvault-keys/4.9.0 Python/3.12.3 (Linux-6.8.0-x86_64-with-glibc2.39)',
        },
        correlationId: '5b0e3f7c-1d2a-4c8b-9e6f-0a1b2c3d4e5f',
      },
    });
  });

  it('a record time without seconds is published in canonical form (the data schema requires seconds)', () => {
    const r = audit('keydelete-user-short-claims');
    r.time = '2026-03-14T09:26Z';
    expect(toSignalCloudEvent(r)).toMatchObject({
      time: '2026-03-14T09:26:00.000Z',
      data: { recordTime: '2026-03-14T09:26:00.000Z' },
    });
  });

  it('gives the same id when the same batch is re-run, and different ids for different records', () => {
    const a = toSignalCloudEvents(loadJson('auditevent/records-batch.json'));
    const b = toSignalCloudEvents(loadJson('auditevent/records-batch.json'));
    expect(a).toEqual(b);
    const ids = a.filter((x): x is SignalCloudEvent => !('kind' in x)).map((x) => x.id);
    expect(new Set(ids).size).toBe(ids.length);
    expect(ids).toHaveLength(4);
  });

  it('maps purges and refused deletions to their types; everything else is a rejection with its path', () => {
    const out = toSignalCloudEvents(loadJson('auditevent/records-batch.json'));
    expect(out.map((x) => ('kind' in x ? `${x.reason}@${x.path}` : x.type))).toEqual([
      'not-a-deletion@records[0]',
      'Kvguard.KeyVault.KeyDeleted.v1',
      'Kvguard.KeyVault.KeyPurged.v1',
      'Kvguard.KeyVault.KeyDeleteDenied.v1',
      'left-to-arm-events@records[4]',
      'unsupported-resource@records[5]',
      'Kvguard.KeyVault.KeyDeleted.v1',
    ]);
  });

  it('the id changes with the caller and the time', () => {
    const base = toSignalCloudEvent(audit('keydelete-user-short-claims')) as SignalCloudEvent;
    const later = audit('keydelete-user-short-claims');
    later.time = '2026-03-14T09:26:53.5897933Z';
    const other = audit('keydelete-user-short-claims');
    (other.identity as { claim: Record<string, string> }).claim.oid = '00000000-0000-4000-8000-000000000000';
    expect((toSignalCloudEvent(later) as SignalCloudEvent).id).not.toBe(base.id);
    expect((toSignalCloudEvent(other) as SignalCloudEvent).id).not.toBe(base.id);
  });

  it.each([
    'keydelete-user-short-claims',
    'keydelete-app-uri-claims',
    'keypurge-success',
    'keydelete-forbidden',
  ])(
    'the responder reads back what the forwarder published from %s: same trigger, source cloudEvent',
    (name) => {
      const record = audit(name);
      const direct = normalise(record, 'auditLog')[0] as Trigger;
      const ce = toSignalCloudEvent(record) as SignalCloudEvent;
      const viaTopic = normalise([{ specversion: '1.0', ...ce }], 'eventGrid')[0] as Trigger;
      expect(viaTopic).toEqual({ ...direct, source: 'cloudEvent', eventType: ce.type });
    },
  );

  it('the responder also accepts the published event in the Event Grid schema', () => {
    const ce = toSignalCloudEvent(audit('keydelete-user-short-claims')) as SignalCloudEvent;
    const eg = {
      id: ce.id,
      eventType: ce.type,
      subject: ce.subject,
      eventTime: ce.time,
      topic:
        '/subscriptions/8a7f2c1e-3b4d-4e5f-9a0b-1c2d3e4f5a6b/resourceGroups/rg-kvguard/providers/Microsoft.EventGrid/topics/kvguard-signals',
      data: ce.data,
      dataVersion: '1',
      metadataVersion: '1',
    };
    expect(normalise(eg, 'eventGrid')[0]).toMatchObject({
      kind: 'keyDeleted',
      source: 'eventGrid',
      keyName: 'cmk-orders',
    });
  });
});

describe('kvguard signal CloudEvents', () => {
  const ce = (): Record<string, unknown> => ({
    specversion: '1.0',
    ...(toSignalCloudEvent(audit('keydelete-user-short-claims')) as SignalCloudEvent),
  });

  it.each([
    [
      'a type whose data contradicts it',
      (e: Record<string, unknown>) => (e.type = 'Kvguard.KeyVault.KeyPurged.v1'),
      'inconsistent',
    ],
    [
      'a vaultHost that is not <vaultName>.vault.azure.net',
      (e: Record<string, unknown>) =>
        ((e.data as Record<string, unknown>).vaultHost = 'other-vault.vault.azure.net'),
      'inconsistent',
    ],
    [
      'a resource id of another vault',
      (e: Record<string, unknown>) =>
        ((e.data as Record<string, unknown>).vaultResourceId = VAULT_ID.replace(
          'CONTOSO-PAYMENTS',
          'OTHER-VAULT',
        )),
      'inconsistent',
    ],
    [
      'a source naming another vault',
      (e: Record<string, unknown>) => (e.source = VAULT_ID.replace('CONTOSO-PAYMENTS', 'OTHER-VAULT')),
      'inconsistent',
    ],
    [
      'an unknown field in data (the schema is closed)',
      (e: Record<string, unknown>) => ((e.data as Record<string, unknown>).extra = 1),
      'malformed',
    ],
    [
      'a look-alike host',
      (e: Record<string, unknown>) =>
        ((e.data as Record<string, unknown>).vaultHost = 'contoso-payments.vault.azure.net.evil.test'),
      'malformed',
    ],
    ['binary data', (e: Record<string, unknown>) => (e.data_base64 = 'e30='), 'malformed'],
    [
      'a v2 type kvguard does not know',
      (e: Record<string, unknown>) => (e.type = 'Kvguard.KeyVault.KeyDeleted.v2'),
      'unsupported-type',
    ],
    ['specversion 0.3', (e: Record<string, unknown>) => (e.specversion = '0.3'), 'malformed'],
  ])('rejects %s', (_label, mutate, reason) => {
    const e = ce();
    mutate(e);
    expect(normalise(e, 'eventGrid')[0]).toMatchObject({ kind: 'rejection', reason });
  });

  it('a batch of CloudEvents gives one result per event', () => {
    const bad = { ...ce(), id: 'x', data: {} };
    const results = normalise([ce(), bad, ce()], 'eventGrid');
    expect(results.map((r) => r.kind)).toEqual(['keyDeleted', 'rejection', 'keyDeleted']);
    expect((results[1] as Rejection).path).toBe('[1]');
  });

  it('uses the data recordTime, never the CloudEvent (publish) time', () => {
    const e = ce();
    e.time = '2026-03-14T09:40:00Z';
    expect(normalise(e, 'eventGrid')[0]).toMatchObject({ signalTime: '2026-03-14T09:26:53.589Z' });
  });
});

describe('the alias Microsoft.KeyVault.vaults.keys.delete', () => {
  it('accepts kvguard’s data schema', () => {
    const e = {
      specversion: '1.0',
      ...(toSignalCloudEvent(audit('keydelete-user-short-claims')) as SignalCloudEvent),
      type: 'Microsoft.KeyVault.vaults.keys.delete',
    };
    expect(normalise(e, 'eventGrid')[0]).toMatchObject({
      kind: 'keyDeleted',
      keyName: 'cmk-orders',
      eventType: 'Microsoft.KeyVault.vaults.keys.delete',
    });
  });

  it('accepts a key id, a time and claims in another product’s shape', () => {
    const e = {
      id: 'evt-1',
      eventType: 'Microsoft.KeyVault.vaults.keys.delete',
      subject: 'keys/cmk-orders',
      eventTime: '2026-03-14T09:30:00Z',
      data: {
        keyId: 'https://contoso-payments.vault.azure.net/keys/cmk-orders/0f1e2d3c4b5a69788796a5b4c3d2e1f0',
        time: '2026-03-14T09:26:53Z',
        claims: { oid: 'abc', upn: 'mallory@contoso.example' },
        callerIpAddress: '203.0.113.47',
      },
      dataVersion: '1',
    };
    expect(normalise(e, 'eventGrid')).toEqual([
      {
        kind: 'keyDeleted',
        source: 'eventGrid',
        vaultName: 'contoso-payments',
        vaultHost: 'contoso-payments.vault.azure.net',
        keyName: 'cmk-orders',
        signalTime: '2026-03-14T09:26:53.000Z',
        caller: { oid: 'abc', upn: 'mallory@contoso.example', ipAddress: '203.0.113.47' },
        eventId: 'evt-1',
        operationName: 'Microsoft.KeyVault.vaults.keys.delete',
        eventType: 'Microsoft.KeyVault.vaults.keys.delete',
      },
    ]);
  });

  it.each([
    ['https://evil.test/keys/x', 'invalid-vault-host'],
    ['https://kv.vault.azure.net.evil.test/keys/x', 'invalid-vault-host'],
    ['https://contoso-hsm.managedhsm.azure.net/keys/x', 'unsupported-resource'],
  ])('rejects the key id %s', (keyId, reason) => {
    const e = {
      id: 'e',
      eventType: 'Microsoft.KeyVault.vaults.keys.delete',
      eventTime: '2026-03-14T09:30:00Z',
      data: { keyId },
    };
    expect(normalise(e, 'eventGrid')[0]).toMatchObject({ kind: 'rejection', reason });
  });
});

describe('Microsoft.KeyVault.VaultAccessPolicyChanged', () => {
  const event = (data: Record<string, unknown>, topic?: string) => ({
    id: 'ap-1',
    eventType: 'Microsoft.KeyVault.VaultAccessPolicyChanged',
    subject: 'contoso-payments',
    eventTime: '2026-03-14T10:00:00Z',
    topic:
      topic ??
      '/subscriptions/8a7f2c1e-3b4d-4e5f-9a0b-1c2d3e4f5a6b/resourceGroups/rg-payments/providers/Microsoft.KeyVault/vaults/contoso-payments',
    data,
    dataVersion: '1',
    metadataVersion: '1',
  });

  it('names the vault from VaultName and the topic', () => {
    expect(
      normalise(
        event({
          Id: 'https://contoso-payments.vault.azure.net/',
          VaultName: 'contoso-payments',
          ObjectType: 'Vault',
          ObjectName: 'contoso-payments',
        }),
        'eventGrid',
      )[0],
    ).toMatchObject({
      kind: 'accessPolicyChanged',
      vaultName: 'contoso-payments',
      vaultHost: 'contoso-payments.vault.azure.net',
      eventId: 'ap-1',
      signalTime: '2026-03-14T10:00:00.000Z',
    });
  });

  it.each([
    ['VaultName and topic disagree', event({ VaultName: 'other-vault' }), 'inconsistent'],
    [
      'Id is a look-alike host',
      event({ VaultName: 'contoso-payments', Id: 'https://contoso-payments.vault.azure.net.evil.test/' }),
      'invalid-vault-host',
    ],
    [
      'nothing names a vault',
      event({}, '/subscriptions/x/resourceGroups/y/providers/Microsoft.EventGrid/topics/t'),
      'malformed',
    ],
    [
      'the topic is a Managed HSM',
      event({}, '/subscriptions/x/resourceGroups/y/providers/Microsoft.KeyVault/managedHSMs/hsm1'),
      'unsupported-resource',
    ],
  ])('rejects an event where %s', (_l, e, reason) => {
    expect(normalise(e, 'eventGrid')[0]).toMatchObject({ kind: 'rejection', reason });
  });
});

describe('ARM resource events', () => {
  const armEvent = (op: string, resourceUri: string) => ({
    id: 'arm-1',
    eventType: op.toLowerCase().endsWith('/delete')
      ? 'Microsoft.Resources.ResourceDeleteSuccess'
      : 'Microsoft.Resources.ResourceWriteSuccess',
    subject: resourceUri,
    eventTime: '2026-03-14T10:00:00Z',
    topic: '/subscriptions/8a7f2c1e-3b4d-4e5f-9a0b-1c2d3e4f5a6b',
    data: { operationName: op, resourceUri, claims: { oid: 'o1' }, status: 'Succeeded' },
    dataVersion: '2',
    metadataVersion: '1',
  });

  it('rejects a Managed HSM deletion as unsupported', () => {
    const e = armEvent(
      'Microsoft.KeyVault/managedHSMs/delete',
      '/subscriptions/s/resourceGroups/r/providers/Microsoft.KeyVault/managedHSMs/hsm1',
    );
    expect(normalise(e, 'eventGrid')[0]).toMatchObject({
      reason: 'unsupported-resource',
      message: 'Managed HSM is not supported',
    });
  });

  it('rejects a subject and resourceUri naming different vaults', () => {
    const e = armEvent(
      'Microsoft.KeyVault/vaults/delete',
      '/subscriptions/s/resourceGroups/r/providers/Microsoft.KeyVault/vaults/kv-one',
    );
    e.subject = '/subscriptions/s/resourceGroups/r/providers/Microsoft.KeyVault/vaults/kv-two';
    expect(normalise(e, 'eventGrid')[0]).toMatchObject({ reason: 'inconsistent' });
  });

  it('accepts the operation name in any case (ARM upper-cases it in places)', () => {
    const e = armEvent(
      'MICROSOFT.KEYVAULT/VAULTS/DELETE',
      '/subscriptions/s/resourceGroups/r/providers/Microsoft.KeyVault/vaults/kv-one',
    );
    expect(normalise(e, 'eventGrid')[0]).toMatchObject({
      kind: 'vaultDeleted',
      vaultName: 'kv-one',
      caller: { oid: 'o1' },
    });
  });
});

describe('ARM access-policy writes (Microsoft.KeyVault/vaults/accessPolicies/write)', () => {
  const VAULT = '/subscriptions/s/resourceGroups/r/providers/Microsoft.KeyVault/vaults/kv-one';
  const policyWrite = (resource: string, extra: Record<string, unknown> = {}) => ({
    id: 'arm-ap-1',
    eventType: 'Microsoft.Resources.ResourceWriteSuccess',
    subject: resource,
    eventTime: '2026-03-14T10:00:03.1234567Z',
    topic: '/subscriptions/s',
    data: {
      operationName: 'Microsoft.KeyVault/vaults/accessPolicies/write',
      resourceUri: resource,
      claims: {
        'http://schemas.microsoft.com/identity/claims/objectidentifier': 'o1',
        'http://schemas.xmlsoap.org/ws/2005/05/identity/claims/upn': 'eve@contoso.example',
        appid: 'a1',
      },
      httpRequest: { clientIpAddress: '203.0.113.9', method: 'PUT' },
      status: 'Succeeded',
      ...extra,
    },
    dataVersion: '2',
    metadataVersion: '1',
  });

  it.each([
    ['the operation path', `${VAULT}/accessPolicies/add`],
    ['the sample response id (trailing slash)', `${VAULT}/accessPolicies/`],
    ['the vault itself', VAULT],
  ])(
    'becomes an access-policy trigger naming the caller, whatever resource it names (%s)',
    (_l, resource) => {
      expect(normalise(policyWrite(resource), 'eventGrid')).toEqual([
        {
          kind: 'accessPolicyChanged',
          source: 'eventGrid',
          vaultName: 'kv-one',
          vaultHost: 'kv-one.vault.azure.net',
          vaultResourceId: VAULT,
          signalTime: '2026-03-14T10:00:03.123Z',
          caller: { oid: 'o1', upn: 'eve@contoso.example', appId: 'a1', ipAddress: '203.0.113.9' },
          eventId: 'arm-ap-1',
          operationName: 'Microsoft.KeyVault/vaults/accessPolicies/write',
          eventType: 'Microsoft.Resources.ResourceWriteSuccess',
        },
      ]);
    },
  );

  it('is still a vault write when it is one, and an access-policy write is no deletion', () => {
    const write = policyWrite(VAULT, { operationName: 'Microsoft.KeyVault/vaults/write' });
    expect(normalise(write, 'eventGrid')[0]).toMatchObject({ kind: 'vaultWritten' });
    const asDelete = { ...policyWrite(VAULT), eventType: 'Microsoft.Resources.ResourceDeleteSuccess' };
    expect(normalise(asDelete, 'eventGrid')[0]).toMatchObject({
      kind: 'rejection',
      reason: 'unsupported-resource',
    });
  });

  it('rejects a resource that is not under a vault', () => {
    const other =
      '/subscriptions/s/resourceGroups/r/providers/Microsoft.Storage/storageAccounts/sa/accessPolicies/add';
    expect(normalise(policyWrite(other), 'eventGrid')[0]).toMatchObject({ kind: 'rejection' });
    const managedHsm =
      '/subscriptions/s/resourceGroups/r/providers/Microsoft.KeyVault/managedHSMs/h1/accessPolicies/add';
    expect(normalise(policyWrite(managedHsm), 'eventGrid')[0]).toMatchObject({
      kind: 'rejection',
      reason: 'unsupported-resource',
    });
  });
});

describe('common alert schema with dimensions', () => {
  const alert = (
    dimensions: Array<{ name: string; value: unknown }>,
    extra: Record<string, unknown> = {},
  ) => ({
    schemaId: 'azureMonitorCommonAlertSchema',
    data: {
      essentials: {
        alertId: '/subscriptions/s/providers/Microsoft.AlertsManagement/alerts/a1',
        alertRule: 'kvguard-keydelete',
        severity: 'Sev1',
        signalType: 'Log',
        monitorCondition: 'Fired',
        monitoringService: 'Log Alerts V2',
        alertTargetIDs: [
          '/subscriptions/s/resourcegroups/rg/providers/microsoft.operationalinsights/workspaces/ws1',
          'https://evil.test/x',
        ],
        firedDateTime: '2026-03-14T09:40:00Z',
        ...extra,
      },
      alertContext: {
        conditionType: 'LogQueryCriteria',
        condition: {
          windowSize: 'PT10M',
          allOf: [
            {
              searchQuery: 'AZKVAuditLogs | where OperationName == "KeyDelete"',
              dimensions,
              linkToSearchResultsAPI: 'https://attacker.example/steal',
              linkToFilteredSearchResultsAPI: 'https://attacker.example/steal2',
            },
          ],
          windowStartTime: '2026-03-14T09:30:00Z',
          windowEndTime: '2026-03-14T09:40:00Z',
        },
      },
    },
  });

  it('a rule split by key id, TimeGenerated and caller gives a key deletion trigger', () => {
    const results = normalise(
      alert([
        { name: 'Id', value: 'https://contoso-payments.vault.azure.net/keys/cmk-orders' },
        { name: 'TimeGenerated', value: '2026-03-14T09:26:53.5897932Z' },
        { name: 'CallerObjectId', value: '6f1c2d3e-4a5b-4c6d-8e7f-90a1b2c3d4e5' },
        { name: 'CallerUpn', value: 'mallory@contoso.example' },
        { name: 'CallerIpAddress', value: '203.0.113.47' },
        { name: '_ResourceId', value: VAULT_ID },
      ]),
      'monitorAlert',
    );
    expect(results).toEqual([
      {
        kind: 'keyDeleted',
        source: 'monitorAlert',
        vaultName: 'contoso-payments',
        vaultHost: 'contoso-payments.vault.azure.net',
        vaultResourceId: VAULT_ID,
        keyName: 'cmk-orders',
        signalTime: '2026-03-14T09:26:53.589Z',
        caller: {
          oid: '6f1c2d3e-4a5b-4c6d-8e7f-90a1b2c3d4e5',
          upn: 'mallory@contoso.example',
          ipAddress: '203.0.113.47',
        },
        eventId: '/subscriptions/s/providers/Microsoft.AlertsManagement/alerts/a1',
        operationName: 'KeyDelete',
        alert: {
          alertId: '/subscriptions/s/providers/Microsoft.AlertsManagement/alerts/a1',
          alertRule: 'kvguard-keydelete',
          targetResourceIds: [
            '/subscriptions/s/resourcegroups/rg/providers/microsoft.operationalinsights/workspaces/ws1',
          ],
          workspaceResourceId:
            '/subscriptions/s/resourcegroups/rg/providers/microsoft.operationalinsights/workspaces/ws1',
        },
      },
    ]);
    expect(JSON.stringify(results)).not.toContain('attacker.example');
    expect(JSON.stringify(results)).not.toContain('evil.test');
  });

  it('the signal time is TimeGenerated, never the fired time', () => {
    const [t] = normalise(
      alert([
        { name: 'id_s', value: 'https://contoso-payments.vault.azure.net/keys/cmk-orders' },
        { name: 'TimeGenerated', value: '2026-03-14T09:26:53Z' },
      ]),
      'monitorAlert',
    );
    expect(t).toMatchObject({ signalTime: '2026-03-14T09:26:53.000Z' });
  });

  it('without the key id and time dimensions it asks for a query over the window, with no payload URL', () => {
    const results = normalise(alert([{ name: 'CallerIpAddress', value: '203.0.113.47' }]), 'monitorAlert');
    expect(results).toEqual([
      expect.objectContaining({
        kind: 'queryNeeded',
        windowStart: '2026-03-14T09:30:00.000Z',
        windowEnd: '2026-03-14T09:40:00.000Z',
        windowSize: 'PT10M',
        reason: 'the dimensions do not name the key id and TimeGenerated',
      }),
    ]);
    expect(JSON.stringify(results)).not.toMatch(/https?:/);
  });

  it('derives the window from the fired time and window size when the window times are missing', () => {
    const a = alert([]);
    const cond = a.data.alertContext.condition as Record<string, unknown>;
    delete cond.windowStartTime;
    delete cond.windowEndTime;
    expect(normalise(a, 'monitorAlert')[0]).toMatchObject({
      windowStart: '2026-03-14T09:30:00.000Z',
      windowEnd: '2026-03-14T09:40:00.000Z',
    });
  });

  it.each([
    ['a resolved alert', alert([], { monitorCondition: 'Resolved' }), 'alert-resolved'],
    ['a metric alert', alert([], { monitoringService: 'Platform' }), 'unsupported-type'],
    [
      'a look-alike key id',
      alert([
        { name: 'Id', value: 'https://kv.vault.azure.net.evil.test/keys/k' },
        { name: 'TimeGenerated', value: '2026-03-14T09:26:53Z' },
      ]),
      'invalid-vault-host',
    ],
    [
      'a KeyGet operation dimension',
      alert([
        { name: 'Id', value: 'https://contoso-payments.vault.azure.net/keys/k' },
        { name: 'TimeGenerated', value: '2026-03-14T09:26:53Z' },
        { name: 'OperationName', value: 'KeyGet' },
      ]),
      'not-a-deletion',
    ],
    ['another schema', { schemaId: 'AzureMonitorMetricAlert', data: {} }, 'unsupported-type'],
  ])('rejects %s', (_l, payload, reason) => {
    expect(normalise(payload, 'monitorAlert')[0]).toMatchObject({ kind: 'rejection', reason });
  });

  it('a 403 status dimension makes it a refused deletion', () => {
    const [t] = normalise(
      alert([
        { name: 'Id', value: 'https://contoso-payments.vault.azure.net/keys/cmk-orders' },
        { name: 'TimeGenerated', value: '2026-03-14T09:26:53Z' },
        { name: 'HttpStatusCode', value: '403' },
      ]),
      'monitorAlert',
    );
    expect(t).toMatchObject({ kind: 'keyDeleteDenied', httpStatusCode: 403 });
  });
});

describe('entry points and batches', () => {
  const record = audit('keydelete-user-short-claims');
  const ce = { specversion: '1.0', ...(toSignalCloudEvent(record) as SignalCloudEvent) };

  it.each([
    ['an AuditEvent record on the eventGrid path', record, 'eventGrid'],
    ['a CloudEvent on the auditLog path', ce, 'auditLog'],
    ['a CloudEvent on the monitorAlert path', ce, 'monitorAlert'],
  ] as const)('refuses %s', (_l, input, via) => {
    expect(normalise(input, via)[0]).toMatchObject({ kind: 'rejection', reason: 'unsupported-type' });
  });

  it('replay accepts every shape and marks the triggers as replayed', () => {
    const results = normalise([record, ce, { records: [record, record] }], 'replay');
    expect(results.map((r) => [r.kind, r.source])).toEqual([
      ['keyDeleted', 'replay'],
      ['keyDeleted', 'replay'],
      ['keyDeleted', 'replay'],
      ['keyDeleted', 'replay'],
    ]);
  });

  it('rejects nested arrays item by item', () => {
    expect(normalise([[record]], 'replay')).toEqual([
      {
        kind: 'rejection',
        reason: 'malformed',
        message: 'nested arrays are not accepted',
        source: 'replay',
        path: '[0]',
      },
    ]);
  });

  it('an empty batch gives no results', () => {
    expect(normalise([], 'eventGrid')).toEqual([]);
    expect(normalise({ records: [] }, 'auditLog')).toEqual([]);
  });

  it(`reads at most ${MAX_ITEMS} items and says how many it left`, () => {
    const many = Array.from({ length: MAX_ITEMS + 5 }, () => 1);
    const results = normalise({ records: many }, 'auditLog');
    expect(results).toHaveLength(MAX_ITEMS + 1);
    expect(results[MAX_ITEMS]).toMatchObject({ reason: 'too-large', path: `records[${MAX_ITEMS}]` });
    expect((results[MAX_ITEMS] as Rejection).message).toContain('5 item(s)');
  });
});

describe('sweep rows', () => {
  it('a deleted key becomes a trigger whose signal time is its deletedDate', () => {
    expect(
      fromSweptDeletedKey({
        vaultUrl: 'https://Contoso-Payments.vault.azure.net/',
        keyName: 'cmk-orders',
        deletedDate: new Date('2026-03-14T09:26:54Z'),
      }),
    ).toEqual({
      kind: 'sweptDeletedKey',
      source: 'sweep',
      vaultName: 'contoso-payments',
      vaultHost: 'contoso-payments.vault.azure.net',
      keyName: 'cmk-orders',
      deletedDate: '2026-03-14T09:26:54.000Z',
      signalTime: '2026-03-14T09:26:54.000Z',
      eventId: expect.stringMatching(/^sweep-[0-9a-f]{32}$/),
      operationName: 'sweep',
    });
  });

  it('a deleted vault becomes a trigger with its location and purge protection', () => {
    expect(
      fromSweptDeletedVault({
        vaultName: 'contoso-payments',
        vaultResourceId: VAULT_ID,
        deletionDate: '2026-03-14T09:00:00Z',
        location: 'westeurope',
        scheduledPurgeDate: '2026-06-12T09:00:00Z',
        purgeProtectionEnabled: false,
      }),
    ).toMatchObject({
      kind: 'sweptDeletedVault',
      vaultName: 'contoso-payments',
      deletionDate: '2026-03-14T09:00:00.000Z',
      location: 'westeurope',
      purgeProtectionEnabled: false,
    });
  });

  it.each([
    [
      { vaultUrl: 'https://evil.test/', keyName: 'k', deletedDate: '2026-03-14T09:00:00Z' },
      'invalid-vault-host',
    ],
    [
      { vaultUrl: 'https://kv1.vault.azure.net/', keyName: 'k/../x', deletedDate: '2026-03-14T09:00:00Z' },
      'invalid-key-name',
    ],
    [{ vaultUrl: 'https://kv1.vault.azure.net/', keyName: 'k', deletedDate: new Date(NaN) }, 'malformed'],
  ])('rejects a bad key row %#', (row, reason) => {
    expect(fromSweptDeletedKey(row)).toMatchObject({ kind: 'rejection', reason });
  });

  it('rejects a deleted vault whose resource id names another vault', () => {
    expect(
      fromSweptDeletedVault({
        vaultName: 'kv-one',
        vaultResourceId: VAULT_ID,
        deletionDate: '2026-03-14T09:00:00Z',
      }),
    ).toMatchObject({ reason: 'inconsistent' });
  });
});

describe('isRejection', () => {
  it('tells rejections from triggers', () => {
    const results: NormaliseResult[] = normalise([audit('keydelete-user-short-claims'), 42], 'replay');
    expect(results.map(isRejection)).toEqual([false, true]);
  });
});
