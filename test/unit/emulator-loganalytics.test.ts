/**
 * The emulated Log Analytics query API (test/emulator/loganalytics.ts), driven directly with a fake
 * core: the AZKVAuditLogs row of a real AuditEvent record (written by the emulated vault), the one
 * query template it runs and its strictness, the ingestion delay, authentication, RBAC and the error
 * shapes; and the contract with kvguard's adapter (lib/adapters/loganalytics.ts): the text the
 * adapter sends is exactly what the emulator parses.
 */
import {
  keyDeletionQuery,
  keyDeletionsQuery,
  KEY_DELETION_ALERT_QUERY,
} from '../../lib/adapters/loganalytics';
import { createKeyVaultService, seedKey, vaultResourceId } from '../emulator/keyvault';
import {
  addWorkspace,
  AZKV_AUDIT_LOGS_COLUMNS,
  createLogAnalyticsService,
  parseKeyDeletionQuery,
  parseTimespan,
  QUERY_ACTION,
  toAzkvAuditLogsRow,
  unquoteKql,
} from '../emulator/loganalytics';
import { createFakeCore, FAKE_EPOCH_MS, request, type FakeCore } from '../emulator/testing/fake-core';
import type { AuditRecord, EmuResponse, Principal, ServiceHandler, WorkspaceRecord } from '../emulator/types';

// eslint-disable-next-line @typescript-eslint/no-explicit-any -- JSON bodies, read field by field
type Body = Record<string, any>;

const WS = '5a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d';
const UA = 'azsdk-js-keyvault-keys/4.10.2 core-rest-pipeline/1.24.0 Node/20.20.2';
const LA_AUDIENCE = 'https://api.loganalytics.io';

let core: FakeCore;
let la: ServiceHandler;
let kv: ServiceHandler;
let reader: Principal;
let attacker: Principal;
let workspace: WorkspaceRecord;

beforeEach(() => {
  core = createFakeCore();
  la = createLogAnalyticsService(core, () => core.audits);
  kv = createKeyVaultService(core);
  reader = core.addPrincipal({ kind: 'managedIdentity', displayName: 'id-kvguard' });
  attacker = core.addPrincipal({ kind: 'user', upn: 'mallory@contoso.example', ipAddress: '203.0.113.66' });
  workspace = addWorkspace(core, { id: WS, name: 'law-sec' });
  core.grant(reader.oid, workspace.resourceId, { actions: [QUERY_ACTION] });
  core.addVault({ name: 'kv1' });
  core.grant(attacker.oid, vaultResourceId(core.vaults.get('kv1')!), 'Key Vault Crypto Officer');
  seedKey(core, 'kv1', { name: 'k1' });
});

async function call(res: EmuResponse | Promise<EmuResponse>): Promise<EmuResponse> {
  return res;
}

/** The attacker deletes a key through the emulated vault: a real AuditEvent record results. */
function deleteKey(vault: string, key: string): void {
  const res = kv(
    request({
      method: 'DELETE',
      host: `${vault}.vault.azure.net`,
      path: `/keys/${key}`,
      query: { 'api-version': '7.5' },
      headers: { authorization: core.bearer(attacker), 'user-agent': UA },
    }),
  ) as EmuResponse;
  expect(res.status).toBe(200);
}

function window(fromOffsetMs = -60_000, toOffsetMs = 60_000) {
  return { from: new Date(FAKE_EPOCH_MS + fromOffsetMs), to: new Date(FAKE_EPOCH_MS + toOffsetMs) };
}

function query(
  text: string,
  opts: { as?: Principal; workspaceId?: string; timespan?: string | null; audience?: string } = {},
): Promise<EmuResponse> {
  const body: Record<string, unknown> = { query: text };
  if (opts.timespan !== null) body.timespan = opts.timespan ?? 'P1D';
  return call(
    la(
      request({
        method: 'POST',
        host: 'api.loganalytics.io',
        path: `/v1/workspaces/${opts.workspaceId ?? WS}/query`,
        headers: {
          authorization: core.bearer(opts.as ?? reader, { audience: opts.audience ?? LA_AUDIENCE }),
        },
        body,
      }),
    ),
  );
}

const body = (res: EmuResponse): Body => res.body as Body;

function rowsAsObjects(res: EmuResponse): Body[] {
  const table = body(res).tables[0];
  return table.rows.map((row: unknown[]) =>
    Object.fromEntries(table.columns.map((c: { name: string }, i: number) => [c.name, row[i]])),
  );
}

function expectLawError(res: EmuResponse, status: number, code: string, inner?: string) {
  expect(res.status).toBe(status);
  const error = body(res).error;
  expect(error).toMatchObject({ code, message: expect.any(String), correlationId: expect.any(String) });
  if (inner) expect(error.innererror.code).toBe(inner);
}

describe('AZKVAuditLogs rows', () => {
  it('maps a KeyDelete record of the emulated vault onto the real columns', () => {
    deleteKey('kv1', 'k1');
    const record = core.audits.find((r) => r.operationName === 'KeyDelete')!;
    const row = toAzkvAuditLogsRow(record, workspace);
    expect(Object.keys(row).sort()).toEqual(AZKV_AUDIT_LOGS_COLUMNS.map((c) => c.name).sort());
    expect(row).toMatchObject({
      TimeGenerated: new Date(FAKE_EPOCH_MS).toISOString(),
      OperationName: 'KeyDelete',
      ResultType: 'Success',
      ResultSignature: 'OK',
      HttpStatusCode: 200,
      CallerIpAddress: '203.0.113.66',
      ClientInfo: UA,
      Id: 'https://kv1.vault.azure.net/keys/k1',
      RequestUri: 'https://kv1.vault.azure.net/keys/k1?api-version=7.5',
      IsRbacAuthorized: true,
      Tlsversion: 'TLS1_3',
      Type: 'AZKVAuditLogs',
      TenantId: WS,
      SourceSystem: 'Azure',
      _ResourceId: vaultResourceId(core.vaults.get('kv1')!).toLowerCase(),
      _SubscriptionId: core.subscriptionId,
      Identity: {
        claim: expect.objectContaining({ oid: attacker.oid, upn: 'mallory@contoso.example', idtyp: 'user' }),
      },
    });
    expect(typeof row.DurationMs).toBe('number');
  });

  it('types every column as the table reference does', () => {
    const types = Object.fromEntries(AZKV_AUDIT_LOGS_COLUMNS.map((c) => [c.name, c.type]));
    expect(types).toMatchObject({
      TimeGenerated: 'datetime',
      Identity: 'dynamic',
      Properties: 'dynamic',
      HttpStatusCode: 'int',
      DurationMs: 'int',
      IsRbacAuthorized: 'bool',
      CallerIpAddress: 'string',
      _ResourceId: 'string',
    });
    expect(AZKV_AUDIT_LOGS_COLUMNS).toHaveLength(51);
  });
});

describe('the key-deletion query', () => {
  it('finds the deletion with the caller, in the real response shape', async () => {
    deleteKey('kv1', 'k1');
    const res = await query(keyDeletionQuery('kv1', 'k1', window()));
    expect(res.status).toBe(200);
    expect(res.callerOid).toBe(reader.oid);
    const table = body(res).tables[0];
    expect(body(res).tables).toHaveLength(1);
    expect(table.name).toBe('PrimaryResult');
    expect(table.columns).toEqual([
      { name: 'TimeGenerated', type: 'datetime' },
      { name: '_ResourceId', type: 'string' },
      { name: 'Id', type: 'string' },
      { name: 'OperationName', type: 'string' },
      { name: 'HttpStatusCode', type: 'int' },
      { name: 'CallerObjectId', type: 'string' },
      { name: 'CallerUpn', type: 'string' },
      { name: 'CallerAppId', type: 'string' },
      { name: 'CallerIdType', type: 'string' },
      { name: 'CallerIpAddress', type: 'string' },
      { name: 'ClientInfo', type: 'string' },
      { name: 'Identity', type: 'dynamic' },
    ]);
    const [row] = rowsAsObjects(res);
    expect(row).toMatchObject({
      TimeGenerated: '2026-01-01T00:00:00.0000000Z',
      Id: 'https://kv1.vault.azure.net/keys/k1',
      OperationName: 'KeyDelete',
      HttpStatusCode: 200,
      CallerObjectId: attacker.oid,
      CallerUpn: 'mallory@contoso.example',
      CallerAppId: '',
      CallerIdType: 'user',
      CallerIpAddress: '203.0.113.66',
      ClientInfo: UA,
    });
    // dynamic values travel as JSON text
    expect(JSON.parse(row!.Identity as string)).toMatchObject({ claim: { oid: attacker.oid } });
  });

  it('matches vault and key names ignoring case, and nothing else', async () => {
    seedKey(core, 'kv1', { name: 'k10' });
    deleteKey('kv1', 'k10');
    deleteKey('kv1', 'k1');
    const res = await query(keyDeletionQuery('KV1', 'K1', window()));
    expect(rowsAsObjects(res).map((r) => r.Id)).toEqual(['https://kv1.vault.azure.net/keys/k1']);
  });

  it('leaves out refused deletions, other operations, other vaults and times outside the window', async () => {
    core.addVault({ name: 'kv2' });
    seedKey(core, 'kv2', { name: 'k1' });
    const stranger = core.addPrincipal({ kind: 'servicePrincipal', displayName: 'sp-no-rights' });
    const denied = kv(
      request({
        method: 'DELETE',
        host: 'kv1.vault.azure.net',
        path: '/keys/k1',
        query: { 'api-version': '7.5' },
        headers: { authorization: core.bearer(stranger) },
      }),
    ) as EmuResponse;
    expect(denied.status).toBe(403);
    core.grant(attacker.oid, vaultResourceId(core.vaults.get('kv2')!), 'Key Vault Crypto Officer');
    deleteKey('kv2', 'k1');
    const res = await query(keyDeletionQuery('kv1', 'k1', window()));
    expect(rowsAsObjects(res)).toEqual([]);
    core.advance(120_000);
    deleteKey('kv1', 'k1');
    expect(rowsAsObjects(await query(keyDeletionQuery('kv1', 'k1', window())))).toEqual([]);
    expect(rowsAsObjects(await query(keyDeletionQuery('kv1', 'k1', window(0, 120_000))))).toHaveLength(1);
  });

  it('hides a record until the ingestion delay has passed', async () => {
    addWorkspace(core, { id: WS, name: 'law-sec', ingestionDelayMs: 300_000 });
    deleteKey('kv1', 'k1');
    const q = keyDeletionQuery('kv1', 'k1', window());
    core.advance(299_999);
    expect(rowsAsObjects(await query(q))).toEqual([]);
    core.advance(1);
    expect(rowsAsObjects(await query(q))).toHaveLength(1);
  });

  it('holds only the records of the vaults whose diagnostic setting points at the workspace', async () => {
    addWorkspace(core, { id: WS, name: 'law-sec', vaults: ['kv-other'] });
    deleteKey('kv1', 'k1');
    expect(rowsAsObjects(await query(keyDeletionQuery('kv1', 'k1', window())))).toEqual([]);
  });

  it('applies the request timespan in addition to the query window', async () => {
    deleteKey('kv1', 'k1');
    const q = keyDeletionQuery('kv1', 'k1', window());
    const at = (offset: number) => new Date(FAKE_EPOCH_MS + offset).toISOString();
    expect(rowsAsObjects(await query(q, { timespan: `${at(1000)}/${at(5000)}` }))).toEqual([]);
    expect(rowsAsObjects(await query(q, { timespan: `${at(-1000)}/PT1M` }))).toHaveLength(1);
    expect(rowsAsObjects(await query(q, { timespan: null }))).toHaveLength(1);
    expectLawError(await query(q, { timespan: 'yesterday' }), 400, 'BadArgumentError', 'InvalidTimespan');
  });

  it('lists every successful deletion of the window, in every vault of the workspace', async () => {
    core.addVault({ name: 'kv2' });
    seedKey(core, 'kv2', { name: 'k2' });
    seedKey(core, 'kv1', { name: 'k3' });
    seedKey(core, 'kv1', { name: 'k4' });
    core.grant(attacker.oid, vaultResourceId(core.vaults.get('kv2')!), 'Key Vault Crypto Officer');
    deleteKey('kv1', 'k1');
    core.advance(1000);
    deleteKey('kv2', 'k2');
    core.advance(1000);
    deleteKey('kv1', 'k3');
    core.advance(120_000);
    deleteKey('kv1', 'k4');
    const rows = rowsAsObjects(await query(keyDeletionsQuery(window(0, 60_000))));
    expect(rows.map((r) => r.Id)).toEqual([
      'https://kv1.vault.azure.net/keys/k1',
      'https://kv2.vault.azure.net/keys/k2',
      'https://kv1.vault.azure.net/keys/k3',
    ]);
    expect(rows.every((r) => r.CallerObjectId === attacker.oid)).toBe(true);
  });

  it('answers the adapter query read through GET as well', async () => {
    deleteKey('kv1', 'k1');
    const res = await call(
      la(
        request({
          method: 'GET',
          host: 'api.loganalytics.io',
          path: `/v1/workspaces/${WS}/query`,
          query: { query: keyDeletionQuery('kv1', 'k1', window()), timespan: 'P1D' },
          headers: { authorization: core.bearer(reader, { audience: LA_AUDIENCE }) },
        }),
      ),
    );
    expect(rowsAsObjects(res)).toHaveLength(1);
  });
});

describe('strictness: the emulator runs only the documented template', () => {
  it.each([
    ['any other query', 'AZKVAuditLogs | take 10'],
    ['the alert-rule query (no literals)', KEY_DELETION_ALERT_QUERY],
    ['a changed filter', keyDeletionQuery('kv1', 'k1', window()).replace('"KeyDelete"', '"KeyPurge"')],
    ['an extra clause', `${keyDeletionQuery('kv1', 'k1', window())}\n| where CallerUpn != ""`],
    [
      'an injected clause in a literal',
      keyDeletionQuery('kv1', 'k1', window()).replace('/keys/k1"', '/keys/k1" or 1 == 1'),
    ],
    ['a single-quoted literal', keyDeletionQuery('kv1', 'k1', window()).replace('"/keys/k1"', "'/keys/k1'")],
  ])('refuses %s with 400 BadArgumentError', async (_name, text) => {
    expectLawError(await query(text), 400, 'BadArgumentError', 'EmulatorUnsupportedQuery');
  });

  it('refuses a body without a query, or not JSON', async () => {
    const send = (raw: string) =>
      call(
        la(
          request({
            method: 'POST',
            host: 'api.loganalytics.io',
            path: `/v1/workspaces/${WS}/query`,
            headers: {
              authorization: core.bearer(reader, { audience: LA_AUDIENCE }),
              'content-type': 'application/json',
            },
            body: raw,
          }),
        ),
      );
    expectLawError(await send('{"timespan":"P1D"}'), 400, 'BadArgumentError', 'QueryValidationError');
    expectLawError(await send('{not json'), 400, 'BadArgumentError', 'InvalidRequestBody');
  });

  it('round-trips escaped literals of the adapter', () => {
    const text = keyDeletionQuery('kv"1', 'k\\1\t"x', window());
    expect(parseKeyDeletionQuery(text)).toEqual({
      from: FAKE_EPOCH_MS - 60_000,
      to: FAKE_EPOCH_MS + 60_000,
      vault: 'kv"1',
      key: 'k\\1\t"x',
      take: 50,
    });
    expect(parseKeyDeletionQuery(keyDeletionsQuery(window()))).toEqual({
      from: FAKE_EPOCH_MS - 60_000,
      to: FAKE_EPOCH_MS + 60_000,
      take: 500,
    });
    expect(unquoteKql('"a\\qb"')).toBeUndefined();
  });
});

describe('authentication, authorization and paths', () => {
  it('answers 401 AuthorizationRequiredError without a token', async () => {
    const res = await call(
      la(
        request({
          method: 'POST',
          host: 'api.loganalytics.io',
          path: `/v1/workspaces/${WS}/query`,
          body: { query: 'x' },
        }),
      ),
    );
    expectLawError(res, 401, 'AuthorizationRequiredError');
  });

  it('answers 403 InvalidTokenError to a token for another audience, 401 to an expired one', async () => {
    expectLawError(await query('x', { audience: 'https://vault.azure.net' }), 403, 'InvalidTokenError');
    const expired = `Bearer ${core.issueToken(reader, { audience: LA_AUDIENCE, lifetimeS: -10 })}`;
    const res = await call(
      la(
        request({
          method: 'POST',
          host: 'api.loganalytics.io',
          path: `/v1/workspaces/${WS}/query`,
          headers: { authorization: expired },
          body: { query: 'x' },
        }),
      ),
    );
    expectLawError(res, 401, 'InvalidTokenError');
  });

  it('answers 403 InsufficientAccessError without query/read on the workspace', async () => {
    expectLawError(
      await query(keyDeletionQuery('kv1', 'k1', window()), { as: attacker }),
      403,
      'InsufficientAccessError',
    );
  });

  it('accepts query/read inherited from the resource group (e.g. Reader)', async () => {
    const auditor = core.addPrincipal({ kind: 'servicePrincipal', displayName: 'sp-auditor' });
    core.grant(auditor.oid, `/subscriptions/${core.subscriptionId}/resourceGroups/rg-monitoring`, 'Reader');
    expect((await query(keyDeletionQuery('kv1', 'k1', window()), { as: auditor })).status).toBe(200);
  });

  it('answers 404 WorkspaceNotFoundError for an unknown workspace and PathNotFoundError for other paths', async () => {
    expectLawError(
      await query(keyDeletionQuery('kv1', 'k1', window()), {
        workspaceId: '00000000-0000-4000-8000-000000000000',
      }),
      404,
      'WorkspaceNotFoundError',
    );
    const res = await call(
      la(request({ method: 'GET', host: 'api.loganalytics.io', path: `/v1/workspaces/${WS}/metadata` })),
    );
    expectLawError(res, 404, 'PathNotFoundError');
  });
});

describe('timespan', () => {
  it.each([
    ['2026-01-01T00:00:00Z/2026-01-01T01:00:00Z', [0, 3_600_000]],
    ['2026-01-01T00:00:00Z/PT1H30M', [0, 5_400_000]],
    ['P1D/2026-01-02T00:00:00Z', [0, 86_400_000]],
    ['PT12H', [-43_200_000, 0]],
  ])('parses %s', (text, [from, to]) => {
    expect(parseTimespan(text, FAKE_EPOCH_MS)).toEqual([FAKE_EPOCH_MS + from!, FAKE_EPOCH_MS + to!]);
  });

  it.each(['', 'P', 'PT', 'nonsense', 'a/b/c'])('refuses %j', (text) => {
    expect(parseTimespan(text, FAKE_EPOCH_MS)).toBeUndefined();
  });
});

describe('records that are not KeyDelete', () => {
  it('never turns an unknown vault or a malformed record into a row', async () => {
    const odd: AuditRecord = {
      time: 'not a time',
      resourceId: '/SUBSCRIPTIONS/X/RESOURCEGROUPS/Y/PROVIDERS/MICROSOFT.KEYVAULT/VAULTS/KV1',
      operationName: 'KeyDelete',
      category: 'AuditEvent',
    };
    core.audits.push(odd);
    expect(rowsAsObjects(await query(keyDeletionQuery('kv1', 'k1', window())))).toEqual([]);
  });
});
