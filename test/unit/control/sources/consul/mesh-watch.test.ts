import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import type { MeshIdentity } from '../../../../../src/api/certificate.ts';
import type { BlockingQuery } from '../../../../../src/control/sources/consul/blocking-query.ts';
import type { ConsulHttp, ConsulResponse } from '../../../../../src/control/sources/consul/consul-http.ts';
import { MeshWatch } from '../../../../../src/control/sources/consul/mesh-watch.ts';

/** In-process stand-ins: the watches the MeshWatch opens (fed by the test) and the agent's authorize answers. */
function harness() {
  const watches = new Map<
    string,
    { path: string; query: Record<string, string>; onData: (b: unknown) => void }
  >();
  const posts: { path: string; body: { Target: string; ClientCertURI: string } }[] = [];
  const answers: (() => Promise<ConsulResponse>)[] = [];
  const http = {
    post: (path: string, body: { Target: string; ClientCertURI: string }) => {
      posts.push({ path, body });
      const next = answers.shift();
      return next ? next() : Promise.reject(new Error('no answer scripted'));
    },
  } as unknown as ConsulHttp;
  const identities: MeshIdentity[] = [];
  let decisions = 0;
  const mesh = new MeshWatch({
    gatewayService: 'edgegate',
    http,
    watch: (key, path, query, _poll, onData) => {
      watches.set(key, { path, query, onData });
      return { stop: async () => {} } as unknown as BlockingQuery;
    },
    log: { info: () => {}, warn: () => {} },
    onIdentity: (i) => identities.push(i),
    onDecision: () => decisions++,
    backoffBaseMs: 100,
    backoffMaxMs: 1000,
  });
  const ok = (Authorized: boolean, Reason: string) => () =>
    Promise.resolve({
      status: 200,
      index: undefined,
      body: { Authorized, Reason },
      text: '',
      lastContactMs: undefined,
    });
  const roots = (id: string, pems: string[]) => ({
    ActiveRootID: id,
    TrustDomain: 'td.consul',
    Roots: pems.map((p) => ({ RootCert: p, IntermediateCerts: null })),
  });
  const leaf = (serial: string) => ({
    CertPEM: `cert-${serial}`,
    PrivateKeyPEM: `key-${serial}`,
    SerialNumber: serial,
    ServiceURI: 'spiffe://td.consul/ns/default/dc/dc1/svc/edgegate',
  });
  return { mesh, watches, posts, answers, identities, ok, roots, leaf, decisions: () => decisions };
}

beforeEach(() => {
  vi.useFakeTimers();
});
afterEach(() => {
  vi.useRealTimers();
});

describe('MeshWatch', () => {
  it('watches the roots and the leaf of the gateway service; hands on an identity once both are known and on every change', () => {
    const h = harness();
    h.mesh.start();
    expect(h.watches.get('mesh@leaf')!.path).toBe('/v1/agent/connect/ca/leaf/edgegate');
    expect(h.watches.get('mesh@roots')!.path).toBe('/v1/agent/connect/ca/roots');
    expect(h.mesh.pending()).toEqual(['mesh@roots', 'mesh@leaf']);
    h.watches.get('mesh@roots')!.onData(h.roots('r1', ['P1']));
    expect(h.identities).toEqual([]);
    h.watches.get('mesh@leaf')!.onData(h.leaf('0a'));
    h.watches.get('mesh@roots')!.onData(h.roots('r2', ['P1', 'P2'])); // rotation: both roots trusted
    h.watches.get('mesh@leaf')!.onData(h.leaf('0f'));
    expect(h.identities.map((i) => [i.activeRootId, i.rootsPem.join('+'), i.leafSerial])).toEqual([
      ['r1', 'P1', '0a'],
      ['r2', 'P1+P2', '0a'],
      ['r2', 'P1+P2', '0f'],
    ]);
    expect(() => h.watches.get('mesh@roots')!.onData({ Roots: [] })).toThrow(/TrustDomain/);
    expect(() => h.watches.get('mesh@leaf')!.onData({ CertPEM: 'x' })).toThrow(/PrivateKeyPEM/);
    void h.mesh.stop();
  });

  it('asks /v1/agent/connect/authorize on an intention change, and again after the agent cache caught up', async () => {
    const h = harness();
    h.mesh.start();
    h.watches.get('mesh@roots')!.onData(h.roots('r1', ['P1']));
    h.watches.get('mesh@leaf')!.onData(h.leaf('0a'));
    h.mesh.setDestinations(['web']);
    const w = h.watches.get('intentions@web')!;
    expect([w.path, w.query]).toEqual(['/v1/connect/intentions/match', { by: 'destination', name: 'web' }]);
    for (let i = 0; i < 4; i++) h.answers.push(h.ok(true, 'Default behavior')); // now, then 3 follow-ups
    w.onData([]);
    await vi.advanceTimersByTimeAsync(0);
    expect(h.posts[0]).toEqual({
      path: '/v1/agent/connect/authorize',
      body: expect.objectContaining({
        Target: 'web',
        ClientCertURI: 'spiffe://td.consul/ns/default/dc/dc1/svc/edgegate',
      }),
    });
    expect(h.mesh.decisions()).toEqual({ web: { allowed: true, reason: 'Default behavior' } });
    expect(h.mesh.pending()).toEqual([]);
    await vi.advanceTimersByTimeAsync(3000);
    expect(h.posts).toHaveLength(4);
    // A deny intention: the agent's cache still says allow at first, then deny.
    h.answers.push(
      h.ok(true, 'Default behavior'),
      h.ok(true, 'Default behavior'),
      h.ok(false, 'Matched L4 intention'),
      h.ok(false, 'Matched L4 intention'),
    );
    w.onData([{ Action: 'deny' }]);
    await vi.advanceTimersByTimeAsync(250);
    expect(h.mesh.decisions().web!.allowed).toBe(true);
    await vi.advanceTimersByTimeAsync(750);
    expect(h.mesh.decisions()).toEqual({ web: { allowed: false, reason: 'Matched L4 intention' } });
    await vi.advanceTimersByTimeAsync(2000);
    expect(h.posts).toHaveLength(8);
    expect(h.decisions()).toBe(2); // allow, then deny: an unchanged answer reports nothing
    void h.mesh.stop();
  });

  it('a failed authorize keeps the last decision and retries with backoff; an older answer never overwrites a newer one', async () => {
    const h = harness();
    h.mesh.start();
    h.watches.get('mesh@leaf')!.onData(h.leaf('0a'));
    h.mesh.setDestinations(['web']);
    for (let i = 0; i < 4; i++) h.answers.push(h.ok(false, 'deny'));
    h.watches.get('intentions@web')!.onData([]);
    await vi.advanceTimersByTimeAsync(3000);
    expect(h.mesh.decisions().web!.allowed).toBe(false);
    for (let i = 0; i < 4; i++)
      h.answers.push(() =>
        Promise.resolve({
          status: 500,
          index: undefined,
          body: 'boom',
          text: 'boom',
          lastContactMs: undefined,
        }),
      );
    h.answers.push(h.ok(true, 'allow'));
    await vi.advanceTimersByTimeAsync(26_999);
    expect(h.posts).toHaveLength(4);
    // The periodic re-check (30 s after start) fails 4 times, then the backoff retries get the new answer.
    await vi.advanceTimersByTimeAsync(1);
    expect(h.mesh.decisions().web!.allowed).toBe(false);
    await vi.advanceTimersByTimeAsync(5_000);
    expect(h.mesh.decisions().web).toEqual({ allowed: true, reason: 'allow' });
    expect((h.mesh.stats() as { authorizeErrors: number }).authorizeErrors).toBe(4);

    // Two checks in flight: the first (slow, allow) answers after the second (deny).
    let release: () => void = () => {};
    h.answers.push(
      () =>
        new Promise((r) => {
          release = () =>
            r({
              status: 200,
              index: undefined,
              body: { Authorized: true, Reason: 'old' },
              text: '',
              lastContactMs: undefined,
            });
        }),
      h.ok(false, 'new'),
    );
    h.mesh.setDestinations(['web', 'api']); // no change for web
    h.watches.get('intentions@web')!.onData([1]);
    h.watches.get('intentions@web')!.onData([2]);
    await vi.advanceTimersByTimeAsync(0);
    release();
    await vi.advanceTimersByTimeAsync(0);
    expect(h.mesh.decisions().web).toEqual({ allowed: false, reason: 'new' });
    void h.mesh.stop();
  });
});
