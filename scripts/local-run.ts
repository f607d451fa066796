/**
 * `npm run local`: kvguard on the emulated Azure. Loads the built functions (dist/index.js) into the
 * local Functions host through the stand-in for the worker, wires the emulated Azure to it as Azure
 * would (the vaults' AuditEvent records to auditLogForwarder, the signals topic and the
 * subscription's ARM events to keyDeletionResponder), then runs a scenario: an attacker deletes
 * keys in two vaults. Prints a timeline and the final state, and exits 0 when every key is back.
 * `--serve` keeps everything running instead and prints one JSON ready line.
 * Started by scripts/local.mjs, which sets NODE_EXTRA_CA_CERTS first.
 */
import { resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { ClientSecretCredential } from '@azure/identity';
import { KeyClient } from '@azure/keyvault-keys';
import type { AlertContent } from '../lib/core/model';
import { startFunctionsHost } from '../test/emulator/functions-host';
import { startKvguardEnv } from '../test/emulator/kvguard-env';
import { SUBSCRIPTION_SYSTEM_TOPIC } from '../test/emulator/eventgrid';

const VAULTS = ['kv-payments-weu', 'kv-orders-weu'];
const DELETIONS: Array<[string, string]> = [
  ['kv-payments-weu', 'card-tokenisation'],
  ['kv-payments-weu', 'settlement-signing'],
  ['kv-orders-weu', 'orders-encryption'],
];

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const clock = () => new Date().toISOString().slice(11, 23);

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { serve: { type: 'boolean', default: false } } });
  const env = await startKvguardEnv({ completionLagMs: 150, latencyMs: 5 });
  const e = env.h.emulator;
  // The Functions app reads its settings from the environment, as on Azure.
  Object.assign(process.env, env.settings, { KVGUARD_LOG_LEVEL: 'warn' });
  const functionKey = e.core.randomHex(32);
  const host = await startFunctionsHost({
    entryFile: resolve(__dirname, '..', 'dist', 'index.js'),
    functionKey,
    log: () => undefined,
  });
  const forwarder = host.functions.find((f) => f.name.startsWith('auditLogForwarder-'))!.name;
  // Diagnostic setting → Event Hub → auditLogForwarder.
  e.onAudit((records) => void host.deliverEventHubBatch(forwarder, [JSON.stringify({ records })]));
  // Event subscriptions, as infra/eventgrid-subscriptions.json creates them.
  await e.eventGrid.subscribe({
    topicName: 'kvguard-signals',
    name: 'to-responder',
    endpointUrl: host.eventGridUrl('keyDeletionResponder'),
  });
  await e.eventGrid.subscribe({
    topicName: SUBSCRIPTION_SYSTEM_TOPIC,
    name: 'vault-events',
    endpointUrl: host.eventGridUrl('keyDeletionResponder'),
    includedEventTypes: [
      'Microsoft.Resources.ResourceDeleteSuccess',
      'Microsoft.Resources.ResourceWriteSuccess',
    ],
  });
  for (const name of VAULTS) {
    e.addVault({
      name,
      resourceGroup: 'rg-shop',
      location: 'westeurope',
      permissionModel: 'rbac',
      retentionDays: 7,
    });
  }
  const attacker = e.addPrincipal({
    kind: 'servicePrincipal',
    displayName: 'mallory-automation',
    secret: 'attacker-secret',
    ipAddress: '203.0.113.66',
    roleAssignments: [{ scope: `/subscriptions/${e.subscriptionId}`, roleName: 'Key Vault Crypto Officer' }],
  });

  if (values.serve) {
    process.stdout.write(
      `${JSON.stringify({
        proxy: e.proxy,
        caCert: e.caCert,
        identityEndpoint: e.identityEndpoint,
        identityHeader: e.identityHeader,
        admin: e.admin,
        tenantId: e.tenantId,
        subscriptionId: e.subscriptionId,
        functions: host.url,
        functionKey,
      })}\n`,
    );
    const stop = () => void Promise.all([host.stop(), env.stop()]).then(() => process.exit(0));
    process.once('SIGINT', stop);
    process.once('SIGTERM', stop);
    return;
  }

  console.log(
    `kvguard on the emulated Azure: ${host.functions.map((f) => `${f.name} (${f.triggerType})`).join(', ')}`,
  );
  console.log(
    `vaults ${VAULTS.join(', ')}; attacker ${attacker.displayName} (app ${attacker.appId}) from 203.0.113.66\n`,
  );
  const credential = new ClientSecretCredential(e.tenantId, attacker.appId!, 'attacker-secret');
  for (const [vault, key] of DELETIONS) {
    const client = new KeyClient(`https://${vault}.vault.azure.net`, credential);
    await client.createKey(key, 'RSA');
  }
  for (const [vault, key] of DELETIONS) {
    const client = new KeyClient(`https://${vault}.vault.azure.net`, credential);
    await (await client.beginDeleteKey(key, { intervalInMs: 20 })).pollUntilDone();
    console.log(`${clock()}  attacker deleted ${vault}/${key}`);
  }

  const deadline = Date.now() + 30_000;
  const allBack = () => DELETIONS.every(([v, k]) => e.core.vaults.get(v)?.keys.has(k));
  const alerts = () => e.eventGrid.events('kvguard-alerts');
  while ((!allBack() || alerts().length < DELETIONS.length) && Date.now() < deadline) await sleep(100);
  await e.eventGrid.whenIdle();

  console.log('\nTimeline (alerts as the kvguard-alerts topic received them):');
  for (const stored of alerts()) {
    const payload = (stored.event as { data: { details: AlertContent; title: string; severity: string } })
      .data;
    const d = payload.details;
    console.log(
      `${String(d.what.signalTime ?? '').slice(11, 23)}  signal   ${d.what.operationName} ${d.what.summary}`,
    );
    console.log(`              caller   ${d.who.summary}`);
    console.log(`              decision ${d.decision.code}: ${d.decision.reason}`);
    for (const a of d.actions) console.log(`              action   ${a.summary}`);
    console.log(`              alert    [${payload.severity}] ${payload.title}\n`);
  }
  console.log('Final state:');
  for (const name of VAULTS) {
    const v = e.core.vaults.get(name)!;
    console.log(
      `  ${name}: keys [${[...v.keys.keys()].join(', ')}], deleted [${[...v.deletedKeys.keys()].join(', ')}], purge protection ${v.enablePurgeProtection ? 'on' : 'off'}`,
    );
  }
  const failures = host.invocations.filter((i) => !i.ok);
  const ok =
    allBack() &&
    VAULTS.every((v) => e.core.vaults.get(v)!.enablePurgeProtection) &&
    alerts().length >= DELETIONS.length;
  console.log(
    `\n${ok ? 'OK' : 'FAILED'}: ${DELETIONS.length} keys deleted, ${DELETIONS.filter(([v, k]) => e.core.vaults.get(v)?.keys.has(k)).length} recovered, ${alerts().length} alerts, ${failures.length} failed invocations`,
  );
  for (const f of failures) console.log(`  failed invocation: ${f.errorMessage ?? 'unknown error'}`);
  await host.stop();
  await env.stop();
  process.exit(ok ? 0 : 1);
}

main().catch((error: unknown) => {
  console.error(`local run failed: ${error instanceof Error ? error.stack : String(error)}`);
  process.exit(1);
});
