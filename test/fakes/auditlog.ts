/**
 * An `AuditLogQuery` over an in-memory AZKVAuditLogs: the successful `KeyDelete` records a test put
 * there. Names compare case-insensitively, windows are inclusive; `findKeyDeletion` answers the record
 * nearest the middle of the window, as lib/adapters/loganalytics.ts does. Every query is recorded; `failNext`
 * makes the next query throw (the workspace is unreachable).
 */
import type { AuditCaller, AuditDeletion, AuditLogQuery } from '../../lib/ports';

export type AuditQuery =
  | { op: 'findKeyDeletion'; vaultName: string; keyName: string; from: string; to: string }
  | { op: 'listKeyDeletions'; from: string; to: string };

export class FakeAuditLog implements AuditLogQuery {
  readonly records: AuditDeletion[] = [];
  readonly queries: AuditQuery[] = [];
  private failures = 0;

  add(deletion: AuditDeletion): this {
    this.records.push(deletion);
    return this;
  }

  failNext(times = 1): void {
    this.failures += times;
  }

  async findKeyDeletion(
    vaultName: string,
    keyName: string,
    window: { from: Date; to: Date },
  ): Promise<AuditCaller | undefined> {
    this.queries.push({
      op: 'findKeyDeletion',
      vaultName,
      keyName,
      from: window.from.toISOString(),
      to: window.to.toISOString(),
    });
    this.maybeFail();
    // Like the adapter: of the matching records, the one nearest the middle of the window.
    const middle = (window.from.getTime() + window.to.getTime()) / 2;
    const found = this.inWindow(window)
      .filter(
        (r) =>
          r.vaultName.toLowerCase() === vaultName.toLowerCase() &&
          r.keyName.toLowerCase() === keyName.toLowerCase(),
      )
      .sort((a, b) => Math.abs(a.time.getTime() - middle) - Math.abs(b.time.getTime() - middle))[0];
    return found ? { time: found.time, ...found.caller } : undefined;
  }

  async listKeyDeletions(window: { from: Date; to: Date }): Promise<AuditDeletion[]> {
    this.queries.push({
      op: 'listKeyDeletions',
      from: window.from.toISOString(),
      to: window.to.toISOString(),
    });
    this.maybeFail();
    return this.inWindow(window).map((r) => ({
      ...r,
      time: new Date(r.time.getTime()),
      caller: { ...r.caller },
    }));
  }

  private inWindow(window: { from: Date; to: Date }): AuditDeletion[] {
    return this.records
      .filter((r) => r.time.getTime() >= window.from.getTime() && r.time.getTime() <= window.to.getTime())
      .sort((a, b) => a.time.getTime() - b.time.getTime());
  }

  private maybeFail(): void {
    if (this.failures > 0) {
      this.failures--;
      throw new Error('the workspace query failed (503)');
    }
  }
}
