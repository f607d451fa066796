/**
 * kvguard's own KQL (lib/adapters/loganalytics.ts): the exact text of the key-deletion lookup, of the
 * window listing and of the alert rule, and the escaping of the literals in it.
 */
import {
  kqlDatetime,
  kqlString,
  keyDeletionQuery,
  keyDeletionsQuery,
  KEY_DELETION_ALERT_QUERY,
} from '../../lib/adapters/loganalytics';

describe('keyDeletionQuery', () => {
  it('is the documented template with the window, vault and key as literals', () => {
    const text = keyDeletionQuery('kv-prod', 'cmk-1', {
      from: new Date('2026-03-04T05:04:00.000Z'),
      to: new Date('2026-03-04T05:08:00.000Z'),
    });
    expect(text).toBe(
      [
        'AZKVAuditLogs',
        '| where TimeGenerated between (datetime(2026-03-04T05:04:00.000Z) .. datetime(2026-03-04T05:08:00.000Z))',
        '| where OperationName == "KeyDelete" and HttpStatusCode between (200 .. 299)',
        '| where _ResourceId endswith "/providers/microsoft.keyvault/vaults/kv-prod"',
        '| where Id endswith "/keys/cmk-1"',
        '| extend CallerObjectId = tostring(Identity.claim.oid), CallerUpn = tostring(Identity.claim.upn), CallerAppId = tostring(Identity.claim.appid), CallerIdType = tostring(Identity.claim.idtyp)',
        '| project TimeGenerated, _ResourceId, Id, OperationName, HttpStatusCode, CallerObjectId, CallerUpn, CallerAppId, CallerIdType, CallerIpAddress, ClientInfo, Identity',
        '| order by TimeGenerated asc',
        '| take 50',
      ].join('\n'),
    );
  });

  it('keeps a hostile name inside its literal', () => {
    const text = keyDeletionQuery('kv', 'k" or 1 == 1 //', { from: new Date(0), to: new Date(1) });
    expect(text).toContain('| where Id endswith "/keys/k\\" or 1 == 1 //"');
    expect(text.split('\n')).toHaveLength(9);
  });

  it('refuses an invalid window', () => {
    expect(() => keyDeletionQuery('kv', 'k', { from: new Date(NaN), to: new Date(0) })).toThrow(RangeError);
  });
});

describe('keyDeletionsQuery', () => {
  it('is the window-only template: every vault, every key', () => {
    const text = keyDeletionsQuery({
      from: new Date('2026-03-04T05:00:00.000Z'),
      to: new Date('2026-03-04T05:10:00.000Z'),
    });
    expect(text.split('\n')).toEqual([
      'AZKVAuditLogs',
      '| where TimeGenerated between (datetime(2026-03-04T05:00:00.000Z) .. datetime(2026-03-04T05:10:00.000Z))',
      '| where OperationName == "KeyDelete" and HttpStatusCode between (200 .. 299)',
      '| extend CallerObjectId = tostring(Identity.claim.oid), CallerUpn = tostring(Identity.claim.upn), CallerAppId = tostring(Identity.claim.appid), CallerIdType = tostring(Identity.claim.idtyp)',
      '| project TimeGenerated, _ResourceId, Id, OperationName, HttpStatusCode, CallerObjectId, CallerUpn, CallerAppId, CallerIdType, CallerIpAddress, ClientInfo, Identity',
      '| order by TimeGenerated asc',
      '| take 500',
    ]);
  });
});

describe('KQL literals', () => {
  it.each([
    ['plain', 'kv-1', '"kv-1"'],
    ['double quote', 'a"b', '"a\\"b"'],
    ['backslash', 'a\\b', '"a\\\\b"'],
    ['backslash before a quote', '\\"', '"\\\\\\""'],
    ['tab and newline', 'a\tb\nc', '"a\\tb\\nc"'],
    ['single quote (no escape needed)', "a'b", '"a\'b"'],
  ])('escapes %s', (_name, value, literal) => {
    expect(kqlString(value)).toBe(literal);
  });

  it.each(['a\rb', 'a\u0000b', 'a\u2028b'])('refuses a control character in %j', (value) => {
    expect(() => kqlString(value)).toThrow(RangeError);
  });

  it('writes datetimes in UTC', () => {
    expect(kqlDatetime(new Date(Date.UTC(2026, 0, 2, 3, 4, 5, 6)))).toBe(
      'datetime(2026-01-02T03:04:05.006Z)',
    );
  });
});

describe('KEY_DELETION_ALERT_QUERY', () => {
  it('selects successful key deletions with the caller as string dimensions, without literals', () => {
    expect(KEY_DELETION_ALERT_QUERY.split('\n')).toEqual([
      'AZKVAuditLogs',
      '| where OperationName == "KeyDelete" and HttpStatusCode between (200 .. 299)',
      expect.stringMatching(/^\| extend CallerObjectId = tostring\(Identity\.claim\.oid\)/),
      expect.stringMatching(/^\| project TimeGenerated, _ResourceId, Id, /),
    ]);
  });
});
