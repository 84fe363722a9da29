// Summarizes V8's `--trace-gc-nvp` records (Node 26 prints `GC: {json}` per collection) read from stdin.
//   node bench/lib/gc-summary.mjs pauses      → pauses by kind (s: scavenge, ms: mark-sweep-compact, mc: minor MC)
//   node bench/lib/gc-summary.mjs scavenges N → mean pause and promoted bytes of the last N scavenges
import { stdin } from 'node:process';

let text = '';
stdin.setEncoding('utf8');
stdin.on('data', (d) => {
  text += d;
});
stdin.on('end', () => {
  const records = [];
  for (const line of text.split('\n')) {
    const at = line.indexOf('GC: {');
    if (at >= 0) records.push(JSON.parse(line.slice(at + 4)));
  }
  if (process.argv[2] === 'scavenges') {
    const last = records.filter((r) => r.gc === 's').slice(-Number(process.argv[3] ?? 6));
    if (last.length === 0) return console.log('no scavenge logged');
    const mean = (f) => last.reduce((a, r) => a + f(r), 0) / last.length;
    return console.log(
      `last scavenges: pause ${mean((r) => r.pause).toFixed(1)} ms, promoted ${(mean((r) => r.promoted) / 1e6).toFixed(2)} MB`,
    );
  }
  const by = new Map();
  for (const r of records) {
    const k = by.get(r.gc) ?? { n: 0, total: 0, longest: 0 };
    k.n++;
    k.total += r.pause;
    k.longest = Math.max(k.longest, r.pause);
    by.set(r.gc, k);
  }
  if (by.size === 0) console.log('no GC logged');
  for (const [kind, k] of by)
    console.log(
      `gc=${kind}: ${k.n} pauses, ${k.total.toFixed(1)} ms in all, longest ${k.longest.toFixed(1)} ms`,
    );
});
