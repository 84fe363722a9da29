/**
 * Same-process A/B of the request path: the proxy of two checkouts (BEFORE and this one) served side by side from
 * one process, measured alternately (ABBA order, `rounds` times 3 s) with wrk (HTTP/1.1) or h2load (HTTP/2 over
 * TLS). Both builds see the same machine at almost the same moment, so on a shared, noisy machine the comparison
 * holds up better than two separate runs. Reports CPU µs per request of the gateway process (min and median) and
 * requests/s. Needs wrk, h2load and openssl; the gateway runs on CPU 1, upstream and load on CPU 0.
 *
 *   mkdir /tmp/before && git archive BASE | tar -x -C /tmp/before && ln -s "$PWD/node_modules" /tmp/before/node_modules
 *   taskset -c 1 node bench/ab-same-process.ts /tmp/before 20 h1
 *   taskset -c 1 node bench/ab-same-process.ts /tmp/before 20 h2
 */
import { execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';

const [beforeDir, roundsArg = '10', proto = 'h1'] = process.argv.slice(2);
if (!beforeDir || (proto !== 'h1' && proto !== 'h2')) {
  console.error('usage: node bench/ab-same-process.ts BEFORE_DIR [rounds] [h1|h2]');
  process.exit(2);
}
const builds: Record<string, string> = {
  before: resolve(beforeDir),
  after: resolve(import.meta.dirname, '..'),
};
const work = mkdtempSync(join(tmpdir(), 'edgegate-ab-same-'));
writeFileSync(
  join(work, 'upstream.mjs'),
  `import { createServer } from 'node:http';
createServer((req, res) => { res.writeHead(200, { 'content-length': 24 }); res.end('hello from the upstream\\n'); })
  .listen(Number(process.argv[2]), '127.0.0.1');`,
);
execFileSync('openssl', [
  'req',
  '-x509',
  '-newkey',
  'ec',
  '-pkeyopt',
  'ec_paramgen_curve:prime256v1',
  '-nodes',
  '-keyout',
  join(work, 'k.pem'),
  '-out',
  join(work, 'c.pem'),
  '-days',
  '1',
  '-subj',
  '/CN=ab.test',
  '-addext',
  'subjectAltName=DNS:ab.test',
]);
const UPSTREAM = 18_401;
const upstream = spawn(
  'taskset',
  ['-c', '0', process.execPath, join(work, 'upstream.mjs'), String(UPSTREAM)],
  {
    stdio: 'ignore',
  },
);
await new Promise((r) => setTimeout(r, 500));

const ports: Record<string, number> = {};
let next = 18_420;
const quiet = { error() {}, warn() {}, info() {}, debug() {} };
for (const [name, dir] of Object.entries(builds)) {
  const { ProxyPipeline } = await import(join(dir, 'src/dataplane/proxy/proxy.ts'));
  const { createProxyServer } = await import(join(dir, 'src/dataplane/proxy/server.ts'));
  const { TlsListener } = await import(join(dir, 'src/dataplane/tls/tls-listener.ts'));
  const { compile } = await import(join(dir, 'src/compile/compile.ts'));
  const { table } = compile({
    routes: [
      {
        raw: {
          apiVersion: 'edgegate.io/v1alpha1',
          kind: 'GatewayRoute',
          metadata: { name: 'ab', namespace: 'default' },
          spec: { rules: [{ backends: [{ consul: { service: 'up' } }] }] },
        },
        origin: 'ab',
      },
    ],
    catalog: {
      localDatacenter: 'dc1',
      datacenters: {
        dc1: {
          services: {
            up: [
              {
                id: 'a',
                address: '127.0.0.1',
                port: UPSTREAM,
                tags: [],
                meta: {},
                health: 'passing',
                weight: 1,
              },
            ],
          },
        },
      },
    },
  });
  const proxy = new ProxyPipeline({ proto: proto === 'h2' ? 'https' : 'http' });
  proxy.setTable({ ...table, version: 1 });
  const port = next++;
  if (proto === 'h2') {
    const tls = new TlsListener(proxy, {}, quiet);
    const bundle = {
      source: 'file:ab',
      hostnames: ['ab.test'],
      certPem: readFileSync(join(work, 'c.pem'), 'utf8'),
      keyPem: readFileSync(join(work, 'k.pem'), 'utf8'),
    };
    tls.applyCerts({ version: 1, bundles: [bundle], defaultBundle: bundle });
    await tls.listen({ host: '127.0.0.1', port, reusePort: false });
  } else {
    const server = createProxyServer(proxy);
    await new Promise<void>((r) => server.listen(port, '127.0.0.1', () => r()));
  }
  ports[name] = port;
}

function load(port: number, seconds: number): Promise<string> {
  const args =
    proto === 'h2'
      ? [
          'h2load',
          '-c10',
          '-m10',
          '-D',
          String(seconds),
          `--connect-to=127.0.0.1:${port}`,
          `https://ab.test:${port}/x`,
        ]
      : ['wrk', '-t1', '-c50', `-d${seconds}s`, `http://127.0.0.1:${port}/x`];
  return new Promise((done) => {
    const p = spawn('taskset', ['-c', '0', ...args]);
    let out = '';
    p.stdout.on('data', (d: Buffer) => {
      out += d.toString();
    });
    p.on('close', () => done(out));
  });
}

/** Requests done and requests/s from the load tool's output; throws on any failed request. */
function parse(out: string): { requests: number; rps: number } {
  if (proto === 'h2') {
    const m = /requests: (\d+) total, \d+ started, \d+ done, (\d+) succeeded/.exec(out);
    if (!m || m[1] !== m[2]) throw new Error(out);
    return { requests: Number(m[2]), rps: Number(/finished in [\d.]+s, ([\d.]+) req\/s/.exec(out)![1]) };
  }
  if (/Non-2xx|Socket errors/.test(out)) throw new Error(out);
  return {
    requests: Number(/(\d+) requests in/.exec(out)![1]),
    rps: Number(/Requests\/sec:\s+([\d.]+)/.exec(out)![1]),
  };
}

const results: Record<string, { us: number; rps: number }[]> = { before: [], after: [] };
for (const name of Object.keys(ports)) await load(ports[name]!, 2);
for (let round = 0; round < Number(roundsArg); round++) {
  for (const name of round % 2 ? ['after', 'before'] : ['before', 'after']) {
    const c0 = process.cpuUsage();
    const r = parse(await load(ports[name]!, 3));
    const c = process.cpuUsage(c0);
    results[name]!.push({ us: (c.user + c.system) / r.requests, rps: r.rps });
  }
}
upstream.kill();
rmSync(work, { recursive: true, force: true });
for (const [name, r] of Object.entries(results)) {
  const us = r.map((x) => x.us).sort((a, b) => a - b);
  const rps = r.map((x) => x.rps).sort((a, b) => a - b);
  console.log(
    `${name} (${builds[name]}): CPU µs/request min ${us[0]!.toFixed(1)} median ${us[us.length >> 1]!.toFixed(1)}; req/s median ${rps[rps.length >> 1]!.toFixed(0)} max ${rps.at(-1)!.toFixed(0)}`,
  );
}
process.exit(0);
