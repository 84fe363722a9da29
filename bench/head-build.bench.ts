/**
 * Three ways to build an HTTP/1.1 head of eight fields from a parser's flat list and put it into a Buffer: string
 * concatenation (what raw-messages.ts and raw-pool.ts do: V8 makes a rope, flattened once when written), an array
 * joined once, and each piece written into a Buffer with `write(…, 'latin1')`. ns per head, min and median of six rounds
 * over fresh strings (docs/benchmarks.md, "Issue 17, step 6").
 *   node bench/head-build.bench.ts
 */
import { Buffer } from 'node:buffer';

const NAMES = [
  'server',
  'date',
  'content-type',
  'content-length',
  'last-modified',
  'etag',
  'accept-ranges',
  'x-request-id',
];
const VALUES = [
  'nginx/1.22.1',
  'Mon, 07 Dec 2026 20:40:00 GMT',
  'text/plain',
  '24',
  'Mon, 07 Dec 2026 10:00:00 GMT',
  '"6570-18"',
  'bytes',
  '6f1c2b3a-1d2e-4f50-9a8b-7c6d5e4f3a2b',
];
/** New strings each time, as a parser makes them (never seen by the string table). */
const fresh = (): string[] => NAMES.flatMap((n, i) => [` ${n}`.slice(1), ` ${VALUES[i]}`.slice(1)]);
const out = Buffer.allocUnsafe(4096);
let sink = 0;

function concatenated(flat: string[]): void {
  let head = 'HTTP/1.1 200 OK\r\n';
  for (let i = 0; i < flat.length; i += 2) head += `${flat[i]}: ${flat[i + 1]}\r\n`;
  head += 'Connection: keep-alive\r\n\r\n';
  sink += out.write(head, 0, 'latin1');
}
function joined(flat: string[]): void {
  const parts = ['HTTP/1.1 200 OK\r\n'];
  for (let i = 0; i < flat.length; i += 2) parts.push(flat[i]!, ': ', flat[i + 1]!, '\r\n');
  parts.push('Connection: keep-alive\r\n\r\n');
  sink += out.write(parts.join(''), 0, 'latin1');
}
function pieces(flat: string[]): void {
  let at = out.write('HTTP/1.1 200 OK\r\n', 0, 'latin1');
  for (let i = 0; i < flat.length; i += 2) {
    at += out.write(flat[i]!, at, 'latin1');
    at += out.write(': ', at, 'latin1');
    at += out.write(flat[i + 1]!, at, 'latin1');
    at += out.write('\r\n', at, 'latin1');
  }
  sink += at + out.write('Connection: keep-alive\r\n\r\n', at, 'latin1');
}

const inputs = Array.from({ length: 1000 }, fresh);
const times = new Map<string, number[]>();
for (let round = 0; round < 7; round++)
  for (const f of [concatenated, joined, pieces]) {
    const t = performance.now();
    for (let k = 0; k < 200; k++) for (const flat of inputs) f(flat);
    if (round > 0)
      times.set(f.name, [...(times.get(f.name) ?? []), ((performance.now() - t) * 1e6) / 200_000]);
  }
for (const [name, list] of times) {
  const s = [...list].sort((a, b) => a - b);
  console.log(
    `${name.padEnd(13)} min ${s[0]!.toFixed(0).padStart(5)} ns, median ${s[3]!.toFixed(0).padStart(5)} ns`,
  );
}
if (sink === 0) console.log('');
