// What V8's external memory does to a process that makes a fresh ArrayBuffer per answer, as Node's parser does for
// every body piece (docs/benchmarks.md, "Issue 17, step 6"): 200,000 Buffers of 16 KiB, each made, filled and
// dropped with a little other garbage, with and without detaching it after use (`buf.buffer.transfer(0)`); then
// what a detach costs by size. ms, major and minor collections, ns per Buffer.
//   node bench/external-buffers.bench.mjs
import { Buffer } from 'node:buffer';
import { PerformanceObserver } from 'node:perf_hooks';

let majors = 0;
let minors = 0;
new PerformanceObserver((list) => {
  for (const e of list.getEntries())
    if (e.detail.kind === 1) minors++;
    else majors++;
}).observe({ entryTypes: ['gc'] });

const src = Buffer.alloc(16384, 1);
const keep = [];
let sink = 0;
async function churn(detach) {
  majors = 0;
  minors = 0;
  const t = performance.now();
  for (let i = 0; i < 200_000; i++) {
    const b = Buffer.allocUnsafeSlow(16384); // an ArrayBuffer of its own, as Node's parser makes
    b.set(src);
    keep[i & 63] = { a: i, b: [i, i + 1], c: `x${i}` }; // other garbage of a request
    sink += b[100];
    if (detach) b.buffer.transfer(0);
    if ((i & 255) === 0) await new Promise(setImmediate);
  }
  const ms = performance.now() - t;
  await new Promise((r) => setTimeout(r, 100)); // let the observer report the last collections
  console.log(
    `16 KiB churn, ${detach ? 'detached' : 'left to the GC'}: ${ms.toFixed(0)} ms, ${majors} major / ${minors} minor`,
  );
}
for (const detach of [false, true, false, true]) await churn(detach);

for (const size of [24, 2048, 16384])
  for (const detach of [false, true]) {
    const n = 200_000;
    const t = performance.now();
    for (let i = 0; i < n; i++) {
      const b = Buffer.allocUnsafeSlow(size);
      b[0] = 1;
      sink += b[0];
      if (detach) b.buffer.transfer(0);
    }
    console.log(
      `${size} bytes, ${detach ? 'detached' : 'left to the GC'}: ${(((performance.now() - t) * 1e6) / n).toFixed(0)} ns each`,
    );
  }
if (sink === 0) console.log('');
