/**
 * The ledger and the inventory on Azure Table storage, and the poison container on Blob storage,
 * authenticated with the app's TokenCredential (identity-based storage: no shared keys).
 * - claim: a conditional insert; 409 EntityAlreadyExists means someone else claimed first.
 * - update: Replace with the entity's ETag; 412 UpdateConditionNotSatisfied means it moved.
 * Each value is stored as JSON in one string property when it fits (a string property holds 64 KiB of
 * UTF-16: 32K characters); a larger one (the inventory of a big tenant) is gzipped and split across
 * binary properties of 64 KiB each, within the 1 MiB an entity may hold. Limits:
 * https://learn.microsoft.com/azure/storage/tables/scalability-targets and "Understanding the Table
 * service data model" (property types).
 */
import { gunzipSync, gzipSync } from 'node:zlib';
import type { TokenCredential } from '@azure/identity';
import { TableClient } from '@azure/data-tables';
import type { ContainerClient } from '@azure/storage-blob';
import type { ClaimResult, Ledger, LedgerEntry, PoisonStore } from '../ports';
import { clientOptions, statusOf } from './azure';

/**
 * A stored entity: `value` (the JSON, when it fits one string property), or else `parts`, the number
 * of binary properties `z0`…`z<parts-1>` holding the gzipped JSON.
 */
interface Row {
  partitionKey: string;
  rowKey: string;
  etag?: string;
  [property: string]: unknown;
}

/** Characters one string property holds (64 KiB of UTF-16), less a margin. */
export const MAX_STRING_CHARS = 32_000;
/** Bytes one binary property holds. */
export const MAX_PART_BYTES = 64 * 1024;
/**
 * Compressed bytes one entity may carry: 1 MiB is the entity's limit, and on the wire (and in
 * Azurite's check) binary travels as base64, a third larger; this keeps the request under 1 MiB too.
 */
export const MAX_COMPRESSED_BYTES = 700_000;

/** A value too large for one table entity even compressed: refused before any request is sent. */
export class ValueTooLargeError extends Error {
  constructor(readonly compressedBytes: number) {
    super(
      `value too large for one table entity: ${compressedBytes} bytes compressed (at most ${MAX_COMPRESSED_BYTES})`,
    );
    this.name = 'ValueTooLargeError';
  }
}

/** The stored properties of a value (without the keys). */
export function encodeValue(value: unknown): Record<string, unknown> {
  const json = JSON.stringify(value);
  if (json.length <= MAX_STRING_CHARS) return { value: json };
  const zipped = gzipSync(Buffer.from(json, 'utf8'));
  if (zipped.length > MAX_COMPRESSED_BYTES) throw new ValueTooLargeError(zipped.length);
  const props: Record<string, unknown> = {};
  let parts = 0;
  for (let at = 0; at < zipped.length; at += MAX_PART_BYTES, parts++) {
    props[`z${parts}`] = new Uint8Array(zipped.subarray(at, at + MAX_PART_BYTES));
  }
  return { ...props, parts };
}

/** The value of stored properties: the JSON string, or the gzipped parts joined again. */
export function decodeValue(row: Record<string, unknown>): unknown {
  if (typeof row.value === 'string') return JSON.parse(row.value);
  const parts = row.parts;
  if (typeof parts !== 'number' || !Number.isInteger(parts) || parts < 1 || parts > 16) {
    throw new Error('table entity holds no value');
  }
  const chunks = Array.from({ length: parts }, (_, i) => {
    const part = row[`z${i}`];
    if (!(part instanceof Uint8Array)) throw new Error(`table entity lacks part z${i} of ${parts}`);
    return part;
  });
  return JSON.parse(gunzipSync(Buffer.concat(chunks)).toString('utf8'));
}

/** The characters Azure Tables refuses in a key: / \ # ? and control characters. */
export function assertTableKey(key: string): void {
  // eslint-disable-next-line no-control-regex
  if (key.length === 0 || key.length > 1024 || /[/\\#?\u0000-\u001f\u007f-\u009f]/.test(key)) {
    throw new Error(`not a valid table key: ${JSON.stringify(key.slice(0, 80))}`);
  }
}

export class TableLedger<T> implements Ledger<T> {
  private ready: Promise<void> | undefined;

  constructor(private readonly table: TableClient) {}

  static create<T>(
    endpoint: string,
    tableName: string,
    credential: TokenCredential,
    retryBaseDelayMs: number,
  ): TableLedger<T> {
    return new TableLedger<T>(
      new TableClient(endpoint, tableName, credential, clientOptions(retryBaseDelayMs)),
    );
  }

  /** Creates the table once per process (a no-op when it exists). */
  private ensureTable(): Promise<void> {
    this.ready ??= this.table.createTable().catch((error: unknown) => {
      this.ready = undefined;
      throw error;
    });
    return this.ready;
  }

  private entry(row: Row): LedgerEntry<T> {
    return {
      partition: row.partitionKey,
      id: row.rowKey,
      etag: row.etag ?? '',
      value: decodeValue(row) as T,
    };
  }

  async claim(partition: string, id: string, value: T): Promise<ClaimResult<T>> {
    assertTableKey(partition);
    assertTableKey(id);
    const encoded = encodeValue(value);
    await this.ensureTable();
    try {
      const res = await this.table.createEntity<Row>({ partitionKey: partition, rowKey: id, ...encoded });
      return { claimed: true, entry: { partition, id, etag: res.etag ?? '', value } };
    } catch (error) {
      if (statusOf(error) !== 409) throw error;
    }
    const existing = await this.get(partition, id);
    if (!existing) throw new Error(`ledger entry ${id} was claimed and then vanished`);
    return { claimed: false, entry: existing };
  }

  async get(partition: string, id: string): Promise<LedgerEntry<T> | undefined> {
    assertTableKey(partition);
    assertTableKey(id);
    await this.ensureTable();
    try {
      return this.entry(await this.table.getEntity<Row>(partition, id));
    } catch (error) {
      if (statusOf(error) === 404) return undefined;
      throw error;
    }
  }

  async update(entry: LedgerEntry<T>, value: T) {
    const encoded = encodeValue(value);
    await this.ensureTable();
    try {
      // Replace, not Merge: the parts of a larger earlier value must not outlive it.
      const res = await this.table.updateEntity<Row>(
        { partitionKey: entry.partition, rowKey: entry.id, ...encoded },
        'Replace',
        { etag: entry.etag },
      );
      return {
        ok: true as const,
        entry: { partition: entry.partition, id: entry.id, etag: res.etag ?? '', value },
      };
    } catch (error) {
      if (statusOf(error) === 412) return { ok: false as const, conflict: true as const };
      throw error;
    }
  }

  async list(partition: string, prefix: string): Promise<LedgerEntry<T>[]> {
    await this.ensureTable();
    const escape = (s: string) => s.replace(/'/g, "''");
    // Keys share the prefix exactly when they sort between the prefix and the prefix + U+FFFF.
    const filter = `PartitionKey eq '${escape(partition)}' and RowKey ge '${escape(prefix)}' and RowKey lt '${escape(prefix)}\uffff'`;
    const entries: LedgerEntry<T>[] = [];
    for await (const row of this.table.listEntities<Row>({ queryOptions: { filter } })) {
      entries.push(this.entry(row));
    }
    return entries;
  }

  async listRecent(prefix: string, since: Date): Promise<LedgerEntry<T>[]> {
    await this.ensureTable();
    const escape = (s: string) => s.replace(/'/g, "''");
    // Every partition: a RowKey range plus the service-maintained last-modified Timestamp.
    const filter = `RowKey ge '${escape(prefix)}' and RowKey lt '${escape(prefix)}\uffff' and Timestamp ge datetime'${since.toISOString()}'`;
    const entries: LedgerEntry<T>[] = [];
    for await (const row of this.table.listEntities<Row>({ queryOptions: { filter } })) {
      entries.push(this.entry(row));
    }
    return entries;
  }
}

export class BlobPoisonStore implements PoisonStore {
  private container: Promise<ContainerClient> | undefined;
  private ready: Promise<unknown> | undefined;

  constructor(
    private readonly endpoint: string,
    private readonly containerName: string,
    private readonly credential: TokenCredential,
    private readonly retryBaseDelayMs: number,
  ) {}

  /** The container client, built on first use (its SDK is loaded only then: see blob-client.ts). */
  private client(): Promise<ContainerClient> {
    this.container ??= import('./blob-client').then((m) =>
      m.createContainerClient(this.endpoint, this.containerName, this.credential, this.retryBaseDelayMs),
    );
    return this.container;
  }

  async write(name: string, content: unknown): Promise<void> {
    const container = await this.client();
    this.ready ??= container.createIfNotExists().catch((error: unknown) => {
      this.ready = undefined;
      throw error;
    });
    await this.ready;
    const body = JSON.stringify(content, null, 2);
    await container.getBlockBlobClient(name).upload(body, Buffer.byteLength(body), {
      blobHTTPHeaders: { blobContentType: 'application/json' },
    });
  }
}
