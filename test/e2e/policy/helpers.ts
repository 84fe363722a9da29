/**
 * Helpers for the policy e2e tests: a real `edgegate run --workers 2` over a routes dir, a catalog file and a
 * secrets dir written for the test; upstreams that count what reached them; a small HTTP client that can open a
 * fresh connection per request (so SO_REUSEPORT spreads requests over both workers).
 */
import { once } from 'node:events';
import { mkdirSync, writeFileSync } from 'node:fs';
import { createServer, type IncomingHttpHeaders, request, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { type GatewayProcess, routeYaml, startGateway } from '../../support/gateway.ts';
import { makeTempDir, removeDir } from '../../support/tmp.ts';

export interface SeenRequest {
  method: string;
  url: string;
  headers: IncomingHttpHeaders;
  body: Buffer;
}

/** An upstream that records every request it receives (body included) and answers 200 JSON. */
export interface RecordingUpstream {
  name: string;
  port: number;
  seen: SeenRequest[];
  server: Server;
  close(): Promise<void>;
}

export async function startRecordingUpstream(name: string): Promise<RecordingUpstream> {
  const seen: SeenRequest[] = [];
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks);
      seen.push({ method: req.method ?? '', url: req.url ?? '', headers: req.headers, body });
      const delay = Number(new URL(req.url ?? '/', 'http://x').searchParams.get('delay') ?? 0);
      const answer = () => {
        const out = JSON.stringify({ name, url: req.url, headers: req.headers, bodyBytes: body.length });
        res.writeHead(200, { 'content-type': 'application/json', 'x-upstream': name });
        res.end(out);
      };
      if (delay > 0) setTimeout(answer, delay);
      else answer();
    });
  });
  server.keepAliveTimeout = 10_000;
  server.listen({ host: '127.0.0.1', port: 0 });
  await once(server, 'listening');
  return {
    name,
    port: (server.address() as AddressInfo).port,
    seen,
    server,
    async close() {
      server.closeAllConnections();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
}

/** A rule of a test route: PathPrefix `prefix` to `backends` (default: Consul service `api`), with `policies`. */
export function prefixRule(
  name: string,
  prefix: string,
  policies?: unknown,
  backends: unknown[] = [{ consul: { service: 'api' } }],
) {
  return { name, matches: [{ path: { type: 'PathPrefix', value: prefix } }], backends, policies };
}

export interface PolicyGateway {
  gw: GatewayProcess;
  dir: string;
  /** Per-worker policy counters from /debug/workers. */
  workerPolicies(): Promise<{ pid: number; rules: Record<string, RuleCountersView> }[]>;
  stop(): Promise<void>;
}

export interface RuleCountersView {
  ipDenied: number;
  rateLimited: number;
  shed: number;
  concurrencyLimited: number;
  authFailures: Record<string, number>;
  passed: number;
  inFlight: number;
}

/**
 * Starts edgegate with 2 workers. `services` maps a Consul service name to upstream instances (port + tags);
 * `routes` are GatewayRoute specs by name; `secrets` are key sets (set → key id → content).
 */
export async function startPolicyGateway(opts: {
  services: Record<string, { port: number; tags?: string[] }[]>;
  routes: Record<string, unknown>;
  secrets?: Record<string, Record<string, string | Buffer>>;
  args?: string[];
  env?: NodeJS.ProcessEnv;
  workers?: number;
}): Promise<PolicyGateway> {
  const dir = makeTempDir('policy');
  const routesDir = join(dir, 'routes');
  mkdirSync(routesDir);
  for (const [name, spec] of Object.entries(opts.routes))
    writeFileSync(join(routesDir, `${name}.yaml`), routeYaml(name, spec));
  const services: Record<string, unknown[]> = {};
  for (const [svc, list] of Object.entries(opts.services))
    services[svc] = list.map((i) => ({ address: '127.0.0.1', port: i.port, tags: i.tags ?? [] }));
  writeFileSync(join(dir, 'catalog.yaml'), JSON.stringify({ datacenters: { dc1: { services } } }));
  const secretsDir = join(dir, 'secrets');
  mkdirSync(secretsDir);
  for (const [set, keys] of Object.entries(opts.secrets ?? {})) {
    mkdirSync(join(secretsDir, set));
    for (const [kid, content] of Object.entries(keys)) writeFileSync(join(secretsDir, set, kid), content);
  }
  const gw = await startGateway(
    [
      '--workers',
      String(opts.workers ?? 2),
      '--routes',
      routesDir,
      '--catalog',
      join(dir, 'catalog.yaml'),
      '--secrets-dir',
      secretsDir,
      ...(opts.args ?? []),
    ],
    { env: opts.env },
  );
  return {
    gw,
    dir,
    async workerPolicies() {
      const r = await fetch(`${gw.adminUrl}/debug/workers`);
      const body = (await r.json()) as {
        workers: { pid: number; stats?: { policies?: { rules: Record<string, RuleCountersView> } } }[];
      };
      return body.workers
        .filter((w) => w.stats?.policies)
        .map((w) => ({ pid: w.pid, rules: w.stats!.policies!.rules }));
    },
    async stop() {
      await gw.stop();
      removeDir(dir);
    },
  };
}

export interface Answer {
  status: number;
  headers: IncomingHttpHeaders;
  text: string;
  json<T = Record<string, unknown>>(): T;
}

/** One request on a fresh connection (no keep-alive agent): SO_REUSEPORT picks the worker anew each time. */
export function call(
  port: number,
  path: string,
  opts: {
    method?: string;
    headers?: Record<string, string | string[]>;
    body?: string | Buffer;
    host?: string;
  } = {},
): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = request(
      {
        host: opts.host ?? '127.0.0.1',
        port,
        path,
        method: opts.method ?? 'GET',
        agent: false,
        headers: { host: 'policy.test', ...opts.headers },
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          resolve({
            status: res.statusCode ?? 0,
            headers: res.headers,
            text,
            json: <T>() => JSON.parse(text) as T,
          });
        });
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    req.end(opts.body);
  });
}

/** Sum of one rule's counter over the workers. */
export function total(
  workers: { rules: Record<string, RuleCountersView> }[],
  rule: string,
  pick: (c: RuleCountersView) => number,
): number {
  return workers.reduce((n, w) => n + (w.rules[rule] ? pick(w.rules[rule]!) : 0), 0);
}
