/**
 * The emulated Microsoft Graph (test/emulator/graph.ts), driven directly with a fake core: the
 * objects of each principal kind, the typed resources, the application permissions and the error
 * shapes; and kvguard's mapping of those objects (lib/adapters/graph.ts `describeGraphObject`).
 */
import { describeGraphObject } from '../../lib/adapters/graph';
import { createGraphService, grantGraphPermissions } from '../emulator/graph';
import { createFakeCore, request, type FakeCore } from '../emulator/testing/fake-core';
import type { EmuResponse, Principal, ServiceHandler } from '../emulator/types';

// eslint-disable-next-line @typescript-eslint/no-explicit-any -- JSON bodies, read field by field
type Body = Record<string, any>;

const GRAPH = 'https://graph.microsoft.com';

let core: FakeCore;
let graph: ServiceHandler;
let kvguard: Principal;
let user: Principal;
let app: Principal;
let mi: Principal;

beforeEach(() => {
  core = createFakeCore();
  graph = createGraphService(core);
  kvguard = core.addPrincipal({ kind: 'managedIdentity', displayName: 'id-kvguard' });
  user = core.addPrincipal({ kind: 'user', upn: 'mallory@contoso.example', displayName: 'Mallory' });
  app = core.addPrincipal({ kind: 'servicePrincipal', displayName: 'sp-rotation' });
  mi = core.addPrincipal({
    kind: 'managedIdentity',
    displayName: 'id-batch',
    resourceId:
      '/subscriptions/x/resourceGroups/rg/providers/Microsoft.ManagedIdentity/userAssignedIdentities/id-batch',
  });
});

function get(
  path: string,
  opts: { as?: Principal | null; audience?: string; query?: Record<string, string> } = {},
): EmuResponse {
  const headers: Record<string, string> = { 'client-request-id': 'c-1' };
  const as = opts.as === undefined ? kvguard : opts.as;
  if (as) headers.authorization = core.bearer(as, { audience: opts.audience ?? GRAPH });
  return graph(
    request({ method: 'GET', host: 'graph.microsoft.com', path, query: opts.query, headers }),
  ) as EmuResponse;
}

const body = (res: EmuResponse): Body => res.body as Body;

function expectGraphError(res: EmuResponse, status: number, code: string) {
  expect(res.status).toBe(status);
  expect(body(res).error).toEqual({
    code,
    message: expect.any(String),
    innerError: {
      date: expect.stringMatching(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d$/),
      'request-id': expect.any(String),
      'client-request-id': 'c-1',
    },
  });
}

describe('with Directory.Read.All', () => {
  beforeEach(() => grantGraphPermissions(core, kvguard.oid, ['Directory.Read.All']));

  it('returns a user as a directory object with its @odata.type and upn', () => {
    const res = get(`/v1.0/directoryObjects/${user.oid}`);
    expect(res.status).toBe(200);
    expect(res.callerOid).toBe(kvguard.oid);
    expect(body(res)).toMatchObject({
      '@odata.context': 'https://graph.microsoft.com/v1.0/$metadata#directoryObjects/$entity',
      '@odata.type': '#microsoft.graph.user',
      id: user.oid,
      displayName: 'Mallory',
      userPrincipalName: 'mallory@contoso.example',
    });
    expect(describeGraphObject(res.body, 'directoryObjects')).toEqual({
      displayName: 'Mallory',
      type: 'user',
    });
  });

  it('returns an application and a managed identity as service principals', () => {
    const sp = body(get(`/v1.0/directoryObjects/${app.oid}`));
    expect(sp).toMatchObject({
      '@odata.type': '#microsoft.graph.servicePrincipal',
      appId: app.appId,
      displayName: 'sp-rotation',
      servicePrincipalType: 'Application',
    });
    const managed = body(get(`/v1.0/directoryObjects/${mi.oid}`));
    expect(managed).toMatchObject({
      '@odata.type': '#microsoft.graph.servicePrincipal',
      servicePrincipalType: 'ManagedIdentity',
      alternativeNames: ['isExplicit=True', mi.resourceId],
    });
    expect(describeGraphObject(sp, 'directoryObjects')).toEqual({
      displayName: 'sp-rotation',
      type: 'servicePrincipal',
    });
    expect(describeGraphObject(managed, 'directoryObjects')).toEqual({
      displayName: 'id-batch',
      type: 'managedIdentity',
    });
  });

  it('serves the typed resources without @odata.type, users also by upn', () => {
    const byUpn = body(get('/v1.0/users/mallory@contoso.example'));
    expect(byUpn['@odata.context']).toBe('https://graph.microsoft.com/v1.0/$metadata#users/$entity');
    expect(byUpn['@odata.type']).toBeUndefined();
    expect(byUpn.id).toBe(user.oid);
    expect(body(get(`/v1.0/servicePrincipals/${app.oid}`)).appId).toBe(app.appId);
    expect(describeGraphObject(byUpn, 'users')).toEqual({ displayName: 'Mallory', type: 'user' });
  });

  it('keeps only the $select properties', () => {
    expect(body(get(`/v1.0/directoryObjects/${user.oid}`, { query: { $select: 'displayName' } }))).toEqual({
      '@odata.context': 'https://graph.microsoft.com/v1.0/$metadata#directoryObjects/$entity',
      '@odata.type': '#microsoft.graph.user',
      id: user.oid,
      displayName: 'Mallory',
    });
  });

  it('answers 404 Request_ResourceNotFound for an unknown id or an object of the other type', () => {
    const unknown = '0badc0de-0000-4000-8000-000000000000';
    const res = get(`/v1.0/directoryObjects/${unknown}`);
    expectGraphError(res, 404, 'Request_ResourceNotFound');
    expect(body(res).error.message).toBe(
      `Resource '${unknown}' does not exist or one of its queried reference-property objects are not present.`,
    );
    expectGraphError(get(`/v1.0/users/${app.oid}`), 404, 'Request_ResourceNotFound');
    expectGraphError(get(`/v1.0/servicePrincipals/${user.oid}`), 404, 'Request_ResourceNotFound');
  });

  it('answers 400 for an unknown segment and 405 for a write', () => {
    expectGraphError(get(`/v1.0/groups/${user.oid}`), 400, 'BadRequest');
    const res = graph(
      request({
        method: 'PATCH',
        host: 'graph.microsoft.com',
        path: `/v1.0/users/${user.oid}`,
        headers: { authorization: core.bearer(kvguard, { audience: GRAPH }), 'client-request-id': 'c-1' },
        body: { displayName: 'x' },
      }),
    ) as EmuResponse;
    expectGraphError(res, 405, 'Request_BadRequest');
  });
});

describe('permissions and tokens', () => {
  it('answers 403 Authorization_RequestDenied without a grant, even for an unknown id', () => {
    expectGraphError(get(`/v1.0/directoryObjects/${user.oid}`), 403, 'Authorization_RequestDenied');
    expectGraphError(
      get('/v1.0/directoryObjects/0badc0de-0000-4000-8000-000000000000'),
      403,
      'Authorization_RequestDenied',
    );
  });

  it('lets User.ReadBasic.All read users and Application.Read.All read service principals, not directoryObjects', () => {
    grantGraphPermissions(core, kvguard.oid, ['User.ReadBasic.All']);
    expect(get(`/v1.0/users/${user.oid}`).status).toBe(200);
    expectGraphError(get(`/v1.0/servicePrincipals/${app.oid}`), 403, 'Authorization_RequestDenied');
    expectGraphError(get(`/v1.0/directoryObjects/${user.oid}`), 403, 'Authorization_RequestDenied');
    grantGraphPermissions(core, kvguard.oid, ['Application.Read.All']);
    expect(get(`/v1.0/servicePrincipals/${app.oid}`).status).toBe(200);
    expect(core.graphPermissions?.get(kvguard.oid)).toEqual(['User.ReadBasic.All', 'Application.Read.All']);
  });

  it('answers 401 InvalidAuthenticationToken without a token or with one for another audience', () => {
    grantGraphPermissions(core, kvguard.oid, ['Directory.Read.All']);
    expectGraphError(
      get(`/v1.0/directoryObjects/${user.oid}`, { as: null }),
      401,
      'InvalidAuthenticationToken',
    );
    expectGraphError(
      get(`/v1.0/directoryObjects/${user.oid}`, { audience: 'https://vault.azure.net' }),
      401,
      'InvalidAuthenticationToken',
    );
    expect(
      get(`/v1.0/directoryObjects/${user.oid}`, { audience: '00000003-0000-0000-c000-000000000000' }).status,
    ).toBe(200);
  });
});

describe('describeGraphObject (kvguard side)', () => {
  it.each([
    ['no object', undefined, undefined],
    [
      'a group',
      { '@odata.type': '#microsoft.graph.group', displayName: 'g' },
      { displayName: 'g', type: 'group' },
    ],
    ['no name at all', { '@odata.type': '#microsoft.graph.user' }, undefined],
    [
      'a name with control characters',
      { '@odata.type': '#microsoft.graph.user', displayName: 'Eve\u202e\n' },
      { displayName: 'Eve', type: 'user' },
    ],
    [
      'only an appId',
      { '@odata.type': '#microsoft.graph.servicePrincipal', appId: 'a1' },
      { displayName: 'a1', type: 'servicePrincipal' },
    ],
  ])('maps %s', (_name, input, expected) => {
    expect(describeGraphObject(input, 'directoryObjects')).toEqual(expected);
  });
});
