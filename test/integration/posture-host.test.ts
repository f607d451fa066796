/**
 * reconcilePosture as deployed: the built package (dist/, `npm run build` first, as CI does) on the
 * local Functions host, run on demand through the admin endpoint `POST /admin/functions/reconcilePosture`
 * (what `npm run local -- --serve` offers), against the emulated Azure. Report mode: the request log
 * shows the reads and no write, and the drift report reaches the kvguard-alerts topic.
 */
import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { runInThisContext } from 'node:vm';
import { seedVirtualMachine } from '../emulator/arm-resources';
import { startFunctionsHost, type FunctionsHost } from '../emulator/functions-host';
import { KVGUARD_ACTIONS, startKvguardEnv, type KvguardEnv } from '../emulator/kvguard-env';

const DIST = resolve(__dirname, '../../dist');
/** The app runs in the main realm, whose `process.env` is Node's (jest gives the test a copy). */
const appEnv = (runInThisContext('process') as NodeJS.Process).env;

let env: KvguardEnv;
let host: FunctionsHost;
const saved: Record<string, string | undefined> = {};

beforeAll(async () => {
  if (!existsSync(join(DIST, 'index.js')))
    throw new Error('dist/index.js is missing: run `npm run build` first');
  env = await startKvguardEnv();
  const e = env.h.emulator;
  e.core.roleAssignments.push({
    id: 'ra-posture',
    principalId: env.identity.oid,
    scope: `/subscriptions/${e.subscriptionId}`,
    actions: [
      ...KVGUARD_ACTIONS,
      'Microsoft.Security/pricings/read',
      'Microsoft.Compute/virtualMachines/read',
      'Microsoft.Security/locations/jitNetworkAccessPolicies/read',
      'Microsoft.Authorization/policyAssignments/read',
    ],
  });
  e.addVault({ name: 'kv-host-weu', resourceGroup: 'rg-app', location: 'westeurope' });
  seedVirtualMachine(e.core, { name: 'vm-host', resourceGroup: 'rg-app', tags: { 'kvguard-jit': 'on' } });
  const settings: Record<string, string> = {
    ...env.settings,
    HTTPS_PROXY: process.env.HTTPS_PROXY!,
    IDENTITY_ENDPOINT: process.env.IDENTITY_ENDPOINT!,
    IDENTITY_HEADER: process.env.IDENTITY_HEADER!,
    KVGUARD_LOG_LEVEL: 'warn',
    KVGUARD_POSTURE: JSON.stringify({
      mode: 'report',
      defaults: {
        defenderPlans: { VirtualMachines: { tier: 'Standard', subPlan: 'P2' } },
        jit: {
          selector: { all: true },
          ports: [
            { number: 22, allowedSourceAddressPrefixes: ['10.0.0.0/8'], maxRequestAccessDuration: 'PT3H' },
          ],
        },
        purgeProtection: true,
        policy: { effect: 'Audit' },
      },
    }),
  };
  for (const [k, v] of Object.entries(settings)) {
    saved[k] = appEnv[k];
    appEnv[k] = v;
  }
  host = await startFunctionsHost({
    entryFile: join(DIST, 'index.js'),
    functionKey: 'local-master-key',
    log: () => undefined,
  });
});

afterAll(async () => {
  await host?.stop();
  await env?.stop();
  for (const [k, v] of Object.entries(saved)) {
    if (v === undefined) delete appEnv[k];
    else appEnv[k] = v;
  }
});

test('the package registers reconcilePosture as an hourly timer', () => {
  const f = host.functions.find((x) => x.name === 'reconcilePosture');
  expect(f?.triggerType).toBe('timerTrigger');
  expect(f?.trigger.schedule).toBe('0 0 * * * *');
});

test('POST /admin/functions/reconcilePosture runs it on demand: reads, writes nothing, and sends one drift report', async () => {
  const e = env.h.emulator;
  const since = e.requests.length;
  const unauthorised = await fetch(`${host.url}/admin/functions/reconcilePosture`, {
    method: 'POST',
    body: '{}',
  });
  expect(unauthorised.status).toBe(401);
  const res = await fetch(`${host.url}/admin/functions/reconcilePosture`, {
    method: 'POST',
    headers: { 'x-functions-key': 'local-master-key', 'content-type': 'application/json' },
    body: JSON.stringify({ input: '' }),
  });
  expect(res.status).toBe(202);
  await host.idle();
  await e.eventGrid.whenIdle();
  const arm = e.requests.slice(since).filter((r) => r.host === 'management.azure.com');
  expect(arm.length).toBeGreaterThanOrEqual(4);
  expect(arm.filter((r) => r.method !== 'GET')).toEqual([]);
  expect(arm.some((r) => r.path.endsWith('/providers/Microsoft.Security/pricings'))).toBe(true);
  expect(arm.some((r) => r.path.endsWith('/providers/Microsoft.Compute/virtualMachines'))).toBe(true);
  const drift = e.eventGrid
    .events('kvguard-alerts')
    .filter((ev) => JSON.stringify(ev).includes('Kvguard.Alert.Drift.v1'));
  expect(drift).toHaveLength(1);
  expect(JSON.stringify(drift[0])).toContain('kv-host-weu');
});
