/**
 * The admin servers: health, readiness with reasons, metrics, and read-only debug views. They change nothing.
 *
 * Two audiences, two listeners (as Contour separates its metrics/health port from its loopback debug port):
 * `--admin` (default `:9901`, every interface) serves `/healthz`, `/readyz` and `/metrics` where the kubelet and
 * Prometheus reach them; `--admin-debug` (default `127.0.0.1:9902`) serves those and `/debug/*`, which show the
 * routing table, sources and upstreams of the node. When `--admin` itself binds a loopback address, the debug views
 * are served there too and no second listener is opened unless `--admin-debug` is given; `--admin-debug off` turns
 * them off everywhere. Every debug answer goes through redactSecrets (control/redact.ts).
 */
import { once } from 'node:events';
import { createServer, type Server } from 'node:http';
import { type AddressInfo, isIP } from 'node:net';
import { ConfigError } from '../lib/errors.ts';
import { wantsOpenMetrics } from './metrics/negotiate.ts';
import { redactSecrets } from './redact.ts';

export const DEFAULT_ADMIN_DEBUG = '127.0.0.1:9902';

export interface AdminState {
  /** Values known to be secret (e.g. the Consul ACL token): never shown in a debug view, wherever they appear. */
  secrets?(): string[];
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
  /** EDGEGATE_TEST_HOOKS=1 only: hold the proxy event loop(s) busy (overload and watchdog tests); `slot`: one worker. */
  testBusy?(ms: number, blockMs: number, slot?: number): unknown;
  /** Prometheus exposition, for /metrics (OpenMetrics, with exemplars, when `openMetrics`). */
  metrics?(openMetrics: boolean): Promise<{ contentType: string; body: string }>;
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

export interface AdminServerOptions {
  /** Serve `/debug/*` (only on a loopback listener unless the operator asked otherwise). Default true. */
  debug?: boolean;
  /** For the 404 of a debug path on a listener without them: where they are (`--admin-debug`), or off. */
  debugAt?: string;
}

export function createAdminServer(state: AdminState, opts: AdminServerOptions = {}): Server {
  const debugOn = opts.debug ?? true;
  const debug = (res: import('node:http').ServerResponse, value: unknown) =>
    json(res, 200, redactSecrets(value, state.secrets?.() ?? []));
  return createServer(async (req, res) => {
    const path = (req.url ?? '/').split('?')[0] ?? '/';
    if (req.method !== 'GET' && req.method !== 'HEAD') return json(res, 405, { error: 'method not allowed' });
    if (!debugOn && path.startsWith('/debug/'))
      return json(res, 404, {
        error: 'not found',
        message: opts.debugAt
          ? `the debug endpoints are served on the loopback debug listener only (--admin-debug ${opts.debugAt})`
          : 'the debug endpoints are off (--admin-debug off)',
      });
    try {
      switch (path) {
        case '/healthz':
          return json(res, 200, { status: 'ok' });
        case '/readyz': {
          const r = state.readiness();
          return json(res, r.ready ? 200 : 503, { ready: r.ready, reasons: r.reasons, notes: r.notes ?? [] });
        }
        case '/debug/routes':
          return debug(res, state.routes());
        case '/debug/sources':
          if (state.sources) return debug(res, state.sources());
          break;
        case '/debug/workers':
          if (state.workers) return debug(res, await state.workers());
          break;
        case '/debug/upstreams':
          if (state.upstreams) return debug(res, await state.upstreams());
          break;
        case '/debug/test/busy':
          // Present only when the gateway runs with EDGEGATE_TEST_HOOKS=1.
          if (state.testBusy) {
            const q = new URLSearchParams((req.url ?? '').split('?')[1] ?? '');
            const ms = Math.min(60_000, Number(q.get('ms') ?? 1000) || 0);
            // Up to the whole duration in one block: the worker watchdog's tests hold a loop blocked.
            const blockMs = Math.min(60_000, Number(q.get('block') ?? 100) || 0);
            const slot = q.get('slot') === null ? undefined : Number(q.get('slot'));
            return json(res, 200, {
              busyMs: ms,
              blockMs,
              workers: state.testBusy(ms, blockMs, slot) ?? 1,
            });
          }
          break;
        case '/metrics':
          if (state.metrics) {
            const m = await state.metrics(wantsOpenMetrics(req.headers.accept));
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
          ...(debugOn ? ['/debug/routes', '/debug/sources', '/debug/upstreams', '/debug/workers'] : []),
        ],
      });
    } catch (err) {
      json(res, 500, { error: String(err) });
    }
  });
}

/** `127.0.0.1`, `127.x.y.z`, `::1`, `localhost`: only this host (and, in a pod, `kubectl port-forward`) reaches it. */
export function isLoopbackHost(host: string | undefined): boolean {
  if (host === undefined || host === '') return false;
  const h = host.toLowerCase();
  if (h === 'localhost' || h === '::1' || h === '0:0:0:0:0:0:0:1') return true;
  const v4 = h.startsWith('::ffff:') ? h.slice(7) : h;
  return isIP(v4) === 4 && v4.startsWith('127.');
}

export interface AdminListeners {
  address: AddressInfo;
  /** The separate debug listener's address (absent: debug views on `address`, or off). */
  debugAddress?: AddressInfo;
  /** Where the debug views are served: `admin`, `debug` (the second listener) or `off`. */
  debug: 'admin' | 'debug' | 'off';
  close(): void;
}

type ParseListen = (value: string, flag: string) => { host: string | undefined; port: number };

async function listenOn(
  server: Server,
  value: string,
  flag: string,
  parse: ParseListen,
  reusePort: boolean,
): Promise<AddressInfo> {
  const { host, port } = parse(value, flag);
  server.listen({ port, host, reusePort });
  await Promise.race([
    once(server, 'listening'),
    once(server, 'error').then(([err]) => {
      throw new ConfigError(`${flag}: cannot listen on ${value}: ${(err as Error).message}`);
    }),
  ]);
  return server.address() as AddressInfo;
}

/**
 * Opens `--admin` and, where needed, `--admin-debug` (see the module comment). `adminDebug`: an address, `off`, or
 * undefined for the default (the admin listener when it is loopback, else DEFAULT_ADMIN_DEBUG).
 */
export async function openAdminListeners(
  state: AdminState,
  /**
   * `reusePort`: SO_REUSEPORT like the proxy ports, so two gateway pods in one network namespace (hostNetwork,
   * during a rolling update with maxSurge) both listen while the old one drains; without it the new pod cannot
   * open its admin listeners and crash-loops until the old one is gone (test/e2e/node/upgrade.test.ts).
   */
  opts: { admin: string; adminDebug?: string | undefined; reusePort?: boolean },
  parse: ParseListen,
  warn: (message: string, meta: Record<string, unknown>) => void,
): Promise<AdminListeners> {
  const adminLoopback = isLoopbackHost(parse(opts.admin, '--admin').host);
  const off = opts.adminDebug?.trim().toLowerCase() === 'off';
  const separate = off ? undefined : (opts.adminDebug ?? (adminLoopback ? undefined : DEFAULT_ADMIN_DEBUG));
  if (separate !== undefined && !isLoopbackHost(parse(separate, '--admin-debug').host))
    warn('the debug endpoints are exposed beyond this host (--admin-debug is not a loopback address)', {
      adminDebug: separate,
    });
  const main = createAdminServer(state, {
    debug: !off && adminLoopback,
    ...(separate !== undefined ? { debugAt: separate } : {}),
  });
  const servers: Server[] = [main];
  const close = () => {
    for (const s of servers) {
      s.close();
      s.closeAllConnections();
    }
  };
  try {
    const reuse = opts.reusePort ?? false;
    const address = await listenOn(main, opts.admin, '--admin', parse, reuse);
    if (separate === undefined) return { address, debug: off ? 'off' : 'admin', close };
    const second = createAdminServer(state, { debug: true });
    servers.push(second);
    const debugAddress = await listenOn(second, separate, '--admin-debug', parse, reuse);
    return { address, debugAddress, debug: 'debug', close };
  } catch (err) {
    close();
    throw err;
  }
}
