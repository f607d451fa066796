/**
 * The emulated ARM (Microsoft.KeyVault) and Event Grid through the real SDK clients, reached the way
 * production reaches Azure (design §5): real host names, HTTPS through the emulator's CONNECT proxy,
 * the local CA trusted through NODE_EXTRA_CA_CERTS, ManagedIdentityCredential for tokens.
 * KeyVaultManagementClient is @azure/arm-keyvault 5.0.0 (api-version 2026-02-01);
 * EventGridPublisherClient is @azure/eventgrid 5.12.0 (only a 200 counts as sent).
 */
import http, { type IncomingHttpHeaders } from 'node:http';
import type { AddressInfo } from 'node:net';
import { KeyVaultManagementClient } from '@azure/arm-keyvault';
import { isRestError, type RestError } from '@azure/core-rest-pipeline';
import {
  AzureKeyCredential,
  AzureSASCredential,
  EventGridPublisherClient,
  generateSharedAccessSignature,
} from '@azure/eventgrid';
import { ManagedIdentityCredential } from '@azure/identity';
import { SUBSCRIPTION_SYSTEM_TOPIC } from '../emulator/eventgrid';
import { startHarness, type Harness } from '../emulator/testing/harness';
import type { Principal } from '../emulator/types';

// eslint-disable-next-line @typescript-eslint/no-explicit-any -- JSON bodies, read field by field
type Body = Record<string, any>;

let h: Harness;
let mi: Principal;
let credential: ManagedIdentityCredential;
let client: KeyVaultManagementClient;

const RG = 'rg-app';

interface Received {
  headers: IncomingHttpHeaders;
  body: string;
}

/** A local webhook that passes Event Grid's handshake and records every notification. */
async function startWebhook(): Promise<{ url: string; received: Received[]; close(): Promise<void> }> {
  const received: Received[] = [];
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks).toString('utf8');
      if (req.headers['aeg-event-type'] === 'SubscriptionValidation') {
        const [event] = JSON.parse(body) as Body[];
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ validationResponse: event!.data.validationCode }));
        return;
      }
      received.push({ headers: req.headers, body });
      res.writeHead(200);
      res.end();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/api/events`,
    received,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

async function restError(promise: Promise<unknown>): Promise<RestError> {
  const error = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  if (!isRestError(error)) throw new Error(`expected a RestError, got ${String(error)}`);
  return error;
}

function addVault(name: string, purgeProtection = false) {
  return h.emulator.addVault({
    name,
    resourceGroup: RG,
    location: 'westeurope',
    permissionModel: 'rbac',
    purgeProtection,
  });
}

beforeAll(async () => {
  h = await startHarness();
});
afterAll(async () => h.stop());

beforeEach(() => {
  h.emulator.reset();
  mi = h.emulator.addPrincipal({
    kind: 'managedIdentity',
    displayName: 'id-kvguard',
    assignment: 'user',
    roleAssignments: [
      { scope: `/subscriptions/${h.emulator.subscriptionId}`, roleName: 'Key Vault Contributor' },
    ],
  });
  credential = new ManagedIdentityCredential({ clientId: mi.appId! });
  client = new KeyVaultManagementClient(credential, h.emulator.subscriptionId);
});

describe('KeyVaultManagementClient (@azure/arm-keyvault 5.0.0)', () => {
  it('gets a vault and pages through the subscription’s vaults', async () => {
    for (const n of ['kv-a', 'kv-b', 'kv-c']) addVault(n);
    const vault = await client.vaults.get(RG, 'kv-b');
    expect(vault.name).toBe('kv-b');
    expect(vault.properties.vaultUri).toBe('https://kv-b.vault.azure.net/');
    const names: string[] = [];
    for await (const v of client.vaults.listBySubscription({ top: 2 })) names.push(v.name!);
    expect(names).toEqual(['kv-a', 'kv-b', 'kv-c']);
    const armCalls = h.emulator.requests.filter((r) => r.host === 'management.azure.com');
    expect(armCalls.map((r) => [r.method, r.status, r.callerOid])).toEqual([
      ['GET', 200, mi.oid],
      ['GET', 200, mi.oid],
      ['GET', 200, mi.oid],
    ]);
    expect(armCalls[1]!.query).toContain('api-version=2026-02-01');
  });

  it('turns purge protection on, and refuses to turn it off with the service message', async () => {
    addVault('kv-1');
    const updated = await client.vaults.update(RG, 'kv-1', { properties: { enablePurgeProtection: true } });
    expect(updated.properties.enablePurgeProtection).toBe(true);
    const error = await restError(
      client.vaults.update(RG, 'kv-1', { properties: { enablePurgeProtection: false } }),
    );
    expect(error.statusCode).toBe(400);
    expect(error.code).toBe('BadRequest');
    expect(error.message).toBe(
      'The property "enablePurgeProtection" cannot be set to false. Enabling the purge protection for a vault is an irreversible action.',
    );
    expect((await client.vaults.get(RG, 'kv-1')).properties.enablePurgeProtection).toBe(true);
  });

  it('deletes a vault, finds it among the deleted vaults, and recovers it with its keys', async () => {
    const vault = addVault('kv-del');
    vault.keys.set('k1', {
      name: 'k1',
      versions: [
        { version: 'b'.repeat(32), kty: 'RSA', keyOps: ['sign'], enabled: true, created: 1, updated: 1 },
      ],
      tags: {},
      visibleAt: 0,
    });
    await client.vaults.delete(RG, 'kv-del');
    const deleted: string[] = [];
    for await (const d of client.vaults.listDeleted()) deleted.push(d.name!);
    expect(deleted).toEqual(['kv-del']);
    const info = await client.vaults.getDeleted('kv-del', 'westeurope');
    expect(info.properties?.vaultId).toBe(
      `/subscriptions/${h.emulator.subscriptionId}/resourceGroups/${RG}/providers/Microsoft.KeyVault/vaults/kv-del`,
    );
    expect(info.properties?.deletionDate).toBeInstanceOf(Date);
    expect((await restError(client.vaults.get(RG, 'kv-del'))).statusCode).toBe(404);

    const recovered = await client.vaults.createOrUpdate(RG, 'kv-del', {
      location: 'westeurope',
      properties: {
        tenantId: h.emulator.tenantId,
        sku: { family: 'A', name: 'standard' },
        createMode: 'recover',
      },
    });
    expect(recovered.properties.provisioningState).toBe('Succeeded');
    expect([...vault.keys.keys()]).toEqual(['k1']);
    expect((await client.vaults.get(RG, 'kv-del')).name).toBe('kv-del');
  });

  it('refuses a caller without a role with 403 AuthorizationFailed', async () => {
    addVault('kv-1');
    const stranger = h.emulator.addPrincipal({
      kind: 'managedIdentity',
      displayName: 'id-other',
      assignment: 'user',
    });
    const other = new KeyVaultManagementClient(
      new ManagedIdentityCredential({ clientId: stranger.appId! }),
      h.emulator.subscriptionId,
    );
    const error = await restError(other.vaults.get(RG, 'kv-1'));
    expect(error.statusCode).toBe(403);
    expect(error.code).toBe('AuthorizationFailed');
  });

  it('publishes the vault change to the subscription’s Event Grid topic', async () => {
    addVault('kv-1');
    const hook = await startWebhook();
    try {
      await h.emulator.eventGrid.subscribe({
        topicName: SUBSCRIPTION_SYSTEM_TOPIC,
        name: 'vault-changes',
        endpointUrl: hook.url,
        includedEventTypes: ['Microsoft.Resources.ResourceWriteSuccess'],
      });
      await client.vaults.update(RG, 'kv-1', { properties: { enablePurgeProtection: true } });
      await h.emulator.eventGrid.whenIdle();
      expect(hook.received).toHaveLength(1);
      const [event] = JSON.parse(hook.received[0]!.body) as Body[];
      expect(event).toMatchObject({
        eventType: 'Microsoft.Resources.ResourceWriteSuccess',
        topic: `/subscriptions/${h.emulator.subscriptionId}`,
        data: {
          operationName: 'Microsoft.KeyVault/vaults/write',
          authorization: { evidence: { role: 'Key Vault Contributor' } },
          httpRequest: { method: 'PATCH' },
        },
      });
      expect(event!.data.claims['http://schemas.microsoft.com/identity/claims/objectidentifier']).toBe(
        mi.oid,
      );
    } finally {
      await hook.close();
    }
  });
});

describe('EventGridPublisherClient (@azure/eventgrid 5.12.0)', () => {
  it('sends Event Grid events with the topic key; Event Grid stamps them and delivers them', async () => {
    const topic = h.emulator.eventGrid.createTopic({ name: 'kvguard-signals', region: 'westeurope' });
    const hook = await startWebhook();
    try {
      await h.emulator.eventGrid.subscribe({
        topicName: 'kvguard-signals',
        name: 'responder',
        endpointUrl: hook.url,
      });
      const publisher = new EventGridPublisherClient(
        topic.endpoint!,
        'EventGrid',
        new AzureKeyCredential(topic.keys!.key1),
      );
      await publisher.send([
        {
          eventType: 'Kvguard.KeyVault.KeyDeleted.v1',
          subject: '/vaults/kv1/keys/k1',
          dataVersion: '1.0',
          data: { a: 1 },
        },
      ]);
      await h.emulator.eventGrid.whenIdle();
      const [stored] = h.emulator.eventGrid.events('kvguard-signals');
      expect(stored!.event).toMatchObject({
        topic: topic.id,
        metadataVersion: '1',
        subject: '/vaults/kv1/keys/k1',
      });
      expect(hook.received).toHaveLength(1);
      expect(hook.received[0]!.headers['aeg-event-type']).toBe('Notification');
    } finally {
      await hook.close();
    }
  });

  it('sends CloudEvents with a SAS token', async () => {
    const topic = h.emulator.eventGrid.createTopic({
      name: 'kvguard-alerts',
      inputSchema: 'CloudEventSchemaV1_0',
    });
    const sas = await generateSharedAccessSignature(
      topic.endpoint!,
      new AzureKeyCredential(topic.keys!.key2),
      new Date(Date.now() + 600_000),
    );
    const publisher = new EventGridPublisherClient(
      topic.endpoint!,
      'CloudEvent',
      new AzureSASCredential(sas),
    );
    await publisher.send([
      { type: 'Kvguard.Alert.v1', source: '/kvguard', id: 'incident-1/primary', data: { ok: true } },
    ]);
    expect(h.emulator.eventGrid.events('kvguard-alerts').map((e) => e.event.id)).toEqual([
      'incident-1/primary',
    ]);
  });

  it('sends with a managed identity that holds EventGrid Data Sender, and is refused without it', async () => {
    const topic = h.emulator.eventGrid.createTopic({ name: 'kvguard-signals' });
    h.emulator.core.roleAssignments.push({
      id: 'ra-sender',
      principalId: mi.oid,
      scope: topic.id,
      roleName: 'EventGrid Data Sender',
    });
    const events = [{ eventType: 'T', subject: 's', dataVersion: '1', data: {} }];
    await new EventGridPublisherClient(topic.endpoint!, 'EventGrid', credential).send(events);
    const stranger = h.emulator.addPrincipal({
      kind: 'managedIdentity',
      displayName: 'id-x',
      assignment: 'user',
    });
    const refused = await restError(
      new EventGridPublisherClient(
        topic.endpoint!,
        'EventGrid',
        new ManagedIdentityCredential({ clientId: stranger.appId! }),
      ).send(events),
    );
    expect(refused.statusCode).toBe(401);
    expect(h.emulator.eventGrid.events('kvguard-signals')).toHaveLength(1);
  });

  it('throws on a wrong key (401)', async () => {
    const topic = h.emulator.eventGrid.createTopic({ name: 'kvguard-signals' });
    const publisher = new EventGridPublisherClient(
      topic.endpoint!,
      'EventGrid',
      new AzureKeyCredential(Buffer.alloc(32, 1).toString('base64')),
    );
    const error = await restError(
      publisher.send([{ eventType: 'T', subject: 's', dataVersion: '1', data: {} }]),
    );
    expect(error.statusCode).toBe(401);
  });
});
