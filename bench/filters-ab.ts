/**
 * Per-request cost of the route filters (CORS, RequestMirror, ResponseCompression), same-process A/B in the style of
 * ab-same-process.ts: several gateways in this one process, each on its own port with one route, loaded in turn
 * (rotating order, `rounds` × 3 s each) with wrk; reports the CPU µs per request of this process (the gateways only:
 * upstream and wrk run in other processes on CPU 0) and requests/s. Variants:
 *
 *   before        the BEFORE checkout (no filters exist there), 24-byte answers
 *   off           this checkout, a route without filters, 24-byte answers: must equal `before`
 *   cors          CORS filter, GET with an allowed Origin (response headers added)
 *   preflight     CORS filter, OPTIONS preflights (answered by the gateway, no upstream)
 *   mirror        RequestMirror 100 % to a second upstream
 *   off-4k        no filter, 4 KiB JSON answers (the base of the compression lines)
 *   gzip/br/zstd  ResponseCompression, 4 KiB JSON answers, Accept-Encoding asking for that one encoding
 *
 *   mkdir /tmp/before && git archive BASE | tar -x -C /tmp/before && ln -s "$PWD/node_modules" /tmp/before/node_modules
 *   taskset -c 1 node bench/filters-ab.ts /tmp/before 5
 *   taskset -c 1 node bench/filters-ab.ts /tmp/before 12 before,off     (the "off costs nothing" check alone)
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';

const [beforeDir, roundsArg = '5', only] = process.argv.slice(2);
if (!beforeDir) {
  console.error('usage: node bench/filters-ab.ts BEFORE_DIR [rounds] [variant,variant…]');
  process.exit(2);
}
const work = mkdtempSync(join(tmpdir(), 'edgegate-filters-ab-'));
const JSON_4K = JSON.stringify(
  Array.from({ length: 80 }, (_, i) => ({ id: i, name: `item ${i}`, tags: ['a', 'b'] })),
).slice(0, 4096);
writeFileSync(
  join(work, 'upstream.mjs'),
  `import { createServer } from 'node:http';
const big = ${JSON.stringify(JSON_4K)};
createServer((req, res) => {
  req.resume();
  if (req.url.startsWith('/4k')) { res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(big) }); return res.end(big); }
  res.writeHead(200, { 'content-length': 24 }); res.end('hello from the upstream\\n');
}).listen(Number(process.argv[2]), '127.0.0.1');`,
);
writeFileSync(
  join(work, 'preflight.lua'),
  `wrk.method = "OPTIONS"
wrk.headers["Origin"] = "https://app.example.com"
wrk.headers["Access-Control-Request-Method"] = "PUT"
wrk.headers["Access-Control-Request-Headers"] = "content-type"
`,
);
const UPSTREAM = 18_501;
const MIRROR = 18_502;
const upstreams = [UPSTREAM, MIRROR].map((port) =>
  spawn('taskset', ['-c', '0', process.execPath, join(work, 'upstream.mjs'), String(port)], {
    stdio: 'ignore',
  }),
);
await new Promise((r) => setTimeout(r, 500));

interface Variant {
  dir: string;
  filters: unknown[];
  path: string;
  wrkArgs: string[];
}
const here = resolve(import.meta.dirname, '..');
const cors = {
  type: 'CORS',
  cors: {
    allowOrigins: ['https://app.example.com', 'https://*.example.org'],
    allowMethods: ['GET', 'PUT'],
    allowHeaders: ['content-type'],
    exposeHeaders: ['x-total'],
    allowCredentials: true,
  },
};
const compression = { type: 'ResponseCompression', responseCompression: {} };
const ae = (enc: string) => ['-H', `Accept-Encoding: ${enc}`];
const variants: Record<string, Variant> = {
  before: { dir: resolve(beforeDir), filters: [], path: '/x', wrkArgs: [] },
  off: { dir: here, filters: [], path: '/x', wrkArgs: [] },
  cors: { dir: here, filters: [cors], path: '/x', wrkArgs: ['-H', 'Origin: https://app.example.com'] },
  preflight: { dir: here, filters: [cors], path: '/x', wrkArgs: ['-s', join(work, 'preflight.lua')] },
  mirror: {
    dir: here,
    filters: [{ type: 'RequestMirror', requestMirror: { backendRef: { consul: { service: 'shadow' } } } }],
    path: '/x',
    wrkArgs: [],
  },
  'off-4k': { dir: here, filters: [], path: '/4k', wrkArgs: ae('gzip, br, zstd') },
  gzip: { dir: here, filters: [compression], path: '/4k', wrkArgs: ae('gzip') },
  br: { dir: here, filters: [compression], path: '/4k', wrkArgs: ae('br') },
  zstd: { dir: here, filters: [compression], path: '/4k', wrkArgs: ae('zstd') },
};

if (only)
  for (const name of Object.keys(variants)) if (!only.split(',').includes(name)) delete variants[name];

const instance = (id: string, port: number) => ({
  id,
  address: '127.0.0.1',
  port,
  tags: [],
  meta: {},
  health: 'passing',
  weight: 1,
});
const ports: Record<string, number> = {};
let next = 18_520;
for (const [name, v] of Object.entries(variants)) {
  const { ProxyPipeline } = await import(join(v.dir, 'src/dataplane/proxy/proxy.ts'));
  const { createProxyServer } = await import(join(v.dir, 'src/dataplane/proxy/server.ts'));
  const { compile } = await import(join(v.dir, 'src/compile/compile.ts'));
  const rule: Record<string, unknown> = { backends: [{ consul: { service: 'up' } }] };
  if (v.filters.length > 0) rule.filters = v.filters;
  const { table, statuses } = compile({
    routes: [
      {
        raw: {
          apiVersion: 'edgegate.io/v1alpha1',
          kind: 'GatewayRoute',
          metadata: { name: `ab-${name}`, namespace: 'default' },
          spec: { rules: [rule] },
        },
        origin: 'ab',
      },
    ],
    catalog: {
      localDatacenter: 'dc1',
      datacenters: { dc1: { services: { up: [instance('a', UPSTREAM)], shadow: [instance('m', MIRROR)] } } },
    },
  });
  if (!statuses[0].accepted) throw new Error(`${name}: ${JSON.stringify(statuses[0].errors)}`);
  const proxy = new ProxyPipeline({});
  proxy.setTable({ ...table, version: 1 });
  const port = next++;
  const server = createProxyServer(proxy);
  await new Promise<void>((r) => server.listen(port, '127.0.0.1', () => r()));
  ports[name] = port;
}

function load(name: string, seconds: number): Promise<string> {
  const v = variants[name]!;
  const args = [
    'wrk',
    '-t1',
    '-c50',
    `-d${seconds}s`,
    ...v.wrkArgs,
    `http://127.0.0.1:${ports[name]}${v.path}`,
  ];
  return new Promise((done) => {
    const p = spawn('taskset', ['-c', '0', ...args]);
    let out = '';
    p.stdout.on('data', (d: Buffer) => {
      out += d.toString();
    });
    p.on('close', () => done(out));
  });
}

/** Requests and requests/s; wrk's socket timeouts (2 s) are counted, not fatal: the machine may be shared. */
function parse(out: string): { requests: number; rps: number; timeouts: number } {
  if (/Non-2xx|Socket errors: connect [1-9]|read [1-9]|write [1-9]/.test(out)) throw new Error(out);
  return {
    requests: Number(/(\d+) requests in/.exec(out)![1]),
    rps: Number(/Requests\/sec:\s+([\d.]+)/.exec(out)![1]),
    timeouts: Number(/timeout (\d+)/.exec(out)?.[1] ?? 0),
  };
}

const names = Object.keys(variants);
const results: Record<string, { us: number; rps: number; timeouts: number }[]> = Object.fromEntries(
  names.map((n) => [n, []]),
);
for (const name of names) await load(name, 1);
for (let round = 0; round < Number(roundsArg); round++) {
  // Rotate the order each round so no variant always runs first or last.
  const order = names.map((_, i) => names[(i + round) % names.length]!);
  for (const name of order) {
    const c0 = process.cpuUsage();
    const r = parse(await load(name, 3));
    const c = process.cpuUsage(c0);
    results[name]!.push({ us: (c.user + c.system) / r.requests, rps: r.rps, timeouts: r.timeouts });
  }
}
for (const u of upstreams) u.kill();
rmSync(work, { recursive: true, force: true });
console.log('| variant | CPU µs/request min | median | req/s median | wrk timeouts |');
console.log('| --- | --- | --- | --- | --- |');
for (const [name, r] of Object.entries(results)) {
  const us = r.map((x) => x.us).sort((a, b) => a - b);
  const rps = r.map((x) => x.rps).sort((a, b) => a - b);
  console.log(
    `| ${name} | ${us[0]!.toFixed(1)} | ${us[us.length >> 1]!.toFixed(1)} | ${rps[rps.length >> 1]!.toFixed(0)} | ${r.reduce((n, x) => n + x.timeouts, 0)} |`,
  );
}
process.exit(0);
