/** The published JSON Schema of the signal data and the zod schema kvguard parses with agree. */
import Ajv2020 from 'ajv/dist/2020';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { toSignalCloudEvents } from '../../lib/core/normalise';
import { SIGNAL_DATA_SCHEMA_ID, signalDataV1, type SignalCloudEvent } from '../../lib/core/signal-data';
import { clone, loadJson } from './core-fixtures';

const schema = JSON.parse(
  readFileSync(join(__dirname, '../../lib/core/schemas/signal-data.v1.schema.json'), 'utf8'),
) as Record<string, unknown>;
const validate = new Ajv2020({ strict: true, allErrors: true }).compile(schema);

const published = toSignalCloudEvents(loadJson('auditevent/records-batch.json')).filter(
  (x): x is SignalCloudEvent => !('kind' in x),
);
const valid = published[0]!.data;

function variant(mutate: (d: Record<string, unknown>) => void): unknown {
  const d = clone(valid) as unknown as Record<string, unknown>;
  mutate(d);
  return d;
}

const validSamples: Array<[string, unknown]> = [
  ...published.map((e, i): [string, unknown] => [`published event ${i} (${e.type})`, e.data]),
  [
    'no resource id, no correlation id',
    variant((d) => {
      delete d.vaultResourceId;
      delete d.correlationId;
    }),
  ],
  ['an empty caller', variant((d) => (d.caller = {}))],
  ['a time with an offset', variant((d) => (d.recordTime = '2026-03-14T10:26:53+01:00'))],
  ['a 127-character key name', variant((d) => (d.keyName = 'k'.repeat(127)))],
  [
    'a 24-character vault',
    variant((d) => {
      d.vaultName = 'a'.repeat(24);
      d.vaultHost = `${'a'.repeat(24)}.vault.azure.net`;
    }),
  ],
];

const invalidSamples: Array<[string, unknown]> = [
  ['not an object', 'x'],
  ['null', null],
  ['an extra field', variant((d) => (d.extra = true))],
  ['an extra caller field', variant((d) => ((d.caller as Record<string, unknown>).token = 'x'))],
  ['a missing caller', variant((d) => delete d.caller)],
  ['a missing keyName', variant((d) => delete d.keyName)],
  ['an invalid key name', variant((d) => (d.keyName = 'k.1'))],
  ['a 128-character key name', variant((d) => (d.keyName = 'k'.repeat(128)))],
  ['a look-alike vault host', variant((d) => (d.vaultHost = 'contoso-payments.vault.azure.net.evil.test'))],
  ['an upper-case vault host', variant((d) => (d.vaultHost = 'CONTOSO-PAYMENTS.vault.azure.net'))],
  ['a vault name starting with a digit', variant((d) => (d.vaultName = '1kv'))],
  ['another operation', variant((d) => (d.operationName = 'KeyGet'))],
  ['a status as a string', variant((d) => (d.httpStatusCode = '200'))],
  ['a fractional status', variant((d) => (d.httpStatusCode = 200.5))],
  ['a status out of range', variant((d) => (d.httpStatusCode = 600))],
  ['a time without a zone', variant((d) => (d.recordTime = '2026-03-14T09:26:53'))],
  ['a time without seconds', variant((d) => (d.recordTime = '2026-03-14T09:26Z'))],
  ['an empty upn', variant((d) => ((d.caller as Record<string, unknown>).upn = ''))],
  ['a resource id not starting with /', variant((d) => (d.vaultResourceId = 'subscriptions/x'))],
];

describe('signal data v1: JSON Schema and zod agree', () => {
  it('the JSON Schema carries the id kvguard puts in dataschema', () => {
    expect(schema.$id).toBe(SIGNAL_DATA_SCHEMA_ID);
  });

  it('the forwarder published four events to check', () => {
    expect(published.map((e) => e.type)).toEqual([
      'Kvguard.KeyVault.KeyDeleted.v1',
      'Kvguard.KeyVault.KeyPurged.v1',
      'Kvguard.KeyVault.KeyDeleteDenied.v1',
      'Kvguard.KeyVault.KeyDeleted.v1',
    ]);
  });

  it.each(validSamples)('both accept %s', (_label, sample) => {
    expect([validate(sample), signalDataV1.safeParse(sample).success]).toEqual([true, true]);
  });

  it.each(invalidSamples)('both refuse %s', (_label, sample) => {
    expect([validate(sample), signalDataV1.safeParse(sample).success]).toEqual([false, false]);
  });
});
