/**
 * The ledger (Azure Table) and the poison container (Blob) with the real @azure/data-tables and
 * @azure/storage-blob clients against Azurite over HTTPS with OAuth, authenticated by the
 * emulator's managed identity exactly as in Azure.
 */
import { ManagedIdentityCredential } from '@azure/identity';
import { BlobServiceClient } from '@azure/storage-blob';
import { randomBytes } from 'node:crypto';
import { TableClient } from '@azure/data-tables';
import {
  BlobPoisonStore,
  MAX_STRING_CHARS,
  TableLedger,
  ValueTooLargeError,
} from '../../lib/adapters/storage';
import { startAzurite, type Azurite } from '../emulator/azurite';
import { startHarness, type Harness } from '../emulator/testing/harness';

let h: Harness;
let azurite: Azurite;
let credential: ManagedIdentityCredential;

beforeAll(async () => {
  [h, azurite] = await Promise.all([startHarness(), startAzurite()]);
  const mi = h.emulator.addPrincipal({
    kind: 'managedIdentity',
    assignment: 'user',
    displayName: 'id-kvguard',
  });
  credential = new ManagedIdentityCredential({ clientId: mi.appId! });
});
afterAll(async () => {
  await Promise.all([h.stop(), azurite.stop()]);
});

interface Incident {
  state: string;
  n: number;
}

describe('TableLedger', () => {
  it('lets exactly one of many concurrent claims win', async () => {
    const ledger = TableLedger.create<Incident>(azurite.tableEndpoint, 'ledgerclaims', credential, 10);
    const results = await Promise.all(
      Array.from({ length: 10 }, (_, n) => ledger.claim('kv-a', 'key.k1.1700000000', { state: 'open', n })),
    );
    const winners = results.filter((r) => r.claimed);
    expect(winners).toHaveLength(1);
    for (const r of results) expect(r.entry.value).toEqual(winners[0]!.entry.value);
  });

  it('guards updates with the ETag', async () => {
    const ledger = TableLedger.create<Incident>(azurite.tableEndpoint, 'ledgeretag', credential, 10);
    const { entry } = await ledger.claim('kv-a', 'i1', { state: 'open', n: 0 });
    const first = await ledger.update(entry, { state: 'acting', n: 1 });
    expect(first.ok).toBe(true);
    const stale = await ledger.update(entry, { state: 'closed', n: 2 });
    expect(stale).toEqual({ ok: false, conflict: true });
    expect((await ledger.get('kv-a', 'i1'))?.value).toEqual({ state: 'acting', n: 1 });
  });

  it('lists by prefix within a partition and refuses keys Azure Tables cannot store', async () => {
    const ledger = TableLedger.create<Incident>(azurite.tableEndpoint, 'ledgerlist', credential, 10);
    await ledger.claim('kv-a', 'key.k1.1', { state: 'open', n: 1 });
    await ledger.claim('kv-a', 'key.k1.2', { state: 'open', n: 2 });
    await ledger.claim('kv-a', 'key.k2.1', { state: 'open', n: 3 });
    await ledger.claim('kv-b', 'key.k1.9', { state: 'open', n: 4 });
    const listed = await ledger.list('kv-a', 'key.k1.');
    expect(listed.map((e) => e.id).sort()).toEqual(['key.k1.1', 'key.k1.2']);
    await expect(ledger.claim('kv-a', 'a/b', { state: 'x', n: 0 })).rejects.toThrow('not a valid table key');
    expect(await ledger.get('kv-a', 'missing')).toBeUndefined();
  });
});

describe('TableLedger with values larger than one property', () => {
  // Random hex compresses to about half: 300 KB of it needs several 64 KiB parts.
  const big = {
    vaults: Array.from({ length: 300 }, (_, i) => ({
      name: `kv-${i}`,
      blob: randomBytes(600).toString('hex'),
    })),
  };

  it('stores, reads, lists and replaces a value of several hundred KB, and drops its parts again', async () => {
    const ledger = TableLedger.create<unknown>(azurite.tableEndpoint, 'ledgerbig', credential, 10);
    expect(JSON.stringify(big).length).toBeGreaterThan(10 * MAX_STRING_CHARS);
    const { claimed, entry } = await ledger.claim('inventory', 'snapshot', big);
    expect(claimed).toBe(true);
    expect((await ledger.get('inventory', 'snapshot'))?.value).toEqual(big);
    expect((await ledger.list('inventory', 'snap')).map((e) => e.value)).toEqual([big]);

    const raw = new TableClient(azurite.tableEndpoint, 'ledgerbig', credential);
    const stored = await raw.getEntity<Record<string, unknown>>('inventory', 'snapshot');
    expect(stored.parts).toBeGreaterThan(1);
    expect(stored.value).toBeUndefined();

    const moved = await ledger.update(entry, { vaults: [] });
    expect(moved.ok).toBe(true);
    expect((await ledger.get('inventory', 'snapshot'))?.value).toEqual({ vaults: [] });
    const after = await raw.getEntity<Record<string, unknown>>('inventory', 'snapshot');
    expect(Object.keys(after).filter((k) => /^z\d+$/.test(k) || k === 'parts')).toEqual([]);
  });

  it('refuses a value too large for an entity even compressed, and leaves the stored one as it was', async () => {
    const ledger = TableLedger.create<unknown>(azurite.tableEndpoint, 'ledgerhuge', credential, 10);
    const { entry } = await ledger.claim('p', 'id', { n: 1 });
    const huge = { blob: randomBytes(800_000).toString('base64') };
    await expect(ledger.update(entry, huge)).rejects.toBeInstanceOf(ValueTooLargeError);
    await expect(ledger.claim('p', 'other', huge)).rejects.toThrow(/too large for one table entity/);
    expect((await ledger.get('p', 'id'))?.value).toEqual({ n: 1 });
    expect(await ledger.get('p', 'other')).toBeUndefined();
  });
});

describe('BlobPoisonStore', () => {
  it('writes records to the poison container', async () => {
    const store = new BlobPoisonStore(azurite.blobEndpoint, 'kvguard-poison', credential, 10);
    await store.write('2026/11/27/batch-1.json', {
      records: [{ operationName: 'KeyDelete' }],
      reason: 'publish failed',
    });
    const container = new BlobServiceClient(azurite.blobEndpoint, credential).getContainerClient(
      'kvguard-poison',
    );
    const body = await container.getBlockBlobClient('2026/11/27/batch-1.json').downloadToBuffer();
    expect(JSON.parse(body.toString())).toEqual({
      records: [{ operationName: 'KeyDelete' }],
      reason: 'publish failed',
    });
  });
});
