/** Loading the JSON fixtures the core-* tests use (not a test file itself). */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';

export const FIXTURES = join(__dirname, '..', 'fixtures');

export function loadJson(relative: string): unknown {
  return JSON.parse(readFileSync(join(FIXTURES, relative), 'utf8')) as unknown;
}

/** A deep copy that tests can mutate freely. */
export function clone<T>(value: T): T {
  return structuredClone(value);
}

export const VAULT_ID =
  '/SUBSCRIPTIONS/8A7F2C1E-3B4D-4E5F-9A0B-1C2D3E4F5A6B/RESOURCEGROUPS/RG-PAYMENTS/PROVIDERS/MICROSOFT.KEYVAULT/VAULTS/CONTOSO-PAYMENTS';
