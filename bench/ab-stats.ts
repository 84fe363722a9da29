/**
 * Summary of A/B burst lines (`DIR: R req/s, U µs CPU/request`, as bench/ab-interleave.sh and bench/ab-worker.sh
 * print them): per checkout the median req/s and CPU µs/request; then, for every other checkout against the first
 * one seen, the CPU/request difference of each set (median over the set's rounds, a round pairing the i-th burst of
 * each checkout) and the median over sets with a bootstrap 95 % interval. A set starts at a line `set N`; a file
 * without markers (ab-worker.sh output: one fresh process per run) is one set whose rounds are the runs.
 *
 *   node bench/ab-stats.ts [--base DIR] FILE...     (base: DIR, else the checkout of the first line)
 */
import { readFileSync } from 'node:fs';

interface Burst {
  reqPerSec: number;
  cpuUs: number;
}

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  const n = s.length;
  return n % 2 ? s[(n - 1) / 2]! : (s[n / 2 - 1]! + s[n / 2]!) / 2;
};

const LINE = /^(\S+): ([\d.]+) req\/s, (\d+) µs CPU\/request/;
const sets: Map<string, Burst[]>[] = [];
const all = new Map<string, Burst[]>();
const args = process.argv.slice(2);
const baseAt = args.indexOf('--base');
let base = baseAt >= 0 ? args.splice(baseAt, 2)[1] : undefined;
for (const file of args) {
  let current: Map<string, Burst[]> | undefined;
  for (const line of readFileSync(file, 'utf8').split('\n')) {
    if (/^set \d+/.test(line)) {
      current = new Map();
      sets.push(current);
      continue;
    }
    const m = LINE.exec(line);
    if (!m) continue;
    const dir = m[1]!;
    const burst = { reqPerSec: Number(m[2]), cpuUs: Number(m[3]) };
    base ??= dir;
    if (!current) {
      current = new Map();
      sets.push(current);
    }
    for (const map of [current, all]) map.set(dir, [...(map.get(dir) ?? []), burst]);
  }
}
if (!base) {
  console.error('usage: node bench/ab-stats.ts [--base DIR] FILE... (no burst lines found)');
  process.exit(2);
}

for (const [dir, bursts] of all)
  console.log(
    `${dir}: ${bursts.length} bursts, median ${median(bursts.map((b) => b.reqPerSec)).toFixed(0)} req/s, ` +
      `${median(bursts.map((b) => b.cpuUs)).toFixed(1)} µs CPU/request`,
  );

// A fixed-seed generator: the interval is the same on every run of the summary.
let seed = 12_345;
const random = (): number => {
  seed = (seed * 1_103_515_245 + 12_345) % 2 ** 31;
  return seed / 2 ** 31;
};
for (const dir of all.keys()) {
  if (dir === base) continue;
  const perSet: number[] = [];
  for (const set of sets) {
    const a = set.get(base);
    const b = set.get(dir);
    if (!a || !b) continue;
    const n = Math.min(a.length, b.length);
    const diffs = Array.from({ length: n }, (_, i) => (b[i]!.cpuUs / a[i]!.cpuUs - 1) * 100);
    if (n > 0) perSet.push(median(diffs));
  }
  if (perSet.length === 0) continue;
  const boots = Array.from({ length: 4000 }, () =>
    median(perSet.map(() => perSet[Math.floor(random() * perSet.length)]!)),
  ).sort((x, y) => x - y);
  console.log(
    `${dir} vs ${base}: CPU/request ${median(perSet) >= 0 ? '+' : ''}${median(perSet).toFixed(1)} % ` +
      `(median of ${perSet.length} sets; 95 % interval ${boots[100]!.toFixed(1)} .. ${boots[3899]!.toFixed(1)}; ` +
      `per set: ${perSet.map((x) => x.toFixed(1)).join(' ')})`,
  );
}
