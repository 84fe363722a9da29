/**
 * The classification of upstream failures (undici's error classes and codes, llhttp's parse errors, Node's HTTP/2
 * errors), and, with an in-process gateway whose pools are made to refuse some requests the way undici does, that
 * a request refused before anything was sent never counts against the upstream (no outlier failure, no retry, no
 * try). Plus the per-connection budget's queue and the request-buffering decision.
 */
import { errors } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  ConnectionBudget,
  GRANTED,
  QUEUED,
  REFUSED,
} from '../../../../src/dataplane/proxy/connection-budget.ts';
import { edgeSettingsFrom } from '../../../../src/dataplane/proxy/edge-flags.ts';
import {
  classify,
  FAIL_CLIENT,
  FAIL_CONNECT,
  FAIL_INTERNAL,
  FAIL_PROTOCOL,
  FAIL_RESET,
  FAIL_TIMEOUT,
  FAIL_UNSENDABLE,
} from '../../../../src/dataplane/proxy/exchange.ts';
import { buffersBody } from '../../../../src/dataplane/proxy/request-body.ts';
import {
  type Gateway,
  get,
  startEcho,
  startGateway,
  tableOf,
  type Upstream,
} from '../../../support/inproc-gateway.ts';

const coded = (code: string, message = code) => Object.assign(new Error(message), { code });

describe('classify', () => {
  it('malformed upstream responses are protocol errors, whatever undici names them', () => {
    const protocol = [
      // llhttp's errors reach us as HTTPParserError with `code` undefined (undici 8 maps the number wrongly).
      new errors.HTTPParserError('Response does not match the HTTP/1.1 protocol (Invalid header value char)'),
      coded('HPE_INVALID_CHUNK_SIZE', 'Invalid character in chunk size'),
      new errors.HeadersOverflowError(),
      new errors.ResponseContentLengthMismatchError(),
      new errors.ResponseExceededMaxSizeError(),
      new errors.SocketError('bad response'),
      new errors.SocketError('bad upgrade'),
      coded('ERR_HTTP2_STREAM_ERROR', 'Stream closed with error code NGHTTP2_PROTOCOL_ERROR'),
      coded('ERR_HTTP2_STREAM_ERROR', 'Stream closed with error code NGHTTP2_COMPRESSION_ERROR'),
    ];
    for (const e of protocol) expect([e.message, classify(e, false)]).toEqual([e.message, FAIL_PROTOCOL]);
  });

  it('connections closed or reset by the upstream are resets, refused connections connect failures', () => {
    expect(classify(new errors.SocketError('other side closed'), false)).toBe(FAIL_RESET);
    expect(classify(coded('ECONNRESET'), false)).toBe(FAIL_RESET);
    expect(
      classify(
        coded('ERR_HTTP2_STREAM_ERROR', 'Stream closed with error code NGHTTP2_REFUSED_STREAM'),
        false,
      ),
    ).toBe(FAIL_RESET);
    expect(classify(coded('ECONNREFUSED'), false)).toBe(FAIL_CONNECT);
    expect(classify(new errors.ConnectTimeoutError(), false)).toBe(FAIL_CONNECT);
    expect(classify(new errors.HeadersTimeoutError(), false)).toBe(FAIL_TIMEOUT);
    expect(classify(new errors.BodyTimeoutError(), false)).toBe(FAIL_TIMEOUT);
  });

  it('requests refused before anything was sent are the client’s (400) or the gateway’s (500), never the upstream’s', () => {
    expect(classify(new errors.InvalidArgumentError('invalid x-a header'), true)).toBe(FAIL_UNSENDABLE);
    expect(classify(new errors.NotSupportedError('expect header not supported'), true)).toBe(FAIL_UNSENDABLE);
    expect(classify(coded('ERR_HTTP2_INVALID_CONNECTION_HEADERS'), false)).toBe(FAIL_UNSENDABLE);
    expect(classify(coded('ERR_INVALID_CHAR'), false)).toBe(FAIL_UNSENDABLE);
    // undici asserting on a Host like `[x` while the request is handed over.
    expect(classify(coded('ERR_ASSERTION', 'The expression evaluated to a falsy value'), true)).toBe(
      FAIL_UNSENDABLE,
    );
    expect(classify(new TypeError('something else'), true)).toBe(FAIL_INTERNAL);
    // The same unknown error once the request is on its way is the upstream's.
    expect(classify(new TypeError('something else'), false)).toBe(FAIL_RESET);
    expect(classify(coded('EDGEGATE_SEND_TIMEOUT'), false)).toBe(FAIL_CLIENT);
  });
});

describe('requests refused before they were sent, with pools that refuse them as undici does', () => {
  let e1: Upstream;
  let e2: Upstream;
  let gw: Gateway;

  beforeAll(async () => {
    e1 = await startEcho('e1');
    e2 = await startEcho('e2');
    gw = await startGateway(
      tableOf(
        {
          rules: [
            { backends: [{ consul: { service: 'svc' } }], retry: { attempts: 2, retryOn: ['reset', '5xx'] } },
          ],
        },
        { svc: [e1.port, e2.port] },
      ),
      {
        outlier: {
          consecutiveFailures: 2,
          baseEjectionMs: 60_000,
          maxEjectionMs: 60_000,
          maxEjectionPercent: 50,
        },
      },
    );
    // Requests carrying `x-refuse` are refused the way undici refuses a header value it will not write: through
    // onResponseError, synchronously, before anything is sent; `x-refuse: internal` with an unknown error.
    for (const [, up] of gw.proxy.pools.entries()) {
      const pool = up.pool;
      const dispatch = pool.dispatch.bind(pool);
      pool.dispatch = (opts, handler) => {
        const h = opts.headers as string[];
        const i = h.indexOf('x-refuse');
        if (i < 0) return dispatch(opts, handler);
        if (h[i + 1] === 'throw') throw new TypeError('dispatch threw');
        const err =
          h[i + 1] === 'internal'
            ? new TypeError('unexpected')
            : new errors.InvalidArgumentError('invalid x-refuse header');
        handler.onResponseError?.(null as never, err);
        return false;
      };
    }
  });

  afterAll(async () => {
    await gw.close();
    await e1.close();
    await e2.close();
  });

  it('six of them are 400s, never retried nor tried, and eject nothing; both endpoints keep serving', async () => {
    const before = { ...gw.proxy.counters };
    for (let i = 0; i < 6; i++) {
      const r = await get(gw.port, `/refused-${i}`, { 'x-refuse': 'yes' });
      expect(r.status).toBe(400);
      expect(JSON.parse(r.body).error).toBe('EDGEGATE_BAD_REQUEST');
    }
    const c = gw.proxy.counters;
    expect(c.unsendable - before.unsendable).toBe(6);
    expect(c.tries - before.tries).toBe(0);
    expect(c.retries - before.retries).toBe(0);
    expect(c.upstreamErrors - before.upstreamErrors).toBe(0);
    expect(gw.proxy.outlier.stats().ejections).toBe(0);
    for (const [, up] of gw.proxy.pools.entries()) {
      expect(up.consecutiveFailures).toBe(0);
      expect(up.inFlight).toBe(0);
    }
    const names = new Set<string>();
    for (let i = 0; i < 4; i++) names.add(String((await get(gw.port, '/ok')).headers['x-echo-name']));
    expect([...names].sort()).toEqual(['e1', 'e2']);
  });

  it('an unknown error raised while handing the request over (reported or thrown) is the gateway’s own: 500', async () => {
    for (const how of ['internal', 'throw']) {
      const r = await get(gw.port, `/internal-${how}`, { 'x-refuse': how });
      expect([how, r.status, JSON.parse(r.body).error]).toEqual([how, 500, 'EDGEGATE_INTERNAL']);
    }
    expect(gw.proxy.outlier.stats().ejections).toBe(0);
    for (const [, up] of gw.proxy.pools.entries()) expect(up.inFlight).toBe(0);
  });
});

describe('ConnectionBudget', () => {
  const waiter = () => {
    const w = { finished: false, granted: 0, slotGranted: () => w.granted++ };
    return w;
  };

  it('grants up to the cap, queues up to four times the cap in order, refuses beyond; a release goes to the oldest waiter still there', () => {
    const b = new ConnectionBudget();
    expect([b.acquire(waiter(), 2), b.acquire(waiter(), 2)]).toEqual([GRANTED, GRANTED]);
    const queued = Array.from({ length: 8 }, waiter);
    expect(queued.map((w) => b.acquire(w, 2))).toEqual(Array(8).fill(QUEUED));
    expect(b.acquire(waiter(), 2)).toBe(REFUSED);
    queued[0]!.finished = true; // its client left while it waited: skipped
    b.release();
    expect(queued.map((w) => w.granted)).toEqual([0, 1, 0, 0, 0, 0, 0, 0]);
    expect([b.held, b.waiting]).toEqual([2, 6]);
    for (let i = 0; i < 10; i++) b.release();
    expect(queued.map((w) => w.granted)).toEqual([0, 1, 1, 1, 1, 1, 1, 1]);
    expect(b.waiting).toBe(0);
  });
});

describe('request buffering and its flag', () => {
  it('buffers a known length up to the limit and any unknown length (read up to the limit, then streamed)', () => {
    expect(buffersBody('1000', 65_536)).toBe(true);
    expect(buffersBody('65536', 65_536)).toBe(true);
    expect(buffersBody('65537', 65_536)).toBe(false);
    expect(buffersBody(undefined, 65_536)).toBe(true);
    expect(buffersBody('10', 0)).toBe(false);
  });

  it('--request-buffer-size takes bytes, k and m; anything else is a clear error naming the flag', () => {
    const parse = (v: string) => edgeSettingsFrom({ requestBufferSize: v }, () => 0).proxy.requestBufferBytes;
    expect([parse('65536'), parse('64k'), parse('1m'), parse('0')]).toEqual([65_536, 65_536, 1_048_576, 0]);
    expect(() => parse('64kb')).toThrow(/--request-buffer-size: expected a size/);
    expect(() => parse('1g')).toThrow(/--request-buffer-size/);
    expect(() => parse('65m')).toThrow(/up to 67108864/);
  });
});
