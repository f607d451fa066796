/**
 * The benchmark's connection set-up (imported by run.ts and worker.ts, never by kvguard).
 */
import { dirname } from 'node:path';

/**
 * The SDKs reach the emulated Azure through its CONNECT proxy (design §5), and the proxy agent the
 * SDK pipeline creates for HTTPS_PROXY (https-proxy-agent, without keep-alive) opens a new tunnel and
 * a new TLS session for every request. In Azure there is no proxy: the pipeline's own agent keeps its
 * connections alive. Measured as is, every call would pay a TCP connect, a CONNECT round trip and a
 * full TLS handshake (with a fresh SecureContext) in kvguard's process — 1.7 CPU cores busy at 20
 * events/s in the flood. So the benchmark gives that agent keep-alive: connections are reused as they
 * are in Azure. Nothing in kvguard changes; this is the benchmark's process only.
 *
 * Reused across clients too, as in Azure: there every SDK client without an httpClient option sends
 * through one process-wide HttpClient and its one keep-alive agent (@azure/core-client
 * getCachedDefaultHttpClient), while behind a proxy each client's pipeline makes an agent of its own
 * (its proxyPolicy's cache). So one agent serves each proxy URL here — otherwise the posture run's
 * per-subscription ARM clients would each pay a tunnel and a handshake that Azure does not.
 */
export function keepProxyConnectionsAlive(): void {
  const runtimeDir = dirname(require.resolve('@typespec/ts-http-runtime'));
  const modulePath = require.resolve('https-proxy-agent', { paths: [runtimeDir] });
  // The CommonJS instance the SDK pipeline itself requires is the one to patch.
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const mod = require(modulePath) as {
    HttpsProxyAgent: new (proxy: unknown, options?: Record<string, unknown>) => object;
  };
  const Original = mod.HttpsProxyAgent;
  const shared = new Map<string, object>();
  mod.HttpsProxyAgent = class KeepAliveHttpsProxyAgent extends Original {
    constructor(proxy: unknown, options?: Record<string, unknown>) {
      const key = `${String(proxy)} ${JSON.stringify(options ?? {})}`;
      const existing = shared.get(key);
      // A constructor that returns an object hands that object to `new`: the agent already made.
      if (existing) return existing as KeepAliveHttpsProxyAgent;
      super(proxy, { ...options, keepAlive: true });
      shared.set(key, this);
    }
    /**
     * The pipeline gives this agent https URLs only. agent-base otherwise guesses per call (from the
     * options, else from a stack trace) and files a freed socket under the http pool name, so it is
     * never found again.
     */
    isSecureEndpoint(): boolean {
      return true;
    }
  };
}
