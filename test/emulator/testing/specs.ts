/**
 * Where Microsoft's published specs, examples and recordings are: `shared/reference/azure-specs`
 * beside the project's checkout (as on every developer machine and in CI).
 */
import { resolve } from 'node:path';

export const SPECS_DIR = resolve(__dirname, '..', '..', '..', '..', 'shared', 'reference', 'azure-specs');
