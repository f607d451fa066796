/**
 * Identity: the tokens every emulated service checks.
 * - Entra ID (login.microsoftonline.com): the client-credentials grant of `ClientSecretCredential`,
 *   plus the metadata documents MSAL reads (instance discovery, OpenID configuration).
 * - The App Service managed-identity endpoint (`IDENTITY_ENDPOINT`, header `X-IDENTITY-HEADER`,
 *   api-version 2019-08-01), which `ManagedIdentityCredential` uses on Azure Functions.
 * Tokens are RS256 JWTs signed by the emulator's own key, in the v1 shape managed identities get:
 * `iss` https://sts.windows.net/<tenant>/, `ver` 1.0, `aud` the resource without `/.default`.
 */
import { generateKeyPairSync, randomUUID, type KeyObject } from 'node:crypto';
import jwt from 'jsonwebtoken';
import type { EmuRequest, EmuResponse, Principal, TokenClaims } from './types';

export const TOKEN_LIFETIME_S = 3600;

export interface IdentityService {
  /** Mints a token for the principal and resource (a scope's `/.default` suffix is dropped). */
  issueToken(principal: Principal, resourceOrScope: string): { token: string; claims: TokenClaims };
  verifyBearer(authorization: string | undefined, audiences: string[]): TokenClaims | undefined;
  /** login.microsoftonline.com */
  handleEntra(req: EmuRequest): EmuResponse;
  /** The managed-identity endpoint on the loopback admin server. */
  handleManagedIdentity(req: EmuRequest): EmuResponse;
}

export interface IdentityOptions {
  tenantId: string;
  identityHeader: string;
  principals: Map<string, Principal>;
  now(): number;
}

/** `https://vault.azure.net/.default` → `https://vault.azure.net`. */
export function resourceOf(scope: string): string {
  return scope.replace(/\/\.default$/, '');
}

function normaliseAudience(aud: string): string {
  return aud.replace(/\/+$/, '').toLowerCase();
}

/** The error body Entra ID answers with (AADSTS codes), as MSAL and @azure/identity parse it. */
function entraError(status: number, error: string, code: number, description: string): EmuResponse {
  const traceId = randomUUID();
  const correlationId = randomUUID();
  const timestamp = new Date()
    .toISOString()
    .replace('T', ' ')
    .replace(/\.\d+Z$/, 'Z');
  return {
    status,
    body: {
      error,
      error_description: `AADSTS${code}: ${description} Trace ID: ${traceId} Correlation ID: ${correlationId} Timestamp: ${timestamp}`,
      error_codes: [code],
      timestamp,
      trace_id: traceId,
      correlation_id: correlationId,
      error_uri: `https://login.microsoftonline.com/error?code=${code}`,
    },
  };
}

export function createIdentityService(options: IdentityOptions): IdentityService {
  const { tenantId, principals } = options;
  const pair = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const privateKey: KeyObject = pair.privateKey;
  const publicKey: KeyObject = pair.publicKey;
  const kid = randomUUID();
  const issuer = `https://sts.windows.net/${tenantId}/`;

  function issueToken(principal: Principal, resourceOrScope: string) {
    const nowS = Math.floor(options.now() / 1000);
    const aud = resourceOf(resourceOrScope);
    const claims: TokenClaims = {
      aud,
      iss: issuer,
      iat: nowS,
      nbf: nowS,
      exp: nowS + TOKEN_LIFETIME_S,
      ver: '1.0',
      tid: tenantId,
      oid: principal.oid,
      sub: principal.oid,
      idtyp: principal.kind === 'user' ? 'user' : 'app',
      uti: randomUUID().replace(/-/g, '').slice(0, 22),
    };
    if (principal.appId) {
      claims.appid = principal.appId;
      claims.appidacr = principal.kind === 'user' ? '0' : '2';
    }
    if (principal.kind === 'user') {
      claims.upn = principal.upn;
      claims.unique_name = principal.upn;
      claims.name = principal.displayName;
      if (principal.ipAddress) claims.ipaddr = principal.ipAddress;
    }
    if (principal.kind === 'managedIdentity' && principal.resourceId) claims.xms_mirid = principal.resourceId;
    const token = jwt.sign(claims, privateKey, { algorithm: 'RS256', keyid: kid });
    return { token, claims };
  }

  function verifyBearer(authorization: string | undefined, audiences: string[]): TokenClaims | undefined {
    const match = /^Bearer\s+(\S+)$/i.exec(authorization ?? '');
    if (!match?.[1]) return undefined;
    try {
      const decoded = jwt.verify(match[1], publicKey, {
        algorithms: ['RS256'],
        issuer,
        clockTimestamp: Math.floor(options.now() / 1000),
      });
      if (typeof decoded !== 'object') return undefined;
      const claims = decoded as TokenClaims;
      const wanted = audiences.map(normaliseAudience);
      if (!wanted.includes(normaliseAudience(String(claims.aud)))) return undefined;
      if (!principals.has(claims.oid)) return undefined;
      return claims;
    } catch {
      return undefined;
    }
  }

  function handleEntra(req: EmuRequest): EmuResponse {
    const segments = req.path.split('/').filter(Boolean);
    // MSAL: instance discovery for the authority host.
    if (req.method === 'GET' && segments[0] === 'common' && segments[2] === 'instance') {
      return {
        status: 200,
        body: {
          tenant_discovery_endpoint: `https://login.microsoftonline.com/${tenantId}/v2.0/.well-known/openid-configuration`,
          'api-version': '1.1',
          metadata: [
            {
              preferred_network: 'login.microsoftonline.com',
              preferred_cache: 'login.windows.net',
              aliases: [
                'login.microsoftonline.com',
                'login.windows.net',
                'login.microsoft.com',
                'sts.windows.net',
              ],
            },
          ],
        },
      };
    }
    const tenant = segments[0];
    if (tenant !== tenantId && tenant !== 'organizations' && tenant !== 'common') {
      return entraError(400, 'invalid_request', 90002, `Tenant '${tenant ?? ''}' not found.`);
    }
    if (req.method === 'GET' && segments.slice(1).join('/') === 'v2.0/.well-known/openid-configuration') {
      const base = `https://login.microsoftonline.com/${tenantId}`;
      return {
        status: 200,
        body: {
          token_endpoint: `${base}/oauth2/v2.0/token`,
          token_endpoint_auth_methods_supported: [
            'client_secret_post',
            'private_key_jwt',
            'client_secret_basic',
          ],
          jwks_uri: `https://login.microsoftonline.com/${tenantId}/discovery/v2.0/keys`,
          response_modes_supported: ['query', 'fragment', 'form_post'],
          subject_types_supported: ['pairwise'],
          id_token_signing_alg_values_supported: ['RS256'],
          response_types_supported: ['code', 'id_token', 'code id_token', 'id_token token'],
          scopes_supported: ['openid', 'profile', 'email', 'offline_access'],
          issuer: `https://login.microsoftonline.com/${tenantId}/v2.0`,
          request_uri_parameter_supported: false,
          authorization_endpoint: `${base}/oauth2/v2.0/authorize`,
          device_authorization_endpoint: `${base}/oauth2/v2.0/devicecode`,
          end_session_endpoint: `${base}/oauth2/v2.0/logout`,
          tenant_region_scope: 'EU',
          cloud_instance_name: 'microsoftonline.com',
          cloud_graph_host_name: 'graph.windows.net',
          msgraph_host: 'graph.microsoft.com',
        },
      };
    }
    if (req.method === 'POST' && segments.slice(1).join('/') === 'oauth2/v2.0/token') {
      const form = new URLSearchParams(req.body.toString('utf8'));
      if (form.get('grant_type') !== 'client_credentials') {
        return entraError(
          400,
          'unsupported_grant_type',
          70003,
          'The app requested an unsupported grant type.',
        );
      }
      const clientId = form.get('client_id') ?? '';
      const principal = [...principals.values()].find(
        (p) => p.kind === 'servicePrincipal' && p.appId?.toLowerCase() === clientId.toLowerCase(),
      );
      if (!principal) {
        return entraError(
          400,
          'unauthorized_client',
          700016,
          `Application with identifier '${clientId}' was not found in the directory '${tenantId}'.`,
        );
      }
      const secret = form.get('client_secret');
      if (!secret || !(principal.secrets ?? []).includes(secret)) {
        return entraError(
          401,
          'invalid_client',
          7000215,
          'Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID.',
        );
      }
      const scope = form
        .get('scope')
        ?.split(' ')
        .find((s) => s.endsWith('/.default'));
      if (!scope) {
        return entraError(400, 'invalid_scope', 1002012, 'The provided value for scope is not valid.');
      }
      const { token } = issueToken(principal, scope);
      return {
        status: 200,
        body: {
          token_type: 'Bearer',
          expires_in: TOKEN_LIFETIME_S,
          ext_expires_in: TOKEN_LIFETIME_S,
          access_token: token,
        },
        callerOid: principal.oid,
      };
    }
    return { status: 404, body: { error: 'not_found', error_description: `No such endpoint: ${req.path}` } };
  }

  function handleManagedIdentity(req: EmuRequest): EmuResponse {
    if (req.headers['x-identity-header'] !== options.identityHeader) {
      // The platform's endpoint refuses callers that do not present the secret header.
      return {
        status: 401,
        body: { statusCode: 401, message: 'Unauthorized: the X-IDENTITY-HEADER is missing or wrong.' },
      };
    }
    const resource = req.query.get('resource');
    if (!resource) {
      return {
        status: 400,
        body: { statusCode: 400, message: 'Required query parameter resource is missing.' },
      };
    }
    const identities = [...principals.values()].filter((p) => p.kind === 'managedIdentity');
    const clientId = req.query.get('client_id');
    const objectId = req.query.get('principal_id') ?? req.query.get('object_id');
    const resId = req.query.get('mi_res_id');
    let chosen: Principal | undefined;
    if (clientId || objectId || resId) {
      chosen = identities.find(
        (p) =>
          (clientId && p.appId?.toLowerCase() === clientId.toLowerCase()) ||
          (objectId && p.oid.toLowerCase() === objectId.toLowerCase()) ||
          (resId && p.resourceId?.toLowerCase() === resId.toLowerCase()),
      );
      if (!chosen) {
        return {
          status: 400,
          body: {
            statusCode: 400,
            message: 'No managed identity found for the specified ClientId/ResourceId/PrincipalId.',
          },
        };
      }
    } else {
      // Like Azure: without an id, only the system-assigned identity can answer.
      chosen = identities.find((p) => p.assignment === 'system');
      if (!chosen) {
        return {
          status: 400,
          body: {
            statusCode: 400,
            message:
              'No system-assigned managed identity is enabled for this app; specify client_id, principal_id or mi_res_id of a user-assigned identity.',
          },
        };
      }
    }
    const { token, claims } = issueToken(chosen, resource);
    return {
      status: 200,
      body: {
        access_token: token,
        expires_on: String(claims.exp),
        resource: resourceOf(resource),
        token_type: 'Bearer',
        client_id: chosen.appId,
      },
      callerOid: chosen.oid,
    };
  }

  return { issueToken, verifyBearer, handleEntra, handleManagedIdentity };
}
