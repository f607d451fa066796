/** Stable ids from content (node:crypto is pure computation here: no I/O, no randomness). */
import { createHash } from 'node:crypto';

/**
 * Hex SHA-256 of the parts, truncated to `length` hex characters. The parts are JSON-encoded as an
 * array so `('a|b', 'c')` and `('a', 'b|c')` cannot collide.
 */
export function stableHash(parts: ReadonlyArray<string>, length = 32): string {
  return createHash('sha256').update(JSON.stringify(parts)).digest('hex').slice(0, length);
}
