/**
 * The benchmark's emulated Azure, in a process of its own (started by test/bench/run.ts): the whole
 * kvguard environment of test/emulator/kvguard-env.ts (emulator + Azurite) and an attacker service
 * principal that deletes keys. Running it apart keeps the emulator's CPU and memory out of kvguard's
 * figures (peak RSS, throughput): the benchmark process holds kvguard and the driver only.
 *
 * When ready it prints one JSON line on stdout (`BenchEnvReady`); SIGTERM stops it.
 */
import { startKvguardEnv } from '../emulator/kvguard-env';

export interface BenchEnvReady {
  settings: Record<string, string>;
  admin: string;
  proxy: string;
  identityEndpoint: string;
  identityHeader: string;
  tenantId: string;
  subscriptionId: string;
  identityOid: string;
  attacker: { appId: string; oid: string; secret: string };
}

async function main(): Promise<void> {
  const env = await startKvguardEnv({
    latencyMs: 0,
    completionLagMs: 0,
    settings: { KVGUARD_LOG_LEVEL: 'info' },
  });
  const e = env.h.emulator;
  const secret = 'bench-attacker-secret-0123456789';
  const attacker = e.addPrincipal({
    kind: 'servicePrincipal',
    displayName: 'bench-attacker',
    secret,
    ipAddress: '203.0.113.77',
    roleAssignments: [{ scope: `/subscriptions/${e.subscriptionId}`, roleName: 'Key Vault Crypto Officer' }],
  });
  const ready: BenchEnvReady = {
    settings: env.settings,
    admin: e.admin,
    proxy: e.proxy,
    identityEndpoint: e.identityEndpoint,
    identityHeader: e.identityHeader,
    tenantId: e.tenantId,
    subscriptionId: e.subscriptionId,
    identityOid: env.identity.oid,
    attacker: { appId: attacker.appId!, oid: attacker.oid, secret },
  };
  process.stdout.write(`${JSON.stringify(ready)}\n`);
  const stop = () => void env.stop().then(() => process.exit(0));
  process.once('SIGTERM', stop);
  process.once('SIGINT', stop);
}

if (require.main === module) {
  main().catch((error: unknown) => {
    process.stderr.write(`bench env failed: ${error instanceof Error ? error.stack : String(error)}\n`);
    process.exit(1);
  });
}
