/**
 * Loads a built functions app the way the Node.js worker does, with the stand-in for
 * `@azure/functions-core` (functions-core-standin.ts), and invokes its functions the way the worker
 * runs an invocation request (azure-functions-nodejs-worker `InvocationHandler`): the programming
 * model's `getInvocationModel(coreCtx)`, `getArguments()`, the preInvocation hooks,
 * `invokeFunction()`, the postInvocation hooks, `getResponse()`.
 *
 * Scope of the stand-in: the entry file is compiled as a fresh CommonJS module (not cached in
 * `require.cache`) whose own `require` answers `@azure/functions-core` with this load's stand-in and
 * defers everything else to Node's loader. Nothing global is patched (no `Module._load` or
 * `_resolveFilename` hook, no NODE_PATH), so nothing can leak into other tests, and two loads of the
 * same file are independent apps. It follows that `@azure/functions` must be bundled into the entry
 * file, as scripts/build.mjs does (`external: ['@azure/functions-core']`): a copy of
 * `@azure/functions` loaded from node_modules by Node's loader would not see the stand-in, stay in
 * test mode and register nothing, which `loadFunctionsApp` reports as an error.
 *
 * The app runs on Node's own loader even under jest (outside jest's module registry), as it would
 * in the worker; objects it returns come from the main realm, so check them with `Array.isArray`
 * and duck typing rather than `instanceof`.
 *
 * Loading also checks what the host checks at indexing (function and binding names, one trigger,
 * HTTP auth level and route, timer schedule, retry options) and throws on any problem, so an app
 * Azure would refuse is refused locally.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import Module from 'node:module';
import { dirname, resolve } from 'node:path';
import {
  createFunctionsCoreStandin,
  type CoreInvocationContext,
  type FunctionsCoreStandin,
  type HookCallback,
  type ProgrammingModel,
  type RegisteredFunction,
  type RpcBindingInfo,
  type RpcFunctionMetadata,
  type RpcInvocationRequest,
  type RpcInvocationResponse,
  type RpcLogCategory,
  type RpcLogLevel,
  type RpcRetryContext,
  type RpcRetryOptions,
} from './functions-core-standin';
import { parseTimerSchedule, resolveAppSettingReferences, type TimerSchedule } from './ncrontab';
import { compileRoute } from './routes';
import {
  buildRequest,
  optionOf,
  decodeTypedData,
  inputKindFor,
  toHttpResult,
  type HttpResult,
  type TriggerInput,
} from './triggers';

export const FUNCTIONS_CORE_MODULE = '@azure/functions-core';

/** Capabilities the Node.js worker advertises before the programming model adds its own. */
export const WORKER_CAPABILITIES: Readonly<Record<string, string>> = {
  RawHttpBodyBytes: 'true',
  RpcHttpTriggerMetadataRemoved: 'true',
  RpcHttpBodyOnly: 'true',
  IgnoreEmptyValuedRpcHttpHeaders: 'true',
  UseNullableValueDictionaryForHttp: 'true',
  WorkerStatus: 'true',
  TypedDataCollection: 'true',
  HandlesWorkerTerminateMessage: 'true',
};

const FUNCTION_NAME = /^[a-z][a-z0-9_-]{0,127}$/i;
const BINDING_NAME = /^([a-zA-Z][a-zA-Z0-9]{0,127}|\$return)$/;
const AUTH_LEVELS = ['anonymous', 'function', 'admin'];
const HTTP_METHODS = ['GET', 'POST', 'DELETE', 'HEAD', 'PATCH', 'PUT', 'OPTIONS', 'TRACE', 'CONNECT'];
/** Triggers the host applies a function-level retry policy to (the library offers `retry` on these). */
const RETRY_TRIGGERS = ['timertrigger', 'eventhubtrigger', 'cosmosdbtrigger', 'kafkatrigger'];

export interface LogLine {
  level: RpcLogLevel;
  category: RpcLogCategory;
  message: string;
}

export interface HostLogRecord extends LogLine {
  functionName?: string;
  invocationId?: string;
}

export interface LoadOptions {
  /** Every log: the app's system logs, each invocation's logs, and the host's Executing/Executed lines. */
  onLog?: (record: HostLogRecord) => void;
  /** App settings for `%NAME%` references (default `process.env`). */
  env?: Record<string, string | undefined>;
  hostVersion?: string;
}

export interface FunctionInfo {
  name: string;
  functionId: string;
  /** The trigger binding's type, e.g. `httpTrigger`, `eventGridTrigger`, `eventHubTrigger`, `timerTrigger`. */
  triggerType: string;
  triggerName: string;
  /** The trigger binding as the host reads it (from `rawBindings`). */
  trigger: RpcBindingInfo & { name: string };
  /** All bindings as the host reads them (`rawBindings`, parsed), by binding name. */
  bindings: Record<string, RpcBindingInfo & { name: string }>;
  /** The retry policy as the host receives it (RpcRetryOptions: durations in whole seconds). */
  retryOptions?: RpcRetryOptions;
  /** What the worker stores and sends the host for this function (`rawBindings`, `scriptFile`...). */
  metadata: RpcFunctionMetadata;
  /** Timer triggers: the schedule after `%NAME%` resolution. */
  schedule?: TimerSchedule;
  /** HTTP triggers: the route template below `/api/` (the function name when none is given). */
  route?: string;
  /** HTTP triggers: accepted methods, upper-case. */
  methods?: string[];
  /** HTTP triggers: `anonymous`, `function` or `admin`. */
  authLevel?: string;
}

export interface InvokeOptions {
  invocationId?: string;
  retryContext?: RpcRetryContext;
  traceParent?: string;
}

export interface InvocationResult {
  invocationId: string;
  functionName: string;
  triggerType: string;
  ok: boolean;
  /** What the invocation threw (from the app's realm), when it failed. */
  error?: unknown;
  errorMessage?: string;
  /** The decoded return value (non-HTTP triggers). */
  returnValue?: unknown;
  /** HTTP triggers: the response (204 when the function returned none). */
  http?: HttpResult;
  response?: RpcInvocationResponse;
  /** The invocation's log lines, levels and categories kept. */
  logs: LogLine[];
  durationMs: number;
}

export interface RetryRunOptions {
  /** Multiplies the policy's delays (tests use a small factor). Default 1. */
  delayScale?: number;
  /** Attempts after the first when `maxRetryCount` is -1 (retry forever). Default 10. */
  unboundedRetryLimit?: number;
}

export interface RetriedInvocation {
  /** The last attempt. */
  result: InvocationResult;
  attempts: InvocationResult[];
}

export interface LoadedApp {
  readonly entryFile: string;
  readonly functions: FunctionInfo[];
  readonly programmingModel: { name: string; version: string };
  readonly capabilities: Readonly<Record<string, string>>;
  /** Things Azure accepts but that do not do what they seem (e.g. `retry` on an HTTP trigger). */
  readonly warnings: string[];
  /** Case-insensitive, like the host. */
  getFunction(name: string): FunctionInfo | undefined;
  /** One invocation, built as the host would for the trigger; a function failure is `ok: false`, not a throw. */
  invoke(name: string, input: TriggerInput, options?: InvokeOptions): Promise<InvocationResult>;
  /** Invokes and, on failure, retries per the function's retry policy with `retryContext`, as the host does. */
  invokeWithRetries(name: string, input: TriggerInput, options?: RetryRunOptions): Promise<RetriedInvocation>;
  /** Runs the appTerminate hooks. */
  dispose(): Promise<void>;
}

export class FunctionsAppLoadError extends Error {
  constructor(
    message: string,
    readonly problems: string[],
    cause?: unknown,
  ) {
    super(
      `${message}${problems.length ? `:\n- ${problems.join('\n- ')}` : ''}`,
      cause === undefined ? undefined : { cause },
    );
    this.name = 'FunctionsAppLoadError';
  }
}

interface NodeModule {
  exports: unknown;
  require: (this: NodeModule, id: string) => unknown;
  load(filename: string): void;
}

type NodeModuleConstructor = { new (id: string): NodeModule; prototype: NodeModule };

export async function loadFunctionsApp(entryFile: string, options: LoadOptions = {}): Promise<LoadedApp> {
  const file = resolve(entryFile);
  const env = options.env ?? process.env;
  const emit = (record: HostLogRecord): void => options.onLog?.(record);
  const standin = createFunctionsCoreStandin({
    entryFile: file,
    hostVersion: options.hostVersion,
    onLog: (record) => emit(record),
  });

  requireWithStandin(file, standin);

  const model = standin.programmingModel;
  if (!model) {
    throw new FunctionsAppLoadError(`${file} registered no programming model`, [
      'no app.* call reached @azure/functions-core: is @azure/functions bundled into the entry file?',
    ]);
  }
  const capabilities = model.getCapabilities
    ? await model.getCapabilities({ ...WORKER_CAPABILITIES })
    : { ...WORKER_CAPABILITIES };
  if (capabilities.HttpUri) {
    throw new FunctionsAppLoadError(`${file} cannot run on the local host`, [
      'HTTP streaming (app.setup({ enableHttpStream: true })) is not supported by the local host',
    ]);
  }
  await runHooks(standin.hooks('appStart'), {
    hookData: {},
    appHookData: standin.appHookData,
    functionAppDirectory: dirname(file),
  });
  standin.lock();

  const warnings: string[] = [];
  const functions = describeFunctions(standin, env, warnings, file);
  const byName = new Map(functions.map((f) => [f.name.toLowerCase(), f]));

  const findRegistered = (info: FunctionInfo): RegisteredFunction => standin.functions.get(info.functionId)!;
  const lookup = (name: string): FunctionInfo => {
    const info = byName.get(name.toLowerCase());
    if (!info)
      throw new Error(
        `No function named '${name}' is registered (have: ${functions.map((f) => f.name).join(', ')}).`,
      );
    return info;
  };

  const invoke = async (
    name: string,
    input: TriggerInput,
    invokeOptions: InvokeOptions = {},
  ): Promise<InvocationResult> => {
    const info = lookup(name);
    const expected = inputKindFor(info.triggerType);
    if (input.kind !== 'rpc' && input.kind !== expected) {
      throw new Error(
        `Function '${info.name}' has a ${info.triggerType}; it takes '${expected}' input, not '${input.kind}'.`,
      );
    }
    return runInvocation(model, standin, info, findRegistered(info), input, invokeOptions, emit);
  };

  const invokeWithRetries = async (
    name: string,
    input: TriggerInput,
    retryOptions: RetryRunOptions = {},
  ): Promise<RetriedInvocation> => {
    const info = lookup(name);
    const policy = info.retryOptions;
    if (!policy) {
      const result = await invoke(name, input);
      return { result, attempts: [result] };
    }
    const maxRetryCount = policy.maxRetryCount ?? 0;
    const limit = maxRetryCount < 0 ? (retryOptions.unboundedRetryLimit ?? 10) : maxRetryCount;
    const attempts: InvocationResult[] = [];
    let retryContext: RpcRetryContext = { retryCount: 0, maxRetryCount };
    for (;;) {
      const result = await invoke(name, input, { retryContext });
      attempts.push(result);
      const retryCount = retryContext.retryCount ?? 0;
      if (result.ok || retryCount >= limit) return { result, attempts };
      const delay = retryDelayMs(policy, retryCount + 1) * (retryOptions.delayScale ?? 1);
      emit({
        level: 'warning',
        category: 'system',
        functionName: info.name,
        message: `Waiting for ${Math.round(delay)} ms before retrying 'Functions.${info.name}' (retry ${retryCount + 1} of ${maxRetryCount}).`,
      });
      await new Promise((done) => setTimeout(done, delay));
      retryContext = {
        retryCount: retryCount + 1,
        maxRetryCount,
        exception: errorToRpcException(result.error),
      };
    }
  };

  return {
    entryFile: file,
    functions,
    programmingModel: { name: model.name, version: model.version },
    capabilities,
    warnings,
    getFunction: (name) => byName.get(name.toLowerCase()),
    invoke,
    invokeWithRetries,
    async dispose() {
      await runHooks(standin.hooks('appTerminate'), { hookData: {}, appHookData: standin.appHookData });
    },
  };
}

/** Compiles the entry file as a fresh module whose `require('@azure/functions-core')` is the stand-in. */
function requireWithStandin(file: string, standin: FunctionsCoreStandin): void {
  const Ctor = Module as unknown as NodeModuleConstructor;
  const mod = new Ctor(file);
  const nodeRequire = Ctor.prototype.require;
  mod.require = function requireFromApp(this: NodeModule, id: string): unknown {
    if (id === FUNCTIONS_CORE_MODULE) return standin.api;
    return nodeRequire.call(this, id);
  };
  try {
    mod.load(file);
  } catch (error) {
    throw new FunctionsAppLoadError(`Loading ${file} failed`, [messageOf(error)], error);
  }
}

function describeFunctions(
  standin: FunctionsCoreStandin,
  env: Record<string, string | undefined>,
  warnings: string[],
  file: string,
): FunctionInfo[] {
  const problems: string[] = [];
  const functions: FunctionInfo[] = [];
  const seen = new Set<string>();
  for (const { metadata } of standin.functions.values()) {
    const name = metadata.name;
    const problem = (text: string): void => {
      problems.push(`${name}: ${text}`);
    };
    if (!FUNCTION_NAME.test(name) || name.toLowerCase() === 'host')
      problem(`'${name}' is not a valid function name.`);
    if (seen.has(name.toLowerCase()))
      problem('another function has the same name (names are case-insensitive).');
    seen.add(name.toLowerCase());

    const bindings: Record<string, RpcBindingInfo & { name: string }> = {};
    for (const raw of metadata.rawBindings ?? []) {
      const binding = JSON.parse(raw) as RpcBindingInfo & { name: string };
      bindings[binding.name] = binding;
      if (!BINDING_NAME.test(binding.name)) problem(`'${binding.name}' is not a valid binding name.`);
      if (!binding.type) problem(`binding '${binding.name}' has no type.`);
      if (!['in', 'out', 'inout'].includes(String(binding.direction)))
        problem(`binding '${binding.name}' has no direction.`);
    }
    const triggers = Object.values(bindings).filter((b) => /trigger$/i.test(String(b.type)));
    if (triggers.length !== 1) {
      problem(`a function needs exactly one trigger binding, found ${triggers.length}.`);
      continue;
    }
    const trigger = triggers[0]!;
    const triggerType = String(trigger.type);
    const info: FunctionInfo = {
      name,
      functionId: metadata.functionId,
      triggerType,
      triggerName: trigger.name,
      trigger,
      bindings,
      metadata,
    };

    const retry = metadata.retryOptions;
    if (retry) {
      info.retryOptions = hostRetryOptions(retry);
      const policyProblem = checkRetry(info.retryOptions);
      if (policyProblem) problem(policyProblem);
      if (!RETRY_TRIGGERS.includes(triggerType.toLowerCase())) {
        warnings.push(`${name}: the host does not apply a retry policy to a ${triggerType}.`);
      }
    }

    switch (triggerType.toLowerCase()) {
      case 'httptrigger': {
        const authLevel = (optionOf(trigger, 'authLevel') ?? 'function').toLowerCase();
        if (!AUTH_LEVELS.includes(authLevel))
          problem(`authLevel '${optionOf(trigger, 'authLevel')}' is not one of ${AUTH_LEVELS.join(', ')}.`);
        const methods = Array.isArray(trigger.methods)
          ? trigger.methods.map((m) => String(m).toUpperCase())
          : [...HTTP_METHODS];
        for (const m of methods) if (!HTTP_METHODS.includes(m)) problem(`'${m}' is not an HTTP method.`);
        const route =
          typeof trigger.route === 'string' && trigger.route.trim() !== ''
            ? trigger.route.replace(/^\/+/, '')
            : name;
        try {
          compileRoute(route);
        } catch (error) {
          problem(messageOf(error));
        }
        Object.assign(info, { authLevel, methods, route });
        break;
      }
      case 'timertrigger': {
        try {
          const expression = resolveAppSettingReferences(optionOf(trigger, 'schedule') ?? '', env);
          info.schedule = parseTimerSchedule(expression);
        } catch (error) {
          problem(messageOf(error));
        }
        break;
      }
      case 'eventhubtrigger': {
        const cardinality = (optionOf(trigger, 'cardinality') ?? 'one').toLowerCase();
        if (cardinality !== 'one' && cardinality !== 'many')
          problem(`cardinality '${cardinality}' is not 'one' or 'many'.`);
        if (!trigger.eventHubName) problem('an Event Hubs trigger needs eventHubName.');
        if (!trigger.connection) problem('an Event Hubs trigger needs connection.');
        break;
      }
      default:
        break;
    }
    functions.push(info);
  }
  if (functions.length === 0 && problems.length === 0) {
    problems.push('no function registered: is @azure/functions bundled into the entry file?');
  }
  if (problems.length > 0) throw new FunctionsAppLoadError(`${file} would not index`, problems);
  return functions;
}

/** The retry options as protobuf carries them to the host: only RpcRetryOptions' fields. */
function hostRetryOptions(retry: RpcRetryOptions): RpcRetryOptions {
  const result: RpcRetryOptions = {};
  if (retry.maxRetryCount !== undefined && retry.maxRetryCount !== null)
    result.maxRetryCount = retry.maxRetryCount;
  if (retry.retryStrategy) result.retryStrategy = retry.retryStrategy;
  if (retry.delayInterval) result.delayInterval = retry.delayInterval;
  if (retry.minimumInterval) result.minimumInterval = retry.minimumInterval;
  if (retry.maximumInterval) result.maximumInterval = retry.maximumInterval;
  return result;
}

function checkRetry(retry: RpcRetryOptions): string | undefined {
  const max = retry.maxRetryCount;
  if (typeof max !== 'number' || !Number.isInteger(max) || max < -1) {
    return `retry.maxRetryCount must be an integer of -1 or more, got ${String(max)}.`;
  }
  const seconds = (d: RpcRetryOptions['delayInterval']): number | undefined =>
    d && d.seconds !== undefined && d.seconds !== null ? Number(d.seconds) : undefined;
  if (retry.retryStrategy === 'fixedDelay') {
    if (seconds(retry.delayInterval) === undefined) return 'retry strategy fixedDelay needs delayInterval.';
  } else if (retry.retryStrategy === 'exponentialBackoff') {
    const min = seconds(retry.minimumInterval);
    const max = seconds(retry.maximumInterval);
    if (min === undefined || max === undefined)
      return 'retry strategy exponentialBackoff needs minimumInterval and maximumInterval.';
    if (min > max) return 'retry.minimumInterval must not exceed retry.maximumInterval.';
  } else {
    return `retry strategy '${String(retry.retryStrategy)}' is not fixedDelay or exponentialBackoff.`;
  }
  return undefined;
}

/** Delay before retry number `retry` (1-based): fixed, or doubling from the minimum up to the maximum. */
function retryDelayMs(policy: RpcRetryOptions, retry: number): number {
  const ms = (d: RpcRetryOptions['delayInterval']): number =>
    Number(d?.seconds ?? 0) * 1000 + Number(d?.nanos ?? 0) / 1e6;
  if (policy.retryStrategy === 'fixedDelay') return ms(policy.delayInterval);
  const min = ms(policy.minimumInterval);
  const max = ms(policy.maximumInterval);
  return Math.min(max, min * 2 ** (retry - 1));
}

async function runInvocation(
  model: ProgrammingModel,
  standin: FunctionsCoreStandin,
  info: FunctionInfo,
  registered: RegisteredFunction,
  input: TriggerInput,
  options: InvokeOptions,
  emit: (record: HostLogRecord) => void,
): Promise<InvocationResult> {
  const invocationId = options.invocationId ?? randomUUID();
  const started = performance.now();
  const logs: LogLine[] = [];
  const base = { invocationId, functionName: info.name, triggerType: info.triggerType, logs };
  let invocationContext: unknown;

  const coreCtx: CoreInvocationContext = {
    invocationId,
    request: { invocationId, functionId: info.functionId },
    metadata: registered.metadata,
    state: undefined,
    log(level: RpcLogLevel, category: RpcLogCategory, message: string): void {
      const line = applyLogHooks(standin, { level, category, message }, invocationContext);
      logs.push(line);
      emit({ ...line, functionName: info.name, invocationId });
    },
  };
  const fail = (error: unknown): InvocationResult => {
    const durationMs = performance.now() - started;
    emit({
      level: 'error',
      category: 'system',
      functionName: info.name,
      invocationId,
      message: `Executed 'Functions.${info.name}' (Failed, Id=${invocationId}, Duration=${Math.round(durationMs)}ms): ${messageOf(error)}`,
    });
    return { ...base, ok: false, error, errorMessage: messageOf(error), durationMs };
  };

  emit({
    level: 'information',
    category: 'system',
    functionName: info.name,
    invocationId,
    message: `Executing 'Functions.${info.name}' (Reason='${reasonFor(info, input)}', Id=${invocationId})`,
  });
  try {
    const built = buildRequest(info.name, info.triggerName, info.trigger, input);
    const request: RpcInvocationRequest = {
      invocationId,
      functionId: info.functionId,
      inputData: built.inputData,
      triggerMetadata: built.triggerMetadata ?? {},
      traceContext: { traceParent: options.traceParent ?? newTraceParent(), traceState: '', attributes: {} },
    };
    if (options.retryContext) request.retryContext = options.retryContext;
    coreCtx.request = request;

    const invocationModel = await model.getInvocationModel(coreCtx);
    const args = await invocationModel.getArguments();
    invocationContext = args.context;
    const hookData: Record<string, unknown> = {};
    const pre = {
      get hookData() {
        return hookData;
      },
      get appHookData() {
        return standin.appHookData;
      },
      get invocationContext() {
        return args.context;
      },
      inputs: args.inputs,
      functionCallback: registered.callback,
    };
    coreCtx.state = 'preInvocationHooks';
    try {
      await runHooks(standin.hooks('preInvocation'), pre);
    } finally {
      coreCtx.state = undefined;
    }
    const post = {
      get hookData() {
        return hookData;
      },
      get appHookData() {
        return standin.appHookData;
      },
      get invocationContext() {
        return args.context;
      },
      inputs: pre.inputs,
      result: null as unknown,
      error: null as unknown,
    };
    coreCtx.state = 'invocation';
    try {
      post.result = await invocationModel.invokeFunction(args.context, pre.inputs, pre.functionCallback);
    } catch (error) {
      post.error = error;
    } finally {
      coreCtx.state = undefined;
    }
    coreCtx.state = 'postInvocationHooks';
    try {
      await runHooks(standin.hooks('postInvocation'), post);
    } finally {
      coreCtx.state = undefined;
    }
    // The worker treats anything thrown (not only an Error) as a failure.
    if (post.error !== null && post.error !== undefined) return fail(post.error);

    const response = await invocationModel.getResponse(args.context, post.result);
    const durationMs = performance.now() - started;
    emit({
      level: 'information',
      category: 'system',
      functionName: info.name,
      invocationId,
      message: `Executed 'Functions.${info.name}' (Succeeded, Id=${invocationId}, Duration=${Math.round(durationMs)}ms)`,
    });
    const result: InvocationResult = { ...base, ok: true, response, durationMs };
    if (info.triggerType.toLowerCase() === 'httptrigger')
      result.http = toHttpResult(response, registered.metadata.bindings);
    else result.returnValue = decodeTypedData(response.returnValue);
    return result;
  } catch (error) {
    return fail(error);
  }
}

/** Log hooks see every log; for user logs their changes to level and message are kept. */
function applyLogHooks(standin: FunctionsCoreStandin, line: LogLine, invocationContext: unknown): LogLine {
  const hooks = standin.hooks('log');
  if (hooks.length === 0) return line;
  const context = {
    hookData: {},
    appHookData: standin.appHookData,
    invocationContext,
    category: line.category,
    level: line.level,
    message: line.message,
  };
  for (const hook of hooks) {
    try {
      hook(context);
    } catch {
      // A failing log hook must not fail the invocation.
    }
  }
  return line.category === 'user' ? { ...line, level: context.level, message: context.message } : line;
}

async function runHooks(hooks: HookCallback[], context: Record<string, unknown>): Promise<void> {
  for (const hook of hooks) await hook(context);
}

function reasonFor(info: FunctionInfo, input: TriggerInput): string {
  switch (input.kind) {
    case 'http':
      return `This function was programmatically called via the host APIs.`;
    case 'timer':
      return `Timer fired at ${new Date().toISOString()}`;
    case 'eventGrid':
      return 'EventGrid trigger fired';
    case 'eventHub':
      return `(null)`;
    default:
      return `${info.triggerType} fired`;
  }
}

function newTraceParent(): string {
  return `00-${randomBytes(16).toString('hex')}-${randomBytes(8).toString('hex')}-01`;
}

function errorToRpcException(error: unknown): RpcRetryContext['exception'] {
  const e = error as { message?: unknown; stack?: unknown; name?: unknown } | undefined;
  return {
    message: messageOf(error),
    stackTrace: typeof e?.stack === 'string' ? e.stack : null,
    source: typeof e?.name === 'string' ? e.name : null,
  };
}

export function messageOf(error: unknown): string {
  if (
    typeof error === 'object' &&
    error !== null &&
    typeof (error as { message?: unknown }).message === 'string'
  ) {
    return (error as { message: string }).message;
  }
  if (typeof error === 'string') return error;
  try {
    return JSON.stringify(error) ?? String(error);
  } catch {
    return String(error);
  }
}
