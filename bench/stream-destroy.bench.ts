/**
 * What a request stream's end costs (docs/benchmarks.md, "Issue 17, step 5"): ns per `new` of a Readable, per `new`
 * followed by `push(null)`, and per `new` followed by `destroy()` (its deferred `close` included: each round waits
 * for the ticks to run). Three rounds of a million.
 *   node bench/stream-destroy.bench.ts
 */

import { Readable } from 'node:stream';
import { setImmediate as turn } from 'node:timers/promises';

class Request extends Readable {
  override _read(): void {}
}
const N = 1_000_000;
const cases: Record<string, () => void> = {
  new: () => {
    new Request();
  },
  'new + push(null)': () => {
    new Request().push(null);
  },
  'new + destroy()': () => {
    new Request().destroy();
  },
};
for (let round = 0; round < 3; round++) {
  for (const [name, make] of Object.entries(cases)) {
    const t = performance.now();
    for (let i = 0; i < N; i++) make();
    await turn();
    console.log(`${name.padEnd(18)} ${(((performance.now() - t) * 1e6) / N).toFixed(0)} ns`);
  }
}
