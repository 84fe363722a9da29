/**
 * Clients that never read hold no upstream connection for long: a response the client reads nothing of for the
 * send timeout is abandoned (its upstream connection released, counted in edgegate_responses_abandoned_total), and
 * one client connection has at most its cap of requests upstream at once (an HTTP/2 session with a zero receive
 * window and 20 streams, or an HTTP/1.1 connection that pipelines). Other clients keep being served throughout.
 */
import type { ClientHttp2Session } from 'node:http2';
import type { Socket } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEFAULT_LISTENER_SETTINGS } from '../../../src/dataplane/proxy/server.ts';
import { waitFor } from '../cluster/helpers.ts';
import {
  type CountingUpstream,
  client,
  countingUpstream,
  type EdgeGateway,
  HOST,
  h2Session,
  rawConnection,
  startEdgeGateway,
  writeBig,
} from './helpers.ts';

/** Larger than what the loopback socket buffers absorb, so a client that does not read stalls the response. */
const BIG = 16 * 1024 * 1024;
const CAP = 2;
const POOL = 8;
/** The plain listener's HTTP/1.1 server in this run (`run` reads the same variable). */
const HTTP1_SERVER = process.env.EDGEGATE_HTTP1_SERVER ?? DEFAULT_LISTENER_SETTINGS.http1Server;

let up: CountingUpstream;
let gw: EdgeGateway;

beforeAll(async () => {
  up = await countingUpstream((req, res) => {
    if (req.url?.includes('small')) res.end('ok');
    else writeBig(res, BIG);
  });
  gw = await startEdgeGateway({
    routes: [{ prefix: '/big', service: 'big', pool: { maxConnections: POOL, maxPendingRequests: 256 } }],
    services: { big: [up.port] },
    args: ['--send-timeout', '1s', '--max-upstream-requests-per-connection', String(CAP)],
  });
}, 60_000);

afterAll(async () => {
  await gw?.close();
  await up?.close();
});

describe.each(['http', 'https'] as const)('HTTP/1.1 clients that stop reading, over %s', (listener) => {
  it('responses nobody reads are abandoned after the send timeout, the upstream connections released, and another client is served', async () => {
    up.reset();
    const abandoned = await gw.counter('edgegate_responses_abandoned_total');
    const stalled: Socket[] = [];
    try {
      // As many non-reading downloads as the endpoint has pooled connections.
      for (let i = 0; i < POOL; i++) {
        const s = await rawConnection(listener, gw);
        s.pause();
        s.write(`GET /big/stalled-${i} HTTP/1.1\r\nHost: ${HOST}\r\n\r\n`);
        stalled.push(s);
      }
      await waitFor('every pooled connection to carry a stalled download', () => up.inFlight >= POOL, 10_000);
      // Behind them in the pool's queue: answered once the send timeout abandons them, not never.
      const c = client(listener, gw);
      const r = await c.request({ path: '/big/small' });
      c.close();
      expect(r.status).toBe(200);
      expect(r.body.toString()).toBe('ok');
      await waitFor(
        'the abandoned responses on /metrics',
        async () => (await gw.counter('edgegate_responses_abandoned_total')) >= abandoned + POOL,
        10_000,
      );
      await waitFor('the upstream to see its responses dropped', () => up.inFlight === 0, 10_000);
    } finally {
      for (const s of stalled) s.destroy();
    }
  });

  it(`an HTTP/1.1 client that pipelines requests and stops reading holds at most ${CAP} of them upstream, until the send timeout closes its connection`, async () => {
    up.reset();
    // node:http hands pipelined requests to the pipeline at once (the cap is what bounds them); the raw server
    // (plain listener) answers them one at a time, so only the first goes upstream.
    const held = listener === 'http' && HTTP1_SERVER === 'raw' ? 1 : CAP;
    const abandoned = await gw.counter('edgegate_responses_abandoned_total');
    const s = await rawConnection(listener, gw);
    s.pause();
    const closed = new Promise<void>((r) => s.once('close', () => r()));
    try {
      let pipelined = '';
      for (let i = 0; i < 6; i++) pipelined += `GET /big/pipelined-${i} HTTP/1.1\r\nHost: ${HOST}\r\n\r\n`;
      s.write(pipelined);
      await waitFor('the first pipelined requests upstream', () => up.requests >= held, 10_000);
      // An HTTP/1.1 response cannot be skipped: abandoning one closes the connection, and with it the requests
      // queued behind, which never reach the upstream.
      await waitFor(
        'the abandoned response on /metrics',
        async () => (await gw.counter('edgegate_responses_abandoned_total')) > abandoned,
        10_000,
      );
      await waitFor('the upstream to see its responses dropped', () => up.inFlight === 0, 10_000);
      // The client, reading at last, finds its connection closed.
      s.resume();
      await closed;
      expect(up.maxInFlight).toBeLessThanOrEqual(CAP);
      expect(up.requests).toBe(held);
    } finally {
      s.destroy();
    }
  });
});

describe('HTTP/2 clients that never read', () => {
  it(`sessions with a zero receive window kept alive by PINGs hold at most ${CAP} upstream requests each, other clients are served, and their responses are abandoned`, async () => {
    up.reset();
    const abandoned = await gw.counter('edgegate_responses_abandoned_total');
    const queued = await gw.counter('edgegate_connection_cap_queued_total');
    const hostages: ClientHttp2Session[] = [];
    const pingers: NodeJS.Timeout[] = [];
    try {
      for (let n = 0; n < 3; n++) {
        const session = await h2Session(gw, { initialWindowSize: 0 });
        for (let i = 0; i < 20; i++) {
          const st = session.request({ ':path': `/big/hostage-${n}-${i}`, ':authority': HOST });
          st.on('error', () => {});
        }
        pingers.push(setInterval(() => !session.destroyed && session.ping(() => {}), 200));
        hostages.push(session);
      }
      await waitFor('the hostage sessions to reach their cap upstream', () => up.inFlight >= 3 * CAP, 10_000);
      // Another client, served at once: the hostages hold 6 of the 8 pooled connections, not all of them.
      const c = client('h2', gw);
      const statuses = await Promise.all(
        Array.from({ length: 5 }, (_, i) => c.request({ path: `/big/small-${i}` }).then((r) => r.status)),
      );
      c.close();
      expect(statuses).toEqual(Array(5).fill(200));
      // Their responses are abandoned at the send timeout, while the sessions themselves stay open.
      await waitFor(
        'the abandoned responses on /metrics',
        async () => (await gw.counter('edgegate_responses_abandoned_total')) >= abandoned + 3 * CAP,
        15_000,
      );
      expect(hostages.every((s) => !s.destroyed && !s.closed)).toBe(true);
      expect(await gw.counter('edgegate_connection_cap_queued_total')).toBeGreaterThan(queued);
      expect(up.maxInFlight).toBeLessThanOrEqual(3 * CAP + 5);
      expect(up.byMethod.GET).toBeGreaterThan(3 * CAP);
    } finally {
      for (const t of pingers) clearInterval(t);
      for (const s of hostages) s.destroy();
    }
  });
});
