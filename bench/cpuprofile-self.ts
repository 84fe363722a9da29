/**
 * Self time by function of the `.cpuprofile` files bench/ab-worker.sh writes with PROFILE=DIR (idle excluded), as a
 * share of the busy time or in µs per request (the run's request count is in DIR/requests). With two groups of
 * directories (comma-separated, averaged within a group) it lists the largest differences first: what a change
 * made the request path spend. Functions are keyed by name and file name without the line, so a renamed or moved
 * file still lines up (`--by line` keeps the line, `--by file` adds up per file).
 *
 *   node bench/cpuprofile-self.ts [--role worker|primary] [--by name|line|file] [--per share|request] [--top N] A[,A2…] [B[,B2…]]
 */
import { readdirSync, readFileSync } from 'node:fs';
import { basename, join } from 'node:path';

interface CpuProfile {
  nodes: { id: number; callFrame: { functionName: string; url: string; lineNumber: number } }[];
  samples: number[];
  timeDeltas: number[];
}

const args = process.argv.slice(2);
function option(name: string, fallback: string): string {
  const at = args.indexOf(name);
  return at < 0 ? fallback : (args.splice(at, 2)[1] ?? fallback);
}
const role = option('--role', 'worker');
const by = option('--by', 'name');
const per = option('--per', 'share');
const top = Number(option('--top', '30'));
if (args.length < 1) {
  console.error('usage: node bench/cpuprofile-self.ts [options] DIR[,DIR…] [DIR[,DIR…]]');
  process.exit(2);
}

/** Self time per key of one directory: % of busy time, or µs per request. */
function selfTime(dir: string): Map<string, number> {
  const self = new Map<string, number>();
  let busy = 0;
  for (const file of readdirSync(dir).filter((f) => f.startsWith(role) && f.endsWith('.cpuprofile'))) {
    const profile = JSON.parse(readFileSync(join(dir, file), 'utf8')) as CpuProfile;
    const frames = new Map(profile.nodes.map((n) => [n.id, n.callFrame]));
    profile.samples.forEach((id, i) => {
      const frame = frames.get(id)!;
      if (frame.functionName === '(idle)') return;
      const us = profile.timeDeltas[i + 1] ?? 0;
      const file = frame.url ? basename(frame.url) : '';
      const name = frame.functionName || '(anonymous)';
      const key =
        by === 'file'
          ? file || name
          : by === 'line'
            ? `${name} ${file}:${frame.lineNumber + 1}`
            : `${name} ${file}`;
      self.set(key, (self.get(key) ?? 0) + us);
      busy += us;
    });
  }
  const scale = per === 'request' ? 1 / Number(readFileSync(join(dir, 'requests'), 'utf8')) : 100 / busy;
  return new Map([...self].map(([k, us]) => [k, us * scale]));
}

function group(spec: string): Map<string, number> {
  const dirs = spec.split(',');
  const sum = new Map<string, number>();
  for (const dir of dirs) for (const [k, v] of selfTime(dir)) sum.set(k, (sum.get(k) ?? 0) + v / dirs.length);
  return sum;
}

const a = group(args[0]!);
const b = args[1] ? group(args[1]) : undefined;
const unit = per === 'request' ? 'µs/request' : '% of busy time';
console.log(b ? `self time (${unit}): A ${args[0]}  B ${args[1]}  B−A` : `self time (${unit}): ${args[0]}`);
const rows = [...new Set([...a.keys(), ...(b?.keys() ?? [])])].map((key) => {
  const x = a.get(key) ?? 0;
  const y = b?.get(key) ?? 0;
  return { key, x, y, d: y - x };
});
rows.sort((p, q) => (b ? Math.abs(q.d) - Math.abs(p.d) : q.x - p.x));
for (const r of rows.slice(0, top)) {
  const cols = b ? [r.x, r.y, r.d] : [r.x];
  console.log(`${cols.map((v) => v.toFixed(2).padStart(7)).join(' ')}  ${r.key}`);
}
