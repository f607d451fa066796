/** A `Directory` (Microsoft Graph) over a map of principals; lookups are recorded. */
import type { Directory } from '../../lib/ports';

export class FakeDirectory implements Directory {
  readonly lookups: string[] = [];
  private readonly principals = new Map<string, { displayName: string; type: string }>();
  private failures = 0;

  add(oid: string, principal: { displayName: string; type: string }): this {
    this.principals.set(oid.toLowerCase(), principal);
    return this;
  }

  failNext(times = 1): void {
    this.failures += times;
  }

  async describe(oid: string): Promise<{ displayName: string; type: string } | undefined> {
    this.lookups.push(oid);
    if (this.failures > 0) {
      this.failures--;
      throw new Error('Authorization_RequestDenied: Insufficient privileges to complete the operation.');
    }
    const found = this.principals.get(oid.toLowerCase());
    return found ? { ...found } : undefined;
  }
}
