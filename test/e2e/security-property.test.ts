/**
 * Nothing a client sends can end a worker (issue 14 item 1, as a class). fast-check generates HTTP/1 request heads —
 * methods (registered, lower-case, odd tokens, non-tokens), versions (1.0, 1.1, 2.0, 0.9, 3.0, malformed), targets
 * (origin-form with dot segments and percent-escapes, absolute-form with odd schemes and userinfo, `*`,
 * authority-form, fragments), Host fields (missing, duplicate, invalid), header names and values (underscores,
 * control characters, obs-text, gateway-owned names, hop-by-hop names) and framing (Content-Length and
 * Transfer-Encoding alone, together, duplicated, malformed; chunked bodies right and wrong) — and sends each over a
 * raw socket to a live `edgegate run --workers 1`, then half-closes. Every connection must get an HTTP/1.1 answer
 * that is not a 500, or a close, within a deadline; the worker process must still be the same one afterwards, with no
 * exception caught anywhere (edgegate_request_handler_errors_total stays 0) and a normal request still served.
 *
 * The seed and the shrunk counterexample are printed by fast-check on failure; rerun one with
 * `FC_SEED=<seed> npx vitest run test/e2e/security-property.test.ts`.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  type EchoUpstream,
  type GatewayProcess,
  routeYaml,
  startEcho,
  startGateway,
  writeLoopbackCatalog,
} from '../support/gateway.ts';
import { scrapeMetrics, sumOf } from '../support/prom-text.ts';

const RUNS = Number(process.env.FC_RUNS ?? 8000);
/** A connection that neither answers nor closes in this time is a failure (no client timeout is this short). */
const ANSWER_DEADLINE_MS = 5_000;
/** No answer yet after this long: the client half-closes (the request waits for body bytes that never come). */
const IDLE_MS = 300;

let echo: EchoUpstream;
let gw: GatewayProcess;
let dir: string;
let workerPid: number;

interface WorkersView {
  restarts?: number;
  workers: { pid?: number; state: string }[];
}

async function workers(): Promise<WorkersView> {
  const r = await fetch(`${gw.adminUrl}/debug/workers`);
  return (await r.json()) as WorkersView;
}

beforeAll(async () => {
  echo = await startEcho('property');
  dir = mkdtempSync(join(tmpdir(), 'eg-property-'));
  const routes = join(dir, 'routes');
  const catalog = join(dir, 'catalog.yaml');
  mkdirSync(routes);
  writeLoopbackCatalog(catalog, { echo: [echo.port] });
  // Every kind of forwarding: a catch-all, a rule behind a policy gate (the asynchronous path), a rewrite, a
  // host-specific rule with a header match.
  writeFileSync(
    join(routes, 'all.yaml'),
    routeYaml('all', {
      rules: [
        { backends: [{ consul: { service: 'echo' } }] },
        {
          matches: [{ path: { type: 'PathPrefix', value: '/gated' } }],
          policies: { ipAllow: ['127.0.0.1/32', '::1/128'] },
          backends: [{ consul: { service: 'echo' } }],
        },
        {
          matches: [{ path: { type: 'PathPrefix', value: '/rewrite' } }],
          filters: [
            {
              type: 'URLRewrite',
              urlRewrite: { path: { type: 'ReplacePrefixMatch', replacePrefixMatch: '/' } },
            },
          ],
          backends: [{ consul: { service: 'echo' } }],
        },
      ],
    }),
  );
  writeFileSync(
    join(routes, 'host.yaml'),
    routeYaml('host', {
      hostnames: ['test.local'],
      rules: [
        {
          matches: [{ path: { type: 'Exact', value: '/internal/metrics' }, method: 'GET' }],
          policies: { ipAllow: ['10.0.0.0/8'] },
          backends: [{ consul: { service: 'echo' } }],
        },
        {
          matches: [{ path: { value: '/' }, headers: [{ name: 'x-canary', value: 'always' }] }],
          backends: [{ consul: { service: 'echo' } }],
        },
        { backends: [{ consul: { service: 'echo' } }] },
      ],
    }),
  );
  gw = await startGateway(['--routes', routes, '--catalog', catalog, '--workers', '1']);
  const w = await workers();
  workerPid = w.workers[0]!.pid!;
  expect(workerPid).toBeGreaterThan(0);
});

afterAll(async () => {
  await gw?.stop();
  await echo?.close();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

// ── Generators ───────────────────────────────────────────────────────────────────────────────────────────────

const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]{1,10}$/;

const method = fc.oneof(
  { weight: 30, arbitrary: fc.constantFrom('GET', 'HEAD', 'POST', 'PUT', 'DELETE', 'OPTIONS', 'PATCH') },
  fc.constantFrom('TRACE', 'CONNECT', 'PRI', 'M-SEARCH', 'PROPFIND', 'QUERY', 'PURGE', 'MKCOL'),
  fc.constantFrom('get', 'delete', 'Get', 'post', 'pOST'),
  fc.constantFrom('G@T', 'FOO', '', 'GE T', 'GET\t', '\x00GET', 'X'.repeat(40), 'GÉT'),
  fc.stringMatching(TOKEN),
);

const version = fc.oneof(
  { weight: 30, arbitrary: fc.constantFrom('HTTP/1.1', 'HTTP/1.1', 'HTTP/1.0') },
  fc.constantFrom(
    'HTTP/2.0',
    'HTTP/2',
    'HTTP/0.9',
    'HTTP/3.0',
    'HTTP/1.2',
    'http/1.1',
    'HTTP/1.1 x',
    'HTTP/11',
    '',
  ),
  fc.tuple(fc.nat(9), fc.nat(9)).map(([a, b]) => `HTTP/${a}.${b}`),
);

const hostValue = fc.oneof(
  { weight: 12, arbitrary: fc.constantFrom('test.local', 'test.local:8080', 'other.local', '127.0.0.1') },
  fc.constantFrom('[::1]', '[::1]:80', '[x', 'a b', 'a:99999', 'a:0', 'a:', '', ':80', '[fe80::1%25eth0]'),
  fc.constantFrom(
    'TEST.LOCAL.',
    'a_b.local',
    '%74est.local',
    'a/b',
    'a@b',
    'test.local\t',
    'ÿ.local',
    'a..b',
  ),
  fc.domain(),
);

const segment = fc.oneof(
  {
    weight: 20,
    arbitrary: fc.constantFrom('x', 'admin', 'gated', 'rewrite', 'internal', 'metrics', 'a.b', '', '..', '.'),
  },
  fc.constantFrom('%2e%2e', '%2E.', '%2f', '%5c', '%00', '%zz', '%', 'a%20b', '~u', ';p=1', 'é', '\\'),
  fc.stringMatching(/^[A-Za-z0-9._~!$&'()*+,;=:@%-]{0,8}$/),
);
const path = fc.array(segment, { maxLength: 4 }).map((s) => `/${s.join('/')}`);
const query = fc
  .option(fc.stringMatching(/^[A-Za-z0-9=&%+._~/?-]{0,12}$/), { freq: 2 })
  .map((q) => (q === null ? '' : `?${q}`));
/** Mostly none: a fragment is refused, and the point is to reach the routes too. */
const fragment = fc.oneof(
  { weight: 15, arbitrary: fc.constant('') },
  fc.stringMatching(/^[A-Za-z0-9/]{0,4}$/).map((f) => `#${f}`),
);
const target = fc.oneof(
  { weight: 12, arbitrary: fc.tuple(path, query, fragment).map(([p, q, f]) => p + q + f) },
  fc
    .tuple(fc.constantFrom('http://', 'https://', 'HTTP://', 'ftp://', 'http://u:p@'), hostValue, path, query)
    .map(([scheme, h, p, q]) => scheme + h + p + q),
  fc.constantFrom(
    '*',
    '',
    'x',
    'a:443',
    '//x',
    '/x y',
    '/\x7f',
    '/internal/metrics#',
    '/internal/metrics%23',
  ),
);

const headerName = fc.oneof(
  {
    weight: 12,
    arbitrary: fc.constantFrom(
      'X-A',
      'Accept',
      'Cookie',
      'Content-Type',
      'X-Canary',
      'X-Forwarded-For',
      'X-Edgegate-Attempt',
      'X-Request-Id',
      'Connection',
      'Upgrade',
      'Expect',
      'TE',
      'Trailer',
      'Keep-Alive',
      'Proxy-Connection',
      'Forwarded',
      'Sec-WebSocket-Key',
    ),
  },
  fc.constantFrom('x_user', 'X_Forwarded_For', 'X{', 'X Y', 'X:', ' X', 'X\x01', 'Hoſt'),
  fc.stringMatching(TOKEN),
);
const headerValue = fc.oneof(
  { weight: 16, arbitrary: fc.stringMatching(/^[!-~][ -~]{0,22}[!-~]$/) },
  fc.constantFrom('a\x01b', 'a\x7fb', '\x80\xff', ' lead', 'trail ', 'a\tb', 'always', 'canary=always'),
  fc.constantFrom(
    'close',
    'Upgrade',
    'close, X-A',
    'websocket',
    'h2c',
    '100-continue',
    'trailers',
    'keep-alive',
  ),
  fc.constantFrom('a'.repeat(3000), 'x'.repeat(20_000)),
  fc.string({ maxLength: 12 }),
);
const header = fc.tuple(headerName, headerValue);

/** Host fields of the head: none, one, or two; occasionally Host spelled oddly. */
const hostFields = fc.oneof(
  { weight: 20, arbitrary: hostValue.map((h) => [['Host', h]]) },
  fc.constant([] as string[][]),
  fc.tuple(hostValue, hostValue).map(([a, b]) => [
    ['Host', a],
    ['host', b],
  ]),
  hostValue.map((h) => [['HOST', h]]),
);

const body = fc.stringMatching(/^[ -~]{0,16}$/);

interface Framing {
  headers: string[][];
  body: string;
}

/** Content-Length / Transfer-Encoding combinations and the body bytes that follow the head. */
const framing: fc.Arbitrary<Framing> = fc.tuple(body, fc.nat(8)).chain(([b, n]) =>
  fc.oneof(
    {
      weight: 24,
      arbitrary: fc.constantFrom<Framing>(
        { headers: [], body: '' },
        { headers: [['Content-Length', String(b.length)]], body: b },
        {
          headers: [['Transfer-Encoding', 'chunked']],
          body: `${b.length.toString(16)}\r\n${b}\r\n0\r\n\r\n`,
        },
      ),
    },
    fc.constantFrom<Framing>(
      { headers: [], body: b },
      { headers: [['Content-Length', '0']], body: '' },
      { headers: [['Content-Length', String(b.length + n + 1)]], body: b },
      { headers: [['Content-Length', String(Math.max(0, b.length - n))]], body: b },
      { headers: [['Content-Length', `+${b.length}`]], body: b },
      { headers: [['Content-Length', '-1']], body: '' },
      { headers: [['Content-Length', ` ${b.length} `]], body: b },
      {
        headers: [
          ['Content-Length', String(b.length)],
          ['Content-Length', String(b.length)],
        ],
        body: b,
      },
      {
        headers: [
          ['Content-Length', String(b.length)],
          ['Content-Length', String(b.length + 1)],
        ],
        body: b,
      },
      { headers: [['Transfer-Encoding', 'chunked']], body: `${b.length.toString(16)}\r\n${b}\r\n0\r\n\r\n` },
      { headers: [['Transfer-Encoding', 'chunked']], body: `${b.length.toString(16)}\n${b}\r\n0\r\n\r\n` },
      { headers: [['Transfer-Encoding', 'chunked']], body: `zz\r\n${b}\r\n0\r\n\r\n` },
      { headers: [['Transfer-Encoding', 'chunked']], body: `0\r\nx-t: 1\r\n\r\n` },
      { headers: [['Transfer-Encoding', 'gzip, chunked']], body: '0\r\n\r\n' },
      { headers: [['Transfer-Encoding', 'chunked, identity']], body: '0\r\n\r\n' },
      { headers: [['Transfer-Encoding', 'xchunked']], body: '0\r\n\r\n' },
      { headers: [['Transfer-Encoding', 'CHUNKED']], body: '0\r\n\r\n' },
      { headers: [['Transfer-Encoding', ' chunked']], body: '0\r\n\r\n' },
      { headers: [['Transfer-Encoding', 'identity']], body: b },
      {
        headers: [
          ['Transfer-Encoding', 'gzip'],
          ['Transfer-Encoding', 'chunked'],
        ],
        body: '0\r\n\r\n',
      },
      {
        headers: [
          ['Transfer-Encoding', 'chunked'],
          ['Content-Length', String(b.length)],
        ],
        body: `${b.length.toString(16)}\r\n${b}\r\n0\r\n\r\n`,
      },
      {
        headers: [
          ['Content-Length', '3'],
          ['Transfer-Encoding', 'chunked'],
        ],
        body: '0\r\n\r\nGET /admin HTTP/1.1\r\nHost: test.local\r\n\r\n',
      },
    ),
  ),
);

interface Head {
  method: string;
  target: string;
  version: string;
  hosts: string[][];
  headers: [string, string][];
  framing: Framing;
  /** Line ending of the head: CRLF, or a bare LF. */
  eol: string;
  /** Extra headers to go over the header cap. */
  many: number;
}

const head: fc.Arbitrary<Head> = fc.record({
  method,
  target,
  version,
  hosts: hostFields,
  headers: fc.array(header, { maxLength: 4 }),
  framing,
  eol: fc.oneof({ weight: 30, arbitrary: fc.constant('\r\n') }, fc.constant('\n')),
  many: fc.oneof({ weight: 30, arbitrary: fc.constant(0) }, fc.constantFrom(99, 120)),
});

function bytesOf(h: Head): Buffer {
  const lines = [`${h.method} ${h.target} ${h.version}`];
  for (const [n, v] of h.hosts) lines.push(`${n}: ${v}`);
  for (const [n, v] of h.headers) lines.push(`${n}: ${v}`);
  for (const [n, v] of h.framing.headers) lines.push(`${n}: ${v}`);
  for (let i = 0; i < h.many; i++) lines.push(`X-Many-${i}: ${i}`);
  // So a forwarded request's connection closes after its answer, as a refused one's does.
  lines.push('Connection: close');
  return Buffer.from(`${lines.join(h.eol)}${h.eol}${h.eol}${h.framing.body}`, 'latin1');
}

interface Outcome {
  /** What the gateway sent before closing. */
  response: string;
  /** The connection was closed (by either side) before the deadline. */
  closed: boolean;
}

/**
 * Sends the bytes and collects everything until the gateway closes or the deadline passes. After IDLE_MS without
 * a byte from the gateway the client half-closes, as one giving up would: a request the gateway still waits on (a
 * body shorter than announced) then ends, and so does a connection kept alive after its answer. (Not at once:
 * Node drops a request whose client half-closes before it is answered.)
 */
function exchange(port: number, payload: Buffer): Promise<Outcome> {
  return new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1');
    const chunks: Buffer[] = [];
    const timer = setTimeout(() => {
      socket.destroy();
      resolve({ response: Buffer.concat(chunks).toString('latin1'), closed: false });
    }, ANSWER_DEADLINE_MS);
    const giveUp = () => socket.end();
    let idle = setTimeout(giveUp, IDLE_MS);
    socket.on('connect', () => socket.write(payload));
    socket.on('data', (c: Buffer) => {
      chunks.push(c);
      // An answer that leaves the connection open (keep-alive): done once nothing more comes for a while.
      clearTimeout(idle);
      idle = setTimeout(giveUp, IDLE_MS);
    });
    // A reset (the gateway closing with unread bytes) is a close too.
    socket.on('error', () => {});
    socket.on('close', () => {
      clearTimeout(timer);
      clearTimeout(idle);
      resolve({ response: Buffer.concat(chunks).toString('latin1'), closed: true });
    });
  });
}

function workerAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

describe('generated request heads against a live worker', () => {
  it('every connection gets an answer (never a 500) or a close, and the worker never exits', async () => {
    const started = Date.now();
    const statuses = new Map<string, number>();
    await fc.assert(
      fc.asyncProperty(head, async (h) => {
        const out = await exchange(gw.port, bytesOf(h));
        expect(out.closed, `no answer and no close within ${ANSWER_DEADLINE_MS} ms`).toBe(true);
        if (out.response !== '') {
          const m = /^HTTP\/1\.1 (\d{3}) /.exec(out.response);
          expect(m, `malformed answer: ${JSON.stringify(out.response.slice(0, 80))}`).not.toBeNull();
          expect(m![1], out.response.slice(0, 300)).not.toBe('500');
          statuses.set(m![1]!, (statuses.get(m![1]!) ?? 0) + 1);
        } else statuses.set('closed', (statuses.get('closed') ?? 0) + 1);
        expect(workerAlive(workerPid), `worker ${workerPid} exited:\n${gw.output().slice(-4000)}`).toBe(true);
      }),
      {
        numRuns: RUNS,
        ...(process.env.FC_SEED ? { seed: Number(process.env.FC_SEED) } : {}),
        // The known killer, always tried first.
        examples: [
          [
            {
              method: 'GET',
              target: '/x',
              version: 'HTTP/2.0',
              hosts: [['Host', 'test.local']],
              headers: [],
              framing: { headers: [], body: '' },
              eol: '\r\n',
              many: 0,
            },
          ],
        ],
      },
    );
    console.log(
      `property: ${RUNS} heads in ${Date.now() - started} ms; answers ${JSON.stringify(Object.fromEntries([...statuses].sort()))}`,
    );

    const after = await workers();
    expect(after.workers.map((w) => w.pid)).toEqual([workerPid]);
    expect(after.workers[0]!.state).toBe('listening');
    expect(after.restarts ?? 0).toBe(0);
    const ok = await fetch(`${gw.url}/after`, { headers: { host: 'test.local' } });
    expect(ok.status).toBe(200);
    expect(((await ok.json()) as { path: string }).path).toBe('/after');
    const prom = await scrapeMetrics(gw.adminUrl);
    expect(sumOf(prom, 'edgegate_request_handler_errors_total')).toBe(0);
    // The refusals were counted by reason (the attack signal), and logged sampled, not one line per request.
    expect(sumOf(prom, 'edgegate_requests_refused_total')).toBeGreaterThan(RUNS / 10);
    const refusalLines = gw
      .output()
      .split('\n')
      .filter((l) => l.includes('request refused at the edge')).length;
    expect(refusalLines).toBeLessThan(sumOf(prom, 'edgegate_requests_refused_total'));
  }, 240_000);
});
