/**
 * The ledger and the inventory on Azure Table storage, and the poison container on Blob storage,
 * authenticated with the app's TokenCredential (identity-based storage: no shared keys).
 * - claim: a conditional insert; 409 EntityAlreadyExists means someone else claimed first.
 * - update: Replace with the entity's ETag; 412 UpdateConditionNotSatisfied means it moved.
 * Each value is stored as JSON in one string property (a property holds up to 64 KiB).
 */
import type { TokenCredential } from '@azure/identity';
import { TableClient } from '@azure/data-tables';
import type { ContainerClient } from '@azure/storage-blob';
import type { ClaimResult, Ledger, LedgerEntry, PoisonStore } from '../ports';
import { clientOptions, statusOf } from './azure';

interface Row {
  partitionKey: string;
  rowKey: string;
  value: string;
  etag?: string;
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
      value: JSON.parse(row.value) as T,
    };
  }

  async claim(partition: string, id: string, value: T): Promise<ClaimResult<T>> {
    assertTableKey(partition);
    assertTableKey(id);
    await this.ensureTable();
    try {
      const res = await this.table.createEntity<Row>({
        partitionKey: partition,
        rowKey: id,
        value: JSON.stringify(value),
      });
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
    await this.ensureTable();
    try {
      const res = await this.table.updateEntity<Row>(
        { partitionKey: entry.partition, rowKey: entry.id, value: JSON.stringify(value) },
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
