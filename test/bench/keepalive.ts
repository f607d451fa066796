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
  mod.HttpsProxyAgent = class KeepAliveHttpsProxyAgent extends Original {
    constructor(proxy: unknown, options?: Record<string, unknown>) {
      super(proxy, { ...options, keepAlive: true });
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
