/**
 * Slow clients (slowloris headers, slow body) are cut at the configured listener timeouts while normal traffic on
 * other connections keeps a bounded p99. Own bounded clients over node:net; loopback only.
 */
import { connect, type Socket } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Gateway, startEcho, startGateway, tableOf, type Upstream } from '../support/inproc-gateway.ts';
import { percentile, runLoad } from '../support/load.ts';

const HEADERS_TIMEOUT = 1000;
const REQUEST_TIMEOUT = 2000;

let echo: Upstream;
let gw: Gateway;

beforeAll(async () => {
  echo = await startEcho('echo');
  gw = await startGateway(
    tableOf({ rules: [{ backends: [{ consul: { service: 'echo' } }] }] }, { echo: [echo.port] }),
    {},
    {
      headersTimeoutMs: HEADERS_TIMEOUT,
      requestTimeoutMs: REQUEST_TIMEOUT,
      connectionsCheckingIntervalMs: 100,
    },
  );
});

afterAll(async () => {
  await gw.close();
  await echo.close();
});

interface SlowResult {
  closedAfterMs: number;
  response: string;
  bytesSent: number;
}

/** Opens a connection, sends `head`, then one `drip` every `everyMs` until the server closes (bounded). */
function trickle(head: string, drip: string, everyMs: number, maxMs = 10_000): Promise<SlowResult> {
  return new Promise((resolve) => {
    const t0 = performance.now();
    const socket: Socket = connect(gw.port, '127.0.0.1');
    let response = '';
    let bytesSent = 0;
    let timer: NodeJS.Timeout | undefined;
    const send = (s: string) => {
      if (!socket.writable) return;
      bytesSent += s.length;
      socket.write(s);
    };
    socket.on('connect', () => {
      send(head);
      timer = setInterval(() => {
        if (performance.now() - t0 > maxMs) socket.destroy();
        else send(drip);
      }, everyMs);
    });
    socket.on('data', (c: Buffer) => {
      response += c.toString('latin1');
    });
    socket.on('error', () => {});
    socket.on('close', () => {
      clearInterval(timer);
      resolve({ closedAfterMs: performance.now() - t0, response, bytesSent });
    });
  });
}

describe('slow clients', () => {
  it('slowloris (headers trickled) and slow bodies are cut on time while normal traffic keeps a bounded p99', async () => {
    const slowloris = Array.from({ length: 20 }, (_, i) =>
      trickle(`GET /slow-${i} HTTP/1.1\r\nHost: test.local\r\n`, 'X-Drip: 1\r\n', 100),
    );
    const slowBodies = Array.from({ length: 10 }, (_, i) =>
      trickle(
        `POST /upload-${i} HTTP/1.1\r\nHost: test.local\r\nContent-Length: 100000\r\n\r\n`,
        'x'.repeat(10),
        100,
      ),
    );
    let slowDone = false;
    const slow = Promise.all([Promise.all(slowloris), Promise.all(slowBodies)]).then((r) => {
      slowDone = true;
      return r;
    });
    // Normal traffic for as long as the slow clients hang on (bounded by count).
    const normal = await runLoad(gw.port, {
      total: 20_000,
      concurrency: 4,
      path: '/normal',
      stop: () => slowDone,
    });
    const [loris, bodies] = await slow;

    const p50 = percentile(normal.latenciesMs, 50);
    const p99 = percentile(normal.latenciesMs, 99);
    const lorisMax = Math.max(...loris.map((r) => r.closedAfterMs));
    const bodyMax = Math.max(...bodies.map((r) => r.closedAfterMs));
    console.log(
      `slow clients: normal traffic ${normal.statuses.length} requests p50 ${p50.toFixed(1)} ms p99 ${p99.toFixed(1)} ms; 20 slowloris cut after ≤ ${lorisMax.toFixed(0)} ms (headersTimeout ${HEADERS_TIMEOUT}); 10 slow bodies cut after ≤ ${bodyMax.toFixed(0)} ms (requestTimeout ${REQUEST_TIMEOUT})`,
    );

    expect(normal.errors).toEqual([]);
    expect(normal.statuses.every((s) => s === 200)).toBe(true);
    expect(normal.statuses.length).toBeGreaterThan(100);
    expect(p99).toBeLessThan(1000);
    for (const r of loris) {
      expect(r.closedAfterMs).toBeGreaterThanOrEqual(HEADERS_TIMEOUT - 50);
      expect(r.closedAfterMs).toBeLessThan(HEADERS_TIMEOUT + 1500);
      expect(r.response).toMatch(/^HTTP\/1\.1 408 /);
    }
    for (const r of bodies) {
      expect(r.closedAfterMs).toBeGreaterThanOrEqual(REQUEST_TIMEOUT - 50);
      expect(r.closedAfterMs).toBeLessThan(REQUEST_TIMEOUT + 1500);
      expect(r.bytesSent).toBeLessThan(100_000);
    }
  });
});
