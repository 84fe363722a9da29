/**
 * The per-request cost of a rate limit by scope — none, Node (pod-wide bucket in the primary), Global (Redis), and
 * Global keyed per request (a fresh key each time: every request a round trip worker → primary → Redis) — and of
 * PROXY protocol per connection (off; on with v1 and v2 headers). One `edgegate run --workers 1` (primary + one
 * worker), a real redis-server and a small upstream, all on loopback; limits far above the offered rate so every
 * request is admitted and the cost measured is the decision's, not a 429's. Rounds alternate the paths (ABCD…) so
 * a noisy shared machine affects all alike. Reports requests/s, latency p50/p99 (wrk) and the gateway's CPU µs
 * per request (primary + worker, from /proc).
 *
 *   node bench/global-rate-limit.bench.ts [rounds=4] [seconds=3]
 */
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { type AddressInfo, connect, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { cpuSeconds } from './lib/system.ts';

const rounds = Number(process.argv[2] ?? 4);
const seconds = Number(process.argv[3] ?? 3);
const ROOT = resolve(import.meta.dirname, '..');
const work = mkdtempSync(join(tmpdir(), 'edgegate-rl-bench-'));
const children: ChildProcess[] = [];
process.on('exit', () => {
  for (const c of children) c.kill('SIGKILL');
  rmSync(work, { recursive: true, force: true });
});

async function freePort(): Promise<number> {
  const s = createServer();
  s.listen(0, '127.0.0.1');
  await once(s, 'listening');
  const { port } = s.address() as AddressInfo;
  await new Promise((r) => s.close(r));
  return port;
}

async function until(what: string, check: () => Promise<boolean>): Promise<void> {
  const deadline = Date.now() + 30_000;
  while (Date.now() < deadline) {
    if (await check().catch(() => false)) return;
    await sleep(100);
  }
  throw new Error(`timed out waiting for ${what}`);
}

// ── Servers ───────────────────────────────────────────────────────────────────────────────────────────────────
// A separate process: wrk runs synchronously here and would block an in-process upstream.
const upstreamPort = await freePort();
writeFileSync(
  join(work, 'upstream.mjs'),
  `import { createServer } from 'node:http';
const s = createServer((req, res) => { res.writeHead(200, { 'content-length': 3 }); res.end('ok\\n'); });
s.keepAliveTimeout = 60000;
s.listen(Number(process.argv[2]), '127.0.0.1');`,
);
children.push(
  spawn(process.execPath, [join(work, 'upstream.mjs'), String(upstreamPort)], { stdio: 'inherit' }),
);

const redisPort = await freePort();
const redis = spawn(
  'redis-server',
  ['--port', String(redisPort), '--bind', '127.0.0.1', '--dir', work, '--save', '', '--appendonly', 'no'],
  { stdio: 'ignore' },
);
children.push(redis);

const routes = join(work, 'routes');
mkdirSync(routes);
const huge = 1_000_000_000;
const rule = (name: string, rateLimit?: object) => ({
  name,
  matches: [{ path: { type: 'PathPrefix', value: `/${name}` } }],
  backends: [{ consul: { service: 'up' } }],
  ...(rateLimit ? { policies: { rateLimit } } : {}),
});
writeFileSync(
  join(routes, 'bench.yaml'),
  JSON.stringify({
    apiVersion: 'edgegate.io/v1alpha1',
    kind: 'GatewayRoute',
    metadata: { name: 'bench', namespace: 'default' },
    spec: {
      rules: [
        rule('none'),
        // 20,000/s: a worker leases 400 tokens (20 ms worth) at a time, one Redis call per 400 requests.
        rule('node', { requests: 20_000, burst: 20_000 }),
        rule('global', { requests: 20_000, burst: 20_000, scope: 'Global' }),
        rule('global-per-key', {
          requests: huge,
          burst: huge,
          scope: 'Global',
          key: 'Header',
          header: 'x-k',
        }),
      ],
    },
  }),
);
writeFileSync(
  join(work, 'catalog.yaml'),
  JSON.stringify({
    datacenters: { dc1: { services: { up: [{ address: '127.0.0.1', port: upstreamPort, tags: [] }] } } },
  }),
);

async function startGateway(
  extra: string[],
): Promise<{ port: number; admin: number; pid: number; proc: ChildProcess }> {
  const port = await freePort();
  const admin = await freePort();
  const proc = spawn(
    process.execPath,
    [
      join(ROOT, 'cmd', 'edgegate.ts'),
      'run',
      '--workers',
      '1',
      '--routes',
      routes,
      '--catalog',
      join(work, 'catalog.yaml'),
      '--listen',
      `127.0.0.1:${port}`,
      '--admin',
      `127.0.0.1:${admin}`,
      '--access-log',
      'off',
      '--log-level',
      'warn',
      '--redis-url',
      `redis://127.0.0.1:${redisPort}`,
      ...extra,
    ],
    { stdio: 'inherit' },
  );
  children.push(proc);
  await until('the gateway', async () => (await fetch(`http://127.0.0.1:${admin}/readyz`)).status === 200);
  return { port, admin, pid: proc.pid!, proc };
}

// ── Rate limit by scope: wrk, keep-alive ──────────────────────────────────────────────────────────────────────
const perKeyLua = join(work, 'per-key.lua');
writeFileSync(
  perKeyLua,
  'local n = 0\nrequest = function()\n  n = n + 1\n  return wrk.format("GET", "/global-per-key", { ["Host"] = "bench.test", ["x-k"] = tostring(math.random(1, 1000000000)) .. "-" .. n })\nend\n',
);
const hostLua = join(work, 'host.lua');
writeFileSync(hostLua, 'wrk.headers["Host"] = "bench.test"\n');

interface Sample {
  rps: number;
  p50: number;
  p99: number;
  cpuUs: number;
}

function wrk(port: number, path: string, script: string, pid: number): Sample {
  const cpu0 = cpuSeconds(pid);
  const out = execFileSync(
    'wrk',
    ['-t1', '-c16', `-d${seconds}s`, '--latency', '-s', script, `http://127.0.0.1:${port}${path}`],
    { encoding: 'utf8' },
  );
  const cpu = cpuSeconds(pid) - cpu0;
  const requests = Number(/(\d+) requests in/.exec(out)?.[1] ?? 0);
  if (requests === 0) throw new Error(`${path}: wrk made no request:\n${out}`);
  const non2xx = Number(/Non-2xx or 3xx responses: (\d+)/.exec(out)?.[1] ?? 0);
  if (non2xx > 0) throw new Error(`${path}: ${non2xx} non-2xx answers`);
  const ms = (label: string) => {
    const m = new RegExp(`${label}%\\s+([\\d.]+)(us|ms|s)`).exec(out);
    if (!m) return Number.NaN;
    return Number(m[1]) * (m[2] === 'us' ? 0.001 : m[2] === 's' ? 1000 : 1);
  };
  return { rps: requests / seconds, p50: ms('50'), p99: ms('99'), cpuUs: (cpu / requests) * 1e6 };
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

await until('redis', async () => {
  const s = connect(redisPort, '127.0.0.1');
  await once(s, 'connect');
  s.destroy();
  return true;
});
const gw = await startGateway([]);
const paths: [string, string, string][] = [
  ['no rate limit', '/none', hostLua],
  ['scope Node', '/node', hostLua],
  ['scope Global, one key (a Redis lease per 400 requests)', '/global', hostLua],
  ['scope Global, a new key per request', '/global-per-key', perKeyLua],
];
const samples = new Map<string, Sample[]>(paths.map(([n]) => [n, []]));
for (const [, path, script] of paths) wrk(gw.port, path, script, gw.pid); // warm-up
for (let r = 0; r < rounds; r++)
  for (const [name, path, script] of r % 2 ? [...paths].reverse() : paths)
    samples.get(name)!.push(wrk(gw.port, path, script, gw.pid));

console.log(`\nrate limit by scope: ${rounds} rounds × ${seconds} s, wrk -t1 -c16, median of rounds\n`);
console.log('| path | requests/s | p50 ms | p99 ms | gateway CPU µs/request |');
console.log('| --- | --- | --- | --- | --- |');
for (const [name] of paths) {
  const s = samples.get(name)!;
  console.log(
    `| ${name} | ${median(s.map((x) => x.rps)).toFixed(0)} | ${median(s.map((x) => x.p50)).toFixed(2)} | ${median(s.map((x) => x.p99)).toFixed(2)} | ${median(s.map((x) => x.cpuUs)).toFixed(1)} |`,
  );
}
// Every Global decision should have been the store's: a failed one (timeout under load) would flatter the figures.
const prom = await (await fetch(`http://127.0.0.1:${gw.admin}/metrics`)).text();
const failed = [
  ...prom.matchAll(/^edgegate_rate_limit_global_decisions_total\{[^}]*outcome="failed_\w+"[^}]*\} (\d+)/gm),
]
  .map((m) => Number(m[1]))
  .reduce((a, b) => a + b, 0);
const calls = /^edgegate_rate_limit_store_calls_total\{result="ok"\} (\d+)/m.exec(prom)?.[1];
console.log(
  `\nGlobal decisions the store could not make (failureMode decided): ${failed}; store calls ok: ${calls}`,
);
gw.proc.kill('SIGTERM');
await once(gw.proc, 'exit');

// ── PROXY protocol: one connection per request ───────────────────────────────────────────────────────────────
const V2 = Buffer.concat([
  Buffer.from([
    0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a, 0x21, 0x11, 0x00, 0x0c,
  ]),
  Buffer.from([203, 0, 113, 7, 127, 0, 0, 1, 0x9c, 0x40, 0x00, 0x50]),
]);
const V1 = Buffer.from('PROXY TCP4 203.0.113.7 127.0.0.1 40000 80\r\n');
const REQ = Buffer.from('GET /none HTTP/1.1\r\nHost: bench.test\r\nConnection: close\r\n\r\n');

async function connections(port: number, header: Buffer | undefined, pid: number): Promise<Sample> {
  const deadline = performance.now() + seconds * 1000;
  const latencies: number[] = [];
  const cpu0 = cpuSeconds(pid);
  const one = () =>
    new Promise<void>((res, rej) => {
      const t0 = performance.now();
      const s = connect(port, '127.0.0.1', () => s.write(header ? Buffer.concat([header, REQ]) : REQ));
      let ok = false;
      s.on('data', (d: Buffer) => {
        if (!ok && d.subarray(0, 12).toString() === 'HTTP/1.1 200') ok = true;
      });
      s.on('error', rej);
      s.on('close', () => {
        if (!ok) return rej(new Error('no 200'));
        latencies.push(performance.now() - t0);
        res();
      });
    });
  await Promise.all(
    Array.from({ length: 8 }, async () => {
      while (performance.now() < deadline) await one();
    }),
  );
  const cpu = cpuSeconds(pid) - cpu0;
  latencies.sort((a, b) => a - b);
  return {
    rps: latencies.length / seconds,
    p50: latencies[Math.floor(latencies.length / 2)]!,
    p99: latencies[Math.floor(latencies.length * 0.99)]!,
    cpuUs: (cpu / latencies.length) * 1e6,
  };
}

const off = await startGateway([]);
const on = await startGateway(['--proxy-protocol', '127.0.0.1/32']);
const cases: [string, () => Promise<Sample>][] = [
  ['PROXY protocol off', () => connections(off.port, undefined, off.pid)],
  ['PROXY protocol on, v1 header', () => connections(on.port, V1, on.pid)],
  ['PROXY protocol on, v2 header', () => connections(on.port, V2, on.pid)],
];
const pp = new Map<string, Sample[]>(cases.map(([n]) => [n, []]));
for (const [, run] of cases) await run(); // warm-up
for (let r = 0; r < rounds; r++)
  for (const [name, run] of r % 2 ? [...cases].reverse() : cases) pp.get(name)!.push(await run());
console.log(
  `\nPROXY protocol: a new connection per request (8 at a time), ${rounds} rounds × ${seconds} s\n`,
);
console.log('| case | connections/s | p50 ms | p99 ms | gateway CPU µs/connection |');
console.log('| --- | --- | --- | --- | --- |');
for (const [name] of cases) {
  const s = pp.get(name)!;
  console.log(
    `| ${name} | ${median(s.map((x) => x.rps)).toFixed(0)} | ${median(s.map((x) => x.p50)).toFixed(2)} | ${median(s.map((x) => x.p99)).toFixed(2)} | ${median(s.map((x) => x.cpuUs)).toFixed(1)} |`,
  );
}
process.exit(0);
