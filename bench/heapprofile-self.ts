/**
 * Bytes allocated per request by function, from the `.heapprofile` files bench/ab-worker.sh writes with
 * `PROFILE=DIR HEAP=1` (bench/lib/profile-hook.mjs with EDGEGATE_PROFILE_HEAP=1: V8's sampling heap profiler over the measured run, objects
 * the collectors freed included). A function's bytes are what it allocated itself (its "self" size): strings it
 * built, objects and arrays it created; `(V8 API)` is what Node's C++ made (the parser's strings and arrays, the
 * Buffers it copies). With two directories it lists the largest differences first.
 *
 *   node bench/heapprofile-self.ts [--top N] DIR [DIR2]
 */
import { readdirSync, readFileSync } from 'node:fs';
import { basename, join } from 'node:path';

interface HeapNode {
  callFrame: { functionName: string; url: string; lineNumber: number };
  selfSize: number;
  children: HeapNode[];
}

const args = process.argv.slice(2);
const at = args.indexOf('--top');
const top = at < 0 ? 40 : Number(args.splice(at, 2)[1]);
if (args.length < 1) {
  console.error('usage: node bench/heapprofile-self.ts [--top N] DIR [DIR2]');
  process.exit(2);
}

/** Bytes per request by "function file:line", and the total. */
function perRequest(dir: string): { total: number; self: Map<string, number> } {
  const requests = Number(readFileSync(join(dir, 'requests'), 'utf8'));
  const self = new Map<string, number>();
  let total = 0;
  for (const file of readdirSync(dir).filter((f) => f.startsWith('worker-') && f.endsWith('.heapprofile'))) {
    const stack: HeapNode[] = [
      (JSON.parse(readFileSync(join(dir, file), 'utf8')) as { head: HeapNode }).head,
    ];
    for (let n = stack.pop(); n !== undefined; n = stack.pop()) {
      stack.push(...n.children);
      if (n.selfSize === 0) continue;
      const f = n.callFrame;
      const key = `${f.functionName || '(anonymous)'} ${f.url ? `${basename(f.url)}:${f.lineNumber + 1}` : ''}`;
      self.set(key, (self.get(key) ?? 0) + n.selfSize / requests);
      total += n.selfSize / requests;
    }
  }
  return { total, self };
}

const a = perRequest(args[0]!);
const b = args[1] ? perRequest(args[1]) : undefined;
console.log(
  b
    ? `bytes allocated per request: A ${args[0]} ${a.total.toFixed(0)}, B ${args[1]} ${b.total.toFixed(0)} (B−A by function)`
    : `bytes allocated per request: ${a.total.toFixed(0)} (${args[0]})`,
);
const keys = [...new Set([...a.self.keys(), ...(b?.self.keys() ?? [])])];
const rows = keys.map((key) => ({ key, x: a.self.get(key) ?? 0, y: b?.self.get(key) ?? 0 }));
rows.sort((p, q) => (b ? Math.abs(q.y - q.x) - Math.abs(p.y - p.x) : q.x - p.x));
for (const r of rows.slice(0, top)) {
  const cols = b ? [r.x, r.y, r.y - r.x] : [r.x];
  console.log(`${cols.map((v) => v.toFixed(0).padStart(6)).join(' ')}  ${r.key}`);
}
