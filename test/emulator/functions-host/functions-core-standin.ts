/**
 * A stand-in for `@azure/functions-core`, the module the Azure Functions Node.js worker provides at
 * run time (it is not an npm package). `@azure/functions` requires it lazily, on the first `app.*`
 * call: when the require fails the library switches to "test mode" and registers nothing. Given this
 * stand-in instead, the library behaves as it does inside the worker: `setProgrammingModel` hands
 * over its programming model, and every `app.*` call arrives here as `registerFunction(metadata,
 * callback)` with exactly the metadata the worker forwards to the host.
 *
 * Shapes follow the worker's public contract (types-core/index.d.ts of
 * Azure/azure-functions-nodejs-library) and its behaviour (azure-functions-nodejs-worker
 * `setupCoreModule.ts`, `coreApi/registerFunction.ts`, `eventHandlers/InvocationHandler.ts`):
 * - `registerFunction` keys functions by `functionId ?? name`, refuses a duplicate and any
 *   registration once startup has finished, and derives `rawBindings` (one JSON string per binding,
 *   with its name), which is what the host actually reads, plus `scriptFile`/`directory`.
 * - `registerHook` keeps hooks per name in registration order; `log` is the out-of-invocation log.
 *
 * Only the types this package needs are declared here; they mirror the worker's RPC types.
 */
import { basename, dirname } from 'node:path';

export type RpcLogLevel = 'trace' | 'debug' | 'information' | 'warning' | 'error' | 'critical' | 'none';
export type RpcLogCategory = 'user' | 'system' | 'customMetric';
export type RpcBindingDirection = 'in' | 'out' | 'inout';

/** A binding as `@azure/functions` registers it: the typed fields plus the trigger's own options. */
export interface RpcBindingInfo {
  type?: string | null;
  direction?: RpcBindingDirection | null;
  dataType?: 'undefined' | 'string' | 'binary' | 'stream' | null;
  properties?: Record<string, string> | null;
  [option: string]: unknown;
}

export interface RpcDuration {
  seconds?: number | null;
  nanos?: number | null;
}

export interface RpcRetryOptions {
  maxRetryCount?: number | null;
  delayInterval?: RpcDuration | null;
  minimumInterval?: RpcDuration | null;
  maximumInterval?: RpcDuration | null;
  retryStrategy?: 'exponentialBackoff' | 'fixedDelay' | null;
}

/** What `registerFunction` receives. */
export interface FunctionMetadata {
  name: string;
  functionId?: string;
  bindings: Record<string, RpcBindingInfo>;
  retryOptions?: RpcRetryOptions;
}

/** What the worker keeps per function (and hands to the programming model at invocation). */
export interface RpcFunctionMetadata {
  name?: string | null;
  functionId?: string | null;
  directory?: string | null;
  scriptFile?: string | null;
  bindings?: Record<string, RpcBindingInfo> | null;
  rawBindings?: string[] | null;
  retryOptions?: RpcRetryOptions | null;
}

export interface RpcHttpCookie {
  name?: string | null;
  value?: string | null;
  domain?: { value?: string | null } | null;
  path?: { value?: string | null } | null;
  expires?: { value?: { seconds?: number | null; nanos?: number | null } | null } | null;
  secure?: { value?: boolean | null } | null;
  httpOnly?: { value?: boolean | null } | null;
  sameSite?: 'none' | 'lax' | 'strict' | 'explicitNone' | null;
  maxAge?: { value?: number | null } | null;
}

export interface RpcHttpData {
  method?: string | null;
  url?: string | null;
  headers?: Record<string, string> | null;
  body?: RpcTypedData | null;
  params?: Record<string, string> | null;
  statusCode?: string | null;
  query?: Record<string, string> | null;
  enableContentNegotiation?: boolean | null;
  rawBody?: RpcTypedData | null;
  cookies?: RpcHttpCookie[] | null;
  nullableHeaders?: Record<string, { value?: string | null }> | null;
  nullableParams?: Record<string, { value?: string | null }> | null;
  nullableQuery?: Record<string, { value?: string | null }> | null;
}

export interface RpcTypedData {
  string?: string | null;
  json?: string | null;
  bytes?: Uint8Array | null;
  stream?: Uint8Array | null;
  http?: RpcHttpData | null;
  int?: number | null;
  double?: number | null;
  collectionBytes?: { bytes?: Uint8Array[] | null } | null;
  collectionString?: { string?: string[] | null } | null;
  collectionDouble?: { double?: number[] | null } | null;
  collectionSint64?: { sint64?: number[] | null } | null;
}

export interface RpcParameterBinding {
  name?: string | null;
  data?: RpcTypedData | null;
}

export interface RpcException {
  source?: string | null;
  stackTrace?: string | null;
  message?: string | null;
}

export interface RpcRetryContext {
  retryCount?: number | null;
  maxRetryCount?: number | null;
  exception?: RpcException | null;
}

export interface RpcTraceContext {
  traceParent?: string | null;
  traceState?: string | null;
  attributes?: Record<string, string> | null;
}

export interface RpcInvocationRequest {
  invocationId?: string | null;
  functionId?: string | null;
  inputData?: RpcParameterBinding[] | null;
  triggerMetadata?: Record<string, RpcTypedData> | null;
  traceContext?: RpcTraceContext | null;
  retryContext?: RpcRetryContext | null;
}

export interface RpcInvocationResponse {
  invocationId?: string | null;
  outputData?: RpcParameterBinding[] | null;
  returnValue?: RpcTypedData | null;
}

export type InvocationState = 'preInvocationHooks' | 'postInvocationHooks' | 'invocation';

export interface CoreInvocationContext {
  invocationId: string;
  request: RpcInvocationRequest;
  metadata: RpcFunctionMetadata;
  state?: InvocationState;
  log(level: RpcLogLevel, category: RpcLogCategory, message: string): void;
}

export type FunctionCallback = (...args: unknown[]) => unknown;

export interface InvocationModel {
  getArguments(): Promise<{ context: unknown; inputs: unknown[] }>;
  invokeFunction(context: unknown, inputs: unknown[], callback: FunctionCallback): Promise<unknown>;
  getResponse(context: unknown, result: unknown): Promise<RpcInvocationResponse>;
}

export interface ProgrammingModel {
  name: string;
  version: string;
  getInvocationModel(coreContext: CoreInvocationContext): InvocationModel | Promise<InvocationModel>;
  getCapabilities?(
    defaults: Record<string, string>,
  ): Record<string, string> | Promise<Record<string, string>>;
}

export type HookData = Record<string, unknown>;
export type HookCallback = (context: Record<string, unknown>) => unknown;

/** The worker's `Disposable` (exported by the core module, used by hooks and registrations). */
export class Disposable {
  #callOnDispose: (() => unknown) | undefined;

  static from(...likes: Array<{ dispose: () => unknown }>): Disposable {
    return new Disposable(() => {
      for (const like of likes) like.dispose();
    });
  }

  constructor(callOnDispose: () => unknown) {
    this.#callOnDispose = callOnDispose;
  }

  dispose(): unknown {
    const call = this.#callOnDispose;
    this.#callOnDispose = undefined;
    return call?.();
  }
}

/** The object `require('@azure/functions-core')` returns to the loaded app. */
export interface FunctionsCoreApi {
  readonly version: string;
  readonly hostVersion: string;
  registerFunction(metadata: FunctionMetadata, callback: FunctionCallback): Disposable;
  registerHook(hookName: string, callback: HookCallback): Disposable;
  setProgrammingModel(programmingModel: ProgrammingModel): void;
  getProgrammingModel(): ProgrammingModel | undefined;
  log(level: RpcLogLevel, category: RpcLogCategory, message: string): void;
  readonly Disposable: typeof Disposable;
}

export interface RegisteredFunction {
  /** The worker's stored metadata: what the host is sent (with `rawBindings`) and what invocations see. */
  metadata: RpcFunctionMetadata & {
    name: string;
    functionId: string;
    bindings: Record<string, RpcBindingInfo>;
  };
  callback: FunctionCallback;
}

export interface StandinLogRecord {
  level: RpcLogLevel;
  category: RpcLogCategory;
  message: string;
}

export interface StandinOptions {
  /** The entry point being loaded: the worker derives `scriptFile` and `directory` from it. */
  entryFile?: string;
  /** Reported as `hostVersion` (the library only checks that `log` exists, for HTTP streaming). */
  hostVersion?: string;
  /** Receives `log(...)` calls made outside an invocation (the library's system logs). */
  onLog?: (record: StandinLogRecord) => void;
}

export interface FunctionsCoreStandin {
  readonly api: FunctionsCoreApi;
  /** Registered functions by function id, in registration order. */
  readonly functions: Map<string, RegisteredFunction>;
  readonly appHookData: HookData;
  readonly programmingModel: ProgrammingModel | undefined;
  /** Hooks registered under a name, in registration order (disposed ones removed). */
  hooks(hookName: string): HookCallback[];
  /** Ends startup: later registrations (and disposals) throw, as in the worker. */
  lock(): void;
  readonly locked: boolean;
}

/** Worker version reported to the app (the stand-in is not a worker; it only has to be truthy). */
export const STANDIN_WORKER_VERSION = '3.10.1-kvguard-standin';

export function createFunctionsCoreStandin(options: StandinOptions = {}): FunctionsCoreStandin {
  const functions = new Map<string, RegisteredFunction>();
  const hooks = new Map<string, HookCallback[]>();
  const appHookData: HookData = {};
  let programmingModel: ProgrammingModel | undefined;
  let locked = false;

  const registerFunction = (metadata: FunctionMetadata, callback: FunctionCallback): Disposable => {
    if (locked) throw new Error('A function can only be registered during app startup.');
    if (typeof callback !== 'function') throw new Error(`Function "${metadata.name}" has no handler.`);
    const functionId = metadata.functionId || metadata.name;
    if (functions.has(functionId)) {
      throw new Error(`A function with id "${functionId}" has already been registered.`);
    }
    const rpcMetadata: RegisteredFunction['metadata'] = {
      ...metadata,
      name: metadata.name || functionId,
      functionId,
      bindings: metadata.bindings,
      // `rawBindings` is what the host reads; `bindings` is what the library reads back at invocation.
      rawBindings: Object.entries(metadata.bindings).map(([name, binding]) =>
        JSON.stringify({ ...binding, name }),
      ),
      scriptFile: options.entryFile ? basename(options.entryFile) : 'unknown',
      ...(options.entryFile ? { directory: dirname(options.entryFile) } : {}),
    };
    functions.set(functionId, { metadata: rpcMetadata, callback });
    return new Disposable(() => {
      if (locked) throw new Error('A function can only be disposed during app startup.');
      functions.delete(functionId);
    });
  };

  const registerHook = (hookName: string, callback: HookCallback): Disposable => {
    const list = hooks.get(hookName) ?? [];
    list.push(callback);
    hooks.set(hookName, list);
    return new Disposable(() => {
      const current = hooks.get(hookName) ?? [];
      const at = current.indexOf(callback);
      if (at >= 0) current.splice(at, 1);
    });
  };

  const api: FunctionsCoreApi = {
    version: STANDIN_WORKER_VERSION,
    hostVersion: options.hostVersion ?? '4.1040.0',
    registerFunction,
    registerHook,
    setProgrammingModel(model: ProgrammingModel): void {
      programmingModel = model;
    },
    getProgrammingModel(): ProgrammingModel | undefined {
      return programmingModel;
    },
    log(level: RpcLogLevel, category: RpcLogCategory, message: string): void {
      options.onLog?.({ level, category, message });
    },
    Disposable,
  };

  return {
    api,
    functions,
    appHookData,
    get programmingModel() {
      return programmingModel;
    },
    hooks(hookName: string): HookCallback[] {
      return [...(hooks.get(hookName) ?? [])];
    },
    lock(): void {
      locked = true;
    },
    get locked() {
      return locked;
    },
  };
}
