/**
 * Validates a response body against a definition of a Swagger 2.0 document (Azure REST API specs),
 * with a draft-04 JSON Schema validator in a non-strict mode, as azure-specs/README.md ("How to use
 * these") prescribes:
 * - Swagger/AutoRest extensions (`x-ms-*`) and other unknown keywords are ignored;
 * - `x-nullable: true` is honoured (the value may also be null), since AutoRest reads it that way;
 * - the Swagger-2.0 string form of `discriminator` is ignored (ajv's own `discriminator` keyword is
 *   the OpenAPI-3 object form and stays off);
 * - non-standard formats (`unixtime`, `base64url`, `duration`, `int32`, `arm-id`, …) are accepted
 *   as-is; `date-time` and `uri` are checked because a wrong date or URL is a real emulator bug.
 * External `$ref`s (e.g. `../../../common/v1/types.json#/definitions/...`) are followed on disk,
 * relative to the referring file. Documents are loaded and compiled once per process.
 */
import { readFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { pathToFileURL, fileURLToPath } from 'node:url';
import Ajv from 'ajv-draft-04';
import type { ValidateFunction } from 'ajv-draft-04';

type Json = null | boolean | number | string | Json[] | { [key: string]: Json };

const DATE_TIME = /^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?([Zz]|[+-]\d{2}:?\d{2})?$/;

let ajv: Ajv | undefined;
const loaded = new Set<string>();
const compiled = new Map<string, ValidateFunction>();

function instance(): Ajv {
  if (!ajv) {
    ajv = new Ajv({
      strict: false,
      allErrors: true,
      validateSchema: false,
      allowUnionTypes: true,
      logger: false,
    });
    ajv.addFormat('date-time', DATE_TIME);
    ajv.addFormat('uri', (s: string) => URL.canParse(s));
  }
  return ajv;
}

/** Makes the document usable as JSON Schema: `x-nullable` → union with null; formats registered. */
function adapt(node: Json, formats: Set<string>): Json {
  if (Array.isArray(node)) return node.map((n) => adapt(n, formats));
  if (node === null || typeof node !== 'object') return node;
  const out: { [key: string]: Json } = {};
  for (const [k, v] of Object.entries(node)) {
    // Swagger 2.0's discriminator is a property name (string); it is not a validation keyword.
    if (k === 'discriminator' && typeof v === 'string') continue;
    out[k] = adapt(v, formats);
  }
  if (typeof out.format === 'string') formats.add(out.format);
  if (out['x-nullable'] === true) {
    if (typeof out.type === 'string') out.type = [out.type, 'null'];
    else if (typeof out.$ref === 'string') {
      // draft-04 ignores siblings of $ref, so wrap it.
      const ref = out.$ref;
      delete out.$ref;
      out.anyOf = [{ $ref: ref }, { type: 'null' }];
    }
  }
  return out;
}

function collectExternalRefs(node: Json, into: Set<string>): void {
  if (Array.isArray(node)) {
    node.forEach((n) => collectExternalRefs(n, into));
    return;
  }
  if (node === null || typeof node !== 'object') return;
  for (const [k, v] of Object.entries(node)) {
    // x-ms-examples point at example files, which are not schemas.
    if (k === 'x-ms-examples') continue;
    if (k === '$ref' && typeof v === 'string' && !v.startsWith('#')) {
      const file = v.split('#')[0];
      if (file) into.add(file);
    } else collectExternalRefs(v, into);
  }
}

function load(absPath: string): string {
  const uri = pathToFileURL(absPath).href;
  if (loaded.has(uri)) return uri;
  loaded.add(uri);
  const raw = JSON.parse(readFileSync(absPath, 'utf8')) as Json;
  const formats = new Set<string>();
  const doc = adapt(raw, formats);
  const a = instance();
  for (const f of formats) if (!a.formats[f]) a.addFormat(f, true);
  a.addSchema(doc as object, uri);
  const refs = new Set<string>();
  collectExternalRefs(raw, refs);
  for (const r of refs) load(resolve(dirname(absPath), r));
  return uri;
}

/**
 * Validates `body` against `#/definitions/<definitionName>` of the Swagger document at `specPath`.
 * Returns the errors as readable strings (`/attributes/created must be integer`); [] means valid.
 */
export function validateAgainstSwagger(specPath: string, definitionName: string, body: unknown): string[] {
  const abs = resolve(specPath);
  const uri = load(abs);
  const key = `${uri}#/definitions/${definitionName}`;
  let validate = compiled.get(key);
  if (!validate) {
    const a = instance();
    if (!a.getSchema(key)) {
      throw new Error(`definition ${definitionName} not found in ${fileURLToPath(uri)}`);
    }
    validate = a.compile({ $ref: key });
    compiled.set(key, validate);
  }
  if (validate(body)) return [];
  return (validate.errors ?? []).map((e) => {
    const where = e.instancePath || '(root)';
    const extra =
      e.keyword === 'additionalProperties'
        ? ` (${String((e.params as { additionalProperty?: string }).additionalProperty)})`
        : e.keyword === 'enum'
          ? ` (${JSON.stringify((e.params as { allowedValues?: unknown }).allowedValues)})`
          : '';
    return `${where} ${e.message ?? e.keyword}${extra}`;
  });
}
