// Preloaded into every process of a run (NODE_OPTIONS="--import $PWD/bench/lib/gc-observer.mjs", e.g. around
// `node bench/load.ts --targets edgegate-1w`): each process appends its collections (start ms, kind — 1 minor, 2
// major, 4 incremental marking, 8 weak callbacks — and duration) and, every second, V8's external memory and heap
// use to /tmp/gc-observer-PID.log. How the 16 KiB storms were counted (docs/benchmarks.md, "Issue 17, step 6").
import { appendFileSync } from 'node:fs';
import { PerformanceObserver } from 'node:perf_hooks';
import v8 from 'node:v8';

const file = `/tmp/gc-observer-${process.pid}.log`;
new PerformanceObserver((list) => {
  let s = '';
  for (const e of list.getEntries())
    s += `${Math.round(e.startTime)} kind=${e.detail.kind} ${e.duration.toFixed(2)}ms\n`;
  appendFileSync(file, s);
}).observe({ entryTypes: ['gc'] });
setInterval(() => {
  const h = v8.getHeapStatistics();
  const mb = (n) => (n / 1e6).toFixed(1);
  appendFileSync(
    file,
    `# ${Math.round(performance.now())} ext=${mb(h.external_memory)}MB used=${mb(h.used_heap_size)} total=${mb(h.total_heap_size)} ${process.argv[1]?.split('/').pop()}\n`,
  );
}, 1000).unref();
