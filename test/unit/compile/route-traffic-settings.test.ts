import { describe, expect, it } from 'vitest';
import { formatPath, validateRoute } from '../../../src/api/validate.ts';
import { tableOf } from '../../support/inproc-gateway.ts';

function route(rule: Record<string, unknown>) {
  return {
    apiVersion: 'edgegate.io/v1alpha1',
    kind: 'GatewayRoute',
    metadata: { name: 'r', namespace: 'ns' },
    spec: { rules: [{ backends: [{ consul: { service: 'echo' } }], ...rule }] },
  };
}

function errorsOf(raw: unknown): string[] {
  const v = validateRoute(raw);
  return v.ok ? [] : v.errors.map((e) => `${formatPath(e.path)}: ${e.message}`);
}

describe('rule traffic settings: validation', () => {
  it('accepts every documented field', () => {
    expect(
      errorsOf(
        route({
          loadBalancer: { type: 'ConsistentHash', consistentHash: { cookie: 'session' } },
          timeouts: { request: '10s', backendRequest: '2s', responseHeaders: '1s', idle: '5s' },
          retry: { attempts: 2, retryOn: ['connect-failure', 'reset', '503'], backoff: '25ms' },
          backends: [{ consul: { service: 'echo' }, pool: { maxConnections: 8, maxPendingRequests: 16 } }],
        }),
      ),
    ).toEqual([]);
  });

  it('ConsistentHash needs exactly one key source', () => {
    expect(errorsOf(route({ loadBalancer: { type: 'ConsistentHash' } }))).toEqual([
      'spec.rules[0].loadBalancer.consistentHash: type ConsistentHash needs exactly one of header, cookie or sourceIP: true',
    ]);
    expect(
      errorsOf(
        route({
          loadBalancer: { type: 'ConsistentHash', consistentHash: { header: 'x-u', sourceIP: true } },
        }),
      ),
    ).toHaveLength(1);
    expect(
      errorsOf(route({ loadBalancer: { type: 'LeastRequest', consistentHash: { header: 'x-u' } } })),
    ).toEqual([
      'spec.rules[0].loadBalancer.consistentHash: consistentHash is only allowed with type ConsistentHash',
    ]);
  });

  it('refuses unknown retry conditions, bad durations and backendRequest above request', () => {
    expect(errorsOf(route({ retry: { retryOn: ['sometimes'] } }))[0]).toMatch(
      /^spec\.rules\[0\]\.retry\.retryOn\[0\]: must be one of/,
    );
    expect(errorsOf(route({ timeouts: { request: 'soon' } }))[0]).toMatch(
      /^spec\.rules\[0\]\.timeouts\.request: invalid value/,
    );
    expect(errorsOf(route({ timeouts: { request: '1s', backendRequest: '2s' } }))).toEqual([
      'spec.rules[0].timeouts.backendRequest: backendRequest (2s) must not exceed request (1s)',
    ]);
  });
});

describe('rule traffic settings: compile', () => {
  it('compiles into entry data, and leaves defaults out of the table', () => {
    const t = tableOf(
      {
        rules: [
          {
            matches: [{ path: { type: 'PathPrefix', value: '/a' } }],
            backends: [{ consul: { service: 'echo' }, pool: { maxPendingRequests: 7 } }],
            loadBalancer: { type: 'ConsistentHash', consistentHash: { header: 'X-User' } },
            timeouts: { request: '10s', backendRequest: '250ms' },
            retry: { attempts: 3, retryOn: ['503', 'connect-failure'] },
          },
          {
            matches: [{ path: { type: 'PathPrefix', value: '/b' } }],
            backends: [{ consul: { service: 'echo' } }],
          },
        ],
      },
      { echo: [1] },
    );
    const a = t.entries.find((e) => e.matchData.path.value === '/a')!;
    expect(a.loadBalancer).toEqual({ type: 'ConsistentHash', hash: { header: 'x-user' } });
    expect(a.timeouts).toEqual({ requestMs: 10000, backendRequestMs: 250 });
    expect(a.retry).toEqual({ attempts: 3, on: ['503', 'connect-failure'], backoffMs: 0 });
    const b = t.entries.find((e) => e.matchData.path.value === '/b')!;
    expect(b.loadBalancer).toBeUndefined();
    expect(b.timeouts).toBeUndefined();
    expect(b.retry).toBeUndefined();
    expect(t.clusters.map((c) => c.pool.maxPendingRequests).sort()).toEqual([1024, 7]);
  });
});
