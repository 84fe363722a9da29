/**
 * The raw HTTP/1.1 upstream pool (src/dataplane/proxy/raw-pool.ts) against real loopback sockets whose answers the
 * test writes byte by byte: reuse and its limits, framing both ways, every timeout, aborts, backpressure, closing,
 * and the attacks a raw client must not fall for (response queue poisoning, request head injection, smuggling
 * through a caller's Transfer-Encoding). The gateway runs the same pool end to end in test/e2e/upstream/raw-upstream.test.ts
 * and in the whole e2e suite.
 */
import { once } from 'node:events';
import net, { type AddressInfo, type Socket } from 'node:net';
import { PassThrough, Readable } from 'node:stream';
import type { Dispatcher } from 'undici';
import { afterEach, describe, expect, it } from 'vitest';
import { RawPool, type RawPoolOptions } from '../../../../src/dataplane/proxy/raw-pool.ts';
import { waitFor } from '../../../support/wait.ts';

interface Answer {
  status?: number;
  headers?: Record<string, string | string[]>;
  body: string;
  trailers?: Record<string, string | string[]>;
  informational: number[];
  error?: Error & { code?: string };
  /** onResponseEnd + onResponseError calls: exactly 1 for a settled request. */
  settled: number;
}

/** A loopback server; `onRequest(socket, head, index)` answers each request head it reads (split on the blank line). */
async function scripted(onRequest: (socket: Socket, head: string, n: number) => void) {
  const sockets: Socket[] = [];
  const heads: string[] = [];
  let requests = 0;
  const server = net.createServer((socket) => {
    sockets.push(socket);
    socket.on('error', () => {});
    let buf = '';
    socket.on('data', (d: Buffer) => {
      buf += d.toString('latin1');
      for (;;) {
        const end = buf.indexOf('\r\n\r\n');
        if (end < 0) return;
        const head = buf.slice(0, end);
        buf = buf.slice(end + 4);
        const len = /content-length: (\d+)/i.exec(head);
        if (len && !/transfer-encoding/i.test(head)) buf = buf.slice(Number(len[1]));
        if (/transfer-encoding: chunked/i.test(head)) {
          const stop = buf.indexOf('0\r\n\r\n');
          if (stop >= 0) buf = buf.slice(stop + 5);
        }
        heads.push(head);
        onRequest(socket, head, requests++);
      }
    });
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const port = (server.address() as AddressInfo).port;
  return {
    port,
    sockets,
    heads,
    close: () => {
      for (const s of sockets) s.destroy();
      server.close();
    },
  };
}

const pools: RawPool[] = [];
const servers: { close(): void }[] = [];
afterEach(async () => {
  for (const p of pools.splice(0)) await p.destroy();
  for (const s of servers.splice(0)) s.close();
});

function pool(port: number, opts: Partial<RawPoolOptions> = {}): RawPool {
  const p = new RawPool({
    host: '127.0.0.1',
    port,
    connections: 4,
    keepAliveTimeoutMs: 4000,
    connectTimeoutMs: 2000,
    ...opts,
  });
  pools.push(p);
  return p;
}

type Options = Partial<Dispatcher.DispatchOptions> & { pauseFirst?: boolean };

/** Dispatches and collects the answer. */
function request(p: RawPool, opts: Options = {}, hooks: Partial<Dispatcher.DispatchHandler> = {}) {
  return new Promise<Answer>((resolve) => {
    const a: Answer = { body: '', informational: [], settled: 0 };
    p.dispatch(
      { method: 'GET', path: '/', headers: ['host', 'a.test'], ...opts } as Dispatcher.DispatchOptions,
      {
        ...hooks,
        onResponseStart(c, status, headers) {
          if (status < 200) a.informational.push(status);
          else {
            a.status = status;
            a.headers = headers as Answer['headers'];
          }
          hooks.onResponseStart?.(c, status, headers);
        },
        onResponseData(c, chunk) {
          a.body += chunk.toString();
          hooks.onResponseData?.(c, chunk);
        },
        onResponseEnd(_c, trailers) {
          a.settled++;
          a.trailers = trailers as Answer['trailers'];
          resolve(a);
        },
        onResponseError(_c, err) {
          a.settled++;
          a.error = err;
          resolve(a);
        },
      },
    );
  });
}

const OK = 'HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok';

describe('raw pool: connection reuse', () => {
  it('reuses one keep-alive connection for requests one after the other', async () => {
    const s = await scripted((sock) => sock.write(OK));
    servers.push(s);
    const p = pool(s.port);
    for (let i = 0; i < 5; i++) expect((await request(p)).body).toBe('ok');
    expect(s.sockets.length).toBe(1);
    expect(p.stats).toMatchObject({ connected: 1, free: 1, running: 0, pending: 0 });
  });

  it('never reuses a connection after Connection: close, a read-to-close body or a zero Keep-Alive hint', async () => {
    const answers = [
      'HTTP/1.1 200 OK\r\nconnection: close\r\ncontent-length: 2\r\n\r\nok',
      'HTTP/1.1 200 OK\r\nkeep-alive: timeout=1\r\ncontent-length: 2\r\n\r\nok',
      'HTTP/1.1 200 OK\r\n\r\nok',
    ];
    const s = await scripted((sock, _h, n) => {
      if (n % 3 === 2) sock.end(answers[2]!);
      else sock.write(answers[n % 3]!);
    });
    servers.push(s);
    const p = pool(s.port);
    for (let i = 0; i < 3; i++) {
      const a = await request(p);
      expect(a.error).toBeUndefined();
      expect(a.body).toBe('ok');
    }
    expect((await request(p)).body).toBe('ok');
    expect(s.sockets.length).toBe(4);
  });

  it('opens at most `connections` sockets; requests beyond wait and all complete', async () => {
    const s = await scripted((sock) => setImmediate(() => sock.write(OK)));
    servers.push(s);
    const p = pool(s.port, { connections: 2 });
    const all = await Promise.all(Array.from({ length: 9 }, () => request(p)));
    expect(all.every((a) => a.body === 'ok')).toBe(true);
    expect(s.sockets.length).toBe(2);
  });

  it('closes an idle connection after the keep-alive timeout', async () => {
    const s = await scripted((sock) => sock.write(OK));
    servers.push(s);
    const p = pool(s.port, { keepAliveTimeoutMs: 50 });
    await request(p);
    await waitFor(() => p.stats.connected === 0, { timeoutMs: 5000 });
    await request(p);
    expect(s.sockets.length).toBe(2);
  });

  it('drops an idle connection the upstream closed and opens a new one for the next request', async () => {
    const s = await scripted((sock) => sock.write(OK));
    servers.push(s);
    const p = pool(s.port);
    await request(p);
    s.sockets[0]!.end();
    await waitFor(() => p.stats.connected === 0, { timeoutMs: 5000 });
    expect((await request(p)).body).toBe('ok');
  });
});

describe('raw pool: response queue poisoning', () => {
  it('a second response in the same read as the first never answers the next request', async () => {
    const s = await scripted((sock, _h, n) => {
      if (n === 0) sock.write(`${OK}HTTP/1.1 200 OK\r\ncontent-length: 6\r\n\r\nforged`);
      else sock.write('HTTP/1.1 200 OK\r\ncontent-length: 4\r\n\r\nreal');
    });
    servers.push(s);
    const p = pool(s.port);
    expect((await request(p)).body).toBe('ok');
    expect((await request(p)).body).toBe('real');
    expect(s.sockets.length).toBe(2);
  });

  it('a second response in the same read as the first never answers a request waiting for the connection', async () => {
    // The waiting request must not be started from inside the parse of the read that completed the first: the
    // rest of that read (a whole forged answer, or the start of one) would be taken as its answer.
    for (const extra of [
      'HTTP/1.1 200 OK\r\ncontent-length: 6\r\n\r\nforged',
      'HTTP/1.1 200 OK\r\nx-forged: ',
    ]) {
      const s = await scripted((sock, _h, n) => {
        if (n === 0) sock.write(`${OK}${extra}`);
        else sock.write('HTTP/1.1 200 OK\r\ncontent-length: 4\r\n\r\nreal');
      });
      servers.push(s);
      const p = pool(s.port, { connections: 1 });
      const [first, second] = await Promise.all([request(p), request(p)]);
      expect(first.body).toBe('ok');
      expect(second.body).toBe('real');
      expect(second.headers?.['x-forged']).toBeUndefined();
      expect(s.sockets.length).toBe(2);
    }
  });

  it('bytes sent on an idle connection close it; they are never read as the next answer', async () => {
    // A whole forged answer, and the start of one (its head would go on with the next real answer's bytes).
    for (const forged of [
      'HTTP/1.1 200 OK\r\ncontent-length: 6\r\n\r\nforged',
      'HTTP/1.1 200 OK\r\nx-forged: ',
    ]) {
      const s = await scripted((sock, _h, n) => {
        sock.write(n === 0 ? OK : 'HTTP/1.1 200 OK\r\ncontent-length: 4\r\n\r\nreal');
        if (n === 0) setImmediate(() => sock.write(forged));
      });
      servers.push(s);
      // Idle connections kept far longer than the wait below: only the refusal of idle bytes can close this one.
      const p = pool(s.port, { keepAliveTimeoutMs: 60_000 });
      await request(p);
      await waitFor(() => p.stats.connected === 0, { timeoutMs: 5000 });
      const next = await request(p);
      expect(next.body).toBe('real');
      expect(next.headers?.['x-forged']).toBeUndefined();
    }
  });

  it('an upgrade nobody asked for is a protocol error', async () => {
    const s = await scripted((sock) =>
      sock.write('HTTP/1.1 101 Switching Protocols\r\nupgrade: websocket\r\nconnection: upgrade\r\n\r\n'),
    );
    servers.push(s);
    expect((await request(pool(s.port))).error?.code).toBe('EDGEGATE_BAD_UPGRADE');
  });
});

describe('raw pool: request head', () => {
  it('refuses CR/LF/NUL in values, non-token names and methods, control characters in the path; writes nothing', async () => {
    const s = await scripted((sock) => sock.write(OK));
    servers.push(s);
    const p = pool(s.port);
    const bad: Options[] = [
      { headers: ['host', 'a.test', 'x-a', 'v\r\nx-injected: 1'] },
      { headers: ['host', 'a.test', 'x-a', 'v\0'] },
      { headers: ['host', 'a.test', 'x a', 'v'] },
      { headers: ['host', 'a.test', 'x-a:', 'v'] },
      { method: 'GE T' as Dispatcher.HttpMethod },
      { path: '/a b' },
      { path: '/a\r\nHost: evil' },
    ];
    for (const o of bad) expect((await request(p, o)).error?.code).toBe('ERR_INVALID_CHAR');
    expect(s.heads).toEqual([]);
    expect((await request(p)).body).toBe('ok');
  });

  it('refuses a Transfer-Encoding from the caller (the pool frames bodies) and a second Content-Length', async () => {
    const s = await scripted((sock) => sock.write(OK));
    servers.push(s);
    const p = pool(s.port);
    const te = await request(p, {
      method: 'POST',
      headers: ['host', 'a.test', 'Transfer-Encoding', 'chunked'],
      body: Buffer.from('x'),
    });
    expect(te.error?.code).toBe('ERR_INVALID_CHAR');
    const two = await request(p, {
      method: 'POST',
      headers: ['host', 'a.test', 'content-length', '1', 'Content-Length', '1'],
      body: Buffer.from('x'),
    });
    expect(two.error?.code).toBe('ERR_INVALID_CHAR');
    expect(s.heads).toEqual([]);
  });

  it('says Content-Length: 0 for a POST without a body, the length of a buffered body, chunked for a stream', async () => {
    const bodies: string[] = [];
    const server = net.createServer((sock) => {
      let buf = '';
      sock.on('data', (d: Buffer) => {
        buf += d.toString('latin1');
        // One request per connection here: answer when its end is in.
        if (/\r\n\r\n$/.test(buf) && /content-length: 0/i.test(buf)) return done();
        if (/\r\n\r\nhello$/.test(buf)) return done();
        if (/\r\n0\r\n\r\n$/.test(buf)) return done();
      });
      const done = () => {
        bodies.push(buf);
        sock.end('HTTP/1.1 200 OK\r\nconnection: close\r\ncontent-length: 2\r\n\r\nok');
      };
    });
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    servers.push(server);
    const p = pool((server.address() as AddressInfo).port);
    await request(p, { method: 'POST' });
    await request(p, { method: 'PUT', body: Buffer.from('hello') });
    await request(p, { method: 'POST', body: Readable.from([Buffer.from('ab'), Buffer.from('cde')]) });
    expect(bodies[0]).toMatch(/^POST \/ HTTP\/1\.1\r\n[\s\S]*content-length: 0\r\n\r\n$/);
    expect(bodies[1]).toMatch(/content-length: 5\r\n\r\nhello$/);
    expect(bodies[2]).toMatch(/transfer-encoding: chunked\r\n\r\n2\r\nab\r\n3\r\ncde\r\n0\r\n\r\n$/);
  });

  it('a streamed body that ends short of its Content-Length fails and closes the connection', async () => {
    const s = await scripted(() => {});
    servers.push(s);
    const p = pool(s.port);
    const body = Readable.from([Buffer.from('abc')]);
    const a = await request(p, { method: 'POST', headers: ['host', 'a.test', 'content-length', '10'], body });
    expect(a.error?.code).toBe('EDGEGATE_REQUEST_LENGTH_MISMATCH');
    await waitFor(() => p.stats.connected === 0, { timeoutMs: 5000 });
  });

  it('a client body stream that fails mid-upload fails the request with that stream’s error', async () => {
    const s = await scripted(() => {});
    servers.push(s);
    const p = pool(s.port);
    const body = new PassThrough();
    body.on('error', () => {}); // node:http's request has its listeners; the pool adds its own once writing
    const pending = request(p, { method: 'POST', body });
    body.write('abc');
    const boom = new Error('client went away');
    body.destroy(boom);
    expect((await pending).error).toBe(boom);
  });
});

describe('raw pool: responses', () => {
  it('HEAD, 204 and 304 have no body whatever their Content-Length says, and the connection is reused', async () => {
    const s = await scripted((sock, head) => {
      if (head.startsWith('HEAD')) sock.write('HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\n');
      else if (head.includes('/204')) sock.write('HTTP/1.1 204 No Content\r\n\r\n');
      else if (head.includes('/304')) sock.write('HTTP/1.1 304 Not Modified\r\ncontent-length: 5\r\n\r\n');
      else sock.write(OK);
    });
    servers.push(s);
    const p = pool(s.port);
    expect(await request(p, { method: 'HEAD' })).toMatchObject({ status: 200, body: '' });
    expect(await request(p, { path: '/204' })).toMatchObject({ status: 204, body: '' });
    expect(await request(p, { path: '/304' })).toMatchObject({ status: 304, body: '' });
    expect((await request(p)).body).toBe('ok');
    expect(s.sockets.length).toBe(1);
  });

  it('passes 1xx answers first, repeated fields as arrays, lower-case names, trailers and long heads', async () => {
    let long = '';
    for (let i = 0; i < 40; i++) long += `X-F${i}: ${i}\r\n`;
    const s = await scripted((sock) =>
      sock.write(
        `HTTP/1.1 103 Early Hints\r\nlink: </a>\r\n\r\nHTTP/1.1 200 OK\r\nSet-Cookie: a=1\r\nSet-Cookie: b=2\r\n${long}transfer-encoding: chunked\r\n\r\n2\r\nok\r\n0\r\nGrpc-Status: 0\r\n\r\n`,
      ),
    );
    servers.push(s);
    const a = await request(pool(s.port));
    expect(a.informational).toEqual([103]);
    expect(a.headers!['set-cookie']).toEqual(['a=1', 'b=2']);
    expect(a.headers!['x-f39']).toBe('39');
    expect(a.body).toBe('ok');
    expect(a.trailers).toEqual({ 'grpc-status': '0' });
  });

  it('malformed answers fail with llhttp’s HPE_ codes; a close before the answer is EDGEGATE_UPSTREAM_CLOSED', async () => {
    const cases: [string, string][] = [
      ['HTTP/1.1 200 OK\r\ncontent-length: 2x\r\n\r\nok', 'HPE_INVALID_CONTENT_LENGTH'],
      ['HTTP/1.1 200 OK\r\ncontent-length: 2\r\ntransfer-encoding: chunked\r\n\r\n', 'HPE_'],
      [`HTTP/1.1 200 OK\r\nx: ${'a'.repeat(20_000)}\r\n\r\n`, 'HPE_HEADER_OVERFLOW'],
      ['HTTP/1.1 200 OK\nx: y\n\n', 'HPE_'],
      ['HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\nzz\r\n', 'HPE_'],
      ['', 'EDGEGATE_UPSTREAM_CLOSED'],
      ['HTTP/1.1 200 OK\r\ncontent-length: 9\r\n\r\nshort', 'EDGEGATE_UPSTREAM_CLOSED'],
    ];
    for (const [wire, code] of cases) {
      const s = await scripted((sock) => sock.end(wire));
      servers.push(s);
      const a = await request(pool(s.port));
      expect(a.error?.code?.startsWith(code), `${JSON.stringify(wire.slice(0, 60))}: ${a.error?.code}`).toBe(
        true,
      );
    }
  });
});

describe('raw pool: timeouts, aborts, backpressure, closing', () => {
  it('response headers timeout, then body idle timeout', async () => {
    const s = await scripted((sock, head) => {
      if (head.includes('/body')) sock.write('HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\nab');
    });
    servers.push(s);
    const p = pool(s.port);
    expect((await request(p, { headersTimeout: 50 })).error?.code).toBe('EDGEGATE_HEADERS_TIMEOUT');
    const b = await request(p, { path: '/body', bodyTimeout: 50 });
    expect(b.error?.code).toBe('EDGEGATE_BODY_TIMEOUT');
    expect(b.body).toBe('ab');
  });

  it('a body whose pieces come apart, each within the body timeout, is read whole though it takes longer', async () => {
    // Each piece moves the deadline on from its own arrival (the body timeout is an idle timeout): one timed from
    // the head would end this body at 300 ms.
    const s = await scripted((sock) => {
      sock.write('HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\na');
      let n = 1;
      const t = setInterval(() => {
        sock.write('b');
        if (++n === 10) clearInterval(t);
      }, 60);
    });
    servers.push(s);
    const a = await request(pool(s.port), { bodyTimeout: 300 });
    expect(a.error).toBeUndefined();
    expect(a.body).toBe(`a${'b'.repeat(9)}`);
  });

  it('a shorter timeout than the one pending on a reused connection still fires at its own deadline', async () => {
    // The timer is checked lazily (a deadline per request): a pending 60 s timer must not stand in for a 50 ms one
    // (this test would run into vitest's timeout), and one set for an earlier request waits again for the rest.
    const s = await scripted((sock, head) => {
      if (!head.includes('/silent')) sock.write(OK);
    });
    servers.push(s);
    const p = pool(s.port, { connections: 1 });
    expect((await request(p, { headersTimeout: 60_000 })).body).toBe('ok');
    expect((await request(p, { path: '/silent', headersTimeout: 50 })).error?.code).toBe(
      'EDGEGATE_HEADERS_TIMEOUT',
    );
    expect((await request(p, { headersTimeout: 80 })).body).toBe('ok');
    const late = await request(p, { path: '/silent', headersTimeout: 80 });
    expect(late.error?.code).toBe('EDGEGATE_HEADERS_TIMEOUT');
    expect(s.sockets.length).toBe(2);
  });

  it('a connect failure fails the waiting request with the socket’s code', async () => {
    const tmp = net.createServer();
    tmp.listen(0, '127.0.0.1');
    await once(tmp, 'listening');
    const port = (tmp.address() as AddressInfo).port;
    tmp.close();
    await once(tmp, 'close');
    expect((await request(pool(port))).error?.code).toBe('ECONNREFUSED');
  });

  it('abort() in flight fails with the reason once and closes that connection', async () => {
    const s = await scripted((sock) => sock.write('HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\nab'));
    servers.push(s);
    const p = pool(s.port);
    const reason = new Error('client gone');
    const a = await request(
      p,
      {},
      {
        onResponseData(c) {
          c.abort(reason);
        },
      },
    );
    expect(a.error).toBe(reason);
    await waitFor(() => p.stats.connected === 0, { timeoutMs: 5000 });
    // The socket's close came after the abort: it settled nothing a second time.
    expect(a.settled).toBe(1);
  });

  it('throwing from onRequestStart drops the request before a byte is written and keeps the connection', async () => {
    const s = await scripted((sock) => sock.write(OK));
    servers.push(s);
    const p = pool(s.port);
    await request(p);
    const dropped = await request(
      p,
      {},
      {
        onRequestStart() {
          throw Object.assign(new Error('gone'), { code: 'EDGEGATE_CLIENT_GONE' });
        },
      },
    );
    expect(dropped.error?.code).toBe('EDGEGATE_CLIENT_GONE');
    expect(s.heads.length).toBe(1);
    expect((await request(p)).body).toBe('ok');
    expect(s.sockets.length).toBe(1);
  });

  it('pause() stops reading (the body timeout too) until resume()', async () => {
    const big = 'x'.repeat(4 * 1024 * 1024);
    const s = await scripted((sock) =>
      sock.write(`HTTP/1.1 200 OK\r\ncontent-length: ${big.length}\r\n\r\n${big}`),
    );
    servers.push(s);
    const p = pool(s.port);
    let controller: Dispatcher.DispatchController | undefined;
    let chunksWhilePaused = 0;
    let paused = false;
    const pending = request(
      p,
      { bodyTimeout: 100 },
      {
        onResponseData(c) {
          if (paused) chunksWhilePaused++;
          if (controller === undefined) {
            controller = c;
            c.pause();
            paused = true;
          }
        },
      },
    );
    await waitFor(() => controller !== undefined, { timeoutMs: 5000 });
    const before = chunksWhilePaused;
    // Longer than the body timeout: a paused response is the client's doing, not the upstream's.
    await new Promise((r) => setTimeout(r, 300));
    expect(chunksWhilePaused).toBe(before);
    paused = false;
    controller!.resume();
    const a = await pending;
    expect(a.error).toBeUndefined();
    expect(a.body.length).toBe(big.length);
  });

  it('close() lets the request in flight finish, refuses new ones, then closes every socket', async () => {
    let answer: (() => void) | undefined;
    const s = await scripted((sock) => {
      answer = () => sock.write(OK);
    });
    servers.push(s);
    const p = pool(s.port);
    const inFlight = request(p);
    await waitFor(() => answer !== undefined, { timeoutMs: 5000 });
    const closed = p.close();
    expect((await request(p)).error?.code).toBe('EDGEGATE_POOL_CLOSED');
    answer!();
    expect((await inFlight).body).toBe('ok');
    await closed;
    expect(p.stats.connected).toBe(0);
  });

  it('destroy() fails what is in flight and waiting', async () => {
    const s = await scripted(() => {});
    servers.push(s);
    const p = pool(s.port, { connections: 1 });
    const a = request(p);
    const b = request(p);
    await waitFor(() => s.heads.length === 1, { timeoutMs: 5000 });
    await p.destroy();
    expect((await a).error?.code).toBe('EDGEGATE_POOL_DESTROYED');
    expect((await b).error?.code).toBe('EDGEGATE_POOL_DESTROYED');
  });
});
