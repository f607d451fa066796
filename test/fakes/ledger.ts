/**
 * An in-memory `Ledger<T>` with Azure Table semantics (lib/adapters/storage.ts):
 * - `claim` is a conditional insert: exactly one caller creates a row; the others get the existing row;
 * - every write gives the row a new ETag; `update` with a stale ETag is a conflict (412), on a row
 *   that does not exist it fails (404 is not a conflict: the adapter rethrows it);
 * - keys are table-safe (no `/ \ # ?`, no control characters, at most 1 KiB), values survive a JSON
 *   round trip (they are stored as one JSON string property, at most 64 KiB = 32 Ki UTF-16 units);
 * - `list` returns a partition's rows whose RowKey starts with the prefix, in RowKey order;
 *   `listRecent` every partition's rows with the prefix written at or after a time (the row's
 *   Timestamp: the clock's time of its last write, or the wall clock without one).
 * Writes are recorded (`writes`), and `failNext` makes the next calls throw, as a storage outage or a
 * crash would.
 */
import type { ClaimResult, Clock, Ledger, LedgerEntry } from '../../lib/ports';

export type LedgerOp = 'claim' | 'get' | 'update' | 'list' | 'listRecent';

export interface LedgerWrite {
  op: 'claim' | 'update';
  partition: string;
  id: string;
  at: string;
}

const MAX_PROPERTY_CHARS = 32 * 1024;

function assertTableKey(key: string): void {
  // eslint-disable-next-line no-control-regex
  if (key.length === 0 || key.length > 1024 || /[/\\#?\u0000-\u001f\u007f-\u009f]/.test(key)) {
    throw new Error(`OutOfRangeInput: not a valid table key: ${JSON.stringify(key.slice(0, 80))}`);
  }
}

export class MemoryLedger<T> implements Ledger<T> {
  readonly writes: LedgerWrite[] = [];
  private readonly rows = new Map<string, Map<string, { etag: string; json: string; at: number }>>();
  private version = 0;
  private readonly faults: Array<{ op: LedgerOp; error: Error; times: number; after: number }> = [];

  constructor(private readonly options: { clock?: Clock; latencyMs?: number } = {}) {}

  /**
   * The next `times` calls of `op` throw `error` (a storage outage, or a crash at that point), after
   * letting `after` calls of `op` through.
   */
  failNext(
    op: LedgerOp,
    error: Error = new Error('ledger unavailable'),
    times = 1,
    options: { after?: number } = {},
  ): void {
    this.faults.push({ op, error, times, after: options.after ?? 0 });
  }

  /** Every row (of one partition), for assertions. */
  entries(partition?: string): LedgerEntry<T>[] {
    const out: LedgerEntry<T>[] = [];
    for (const [p, rows] of this.rows) {
      if (partition !== undefined && p !== partition) continue;
      for (const [id, row] of rows)
        out.push({ partition: p, id, etag: row.etag, value: JSON.parse(row.json) as T });
    }
    return out;
  }

  value(partition: string, id: string): T | undefined {
    const row = this.rows.get(partition)?.get(id);
    return row ? (JSON.parse(row.json) as T) : undefined;
  }

  async claim(partition: string, id: string, value: T): Promise<ClaimResult<T>> {
    await this.enter('claim');
    assertTableKey(partition);
    assertTableKey(id);
    const existing = this.rows.get(partition)?.get(id);
    if (existing) {
      return {
        claimed: false,
        entry: { partition, id, etag: existing.etag, value: JSON.parse(existing.json) as T },
      };
    }
    const row = this.store(partition, id, value);
    this.record('claim', partition, id);
    return { claimed: true, entry: { partition, id, etag: row.etag, value: JSON.parse(row.json) as T } };
  }

  async get(partition: string, id: string): Promise<LedgerEntry<T> | undefined> {
    await this.enter('get');
    assertTableKey(partition);
    assertTableKey(id);
    const row = this.rows.get(partition)?.get(id);
    return row ? { partition, id, etag: row.etag, value: JSON.parse(row.json) as T } : undefined;
  }

  async update(
    entry: LedgerEntry<T>,
    value: T,
  ): Promise<{ ok: true; entry: LedgerEntry<T> } | { ok: false; conflict: true }> {
    await this.enter('update');
    const current = this.rows.get(entry.partition)?.get(entry.id);
    if (!current) throw new Error(`ResourceNotFound: ledger row ${entry.id} does not exist`);
    if (entry.etag !== '*' && entry.etag !== current.etag) return { ok: false, conflict: true };
    const row = this.store(entry.partition, entry.id, value);
    this.record('update', entry.partition, entry.id);
    return {
      ok: true,
      entry: { partition: entry.partition, id: entry.id, etag: row.etag, value: JSON.parse(row.json) as T },
    };
  }

  async list(partition: string, prefix: string): Promise<LedgerEntry<T>[]> {
    await this.enter('list');
    const rows = this.rows.get(partition);
    if (!rows) return [];
    return [...rows.entries()]
      .filter(([id]) => id.startsWith(prefix))
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
      .map(([id, row]) => ({ partition, id, etag: row.etag, value: JSON.parse(row.json) as T }));
  }

  async listRecent(prefix: string, since: Date): Promise<LedgerEntry<T>[]> {
    await this.enter('listRecent');
    const out: LedgerEntry<T>[] = [];
    for (const [partition, rows] of this.rows) {
      for (const [id, row] of rows) {
        if (id.startsWith(prefix) && row.at >= since.getTime())
          out.push({ partition, id, etag: row.etag, value: JSON.parse(row.json) as T });
      }
    }
    return out;
  }

  private store(partition: string, id: string, value: T): { etag: string; json: string; at: number } {
    const json = JSON.stringify(value);
    if (json.length > MAX_PROPERTY_CHARS) {
      throw new Error(
        `PropertyValueTooLarge: ledger row ${id} is ${json.length} characters (limit ${MAX_PROPERTY_CHARS})`,
      );
    }
    const at = this.options.clock?.now().getTime() ?? Date.now();
    const row = { etag: `W/"${++this.version}"`, json, at };
    let rows = this.rows.get(partition);
    if (!rows) {
      rows = new Map();
      this.rows.set(partition, rows);
    }
    rows.set(id, row);
    return row;
  }

  private record(op: 'claim' | 'update', partition: string, id: string): void {
    this.writes.push({ op, partition, id, at: this.options.clock?.now().toISOString() ?? '' });
  }

  private async enter(op: LedgerOp): Promise<void> {
    if (this.options.clock && this.options.latencyMs) await this.options.clock.sleep(this.options.latencyMs);
    else await Promise.resolve();
    const fault = this.faults.find((f) => f.op === op && f.times > 0);
    if (!fault) return;
    if (fault.after > 0) {
      fault.after--;
      return;
    }
    fault.times--;
    throw fault.error;
  }
}
