/** normalise and friends never throw, whatever they are given. */
import { decide } from '../../lib/core/decide';
import { toSafeError } from '../../lib/core/errors';
import {
  normalise,
  toSignalCloudEvent,
  toSignalCloudEvents,
  type NormaliseVia,
} from '../../lib/core/normalise';
import { clone, loadJson } from './core-fixtures';

function deep(depth: number): unknown {
  let v: unknown = { records: [] };
  for (let i = 0; i < depth; i++) v = { data: v, records: [v], eventType: 'x', specversion: '1.0' };
  return v;
}

const cyclic: Record<string, unknown> = {
  eventType: 'Microsoft.Resources.ResourceDeleteSuccess',
  id: 'c',
  eventTime: '2026-01-01T00:00:00Z',
};
cyclic.data = cyclic;

const throwingGetter = Object.defineProperty({}, 'eventType', {
  enumerable: true,
  get() {
    throw new Error('boom');
  },
});

const hostileProxy = new Proxy(
  {},
  {
    get() {
      throw new Error('trap');
    },
    has() {
      throw new Error('trap');
    },
    ownKeys() {
      throw new Error('trap');
    },
    getOwnPropertyDescriptor() {
      throw new Error('trap');
    },
    getPrototypeOf() {
      throw new Error('trap');
    },
  },
);

const arrayWithThrowingLength = new Proxy([], {
  get(target, prop) {
    if (prop === 'length') throw new Error('length');
    return Reflect.get(target, prop) as unknown;
  },
});

const polluted = JSON.parse(
  '{"__proto__": {"polluted": true, "eventType": "Kvguard.KeyVault.KeyDeleted.v1"}, "constructor": {"prototype": {"polluted": true}}, "records": [{"__proto__": {"operationName": "KeyDelete"}}]}',
) as unknown;

const record = loadJson('auditevent/keydelete-user-short-claims.json') as Record<string, unknown>;
const withPollutedClaims = clone(record);
(withPollutedClaims.identity as Record<string, unknown>).claim = JSON.parse(
  '{"__proto__": {"oid": "attacker"}, "constructor": "x"}',
) as unknown;

const inputs: Array<[string, unknown]> = [
  ['undefined', undefined],
  ['null', null],
  ['a number', 42],
  ['NaN', NaN],
  ['a bigint', 10n],
  ['a symbol', Symbol('s')],
  ['a function', () => 1],
  ['a string', 'KeyDelete'],
  ['a huge string', 'x'.repeat(5_000_000)],
  ['true', true],
  ['an empty object', {}],
  ['an empty array', []],
  ['an array of junk', [null, 1, 'a', [], {}, [[]]]],
  ['deep nesting', deep(5000)],
  ['a cyclic object', cyclic],
  ['a throwing getter', throwingGetter],
  ['a hostile proxy', hostileProxy],
  ['an array whose length throws', arrayWithThrowingLength],
  ['prototype-pollution keys', polluted],
  ['claims with __proto__', withPollutedClaims],
  ['records that is not an array', { records: 'nope' }],
  [
    'records of junk',
    { records: [null, 1, { operationName: 5 }, { operationName: 'KeyDelete', resourceId: {}, time: [] }] },
  ],
  [
    'an event with a huge id',
    { id: 'i'.repeat(100_000), eventType: 'Kvguard.KeyVault.KeyDeleted.v1', eventTime: 't', data: {} },
  ],
  [
    'an event with a huge data string',
    {
      id: 'i',
      eventType: 'Microsoft.KeyVault.vaults.keys.delete',
      eventTime: '2026-01-01T00:00:00Z',
      data: { keyId: 'x'.repeat(1_000_000) },
    },
  ],
  [
    'a CloudEvent with data null',
    { specversion: '1.0', id: 'i', type: 'Kvguard.KeyVault.KeyDeleted.v1', source: 's', data: null },
  ],
  [
    'a common alert with junk',
    {
      schemaId: 'azureMonitorCommonAlertSchema',
      data: {
        essentials: { alertId: 'a', monitoringService: 'Log Alerts V2' },
        alertContext: { condition: { allOf: [{ dimensions: [{ name: 'Id', value: { toString: null } }] }] } },
      },
    },
  ],
  [
    'a common alert with a huge dimension list',
    {
      schemaId: 'azureMonitorCommonAlertSchema',
      data: {
        essentials: { alertId: 'a' },
        alertContext: {
          condition: {
            allOf: [{ dimensions: Array.from({ length: 5000 }, () => ({ name: 'x', value: 1 })) }],
          },
        },
      },
    },
  ],
  [
    'control characters everywhere',
    { id: '\u0000\u001b[31m', eventType: '\u202eKvguard', eventTime: '\n', data: { '\u0000': 1 } },
  ],
];

const vias: NormaliseVia[] = ['eventGrid', 'auditLog', 'monitorAlert', 'replay'];

describe('normalise never throws', () => {
  it.each(inputs)('%s', (_label, input) => {
    for (const via of vias) {
      const results = normalise(input, via);
      expect(Array.isArray(results)).toBe(true);
      for (const r of results) {
        expect([
          'rejection',
          'keyDeleted',
          'keyPurged',
          'keyDeleteDenied',
          'vaultDeleted',
          'vaultWritten',
          'accessPolicyChanged',
          'queryNeeded',
        ]).toContain(r.kind);
      }
    }
    expect(() => toSignalCloudEvent(input)).not.toThrow();
    expect(() => toSignalCloudEvents(input)).not.toThrow();
    expect(toSafeError(input)).toBeInstanceOf(Error);
  });

  it('does not pollute Object.prototype', () => {
    for (const [, input] of inputs) normalise(input, 'replay');
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
    expect(({} as Record<string, unknown>).oid).toBeUndefined();
  });

  it('does not take a caller from an inherited __proto__ claim', () => {
    const [t] = normalise(withPollutedClaims, 'auditLog');
    expect(t).toMatchObject({ kind: 'keyDeleted' });
    expect((t as { caller?: { oid?: string } }).caller?.oid).toBeUndefined();
  });

  it('keeps rejection messages short and free of control characters', () => {
    for (const [, input] of inputs) {
      for (const r of normalise(input, 'replay')) {
        if (r.kind !== 'rejection') continue;
        expect(r.message.length).toBeLessThanOrEqual(800);
        // eslint-disable-next-line no-control-regex
        expect(r.message).not.toMatch(/[\u0000-\u001f\u202e]/);
      }
    }
  });

  it('decide does not throw on a trigger with odd but typed values', () => {
    expect(() =>
      decide({
        trigger: {
          kind: 'keyDeleted',
          source: 'replay',
          vaultName: 'kv1',
          vaultHost: 'kv1.vault.azure.net',
          keyName: 'k',
          signalTime: 'x',
          eventId: 'e',
          operationName: 'KeyDelete',
        },
        now: 'not a time',
        policy: { mode: 'enforce', allowList: { objectIds: [], appIds: [] }, vaultDeletion: 'recover' },
        key: {
          state: 'deleted',
          tags: JSON.parse('{"__proto__": {"kvguard-sanctioned-delete": "2999-01-01T00:00:00Z"}}') as Record<
            string,
            string
          >,
        },
      }),
    ).not.toThrow();
  });
});
