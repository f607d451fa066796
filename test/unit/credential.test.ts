/**
 * SingleFlightCredential (lib/adapters/azure.ts): concurrent callers for the same token share one
 * request; different scopes, claims or tenants do not; an abort ends only its caller's wait.
 * (test/integration/identity-sdk.test.ts counts the requests of the real ManagedIdentityCredential.)
 */
import type { AccessToken, GetTokenOptions, TokenCredential } from '@azure/identity';
import { SingleFlightCredential } from '../../lib/adapters/azure';

/** A credential whose requests are answered (or failed) by the test, one by one. */
class ManualCredential implements TokenCredential {
  readonly requests: Array<{
    scopes: string[];
    options: GetTokenOptions;
    resolve: (t: AccessToken) => void;
    reject: (e: Error) => void;
  }> = [];

  getToken(scopes: string | string[], options: GetTokenOptions = {}): Promise<AccessToken | null> {
    return new Promise((resolve, reject) =>
      this.requests.push({ scopes: [scopes].flat(), options, resolve, reject }),
    );
  }
}

const token = (value: string): AccessToken => ({ token: value, expiresOnTimestamp: Date.now() + 3600_000 });

test('callers that ask at once share one request; the next ask after it settles is a new one', async () => {
  const inner = new ManualCredential();
  const credential = new SingleFlightCredential(inner);
  const waiting = Array.from({ length: 8 }, () =>
    credential.getToken('https://management.azure.com/.default'),
  );
  expect(inner.requests).toHaveLength(1);
  inner.requests[0]!.resolve(token('t1'));
  expect((await Promise.all(waiting)).map((t) => t?.token)).toEqual(Array(8).fill('t1'));
  const next = credential.getToken('https://management.azure.com/.default');
  expect(inner.requests).toHaveLength(2);
  inner.requests[1]!.resolve(token('t2'));
  expect((await next)?.token).toBe('t2');
});

test('other scopes, claims or tenants are requests of their own', () => {
  const inner = new ManualCredential();
  const credential = new SingleFlightCredential(inner);
  void credential.getToken('https://vault.azure.net/.default');
  void credential.getToken(['https://vault.azure.net/.default']);
  void credential.getToken('https://management.azure.com/.default');
  void credential.getToken('https://vault.azure.net/.default', { claims: '{"access_token":{}}' });
  void credential.getToken('https://vault.azure.net/.default', { tenantId: 'other-tenant' });
  expect(
    inner.requests.map((r) => [r.scopes[0], r.options.claims ?? null, r.options.tenantId ?? null]),
  ).toEqual([
    ['https://vault.azure.net/.default', null, null],
    ['https://management.azure.com/.default', null, null],
    ['https://vault.azure.net/.default', '{"access_token":{}}', null],
    ['https://vault.azure.net/.default', null, 'other-tenant'],
  ]);
});

test('a caller that aborts stops waiting alone; the shared request is not given its signal', async () => {
  const inner = new ManualCredential();
  const credential = new SingleFlightCredential(inner);
  const controller = new AbortController();
  const impatient = credential.getToken('https://vault.azure.net/.default', {
    abortSignal: controller.signal,
  });
  const patient = credential.getToken('https://vault.azure.net/.default');
  expect(inner.requests).toHaveLength(1);
  expect(inner.requests[0]!.options.abortSignal).toBeUndefined();
  controller.abort();
  await expect(impatient).rejects.toMatchObject({ name: 'AbortError' });
  inner.requests[0]!.resolve(token('t'));
  expect((await patient)?.token).toBe('t');
  // Already aborted: refused at once, nothing requested.
  await expect(
    credential.getToken('https://graph.microsoft.com/.default', { abortSignal: controller.signal }),
  ).rejects.toMatchObject({ name: 'AbortError' });
  expect(inner.requests).toHaveLength(1);
});

test('a failure reaches every caller that shared the request, and is not kept', async () => {
  const inner = new ManualCredential();
  const credential = new SingleFlightCredential(inner);
  const a = credential.getToken('https://vault.azure.net/.default');
  const b = credential.getToken('https://vault.azure.net/.default');
  inner.requests[0]!.reject(new Error('ManagedIdentityCredential: unavailable'));
  await expect(a).rejects.toThrow('unavailable');
  await expect(b).rejects.toThrow('unavailable');
  const c = credential.getToken('https://vault.azure.net/.default');
  expect(inner.requests).toHaveLength(2);
  inner.requests[1]!.resolve(token('t'));
  expect((await c)?.token).toBe('t');
});
