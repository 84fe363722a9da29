/**
 * The admin server (default :9901): health, readiness with reasons, and read-only debug views. It changes
 * nothing; bind it to loopback or a node-internal address.
 */
import { createServer, type Server } from 'node:http';

export interface AdminState {
  /** Ready to take traffic, and if not, why; `notes` say what is degraded without failing readiness. */
  readiness(): { ready: boolean; reasons: string[]; notes?: string[] };
  /** Proxy worker processes and the table version each serves, for /debug/workers. */
  workers?(): unknown | Promise<unknown>;
  /** The served table and route statuses, for /debug/routes. */
  routes(): unknown;
  /** Source state (up, data age, watches), for /debug/sources. */
  sources?(): unknown;
  /** Endpoints, health and pool figures, for /debug/upstreams. */
  upstreams?(): unknown | Promise<unknown>;
  /** EDGEGATE_TEST_HOOKS=1 only: hold the proxy event loop(s) busy (overload tests). */
  testBusy?(ms: number, blockMs: number): unknown;
  /** Prometheus exposition, for /metrics. */
  metrics?(): Promise<{ contentType: string; body: string }>;
}

function json(res: import('node:http').ServerResponse, status: number, value: unknown) {
  const body = JSON.stringify(value, null, 2);
  res.writeHead(status, {
    'content-type': 'application/json',
    'content-length': Buffer.byteLength(body),
    'cache-control': 'no-store',
  });
  res.end(body);
}

export function createAdminServer(state: AdminState): Server {
  return createServer(async (req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    if (req.method !== 'GET' && req.method !== 'HEAD') return json(res, 405, { error: 'method not allowed' });
    try {
      switch (path) {
        case '/healthz':
          return json(res, 200, { status: 'ok' });
        case '/readyz': {
          const r = state.readiness();
          return json(res, r.ready ? 200 : 503, { ready: r.ready, reasons: r.reasons, notes: r.notes ?? [] });
        }
        case '/debug/routes':
          return json(res, 200, state.routes());
        case '/debug/sources':
          if (state.sources) return json(res, 200, state.sources());
          break;
        case '/debug/workers':
          if (state.workers) return json(res, 200, await state.workers());
          break;
        case '/debug/upstreams':
          if (state.upstreams) return json(res, 200, await state.upstreams());
          break;
        case '/debug/test/busy':
          // Present only when the gateway runs with EDGEGATE_TEST_HOOKS=1.
          if (state.testBusy) {
            const q = new URLSearchParams((req.url ?? '').split('?')[1] ?? '');
            const ms = Math.min(60_000, Number(q.get('ms') ?? 1000) || 0);
            const blockMs = Math.min(1_000, Number(q.get('block') ?? 100) || 0);
            return json(res, 200, { busyMs: ms, blockMs, workers: state.testBusy(ms, blockMs) ?? 1 });
          }
          break;
        case '/metrics':
          if (state.metrics) {
            const m = await state.metrics();
            res.writeHead(200, { 'content-type': m.contentType });
            res.end(m.body);
            return;
          }
          break;
      }
      json(res, 404, {
        error: 'not found',
        paths: [
          '/healthz',
          '/readyz',
          '/metrics',
          '/debug/routes',
          '/debug/sources',
          '/debug/upstreams',
          '/debug/workers',
        ],
      });
    } catch (err) {
      json(res, 500, { error: String(err) });
    }
  });
}
