/**
 * What telling a field name apart costs on the data path: `Set.has` against src/api/reserved-headers.ts's member
 * test (isHopByHop), both asked about names just made by a parser (fresh, not internalized strings, as llhttp's
 * are), a typical upstream response's seven. ns per name, three rounds (docs/benchmarks.md, "Issue 17, step 4").
 *   node bench/header-names.bench.ts
 */
import { HOP_BY_HOP_HEADERS, isHopByHop } from '../src/api/reserved-headers.ts';

const NAMES = [
  'Server',
  'Date',
  'Content-Type',
  'Content-Length',
  'Connection',
  'X-Request-Id',
  'Cache-Control',
];
const N = 200_000;
/** Fresh copies, lower-cased as the data path does: new strings each, never seen by the string table. */
const fresh = () => NAMES.map((s) => ` ${s}`.slice(1).toLowerCase());

function bench(name: string, test: (n: string) => boolean): void {
  const heads = Array.from({ length: N }, fresh);
  let hits = 0;
  const t = performance.now();
  for (const head of heads) for (const n of head) if (test(n)) hits++;
  const ns = ((performance.now() - t) * 1e6) / (N * NAMES.length);
  console.log(`${name.padEnd(12)} ${ns.toFixed(1)} ns per name (${hits / N} hop-by-hop per head)`);
}

for (let round = 0; round < 3; round++) {
  bench('Set.has', (n) => HOP_BY_HOP_HEADERS.has(n));
  bench('isHopByHop', isHopByHop);
}
