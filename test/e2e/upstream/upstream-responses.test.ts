/**
 * What the upstream sends is classified right, and what the client sends is never held against the upstream, on
 * every listener:
 *  - an upstream `103 Early Hints` is relayed (Link) before the final response, other 1xx are dropped, and the
 *    final response always arrives;
 *  - a malformed upstream response (NUL in a header value, a bad status line, invalid chunk framing, oversized
 *    headers…) is `EDGEGATE_UPSTREAM_PROTOCOL`, not `EDGEGATE_UPSTREAM_RESET`;
 *  - a request the HTTP client refuses to send (a Host it cannot parse) is a 400 that never reaches an upstream,
 *    is not retried and never counts for outlier detection: six of them do not eject a healthy endpoint.
 */
import { once } from 'node:events';
import { createServer, type Server, type Socket } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { waitFor } from '../cluster/helpers.ts';
import {
  type CountingUpstream,
  client,
  countingUpstream,
  type EdgeGateway,
  errorCodeOf,
  HOST,
  h2Session,
  LISTENERS,
  type Listener,
  rawConnection,
  startEdgeGateway,
} from './helpers.ts';

const LINK = '</style.css>; rel=preload; as=style';

/** Raw upstream answers by request path (`/bad/<case>`): malformed responses the HTTP client must refuse. */
const MALFORMED: Record<string, string> = {
  'nul-in-header-value': 'HTTP/1.1 200 OK\r\nx-a: a\0b\r\ncontent-length: 2\r\n\r\nok',
  'bad-status-code': 'HTTP/1.1 2x0 OK\r\ncontent-length: 2\r\n\r\nok',
  'not-http': 'HELLO WORLD\r\n\r\n',
  'oversized-headers': `HTTP/1.1 200 OK\r\nx-a: ${'a'.repeat(70_000)}\r\ncontent-length: 2\r\n\r\nok`,
  'cr-in-header-value': 'HTTP/1.1 200 OK\r\nx-a: a\rb\r\ncontent-length: 2\r\n\r\nok',
  'space-in-header-name': 'HTTP/1.1 200 OK\r\nx a: b\r\ncontent-length: 2\r\n\r\nok',
  'bare-lf': 'HTTP/1.1 200 OK\nx-a: b\ncontent-length: 2\n\nok',
  'bad-content-length': 'HTTP/1.1 200 OK\r\ncontent-length: 2x\r\n\r\nok',
  'content-length-and-chunked':
    'HTTP/1.1 200 OK\r\ncontent-length: 2\r\ntransfer-encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n',
  'two-content-lengths': 'HTTP/1.1 200 OK\r\ncontent-length: 2\r\ncontent-length: 3\r\n\r\nok',
};
/**
 * A 1xx the gateway did not ask for (it never sends Expect upstream) before the final answer: RFC 9110 §15.2 says a
 * client MUST parse it; the raw HTTP/1.1 client skips it and relays the final answer (undici refused it as a
 * protocol error).
 */
const UNSOLICITED_100 = 'HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok';
/** Framing broken after the status line: the client gets a truncated response, the metric the code. */
const MALFORMED_BODY = 'HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\nzz\r\nok\r\n0\r\n\r\n';

async function startRawUpstream(): Promise<{ server: Server; port: number }> {
  const server = createServer((socket: Socket) => {
    socket.on('error', () => {});
    socket.once('data', (d: Buffer) => {
      const path = /^GET (\S+)/.exec(d.toString('latin1'))?.[1] ?? '';
      const name = path.slice(path.lastIndexOf('/') + 1);
      if (name === 'close') return socket.destroy();
      socket.end(
        name === 'bad-chunk'
          ? MALFORMED_BODY
          : name === 'unsolicited-100-continue'
            ? UNSOLICITED_100
            : (MALFORMED[name] ?? 'HTTP/1.1 404 x\r\n\r\n'),
      );
    });
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return { server, port: (server.address() as { port: number }).port };
}

let raw: Awaited<ReturnType<typeof startRawUpstream>>;
let hints: CountingUpstream;
let a: CountingUpstream;
let b: CountingUpstream;
let gw: EdgeGateway;

beforeAll(async () => {
  raw = await startRawUpstream();
  hints = await countingUpstream((req, res) => {
    if (req.url?.includes('hints')) res.writeEarlyHints({ link: LINK });
    if (req.url?.includes('processing') || req.url?.includes('hints')) res.writeProcessing();
    if (req.url?.includes('twice')) res.writeEarlyHints({ link: '</app.js>; rel=preload; as=script' });
    res.end('final');
  });
  a = await countingUpstream((_req, res) => res.end('a'));
  b = await countingUpstream((_req, res) => res.end('b'));
  gw = await startEdgeGateway({
    routes: [
      { prefix: '/bad', service: 'raw' },
      { prefix: '/info', service: 'hints' },
      // Retries on resets and 5xx, so a request held against the upstream would be retried on the other endpoint.
      {
        prefix: '/pair',
        service: 'pair',
        retry: { attempts: 2, retryOn: ['connect-failure', 'reset', '5xx'] },
      },
    ],
    services: { raw: [raw.port], hints: [hints.port], pair: [a.port, b.port] },
  });
}, 60_000);

afterAll(async () => {
  await gw?.close();
  raw?.server.close();
  await hints?.close();
  await a?.close();
  await b?.close();
});

describe.each(LISTENERS)('upstream 1xx answers over %s', (listener: Listener) => {
  it('103 Early Hints is relayed with its Link before the final response', async () => {
    const c = client(listener, gw);
    try {
      const r = await c.request({ path: '/info/hints' });
      expect(r.status).toBe(200);
      expect(r.body.toString()).toBe('final');
      expect(r.informational.map((i) => i.status)).toEqual([103]);
      expect(r.informational[0]!.headers.link).toBe(LINK);
    } finally {
      c.close();
    }
  });

  it('several 103s and a 102 Processing: each 103 relayed, the 102 dropped, the final response arrives', async () => {
    const c = client(listener, gw);
    try {
      const r = await c.request({ path: '/info/hints-twice' });
      expect(r.status).toBe(200);
      expect(r.body.toString()).toBe('final');
      expect(r.informational.map((i) => i.status)).toEqual([103, 103]);
      const p = await c.request({ path: '/info/processing' });
      expect(p.status).toBe(200);
      expect(p.body.toString()).toBe('final');
      expect(p.informational).toEqual([]);
    } finally {
      c.close();
    }
  });
});

describe('upstream 1xx answers to an HTTP/1.0 client', () => {
  it('get no 103 (RFC 9110 §15.2), only the final response', async () => {
    const s = await rawConnection('http', gw);
    let text = '';
    s.on('data', (d: Buffer) => {
      text += d.toString('latin1');
    });
    s.write(`GET /info/hints HTTP/1.0\r\nHost: ${HOST}\r\n\r\n`);
    await once(s, 'close');
    expect(text).toMatch(/^HTTP\/1\.1 200 /);
    // Status lines only: a random x-request-id can contain the digits 103.
    expect(text).not.toMatch(/^HTTP\/1\.[01] 103 /m);
    expect(text.endsWith('final')).toBe(true);
  });
});

describe.each(LISTENERS)('malformed upstream responses over %s', (listener: Listener) => {
  it('are answered 502 EDGEGATE_UPSTREAM_PROTOCOL, not EDGEGATE_UPSTREAM_RESET', async () => {
    const c = client(listener, gw);
    try {
      const got: Record<string, string> = {};
      for (const name of Object.keys(MALFORMED)) {
        const r = await c.request({ path: `/bad/${name}` });
        got[name] = `${r.status} ${errorCodeOf(r)}`;
      }
      expect(got).toEqual(
        Object.fromEntries(Object.keys(MALFORMED).map((n) => [n, '502 EDGEGATE_UPSTREAM_PROTOCOL'])),
      );
      // A 1xx nobody asked for is skipped (RFC 9110 §15.2), the final answer relayed.
      const hundred = await c.request({ path: '/bad/unsolicited-100-continue' });
      expect(`${hundred.status} ${hundred.body.toString()}`).toBe('200 ok');
      // The control: an upstream that closes without answering is a reset.
      const closed = await c.request({ path: '/bad/close' });
      expect(`${closed.status} ${errorCodeOf(closed)}`).toBe('502 EDGEGATE_UPSTREAM_RESET');
    } finally {
      c.close();
    }
  });

  it('invalid chunk framing after the headers cuts the response and is counted as EDGEGATE_UPSTREAM_PROTOCOL', async () => {
    const before = await gw.counter('edgegate_gateway_errors_total', { code: 'EDGEGATE_UPSTREAM_PROTOCOL' });
    const c = client(listener, gw);
    try {
      await expect(c.request({ path: '/bad/bad-chunk' })).rejects.toThrow();
    } finally {
      c.close();
    }
    await waitFor(
      'the protocol error on /metrics',
      async () =>
        (await gw.counter('edgegate_gateway_errors_total', { code: 'EDGEGATE_UPSTREAM_PROTOCOL' })) ===
        before + 1,
      10_000,
    );
  });
});

describe.each(LISTENERS)('requests the HTTP client refuses to send, over %s', (listener: Listener) => {
  it('six with a Host undici cannot parse are 400s that reach no upstream and eject no endpoint', async () => {
    a.reset();
    b.reset();
    const ejections = await gw.counter('edgegate_outlier_ejections_total');
    const unsendable = await gw.counter('edgegate_upstream_unsendable_requests_total');
    const tries = await gw.counter('edgegate_upstream_tries_total');
    for (let i = 0; i < 6; i++) {
      const r = await badHost(listener, `/pair/bad-host-${i}`);
      expect(`${r.status} ${r.code}`).toBe('400 EDGEGATE_BAD_REQUEST');
    }
    expect(a.requests + b.requests).toBe(0);
    expect(await gw.counter('edgegate_outlier_ejections_total')).toBe(ejections);
    expect(await gw.counter('edgegate_upstream_tries_total')).toBe(tries);
    // Counted as the client's (until the edge refuses such a Host itself, which is as good).
    expect(await gw.counter('edgegate_upstream_unsendable_requests_total')).toBeLessThanOrEqual(
      unsendable + 6,
    );
    // Both endpoints are still in rotation.
    const c = client(listener, gw);
    try {
      const bodies = new Set<string>();
      for (let i = 0; i < 4; i++) bodies.add((await c.request({ path: '/pair/ok' })).body.toString());
      expect([...bodies].sort()).toEqual(['a', 'b']);
    } finally {
      c.close();
    }
  });
});

/** A request whose Host (or :authority) is `[x`: the status and error code of the answer. */
async function badHost(listener: Listener, path: string): Promise<{ status: number; code: string }> {
  if (listener === 'h2') {
    const session = await h2Session(gw);
    try {
      return await new Promise((resolve, reject) => {
        const st = session.request({ ':path': path, ':authority': '[x' });
        st.on('response', (h) => {
          const chunks: Buffer[] = [];
          st.on('data', (d: Buffer) => chunks.push(d));
          st.on('end', () =>
            resolve({
              status: Number(h[':status']),
              code: /"error":"([A-Z_]+)"/.exec(Buffer.concat(chunks).toString())?.[1] ?? '',
            }),
          );
        });
        st.on('error', reject);
        st.end();
      });
    } finally {
      session.close();
    }
  }
  const s = await rawConnection(listener, gw);
  let text = '';
  s.on('data', (d: Buffer) => {
    text += d.toString('latin1');
  });
  s.write(`GET ${path} HTTP/1.1\r\nHost: [x\r\nConnection: close\r\n\r\n`);
  await once(s, 'close');
  return {
    status: Number(/^HTTP\/1\.1 (\d{3})/.exec(text)?.[1] ?? 0),
    code: /"error":"([A-Z_]+)"/.exec(text)?.[1] ?? '',
  };
}
