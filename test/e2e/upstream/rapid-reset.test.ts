/**
 * Rapid reset below the per-connection limit (CVE-2023-44487 spread over many connections): a client that opens and
 * cancels streams at 100/s on each of twelve connections stays under the 200/s per-connection budget, but its
 * address goes over its own (400/s), and every one of those connections is cut with a single
 * GOAWAY(ENHANCE_YOUR_CALM). Meanwhile no cancelled request costs an upstream TCP connection: a stream cancelled
 * before its request was written never reaches the pool, and one cancelled while in flight is drained so its
 * connection is reused. The same holds for HTTP/1.1 clients that hang up right after their request.
 */
import { type ClientHttp2Session, constants as h2 } from 'node:http2';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sumOf } from '../../support/prom-text.ts';
import { waitFor as waitForCondition } from '../../support/wait.ts';
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
} from './helpers.ts';

const POOL = 8;

let up: CountingUpstream;
let gw: EdgeGateway;

beforeAll(async () => {
  // Answers after `?delay=` ms (default 20), so a cancel can meet a request in flight.
  up = await countingUpstream((req, res) => {
    const delay = Number(/delay=(\d+)/.exec(req.url ?? '')?.[1] ?? 20);
    setTimeout(() => res.end('ok'), delay);
  });
  gw = await startEdgeGateway({
    routes: [{ prefix: '/rr', service: 'rr', pool: { maxConnections: POOL, maxPendingRequests: 1024 } }],
    services: { rr: [up.port] },
  });
}, 60_000);

afterAll(async () => {
  await gw?.close();
  await up?.close();
});

interface CancelTally {
  /** Requests on /rr whose client left before any answer (logged 499, counted as 4xx). */
  cancelled: number;
  /** Cancelled requests that cost no upstream connection: drained to their end, or never written. */
  settled: number;
  /** Cancelled in flight and aborted after all (not drained within 1 s / 64 KiB): their connection closed. */
  closed: number;
}

async function cancelTally(): Promise<CancelTally> {
  const m = await gw.metrics();
  return {
    cancelled: sumOf(m, 'edgegate_requests_total', { route: 'default/r0', code: '4xx' }),
    settled:
      sumOf(m, 'edgegate_upstream_cancel_drains_total') +
      sumOf(m, 'edgegate_requests_cancelled_before_upstream_total'),
    closed: sumOf(m, 'edgegate_upstream_cancel_closes_total'),
  };
}

/**
 * Waits until every request of this test cancelled at the gateway is accounted for, then checks that they cost the
 * upstream no TCP connection each: at most the pool's connections were opened, plus one for each cancel that could
 * not be drained in time (none on an idle machine; a few when the machine is so loaded that the upstream answers
 * more than a second late). The gateway's own count of cancels is the reference: a client that cancels before its
 * HEADERS left may never send them, and a slow gateway may finish a response before it reads the cancel.
 */
async function expectCancelsCostNoConnection(before: CancelTally, min: number): Promise<void> {
  let last = before;
  const delta = () => ({
    cancelled: last.cancelled - before.cancelled,
    settled: last.settled - before.settled,
    closed: last.closed - before.closed,
  });
  await waitForCondition(
    async () => {
      last = await cancelTally();
      const d = delta();
      return d.cancelled >= min && d.settled + d.closed === d.cancelled;
    },
    {
      timeoutMs: 10_000,
      message: 'every cancelled request to be accounted for',
      diagnostics: () => JSON.stringify(delta()),
    },
  );
  await waitFor('the upstream to be done with them', () => up.inFlight === 0, 10_000);
  const d = delta();
  expect(up.connections).toBeLessThanOrEqual(POOL + d.closed);
  expect(d.settled).toBeGreaterThanOrEqual(d.cancelled / 2);
}

describe('HTTP/2 rapid reset', () => {
  it('streams cancelled while their request is in flight give their upstream connections back to the pool (drained, not closed)', async () => {
    up.reset();
    const before = await cancelTally();
    const session = await h2Session(gw);
    try {
      // 60 requests the upstream answers after 300 ms, each cancelled 30 ms after it was sent: 5 at a time.
      for (let round = 0; round < 12; round++) {
        await Promise.all(
          Array.from(
            { length: 5 },
            (_, i) =>
              new Promise<void>((resolve) => {
                const st = session.request({
                  ':path': `/rr/inflight-${round}-${i}?delay=300`,
                  ':authority': HOST,
                });
                st.on('error', () => {});
                st.on('close', () => resolve());
                setTimeout(() => st.close(h2.NGHTTP2_CANCEL), 30);
              }),
          ),
        );
      }
      await expectCancelsCostNoConnection(before, 20);
      expect(up.requests).toBeGreaterThan(0);
      expect(session.destroyed).toBe(false);
    } finally {
      session.destroy();
    }
  });

  it('many connections of one address, each below the per-connection limit, are cut by the address budget with GOAWAY(ENHANCE_YOUR_CALM), and the upstream sees a bounded number of TCP connections', async () => {
    up.reset();
    const cutBefore = await gw.counter('edgegate_http2_floods_stopped_total', {
      reason: 'rapid_reset_address',
    });
    const perConnectionBefore = await gw.counter('edgegate_http2_floods_stopped_total', {
      reason: 'rapid_reset',
    });
    const attackers: {
      session: ClientHttp2Session;
      goaway: number[];
      sent: number;
      timer: NodeJS.Timeout;
    }[] = [];
    try {
      for (let n = 0; n < 12; n++) {
        const session = await h2Session(gw);
        const a = { session, goaway: [] as number[], sent: 0, timer: undefined as unknown as NodeJS.Timeout };
        session.on('goaway', (code: number) => a.goaway.push(code));
        // 10 streams opened and cancelled every 100 ms: 100/s, half the per-connection budget, 1,200/s for the
        // address (three times its budget, so a loaded machine that sends slower still goes over). Bounded: 10 s.
        a.timer = setInterval(() => {
          for (let i = 0; i < 10 && !session.destroyed && !session.closed && a.sent < 1000; i++, a.sent++) {
            try {
              const st = session.request({ ':path': `/rr/reset-${n}-${a.sent}`, ':authority': HOST });
              st.on('error', () => {});
              st.close(h2.NGHTTP2_CANCEL);
            } catch {
              break;
            }
          }
        }, 100);
        attackers.push(a);
      }
      await waitFor(
        'every attacking connection to be cut',
        () => attackers.every((a) => a.session.destroyed || a.session.closed),
        15_000,
      );
      for (const a of attackers) {
        // One GOAWAY, ENHANCE_YOUR_CALM (11): not followed by a NO_ERROR one.
        expect(a.goaway).toEqual([h2.NGHTTP2_ENHANCE_YOUR_CALM]);
        expect(a.sent).toBeLessThan(1000);
      }
      // The address budget did the cutting (a connection whose resets the gateway, slowed down, reads in a burst
      // may meet its own budget first: it is cut all the same).
      const byAddress =
        (await gw.counter('edgegate_http2_floods_stopped_total', { reason: 'rapid_reset_address' })) -
        cutBefore;
      const byConnection =
        (await gw.counter('edgegate_http2_floods_stopped_total', { reason: 'rapid_reset' })) -
        perConnectionBefore;
      expect(byAddress).toBeGreaterThan(attackers.length / 2);
      expect(byAddress + byConnection).toBe(attackers.length);
      // Cancelled streams cost no upstream TCP connection each: at most the pool's connections were ever opened.
      expect(up.connections).toBeLessThanOrEqual(POOL);
      const c = client('h2', gw);
      expect((await c.request({ path: '/rr/after' })).status).toBe(200);
      c.close();
    } finally {
      for (const a of attackers) {
        clearInterval(a.timer);
        a.session.destroy();
      }
    }
  });
});

describe.each(['http', 'https'] as const)(
  'HTTP/1.1 clients that hang up right after the request, over %s',
  (listener) => {
    it('cost no upstream TCP connection each: cancelled requests are drained and their connections reused', async () => {
      up.reset();
      const before = await cancelTally();
      // 60 connections, 5 at a time: request, wait 30 ms, close (the upstream answers after 300 ms).
      for (let round = 0; round < 12; round++) {
        await Promise.all(
          Array.from({ length: 5 }, async (_, i) => {
            const s = await rawConnection(listener, gw);
            s.write(`GET /rr/hangup-${round}-${i}?delay=300 HTTP/1.1\r\nHost: ${HOST}\r\n\r\n`);
            await new Promise((r) => setTimeout(r, 30));
            s.destroy();
          }),
        );
      }
      // Each cancelled request was drained (its connection reused) or never written (it still waited for a
      // connection): none closed a connection.
      await expectCancelsCostNoConnection(before, 20);
      expect(up.requests).toBeGreaterThan(0);
    });
  },
);
