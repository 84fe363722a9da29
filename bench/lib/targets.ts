/**
 * The things the load benchmark drives: the upstream (nginx, 1 worker, small and 16 KiB bodies) and every proxy
 * in front of it, each started from a config written into the run's work directory.
 *
 * Pinning on a 2-core machine: the upstream and the load generator share CPU 0, a single-process proxy gets
 * CPU 1 to itself. A 2-worker edgegate gets both CPUs (it then competes with the upstream and the generator;
 * its numbers show what a second core buys on this machine, not a clean 2× scaling).
 */
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { makeCatalog, makeRoute, type ScenarioSize } from './scenario.ts';
import {
  BENCH_DIR,
  freePort,
  type Proc,
  REPO_DIR,
  sbin,
  startProcess,
  waitHttp,
  writeFile,
} from './system.ts';

export const UPSTREAM_CPU = '0';
export const PROXY_CPU = '1';
export const LOADGEN_CPU = '0';

/** The request every target serves: a realistic route in the middle of the 1,000-route table. */
export const BENCH_HOST = 'shop.example.com';
export const BENCH_PATH = { small: '/shop/orders/v2/small', large: '/shop/orders/v2/16k' } as const;
export const SMALL_BODY = 'hello from the upstream\n';
export const LARGE_BYTES = 16 * 1024;

export interface Target {
  name: string;
  label: string;
  /** The port the load generator hits. */
  port: number;
  /** Root pid whose process tree is the proxy (CPU accounting); undefined for the direct path. */
  pid: number | undefined;
  stop(): Promise<void>;
}

export interface Upstream {
  port: number;
  proc: Proc;
}

/** The upstream's nginx configuration: 1 worker, the small answer on every path, the 16 KiB file on `…/16k`. */
export function upstreamConf(work: string, port: number): string {
  return `worker_processes 1;
daemon off;
pid ${work}/upstream.pid;
error_log ${work}/upstream-error.log warn;
events { worker_connections 8192; }
http {
  access_log off;
  keepalive_requests 10000000;
  keepalive_timeout 75s;
  client_body_temp_path ${work}/tmp-body;
  proxy_temp_path ${work}/tmp-proxy;
  fastcgi_temp_path ${work}/tmp-fcgi;
  uwsgi_temp_path ${work}/tmp-uwsgi;
  scgi_temp_path ${work}/tmp-scgi;
  server {
    listen 127.0.0.1:${port} backlog=4096;
    location ~ /16k$ { root ${work}/www; default_type application/octet-stream; try_files /16k.bin =404; }
    location / { default_type text/plain; return 200 ${JSON.stringify(SMALL_BODY)}; }
  }
}
`;
}

export async function startUpstream(work: string): Promise<Upstream> {
  const port = await freePort();
  writeFile(join(work, 'www', '16k.bin'), 'x'.repeat(LARGE_BYTES));
  const conf = writeFile(join(work, 'upstream.conf'), upstreamConf(work, port));
  const proc = startProcess('upstream nginx', UPSTREAM_CPU, sbin('nginx'), ['-c', conf, '-p', work]);
  await waitHttp(`http://127.0.0.1:${port}/`, proc);
  return { port, proc };
}

/** nginx as the proxy under test: 1 worker, upstream keep-alive (128 connections), the usual forwarded fields. */
export function nginxProxyConf(work: string, port: number, upstream: number): string {
  return `worker_processes 1;
daemon off;
pid ${work}/nginx-proxy.pid;
error_log ${work}/nginx-proxy-error.log warn;
events { worker_connections 8192; }
http {
  access_log off;
  keepalive_requests 10000000;
  client_body_temp_path ${work}/tmp-body;
  proxy_temp_path ${work}/tmp-proxy;
  fastcgi_temp_path ${work}/tmp-fcgi;
  uwsgi_temp_path ${work}/tmp-uwsgi;
  scgi_temp_path ${work}/tmp-scgi;
  upstream up {
    server 127.0.0.1:${upstream};
    keepalive 128;
    keepalive_requests 10000000;
  }
  server {
    listen 127.0.0.1:${port} backlog=4096;
    location / {
      proxy_pass http://up;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header Host $host;
      proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
      proxy_set_header X-Forwarded-Proto $scheme;
    }
  }
}
`;
}

function haproxyConf(port: number, upstream: number): string {
  return `global
  nbthread 1
  maxconn 8000
defaults
  mode http
  timeout connect 5s
  timeout client 75s
  timeout server 60s
  http-reuse always
  option forwardfor
frontend fe
  bind 127.0.0.1:${port}
  default_backend be
backend be
  server up 127.0.0.1:${upstream} maxconn 1000
`;
}

async function proxyTarget(name: string, label: string, proc: Proc, port: number): Promise<Target> {
  await waitHttp(`http://127.0.0.1:${port}${BENCH_PATH.small}`, proc, { host: BENCH_HOST }, (s) => s === 200);
  return { name, label, port, pid: proc.child.pid, stop: () => proc.stop() };
}

export async function startNginxProxy(work: string, upstream: number): Promise<Target> {
  const port = await freePort();
  const conf = writeFile(join(work, 'nginx-proxy.conf'), nginxProxyConf(work, port, upstream));
  const proc = startProcess('nginx proxy', PROXY_CPU, sbin('nginx'), ['-c', conf, '-p', work]);
  return proxyTarget('nginx', 'nginx (1 worker, upstream keepalive)', proc, port);
}

export async function startHaproxy(work: string, upstream: number): Promise<Target> {
  const port = await freePort();
  const conf = writeFile(join(work, 'haproxy.cfg'), haproxyConf(port, upstream));
  const proc = startProcess('haproxy', PROXY_CPU, sbin('haproxy'), ['-f', conf, '-db']);
  return proxyTarget('haproxy', 'HAProxy (1 thread, http-reuse always)', proc, port);
}

export async function startNodeBaseline(
  name: 'fastify-http-proxy' | 'http-proxy',
  node: string,
  upstream: number,
): Promise<Target> {
  const port = await freePort();
  const script = join(BENCH_DIR, 'targets', name === 'http-proxy' ? 'http-proxy.mjs' : 'fastify-proxy.mjs');
  const proc = startProcess(name, PROXY_CPU, node, [script, String(port), `http://127.0.0.1:${upstream}`]);
  return proxyTarget(
    name,
    name === 'http-proxy' ? 'http-proxy 1.18 (keep-alive agent)' : '@fastify/http-proxy 11',
    proc,
    port,
  );
}

/** Scenario for the 1,000-route table: 999 generated routes + the benchmarked one. */
const TABLE: ScenarioSize = { routes: 999, endpoints: 2000, datacenters: 4, servicesPerDc: 50 };

/**
 * Routes dir + catalog file for edgegate: 1,000 GatewayRoutes (exact and wildcard hosts, catch-all regex and
 * prefix routes, header matches, rewrites) where the benchmarked route sits in the middle of the generated
 * ones and shares its host with other routes; the catalog points `orders` in dc1 at the upstream.
 */
export function writeEdgegateConfig(work: string, upstream: number): { routes: string; catalog: string } {
  const docs: unknown[] = [];
  for (let i = 0; i < TABLE.routes; i++) {
    docs.push(makeRoute(i, TABLE).raw);
    if (i === 537) {
      docs.push({
        apiVersion: 'edgegate.io/v1alpha1',
        kind: 'GatewayRoute',
        metadata: { name: 'orders', namespace: 'shop', creationTimestamp: '2025-01-01T00:00:00Z' },
        spec: {
          hostnames: [BENCH_HOST, 'shop.internal.example.com'],
          rules: [
            {
              matches: [
                {
                  path: { type: 'PathPrefix', value: '/shop/orders' },
                  headers: [{ name: 'x-canary', value: '1' }],
                },
              ],
              backends: [{ consul: { service: 'orders', datacenter: 'dc1', tags: ['canary'] } }],
            },
            {
              matches: [{ path: { type: 'PathPrefix', value: '/shop/orders' } }],
              backends: [{ consul: { service: 'orders', datacenter: 'dc1', tags: ['edge'] } }],
            },
          ],
        },
      });
      // Other rules of the same host, so the match has neighbours to skip.
      docs.push({
        apiVersion: 'edgegate.io/v1alpha1',
        kind: 'GatewayRoute',
        metadata: { name: 'shop-misc', namespace: 'shop' },
        spec: {
          hostnames: [BENCH_HOST],
          rules: ['/shop/cart', '/shop/catalog', '/shop/orders-archive', '/shop'].map((p) => ({
            matches: [{ path: { type: 'PathPrefix', value: p } }],
            backends: [{ consul: { service: 'svc1', datacenter: 'dc1' } }],
          })),
        },
      });
    }
  }
  const catalog = makeCatalog(TABLE);
  catalog.datacenters.dc1!.services.orders = [
    {
      id: 'orders-1',
      address: '127.0.0.1',
      port: upstream,
      tags: ['edge'],
      meta: {},
      health: 'passing',
      weight: 1,
    },
  ];
  const file = {
    datacenters: Object.fromEntries(
      Object.entries(catalog.datacenters).map(([dc, { services }]) => [
        dc,
        {
          services: Object.fromEntries(
            Object.entries(services).map(([name, list]) => [
              name,
              list.map((i) => ({
                id: i.id,
                address: i.address,
                port: i.port,
                tags: i.tags,
                health: i.health,
              })),
            ]),
          ),
        },
      ]),
    ),
  };
  const routes = writeFile(
    join(work, 'edgegate', 'routes', 'routes.yaml'),
    docs.map((d) => JSON.stringify(d)).join('\n---\n'),
  );
  const catalogFile = writeFile(join(work, 'edgegate', 'catalog.yaml'), JSON.stringify(file));
  return { routes: join(routes, '..'), catalog: catalogFile };
}

/** What this build of `edgegate run` supports, read from its --help (features land on main over time). */
export interface EdgegateFeatures {
  workers: boolean;
  /** Flags that turn metrics on and sample the access log at 1%, when the build has them. */
  observeArgs: string[];
  observeNote: string;
  /** The build has `--upstream-client` (raw HTTP/1.1 pool vs undici). */
  upstreamClient: boolean;
  /** The build has `--http1-server` (raw HTTP/1.1 server vs node:http). */
  http1Server: boolean;
}

export function detectEdgegateFeatures(node: string): EdgegateFeatures {
  const r = spawnSync(node, [join(REPO_DIR, 'cmd', 'edgegate.ts'), 'run', '--help'], { encoding: 'utf8' });
  const help = r.stdout ?? '';
  const observeArgs: string[] = [];
  const notes: string[] = [];
  // Metrics are always on in builds that have them (served on the admin port); nothing to add.
  if (/--access-log <on\|off>/.test(help)) observeArgs.push('--access-log', 'on');
  if (/--access-log-sample\b/.test(help)) observeArgs.push('--access-log-sample', '0.01');
  else notes.push('no access-log sampling flag in this build');
  // Older builds kept the metrics in src/observe/, newer ones in src/control/metrics/.
  const hasMetrics =
    /\/metrics/.test(help) &&
    (existsSync(join(REPO_DIR, 'src', 'observe', 'metrics.ts')) ||
      existsSync(join(REPO_DIR, 'src', 'control', 'metrics')));
  if (!hasMetrics) notes.push('metrics not in this build');
  return {
    // The foundation lists --workers but refuses it; the process-model build describes a number of workers.
    workers: /--workers <n>/.test(help) && !/not available/.test(help) && r.status === 0 && workersWork(node),
    observeArgs,
    observeNote: notes.join('; ') || 'metrics on, access log on and sampled at 1%',
    upstreamClient: /--upstream-client <raw\|undici>/.test(help),
    http1Server: /--http1-server <raw\|node>/.test(help),
  };
}

function workersWork(node: string): boolean {
  // Ask the CLI to validate a bad value: a build that implements --workers names the flag in a ConfigError
  // about the value; the foundation answers "not available in this build".
  const r = spawnSync(
    node,
    [join(REPO_DIR, 'cmd', 'edgegate.ts'), 'run', '--workers', 'x', '--routes', '/nonexistent'],
    {
      encoding: 'utf8',
      timeout: 20_000,
    },
  );
  return !/not available in this build/.test(`${r.stderr}${r.stdout}`);
}

export async function startEdgegate(
  work: string,
  node: string,
  upstream: number,
  workers: number | undefined,
  features: EdgegateFeatures,
  /** A variant: more `run` flags, and the suffix of its name (the A/B of a switch in one run). */
  variant?: { args: string[]; suffix: string; label: string },
): Promise<Target> {
  const cfg = writeEdgegateConfig(work, upstream);
  const port = await freePort();
  const admin = await freePort();
  const args = [
    join(REPO_DIR, 'cmd', 'edgegate.ts'),
    'run',
    '--listen',
    `127.0.0.1:${port}`,
    '--admin',
    `127.0.0.1:${admin}`,
    '--routes',
    cfg.routes,
    '--catalog',
    cfg.catalog,
    '--datacenter',
    'dc1',
    '--log-level',
    'warn',
    ...(workers !== undefined ? ['--workers', String(workers)] : []),
    ...features.observeArgs,
    ...(variant?.args ?? []),
  ];
  const cpus = workers !== undefined && workers > 1 ? '0,1' : PROXY_CPU;
  const name = `${workers === undefined ? 'edgegate' : `edgegate-${workers}w`}${variant?.suffix ?? ''}`;
  const proc = startProcess(name, cpus, node, args);
  await waitHttp(`http://127.0.0.1:${admin}/readyz`, proc);
  const label =
    (workers === undefined
      ? 'edgegate (single process)'
      : `edgegate (${workers} worker${workers > 1 ? 's' : ''})`) + (variant ? `, ${variant.label}` : '');
  return proxyTarget(name, label, proc, port);
}
