/**
 * The emulated Azure: an HTTPS CONNECT proxy that terminates TLS with leaf certificates from the
 * local CA and serves each Azure host from in-memory state, plus a loopback admin API (seeding,
 * inspection, faults) and the App Service managed-identity endpoint. Production code reaches it
 * unchanged through HTTPS_PROXY, NO_PROXY and NODE_EXTRA_CA_CERTS (design §5).
 */
import { randomBytes, randomUUID } from 'node:crypto';
import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import https from 'node:https';
import type { AddressInfo, Socket } from 'node:net';
import tls from 'node:tls';
import { createArmService, seedVault, type VaultSpec } from './arm';
import { resetArmResources } from './arm-resources';
import { ensureCertificateAuthority, type CertificateAuthority } from './ca';
import { createEventGridService, type EventGridService } from './eventgrid';
import { FaultInjector, type FaultSpec } from './faults';
import { createGraphService, grantGraphPermissions } from './graph';
import { createIdentityService, type IdentityService } from './identity';
import { createKeyVaultService, seedKey, SeedKeyError } from './keyvault';
import { addWorkspace, createLogAnalyticsService, type WorkspaceSpec } from './loganalytics';
import { isAuthorized } from './rbac';
import { createPostureArmService, seedPosture } from './security';
import type {
  AuditRecord,
  EmuRequest,
  EmuResponse,
  EmulatorCore,
  Principal,
  PrincipalKind,
  RequestLogEntry,
  RoleAssignment,
  ServiceHandler,
  VaultRecord,
} from './types';

export const DEFAULT_TENANT_ID = '72f988bf-86f1-41af-91ab-2d7cd011db47';
export const DEFAULT_SUBSCRIPTION_ID = '00000000-0000-4000-8000-000000000001';

/** Host names the proxy serves; a CONNECT to anything else is refused and logged. */
export function emulatedService(host: string): string | undefined {
  const h = host.toLowerCase();
  if (/^[a-z0-9-]+\.vault\.azure\.net$/.test(h)) return 'keyvault';
  if (h === 'management.azure.com') return 'arm';
  if (h === 'login.microsoftonline.com') return 'entra';
  if (/^[a-z0-9-]+\.[a-z0-9-]+\.eventgrid\.azure\.net$/.test(h)) return 'eventgrid';
  if (h === 'api.loganalytics.io') return 'loganalytics';
  if (h === 'graph.microsoft.com') return 'graph';
  return undefined;
}

export interface EmulatorOptions {
  caDir?: string;
  tenantId?: string;
  subscriptionId?: string;
  /** Delay before deletes and recoveries become visible (eventual consistency). */
  completionLagMs?: number;
  /** Fixed latency added to every request the proxy serves. */
  latencyMs?: number;
  /** Time compression of Event Grid's retry schedule (1 = real time). */
  eventGridRetryScale?: number;
  /** Where emulator diagnostics go; default stderr. */
  log?: (line: string) => void;
}

export interface ReadyInfo {
  proxy: string;
  caCert: string;
  identityEndpoint: string;
  identityHeader: string;
  admin: string;
  tenantId: string;
  subscriptionId: string;
}

export interface Emulator extends ReadyInfo {
  core: EmulatorCore;
  identity: IdentityService;
  eventGrid: EventGridService;
  faults: FaultInjector;
  ca: CertificateAuthority;
  requests: RequestLogEntry[];
  audit: AuditRecord[];
  addPrincipal(spec: PrincipalSpec): Principal;
  addVault(spec: VaultSpec): VaultRecord;
  /** Receives every AuditEvent record as a diagnostic setting streams it (stand-in for Event Hub). */
  onAudit(listener: (records: AuditRecord[]) => void): () => void;
  reset(): void;
  stop(): Promise<void>;
}

export interface PrincipalSpec {
  kind: PrincipalKind;
  displayName?: string;
  oid?: string;
  appId?: string;
  upn?: string;
  secret?: string;
  assignment?: 'system' | 'user';
  resourceId?: string;
  ipAddress?: string;
  userAgent?: string;
  roleAssignments?: Array<{ scope: string; roleName?: string; actions?: string[]; dataActions?: string[] }>;
}

class HttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

function readBody(req: IncomingMessage, limit = 8 * 1024 * 1024): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size > limit) {
        reject(new HttpError(413, 'request body too large'));
        req.destroy();
        return;
      }
      chunks.push(c);
    });
    req.on('end', () => resolve(Buffer.concat(chunks)));
    req.on('error', reject);
  });
}

function send(res: ServerResponse, response: EmuResponse): void {
  const headers: Record<string, string> = { ...(response.headers ?? {}) };
  let payload: Buffer | undefined;
  if (response.body === undefined || response.body === null) {
    payload = undefined;
  } else if (Buffer.isBuffer(response.body)) {
    payload = response.body;
  } else if (typeof response.body === 'string') {
    payload = Buffer.from(response.body);
    headers['content-type'] ??= 'text/plain; charset=utf-8';
  } else {
    payload = Buffer.from(JSON.stringify(response.body));
    if (!Object.keys(headers).some((h) => h.toLowerCase() === 'content-type')) {
      headers['content-type'] = 'application/json; charset=utf-8';
    }
  }
  headers['content-length'] = String(payload?.length ?? 0);
  res.writeHead(response.status, headers);
  res.end(payload);
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** The error body a throttled call gets, in the shape of the service that throttles it. */
function throttledBody(service: string): unknown {
  if (service === 'keyvault') {
    return {
      error: {
        code: 'Throttled',
        message:
          'Request was not processed because too many requests were received. Reason: VaultRequestTypeLimitReached',
      },
    };
  }
  return {
    error: {
      code: 'TooManyRequests',
      message: 'The request is being throttled as the limit has been reached for operation type - Read.',
    },
  };
}

export async function startEmulator(options: EmulatorOptions = {}): Promise<Emulator> {
  const log = options.log ?? ((line: string) => process.stderr.write(`[emulator] ${line}\n`));
  const ca = ensureCertificateAuthority(options.caDir);
  const tenantId = options.tenantId ?? DEFAULT_TENANT_ID;
  const subscriptionId = options.subscriptionId ?? DEFAULT_SUBSCRIPTION_ID;
  const identityHeader = randomBytes(16).toString('hex');
  const principals = new Map<string, Principal>();
  const roleAssignments: RoleAssignment[] = [];
  const vaults = new Map<string, VaultRecord>();
  const auditLog: AuditRecord[] = [];
  const auditListeners = new Set<(records: AuditRecord[]) => void>();
  const requests: RequestLogEntry[] = [];
  const faults = new FaultInjector();
  let seq = 0;
  let baseLatencyMs = options.latencyMs ?? 0;
  let pendingAudit: AuditRecord[] = [];
  let auditTimer: NodeJS.Timeout | undefined;

  const identity = createIdentityService({ tenantId, identityHeader, principals, now: () => Date.now() });

  const flushAudit = () => {
    auditTimer = undefined;
    const batch = pendingAudit;
    pendingAudit = [];
    for (const listener of auditListeners) {
      try {
        listener(batch);
      } catch (error) {
        log(`audit listener failed: ${String(error)}`);
      }
    }
  };

  // eslint-disable-next-line prefer-const -- assigned once the core that it needs exists
  let eventGrid: EventGridService;
  const core: EmulatorCore = {
    tenantId,
    subscriptionId,
    now: () => Date.now(),
    principals,
    roleAssignments,
    vaults,
    timing: { completionLagMs: options.completionLagMs ?? 0 },
    verifyBearer: (authorization, audiences) => identity.verifyBearer(authorization, audiences),
    isAuthorized: (principalId, scope, action) => isAuthorized(roleAssignments, principalId, scope, action),
    audit(record) {
      auditLog.push(record);
      if (auditListeners.size === 0) return;
      // Diagnostic settings stream records in batches; a short window groups a burst into one batch.
      pendingAudit.push(record);
      auditTimer ??= setTimeout(flushAudit, 20);
    },
    publishSubscriptionEvent(event) {
      eventGrid.publishSystem(`/subscriptions/${subscriptionId}`, [event]);
    },
    publishResourceEvent(sourceResourceId, event) {
      // Azure publishes a resource's system events only where a system topic for it exists.
      const wanted = sourceResourceId.toLowerCase();
      const topic = eventGrid
        .topics()
        .find((t) => t.kind === 'system' && t.source?.replace(/\/+$/, '').toLowerCase() === wanted);
      if (!topic) return false;
      eventGrid.publishSystem(topic.name, [event]);
      return true;
    },
    randomHex: (length) =>
      randomBytes(Math.ceil(length / 2))
        .toString('hex')
        .slice(0, length),
    log,
  };
  eventGrid = createEventGridService(core, { retryScale: options.eventGridRetryScale ?? 0.001 });
  const handlers: Record<string, ServiceHandler> = {
    keyvault: createKeyVaultService(core),
    arm: createArmService(core, { fallback: createPostureArmService(core) }),
    entra: (req) => identity.handleEntra(req),
    eventgrid: (req) => eventGrid.handle(req),
    loganalytics: createLogAnalyticsService(core, () => auditLog),
    graph: createGraphService(core),
  };

  function addPrincipal(spec: PrincipalSpec): Principal {
    const kinds: PrincipalKind[] = ['user', 'servicePrincipal', 'managedIdentity'];
    if (!kinds.includes(spec.kind)) throw new HttpError(400, `kind must be one of ${kinds.join(', ')}`);
    if (spec.kind === 'user' && !spec.upn) throw new HttpError(400, 'a user needs a upn');
    const oid = spec.oid ?? randomUUID();
    const principal: Principal = {
      oid,
      kind: spec.kind,
      displayName: spec.displayName ?? spec.upn ?? `principal-${oid.slice(0, 8)}`,
      appId: spec.kind === 'user' ? undefined : (spec.appId ?? randomUUID()),
      upn: spec.upn,
      secrets: spec.secret ? [spec.secret] : undefined,
      assignment: spec.kind === 'managedIdentity' ? (spec.assignment ?? 'user') : undefined,
      resourceId:
        spec.resourceId ??
        (spec.kind === 'managedIdentity' && (spec.assignment ?? 'user') === 'user'
          ? `/subscriptions/${subscriptionId}/resourceGroups/rg-kvguard/providers/Microsoft.ManagedIdentity/userAssignedIdentities/${spec.displayName ?? oid}`
          : undefined),
      ipAddress: spec.ipAddress,
      userAgent: spec.userAgent,
    };
    principals.set(oid, principal);
    for (const ra of spec.roleAssignments ?? []) {
      roleAssignments.push({ id: randomUUID(), principalId: oid, ...ra });
    }
    return principal;
  }

  // ---- the proxy's inner HTTPS server: one leaf certificate per SNI host ----
  const contexts = new Map<string, tls.SecureContext>();
  const contextFor = (servername: string) => {
    let ctx = contexts.get(servername);
    if (!ctx) {
      const leaf = ca.leafFor([servername]);
      ctx = tls.createSecureContext({ cert: leaf.cert, key: leaf.key });
      contexts.set(servername, ctx);
    }
    return ctx;
  };
  const fallbackLeaf = ca.leafFor(['localhost', '127.0.0.1']);
  const azureServer = https.createServer(
    {
      cert: fallbackLeaf.cert,
      key: fallbackLeaf.key,
      SNICallback: (servername, cb) => {
        try {
          cb(null, contextFor(servername));
        } catch (error) {
          cb(error as Error);
        }
      },
    },
    (req, res) => void serveAzure(req, res),
  );
  azureServer.on('tlsClientError', (error) => log(`TLS error: ${error.message}`));

  async function serveAzure(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const started = Date.now();
    const hostHeader = (req.headers.host ?? '').toLowerCase().replace(/:443$/, '');
    const service = emulatedService(hostHeader);
    const url = new URL(req.url ?? '/', `https://${hostHeader}`);
    const entry: RequestLogEntry = {
      seq: ++seq,
      time: new Date(started).toISOString(),
      method: req.method ?? 'GET',
      host: hostHeader,
      path: url.pathname,
      query: url.search,
      status: 0,
      outcome: 'served',
      durationMs: 0,
    };
    const finish = (status: number, outcome: RequestLogEntry['outcome'], callerOid?: string) => {
      entry.status = status;
      entry.outcome = outcome;
      entry.callerOid = callerOid;
      entry.durationMs = Date.now() - started;
      requests.push(entry);
    };
    try {
      const body = await readBody(req);
      const handler = service ? handlers[service] : undefined;
      if (!service || !handler) {
        finish(502, 'refused');
        send(res, {
          status: 502,
          body: { error: { code: 'NotEmulated', message: `${hostHeader} is not emulated` } },
        });
        return;
      }
      const fault = faults.match(entry.method, hostHeader, url.pathname);
      const delay = baseLatencyMs + fault.latencyMs;
      if (delay > 0) await sleep(delay);
      if (fault.failure) {
        const f = fault.failure;
        if (f.kind === 'reset') {
          finish(0, 'fault');
          req.socket.destroy();
          return;
        }
        if (f.kind === 'throttle') {
          const ms = f.retryAfterMs ?? 1000;
          finish(429, 'fault');
          send(res, {
            status: 429,
            headers: {
              'retry-after': String(Math.max(1, Math.ceil(ms / 1000))),
              'retry-after-ms': String(ms),
            },
            body: throttledBody(service),
          });
          return;
        }
        finish(f.status ?? 503, 'fault');
        send(res, {
          status: f.status ?? 503,
          body: {
            error: { code: 'ServiceUnavailable', message: 'Injected fault: the service is unavailable.' },
          },
        });
        return;
      }
      const emuReq: EmuRequest = {
        method: entry.method,
        host: hostHeader,
        path: url.pathname,
        query: url.searchParams,
        headers: req.headers,
        body,
        remoteAddress: req.socket.remoteAddress ?? '127.0.0.1',
        url: url.toString(),
      };
      const response = await handler(emuReq);
      finish(response.status, 'served', response.callerOid);
      send(res, response);
    } catch (error) {
      const status = error instanceof HttpError ? error.status : 500;
      finish(status, 'served');
      log(`error serving ${entry.method} ${hostHeader}${entry.path}: ${String(error)}`);
      if (!res.headersSent) {
        send(res, { status, body: { error: { code: 'InternalError', message: String(error) } } });
      }
    }
  }

  // ---- the CONNECT proxy ----
  const proxy = http.createServer((req, res) => {
    // Plain HTTP through the proxy is never used by the SDKs (they require https).
    send(res, { status: 405, body: { error: 'only CONNECT is supported' } });
    void req;
  });
  proxy.on('connect', (req: IncomingMessage, socket: Socket, head: Buffer) => {
    const target = req.url ?? '';
    const [host = '', port = '443'] = target.split(':');
    if (!emulatedService(host) || port !== '443') {
      log(`refused CONNECT to ${target}`);
      requests.push({
        seq: ++seq,
        time: new Date().toISOString(),
        method: 'CONNECT',
        host: host.toLowerCase(),
        path: '',
        query: '',
        status: 403,
        outcome: 'refused',
        durationMs: 0,
      });
      socket.end('HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n');
      return;
    }
    socket.on('error', () => undefined);
    socket.write('HTTP/1.1 200 Connection Established\r\n\r\n');
    if (head.length > 0) socket.unshift(head);
    azureServer.emit('connection', socket);
  });

  // ---- the admin API and the managed-identity endpoint (loopback, plain HTTP) ----
  const admin = http.createServer((req, res) => void serveAdmin(req, res));

  async function serveAdmin(req: IncomingMessage, res: ServerResponse): Promise<void> {
    try {
      const url = new URL(req.url ?? '/', 'http://127.0.0.1');
      const body = await readBody(req);
      if (url.pathname === '/msi/token') {
        const emuReq: EmuRequest = {
          method: req.method ?? 'GET',
          host: '127.0.0.1',
          path: url.pathname,
          query: url.searchParams,
          headers: req.headers,
          body,
          remoteAddress: req.socket.remoteAddress ?? '127.0.0.1',
          url: url.toString(),
        };
        const response = identity.handleManagedIdentity(emuReq);
        requests.push({
          seq: ++seq,
          time: new Date().toISOString(),
          method: emuReq.method,
          host: 'identity-endpoint',
          path: url.pathname,
          query: url.search,
          callerOid: response.callerOid,
          status: response.status,
          outcome: 'served',
          durationMs: 0,
        });
        send(res, response);
        return;
      }
      let json: unknown = undefined;
      if (body.length > 0) {
        try {
          json = JSON.parse(body.toString('utf8'));
        } catch {
          throw new HttpError(400, 'the body is not JSON');
        }
      }
      // Some routes answer asynchronously (a subscription runs the validation handshake first).
      const result: unknown = await adminRoute(req.method ?? 'GET', url, json);
      send(res, { status: 200, body: result ?? { ok: true } });
    } catch (error) {
      const status = error instanceof HttpError || error instanceof SeedKeyError ? error.status : 400;
      send(res, { status, body: { error: error instanceof Error ? error.message : String(error) } });
    }
  }

  function postJson(target: URL, body: unknown): void {
    const payload = Buffer.from(JSON.stringify(body));
    const req = http.request(target, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'content-length': payload.length },
    });
    req.on('response', (res) => res.resume());
    req.on('error', (error) => log(`audit subscriber ${target.host} failed: ${error.message}`));
    req.end(payload);
  }

  function text(value: unknown): string {
    return typeof value === 'string' ? value : '';
  }

  function obj(json: unknown): Record<string, unknown> {
    if (typeof json !== 'object' || json === null || Array.isArray(json)) {
      throw new HttpError(400, 'the body must be a JSON object');
    }
    return json as Record<string, unknown>;
  }

  function adminRoute(method: string, url: URL, json: unknown): unknown {
    const route = `${method} ${url.pathname.replace(/\/+$/, '')}`;
    switch (route) {
      case 'POST /reset':
        emulator.reset();
        return { ok: true };
      case 'POST /principals':
        return addPrincipal(obj(json) as unknown as PrincipalSpec);
      case 'POST /roleAssignments': {
        const spec = obj(json) as unknown as Omit<RoleAssignment, 'id'>;
        if (!spec.principalId || !spec.scope) throw new HttpError(400, 'principalId and scope are required');
        const assignment = { id: randomUUID(), ...spec };
        roleAssignments.push(assignment);
        return assignment;
      }
      case 'POST /vaults':
        return summariseVault(emulator.addVault(obj(json) as unknown as VaultSpec));
      case 'POST /keys': {
        const spec = obj(json);
        const vault = text(spec.vault);
        if (!vaults.has(vault.toLowerCase())) throw new HttpError(404, `no vault ${vault}`);
        const key = seedKey(core, vault.toLowerCase(), spec as unknown as Parameters<typeof seedKey>[2]);
        return { name: key.name, versions: key.versions.map((v) => v.version), tags: key.tags };
      }
      case 'POST /tokens': {
        const spec = obj(json);
        const principal = principals.get(text(spec.principalId));
        if (!principal) throw new HttpError(404, `no principal ${String(spec.principalId)}`);
        const { token, claims } = identity.issueToken(principal, text(spec.resource));
        return { accessToken: token, expiresOn: claims.exp };
      }
      case 'POST /timing': {
        const spec = obj(json);
        if (typeof spec.completionLagMs === 'number') core.timing.completionLagMs = spec.completionLagMs;
        if (typeof spec.latencyMs === 'number') baseLatencyMs = spec.latencyMs;
        return { completionLagMs: core.timing.completionLagMs, latencyMs: baseLatencyMs };
      }
      case 'GET /state':
        return {
          principals: [...principals.values()].map((p) => ({ ...p, secrets: undefined })),
          roleAssignments,
          vaults: [...vaults.values()].map(summariseVault),
          faults: faults.list(),
          timing: { ...core.timing, latencyMs: baseLatencyMs },
        };
      case 'GET /requests': {
        const since = Number(url.searchParams.get('since') ?? 0);
        return requests.filter((r) => r.seq > since);
      }
      case 'GET /audit': {
        const vault = url.searchParams.get('vault')?.toLowerCase();
        const op = url.searchParams.get('operationName');
        return auditLog.filter(
          (r) =>
            (!vault || r.resourceId.toLowerCase().endsWith(`/vaults/${vault}`)) &&
            (!op || r.operationName === op),
        );
      }
      case 'GET /eventgrid/events':
        return eventGrid.events(url.searchParams.get('topic') ?? undefined);
      case 'POST /eventgrid/topics':
        return eventGrid.createTopic(obj(json) as unknown as Parameters<EventGridService['createTopic']>[0]);
      case 'POST /eventgrid/subscriptions':
        return eventGrid.subscribe(obj(json) as unknown as Parameters<EventGridService['subscribe']>[0]);
      case 'POST /audit/subscribers': {
        // Stand-in for a diagnostic setting streaming to an Event Hub: batches go to a loopback URL.
        const target = new URL(text(obj(json).url));
        if (!['127.0.0.1', 'localhost', '[::1]'].includes(target.hostname) || target.protocol !== 'http:') {
          throw new HttpError(400, 'an audit subscriber must be an http:// URL on loopback');
        }
        emulator.onAudit((records) => postJson(target, { records }));
        return { ok: true, url: target.toString() };
      }
      case 'POST /workspaces':
        return addWorkspace(core, obj(json) as unknown as WorkspaceSpec);
      case 'POST /graph/permissions': {
        const spec = obj(json);
        const permissions = Array.isArray(spec.permissions) ? spec.permissions.map(String) : [];
        grantGraphPermissions(core, text(spec.principalId), permissions);
        return {
          principalId: text(spec.principalId),
          permissions: core.graphPermissions?.get(text(spec.principalId)),
        };
      }
      case 'GET /faults':
        return faults.list();
      case 'POST /faults':
        try {
          return faults.add(obj(json) as unknown as FaultSpec);
        } catch (error) {
          throw new HttpError(400, (error as Error).message);
        }
      case 'DELETE /faults':
        faults.clear();
        return { ok: true };
      case 'POST /posture':
        try {
          return seedPosture(core, obj(json));
        } catch (error) {
          throw new HttpError(400, (error as Error).message);
        }
      default:
        throw new HttpError(404, `no admin route ${route}`);
    }
  }

  function summariseVault(v: VaultRecord) {
    return {
      name: v.name,
      vaultUri: `https://${v.name}.vault.azure.net/`,
      id: `/subscriptions/${v.subscriptionId}/resourceGroups/${v.resourceGroup}/providers/Microsoft.KeyVault/vaults/${v.name}`,
      location: v.location,
      subscriptionId: v.subscriptionId,
      resourceGroup: v.resourceGroup,
      enableRbacAuthorization: v.enableRbacAuthorization,
      enablePurgeProtection: v.enablePurgeProtection,
      softDeleteRetentionInDays: v.softDeleteRetentionInDays,
      deleted: v.deleted ?? null,
      keys: [...v.keys.keys()],
      deletedKeys: [...v.deletedKeys.keys()],
    };
  }

  const listen = (server: http.Server) =>
    new Promise<number>((resolve, reject) => {
      server.once('error', reject);
      server.listen(0, '127.0.0.1', () => resolve((server.address() as AddressInfo).port));
    });
  const proxyPort = await listen(proxy);
  const adminPort = await listen(admin);
  const adminUrl = `http://127.0.0.1:${adminPort}`;

  const emulator: Emulator = {
    proxy: `http://127.0.0.1:${proxyPort}`,
    caCert: ca.certPath,
    identityEndpoint: `${adminUrl}/msi/token`,
    identityHeader,
    admin: adminUrl,
    tenantId,
    subscriptionId,
    core,
    identity,
    eventGrid,
    faults,
    ca,
    requests,
    audit: auditLog,
    addPrincipal,
    addVault(spec) {
      const vault = seedVault(core, spec);
      vaults.set(vault.name.toLowerCase(), vault);
      return vault;
    },
    onAudit(listener) {
      auditListeners.add(listener);
      return () => auditListeners.delete(listener);
    },
    reset() {
      principals.clear();
      roleAssignments.length = 0;
      vaults.clear();
      core.workspaces?.clear();
      core.graphPermissions?.clear();
      resetArmResources(core);
      auditLog.length = 0;
      requests.length = 0;
      pendingAudit = [];
      faults.clear(1);
      eventGrid.reset();
      core.timing.completionLagMs = options.completionLagMs ?? 0;
      baseLatencyMs = options.latencyMs ?? 0;
    },
    async stop() {
      if (auditTimer) clearTimeout(auditTimer);
      eventGrid.stop();
      const close = (s: http.Server) =>
        new Promise<void>((resolve) => {
          s.closeAllConnections();
          s.close(() => resolve());
        });
      azureServer.closeAllConnections();
      await Promise.all([close(proxy), close(admin)]);
    },
  };
  return emulator;
}
