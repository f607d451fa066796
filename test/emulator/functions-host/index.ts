/**
 * The local Functions host: see loader.ts (loading through the `@azure/functions-core` stand-in,
 * invocation as the worker runs it) and server.ts (HTTP, Event Grid webhook, admin API, Event Hubs
 * and timer delivery).
 */
export {
  FUNCTIONS_CORE_MODULE,
  FunctionsAppLoadError,
  WORKER_CAPABILITIES,
  loadFunctionsApp,
  type FunctionInfo,
  type HostLogRecord,
  type InvocationResult,
  type InvokeOptions,
  type LoadOptions,
  type LoadedApp,
  type LogLine,
  type RetriedInvocation,
  type RetryRunOptions,
} from './loader';
export {
  startFunctionsHost,
  type EventHubDeliveryOptions,
  type FunctionsHost,
  type FunctionsHostOptions,
  type TimerRunOptions,
} from './server';
export {
  createFunctionsCoreStandin,
  type FunctionsCoreApi,
  type FunctionsCoreStandin,
} from './functions-core-standin';
export { nextOccurrence, parseTimerSchedule, type TimerSchedule } from './ncrontab';
export type {
  EventGridTriggerInput,
  EventHubTriggerInput,
  HttpResult,
  HttpTriggerInput,
  RpcTriggerInput,
  TimerTriggerInput,
  TriggerInput,
} from './triggers';
