/**
 * What Node's parser (src/dataplane/proxy/llhttp.ts) costs per upstream answer, by the callback slots a parser has
 * set: nginx's small answer (six fields, a 24-byte body) parsed again and again by one parser each, with nothing,
 * the head, the head and the body, and all three callbacks (the raw pool's set, without message-begin). The body
 * callback is the costly one: Node hands every body piece to JavaScript as a new Buffer copied out of the read
 * (a new ArrayBuffer each, even from `execute()` with a Buffer of the caller's), whatever its size. ns per answer,
 * min and median of six rounds (docs/benchmarks.md, "Issue 17, step 6").
 *   node bench/parser-callbacks.bench.ts
 */
import { Buffer } from 'node:buffer';
import {
  kOnBody,
  kOnHeadersComplete,
  kOnMessageComplete,
  type NativeParser,
  newParser,
  RESPONSE,
  STRICT,
} from '../src/dataplane/proxy/llhttp.ts';

const ANSWER = Buffer.from(
  'HTTP/1.1 200 OK\r\nServer: nginx/1.22.1\r\nDate: Mon, 07 Dec 2026 20:40:00 GMT\r\nContent-Type: text/plain\r\n' +
    'Content-Length: 24\r\nConnection: keep-alive\r\nKeep-Alive: timeout=75\r\n\r\nhello from the upstream\n',
);
const N = 100_000;
let sink = 0;

function parser(head: boolean, body: boolean, complete: boolean): NativeParser {
  const p = newParser();
  p.initialize(RESPONSE, {}, 16 * 1024, STRICT);
  if (head)
    p[kOnHeadersComplete] = (_a: number, _b: number, fields: string[]) => {
      sink += fields.length;
      return 0;
    };
  if (body)
    p[kOnBody] = (chunk: Buffer) => {
      sink += chunk.length;
    };
  if (complete)
    p[kOnMessageComplete] = () => {
      sink++;
    };
  return p;
}

const cases: [string, NativeParser][] = [
  ['no callback', parser(false, false, false)],
  ['head', parser(true, false, false)],
  ['head + complete', parser(true, false, true)],
  ['head + body', parser(true, true, false)],
  ['head + body + complete', parser(true, true, true)],
];
// A copy made in JavaScript of the same 24 bytes, for scale (Buffer.from takes a slice of Node's pool).
const body = ANSWER.subarray(ANSWER.length - 24);
const copy = (): void => {
  sink += Buffer.from(body).length;
};

const times = new Map<string, number[]>();
for (let round = 0; round < 7; round++) {
  for (const [name, p] of cases) {
    const t = performance.now();
    for (let i = 0; i < N; i++) p.execute(ANSWER);
    if (round > 0) times.set(name, [...(times.get(name) ?? []), ((performance.now() - t) * 1e6) / N]);
  }
  const t = performance.now();
  for (let i = 0; i < N; i++) copy();
  if (round > 0)
    times.set('Buffer.from(body)', [
      ...(times.get('Buffer.from(body)') ?? []),
      ((performance.now() - t) * 1e6) / N,
    ]);
}
for (const [name, list] of times) {
  const s = [...list].sort((a, b) => a - b);
  console.log(
    `${name.padEnd(24)} min ${s[0]!.toFixed(0).padStart(5)} ns, median ${s[3]!.toFixed(0).padStart(5)} ns`,
  );
}
if (sink === 0) console.log('');
