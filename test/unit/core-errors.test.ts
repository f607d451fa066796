/** toSafeError and scrubSecrets: nothing secret reaches a log line or an alert. */
import { scrubSecrets, SafeError, toSafeError } from '../../lib/core/errors';

const jwt =
  'eyJ0eXAiOiJKV1QiLCJhbGciOiJSUzI1NiJ9.eyJhdWQiOiJodHRwczovL3ZhdWx0LmF6dXJlLm5ldCIsIm9pZCI6IjEyMyJ9.c2lnbmF0dXJlLXBhcnQtbG9uZy1lbm91Z2g';

describe('scrubSecrets', () => {
  it.each([
    ['a JWT', `token was ${jwt} here`, jwt],
    ['a bearer token', 'Authorization: Bearer abc.def-ghi_123', 'abc.def-ghi_123'],
    ['basic credentials', 'authorization: Basic dXNlcjpwYXNz', 'dXNlcjpwYXNz'],
    [
      'a SAS signature',
      'https://acct.blob.core.windows.net/c/b?sv=2022-11-02&sig=AbC%2Bdef%3D&se=2026',
      'AbC%2Bdef%3D',
    ],
    [
      'a Workflows webhook signature',
      'https://prod-1.westeurope.logic.azure.com/workflows/x/triggers/manual/paths/invoke?api-version=2016-06-01&sp=%2Ftriggers&sv=1.0&sig=s3cr3tSig',
      's3cr3tSig',
    ],
    ['an Event Grid key header', 'aeg-sas-key: QmFzZTY0S2V5PT0=', 'QmFzZTY0S2V5PT0='],
    ['an Event Grid key in JSON', '{"aeg-sas-key":"QmFzZTY0S2V5PT0="}', 'QmFzZTY0S2V5PT0='],
    [
      'a storage account key',
      'DefaultEndpointsProtocol=https;AccountName=a;AccountKey=Zm9vYmFy==;EndpointSuffix=core.windows.net',
      'Zm9vYmFy==',
    ],
    [
      'an Event Hubs key',
      'Endpoint=sb://ns.servicebus.windows.net/;SharedAccessKeyName=k;SharedAccessKey=c2VjcmV0',
      'c2VjcmV0',
    ],
    ['a SharedAccessSignature header', 'SharedAccessSignature sr=x&sig=y&se=1', 'sr=x&sig=y&se=1'],
    ['a client secret', 'client_secret=abc~123.xyz&grant_type=client_credentials', 'abc~123.xyz'],
    [
      'an access token in JSON',
      '{"access_token":"opaque-token-value","expires_in":3599}',
      'opaque-token-value',
    ],
    [
      'a function key in a URL',
      'POST https://app.azurewebsites.net/api/replay?code=Zm5rZXk=&dryRun=true',
      'Zm5rZXk=',
    ],
    ['a function key header', 'x-functions-key: Zm5rZXk9', 'Zm5rZXk9'],
    [
      'JWK private material',
      '{"kty":"RSA","n":"public","e":"AQAB","d":"cHJpdmF0ZQ","p":"cA","q":"cQ"}',
      'cHJpdmF0ZQ',
    ],
    [
      'a Slack webhook',
      'posting to https://hooks.slack.com/services/T000/B000/XXXXsecretXXXX failed',
      'XXXXsecretXXXX',
    ],
    ['a password', 'password: hunter2', 'hunter2'],
  ])('removes %s', (_l, text, secret) => {
    const out = scrubSecrets(text);
    expect(out).not.toContain(secret);
    expect(out).toContain('[redacted');
  });

  it('keeps what is useful: error codes, key ids, public JWK parts', () => {
    const text =
      '{"error":{"code":"KeyNotFound","message":"A key with (name/id) k1 was not found"}} https://kv1.vault.azure.net/keys/k1 "n":"public"';
    expect(scrubSecrets(text)).toBe(text);
  });
});

describe('toSafeError', () => {
  it('keeps name, message, code and status of an SDK error, scrubbed, and drops the request', () => {
    const restError = Object.assign(new Error(`Forbidden: token ${jwt} lacks keys/recover`), {
      name: 'RestError',
      code: 'Forbidden',
      statusCode: 403,
      request: { headers: { authorization: `Bearer ${jwt}` } },
      response: { bodyAsText: `{"access_token":"${jwt}"}` },
    });
    const e = toSafeError(restError);
    expect(e).toBeInstanceOf(SafeError);
    expect(e).toBeInstanceOf(Error);
    expect({ name: e.name, code: e.code, statusCode: e.statusCode }).toEqual({
      name: 'RestError',
      code: 'Forbidden',
      statusCode: 403,
    });
    expect(e.message).toBe('Forbidden: token [redacted-jwt] lacks keys/recover');
    expect(JSON.stringify({ ...e, message: e.message, stack: e.stack })).not.toContain('eyJ');
    expect(e).not.toHaveProperty('request');
    expect(e).not.toHaveProperty('response');
    expect(e.stack).not.toContain(jwt);
  });

  it('scrubs the cause chain', () => {
    const inner = new Error(`inner Bearer ${jwt}`);
    const outer = new Error('outer', { cause: inner });
    const e = toSafeError(outer);
    expect((e.cause as Error).message).toBe('inner Bearer [redacted]');
  });

  it.each([
    ['a string', 'AccountKey=abc;', 'AccountKey=[redacted];'],
    ['a number', 42, '42'],
    ['undefined', undefined, 'undefined'],
    ['null', null, 'null'],
    ['an object', { message: 5, token: 'x' }, '{"message":5,"token":"[redacted]"}'],
    ['a symbol', Symbol('s'), 'Symbol(s)'],
  ])('turns %s into an Error', (_l, value, message) => {
    const e = toSafeError(value);
    expect(e).toBeInstanceOf(Error);
    expect(e.message).toBe(message);
  });

  it('never throws: cyclic objects, throwing getters, hostile proxies, huge messages', () => {
    const cyclic: Record<string, unknown> = {};
    cyclic.self = cyclic;
    const getter = Object.defineProperty(new Error('x'), 'message', {
      get() {
        throw new Error('no');
      },
    });
    const proxy = new Proxy(
      {},
      {
        get() {
          throw new Error('trap');
        },
        getPrototypeOf() {
          throw new Error('trap');
        },
      },
    );
    for (const v of [cyclic, getter, proxy, new Error('m'.repeat(100_000)), 10n]) {
      const e = toSafeError(v);
      expect(e).toBeInstanceOf(Error);
      expect(e.message.length).toBeLessThan(5000);
    }
  });

  it('does not trust an odd name or code', () => {
    const e = toSafeError(
      Object.assign(new Error('m'), { name: '<script>', code: 'x'.repeat(200), statusCode: 9999 }),
    );
    expect({ name: e.name, code: e.code, statusCode: e.statusCode }).toEqual({
      name: 'Error',
      code: undefined,
      statusCode: undefined,
    });
  });
});
