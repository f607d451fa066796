/**
 * The emulated Microsoft Graph (`https://graph.microsoft.com/v1.0`): just enough of the directory for
 * kvguard to name a principal, answered from `core.principals`.
 *
 * - `GET /v1.0/directoryObjects/{id}`: the object with its derived `@odata.type`
 *   (`#microsoft.graph.user` or `#microsoft.graph.servicePrincipal`); managed identities are service
 *   principals with `servicePrincipalType: "ManagedIdentity"` and their resource id in
 *   `alternativeNames`.
 * - `GET /v1.0/users/{id|userPrincipalName}` and `GET /v1.0/servicePrincipals/{id}`: the typed
 *   resources (no `@odata.type`, as Graph omits it for the collection's own type).
 * - `$select` keeps the named properties (plus `id` and the OData annotations).
 * - Errors `{ error: { code, message, innerError: { date, request-id, client-request-id } } }`:
 *   404 `Request_ResourceNotFound` ("Resource '<id>' does not exist or one of its queried
 *   reference-property objects are not present."), 403 `Authorization_RequestDenied` ("Insufficient
 *   privileges to complete the operation."), 401 `InvalidAuthenticationToken`, 400 `BadRequest` for an
 *   unknown segment.
 *
 * Permissions: Graph reads application permissions (app roles) from the token's `roles` claim; the
 * emulator keeps them beside the token instead, in `core.graphPermissions` (oid → names; grant with
 * `grantGraphPermissions`). Required (least privileged first, per Graph's permission tables):
 * directoryObjects `Directory.Read.All`; users `User.ReadBasic.All`/`User.Read.All`; servicePrincipals
 * `Application.Read.All`; `Directory.Read.All` and the `…ReadWrite.All` variants cover all three.
 * The permission is checked before the object is looked up, as Graph answers 403 either way.
 */
import { randomUUID } from 'node:crypto';
import type { EmuRequest, EmuResponse, EmulatorCore, Principal, ServiceHandler } from './types';

export const GRAPH_HOST = 'graph.microsoft.com';
/** v1 tokens carry the URI, v2 tokens the application id of Microsoft Graph. */
export const GRAPH_AUDIENCES = ['https://graph.microsoft.com', '00000003-0000-0000-c000-000000000000'];

const DIRECTORY = ['Directory.Read.All', 'Directory.ReadWrite.All'];
const REQUIRED: Record<Collection, string[]> = {
  directoryObjects: DIRECTORY,
  users: ['User.ReadBasic.All', 'User.Read.All', 'User.ReadWrite.All', ...DIRECTORY],
  servicePrincipals: ['Application.Read.All', 'Application.ReadWrite.All', ...DIRECTORY],
};

type Collection = 'directoryObjects' | 'users' | 'servicePrincipals';

/** Grants Microsoft Graph application permissions to a principal (adds to what it has). */
export function grantGraphPermissions(core: EmulatorCore, oid: string, permissions: string[]): void {
  core.graphPermissions ??= new Map();
  const held = core.graphPermissions.get(oid) ?? [];
  core.graphPermissions.set(oid, [...new Set([...held, ...permissions])]);
}

function graphError(req: EmuRequest, status: number, code: string, message: string): EmuResponse {
  const requestId = randomUUID();
  const clientRequestId =
    typeof req.headers['client-request-id'] === 'string' ? req.headers['client-request-id'] : requestId;
  return {
    status,
    headers: { 'request-id': requestId, 'client-request-id': clientRequestId },
    body: {
      error: {
        code,
        message,
        innerError: {
          date: new Date().toISOString().replace(/\.\d+Z$/, ''),
          'request-id': requestId,
          'client-request-id': clientRequestId,
        },
      },
    },
  };
}

/** The principal as the Graph resource of its type (the properties kvguard and a reader would use). */
export function graphObject(p: Principal): Record<string, unknown> {
  if (p.kind === 'user') {
    return {
      id: p.oid,
      businessPhones: [],
      displayName: p.displayName,
      givenName: null,
      jobTitle: null,
      mail: null,
      mobilePhone: null,
      officeLocation: null,
      preferredLanguage: null,
      surname: null,
      userPrincipalName: p.upn ?? null,
    };
  }
  const managed = p.kind === 'managedIdentity';
  return {
    id: p.oid,
    accountEnabled: true,
    alternativeNames: managed && p.resourceId ? ['isExplicit=True', p.resourceId] : [],
    appDisplayName: managed ? null : p.displayName,
    appId: p.appId ?? null,
    displayName: p.displayName,
    servicePrincipalNames: p.appId ? [p.appId] : [],
    servicePrincipalType: managed ? 'ManagedIdentity' : 'Application',
    tags: [],
  };
}

function odataType(p: Principal): string {
  return p.kind === 'user' ? '#microsoft.graph.user' : '#microsoft.graph.servicePrincipal';
}

export function createGraphService(core: EmulatorCore): ServiceHandler {
  return (req: EmuRequest): EmuResponse => {
    const segments = req.path.split('/').filter(Boolean);
    if (segments[0] !== 'v1.0') {
      return graphError(req, 400, 'BadRequest', `Invalid version: ${segments[0] ?? ''}`);
    }
    const collection = segments[1];
    if (collection !== 'directoryObjects' && collection !== 'users' && collection !== 'servicePrincipals') {
      return graphError(req, 400, 'BadRequest', `Resource not found for the segment '${collection ?? ''}'.`);
    }
    if (segments.length !== 3) {
      return graphError(
        req,
        400,
        'BadRequest',
        'The emulator serves single objects only: /v1.0/<collection>/{id}.',
      );
    }
    if (req.method !== 'GET') {
      return graphError(
        req,
        405,
        'Request_BadRequest',
        'Specified HTTP method is not allowed for the request target.',
      );
    }
    const authorization =
      typeof req.headers.authorization === 'string' ? req.headers.authorization : undefined;
    if (!authorization) return graphError(req, 401, 'InvalidAuthenticationToken', 'Access token is empty.');
    const claims = core.verifyBearer(authorization, GRAPH_AUDIENCES);
    if (!claims)
      return graphError(req, 401, 'InvalidAuthenticationToken', 'Access token validation failure.');
    const done = (res: EmuResponse): EmuResponse => ({ ...res, callerOid: claims.oid });

    const held = core.graphPermissions?.get(claims.oid) ?? [];
    if (!REQUIRED[collection].some((perm) => held.includes(perm))) {
      return done(
        graphError(
          req,
          403,
          'Authorization_RequestDenied',
          'Insufficient privileges to complete the operation.',
        ),
      );
    }

    const id = decodeURIComponent(segments[2] ?? '');
    const wanted = id.toLowerCase();
    const principal = [...core.principals.values()].find(
      (p) => p.oid.toLowerCase() === wanted || (collection === 'users' && p.upn?.toLowerCase() === wanted),
    );
    const fits =
      principal &&
      (collection === 'directoryObjects' || (collection === 'users') === (principal.kind === 'user'));
    if (!principal || !fits) {
      return done(
        graphError(
          req,
          404,
          'Request_ResourceNotFound',
          `Resource '${id}' does not exist or one of its queried reference-property objects are not present.`,
        ),
      );
    }

    let object = graphObject(principal);
    const select = req.query.get('$select');
    if (select) {
      const keep = new Set(['id', ...select.split(',').map((s) => s.trim())]);
      object = Object.fromEntries(Object.entries(object).filter(([k]) => keep.has(k)));
    }
    const body: Record<string, unknown> = {
      '@odata.context': `https://graph.microsoft.com/v1.0/$metadata#${collection}/$entity`,
    };
    if (collection === 'directoryObjects') body['@odata.type'] = odataType(principal);
    Object.assign(body, object);
    return done({
      status: 200,
      headers: {
        'content-type':
          'application/json;odata.metadata=minimal;odata.streaming=true;IEEE754Compatible=false;charset=utf-8',
        'odata-version': '4.0',
        'request-id': randomUUID(),
      },
      body,
    });
  };
}
