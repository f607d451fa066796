/**
 * Test harness: starts an in-process emulator and points the Azure SDK's standard variables at it,
 * exactly as the Functions platform would (HTTPS_PROXY, IDENTITY_ENDPOINT, IDENTITY_HEADER). The
 * CA is already trusted: scripts/test.mjs started this process with NODE_EXTRA_CA_CERTS.
 */
import { startEmulator, type Emulator, type EmulatorOptions } from '../server';

export interface Harness {
  emulator: Emulator;
  /** The emulator's diagnostic lines (refused CONNECTs, TLS errors, handler errors), oldest first. */
  diagnostics: string[];
  stop(): Promise<void>;
}

/** Lines that always mean something went wrong (no test provokes them): printed as they happen. */
const ALARMING = /^(TLS error|error serving|audit listener failed)/;

const VARIABLES = [
  'HTTPS_PROXY',
  'IDENTITY_ENDPOINT',
  'IDENTITY_HEADER',
  'MSI_ENDPOINT',
  'MSI_SECRET',
] as const;

export async function startHarness(options: EmulatorOptions = {}): Promise<Harness> {
  if (!process.env.NODE_EXTRA_CA_CERTS) {
    throw new Error('NODE_EXTRA_CA_CERTS is not set: run the tests with `npm test` (scripts/test.mjs)');
  }
  const saved = Object.fromEntries(VARIABLES.map((v) => [v, process.env[v]]));
  const diagnostics: string[] = [];
  const emulator = await startEmulator({
    log: (line) => {
      if (diagnostics.length < 1000) diagnostics.push(line);
      if (ALARMING.test(line)) process.stderr.write(`[emulator] ${line}\n`);
    },
    ...options,
  });
  process.env.HTTPS_PROXY = emulator.proxy;
  process.env.IDENTITY_ENDPOINT = emulator.identityEndpoint;
  process.env.IDENTITY_HEADER = emulator.identityHeader;
  return {
    emulator,
    diagnostics,
    async stop() {
      await emulator.stop();
      for (const v of VARIABLES) {
        if (saved[v] === undefined) delete process.env[v];
        else process.env[v] = saved[v];
      }
    },
  };
}
