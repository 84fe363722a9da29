/**
 * Exchange (src/dataplane/proxy/exchange.ts) on its own: one in-process node:http server on loopback plays the client side
 * (its handler builds an Exchange exactly as ProxyPipeline does), real node:http / net servers on 127.0.0.1:0 play
 * the endpoints, and the cluster, pools, outlier detector and counters are the real ones. No gateway process, no
 * routing table: each test sets the rule policy and the cluster it needs.
 */
import { once } from 'node:events';
import {
  createServer,
  request as httpRequest,
  type IncomingMessage,
  type Server,
  type ServerResponse,
} from 'node:http';
import {
  type AddressInfo,
  createServer as createNetServer,
  type Server as NetServer,
  type Socket,
} from 'node:net';
import { Agent, request } from 'undici';
import { afterAll, afterEach, describe, expect, it, vi } from 'vitest';
import {
  ClusterRuntime,
  ClusterState,
  LB_ROUND_ROBIN,
} from '../../../../src/dataplane/proxy/cluster-runtime.ts';
import {
  Exchange,
  type ExchangeContext,
  FAIL_5XX,
  FAIL_502,
  FAIL_503,
  FAIL_CONNECT,
  FAIL_RESET,
  FAIL_TIMEOUT,
  ProxyCounters,
  type RulePolicy,
} from '../../../../src/dataplane/proxy/exchange.ts';
import { OutlierDetector, type OutlierSettings } from '../../../../src/dataplane/proxy/outlier.ts';
import { RawResponse } from '../../../../src/dataplane/proxy/raw-messages.ts';
import { type Upstream, UpstreamPools } from '../../../../src/dataplane/proxy/upstream-pools.ts';
import type { PoolData } from '../../../../src/table/types.ts';
import { startGateway, startUpstream, tableOf } from '../../../support/inproc-gateway.ts';
import { refusedPort } from '../../../support/ports.ts';
import { waitFor } from '../../../support/wait.ts';

const cleanup: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanup.splice(0).reverse()) await c();
});

const BASE_POLICY: RulePolicy = {
  mode: LB_ROUND_ROBIN,
  hashHeader: undefined,
  hashCookie: undefined,
  hashSourceIP: false,
  requestMs: 0,
  backendRequestMs: 0,
  responseHeadersMs: 10_000,
  idleMs: 10_000,
  attempts: 1,
  retryMask: FAIL_CONNECT | FAIL_RESET,
  backoffMs: 0,
  responseHeaders: undefined,
};

const BASE_POOL: PoolData = {
  maxConnections: 8,
  keepAliveTimeoutMs: 4000,
  pipelining: 1,
  connectTimeoutMs: 2000,
  maxPendingRequests: 64,
};

async function listen(server: Server | NetServer): Promise<number> {
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return (server.address() as AddressInfo).port;
}

interface Endpoint {
  port: number;
  /** Requests received, with the headers each carried. */
  received: IncomingMessage[];
}

/** A node:http endpoint; `handler` gets the request's index (0 = first request this endpoint saw). */
async function endpoint(
  handler: (req: IncomingMessage, res: ServerResponse, n: number) => void,
): Promise<Endpoint> {
  const received: IncomingMessage[] = [];
  const server = createServer((req, res) => {
    received.push(req);
    handler(req, res, received.length - 1);
  });
  const port = await listen(server);
  cleanup.push(async () => {
    server.closeAllConnections();
    await new Promise<void>((r) => server.close(() => r()));
  });
  return { port, received };
}

/** A raw TCP endpoint: `onConnection` writes whatever bytes (or nothing) the test needs. */
async function rawEndpoint(
  onData: (socket: Socket, chunk: Buffer) => void,
): Promise<{ port: number; hits: () => number }> {
  let hits = 0;
  const sockets = new Set<Socket>();
  const server = createNetServer((socket) => {
    sockets.add(socket);
    socket.on('error', () => {});
    socket.once('data', (chunk: Buffer) => {
      hits++;
      onData(socket, chunk);
    });
  });
  const port = await listen(server);
  cleanup.push(async () => {
    for (const s of sockets) s.destroy();
    await new Promise<void>((r) => server.close(() => r()));
  });
  return { port, hits: () => hits };
}

const ok =
  (body = 'ok') =>
  (_req: IncomingMessage, res: ServerResponse) => {
    res.writeHead(200, { 'content-type': 'text/plain' });
    res.end(body);
  };
const status =
  (code: number, body = `status ${code}`) =>
  (_req: IncomingMessage, res: ServerResponse) => {
    res.writeHead(code, { 'content-type': 'text/plain' });
    res.end(body);
  };
/** Answers nothing until the test releases it. */
function held() {
  const waiting: ServerResponse[] = [];
  return {
    handler: (_req: IncomingMessage, res: ServerResponse) => {
      waiting.push(res);
    },
    waiting,
    release(body = 'released') {
      for (const res of waiting.splice(0)) res.end(body);
    },
  };
}

interface HarnessOptions {
  ports: number[];
  weights?: number[];
  policy?: Partial<RulePolicy>;
  pool?: Partial<PoolData>;
  outlier?: Partial<OutlierSettings>;
  budgetPercent?: number;
  budgetMinConcurrent?: number;
  /** Headers after the base ones (host, x-client), as a flat list. */
  extraHeaders?: string[];
  /** Whether a request may be sent again (ProxyPipeline: idempotent method and no body); default: bodiless GET. */
  retryable?: (req: IncomingMessage) => boolean;
}

interface Harness {
  url(path: string): string;
  port: number;
  counters: ProxyCounters;
  outlier: OutlierDetector;
  state: ClusterState;
  cluster: ClusterRuntime;
  /** The cluster's upstreams, in endpoint order. */
  ups: Upstream[];
  agent: Agent;
  /** Client-side responses whose 'close' has fired (the Exchange has released everything). */
  closed: () => number;
}

let requestSeq = 0;

/** The client side: a node:http server whose handler hands each request to a new Exchange. */
async function harness(o: HarnessOptions): Promise<Harness> {
  const counters = new ProxyCounters();
  const outlier = new OutlierDetector({
    consecutiveFailures: 0,
    baseEjectionMs: 30_000,
    maxEjectionMs: 300_000,
    maxEjectionPercent: 100,
    ...o.outlier,
  });
  const ctx: ExchangeContext = {
    outlier,
    budgetPercent: o.budgetPercent ?? 100,
    budgetMinConcurrent: o.budgetMinConcurrent ?? 10,
    counters,
    // The client-side bounds (send timeout, body timeout, per-connection cap) off: tested in their own files.
    sendTimeoutMs: 0,
    clientBodyTimeoutMs: 0,
    maxPerConnection: 0,
  };
  const pools = new UpstreamPools();
  const state = new ClusterState();
  const cluster = new ClusterRuntime(
    {
      id: 'c1',
      kind: 'consul',
      service: 'svc',
      datacenter: 'dc1',
      endpoints: o.ports.map((port, i) => ({
        address: '127.0.0.1',
        port,
        weight: o.weights?.[i] ?? 1,
        id: `e${i}`,
      })),
      pool: { ...BASE_POOL, ...o.pool },
    },
    pools,
    state,
  );
  const policy = { ...BASE_POLICY, ...o.policy };
  let closed = 0;
  const server = createServer((req, res) => {
    res.once('close', () => closed++);
    const hasBody =
      req.headers['content-length'] !== undefined || req.headers['transfer-encoding'] !== undefined;
    new Exchange(ctx, {
      req,
      res,
      policy,
      cluster,
      requestId: `rid-${++requestSeq}`,
      path: req.url ?? '/',
      method: req.method ?? 'GET',
      headers: [
        'host',
        'svc.test',
        'x-client',
        String(req.headers['x-client'] ?? ''),
        ...(o.extraHeaders ?? []),
      ],
      body: hasBody ? req : null,
      retryable: o.retryable ? o.retryable(req) : !hasBody && req.method === 'GET',
      hash: undefined,
      record: undefined,
    }).start();
  });
  const port = await listen(server);
  const agent = new Agent({ connections: 16 });
  cleanup.push(async () => {
    await agent.destroy();
    server.closeAllConnections();
    await new Promise<void>((r) => server.close(() => r()));
    await pools.destroy();
  });
  return {
    url: (path) => `http://127.0.0.1:${port}${path}`,
    port,
    counters,
    outlier,
    state,
    cluster,
    ups: cluster.upstreams,
    agent,
    closed: () => closed,
  };
}

interface Answer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
}

async function send(
  h: Harness,
  path = '/',
  init: { method?: string; headers?: Record<string, string>; body?: string } = {},
): Promise<Answer> {
  const r = await request(h.url(path), {
    dispatcher: h.agent,
    method: (init.method ?? 'GET') as 'GET',
    headers: init.headers,
    body: init.body,
  });
  return { status: r.statusCode, headers: r.headers, body: await r.body.text() };
}

function gatewayError(a: Answer): { error: string; message: string; requestId: string } {
  expect(a.headers['content-type']).toBe('application/json');
  return JSON.parse(a.body);
}

/** Everything the Exchange holds is given back once the client response has closed. */
async function settled(h: Harness, responses: number): Promise<void> {
  await waitFor(() => h.closed() >= responses, {
    timeoutMs: 5000,
    intervalMs: 5,
    message: 'client responses closed',
  });
  expect(h.state.active).toBe(0);
  expect(h.state.retriesActive).toBe(0);
  for (const up of h.ups) expect(up.inFlight).toBe(0);
}

describe('forwarding', () => {
  it('sends method, path with query and headers; returns status, headers and body with the request id', async () => {
    const e = await endpoint((req, res) => {
      res.writeHead(201, { 'content-type': 'application/x-test', 'x-up': 'yes' });
      res.end(`${req.method} ${req.url}`);
    });
    const h = await harness({ ports: [e.port] });
    const a = await send(h, '/a/b?x=1&y=2', { headers: { 'x-client': 'c1' } });
    expect(a.status).toBe(201);
    expect(a.body).toBe('GET /a/b?x=1&y=2');
    expect(a.headers['x-up']).toBe('yes');
    expect(a.headers['content-type']).toBe('application/x-test');
    expect(a.headers['x-request-id']).toMatch(/^rid-\d+$/);
    expect(e.received[0]!.headers.host).toBe('svc.test');
    expect(e.received[0]!.headers['x-client']).toBe('c1');
    // The first try is not marked as a retry.
    expect(e.received[0]!.headers['x-edgegate-attempt']).toBeUndefined();
    expect(h.counters).toMatchObject({ requests: 1, tries: 1, retries: 0, upstreamErrors: 0 });
    await settled(h, 1);
  });

  it('streams a request body to the upstream', async () => {
    const e = await endpoint((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => res.end(`got ${Buffer.concat(chunks).length}`));
    });
    const h = await harness({ ports: [e.port] });
    const a = await send(h, '/upload', { method: 'POST', body: 'x'.repeat(100_000) });
    expect(a.body).toBe('got 100000');
    await settled(h, 1);
  });

  it('the response keeps the upstream’s own X-Request-Id and drops hop-by-hop headers', async () => {
    const e = await endpoint((_req, res) => {
      res.setHeader('x-request-id', 'from-upstream');
      res.setHeader('connection', 'x-private');
      res.setHeader('x-private', 'secret');
      res.setHeader('keep-alive', 'timeout=5');
      res.end('ok');
    });
    const h = await harness({ ports: [e.port] });
    const a = await send(h);
    expect(a.headers['x-request-id']).toBe('from-upstream');
    expect(a.headers['x-private']).toBeUndefined();
    await settled(h, 1);
  });
});

describe('retries', () => {
  it('a refused connection is retried on another endpoint, marked as attempt 2', async () => {
    const dead = await refusedPort();
    const live = await endpoint(ok('live'));
    const h = await harness({ ports: [dead, live.port] });
    const a = await send(h);
    expect(a.status).toBe(200);
    expect(a.body).toBe('live');
    expect(live.received[0]!.headers['x-edgegate-attempt']).toBe('2');
    expect(h.counters).toMatchObject({ requests: 1, tries: 2, retries: 1, upstreamErrors: 0 });
    expect(h.state.retries).toBe(1);
    await settled(h, 1);
  });

  it('a request that may not be sent again (non-idempotent or with a body) is never retried', async () => {
    const dead = await refusedPort();
    const live = await endpoint(ok('live'));
    const h = await harness({ ports: [dead, live.port], retryable: () => false });
    const a = await send(h);
    expect(a.status).toBe(502);
    expect(gatewayError(a).error).toBe('EDGEGATE_UPSTREAM_CONNECT');
    expect(live.received).toHaveLength(0);
    expect(h.counters).toMatchObject({ tries: 1, retries: 0, upstreamErrors: 1 });
    await settled(h, 1);
  });

  it.each([
    { method: 'GET', retried: true },
    { method: 'POST', retried: false },
  ])(
    'a reset is retried for a retryable request, else 502 EDGEGATE_UPSTREAM_RESET ($method)',
    async ({ method, retried }) => {
      const reset = await endpoint((req) => req.socket.destroy());
      const live = await endpoint(ok('live'));
      const h = await harness({ ports: [reset.port, live.port], retryable: (req) => req.method === 'GET' });
      const a = await send(h, '/', { method });
      expect(reset.received).toHaveLength(1);
      if (retried) {
        expect(a.body).toBe('live');
      } else {
        expect(a.status).toBe(502);
        expect(gatewayError(a).error).toBe('EDGEGATE_UPSTREAM_RESET');
        expect(live.received).toHaveLength(0);
      }
      await settled(h, 1);
    },
  );

  it.each([
    { name: '5xx retries a 503', mask: FAIL_5XX, code: 503, retried: true },
    { name: '5xx retries a 500', mask: FAIL_5XX, code: 500, retried: true },
    { name: '503 retries a 503', mask: FAIL_503, code: 503, retried: true },
    { name: '503 passes a 502 on', mask: FAIL_503, code: 502, retried: false },
    { name: '502 retries a 502', mask: FAIL_502, code: 502, retried: true },
    { name: '502 passes a 504 on', mask: FAIL_502, code: 504, retried: false },
    {
      name: 'connect-failure|reset passes a 503 on',
      mask: FAIL_CONNECT | FAIL_RESET,
      code: 503,
      retried: false,
    },
    { name: '5xx passes a 404 on', mask: FAIL_5XX, code: 404, retried: false },
  ])('retry on $name', async ({ mask, code, retried }) => {
    const bad = await endpoint(status(code, 'upstream error body'));
    const good = await endpoint(ok('good'));
    const h = await harness({ ports: [bad.port, good.port], policy: { retryMask: mask } });
    const a = await send(h);
    if (retried) {
      // The retried answer's body was drained, never shown to the client.
      expect(a.status).toBe(200);
      expect(a.body).toBe('good');
      expect(h.counters.retries).toBe(1);
    } else {
      // Passed on as the upstream sent it: not a gateway error.
      expect(a.status).toBe(code);
      expect(a.body).toBe('upstream error body');
      expect(good.received).toHaveLength(0);
      expect(h.counters.retries).toBe(0);
    }
    await settled(h, 1);
  });

  it('the retry avoids the endpoint that just failed even when the balancer would pick it next', async () => {
    const dead = await refusedPort();
    const live = await endpoint(ok('live'));
    // Weights 3:1: smooth round robin picks the heavy endpoint twice in a row.
    const h = await harness({ ports: [dead, live.port], weights: [3, 1] });
    expect((await send(h)).body).toBe('live');
    expect(h.counters.tries).toBe(2);
    await settled(h, 1);
  });

  it('at most `attempts` retries; the last failure is what the client gets', async () => {
    const eps = [];
    for (let i = 0; i < 4; i++) eps.push(await endpoint(status(503, `from ${i}`)));
    const h = await harness({ ports: eps.map((e) => e.port), policy: { attempts: 2, retryMask: FAIL_5XX } });
    const a = await send(h);
    expect(a.status).toBe(503);
    expect(a.body).toBe('from 2');
    expect(eps.map((e) => e.received.length)).toEqual([1, 1, 1, 0]);
    expect(eps[2]!.received[0]!.headers['x-edgegate-attempt']).toBe('3');
    expect(h.counters).toMatchObject({ tries: 3, retries: 2 });
    await settled(h, 1);
  });

  it('attempts 0 turns retries off', async () => {
    const dead = await refusedPort();
    const live = await endpoint(ok());
    const h = await harness({ ports: [dead, live.port], policy: { attempts: 0 } });
    expect((await send(h)).status).toBe(502);
    expect(live.received).toHaveLength(0);
    await settled(h, 1);
  });

  it('with one endpoint, the retry goes to that endpoint again', async () => {
    const e = await endpoint((req, res, n) => (n === 0 ? req.socket.destroy() : res.end('second')));
    const h = await harness({ ports: [e.port] });
    expect((await send(h)).body).toBe('second');
    expect(e.received).toHaveLength(2);
    await settled(h, 1);
  });

  it('a response already on its way to the client is never retried: the client connection is cut', async () => {
    const e = await endpoint((req, res) => {
      res.writeHead(200, { 'content-length': '100' });
      res.write('partial');
      setImmediate(() => req.socket.destroy());
    });
    const live = await endpoint(ok());
    const h = await harness({ ports: [e.port, live.port] });
    await expect(send(h)).rejects.toThrow();
    expect(live.received).toHaveLength(0);
    expect(h.counters).toMatchObject({ tries: 1, retries: 0, upstreamErrors: 1 });
    await settled(h, 1);
  });

  it('a retry budget of zero refuses the retry and counts the refusal', async () => {
    const dead = await refusedPort();
    const live = await endpoint(ok());
    const h = await harness({ ports: [dead, live.port], budgetPercent: 0, budgetMinConcurrent: 0 });
    const a = await send(h);
    expect(gatewayError(a).error).toBe('EDGEGATE_UPSTREAM_CONNECT');
    expect(live.received).toHaveLength(0);
    expect(h.counters).toMatchObject({ retries: 0, retriesRefusedByBudget: 1 });
    expect(h.state.retriesRefusedByBudget).toBe(1);
    await settled(h, 1);
  });

  /**
   * One endpoint that answers a first try 503 and holds every retry: request 1 retries and stays retrying, so
   * whether request 2 may retry depends only on the budget: max(minConcurrent, active × percent / 100).
   */
  it.each([
    { budgetMinConcurrent: 1, budgetPercent: 0, secondRetries: false },
    { budgetMinConcurrent: 1, budgetPercent: 50, secondRetries: false },
    { budgetMinConcurrent: 1, budgetPercent: 100, secondRetries: true },
    { budgetMinConcurrent: 2, budgetPercent: 0, secondRetries: true },
  ])(
    'retries in progress are capped: min $budgetMinConcurrent, $budgetPercent% of 2 active → second retries: $secondRetries',
    async ({ budgetMinConcurrent, budgetPercent, secondRetries }) => {
      const hold = held();
      const e = await endpoint((req, res) => {
        if (req.headers['x-edgegate-attempt'] === undefined) status(503, 'first try')(req, res);
        else hold.handler(req, res);
      });
      const h = await harness({
        ports: [e.port],
        policy: { retryMask: FAIL_503 },
        budgetMinConcurrent,
        budgetPercent,
      });
      const first = send(h, '/1');
      await waitFor(() => hold.waiting.length === 1, { timeoutMs: 5000, intervalMs: 5 });
      expect(h.state.retriesActive).toBe(1);
      const second = send(h, '/2');
      if (secondRetries) {
        await waitFor(() => hold.waiting.length === 2, { timeoutMs: 5000, intervalMs: 5 });
        expect(h.state.retriesActive).toBe(2);
        hold.release();
        expect((await second).body).toBe('released');
      } else {
        const refused = await second;
        expect(refused.status).toBe(503);
        expect(refused.body).toBe('first try');
        expect(h.counters.retriesRefusedByBudget).toBe(1);
        hold.release();
      }
      expect((await first).body).toBe('released');
      await settled(h, 2);
    },
  );

  it('backoff delays the retry: a whole-request timeout shorter than the backoff ends the request first', async () => {
    const dead = await refusedPort();
    const live = await endpoint(ok());
    const h = await harness({ ports: [dead, live.port], policy: { backoffMs: 5000, requestMs: 150 } });
    const a = await send(h);
    expect(a.status).toBe(504);
    expect(gatewayError(a)).toMatchObject({ error: 'EDGEGATE_UPSTREAM_TIMEOUT', message: 'request timeout' });
    // The retry was scheduled (counted) but never sent.
    expect(h.counters).toMatchObject({ tries: 1, retries: 1, requestTimeouts: 1 });
    expect(live.received).toHaveLength(0);
    await settled(h, 1);
  });
});

describe('timeouts', () => {
  it('the per-try timeout (backendRequest) gives up on a silent endpoint and retries on the next', async () => {
    const silent = held();
    const slow = await endpoint(silent.handler);
    const live = await endpoint(ok('live'));
    const h = await harness({
      ports: [slow.port, live.port],
      policy: { backendRequestMs: 100, retryMask: FAIL_TIMEOUT },
      outlier: { consecutiveFailures: 5 },
    });
    const a = await send(h);
    expect(a.body).toBe('live');
    expect(h.counters).toMatchObject({ tries: 2, retries: 1, tryTimeouts: 1, requestTimeouts: 0 });
    // A try that timed out counts against its endpoint.
    expect(h.ups[0]!.consecutiveFailures).toBe(1);
    // The abandoned try's request was closed at the endpoint.
    await waitFor(() => silent.waiting[0]?.destroyed, { timeoutMs: 5000, intervalMs: 5 });
    await settled(h, 1);
  });

  it('without a retry, a per-try timeout answers 504 EDGEGATE_UPSTREAM_TIMEOUT', async () => {
    const slow = await endpoint(held().handler);
    const h = await harness({ ports: [slow.port], policy: { backendRequestMs: 100 } });
    const a = await send(h);
    expect(a.status).toBe(504);
    expect(gatewayError(a).error).toBe('EDGEGATE_UPSTREAM_TIMEOUT');
    expect(h.counters).toMatchObject({ tryTimeouts: 1, upstreamErrors: 1 });
    await settled(h, 1);
  });

  it('the per-try timeout runs until the response is complete: a body that stalls is cut', async () => {
    const e = await endpoint((_req, res) => {
      res.writeHead(200, { 'content-length': '1000' });
      res.write('first bytes');
    });
    const h = await harness({ ports: [e.port], policy: { backendRequestMs: 150, retryMask: FAIL_TIMEOUT } });
    await expect(send(h)).rejects.toThrow();
    // Headers were sent: no retry, the only honest signal is a cut connection.
    expect(h.counters).toMatchObject({ tries: 1, tryTimeouts: 1 });
    await settled(h, 1);
  });

  it('the response-headers timeout is a timeout failure: retried on `timeout`', async () => {
    const slow = await endpoint(held().handler);
    const live = await endpoint(ok('live'));
    const h = await harness({
      ports: [slow.port, live.port],
      policy: { responseHeadersMs: 100, retryMask: FAIL_TIMEOUT },
    });
    expect((await send(h)).body).toBe('live');
    expect(h.counters).toMatchObject({ tries: 2, tryTimeouts: 1 });
    await settled(h, 1);
  });

  it('the idle timeout cuts a body that pauses too long between chunks', async () => {
    const e = await endpoint((_req, res) => {
      res.writeHead(200, { 'content-length': '1000' });
      res.write('first bytes');
    });
    const h = await harness({ ports: [e.port], policy: { idleMs: 100 } });
    await expect(send(h)).rejects.toThrow();
    expect(h.counters.tryTimeouts).toBe(1);
    await settled(h, 1);
  });

  it('the whole-request timeout answers 504, closes the upstream request and is not held against the endpoint', async () => {
    const silent = held();
    const slow = await endpoint(silent.handler);
    const h = await harness({
      ports: [slow.port],
      policy: { requestMs: 150 },
      outlier: { consecutiveFailures: 1 },
    });
    const a = await send(h);
    expect(a.status).toBe(504);
    expect(gatewayError(a).error).toBe('EDGEGATE_UPSTREAM_TIMEOUT');
    expect(h.counters).toMatchObject({ requestTimeouts: 1, tryTimeouts: 0 });
    expect(h.ups[0]!.consecutiveFailures).toBe(0);
    expect(h.ups[0]!.ejected).toBe(false);
    await waitFor(() => silent.waiting[0]?.destroyed, { timeoutMs: 5000, intervalMs: 5 });
    await settled(h, 1);
  });

  it('the whole-request timeout covers every retry: tries stop when it fires', async () => {
    const a1 = await endpoint(held().handler);
    const a2 = await endpoint(held().handler);
    const h = await harness({
      ports: [a1.port, a2.port],
      policy: { requestMs: 600, backendRequestMs: 100, attempts: 50, retryMask: FAIL_TIMEOUT },
    });
    const a = await send(h);
    expect(a.status).toBe(504);
    expect(gatewayError(a).error).toBe('EDGEGATE_UPSTREAM_TIMEOUT');
    expect(h.counters.requestTimeouts).toBe(1);
    expect(h.counters.tries).toBeGreaterThanOrEqual(2);
    expect(h.counters.tries).toBeLessThan(50);
    const tries = h.counters.tries;
    await settled(h, 1);
    expect(h.counters.tries).toBe(tries);
  });

  it('the whole-request timeout after the headers went out cuts the client connection', async () => {
    const e = await endpoint((_req, res) => {
      res.writeHead(200, { 'content-length': '1000' });
      res.write('first bytes');
    });
    const h = await harness({ ports: [e.port], policy: { requestMs: 150 } });
    await expect(send(h)).rejects.toThrow();
    expect(h.counters.requestTimeouts).toBe(1);
    await settled(h, 1);
  });
});

describe('pending cap', () => {
  it('an endpoint at its capacity answers 503 EDGEGATE_UPSTREAM_OVERLOADED at once, and frees the slot after', async () => {
    const hold = held();
    const e = await endpoint(hold.handler);
    // Capacity = maxConnections × pipelining + maxPendingRequests = 1.
    const h = await harness({
      ports: [e.port],
      pool: { maxConnections: 1, pipelining: 1, maxPendingRequests: 0 },
    });
    expect(h.ups[0]!.capacity).toBe(1);
    const first = send(h, '/1');
    await waitFor(() => hold.waiting.length === 1, { timeoutMs: 5000, intervalMs: 5 });
    const refused = await send(h, '/2');
    expect(refused.status).toBe(503);
    expect(gatewayError(refused).error).toBe('EDGEGATE_UPSTREAM_OVERLOADED');
    expect(e.received).toHaveLength(1);
    expect(h.counters).toMatchObject({ overloaded: 1, tries: 1 });
    hold.release();
    expect((await first).status).toBe(200);
    await waitFor(() => h.ups[0]!.inFlight === 0, { timeoutMs: 5000, intervalMs: 5 });
    const third = send(h, '/3');
    await waitFor(() => hold.waiting.length === 1, { timeoutMs: 5000, intervalMs: 5 });
    hold.release();
    expect((await third).status).toBe(200);
    await settled(h, 3);
  });

  it('requests up to the capacity queue in the pool instead of being refused', async () => {
    const hold = held();
    const e = await endpoint(hold.handler);
    const h = await harness({
      ports: [e.port],
      pool: { maxConnections: 1, pipelining: 1, maxPendingRequests: 2 },
    });
    const answers = [send(h, '/1'), send(h, '/2'), send(h, '/3')];
    await waitFor(() => h.ups[0]!.inFlight === 3, { timeoutMs: 5000, intervalMs: 5 });
    // One connection: one request at the endpoint, two waiting in the pool.
    expect(hold.waiting).toHaveLength(1);
    expect(h.counters.overloaded).toBe(0);
    // Released one at a time, each queued request reaches the endpoint in turn.
    for (let i = 0; i < 3; i++) {
      await waitFor(() => hold.waiting.length === 1, { timeoutMs: 5000, intervalMs: 5 });
      hold.release();
    }
    for (const a of await Promise.all(answers)) expect(a.status).toBe(200);
    await settled(h, 3);
  });
});

describe('outlier bookkeeping', () => {
  it('5xx answers count as failures of their endpoint; reaching the threshold ejects it and traffic moves away', async () => {
    const bad = await endpoint(status(500));
    const good = await endpoint(ok());
    const h = await harness({
      ports: [bad.port, good.port],
      policy: { retryMask: 0 },
      outlier: { consecutiveFailures: 2, maxEjectionPercent: 50 },
    });
    const codes = [];
    for (let i = 0; i < 6; i++) codes.push((await send(h)).status);
    // Round robin: bad, good, bad (second failure: ejected), then only good.
    expect(codes).toEqual([500, 200, 500, 200, 200, 200]);
    expect(h.ups[0]!.ejected).toBe(true);
    expect(h.outlier.stats().ejections).toBe(1);
    expect(bad.received).toHaveLength(2);
    await settled(h, 6);
  });

  it('a success in between resets the count; 4xx answers are successes', async () => {
    const e = await endpoint((_req, res, n) => {
      res.statusCode = [500, 404, 500, 200, 500][n] ?? 200;
      res.end();
    });
    const h = await harness({
      ports: [e.port],
      policy: { retryMask: 0 },
      outlier: { consecutiveFailures: 2 },
    });
    for (let i = 0; i < 5; i++) await send(h);
    expect(h.ups[0]!.ejected).toBe(false);
    expect(h.ups[0]!.consecutiveFailures).toBe(1);
    await settled(h, 5);
  });

  it('connect failures and resets count; a retried try counts against the endpoint it failed on', async () => {
    const dead = await refusedPort();
    const reset = await endpoint((req) => req.socket.destroy());
    const live = await endpoint(ok());
    const h = await harness({
      ports: [dead, reset.port, live.port],
      policy: { attempts: 2 },
      outlier: { consecutiveFailures: 10 },
    });
    expect((await send(h)).status).toBe(200);
    expect(h.ups.map((u) => u.consecutiveFailures)).toEqual([1, 1, 0]);
    await settled(h, 1);
  });
});

describe('error classification', () => {
  it('connection refused → 502 EDGEGATE_UPSTREAM_CONNECT with the JSON error body', async () => {
    const h = await harness({ ports: [await refusedPort()], policy: { attempts: 0 } });
    const a = await send(h);
    expect(a.status).toBe(502);
    expect(a.headers['cache-control']).toBe('no-store');
    const body = gatewayError(a);
    expect(body).toMatchObject({ error: 'EDGEGATE_UPSTREAM_CONNECT', requestId: a.headers['x-request-id'] });
    expect(body.message).toBe('could not connect to the upstream');
  });

  it('connection closed before an answer → 502 EDGEGATE_UPSTREAM_RESET', async () => {
    const e = await rawEndpoint((socket) => socket.destroy());
    const h = await harness({ ports: [e.port], policy: { attempts: 0 } });
    expect(gatewayError(await send(h)).error).toBe('EDGEGATE_UPSTREAM_RESET');
  });

  // undici 8's HTTPParserError has `code: undefined`: a parser error is recognised by its name, never taken for a reset.
  it('bytes that are not HTTP → 502 EDGEGATE_UPSTREAM_PROTOCOL', async () => {
    const e = await rawEndpoint((socket) => socket.end('SSH-2.0-OpenSSH_9.6\r\n\r\n'));
    const h = await harness({ ports: [e.port], policy: { attempts: 0 } });
    const a = await send(h);
    expect(a.status).toBe(502);
    expect(gatewayError(a).error).toBe('EDGEGATE_UPSTREAM_PROTOCOL');
  });

  it('a protocol error is not retried even when reset is (the upstream may have acted on the request)', async () => {
    const e = await rawEndpoint((socket) => socket.end('HTTP/1.1 200 OK\r\nBad Header: x\r\n\r\nok'));
    const live = await endpoint(ok());
    const h = await harness({
      ports: [e.port, live.port],
      policy: { retryMask: FAIL_CONNECT | FAIL_RESET | FAIL_5XX },
    });
    expect(gatewayError(await send(h)).error).toBe('EDGEGATE_UPSTREAM_PROTOCOL');
    expect(live.received).toHaveLength(0);
  });

  it('a status the client side cannot carry → 502 EDGEGATE_UPSTREAM_PROTOCOL, and the server keeps serving', async () => {
    const e = await rawEndpoint((socket) => socket.end('HTTP/1.1 099 Odd\r\nContent-Length: 0\r\n\r\n'));
    const h = await harness({ ports: [e.port], policy: { attempts: 0 } });
    const a = await send(h);
    expect(a.status).toBe(502);
    expect(gatewayError(a)).toMatchObject({
      error: 'EDGEGATE_UPSTREAM_PROTOCOL',
      message: 'the upstream sent a header that cannot be forwarded',
    });
    expect(h.counters.upstreamErrors).toBe(1);
    await settled(h, 1);
  });

  it('a cluster without endpoints → 503 EDGEGATE_NO_HEALTHY_UPSTREAM naming the service and datacenter', async () => {
    const h = await harness({ ports: [] });
    const a = await send(h);
    expect(a.status).toBe(503);
    expect(gatewayError(a)).toMatchObject({
      error: 'EDGEGATE_NO_HEALTHY_UPSTREAM',
      message: 'no healthy endpoint for svc in dc1',
    });
    await settled(h, 1);
  });

  it('a cluster whose endpoints all left the table → 503 EDGEGATE_NO_HEALTHY_UPSTREAM', async () => {
    const e = await endpoint(ok());
    const h = await harness({ ports: [e.port] });
    await h.ups[0]!.retire();
    expect(gatewayError(await send(h)).error).toBe('EDGEGATE_NO_HEALTHY_UPSTREAM');
    expect(e.received).toHaveLength(0);
  });

  it('a pool closed under the request (the request never left) → EDGEGATE_UPSTREAM_CONNECT', async () => {
    const e = await endpoint(ok());
    const h = await harness({ ports: [e.port], policy: { attempts: 0 } });
    await h.ups[0]!.pool.close();
    expect(gatewayError(await send(h)).error).toBe('EDGEGATE_UPSTREAM_CONNECT');
  });
});

describe('a request undici refuses to send', () => {
  // undici refuses some upstream requests before anything is sent (a second Host header, Transfer-Encoding,
  // Connection: upgrade, Expect, Keep-Alive…: UND_ERR_INVALID_ARG). That is the request's fault, never the
  // endpoint's: 400, not retried, no outlier failure (one route's mistake must not eject endpoints others share).
  it('is not held against the endpoint nor retried', async () => {
    const e = await endpoint(ok());
    const h = await harness({
      ports: [e.port],
      extraHeaders: ['host', 'second.example'],
      outlier: { consecutiveFailures: 1 },
    });
    const a = await send(h);
    expect(a.status).toBe(400);
    expect(e.received).toHaveLength(0);
    expect(h.counters.tries).toBe(0); // nothing was sent: not an upstream try
    expect(h.ups[0]!.consecutiveFailures).toBe(0);
    expect(h.ups[0]!.ejected).toBe(false);
    expect(gatewayError(a).error).not.toBe('EDGEGATE_UPSTREAM_RESET');
  });
});

describe('the client going away', () => {
  it('aborts the upstream request and releases everything, without blaming the endpoint', async () => {
    const silent = held();
    const e = await endpoint(silent.handler);
    const h = await harness({ ports: [e.port], outlier: { consecutiveFailures: 1 } });
    const ac = new AbortController();
    const pending = request(h.url('/'), { dispatcher: h.agent, signal: ac.signal }).catch(
      (err: Error) => err,
    );
    await waitFor(() => silent.waiting.length === 1, { timeoutMs: 5000, intervalMs: 5 });
    ac.abort();
    expect(await pending).toBeInstanceOf(Error);
    await waitFor(() => silent.waiting[0]!.destroyed, { timeoutMs: 5000, intervalMs: 5 });
    await settled(h, 1);
    expect(h.ups[0]!.consecutiveFailures).toBe(0);
    expect(h.counters.upstreamErrors).toBe(0);
  });
});

describe('backpressure', () => {
  it('a client that stops reading stops the upstream from sending, and the body arrives whole after', async () => {
    const chunk = Buffer.alloc(64 * 1024, 'x');
    const limit = 32 * 1024 * 1024;
    let written = 0;
    let finished = false;
    const e = await endpoint((_req, res) => {
      res.writeHead(200, { 'content-type': 'application/octet-stream' });
      const pump = () => {
        while (written < limit) {
          written += chunk.length;
          if (!res.write(chunk)) {
            res.once('drain', pump);
            return;
          }
        }
        res.end(() => {
          finished = true;
        });
      };
      pump();
    });
    const h = await harness({ ports: [e.port] });
    const r = await request(h.url('/big'), { dispatcher: h.agent, highWaterMark: 16 * 1024 });
    // The client reads nothing. Upstream, Exchange and client share this event loop, so a pump that makes no
    // progress over several polls (each after I/O was processed) is stuck for good, not slow.
    let last = -1;
    let still = 0;
    const outcome = await waitFor(
      () => {
        if (finished) return 'finished';
        still = written === last ? still + 1 : 0;
        last = written;
        return still >= 5 ? 'stuck' : false;
      },
      { timeoutMs: 20_000, intervalMs: 20, message: 'the upstream to finish or get stuck' },
    );
    expect(outcome).toBe('stuck');
    // A few MB sit in socket buffers on the way; the rest waits at the upstream.
    expect(written).toBeLessThan(limit / 2);
    let received = 0;
    for await (const c of r.body) received += (c as Buffer).length;
    expect(received).toBe(limit);
    expect(finished).toBe(true);
    await settled(h, 1);
  });
});

describe('which requests ProxyPipeline lets retry', () => {
  /** An endpoint that resets every first try and answers the retry; a pipeline with the default retry policy. */
  async function pipeline() {
    const e = await endpoint((req, res) => {
      if (req.headers['x-edgegate-attempt'] === undefined) req.socket.destroy();
      else {
        req.resume();
        req.on('end', () => res.end('retried'));
      }
    });
    const gw = await startGateway(
      tableOf({ rules: [{ backends: [{ consul: { service: 'svc' } }] }] }, { svc: [e.port] }),
    );
    cleanup.push(() => gw.close());
    return { e, port: gw.port };
  }

  function call(
    port: number,
    method: string,
    headers: Record<string, string>,
    body?: string,
  ): Promise<number> {
    return new Promise((resolve, reject) => {
      const req = httpRequest(
        { host: '127.0.0.1', port, method, path: '/', headers: { host: 'a.test', ...headers }, agent: false },
        (res) => {
          res.resume();
          res.on('end', () => resolve(res.statusCode ?? 0));
        },
      );
      req.on('error', reject);
      req.end(body);
    });
  }

  it.each<{ method: string; headers: Record<string, string>; body?: string; retried: boolean }>([
    { method: 'GET', headers: {}, retried: true },
    { method: 'HEAD', headers: {}, retried: true },
    { method: 'OPTIONS', headers: {}, retried: true },
    { method: 'TRACE', headers: {}, retried: true },
    { method: 'PUT', headers: { 'content-length': '0' }, retried: true },
    { method: 'DELETE', headers: {}, retried: true },
    { method: 'POST', headers: { 'content-length': '0' }, retried: false },
    { method: 'PATCH', headers: { 'content-length': '0' }, retried: false },
    { method: 'GET', headers: { 'content-length': '3' }, body: 'abc', retried: false },
    { method: 'PUT', headers: { 'content-length': '3' }, body: 'abc', retried: false },
    { method: 'DELETE', headers: { 'transfer-encoding': 'chunked' }, body: '', retried: false },
  ])('$method $headers → retried: $retried', async ({ method, headers, body, retried }) => {
    const { e, port } = await pipeline();
    const code = await call(port, method, headers, body);
    expect(code).toBe(retried ? 200 : 502);
    expect(e.received).toHaveLength(retried ? 2 : 1);
  });
});

describe('body pieces of the raw pool', () => {
  // Three 64 KiB pieces, each of its own byte, through the in-process gateway.
  async function relay(upstreamClient: 'raw' | 'undici') {
    const up = await startUpstream('pieces', (_req, res) => {
      res.writeHead(200, { 'content-length': String(3 * 65536) });
      res.write(Buffer.alloc(65536, 1));
      res.write(Buffer.alloc(65536, 2));
      res.end(Buffer.alloc(65536, 3));
    });
    cleanup.push(() => up.close());
    const gw = await startGateway(
      tableOf({ rules: [{ backends: [{ consul: { service: 'svc' } }] }] }, { svc: [up.port] }),
      { upstreamClient },
      { http1Server: 'raw' },
    );
    cleanup.push(() => gw.close());
    handOver.mockClear();
    const res = await request(`http://127.0.0.1:${gw.port}/`, { headers: { host: 'a.test' } });
    const body = Buffer.from(await res.body.arrayBuffer());
    return { status: res.statusCode, body, handedOver: handOver.mock.calls.length };
  }
  const handOver = vi.spyOn(RawResponse.prototype, 'writeTransient');
  afterAll(() => handOver.mockRestore());

  it('are handed to the client connection as pieces whose memory it may give back, and arrive intact', async () => {
    const raw = await relay('raw');
    expect(raw.status).toBe(200);
    expect(raw.handedOver).toBeGreaterThan(0);
    expect(raw.body.length).toBe(3 * 65536);
    for (let i = 0; i < 3; i++)
      expect(raw.body.subarray(i * 65536, (i + 1) * 65536).every((b) => b === i + 1)).toBe(true);
    // undici's pieces are views of its own read buffers: never handed over.
    const undici = await relay('undici');
    expect(undici.handedOver).toBe(0);
    expect(undici.body.equals(raw.body)).toBe(true);
  });
});
