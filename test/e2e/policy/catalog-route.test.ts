/**
 * Policies on the catalog route (`spec.catalog.policies`, the resty-gate form /{datacenter}/{service}/{rest})
 * through `edgegate run --workers 2`: an IP deny answers 403 before any upstream is chosen, a rate limit is
 * pod-wide over every service the route exposes, and the catalog's own answers (unknown service) are unchanged.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { scrapeMetrics, sumOf } from '../../support/prom-text.ts';
import { waitFor } from '../../support/wait.ts';
import {
  call,
  type PolicyGateway,
  type RecordingUpstream,
  startPolicyGateway,
  startRecordingUpstream,
} from './helpers.ts';

let up: RecordingUpstream;
let gw: PolicyGateway;

beforeAll(async () => {
  up = await startRecordingUpstream('catalog-policy-upstream');
  gw = await startPolicyGateway({
    services: {
      orders: [{ port: up.port, tags: ['edge'] }],
      users: [{ port: up.port, tags: ['edge'] }],
    },
    routes: {
      denied: {
        hostnames: ['denied.example'],
        catalog: { requiredTags: ['edge'], policies: { ipDeny: ['127.0.0.0/8'] } },
      },
      limited: {
        hostnames: ['limited.example'],
        catalog: { requiredTags: ['edge'], policies: { rateLimit: { requests: 4, period: '1m' } } },
      },
    },
  });
});

afterAll(async () => {
  await gw?.stop();
  await up?.close();
});

const get = (host: string, path: string) => call(gw.gw.port, path, { headers: { host } });

/** A policy counter of a route's one catalog rule (`namespace/name#catalog`), from /metrics. */
async function policyMetric(name: string, route: string): Promise<number> {
  return sumOf(await scrapeMetrics(gw.gw.adminUrl), name, { rule: `default/${route}#catalog` });
}

describe('policies on the catalog route', () => {
  it('an IP deny answers 403 before the catalog lookup, and nothing reaches the upstream', async () => {
    const before = up.seen.length;
    // An unknown service and datacenter get the 403 too: a denied client learns nothing of the catalog.
    for (const path of ['/dc1/orders/a', '/dc1/users/b', '/dc1/nope/c', '/dc9/orders/d']) {
      const r = await get('denied.example', path);
      expect(r.status, path).toBe(403);
      expect(r.json<{ error: string }>().error).toBe('EDGEGATE_IP_DENIED');
    }
    expect(up.seen.length).toBe(before);
    expect(await policyMetric('edgegate_policy_ip_denied_total', 'denied')).toBe(4);
    expect(await policyMetric('edgegate_policy_passed_total', 'denied')).toBe(0);
    // A refusal the gateway wrote is counted under its error code, like any answer the gateway generated.
    const prom = await scrapeMetrics(gw.gw.adminUrl);
    expect(sumOf(prom, 'edgegate_gateway_errors_total', { code: 'EDGEGATE_IP_DENIED' })).toBe(4);
    expect(
      sumOf(prom, 'edgegate_requests_total', { route: 'default/denied', code: 'EDGEGATE_IP_DENIED' }),
    ).toBe(4);
    expect(sumOf(prom, 'edgegate_requests_total', { route: 'default/denied', code: '4xx' })).toBe(0);
    // …and logged with it.
    await waitFor(
      () => /"status":403,.*"route":"default\/denied".*"code":"EDGEGATE_IP_DENIED"/.test(gw.gw.output()),
      {
        timeoutMs: 10_000,
        message: 'the access log line of a denied request, with its code',
      },
    );
  });

  it('a rate limit is shared by every service of the route over both workers, probes for services included', async () => {
    const before = up.seen.length;
    const paths = ['users', 'orders', 'nope', 'users', 'orders', 'nope', 'users', 'orders'].map(
      (s) => `/dc1/${s}/x`,
    );
    const answers = [];
    // Fresh connections: the kernel spreads them over the two workers; the bucket is pod-wide.
    for (const path of paths) answers.push(await get('limited.example', path));
    expect(answers.map((a) => a.status)).toEqual([200, 200, 404, 200, 429, 429, 429, 429]);
    expect(answers[2]!.json<{ error: string }>().error).toBe('EDGEGATE_CATALOG_UNKNOWN_SERVICE');
    expect(answers[5]!.json<{ error: string }>().error).toBe('EDGEGATE_RATE_LIMITED');
    // What was forwarded carries the rest of the path.
    expect(up.seen.slice(before).map((s) => s.url)).toEqual(['/x', '/x', '/x']);
    // Summed over both workers: exactly the 4 the limit allows passed (the 404 among them).
    const perWorker = await gw.workerPolicies();
    expect(perWorker).toHaveLength(2);
    const sum = (k: 'passed' | 'rateLimited') =>
      perWorker.reduce((n, w) => n + Object.values(w.rules).reduce((m, r) => m + r[k], 0), 0);
    expect(sum('rateLimited')).toBe(4);
    expect(sum('passed')).toBe(4);
    // The same on /metrics, where the primary sums the workers.
    expect(await policyMetric('edgegate_policy_rate_limited_total', 'limited')).toBe(4);
    expect(await policyMetric('edgegate_policy_passed_total', 'limited')).toBe(4);
    // The 404 counts against the route it matched (docs/observability.md), with no backend.
    const prom = await scrapeMetrics(gw.gw.adminUrl);
    expect(
      sumOf(prom, 'edgegate_requests_total', {
        route: 'default/limited',
        service: '',
        code: 'EDGEGATE_CATALOG_UNKNOWN_SERVICE',
      }),
    ).toBe(1);
    expect(
      sumOf(prom, 'edgegate_requests_total', { route: 'default/limited', code: 'EDGEGATE_RATE_LIMITED' }),
    ).toBe(4);
  });
});
