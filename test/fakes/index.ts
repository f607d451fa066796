/** In-memory fakes behind lib/ports.ts for unit tests, and the `testPipeline` builder. */
export { FakeAuditLog, type AuditQuery } from './auditlog';
export { FakeClock } from './clock';
export { FakeDirectory } from './directory';
export { failures, FaultPlan } from './failures';
export {
  FakeKeyVault,
  type FakeKeyState,
  type FakeKeyVaultOptions,
  type KeyVaultCall,
  type KeyVaultOp,
} from './keyvault';
export { MemoryLedger, type LedgerOp, type LedgerWrite } from './ledger';
export {
  ORDERS,
  ORDERS_HOST,
  PAYMENTS,
  PAYMENTS_HOST,
  SUBSCRIPTION,
  parsedLogs,
  testPipeline,
  type LogLine,
  type TestPipeline,
  type TestPipelineOptions,
} from './pipeline';
export { RecordingSink } from './sinks';
export {
  DEFAULT_SUBSCRIPTION,
  FakeVaultManagement,
  vaultResourceId,
  type FakeVaultSpec,
  type VaultCall,
  type VaultOp,
} from './vaults';
