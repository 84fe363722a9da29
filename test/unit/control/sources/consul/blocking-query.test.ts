/**
 * Blocking-query edge cases against an in-process server that misbehaves on purpose: index going backwards,
 * index 0, no X-Consul-Index header, 500s, answers slower than the client deadline. Each case checks that the
 * request count stays bounded (no hot loop) and that the newest data is what the watch ends with (no stale state).
 */
import type { ServerResponse } from 'node:http';
import { afterEach, describe, expect, it } from 'vitest';
import {
  BlockingQuery,
  type BlockingQueryOptions,
  type WatchError,
} from '../../../../../src/control/sources/consul/blocking-query.ts';
import { ConsulHttp } from '../../../../../src/control/sources/consul/consul-http.ts';
import { consulSettingsFromEnv } from '../../../../../src/control/sources/consul/settings.ts';
import { waitFor } from '../../../../support/wait.ts';
import { type FakeServer, reply, startFakeServer } from './fake-server.ts';

let server: FakeServer | undefined;
let watch: BlockingQuery | undefined;
let http: ConsulHttp | undefined;

afterEach(async () => {
  await watch?.stop();
  await http?.close();
  await server?.close();
  watch = undefined;
  http = undefined;
  server = undefined;
});

interface Recorder {
  data: unknown[];
  errors: WatchError[];
}

function startWatch(url: string, opts: Partial<BlockingQueryOptions> = {}): Recorder {
  const rec: Recorder = { data: [], errors: [] };
  http = new ConsulHttp(consulSettingsFromEnv({ CONSUL_HTTP_ADDR: url }));
  watch = new BlockingQuery({
    http,
    path: '/v1/health/service/billing',
    query: { dc: 'dc2', stale: '' },
    waitMs: 2000,
    ratePerSecond: 20,
    rateBurst: 5,
    backoffBaseMs: 20,
    backoffMaxMs: 200,
    pollMs: 50,
    onData: (body) => rec.data.push(body),
    onError: (err) => rec.errors.push(err),
    ...opts,
  }).start();
  return rec;
}

/** Holds blocking requests open until released or closed by the client. */
function holder() {
  const held: ServerResponse[] = [];
  return {
    hold: (res: ServerResponse) => held.push(res),
    release: (fn: (res: ServerResponse) => void) => {
      for (const r of held.splice(0)) if (!r.writableEnded) fn(r);
    },
    get count() {
      return held.length;
    },
  };
}

/** A hot loop makes thousands of requests a second; these bounds only allow what the pacing permits. */
function maxRequests(elapsedMs: number, burst: number, perSecond: number): number {
  return burst + Math.ceil((elapsedMs / 1000) * perSecond) + 2;
}

describe('BlockingQuery against a misbehaving Consul', () => {
  it('resets an index that goes backwards to 0 and applies the newer data', async () => {
    const h = holder();
    const answers: [number, unknown][] = [
      [100, ['a']],
      [50, ['b']],
      [51, ['c']],
    ];
    server = await startFakeServer((_req, res) => {
      const next = answers.shift();
      if (next) reply(res, 200, next[1], next[0]);
      else h.hold(res);
    });
    const rec = startWatch(server.url);
    await waitFor(() => server!.requests.length >= 4 && h.count >= 1, { timeoutMs: 5000 });
    expect(rec.data).toEqual([['a'], ['b'], ['c']]);
    const q = server.requests.map((r) => r.query.get('index'));
    // first: no index; second blocks on 100; after going back to 50: start over without index; then block on 51
    expect(q).toEqual([null, '100', null, '51']);
    expect(server.requests[3]!.query.get('wait')).toBe('2000ms');
    expect(server.requests[0]!.query.get('dc')).toBe('dc2');
    expect(server.requests[0]!.query.has('stale')).toBe(true);
    expect(watch!.index).toBe(51);
    expect(rec.errors).toEqual([]);
  });

  it('reports the duration of each answered blocking request, not of the first non-blocking read', async () => {
    const h = holder();
    let n = 0;
    server = await startFakeServer((_req, res) => {
      n++;
      // First read: at once (no index). Then one blocking request held ~150 ms, then one answering 500 after ~50 ms.
      if (n === 1) reply(res, 200, ['a'], 10);
      else if (n === 2) setTimeout(() => reply(res, 200, ['b'], 11), 150);
      else if (n === 3) setTimeout(() => reply(res, 500, 'boom'), 50);
      else h.hold(res);
    });
    const durations: number[] = [];
    const rec = startWatch(server.url, { onBlockingQuery: (s) => durations.push(s) });
    // After the 500 the index resets: request 4 is a plain read (held), so exactly two blocking requests answered.
    await waitFor(() => h.count >= 1, { timeoutMs: 5000 });
    expect(rec.data).toEqual([['a'], ['b']]);
    expect(server.requests.map((r) => r.query.get('index'))).toEqual([null, '10', '11', null]);
    expect(durations).toHaveLength(2);
    expect(durations[0]).toBeGreaterThanOrEqual(0.14);
    expect(durations[1]).toBeGreaterThanOrEqual(0.04);
    expect(durations[1]).toBeLessThan(durations[0]!);
  });

  it('never sends index 0 as a blocking index and stays paced when the server keeps answering 0', async () => {
    let body: unknown = ['v1'];
    server = await startFakeServer((_req, res) => reply(res, 200, body, 0));
    const started = performance.now();
    const rec = startWatch(server.url, { ratePerSecond: 20, rateBurst: 5 });
    await waitFor(() => server!.requests.length >= 20, { timeoutMs: 10_000 });
    const elapsed = performance.now() - started;
    const count = server.requests.length;
    expect(count).toBeLessThanOrEqual(maxRequests(elapsed, 5, 20));
    for (const r of server.requests) expect(r.query.get('index')).not.toBe('0');
    // No stale state: a change is still picked up.
    body = ['v2'];
    await waitFor(() => JSON.stringify(rec.data.at(-1)) === '["v2"]', { timeoutMs: 5000 });
    console.log(`index 0: ${count} requests in ${Math.round(elapsed)} ms (rate 20/s, burst 5)`);
  });

  it('polls an endpoint that answers without X-Consul-Index at pollMs', async () => {
    let body: unknown = { n: 1 };
    server = await startFakeServer((_req, res) => reply(res, 200, body));
    const started = performance.now();
    const rec = startWatch(server.url, { pollMs: 50, ratePerSecond: 1000, rateBurst: 1000 });
    await waitFor(() => server!.requests.length >= 8, { timeoutMs: 10_000 });
    const elapsed = performance.now() - started;
    expect(server.requests.length).toBeLessThanOrEqual(Math.ceil(elapsed / 50) + 2);
    for (const r of server.requests) expect(r.query.has('index')).toBe(false);
    body = { n: 2 };
    await waitFor(() => (rec.data.at(-1) as { n: number }).n === 2, { timeoutMs: 5000 });
  });

  it('backs off exponentially (with jitter) on 500s, then recovers with the current data', async () => {
    let healthy = false;
    server = await startFakeServer((_req, res) => {
      if (!healthy) return reply(res, 500, 'rpc error: No cluster leader');
      reply(res, 200, ['fresh'], 7);
    });
    const rec = startWatch(server.url, { backoffBaseMs: 20, backoffMaxMs: 160, random: () => 0 });
    await waitFor(() => rec.errors.length >= 6, { timeoutMs: 10_000 });
    const at = server.requests.map((r) => r.at);
    // random() = 0 → the delay is exactly half the cap: 10, 20, 40, 80, 80 ms (cap 160).
    const expected = [10, 20, 40, 80, 80];
    for (let i = 0; i < expected.length; i++)
      expect(at[i + 1]! - at[i]!).toBeGreaterThanOrEqual(expected[i]! - 2);
    expect(rec.errors[0]).toMatchObject({ kind: 'http', status: 500 });
    expect(rec.errors[0]!.message).toContain('No cluster leader');
    // every retry after an error is a non-blocking read
    expect(server.requests.every((r) => !r.query.has('index'))).toBe(true);
    expect(watch!.failures).toBeGreaterThanOrEqual(6);
    healthy = true;
    await waitFor(() => rec.data.length === 1, { timeoutMs: 5000 });
    expect(rec.data).toEqual([['fresh']]);
    expect(watch!.failures).toBe(0);
    expect(watch!.index).toBe(7);
  });

  it('gives up on an answer slower than wait + wait/16 + slack, backs off, and recovers', async () => {
    let slow = true;
    const h = holder();
    server = await startFakeServer((req, res) => {
      if (!req.query.has('index')) return reply(res, 200, ['first'], 5);
      if (slow) return h.hold(res);
      reply(res, 200, ['second'], 6);
    });
    const started = performance.now();
    const rec = startWatch(server.url, { waitMs: 1000, timeoutSlackMs: 100 });
    await waitFor(() => rec.errors.length >= 2, {
      timeoutMs: 10_000,
      diagnostics: () =>
        JSON.stringify({ e: rec.errors, d: rec.data, r: server!.requests.map((r) => r.query.toString()) }),
    });
    const elapsed = performance.now() - started;
    expect(rec.errors[0]).toMatchObject({ kind: 'timeout' });
    expect(rec.errors[0]!.message).toContain('1163 ms');
    // each blocking request lasts its whole deadline, and after each timeout one non-blocking read starts over:
    // no more than two requests per 1163 ms (+ the first, + one in flight)
    expect(server.requests.length).toBeLessThanOrEqual(2 * Math.ceil(elapsed / 1163) + 2);
    expect(
      server.requests.filter((r) => r.query.has('index')).every((r) => r.query.get('index') === '5'),
    ).toBe(true);
    expect(new Set(rec.data.map((d) => JSON.stringify(d)))).toEqual(new Set(['["first"]']));
    slow = false;
    h.release((r) => r.destroy());
    await waitFor(() => JSON.stringify(rec.data.at(-1)) === '["second"]', { timeoutMs: 10_000 });
  });

  it('after a dropped connection, a restarted server with a lower index does not hang the watch', async () => {
    const h = holder();
    let phase: 'old' | 'restarted' = 'old';
    server = await startFakeServer((req, res) => {
      if (req.query.has('index')) return h.hold(res); // blocks (the restarted server never reaches index 120)
      if (phase === 'old') reply(res, 200, ['before'], 120);
      else reply(res, 200, ['after'], 15);
    });
    const rec = startWatch(server.url, { waitMs: 600_000 });
    await waitFor(() => h.count === 1, { timeoutMs: 5000 });
    phase = 'restarted';
    h.release((r) => r.socket?.destroy()); // the agent dies: "other side closed"
    await waitFor(() => JSON.stringify(rec.data.at(-1)) === '["after"]', {
      timeoutMs: 5000,
      message: 'the data of the restarted server',
    });
    expect(rec.errors[0]).toMatchObject({ kind: 'network' });
    await waitFor(() => h.count === 1, { timeoutMs: 5000 });
    expect(server.requests.at(-1)!.query.get('index')).toBe('15');
  });

  it('stop() aborts an in-flight blocking request at once', async () => {
    const h = holder();
    let closed = false;
    server = await startFakeServer((req, res, raw) => {
      if (!req.query.has('index')) return reply(res, 200, [], 3);
      raw.socket.once('close', () => {
        closed = true;
      });
      h.hold(res);
    });
    startWatch(server.url, { waitMs: 600_000 });
    await waitFor(() => h.count === 1, { timeoutMs: 5000 });
    const t = performance.now();
    await watch!.stop();
    await waitFor(() => closed, { timeoutMs: 2000, message: 'the held connection to close' });
    console.log(`stop() with a 10 min blocking query in flight took ${Math.round(performance.now() - t)} ms`);
    expect(watch!.stopped).toBe(true);
  });
});
