/**
 * The composition root: builds every adapter once per process from the validated configuration.
 * Functions call `getRuntime()`; tests build a runtime from their own Config (pointing at the
 * emulator and Azurite) with `createRuntime`.
 */
import type { TokenCredential } from '@azure/identity';
import type { Logger } from 'pino';
import { createCredential } from './adapters/azure';
import { GraphDirectory } from './adapters/graph';
import { KeyVaultDataAdapter } from './adapters/keyvault';
import { WorkspaceAuditLogQuery } from './adapters/loganalytics';
import { EventGridSignalPublisher } from './adapters/signals';
import {
  EventGridAlertSink,
  LogSink,
  SignedWebhookSink,
  SlackWebhookSink,
  TeamsWorkflowSink,
} from './adapters/sinks';
import { BlobPoisonStore, TableLedger } from './adapters/storage';
import { VaultManagementAdapter } from './adapters/vaults';
import { lazyPort } from './adapters/lazy';
import type { PostureArm } from './posture/ports';
import type { ForwardedAlert } from './posture/reconcile';
import { loadConfig, type Config } from './config';
import { Inventory, type InventorySnapshot } from './inventory';
import { createLogger, type LogTarget } from './logging';
import type { OperationalMark } from './operational';
import { Pipeline, type IncidentRecord, type PipelineDeps } from './pipeline';
import type {
  AlertSink,
  AuditLogQuery,
  Clock,
  KeyVaultData,
  Ledger,
  PoisonStore,
  SignalPublisher,
  VaultManagement,
} from './ports';

export const systemClock: Clock = {
  now: () => new Date(),
  sleep: (ms) => new Promise((resolve) => setTimeout(resolve, ms)),
};

export interface Runtime {
  config: Config;
  clock: Clock;
  pipeline: Pipeline;
  /** A pipeline over this runtime's adapters with some of them replaced (tests, the benchmark). */
  pipelineWith(replace: Partial<PipelineDeps>): Pipeline;
  inventory: Inventory;
  publisher: SignalPublisher;
  poison: PoisonStore;
  sinks: AlertSink[];
  auditLog?: AuditLogQuery;
  /** The adapters the sweep lists with, and the incident ledger it checks (the pipeline's own). */
  keyVault: KeyVaultData;
  vaults: VaultManagement;
  ledger: Ledger<IncidentRecord>;
  /**
   * The operational alerts' once-a-day marks (lib/operational.ts, a partition of the ledger's table),
   * shared by the sweep and the pipeline.
   */
  marks: Ledger<OperationalMark>;
  /** reconcilePosture: ARM beyond the vaults, and the ledger rows of forwarded Defender alerts. */
  postureArm: PostureArm;
  postureLedger: Ledger<ForwardedAlert>;
  /** A logger for one invocation, written through its InvocationContext. */
  logger(target: LogTarget, bindings: Record<string, unknown>): Logger;
}

export interface RuntimeOverrides {
  credential?: TokenCredential;
  clock?: Clock;
  /** Where the process-level log (not tied to an invocation) goes; default stderr. */
  processLog?: LogTarget;
}

const stderrTarget: LogTarget = {
  trace: (m) => process.stderr.write(`${m}\n`),
  debug: (m) => process.stderr.write(`${m}\n`),
  info: (m) => process.stderr.write(`${m}\n`),
  warn: (m) => process.stderr.write(`${m}\n`),
  error: (m) => process.stderr.write(`${m}\n`),
};

export function createRuntime(config: Config, overrides: RuntimeOverrides = {}): Runtime {
  const credential = overrides.credential ?? createCredential(config.managedIdentityClientId);
  const clock = overrides.clock ?? systemClock;
  const retry = config.retryBaseDelayMs;
  const processLog = createLogger(config.logLevel, overrides.processLog ?? stderrTarget, {
    component: 'kvguard',
  });
  /** A ledger over the one table (incidents, marks, inventory, forwarded alerts: partitions of it). */
  const table = <T>() =>
    TableLedger.create<T>(config.storage.tableEndpoint, config.storage.ledgerTable, credential, retry);
  const vaults = new VaultManagementAdapter(credential, config.tenantId, retry);
  const keyVault = new KeyVaultDataAdapter({
    credential,
    clock,
    pollMs: config.recoveryPollMs,
    retryBaseDelayMs: retry,
  });
  const inventory = new Inventory({
    vaults,
    store: table<InventorySnapshot>(),
    clock,
    // Empty: the inventory discovers the subscriptions the identity can see at each refresh; the
    // sweep and the posture run take theirs from `inventory.subscriptions()`, never from config.
    subscriptions: config.subscriptions,
    log: processLog,
  });
  const sinks: AlertSink[] = [new LogSink(processLog)];
  if (config.topics.alerts)
    sinks.push(
      new EventGridAlertSink({ endpoint: config.topics.alerts, credential, retryBaseDelayMs: retry }),
    );
  if (config.sinks.teams) sinks.push(new TeamsWorkflowSink({ url: config.sinks.teams }));
  if (config.sinks.slack) sinks.push(new SlackWebhookSink({ url: config.sinks.slack }));
  if (config.sinks.webhook)
    sinks.push(new SignedWebhookSink({ url: config.sinks.webhook.url, secret: config.sinks.webhook.secret }));
  const auditLog = config.workspace.id
    ? new WorkspaceAuditLogQuery({ credential, workspaceId: config.workspace.id, retryBaseDelayMs: retry })
    : undefined;
  const directory = config.graphEnabled
    ? new GraphDirectory({ credential, retryBaseDelayMs: retry })
    : undefined;
  const ledger = table<IncidentRecord>();
  const marks = table<OperationalMark>();
  const pipelineDeps: PipelineDeps = {
    clock,
    keyVault,
    vaults,
    ledger,
    marks,
    inventory,
    sinks,
    auditLog,
    directory,
    policy: {
      mode: config.mode,
      allowList: { objectIds: config.allowedPrincipals, appIds: config.allowedPrincipals },
      vaultDeletion: 'recover',
    },
    excludedVaults: config.excludedVaults,
    budgetMs: config.invocationBudgetMs,
  };
  const pipeline = new Pipeline(pipelineDeps);
  return {
    config,
    clock,
    pipeline,
    pipelineWith: (replace) => new Pipeline({ ...pipelineDeps, ...replace }),
    inventory,
    publisher: new EventGridSignalPublisher({
      endpoint: config.topics.signals,
      credential,
      retryBaseDelayMs: retry,
    }),
    poison: new BlobPoisonStore(
      config.storage.blobEndpoint,
      config.storage.poisonContainer,
      credential,
      retry,
    ),
    sinks,
    auditLog,
    keyVault,
    vaults,
    ledger,
    marks,
    // Loaded on the posture timer's first run: its ARM packages stay out of every cold start.
    postureArm: lazyPort<PostureArm>(() =>
      import('./adapters/posture').then((m) => new m.PostureArmAdapter(credential, retry)),
    ),
    postureLedger: table<ForwardedAlert>(),
    logger: (target, bindings) => createLogger(config.logLevel, target, bindings),
  };
}

let cached: Runtime | undefined;

/** The process's runtime, built on first use from the app settings (every problem reported at once). */
export function getRuntime(): Runtime {
  cached ??= createRuntime(loadConfig());
  return cached;
}
