/** How the forwarder splits what it could not publish into files replay accepts (lib/entrypoints.ts). */
import { splitForReplay } from '../../lib/entrypoints';

const record = (i: number, pad = 0) => ({ operationName: 'KeyDelete', id: `r${i}`, pad: 'x'.repeat(pad) });

describe('splitForReplay', () => {
  it('keeps every record once, in order, with its event, at most maxInputs per part', () => {
    const records = Array.from({ length: 250 }, (_, i) => record(i));
    const events = records.map((r) => ({ id: `e-${r.id}` }));
    const parts = splitForReplay(records, events, { maxInputs: 100, maxBytes: 1_000_000 });
    expect(parts.map((p) => p.records.length)).toEqual([100, 100, 50]);
    expect(parts.flatMap((p) => p.records)).toEqual(records);
    for (const p of parts) expect(p.events).toEqual(p.records.map((r) => ({ id: `e-${r.id}` })));
  });

  it('keeps each part within the byte limit, records and events together', () => {
    const records = Array.from({ length: 40 }, (_, i) => record(i, 900));
    const events = records.map((r) => ({ id: `e-${r.id}`, data: 'y'.repeat(400) }));
    const parts = splitForReplay(records, events, { maxInputs: 100, maxBytes: 10_000 });
    expect(parts.length).toBeGreaterThan(5);
    for (const p of parts) {
      expect(Buffer.byteLength(JSON.stringify({ records: p.records, events: p.events }))).toBeLessThanOrEqual(
        10_000,
      );
    }
    expect(parts.flatMap((p) => p.records)).toEqual(records);
  });

  it('gives a record larger than any part a part of its own rather than dropping it', () => {
    const records = [record(1), record(2, 50_000), record(3)];
    const parts = splitForReplay(records, records, { maxInputs: 100, maxBytes: 10_000 });
    expect(parts.map((p) => p.records.map((r) => r.id))).toEqual([['r1'], ['r2'], ['r3']]);
  });
});
