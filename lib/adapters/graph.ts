/**
 * A principal's display name and type from Microsoft Graph (design §2 step 5: "when granted").
 * There is no Graph client among kvguard's dependencies, so this is a plain
 * @azure/core-rest-pipeline pipeline (`createPipelineFromOptions`: retries, throttling, HTTPS_PROXY,
 * redacting logger) with `bearerTokenAuthenticationPolicy` for `https://graph.microsoft.com/.default`.
 *
 * Requests: `GET https://graph.microsoft.com/v1.0/directoryObjects/{oid}` (application permission
 * `Directory.Read.All`); when that is refused (403), the typed resources with narrower permissions:
 * `GET /v1.0/users/{oid}` (`User.ReadBasic.All`), then `GET /v1.0/servicePrincipals/{oid}`
 * (`Application.Read.All`). What each answer means here:
 * - 200: the object; `@odata.type` (or the resource asked for) and `servicePrincipalType` give the
 *   type: `user`, `managedIdentity` (servicePrincipalType `ManagedIdentity`) or `servicePrincipal`;
 * - 403 `Authorization_RequestDenied` (not granted), 404 `Request_ResourceNotFound` (no such
 *   object, or not of that type), 400/401: `undefined`. Graph access is optional: kvguard names the
 *   caller by oid, upn and app id without it. Each is reported through `onFailure` (status and
 *   Graph error code only; never a token or a body);
 * - 429 and 5xx are retried by the pipeline; when they persist the RestError is thrown (retryable).
 * Only object ids (GUIDs) are ever put into a URL; anything else answers `undefined` without a request.
 */
import {
  bearerTokenAuthenticationPolicy,
  createDefaultHttpClient,
  createPipelineFromOptions,
  createPipelineRequest,
  RestError,
  type HttpClient,
  type Pipeline,
  type PipelineResponse,
} from '@azure/core-rest-pipeline';
import type { TokenCredential } from '@azure/identity';
import { cleanText, isRecord, own } from '../core/untrusted';
import type { CallFailure, Directory } from '../ports';
import { clientOptions } from './azure';

export const GRAPH_SCOPE = 'https://graph.microsoft.com/.default';
const GRAPH_BASE_URL = 'https://graph.microsoft.com/v1.0';
const GUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

export interface GraphDirectoryOptions {
  credential: TokenCredential;
  retryBaseDelayMs: number;
  /** Told (status and Graph error code only) when Graph refused or could not answer. */
  onFailure?: (failure: CallFailure) => void;
}

export type PrincipalDescription = { displayName: string; type: string };

type Resource = 'directoryObjects' | 'users' | 'servicePrincipals';

interface GraphAnswer {
  resource: Resource;
  status: number;
  code?: string;
  description?: PrincipalDescription;
}

const MISSING_PERMISSION =
  'Microsoft Graph application permission Directory.Read.All (or User.ReadBasic.All and Application.Read.All)';

function parseJson(text: string | undefined): unknown {
  if (!text) return undefined;
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return undefined;
  }
}

/** The Graph object → kvguard's principal description; `undefined` when it names nothing usable. */
export function describeGraphObject(body: unknown, resource: Resource): PrincipalDescription | undefined {
  if (!isRecord(body)) return undefined;
  const odataType = cleanText(own(body, '@odata.type'), 128);
  const kind =
    odataType === '#microsoft.graph.user' || (odataType === undefined && resource === 'users')
      ? 'user'
      : odataType === '#microsoft.graph.servicePrincipal' ||
          (odataType === undefined && resource === 'servicePrincipals')
        ? 'servicePrincipal'
        : odataType?.replace(/^#microsoft\.graph\./, '');
  if (kind === undefined) return undefined;
  const type =
    kind === 'servicePrincipal' && own(body, 'servicePrincipalType') === 'ManagedIdentity'
      ? 'managedIdentity'
      : kind;
  const displayName =
    cleanText(own(body, 'displayName'), 256) ??
    cleanText(own(body, 'userPrincipalName'), 256) ??
    cleanText(own(body, 'appId'), 128);
  return displayName === undefined ? undefined : { displayName, type };
}

function graphErrorCode(response: PipelineResponse): string {
  const body = parseJson(response.bodyAsText ?? undefined);
  const error = isRecord(body) ? own(body, 'error') : undefined;
  return cleanText(own(error, 'code'), 64) ?? 'Error';
}

export class GraphDirectory implements Directory {
  private readonly pipeline: Pipeline;
  private readonly httpClient: HttpClient;

  constructor(private readonly options: GraphDirectoryOptions) {
    this.pipeline = createPipelineFromOptions({
      ...clientOptions(options.retryBaseDelayMs),
      userAgentOptions: { userAgentPrefix: 'kvguard' },
    });
    this.pipeline.addPolicy(
      bearerTokenAuthenticationPolicy({ credential: options.credential, scopes: GRAPH_SCOPE }),
    );
    this.httpClient = createDefaultHttpClient();
  }

  async describe(oid: string): Promise<PrincipalDescription | undefined> {
    if (!GUID.test(oid)) return undefined;
    const id = oid.toLowerCase();
    const direct = await this.get('directoryObjects', id);
    if (direct.status === 200) return direct.description;
    if (direct.status !== 403) {
      this.report(direct);
      return undefined;
    }
    // Not granted Directory.Read.All: the typed resources need narrower permissions. A 404 from one
    // of them only means the object is of the other type.
    const user = await this.get('users', id);
    if (user.status === 200) return user.description;
    const servicePrincipal = await this.get('servicePrincipals', id);
    if (servicePrincipal.status === 200) return servicePrincipal.description;
    this.report([user, servicePrincipal].find((a) => a.status !== 404) ?? servicePrincipal);
    return undefined;
  }

  private report(answer: GraphAnswer): void {
    const detail = `${answer.code ?? 'Error'} from GET /v1.0/${answer.resource}/{oid}`;
    this.options.onFailure?.(
      answer.status === 403
        ? { kind: 'forbidden', status: 403, detail, missingPermission: MISSING_PERMISSION }
        : { kind: 'failed', status: answer.status, detail },
    );
  }

  private async get(resource: Resource, oid: string): Promise<GraphAnswer> {
    const request = createPipelineRequest({ url: `${GRAPH_BASE_URL}/${resource}/${oid}`, method: 'GET' });
    request.headers.set('Accept', 'application/json');
    const response = await this.pipeline.sendRequest(this.httpClient, request);
    const status = response.status;
    if (status === 200) {
      return {
        resource,
        status,
        description: describeGraphObject(parseJson(response.bodyAsText ?? undefined), resource),
      };
    }
    const code = graphErrorCode(response);
    if (status === 429 || status === 408 || status >= 500) {
      // No request or response attached: the request carries the bearer token.
      throw new RestError(`Microsoft Graph answered ${status} (${code})`, { statusCode: status, code });
    }
    return { resource, status, code };
  }
}
