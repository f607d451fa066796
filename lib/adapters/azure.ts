/**
 * What every adapter shares: the credential (the app's managed identity in Azure and against the
 * emulator alike), the SDK client options, and the mapping of a thrown RestError onto the typed
 * failures of lib/ports.ts.
 */
import { isRestError } from '@azure/core-rest-pipeline';
import {
  DefaultAzureCredential,
  ManagedIdentityCredential,
  type AccessToken,
  type GetTokenOptions,
  type TokenCredential,
} from '@azure/identity';
import type { CallFailure } from '../ports';

export function createCredential(managedIdentityClientId: string | undefined): TokenCredential {
  // A user-assigned identity must be named (the platform's endpoint refuses to guess); without one
  // configured, DefaultAzureCredential serves developer machines (Azure CLI, environment).
  return new SingleFlightCredential(
    managedIdentityClientId
      ? new ManagedIdentityCredential({ clientId: managedIdentityClientId })
      : new DefaultAzureCredential(),
  );
}

/**
 * One token request at a time per audience. Every SDK client asks the credential for itself, and
 * the credential caches a token only once it has one: at a cold start, or when a token is due for
 * renewal, every client in flight (the posture run's per-subscription clients, a flood's sixteen
 * handlers) asked the identity endpoint at once — eight requests where one answers them all. Callers
 * that ask while a request for the same scopes, claims and tenant is under way share its answer; each
 * caller's own abort signal still ends its own wait.
 */
export class SingleFlightCredential implements TokenCredential {
  private readonly inFlight = new Map<string, Promise<AccessToken | null>>();

  constructor(private readonly inner: TokenCredential) {}

  getToken(scopes: string | string[], options: GetTokenOptions = {}): Promise<AccessToken | null> {
    const { abortSignal, ...shared } = options;
    if (abortSignal?.aborted) return Promise.reject(abortError());
    const key = JSON.stringify([
      [scopes].flat(),
      options.claims ?? null,
      options.tenantId ?? null,
      options.enableCae ?? false,
      options.proofOfPossessionOptions ?? null,
    ]);
    let request = this.inFlight.get(key);
    if (!request) {
      // Not tied to the first caller's signal: a caller that gives up must not fail the others.
      request = this.inner.getToken(scopes, shared).finally(() => this.inFlight.delete(key));
      this.inFlight.set(key, request);
    }
    if (!abortSignal) return request;
    return new Promise<AccessToken | null>((resolve, reject) => {
      const onAbort = () => reject(abortError());
      abortSignal.addEventListener('abort', onAbort, { once: true });
      request.then(resolve, reject).finally(() => abortSignal.removeEventListener('abort', onAbort));
    });
  }
}

function abortError(): Error {
  const error = new Error('the token request was aborted');
  error.name = 'AbortError';
  return error;
}

/** Client options shared by every SDK client: retry delays from configuration. */
export function clientOptions(retryBaseDelayMs: number) {
  return {
    retryOptions: {
      maxRetries: 3,
      retryDelayInMs: retryBaseDelayMs,
      maxRetryDelayInMs: Math.max(retryBaseDelayMs * 16, 1000),
    },
  };
}

/** The error code nested in a Key Vault / ARM error body, when there is one. */
function innerCode(error: { details?: unknown }): string | undefined {
  const details = error.details as
    { error?: { innerError?: { code?: string }; innererror?: { code?: string } } } | undefined;
  return details?.error?.innerError?.code ?? details?.error?.innererror?.code;
}

/**
 * Maps an SDK error onto a CallFailure. `permission` names what a 403 means for this call, so
 * the alert can tell a human which grant is missing. Anything that is not an HTTP answer (a
 * programming error) is rethrown.
 */
export function toCallFailure(error: unknown, permission: string): CallFailure {
  if (!isRestError(error)) {
    throw error;
  }
  const status = error.statusCode ?? 0;
  const detail =
    `${error.code ?? 'Error'}${innerCode(error) ? `/${innerCode(error)}` : ''}: ${error.message.split('\n')[0] ?? ''}`.slice(
      0,
      500,
    );
  if (status === 403) return { kind: 'forbidden', status: 403, detail, missingPermission: permission };
  if (status === 429) {
    const retryAfter = Number(error.response?.headers.get('retry-after-ms') ?? NaN);
    return {
      kind: 'throttled',
      status: 429,
      retryAfterMs: Number.isFinite(retryAfter) ? retryAfter : undefined,
    };
  }
  if (status === 0 || status === 408 || status >= 500) return { kind: 'transient', status, detail };
  return { kind: 'failed', status, detail };
}

export function statusOf(error: unknown): number | undefined {
  return isRestError(error) ? error.statusCode : undefined;
}
