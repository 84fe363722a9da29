/**
 * `edgegate run`: wires sources → controller → proxy and the admin server. Standalone (files) today; the Consul
 * and Kubernetes sources plug into the same controller.
 */
import { once } from 'node:events';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { CatalogSnapshot } from './api/catalog.ts';
import { formatPath } from './api/validate.ts';
import type { RouteStatus } from './compile/compile.ts';
import { Controller, type SourceName } from './control/controller.ts';
import { LastKnownGood } from './control/last-known-good.ts';
import { ConfigError } from './errors.ts';
import type { AccessLogSettings } from './observe/access-log.ts';
import { createAdminServer } from './observe/admin.ts';
import { createLogger, type Logger } from './observe/log.ts';
import { MetricsHub } from './observe/metrics.ts';
import { observeProxy } from './observe/proxy-observability.ts';
import { SourceHealth } from './observe/source-health.ts';
import { ProxyPipeline } from './proxy/proxy.ts';
import { createProxyServer } from './proxy/server.ts';
import { FileCatalogSource, FileRouteSource } from './sources/file/file-source.ts';

export interface RunOptions {
  listen: string;
  admin: string;
  routes?: string;
  catalog?: string;
  stateDir?: string;
  logLevel: string;
  /** Local datacenter for consul backends without one (standalone: default dc1). */
  datacenter?: string;
  trustedHops?: number;
  logger?: Logger;
  /** Access log settings (default: on, every request, user-agent only). */
  accessLog?: AccessLogSettings;
}

export interface RunningGateway {
  proxyAddress: AddressInfo;
  adminAddress: AddressInfo;
  controller: Controller;
  proxy: ProxyPipeline;
  stop(): Promise<void>;
}

/** `:8080`, `8080`, `127.0.0.1:8080`, `[::1]:8080` → host (undefined: every interface) and port. */
export function parseListen(value: string, flag: string): { host: string | undefined; port: number } {
  const m = /^(?:\[([0-9a-fA-F:.]+)\]|([^:[\]]*))?:?(\d{1,5})$/.exec(value.trim());
  const port = m ? Number(m[3]) : Number.NaN;
  if (!m || !(port >= 0 && port <= 65535)) {
    throw new ConfigError(
      `${flag}: invalid address ${JSON.stringify(value)} (expected :PORT, HOST:PORT or [IPv6]:PORT)`,
    );
  }
  const host = m[1] ?? (m[2] === '' || m[2] === undefined ? undefined : m[2]);
  return { host, port };
}

async function listen(server: Server, value: string, flag: string): Promise<AddressInfo> {
  const { host, port } = parseListen(value, flag);
  server.listen({ port, host });
  await Promise.race([
    once(server, 'listening'),
    once(server, 'error').then(([err]) => {
      throw new ConfigError(`${flag}: cannot listen on ${value}: ${(err as Error).message}`);
    }),
  ]);
  return server.address() as AddressInfo;
}

/** One log line per problem, naming the route, the file and line, and the field. */
export function describeStatus(s: RouteStatus): string[] {
  const file = s.origin.replace(/:\d+$/, '');
  const lines = s.errors.map(
    (e) =>
      `${e.line !== undefined ? `${file}:${e.line}` : s.origin}: ${s.route}: ${formatPath(e.path)}: ${e.message}`,
  );
  for (const u of s.unresolved) lines.push(`${s.origin}: ${s.route}: unresolved: ${u}`);
  return lines;
}

export async function runGateway(opts: RunOptions): Promise<RunningGateway> {
  const log = opts.logger ?? createLogger(opts.logLevel);
  if (!opts.routes) throw new ConfigError('no route source: give --routes PATH (standalone) or --kube');
  const proxy = new ProxyPipeline({ trustedHops: opts.trustedHops ?? 0 });
  const expect: SourceName[] = ['routes'];
  if (opts.catalog) expect.push('catalog');
  const sources = new SourceHealth();
  for (const name of expect) sources.expect(name);
  let catalog: CatalogSnapshot | undefined;
  let hub: MetricsHub | undefined;
  const reported = new Map<string, string>();
  const controller = new Controller({
    expect,
    lastKnownGood: opts.stateDir ? new LastKnownGood(opts.stateDir) : undefined,
    onCompiled: (ms) => hub?.compileDuration.observe(ms / 1000),
    publish: (table) => {
      proxy.setTable(table);
      hub?.published();
      log.info('table published', {
        version: table.version,
        hash: table.hash,
        entries: table.entries.length,
        clusters: table.clusters.length,
      });
    },
    onStatuses: (statuses) => {
      // Log each route's problems once, when they change.
      const seen = new Set<string>();
      for (const s of statuses) {
        seen.add(s.route + s.origin);
        const text = describeStatus(s).join('\n');
        if (reported.get(s.route + s.origin) === text) continue;
        reported.set(s.route + s.origin, text);
        if (!s.accepted)
          log.error(`route ${s.route} is invalid and skipped`, {
            route: s.route,
            problems: describeStatus(s),
          });
        else if (s.unresolved.length > 0)
          log.warn(`route ${s.route} has unresolved backends`, {
            route: s.route,
            problems: describeStatus(s),
          });
        else if (text === '' && reported.has(s.route + s.origin)) log.debug(`route ${s.route} accepted`);
      }
      for (const k of reported.keys()) if (!seen.has(k)) reported.delete(k);
    },
    onError: (err) => log.error(`rebuild failed: ${(err as Error).stack ?? err}`),
  });

  const restored = await controller.restore();
  if (restored)
    log.info('serving the last-known-good table until sources sync', { version: restored.version });

  const routeSource = new FileRouteSource(opts.routes, log);
  const catalogSource = opts.catalog ? new FileCatalogSource(opts.catalog, log, opts.datacenter) : undefined;
  const observed = observeProxy({
    proxy,
    table: () => controller.current,
    worker: '0',
    accessLog: opts.accessLog,
    processMetrics: false,
  });
  hub = new MetricsHub({
    collect: async () => ({ answers: [await observed.metrics.snapshot()], live: [process.pid] }),
    table: () => controller.current,
    catalog: () => catalog,
    workers: () => ({
      live: 1,
      current: proxy.version === (controller.current?.version ?? -1) ? 1 : 0,
      restarts: 0,
    }),
    sources,
  });
  const metricsHub = hub;
  if (catalogSource)
    await catalogSource.start((c) => {
      catalog = c;
      sources.reported('catalog');
      controller.setCatalog(c);
    });
  await routeSource.start((r) => {
    sources.reported('routes');
    controller.setRoutes(r);
  });
  await controller.rebuild();

  const proxyServer = createProxyServer(proxy);
  const admin = createAdminServer({
    readiness: () => {
      const reasons: string[] = [];
      if (!controller.synced) reasons.push('sources have not synced yet');
      if (proxy.version === 0) reasons.push('no routing table served yet');
      return { ready: reasons.length === 0, reasons };
    },
    routes: () => ({
      version: proxy.version,
      table: controller.current,
      statuses: controller.statuses.map((s) => ({ ...s, problems: describeStatus(s) })),
    }),
    metrics: () => metricsHub.scrape(),
    upstreams: () => metricsHub.upstreams(),
  });
  const proxyAddress = await listen(proxyServer, opts.listen, '--listen');
  const adminAddress = await listen(admin, opts.admin, '--admin');
  log.info('edgegate is serving', { listen: proxyAddress, admin: adminAddress });

  return {
    proxyAddress,
    adminAddress,
    controller,
    proxy,
    async stop() {
      controller.stop();
      routeSource.stop();
      catalogSource?.stop();
      proxyServer.close();
      admin.close();
      proxyServer.closeIdleConnections();
      admin.closeAllConnections();
      await proxy.close();
      proxyServer.closeAllConnections();
      observed.stop();
    },
  };
}
