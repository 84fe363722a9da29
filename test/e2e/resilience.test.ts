/**
 * Retries, retry budget, outlier ejection, pending cap and timeouts against real upstreams on loopback.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { afterEach, describe, expect, it } from 'vitest';
import type { Upstream as GatewayUpstream } from '../../src/dataplane/proxy/upstream-pools.ts';
import {
  type Gateway,
  get,
  listen,
  startEcho,
  startGateway,
  startUpstream,
  tableOf,
  type Upstream,
} from '../support/inproc-gateway.ts';
import { runLoad } from '../support/load.ts';
import { waitFor } from '../support/wait.ts';

const cleanup: (() => Promise<void>)[] = [];
afterEach(async () => {
  while (cleanup.length > 0) await cleanup.pop()!();
});

async function upstreams(n: number, start = startEcho): Promise<Upstream[]> {
  const list: Upstream[] = [];
  for (let i = 0; i < n; i++) {
    const u = await start(`u${i}`);
    list.push(u);
    cleanup.push(() => u.close());
  }
  return list;
}

async function gateway(...args: Parameters<typeof startGateway>): Promise<Gateway> {
  const gw = await startGateway(...args);
  cleanup.push(() => gw.close());
  return gw;
}

function upstreamOf(gw: Gateway, port: number): GatewayUpstream | undefined {
  for (const [, up] of gw.proxy.pools.entries()) if (up.endpoint.port === port) return up;
  return undefined;
}

const rule = (extra: Record<string, unknown> = {}) => ({
  rules: [{ backends: [{ consul: { service: 'echo' } }], ...extra }],
});

describe('endpoint removal under load', () => {
  it('an endpoint removed from the table and then stopped causes zero client errors (retries on)', async () => {
    const ups = await upstreams(3);
    const ports = ups.map((u) => u.port);
    const gw = await gateway(tableOf(rule(), { echo: ports }, 1));
    const victim = ups[2]!;
    let removedAt = -1;
    let hitsAtStop = -1;
    const result = await runLoad(gw.port, {
      total: 1500,
      concurrency: 12,
      path: '/work',
      onResult: (done) => {
        if (done === 400 && removedAt < 0) {
          removedAt = done;
          gw.proxy.setTable(tableOf(rule(), { echo: ports.slice(0, 2) }, 2));
          // Stop it right away: requests already on their way there race the shutdown.
          victim.server.close();
          victim.server.closeIdleConnections();
          hitsAtStop = victim.hits;
        }
      },
    });
    const bad = result.statuses.filter((s) => s !== 200);
    console.log(
      `endpoint removal: ${result.statuses.length} requests, ${bad.length} non-200, ${result.errors.length} errors, victim hits ${victim.hits} (at stop ${hitsAtStop}), retries ${gw.proxy.counters.retries}`,
    );
    expect(result.errors).toEqual([]);
    expect(bad).toEqual([]);
    expect(removedAt).toBe(400);
    expect(victim.hits).toBeGreaterThan(50);
    // Nothing new reaches the removed endpoint once the table changed (a few were already on their way).
    expect(victim.hits - hitsAtStop).toBeLessThanOrEqual(12);
  });
});

describe('outlier detection', () => {
  const outlier = {
    consecutiveFailures: 3,
    baseEjectionMs: 400,
    maxEjectionMs: 2000,
    maxEjectionPercent: 50,
  };

  it('ejects a killed upstream after the configured failures and re-admits it after its interval', async () => {
    const ups = await upstreams(3);
    const ports = ups.map((u) => u.port);
    const gw = await gateway(tableOf(rule({ retry: { attempts: 0 } }), { echo: ports }), { outlier });
    // Warm up: every endpoint serves.
    for (let i = 0; i < 6; i++) expect((await get(gw.port, '/')).status).toBe(200);
    const killed = ups[2]!;
    await killed.close();

    const statuses: number[] = [];
    const up = upstreamOf(gw, killed.port)!;
    while (!up.ejected && statuses.length < 50) statuses.push((await get(gw.port, '/')).status);
    expect(up.ejected).toBe(true);
    // Exactly the configured number of failures reached the client (no retries on this rule).
    expect(statuses.filter((s) => s === 502)).toHaveLength(3);
    const ejectedAt = Date.now();

    // While ejected, the endpoint is skipped: no errors.
    for (let i = 0; i < 20; i++) expect((await get(gw.port, '/')).status).toBe(200);

    // Bring it back on the same port; it is used again once its ejection interval is over.
    killed.server.listen(killed.port, '127.0.0.1');
    const hitsBefore = killed.hits;
    await waitFor(() => !up.ejected, { timeoutMs: 3000, intervalMs: 10, message: 're-admission' });
    const ejectedFor = Date.now() - ejectedAt;
    for (let i = 0; i < 9; i++) expect((await get(gw.port, '/')).status).toBe(200);
    expect(killed.hits).toBeGreaterThan(hitsBefore);
    expect(ejectedFor).toBeGreaterThanOrEqual(outlier.baseEjectionMs - 50);
    expect(gw.proxy.outlier.stats().ejections).toBe(1);
    console.log(
      `ejected after 3 failures, re-admitted after ${ejectedFor} ms (base ${outlier.baseEjectionMs} ms)`,
    );
  });

  it('the ejection interval grows with repeated ejections', async () => {
    const ups = await upstreams(2);
    const gw = await gateway(tableOf(rule({ retry: { attempts: 0 } }), { echo: ups.map((u) => u.port) }), {
      outlier: { ...outlier, baseEjectionMs: 200 },
    });
    const killed = ups[1]!;
    await killed.close();
    if (!upstreamOf(gw, killed.port)) await get(gw.port, '/');
    const up = upstreamOf(gw, killed.port)!;
    for (let round = 1; round <= 2; round++) {
      await waitFor(
        async () => {
          await get(gw.port, '/');
          return up.ejected;
        },
        {
          intervalMs: 10,
          message: `ejection ${round}`,
        },
      );
      expect(up.ejections).toBe(round);
      const t0 = Date.now();
      await waitFor(() => !up.ejected, { timeoutMs: 3000, intervalMs: 10, message: `re-admission ${round}` });
      const took = Date.now() - t0;
      console.log(`ejection ${round}: ${took} ms`);
      expect(took).toBeGreaterThanOrEqual(200 * round - 60);
    }
  });

  it('never ejects more than maxEjectionPercent of a cluster', async () => {
    const ups = await upstreams(4);
    const gw = await gateway(tableOf(rule({ retry: { attempts: 0 } }), { echo: ups.map((u) => u.port) }), {
      outlier,
    });
    for (let i = 0; i < 4; i++) await get(gw.port, '/');
    // Three of four die: at 50 %, only two may be ejected.
    for (const u of ups.slice(1)) await u.close();
    for (let i = 0; i < 60; i++) await get(gw.port, '/');
    const ejected = ups.filter((u) => upstreamOf(gw, u.port)?.ejected).length;
    expect(ejected).toBe(2);
    expect(gw.proxy.outlier.stats().refusedByCap).toBeGreaterThan(0);
    expect(upstreamOf(gw, ups[0]!.port)!.ejected).toBe(false);
  });

  it('ejection state is kept across table versions for endpoints that stay', async () => {
    const ups = await upstreams(3);
    const ports = ups.map((u) => u.port);
    const gw = await gateway(tableOf(rule({ retry: { attempts: 0 } }), { echo: ports }, 1), { outlier });
    await ups[2]!.close();
    const up = await waitFor(async () => {
      await get(gw.port, '/');
      const u = upstreamOf(gw, ports[2]!);
      return u?.ejected ? u : undefined;
    });
    gw.proxy.setTable(tableOf(rule({ retry: { attempts: 0 }, name: 'renamed' }), { echo: ports }, 2));
    expect(upstreamOf(gw, ports[2]!)).toBe(up);
    expect(up.ejected).toBe(true);
    for (let i = 0; i < 10; i++) expect((await get(gw.port, '/')).status).toBe(200);
  });
});

describe('retry budget', () => {
  it('with every endpoint failing, upstream attempts stay within the budget', async () => {
    let attempts = 0;
    let retriesNow = 0;
    let maxRetriesNow = 0;
    const failing = (_name: string) =>
      startUpstream(_name, (req: IncomingMessage, res: ServerResponse) => {
        attempts++;
        const retry = req.headers['x-edgegate-attempt'] !== undefined;
        if (retry) maxRetriesNow = Math.max(maxRetriesNow, ++retriesNow);
        setTimeout(() => {
          if (retry) retriesNow--;
          res.writeHead(503, { 'content-length': 0 });
          res.end();
        }, 15);
      });
    const ups = await upstreams(4, failing);
    const gw = await gateway(
      tableOf(rule({ retry: { attempts: 3, retryOn: ['503', 'connect-failure'] } }), {
        echo: ups.map((u) => u.port),
      }),
      {
        retryBudgetPercent: 20,
        retryBudgetMinConcurrent: 2,
        outlier: { ...outlier503Off },
      },
    );
    const total = 200;
    const concurrency = 20;
    const result = await runLoad(gw.port, { total, concurrency });
    expect(result.errors).toEqual([]);
    expect(result.statuses.every((s) => s === 503)).toBe(true);
    const budget = Math.max(2, Math.floor((concurrency * 20) / 100));
    const c = gw.proxy.counters;
    console.log(
      `retry budget: ${total} requests → ${attempts} upstream attempts (no budget: up to ${total * 4}); max concurrent retries seen upstream ${maxRetriesNow} (budget ${budget}); retries ${c.retries}, refused by budget ${c.retriesRefusedByBudget}`,
    );
    expect(maxRetriesNow).toBeLessThanOrEqual(budget);
    expect(attempts).toBe(total + c.retries);
    expect(attempts).toBeLessThan(total * 1.6);
    expect(c.retriesRefusedByBudget).toBeGreaterThan(0);
  });
});

describe('what is retried', () => {
  it('a reset is retried for GET, never for POST (the upstream may have acted on it); a 5xx POST is passed on', async () => {
    const seen: string[] = [];
    const flaky = (name: string) =>
      startUpstream(name, (req: IncomingMessage, res: ServerResponse) => {
        seen.push(`${name} ${req.method} ${req.headers['x-edgegate-attempt'] ?? '1'}`);
        req.resume();
        req.on('end', () => {
          // u0 drops the connection without an answer (a reset); u1 answers 503.
          if (name === 'u0') req.socket.destroy();
          else {
            res.writeHead(503, { 'content-length': 0 });
            res.end();
          }
        });
      });
    const ups = await upstreams(2, flaky);
    const gw = await gateway(
      tableOf(rule({ retry: { attempts: 3, retryOn: ['reset', 'connect-failure'] } }), {
        echo: ups.map((u) => u.port),
      }),
      { outlier: { ...outlier503Off } },
    );
    // GET: the reset on u0 is retried on u1 (503 is not in retryOn, so that answer is final).
    for (let i = 0; i < 4; i++) expect((await get(gw.port, '/g')).status).toBe(503);
    expect(seen.filter((l) => l.startsWith('u0 GET')).length).toBeGreaterThan(0);
    expect(seen.filter((l) => l.startsWith('u1 GET') && !l.endsWith(' 1')).length).toBeGreaterThan(0);
    // POST with a body: whichever endpoint it lands on, it is sent exactly once.
    seen.length = 0;
    const statuses: number[] = [];
    for (let i = 0; i < 6; i++) {
      const r = await fetch(`http://127.0.0.1:${gw.port}/p`, {
        method: 'POST',
        headers: { host: 'test.local' },
        body: 'order=1',
      });
      statuses.push(r.status);
      await r.arrayBuffer();
    }
    expect(seen.filter((l) => l.includes(' POST ')).length).toBe(6);
    expect(seen.some((l) => !l.endsWith(' 1'))).toBe(false);
    // u0's resets reach the client as 502, u1's 503 as is.
    expect(new Set(statuses)).toEqual(new Set([502, 503]));
  });
});

const outlier503Off = {
  consecutiveFailures: 0,
  baseEjectionMs: 1000,
  maxEjectionMs: 1000,
  maxEjectionPercent: 50,
};

describe('pending cap', () => {
  it('answers 503 EDGEGATE_UPSTREAM_OVERLOADED at once instead of queueing without bound', async () => {
    const held: ServerResponse[] = [];
    const slow = await startUpstream('slow', (_req, res) => {
      held.push(res);
    });
    cleanup.push(() => slow.close());
    const gw = await gateway(
      tableOf(
        {
          rules: [
            {
              backends: [{ consul: { service: 'echo' }, pool: { maxConnections: 2, maxPendingRequests: 2 } }],
              retry: { attempts: 0 },
            },
          ],
        },
        { echo: [slow.port] },
      ),
    );
    const pending = Array.from({ length: 4 }, () => get(gw.port, '/'));
    await waitFor(() => held.length === 2, { intervalMs: 10, message: 'two requests at the upstream' });
    const t0 = performance.now();
    const refused = await Promise.all(Array.from({ length: 3 }, () => get(gw.port, '/')));
    const took = performance.now() - t0;
    for (const r of refused) {
      expect(r.status).toBe(503);
      expect(JSON.parse(r.body).error).toBe('EDGEGATE_UPSTREAM_OVERLOADED');
    }
    expect(gw.proxy.counters.overloaded).toBe(3);
    console.log(`3 over-capacity requests refused in ${took.toFixed(1)} ms`);
    // Release everything: the admitted four complete.
    const release = () => {
      while (held.length > 0) held.pop()!.end('ok');
    };
    const interval = setInterval(release, 5);
    const done = await Promise.all(pending);
    clearInterval(interval);
    expect(done.map((r) => r.status)).toEqual([200, 200, 200, 200]);
  });
});

describe('timeouts', () => {
  it('a per-try timeout (backendRequest) retries a slow endpoint on another one', async () => {
    const slow = await startUpstream('slow', (_req, res) => {
      setTimeout(() => res.end('slow'), 2000).unref();
    });
    const fast = await startUpstream('fast', (_req, res) => res.end('fast'));
    cleanup.push(
      () => slow.close(),
      () => fast.close(),
    );
    const gw = await gateway(
      tableOf(rule({ timeouts: { backendRequest: '150ms' }, retry: { attempts: 1, retryOn: ['timeout'] } }), {
        echo: [slow.port, fast.port],
      }),
    );
    for (let i = 0; i < 4; i++) {
      const r = await get(gw.port, '/');
      expect(r.status).toBe(200);
      expect(r.body).toBe('fast');
    }
    expect(slow.hits).toBeGreaterThan(0);
    expect(gw.proxy.counters.tryTimeouts).toBeGreaterThan(0);
  });

  it('the whole-request timeout answers 504 EDGEGATE_UPSTREAM_TIMEOUT', async () => {
    const slow = await startUpstream('slow', (_req, res) => {
      setTimeout(() => res.end('slow'), 2000).unref();
    });
    cleanup.push(() => slow.close());
    const gw = await gateway(tableOf(rule({ timeouts: { request: '200ms' } }), { echo: [slow.port] }));
    const t0 = performance.now();
    const r = await get(gw.port, '/');
    expect(r.status).toBe(504);
    expect(JSON.parse(r.body).error).toBe('EDGEGATE_UPSTREAM_TIMEOUT');
    expect(performance.now() - t0).toBeLessThan(1500);
  });

  it('the response-headers timeout default can be overridden per route', async () => {
    const slow = await startUpstream('slow', (_req, res) => {
      setTimeout(() => res.end('slow'), 2000).unref();
    });
    cleanup.push(() => slow.close());
    const gw = await gateway(
      tableOf(rule({ timeouts: { responseHeaders: '100ms' }, retry: { attempts: 0 } }), {
        echo: [slow.port],
      }),
    );
    const r = await get(gw.port, '/');
    expect(r.status).toBe(504);
  });
});

describe('least request balancing', () => {
  it('steers requests away from an endpoint that is slow to answer', async () => {
    let slowHits = 0;
    let fastHits = 0;
    const slow = await startUpstream('slow', (_req, res) => {
      slowHits++;
      setTimeout(() => res.end('slow'), 100);
    });
    const fast = await startUpstream('fast', (_req, res) => {
      fastHits++;
      res.end('fast');
    });
    cleanup.push(
      () => slow.close(),
      () => fast.close(),
    );
    const gw = await gateway(
      tableOf(rule({ loadBalancer: { type: 'LeastRequest' } }), { echo: [slow.port, fast.port] }),
    );
    const result = await runLoad(gw.port, { total: 300, concurrency: 8 });
    expect(result.statuses.every((s) => s === 200)).toBe(true);
    console.log(`least request: slow ${slowHits}, fast ${fastHits}`);
    expect(fastHits).toBeGreaterThan(slowHits * 3);
  });
});

// Keep listen referenced for restarts in other suites.
void listen;

describe('consistent hash through the gateway', () => {
  it('removing one of 10 endpoints remaps at most ~15% of keys (only the removed endpoint’s)', async () => {
    const ups = await upstreams(10);
    const ports = ups.map((u) => u.port);
    const spec = rule({ loadBalancer: { type: 'ConsistentHash', consistentHash: { header: 'x-user' } } });
    const gw = await gateway(tableOf(spec, { echo: ports }, 1));
    const keys = 1000;
    const ownerOf = async (key: number) =>
      JSON.parse((await get(gw.port, '/', { 'x-user': `user-${key}` })).body).name as string;
    const before: string[] = [];
    for (let k = 0; k < keys; k++) before.push(await ownerOf(k));
    expect(new Set(before).size).toBe(10);
    const removed = ups[4]!.name;
    gw.proxy.setTable(tableOf(spec, { echo: ports.filter((_, i) => i !== 4) }, 2));
    let moved = 0;
    for (let k = 0; k < keys; k++) {
      const now = await ownerOf(k);
      if (now !== before[k]) {
        moved++;
        expect(before[k]).toBe(removed);
      }
    }
    console.log(
      `consistent hash: removing 1 of 10 endpoints moved ${moved}/${keys} keys (${((100 * moved) / keys).toFixed(1)} %)`,
    );
    expect(moved).toBeGreaterThan(0);
    expect(moved / keys).toBeLessThanOrEqual(0.15);
  });
});

describe('consistent hash on a cookie and on the client address', () => {
  it('a cookie keeps its endpoint, different cookies spread; a request without it is still served', async () => {
    const ups = await upstreams(5);
    const spec = rule({ loadBalancer: { type: 'ConsistentHash', consistentHash: { cookie: 'session' } } });
    const gw = await gateway(tableOf(spec, { echo: ups.map((u) => u.port) }, 1));
    const owner = async (cookie?: string) =>
      JSON.parse((await get(gw.port, '/', cookie ? { cookie } : {})).body).name as string;
    const owners = new Set<string>();
    for (let k = 0; k < 40; k++) {
      const first = await owner(`theme=dark; session=s-${k}; lang=en`);
      // The same session, wherever the cookie sits in the header, goes to the same endpoint.
      expect(await owner(`session=s-${k}`)).toBe(first);
      expect(await owner(`a=1; session=s-${k}`)).toBe(first);
      owners.add(first);
    }
    expect(owners.size).toBeGreaterThanOrEqual(4);
    expect(ups.map((u) => u.name)).toContain(await owner());
  });

  it('sourceIP: every request of one client address lands on one endpoint', async () => {
    const ups = await upstreams(5);
    const spec = rule({ loadBalancer: { type: 'ConsistentHash', consistentHash: { sourceIP: true } } });
    const gw = await gateway(tableOf(spec, { echo: ups.map((u) => u.port) }, 1));
    const seen = new Set<string>();
    for (let i = 0; i < 20; i++) seen.add(JSON.parse((await get(gw.port, '/')).body).name as string);
    expect(seen.size).toBe(1);
  });
});

describe('pools across table versions', () => {
  it('table updates that keep an endpoint open no new upstream connections (no reconnect storm)', async () => {
    const ups = await upstreams(2);
    let connections = 0;
    for (const u of ups)
      u.server.on('connection', () => {
        connections++;
      });
    const ports = ups.map((u) => u.port);
    const gw = await gateway(tableOf(rule(), { echo: ports }, 1));
    await runLoad(gw.port, { total: 200, concurrency: 4 });
    const warm = connections;
    let version = 2;
    const result = await runLoad(gw.port, {
      total: 600,
      concurrency: 4,
      onResult: (done) => {
        // Every 10 requests, a new table: a route edit (rule name, header filter) over the same endpoints.
        if (done % 10 === 0)
          gw.proxy.setTable(
            tableOf(
              {
                rules: [
                  {
                    name: `edit-${version}`,
                    backends: [{ consul: { service: 'echo' } }],
                    filters: [
                      {
                        type: 'RequestHeaderModifier',
                        requestHeaderModifier: { set: [{ name: 'x-version', value: String(version) }] },
                      },
                    ],
                  },
                ],
              },
              { echo: ports },
              version++,
            ),
          );
      },
    });
    expect(result.statuses.every((s) => s === 200)).toBe(true);
    console.log(
      `pools: ${version - 2} table updates, upstream connections ${warm} before, ${connections} after`,
    );
    expect(version - 2).toBeGreaterThanOrEqual(50);
    expect(connections).toBe(warm);
  });
});
