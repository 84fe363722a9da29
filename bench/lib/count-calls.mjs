// Counts what a process does per request that a profile does not show as calls: `process.nextTick` by callback
// name, and clock reads (`performance.now()`, `Date.now()`) by call site. Given to a gateway with
//   NODE_FLAGS="--import $PWD/bench/lib/count-calls.mjs" DUR=5 bench/ab-worker.sh .
// every process writes its tally to /tmp/count-calls-PID.txt every 2 s (the worker's is the one with the data
// path's names); divide by the run's requests. The wrapping itself is slow: counts only, never timings.
import { writeFileSync } from 'node:fs';

const counts = new Map();
const bump = (key) => counts.set(key, (counts.get(key) ?? 0) + 1);

const nextTick = process.nextTick;
process.nextTick = function countedNextTick(fn, ...args) {
  bump(`nextTick ${fn.name || '(anonymous)'}`);
  return nextTick.call(process, fn, ...args);
};
for (const [owner, name] of [
  [performance, 'performance.now'],
  [Date, 'Date.now'],
]) {
  const now = owner.now.bind(owner);
  owner.now = () => {
    bump(`${name} ${new Error().stack.split('\n')[2]?.trim() ?? '?'}`);
    return now();
  };
}
setInterval(() => {
  const lines = [...counts].sort((a, b) => b[1] - a[1]).map(([k, n]) => `${n} ${k}`);
  writeFileSync(`/tmp/count-calls-${process.pid}.txt`, `${lines.join('\n')}\n`);
}, 2000).unref();
