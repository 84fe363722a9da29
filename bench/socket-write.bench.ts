/**
 * What net.Socket's Writable layer adds to a write: a 200-byte Buffer (and a 200-character string) written to a
 * loopback TCP socket with `socket.write()`, against the same bytes handed straight to the socket's libuv stream
 * (`_handle.writeBuffer` / `writeLatin1String` with a `WriteWrap` from `process.binding('stream_wrap')`, a second
 * Node internal the data path does not use). The reader is another process, so this one's user time is the
 * writer's alone: user ns per write (process.cpuUsage), min and median of 15 rounds of 200,000 writes each,
 * alternating (docs/benchmarks.md, "Issue 17, step 6"). Every write here completes at once (the count of those
 * that did not is printed).
 *   node bench/socket-write.bench.ts
 */
import { spawn } from 'node:child_process';
import net from 'node:net';

interface WriteReq {
  handle: unknown;
  oncomplete: () => void;
  async: boolean;
}
interface Handle {
  writeBuffer(req: WriteReq, data: Buffer): number;
  writeLatin1String(req: WriteReq, data: string): number;
}
const binding = (process as unknown as { binding(name: string): Record<string, unknown> }).binding(
  'stream_wrap',
);
const WriteWrap = binding.WriteWrap as new () => WriteReq;
const state = binding.streamBaseState as Int32Array;
const lastWasAsync = binding.kLastWriteWasAsync as number;

const reader = spawn(
  process.execPath,
  [
    '-e',
    "const s=require('net').createServer(c=>c.resume()).listen(0,'127.0.0.1',()=>console.log(s.address().port))",
  ],
  { stdio: ['ignore', 'pipe', 'inherit'] },
);
const port = await new Promise<number>((resolve) =>
  reader.stdout.once('data', (d) => resolve(Number(String(d)))),
);
const socket = net.connect({ port, host: '127.0.0.1', noDelay: true });
await new Promise((resolve) => socket.once('connect', resolve));
const handle = (socket as unknown as { _handle: Handle })._handle;

const buf = Buffer.alloc(200, 120);
const str = 'x'.repeat(200);
let pending = 0;
const done = (): void => {};
function direct(data: Buffer | string): void {
  const req = new WriteWrap();
  req.handle = handle;
  req.oncomplete = done;
  req.async = false;
  const err = typeof data === 'string' ? handle.writeLatin1String(req, data) : handle.writeBuffer(req, data);
  if (err !== 0) throw new Error(`write failed: ${err}`);
  if (state[lastWasAsync] !== 0) pending++;
}
const modes: [string, () => void][] = [
  ['socket.write(Buffer)', () => socket.write(buf)],
  ['handle, Buffer', () => direct(buf)],
  ['socket.write(string)', () => socket.write(str, 'latin1')],
  ['handle, string', () => direct(str)],
];
const N = 200_000;
const times = new Map<string, number[]>();
for (let round = 0; round < 16; round++)
  for (const [name, write] of modes) {
    const before = process.cpuUsage();
    for (let i = 0; i < N; i++) {
      write();
      if ((i & 31) === 0) await new Promise(setImmediate);
    }
    if (round > 0) times.set(name, [...(times.get(name) ?? []), (process.cpuUsage(before).user * 1000) / N]);
  }
for (const [name, list] of times) {
  const s = [...list].sort((a, b) => a - b);
  console.log(
    `${name.padEnd(22)} min ${s[0]!.toFixed(0).padStart(5)} ns, median ${s[7]!.toFixed(0).padStart(5)} ns`,
  );
}
console.log(`writes that did not complete at once: ${pending}`);
socket.destroy();
reader.kill();
