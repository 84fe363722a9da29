/**
 * What a clock read and a global getter cost on this machine (the hot path's imports of `performance`, `Buffer`
 * and `nextTick`, and the once-a-second `Date` field of raw-messages.ts; docs/benchmarks.md, "Issue 17, step 3"):
 * ns per call of `performance.now()` through the global (a getter in Node 26) and through its import, and of
 * `Date.now()`; median of 5 runs of 10 million calls each, after a warm-up.
 *   node bench/clock.bench.ts
 */
import { performance as imported } from 'node:perf_hooks';

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[xs.length >> 1]!;
const N = 10_000_000;

const cases: Record<string, () => number> = {
  'performance.now() via globalThis': () => {
    let s = 0;
    for (let i = 0; i < N; i++) s += performance.now();
    return s;
  },
  'performance.now() imported': () => {
    let s = 0;
    for (let i = 0; i < N; i++) s += imported.now();
    return s;
  },
  'Date.now()': () => {
    let s = 0;
    for (let i = 0; i < N; i++) s += Date.now();
    return s;
  },
};

console.log(
  `globalThis.performance is ${Object.getOwnPropertyDescriptor(globalThis, 'performance')?.get ? 'a getter' : 'a value'}`,
);
for (const [name, run] of Object.entries(cases)) {
  run();
  const ns: number[] = [];
  for (let r = 0; r < 5; r++) {
    const t = process.hrtime.bigint();
    run();
    ns.push(Number(process.hrtime.bigint() - t) / N);
  }
  console.log(`${name.padEnd(34)} ${median(ns).toFixed(1)} ns`);
}
