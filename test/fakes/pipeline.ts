/**
 * `testPipeline()`: a `Pipeline` and its `Inventory` wired to the fakes, with the estate the fixtures
 * in test/fixtures/auditevent name (subscription 8a7f2c1e-…, vault contoso-payments in rg-payments,
 * keys cmk-orders, cmk-invoices and rotation-temp-01) plus a second vault, contoso-orders, that
 * already has purge protection. Policy by default: enforce, empty allow-list, recover deleted vaults.
 * Logs go through lib/logging.ts into an in-memory array of parsed JSON lines.
 */
import type { AllowList, ResponsePolicy } from '../../lib/core/decide';
import type { Trigger } from '../../lib/core/model';
import { Inventory, type InventorySnapshot } from '../../lib/inventory';
import { createLogger, type Logger } from '../../lib/logging';
import {
  Pipeline,
  type IncidentRecord,
  type PipelineDeps,
  type RunOptions,
  type TriggerOutcome,
} from '../../lib/pipeline';
import type { OperationalMark } from '../../lib/operational';
import type { AlertMessage } from '../../lib/ports';
import { FakeAuditLog } from './auditlog';
import { FakeClock } from './clock';
import { FakeDirectory } from './directory';
import { FakeKeyVault, type FakeKeyVaultOptions } from './keyvault';
import { MemoryLedger } from './ledger';
import { RecordingSink } from './sinks';
import { DEFAULT_SUBSCRIPTION, FakeVaultManagement, type FakeVaultSpec } from './vaults';

export const SUBSCRIPTION = DEFAULT_SUBSCRIPTION;
export const PAYMENTS = 'contoso-payments';
export const PAYMENTS_HOST = 'contoso-payments.vault.azure.net';
export const ORDERS = 'contoso-orders';
export const ORDERS_HOST = 'contoso-orders.vault.azure.net';

/** One structured log line kvguard wrote, parsed: its level and its fields. */
export interface LogLine {
  level: 'trace' | 'debug' | 'info' | 'warn' | 'error';
  entry: Record<string, unknown>;
}

/** A debug-level logger whose lines are kept, parsed, in `logs`. */
export function parsedLogs(): { logs: LogLine[]; log: ReturnType<typeof createLogger> } {
  const logs: LogLine[] = [];
  const push = (level: LogLine['level']) => (line: string) =>
    logs.push({ level, entry: JSON.parse(line) as Record<string, unknown> });
  const log = createLogger('debug', {
    trace: push('trace'),
    debug: push('debug'),
    info: push('info'),
    warn: push('warn'),
    error: push('error'),
  });
  return { logs, log };
}

export interface TestPipelineOptions {
  mode?: ResponsePolicy['mode'];
  allowList?: Partial<AllowList>;
  vaultDeletion?: ResponsePolicy['vaultDeletion'];
  excludedVaults?: string[];
  budgetMs?: number;
  /** Virtual start time (default 2026-03-14T09:27:20Z, seconds after the fixtures' key deletions). */
  start?: Date | string;
  /** Sink names (default: a Teams sink and the alerts topic). */
  sinks?: string[];
  /** Wire a Log Analytics workspace (default true) and Microsoft Graph (default true). */
  auditLog?: boolean;
  directory?: boolean;
  keyVault?: Omit<FakeKeyVaultOptions, 'clock'>;
  /** Virtual latency of every ledger and ARM call. */
  latencyMs?: number;
  /** The vaults of the estate (default: contoso-payments and contoso-orders). */
  vaults?: FakeVaultSpec[];
}

export interface TestPipeline {
  clock: FakeClock;
  keyVault: FakeKeyVault;
  vaults: FakeVaultManagement;
  ledger: MemoryLedger<IncidentRecord>;
  /** The operational alerts' once-a-day marks (lib/operational.ts); a sweep built on `tp` shares them. */
  marks: MemoryLedger<OperationalMark>;
  inventoryStore: MemoryLedger<InventorySnapshot>;
  sinks: RecordingSink[];
  auditLog: FakeAuditLog;
  directory: FakeDirectory;
  policy: ResponsePolicy;
  logs: LogLine[];
  log: Logger;
  /** The current instance (replaced by `restart`). */
  pipeline: Pipeline;
  inventory: Inventory;
  deps: PipelineDeps;
  sink(name: string): RecordingSink;
  /** Runs one trigger as one invocation (a fresh invocation id unless given). */
  run(trigger: Trigger, options?: Partial<Omit<RunOptions, 'log'>>): Promise<TriggerOutcome[]>;
  /** Like `run`, for a trigger that yields one outcome. */
  runOne(trigger: Trigger, options?: Partial<Omit<RunOptions, 'log'>>): Promise<TriggerOutcome>;
  /** A new process: a new Pipeline and Inventory over the same fakes (no in-memory caches survive). */
  restart(): void;
  /** Every alert every sink received. */
  received(): AlertMessage[];
  /** The incident records in the ledger. */
  incidents(): IncidentRecord[];
}

const DEFAULT_VAULTS: FakeVaultSpec[] = [
  {
    name: PAYMENTS,
    resourceGroup: 'rg-payments',
    enablePurgeProtection: false,
    softDeleteRetentionInDays: 90,
  },
  { name: ORDERS, resourceGroup: 'rg-orders', enablePurgeProtection: true, softDeleteRetentionInDays: 90 },
];

export function testPipeline(options: TestPipelineOptions = {}): TestPipeline {
  const clock = new FakeClock(options.start ?? '2026-03-14T09:27:20.000Z');
  const keyVault = new FakeKeyVault({ clock, ...options.keyVault });
  const vaults = new FakeVaultManagement({ clock, latencyMs: options.latencyMs });
  const ledger = new MemoryLedger<IncidentRecord>({ clock, latencyMs: options.latencyMs });
  const marks = new MemoryLedger<OperationalMark>({ clock, latencyMs: options.latencyMs });
  const inventoryStore = new MemoryLedger<InventorySnapshot>({ clock });
  const sinks = (options.sinks ?? ['teams', 'alerts-topic']).map((name) => new RecordingSink(name));
  const auditLog = new FakeAuditLog();
  const directory = new FakeDirectory();
  const { logs, log } = parsedLogs();

  for (const spec of options.vaults ?? DEFAULT_VAULTS) {
    const facts = vaults.addVault(spec);
    keyVault.addVault(new URL(facts.vaultUri).hostname, { retentionDays: facts.softDeleteRetentionInDays });
  }
  if (keyVault.keyState(PAYMENTS_HOST, 'cmk-orders') === 'missing' && vaults.vault(PAYMENTS)) {
    keyVault
      .createKey(PAYMENTS_HOST, 'cmk-orders')
      .createKey(PAYMENTS_HOST, 'cmk-invoices')
      .createKey(PAYMENTS_HOST, 'rotation-temp-01');
  }
  if (vaults.vault(ORDERS)) keyVault.createKey(ORDERS_HOST, 'cmk-ledger');

  const policy: ResponsePolicy = {
    mode: options.mode ?? 'enforce',
    allowList: { objectIds: options.allowList?.objectIds ?? [], appIds: options.allowList?.appIds ?? [] },
    vaultDeletion: options.vaultDeletion ?? 'recover',
  };

  let invocations = 0;
  const tp: TestPipeline = {
    clock,
    keyVault,
    vaults,
    ledger,
    marks,
    inventoryStore,
    sinks,
    auditLog,
    directory,
    policy,
    logs,
    log,
    pipeline: undefined as unknown as Pipeline,
    inventory: undefined as unknown as Inventory,
    deps: undefined as unknown as PipelineDeps,
    sink(name) {
      const found = sinks.find((s) => s.name === name);
      if (!found) throw new Error(`no sink ${name}`);
      return found;
    },
    run(trigger, runOptions = {}) {
      invocations++;
      return tp.pipeline.run(trigger, { invocationId: `invocation-${invocations}`, ...runOptions, log });
    },
    async runOne(trigger, runOptions = {}) {
      const outcomes = await tp.run(trigger, runOptions);
      if (outcomes.length !== 1) throw new Error(`expected one outcome, got ${outcomes.length}`);
      return outcomes[0]!;
    },
    restart() {
      tp.inventory = new Inventory({
        vaults,
        store: inventoryStore,
        clock,
        subscriptions: [SUBSCRIPTION],
        log,
      });
      tp.deps = {
        clock,
        keyVault,
        vaults,
        ledger,
        marks,
        inventory: tp.inventory,
        sinks,
        ...(options.auditLog === false ? {} : { auditLog }),
        ...(options.directory === false ? {} : { directory }),
        policy,
        excludedVaults: options.excludedVaults ?? [],
        budgetMs: options.budgetMs ?? 25_000,
      };
      tp.pipeline = new Pipeline(tp.deps);
    },
    received() {
      return sinks.flatMap((s) => s.received);
    },
    incidents() {
      return ledger.entries().map((e) => e.value);
    },
  };
  tp.restart();
  return tp;
}
