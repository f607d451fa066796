/**
 * `npm run emulator`: runs the emulated Azure in the foreground. When ready it prints exactly one
 * JSON line on stdout (proxy, caCert, identityEndpoint, identityHeader, admin, tenantId,
 * subscriptionId); diagnostics go to stderr. SIGTERM or SIGINT stops it cleanly.
 */
import { parseArgs } from 'node:util';
import { startEmulator } from './server';

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      'latency-ms': { type: 'string', default: '0' },
      'completion-lag-ms': { type: 'string', default: '0' },
    },
  });
  const latencyMs = Number(values['latency-ms']);
  const completionLagMs = Number(values['completion-lag-ms']);
  if (
    !Number.isFinite(latencyMs) ||
    latencyMs < 0 ||
    !Number.isFinite(completionLagMs) ||
    completionLagMs < 0
  ) {
    throw new Error('--latency-ms and --completion-lag-ms take a number of milliseconds >= 0');
  }
  const emulator = await startEmulator({ latencyMs, completionLagMs });
  const ready = {
    proxy: emulator.proxy,
    caCert: emulator.caCert,
    identityEndpoint: emulator.identityEndpoint,
    identityHeader: emulator.identityHeader,
    admin: emulator.admin,
    tenantId: emulator.tenantId,
    subscriptionId: emulator.subscriptionId,
  };
  process.stdout.write(`${JSON.stringify(ready)}\n`);
  const stop = () => {
    void emulator.stop().then(() => process.exit(0));
  };
  process.once('SIGTERM', stop);
  process.once('SIGINT', stop);
}

main().catch((error: unknown) => {
  process.stderr.write(
    `emulator failed to start: ${error instanceof Error ? error.message : String(error)}\n`,
  );
  process.exit(1);
});
