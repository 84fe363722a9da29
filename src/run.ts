/**
 * `edgegate run`: wires the sources (files, Consul, Kubernetes) → controller → proxy, and the admin server.
 *
 * Two shapes: `runClusterGateway` (the production one: this process is the primary — sources, compile, publish,
 * admin — and N worker processes proxy) and `runGateway` (`--workers 0`: everything in this one process, for
 * tests and debugging).
 */
import { once } from 'node:events';
import { type AddressInfo, createServer as createNetServer } from 'node:net';
import { LocalCoordinator } from './cluster/policy-state.ts';
import { ClusterPrimary } from './cluster/primary.ts';
import { DEFAULT_BLOCK_TIMEOUT_MS, watchdogSettings } from './cluster/watchdog.ts';
import { type AdminState, openAdminListeners } from './control/admin.ts';
import type { CertManager } from './control/certificates/cert-manager.ts';
import {
  type ControlPlane,
  type ControlPlaneOptions,
  createControlPlane,
  lastKnownGoodNotes,
  secretCertificatesOn,
  secretValues,
  startCertificates,
} from './control/control-plane.ts';
import type { Controller } from './control/controller.ts';
import { startRateLimitStore } from './control/rate-limit-store-setup.ts';
import type { KubeSources } from './control/start-kube.ts';
import { DataPlane } from './dataplane/data-plane.ts';
import type { AccessLogSettings } from './dataplane/observe/access-log.ts';
import type { TracingSettings } from './dataplane/observe/tracing-settings.ts';
import { holdEventLoopBusy } from './dataplane/policy/overload-guard.ts';
import { installProcessSafetyNet } from './dataplane/proxy/edge-events.ts';
import type { ProxyPipeline, ProxySettings } from './dataplane/proxy/proxy.ts';
import type { ListenerSettings } from './dataplane/proxy/server.ts';
import type { TlsListener } from './dataplane/tls/tls-listener.ts';
import type { TlsListenerSettings } from './dataplane/tls/tls-settings.ts';
import type { WorkerConfig } from './dataplane/worker-config.ts';
import { ConfigError } from './lib/errors.ts';
import { createLogger, type Logger } from './lib/log.ts';
import type { PolicySettings } from './table/policy-types.ts';

export interface RunOptions extends ControlPlaneOptions {
  listen: string;
  /** `/healthz`, `/readyz`, `/metrics` (and `/debug/*` when this is a loopback address). */
  admin: string;
  /** `/debug/*`: an address, `off`, or undefined (loopback `--admin`, else 127.0.0.1:9902); see control/admin.ts. */
  adminDebug?: string;
  logLevel: string;
  trustedHops?: number;
  /** Pod-wide policy settings: global IP lists, secrets dir, overload thresholds, test hooks. */
  policy?: Partial<PolicySettings>;
  logger?: Logger;
  /** HTTPS listener address (default `:8443`); it opens only when certificates are configured. */
  listenTls?: string;
  /** Edge flags (src/dataplane/proxy/edge-flags.ts): client timeouts, limits and request checks of the listener. */
  listenerSettings?: Partial<ListenerSettings>;
  /** Edge flags: upstream timeouts, retry budget, WebSocket idle time, encoded slashes. */
  proxySettings?: Partial<ProxySettings>;
  tlsSettings?: Partial<TlsListenerSettings>;
  /** `--https-redirect`: the HTTP listener redirects everything to HTTPS. */
  httpsRedirect?: { statusCode: 301 | 308; port: number };
  /** Access log settings (default: on, every request, user-agent only). */
  accessLog?: AccessLogSettings;
  /** OpenTelemetry tracing (absent or disabled: off). */
  tracing?: TracingSettings;
}

export interface DrainSettings {
  /** Listeners stay open this long after readiness fails, so endpoint removal propagates upstream. */
  delayMs: number;
  /** Total budget from the signal: in-flight requests still running then are cut. */
  timeoutMs: number;
}

export const DEFAULT_DRAIN: DrainSettings = { delayMs: 5_000, timeoutMs: 25_000 };

export interface ClusterRunOptions extends RunOptions {
  /** Proxy worker processes (≥ 1). */
  workers: number;
  /** SO_REUSEPORT listeners (default: on Linux, FreeBSD; elsewhere the cluster's shared handle). */
  reusePort?: boolean;
  /** What a worker does when it alone gets SIGTERM (the primary's drain normally decides). */
  drain?: DrainSettings;
  /** `--worker-block-timeout`: a worker whose event loop is blocked this long is replaced (0: never; default 5 s). */
  workerBlockTimeoutMs?: number;
}

interface Running {
  adminAddress: AddressInfo;
  /** The loopback debug listener (`--admin-debug`), when it is separate from `--admin`. */
  adminDebugAddress: AddressInfo | undefined;
  controller: Controller;
  /** The Kubernetes source, leader election and status writer (with --kube). */
  kube?: KubeSources;
  /** Readiness fails at once; listeners close after the delay; in-flight requests finish up to the timeout. */
  drain(settings: DrainSettings): Promise<{ clean: boolean }>;
  stop(): Promise<void>;
}

export interface RunningGateway extends Running {
  proxyAddress: AddressInfo;
  proxy: ProxyPipeline;
  /** HTTPS listener address (undefined: no certificates configured, no listener). */
  tlsAddress: AddressInfo | undefined;
  tls: TlsListener;
  certificates: CertManager | undefined;
}

export interface RunningCluster extends Running {
  proxyAddress: { address: string; port: number };
  primary: ClusterPrimary;
  certificates: CertManager | undefined;
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

/** Where SO_REUSEPORT exists (Node: Linux 3.9+, FreeBSD 12+, DragonFlyBSD, Solaris 11.4, AIX 7.2.5). */
export function platformHasReusePort(platform: NodeJS.Platform = process.platform): boolean {
  return ['linux', 'freebsd', 'sunos', 'aix'].includes(platform);
}

/** The one process's listeners, each failure named after its flag. */
async function listenDataPlane(
  data: DataPlane,
  opts: RunOptions,
  https: boolean,
): Promise<{ proxyAddress: AddressInfo; tlsAddress: AddressInfo | undefined }> {
  const at = { ...parseListen(opts.listen, '--listen'), reusePort: false };
  const tlsAt = https
    ? { ...parseListen(opts.listenTls ?? ':8443', '--listen-tls'), reusePort: false }
    : undefined;
  let proxyAddress: AddressInfo;
  try {
    proxyAddress = await data.listen(at);
  } catch (err) {
    throw new ConfigError(`--listen: cannot listen on ${opts.listen}: ${(err as Error).message}`);
  }
  if (!tlsAt) return { proxyAddress, tlsAddress: undefined };
  try {
    return { proxyAddress, tlsAddress: await data.listenTls(tlsAt) };
  } catch (err) {
    throw new ConfigError(`--listen-tls: cannot listen on ${opts.listenTls}: ${(err as Error).message}`);
  }
}

/** Everything in this process (`--workers 0`): tests, debugging, platforms without fork. */
export async function runGateway(opts: RunOptions): Promise<RunningGateway> {
  const log = opts.logger ?? createLogger(opts.logLevel);
  installProcessSafetyNet(log);
  const trustedHops = opts.trustedHops ?? 0;
  const coordinator = new LocalCoordinator();
  const data = new DataPlane(
    {
      proxy: { ...opts.proxySettings, trustedHops },
      policy: { ...opts.policy, trustedHops, workers: 1 },
      listener: opts.listenerSettings ?? {},
      accessLog: opts.accessLog,
      ...(opts.tracing ? { tracing: opts.tracing } : {}),
      // The HTTPS listener exists from the start (certificates may come later from Secrets); it listens only
      // when certificates are configured.
      tls: opts.tlsSettings ?? {},
      ...(opts.httpsRedirect ? { httpsRedirect: opts.httpsRedirect } : {}),
    },
    coordinator,
    log,
    { worker: '0', processMetrics: false },
  );
  const { proxy, policies } = data;
  const tls = data.tls!;
  const certs = await startCertificates(opts, log, (set) => data.applyCerts(set));
  const plane = createControlPlane(opts, log, (table) => data.setTable(table), certs?.manager);
  const { controller } = plane;
  const hub = plane.metrics(
    async () => ({ answers: [await data.metricsSnapshot()], live: [process.pid] }),
    () => ({ live: 1, current: proxy.version === (controller.current?.version ?? -1) ? 1 : 0, restarts: 0 }),
  );
  const limitStore = opts.redis ? startRateLimitStore(opts.redis, log, hub.registry) : undefined;
  coordinator.state.store = limitStore?.store;
  await plane.start();

  let draining = false;
  const adminState: AdminState = {
    secrets: () => secretValues(opts),
    readiness: () => {
      const reasons: string[] = [];
      if (draining) reasons.push('draining: the gateway is shutting down');
      if (proxy.version === 0) reasons.push('no routing table served yet');
      reasons.push(...plane.waitingReasons(proxy.version));
      return {
        ready: reasons.length === 0,
        reasons,
        notes: [
          ...lastKnownGoodNotes(controller, proxy.version, plane.lastKnownGood),
          ...(limitStore?.notes() ?? []),
        ],
      };
    },
    routes: () => plane.routesView(proxy.version),
    workers: () => ({
      mode: 'single-process',
      pid: process.pid,
      version: proxy.version,
      policies: policies.stats(),
    }),
    sources: () => plane.sourcesView(),
    metrics: (openMetrics) => hub.scrape(openMetrics),
    upstreams: () => hub.upstreams(),
    ...(policies.settings.testHooks
      ? { testBusy: (ms: number, blockMs: number) => holdEventLoopBusy(ms, blockMs) }
      : {}),
  };
  const { proxyAddress, tlsAddress } = await listenDataPlane(data, opts, certs?.serving === true);
  const admin = await openAdminListeners(adminState, opts, parseListen, (m, meta) => log.warn(m, meta));
  const adminAddress = admin.address;
  log.info('edgegate is serving', {
    listen: proxyAddress,
    listenTls: tlsAddress,
    admin: adminAddress,
    adminDebug: admin.debugAddress ?? admin.debug,
    workers: 0,
  });

  return {
    proxyAddress,
    tlsAddress,
    tls,
    certificates: certs?.manager,
    adminAddress,
    adminDebugAddress: admin.debugAddress,
    controller,
    ...(plane.kube ? { kube: plane.kube } : {}),
    proxy,
    async drain(settings) {
      draining = true;
      log.info('draining', { ...settings });
      certs?.stop();
      await plane.stop();
      const r = await data.drain(settings);
      if (r.cut > 0) log.warn('drain timeout: cut requests still running', { cut: r.cut });
      await Promise.race([data.flushTraces(), new Promise((done) => setTimeout(done, 5_000).unref())]);
      await limitStore?.close();
      log.info('drained', { ms: r.ms, cut: r.cut });
      return { clean: r.cut === 0 };
    },
    async stop() {
      certs?.stop();
      await plane.stop();
      admin.close();
      await data.close();
      await limitStore?.close();
    },
  };
}

/** A free TCP port on this host, for `--listen :0` with SO_REUSEPORT workers (each must bind the same one). */
async function pickPort(host: string | undefined): Promise<number> {
  const probe = createNetServer();
  probe.listen({ host, port: 0 });
  await once(probe, 'listening');
  const { port } = probe.address() as AddressInfo;
  await new Promise((r) => probe.close(r));
  return port;
}

/** The production shape: this process is the primary; `workers` processes proxy. */
export async function runClusterGateway(opts: ClusterRunOptions): Promise<RunningCluster> {
  const log = opts.logger ?? createLogger(opts.logLevel);
  const listenAt = parseListen(opts.listen, '--listen');
  const reusePort = opts.reusePort ?? platformHasReusePort();
  // Port 0: every SO_REUSEPORT worker must bind the same port, so choose it once here.
  if (listenAt.port === 0 && reusePort) listenAt.port = await pickPort(listenAt.host);
  const hasCerts =
    (opts.tlsCerts?.length ?? 0) > 0 || opts.tlsDefaultCert !== undefined || secretCertificatesOn(opts);
  const tlsAt = hasCerts ? parseListen(opts.listenTls ?? ':8443', '--listen-tls') : undefined;
  if (tlsAt && tlsAt.port === 0 && reusePort) tlsAt.port = await pickPort(tlsAt.host);
  const config: WorkerConfig = {
    host: listenAt.host,
    port: listenAt.port,
    reusePort,
    proxy: { ...opts.proxySettings, trustedHops: opts.trustedHops ?? 0 },
    policy: { ...opts.policy, trustedHops: opts.trustedHops ?? 0, workers: opts.workers },
    listener: opts.listenerSettings ?? {},
    logLevel: opts.logLevel,
    drain: opts.drain ?? DEFAULT_DRAIN,
    accessLog: opts.accessLog,
    ...(opts.tracing?.enabled ? { tracing: opts.tracing } : {}),
    ...(tlsAt ? { tls: { host: tlsAt.host, port: tlsAt.port, settings: opts.tlsSettings ?? {} } } : {}),
    ...(opts.httpsRedirect ? { httpsRedirect: opts.httpsRedirect } : {}),
  };
  let plane: ControlPlane | undefined;
  const primary = new ClusterPrimary({
    workers: opts.workers,
    config,
    log,
    watchdog: watchdogSettings(opts.workerBlockTimeoutMs ?? DEFAULT_BLOCK_TIMEOUT_MS),
    onServed: (version) => plane?.served(version),
  });
  const certs = await startCertificates(opts, log, (set) => primary.publishCerts(set));
  plane = createControlPlane(opts, log, (table) => primary.publish(table), certs?.manager, false);
  const { controller } = plane;
  const hub = plane.metrics(
    (timeoutMs) => primary.collectWorkerMetrics(timeoutMs),
    () => {
      const all = primary.workers();
      const current = primary.version;
      return {
        live: all.filter((w) => w.pid !== undefined).length,
        current: all.filter((w) => w.pid !== undefined && current !== 0 && w.version === current).length,
        restarts: primary.restarts,
        blocked: primary.blockedReplacements,
        heartbeatAges: primary.heartbeatAges(),
      };
    },
  );
  const limitStore = opts.redis ? startRateLimitStore(opts.redis, log, hub.registry) : undefined;
  primary.policyState.store = limitStore?.store;
  primary.start();
  await plane.start();

  const adminState: AdminState = {
    secrets: () => secretValues(opts),
    sources: () => plane.sourcesView(),
    readiness: () => {
      const r = primary.readiness();
      r.reasons.push(...plane.waitingReasons(primary.version));
      return {
        ready: r.reasons.length === 0,
        reasons: r.reasons,
        notes: [
          ...lastKnownGoodNotes(controller, primary.version, plane.lastKnownGood),
          ...primary.notes(),
          ...(limitStore?.notes() ?? []),
        ],
      };
    },
    routes: () => plane.routesView(primary.version),
    workers: async () => {
      // Live figures from each worker (asked over IPC), beside what the primary knows of it.
      const live = new Map((await primary.collectWorkerStats(500)).map((s) => [s.pid, s]));
      return {
        mode: 'cluster',
        pid: process.pid,
        ...primary.stats(),
        workers: primary.workers().map((w) => ({ ...w, stats: w.pid ? live.get(w.pid) : undefined })),
        policyState: primary.policyState.stats(),
      };
    },
    metrics: (openMetrics) => hub.scrape(openMetrics),
    upstreams: () => hub.upstreams(),
    ...(opts.policy?.testHooks
      ? {
          testBusy: (ms: number, blockMs: number, slot?: number) => primary.testBusy(ms, blockMs, slot),
        }
      : {}),
  };
  let admin: Awaited<ReturnType<typeof openAdminListeners>>;
  try {
    admin = await openAdminListeners(adminState, { ...opts, reusePort }, parseListen, (m, meta) =>
      log.warn(m, meta),
    );
  } catch (err) {
    await primary.drain({ delayMs: 0, timeoutMs: 1000 });
    await plane.stop();
    throw err;
  }
  const adminAddress = admin.address;
  let proxyAddress: { address: string; port: number };
  try {
    proxyAddress = await primary.listening();
  } catch (err) {
    await primary.drain({ delayMs: 0, timeoutMs: 1000 });
    admin.close();
    await plane.stop();
    throw new ConfigError(`--listen: cannot listen on ${opts.listen}: ${(err as Error).message}`);
  }
  log.info('edgegate is serving', {
    listen: proxyAddress,
    admin: adminAddress,
    adminDebug: admin.debugAddress ?? admin.debug,
    workers: opts.workers,
    reusePort,
  });

  return {
    proxyAddress,
    adminAddress,
    adminDebugAddress: admin.debugAddress,
    controller,
    ...(plane.kube ? { kube: plane.kube } : {}),
    primary,
    certificates: certs?.manager,
    async drain(settings) {
      log.info('draining', { ...settings, workers: primary.stats().live });
      certs?.stop();
      await plane.stop();
      const r = await primary.drain(settings);
      await limitStore?.close();
      log.info('drained', { clean: r.clean });
      return r;
    },
    async stop() {
      certs?.stop();
      await plane.stop();
      await primary.drain({ delayMs: 0, timeoutMs: 2000 });
      admin.close();
      await limitStore?.close();
    },
  };
}
