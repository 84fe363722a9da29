// The shared Consul pair is real: WAN federation, cross-DC catalog writes, blocking queries.
import { randomUUID } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { consulLogs, printLogsOnFailure } from '../../support/logs.ts';
import { sharedConsulPair } from '../../support/shared.ts';
import { waitFor } from '../../support/wait.ts';

const { dc1, dc2 } = sharedConsulPair();
printLogsOnFailure(() => consulLogs(dc1, dc2));

interface CatalogService {
  ServiceID: string;
  ServiceName: string;
  Datacenter: string;
  ServicePort: number;
}
interface HealthEntry {
  Service: { ID: string; Service: string; Port: number };
}

function registration(name: string, id: string, port: number, datacenter?: string) {
  return {
    ...(datacenter ? { Datacenter: datacenter } : {}),
    Node: `ext-${name}`,
    Address: '127.0.0.2',
    NodeMeta: { 'external-node': 'true' },
    Service: { ID: id, Service: name, Address: '127.0.0.2', Port: port },
  };
}

/** Tracks whether a promise has settled, without waiting for it. */
function track<T>(p: Promise<T>): { promise: Promise<T>; settled: () => boolean } {
  let done = false;
  const promise = p.finally(() => {
    done = true;
  });
  return { promise, settled: () => done };
}

describe('consul dc1 + dc2 (shared)', () => {
  it('both agents list both datacenters', async () => {
    expect((await dc1.datacenters()).sort()).toEqual(['dc1', 'dc2']);
    expect((await dc2.datacenters()).sort()).toEqual(['dc1', 'dc2']);
    const self = await dc2.json<{ Config: { Datacenter: string } }>('/v1/agent/self');
    expect(self.Config.Datacenter).toBe('dc2');
  });

  it('a service registered through dc1 for dc2 lives in dc2', async () => {
    const name = `cross-${randomUUID().slice(0, 8)}`;
    // /v1/catalog/register takes the target DC from the body's Datacenter field (Consul
    // ignores ?dc= on this endpoint and would write to dc1); dc1 forwards the write to dc2.
    const res = await dc1.fetch('/v1/catalog/register?dc=dc2', {
      method: 'PUT',
      body: JSON.stringify(registration(name, `${name}-1`, 9001, 'dc2')),
    });
    expect(res.status, await res.text()).toBe(200);

    // Visible from dc2's own agent, in dc2.
    const inDc2 = await dc2.json<CatalogService[]>(`/v1/catalog/service/${name}`);
    expect(inDc2.map((s) => [s.ServiceID, s.Datacenter, s.ServicePort])).toEqual([
      [`${name}-1`, 'dc2', 9001],
    ]);
    // dc1 forwards ?dc=dc2 queries; its own catalog does not have it.
    const viaDc1 = await dc1.json<CatalogService[]>(`/v1/catalog/service/${name}?dc=dc2`);
    expect(viaDc1.map((s) => s.ServiceID)).toEqual([`${name}-1`]);
    expect(await dc1.json<CatalogService[]>(`/v1/catalog/service/${name}`)).toEqual([]);
    const services = await dc2.json<Record<string, string[]>>('/v1/catalog/services');
    expect(Object.keys(services)).toContain(name);
  });

  it('a blocking query on /v1/health/service/x returns when an instance is registered', async () => {
    const name = `block-${randomUUID().slice(0, 8)}`;
    const put = async (id: string, port: number) => {
      const res = await dc1.fetch('/v1/catalog/register', {
        method: 'PUT',
        body: JSON.stringify(registration(name, id, port)),
      });
      expect(res.status, await res.text()).toBe(200);
    };
    await put(`${name}-a`, 9101);

    const first = await dc1.fetch(`/v1/health/service/${name}`);
    const index = Number(first.headers.get('X-Consul-Index'));
    expect(index).toBeGreaterThan(0);
    expect(((await first.json()) as HealthEntry[]).map((e) => e.Service.ID)).toEqual([`${name}-a`]);

    // Issue the blocking query and make sure it is parked at the agent before registering.
    // (Re-issue on a rare spurious wake-up so the request that sees the change is a blocked one.)
    let blocked = track(dc1.fetch(`/v1/health/service/${name}?index=${index}&wait=60s`));
    await waitFor(
      async () => {
        await dc1.fetch('/v1/status/leader'); // a round trip after the blocking request was sent
        if (!blocked.settled()) return true;
        blocked = track(dc1.fetch(`/v1/health/service/${name}?index=${index}&wait=60s`));
        return false;
      },
      { timeoutMs: 10_000, message: 'a parked blocking query' },
    );
    const registeredAt = Date.now();
    await put(`${name}-b`, 9102);
    const res = await blocked.promise;
    const elapsed = Date.now() - registeredAt;

    expect(res.status).toBe(200);
    expect(Number(res.headers.get('X-Consul-Index'))).toBeGreaterThan(index);
    const ids = ((await res.json()) as HealthEntry[]).map((e) => e.Service.ID).sort();
    expect(ids).toEqual([`${name}-a`, `${name}-b`]);
    expect(elapsed).toBeLessThan(10_000); // woken by the write, not by wait=60s
  });
});
