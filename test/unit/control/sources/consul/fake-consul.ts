/**
 * A small stateful Consul for unit tests of the source: agent/self, catalog/datacenters, catalog/services and
 * health/service with real blocking-query semantics (one global index; a request with index ≥ current waits for a
 * change or its `wait`), plus switches to misbehave: `forbidden` (403 ACL not found), `down` (connections cut).
 */
import type { ServerResponse } from 'node:http';
import { type FakeServer, reply, startFakeServer } from './fake-server.ts';

export interface FakeInstance {
  id: string;
  port: number;
  tags?: string[];
  status?: 'passing' | 'warning' | 'critical';
  maintenance?: boolean;
}

export class FakeConsul {
  index = 10;
  localDc = 'dc1';
  datacenters = ['dc1', 'dc2'];
  services: Record<string, Record<string, FakeInstance[]>> = {};
  forbidden = false;
  down = false;
  #waiters = new Set<() => void>();
  #server: FakeServer | undefined;

  static async start(): Promise<FakeConsul> {
    const c = new FakeConsul();
    c.#server = await startFakeServer((req, res) => c.#handle(req.path, req.query, res));
    return c;
  }

  get url(): string {
    return this.#server!.url;
  }
  get requests() {
    return this.#server!.requests;
  }

  /** Changes the state and moves the index, waking blocked queries. */
  change(fn: (c: this) => void = () => {}): void {
    fn(this);
    this.index++;
    for (const w of [...this.#waiters]) w();
  }

  async close(): Promise<void> {
    for (const w of [...this.#waiters]) w();
    await this.#server?.close();
  }

  #handle(path: string, q: URLSearchParams, res: ServerResponse): void {
    if (this.down) {
      res.socket?.destroy();
      return;
    }
    if (this.forbidden) return reply(res, 403, 'ACL not found');
    if (path === '/v1/agent/self') return reply(res, 200, { Config: { Datacenter: this.localDc } });
    if (path === '/v1/catalog/datacenters') return reply(res, 200, this.datacenters);
    const dc = q.get('dc') ?? this.localDc;
    if (!this.datacenters.includes(dc)) return reply(res, 500, `No path to datacenter`);
    const answer = () => {
      if (this.down) return void res.socket?.destroy();
      const svcs = this.services[dc] ?? {};
      if (path === '/v1/catalog/services') {
        const out: Record<string, string[]> = {};
        for (const [name, list] of Object.entries(svcs))
          if (list.length > 0) out[name] = [...new Set(list.flatMap((i) => i.tags ?? []))];
        return reply(res, 200, out, this.index);
      }
      const m = /^\/v1\/health\/service\/(.+)$/.exec(path);
      if (m) {
        const list = svcs[decodeURIComponent(m[1]!)] ?? [];
        return reply(
          res,
          200,
          list.map((i) => ({
            Node: { Node: 'n1', Address: '127.0.0.1' },
            Service: {
              ID: i.id,
              Service: m[1],
              Tags: i.tags ?? [],
              Port: i.port,
              Address: '',
              Weights: { Passing: 1, Warning: 1 },
            },
            Checks: [
              { CheckID: 'serfHealth', Status: 'passing' },
              { CheckID: `service:${i.id}`, Status: i.status ?? 'passing' },
              ...(i.maintenance ? [{ CheckID: `_service_maintenance:${i.id}`, Status: 'critical' }] : []),
            ],
          })),
          this.index,
        );
      }
      reply(res, 404, 'no such endpoint');
    };
    const want = Number(q.get('index') ?? 0);
    if (want > 0 && want >= this.index) {
      const waitMs = Number((q.get('wait') ?? '300000ms').replace('ms', ''));
      const done = () => {
        this.#waiters.delete(done);
        clearTimeout(timer);
        answer();
      };
      const timer = setTimeout(done, waitMs);
      this.#waiters.add(done);
      res.on('close', () => {
        this.#waiters.delete(done);
        clearTimeout(timer);
      });
      return;
    }
    answer();
  }
}
