import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import type { MeshIdentity } from '../../../../../src/api/certificate.ts';
import type { BlockingQuery } from '../../../../../src/control/sources/consul/blocking-query.ts';
import type { ConsulHttp, ConsulResponse } from '../../../../../src/control/sources/consul/consul-http.ts';
import { MeshWatch } from '../../../../../src/control/sources/consul/mesh-watch.ts';

/** In-process stand-ins: the watches the MeshWatch opens (fed by the test) and the intention check answers. */
function harness() {
  const watches = new Map<
    string,
    { path: string; query: Record<string, string>; onData: (b: unknown) => void }
  >();
  const posts: { path: string; query: Record<string, string | undefined> }[] = [];
  const answers: (() => Promise<ConsulResponse>)[] = [];
  const http = {
    commonQuery: () => ({ stale: '' }),
    get: (path: string, query: Record<string, string | undefined>) => {
      posts.push({ path, query });
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
  const ok = (Allowed: boolean) => () =>
    Promise.resolve({
      status: 200,
      index: undefined,
      body: { Allowed },
      text: '',
      lastContactMs: undefined,
      knownLeader: undefined,
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

  it('asks /v1/connect/intentions/check on an intention change (and again shortly after), with the matching intention as the reason', async () => {
    const h = harness();
    h.mesh.start();
    h.watches.get('mesh@roots')!.onData(h.roots('r1', ['P1']));
    h.watches.get('mesh@leaf')!.onData(h.leaf('0a'));
    h.mesh.setDestinations(['web']);
    const w = h.watches.get('intentions@web')!;
    expect([w.path, w.query]).toEqual(['/v1/connect/intentions/match', { by: 'destination', name: 'web' }]);
    for (let i = 0; i < 4; i++) h.answers.push(h.ok(true)); // now, then 3 follow-ups
    w.onData({ web: null });
    await vi.advanceTimersByTimeAsync(0);
    // Asked of the servers (no `stale`): the gateway service as the source.
    expect(h.posts[0]).toEqual({
      path: '/v1/connect/intentions/check',
      query: { stale: undefined, source: 'edgegate', destination: 'web' },
    });
    expect(h.mesh.decisions()).toEqual({
      web: { allowed: true, reason: 'no intention matches; the default intention policy allows' },
    });
    expect(h.mesh.pending()).toEqual([]);
    await vi.advanceTimersByTimeAsync(3000);
    expect(h.posts).toHaveLength(4);
    // A deny intention: the agent's cache still says allow at first, then deny.
    h.answers.push(h.ok(true), h.ok(true), h.ok(false), h.ok(false));
    w.onData({
      web: [
        { SourceNS: 'default', SourceName: 'billing', Action: 'allow', Precedence: 9 },
        { SourceNS: 'default', SourceName: 'edgegate', Action: 'deny', Precedence: 9 },
        { SourceNS: 'default', SourceName: '*', Action: 'allow', Precedence: 8 },
      ],
    });
    await vi.advanceTimersByTimeAsync(250);
    expect(h.mesh.decisions().web!.allowed).toBe(true);
    await vi.advanceTimersByTimeAsync(750);
    expect(h.mesh.decisions()).toEqual({
      web: {
        allowed: false,
        reason: 'matched L4 intention default/edgegate → default/web (precedence 9, action deny)',
      },
    });
    await vi.advanceTimersByTimeAsync(2000);
    expect(h.posts).toHaveLength(8);
    // allow (no intention), allow while the servers trail the new list, deny: an unchanged answer reports nothing
    expect(h.decisions()).toBe(3);
    void h.mesh.stop();
  });

  it('a failed intention check keeps the last decision and retries with backoff; an older answer never overwrites a newer one', async () => {
    const h = harness();
    h.mesh.start();
    h.watches.get('mesh@leaf')!.onData(h.leaf('0a'));
    h.mesh.setDestinations(['web']);
    for (let i = 0; i < 4; i++) h.answers.push(h.ok(false));
    h.watches.get('intentions@web')!.onData({ web: null });
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
          knownLeader: undefined,
        }),
      );
    h.answers.push(h.ok(true));
    await vi.advanceTimersByTimeAsync(26_999);
    expect(h.posts).toHaveLength(4);
    // The periodic re-check (30 s after start) fails 4 times, then the backoff retries get the new answer.
    await vi.advanceTimersByTimeAsync(1);
    expect(h.mesh.decisions().web!.allowed).toBe(false);
    await vi.advanceTimersByTimeAsync(5_000);
    expect(h.mesh.decisions().web!.allowed).toBe(true);
    expect((h.mesh.stats() as { checkErrors: number }).checkErrors).toBe(4);

    // Two checks in flight: the first (slow, allow) answers after the second (deny).
    let release: () => void = () => {};
    h.answers.push(
      () =>
        new Promise((r) => {
          release = () =>
            r({
              status: 200,
              index: undefined,
              body: { Allowed: true },
              text: '',
              lastContactMs: undefined,
              knownLeader: undefined,
            });
        }),
      h.ok(false),
    );
    h.mesh.setDestinations(['web', 'api']); // no change for web
    h.watches.get('intentions@web')!.onData({ web: null });
    h.watches.get('intentions@web')!.onData({ web: null });
    await vi.advanceTimersByTimeAsync(0);
    release();
    await vi.advanceTimersByTimeAsync(0);
    expect(h.mesh.decisions().web!.allowed).toBe(false);
    void h.mesh.stop();
  });
});
