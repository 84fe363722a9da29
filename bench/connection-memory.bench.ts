/**
 * Memory per idle keep-alive client connection and per pooled upstream connection of one edgegate worker, for
 * data path (both raw, the default; `--http1-server node`; `--upstream-client undici`): the growth of the worker's resident set (VmRSS, after it
 * settles), which is what an operator sizes a pod by.
 *
 *   node bench/connection-memory.bench.ts [connections=2000] [rounds=2]
 *
 * Steps per client, in one gateway process (primary + 1 worker on loopback, a Node upstream in this process):
 * 1. warm: a few requests; RSS₀.
 * 2. N client connections each send one request answered at once and stay open idle: RSS₁ → (RSS₁−RSS₀)/N per
 *    idle client connection (node:http's server socket, parser slot, the gateway's per-connection state).
 * 3. N requests at once on those connections, held by the upstream until all N arrived (so the pool opens N
 *    upstream connections), then answered; the N upstream connections stay pooled (keep-alive 60 s): RSS₂ →
 *    (RSS₂−RSS₁)/N per pooled upstream connection.
 */
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import net, { type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const REPO = join(import.meta.dirname, '..');
const N = Number(process.argv[2] ?? 2000);
const ROUNDS = Number(process.argv[3] ?? 2);

async function freePort(): Promise<number> {
  const s = net.createServer().listen(0, '127.0.0.1');
  await once(s, 'listening');
  const port = (s.address() as AddressInfo).port;
  s.close();
  return port;
}

function rssKiB(pid: number): number {
  return Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? 0);
}

function workerPid(primary: number): number {
  const kids = readFileSync(`/proc/${primary}/task/${primary}/children`, 'utf8').trim().split(/\s+/);
  return Number(kids[0]);
}

/** RSS after the worker has been quiet a while (V8 shrinks its heap at idle-time GCs). */
async function settledRss(pid: number): Promise<number> {
  let last = rssKiB(pid);
  for (let i = 0; i < 20; i++) {
    await new Promise((r) => setTimeout(r, 250));
    const now = rssKiB(pid);
    if (Math.abs(now - last) < 64) return now;
    last = now;
  }
  return last;
}

/** One request on a raw socket with keep-alive; resolves when the whole answer is in. */
function ask(sock: net.Socket, port: number): Promise<void> {
  return new Promise((resolve, reject) => {
    let buf = '';
    const onData = (d: Buffer) => {
      buf += d.toString('latin1');
      const end = buf.indexOf('\r\n\r\n');
      if (end < 0) return;
      const len = Number(/content-length: (\d+)/i.exec(buf.slice(0, end))?.[1] ?? 0);
      if (buf.length >= end + 4 + len) {
        sock.off('data', onData);
        if (!buf.startsWith('HTTP/1.1 200')) reject(new Error(buf.slice(0, 200)));
        else resolve();
      }
    };
    sock.on('data', onData);
    sock.write(`GET /mem HTTP/1.1\r\nHost: mem.test:${port}\r\n\r\n`);
  });
}

/** The data paths compared: both raw (the default), node:http's server, undici's upstream client. */
const VARIANTS = {
  raw: [] as string[],
  nodehttp: ['--http1-server', 'node'],
  undici: ['--upstream-client', 'undici'],
} as const;
type Variant = keyof typeof VARIANTS;
const NAMES = Object.keys(VARIANTS) as Variant[];

async function measure(client: Variant): Promise<{ client: number; upstream: number }> {
  // The upstream: answers at once, or holds every request until `hold` of them are waiting.
  let hold = 0;
  let held: http.ServerResponse[] = [];
  const upstream = http.createServer((_req, res) => {
    if (hold === 0) return res.end('ok');
    held.push(res);
    if (held.length >= hold) {
      for (const r of held) r.end('ok');
      held = [];
      hold = 0;
    }
  });
  upstream.keepAliveTimeout = 120_000;
  upstream.maxConnections = N + 100;
  upstream.listen(0, '127.0.0.1');
  await once(upstream, 'listening');
  const up = (upstream.address() as AddressInfo).port;
  const work = join(tmpdir(), `edgegate-mem-${process.pid}-${client}`);
  mkdirSync(join(work, 'routes'), { recursive: true });
  writeFileSync(
    join(work, 'catalog.yaml'),
    `datacenters:\n  dc1:\n    services:\n      mem:\n        - { address: 127.0.0.1, port: ${up}, tags: [edge] }\n`,
  );
  writeFileSync(
    join(work, 'routes', 'mem.yaml'),
    `apiVersion: edgegate.io/v1alpha1
kind: GatewayRoute
metadata: { name: mem, namespace: bench }
spec:
  hostnames: ["mem.test"]
  rules:
    - matches: [{ path: { type: PathPrefix, value: / } }]
      backends:
        - consul: { service: mem, datacenter: dc1 }
          pool: { maxConnections: ${N}, keepAliveTimeout: 60s, maxPendingRequests: ${N} }
`,
  );
  const port = await freePort();
  const admin = await freePort();
  const gw = spawn(
    join(REPO, 'node_modules', '.bin', 'node'),
    [
      join(REPO, 'cmd', 'edgegate.ts'),
      'run',
      ...['--listen', `127.0.0.1:${port}`, '--admin', `127.0.0.1:${admin}`],
      ...['--routes', join(work, 'routes'), '--catalog', join(work, 'catalog.yaml'), '--datacenter', 'dc1'],
      ...['--workers', '1', '--log-level', 'warn', '--access-log', 'off'],
      ...VARIANTS[client],
      ...['--max-client-connections', String(N + 100)],
    ],
    { stdio: ['ignore', 'inherit', 'inherit'], env: { ...process.env, EDGEGATE_OVERLOAD_DELAY: '0' } },
  );
  try {
    for (let i = 0; ; i++) {
      const ok = await fetch(`http://127.0.0.1:${admin}/readyz`).then(
        (r) => r.ok,
        () => false,
      );
      if (ok) break;
      if (i > 100) throw new Error('gateway not ready');
      await new Promise((r) => setTimeout(r, 200));
    }
    const pid = workerPid(gw.pid!);
    const warm = net.connect(port, '127.0.0.1');
    await once(warm, 'connect');
    for (let i = 0; i < 200; i++) await ask(warm, port);
    const rss0 = await settledRss(pid);
    const socks: net.Socket[] = [];
    for (let i = 0; i < N; i++) {
      const s = net.connect(port, '127.0.0.1');
      await once(s, 'connect');
      socks.push(s);
      await ask(s, port);
    }
    const rss1 = await settledRss(pid);
    hold = N;
    await Promise.all(socks.map((s) => ask(s, port)));
    const rss2 = await settledRss(pid);
    for (const s of socks) s.destroy();
    warm.destroy();
    return { client: ((rss1 - rss0) * 1024) / N, upstream: ((rss2 - rss1) * 1024) / N };
  } finally {
    gw.kill('SIGTERM');
    await once(gw, 'exit');
    upstream.closeAllConnections();
    upstream.close();
  }
}

const out: Record<string, { client: number[]; upstream: number[] }> = {};
for (const c of NAMES) out[c] = { client: [], upstream: [] };
for (let r = 0; r < ROUNDS; r++) {
  for (const c of r % 2 === 0 ? NAMES : [...NAMES].reverse()) {
    const m = await measure(c);
    out[c]!.client.push(m.client);
    out[c]!.upstream.push(m.upstream);
    console.log(
      `${c}: ${Math.round(m.client)} bytes per idle client connection, ${Math.round(m.upstream)} bytes per pooled upstream connection (N=${N})`,
    );
  }
}
/** The range over rounds, in KiB (two rounds have no meaningful median). */
const range = (xs: number[]) =>
  `${(Math.min(...xs) / 1024).toFixed(1)}–${(Math.max(...xs) / 1024).toFixed(1)} KiB`;
for (const c of NAMES)
  console.log(`${c}: client ${range(out[c]!.client)}, upstream ${range(out[c]!.upstream)} per connection`);
