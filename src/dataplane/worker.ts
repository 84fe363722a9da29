/**
 * A proxy worker process: receives routing tables from the primary over IPC, swaps each one in between requests,
 * acknowledges its version, and listens only once it holds its first table. Drains on the primary's `drain`
 * message (or its own SIGTERM/SIGINT, e.g. Ctrl-C reaching the whole process group) and exits 0.
 */
import cluster from 'node:cluster';
import {
  type DrainMessage,
  isPrimaryMessage,
  type PrimaryMessage,
  WORKER_CONFIG_ENV,
  type WorkerMessage,
} from '../cluster/protocol.ts';
import { createLogger, type Logger } from '../lib/log.ts';
import type { TableData } from '../table/types.ts';
import { decodeTable } from '../table/wire.ts';
import { IpcCoordinator } from './policy/ipc-coordinator.ts';
import { holdEventLoopBusy } from './policy/overload-guard.ts';
import { PolicyRuntime } from './policy/policy-runtime.ts';
import { installProcessSafetyNet } from './proxy/edge-events.ts';
import { ProxyPipeline } from './proxy/proxy.ts';
import { createProxyServer, drainServer, listenerStats, listenProxyServer } from './proxy/server.ts';
import { observeProxy, type ProxyObservability } from './proxy-observability.ts';
import { acceptH2c } from './tls/h2c-listener.ts';
import { HttpsRedirector } from './tls/https-redirect.ts';
import { TlsListener } from './tls/tls-listener.ts';
import type { WorkerConfig } from './worker-config.ts';

/** When the primary disappears without a drain (killed), the worker stops this fast. */
const ORPHAN_DRAIN: Omit<DrainMessage, 'type'> = { delayMs: 0, timeoutMs: 5_000 };

/** How long a signalled worker waits for the primary's drain message before draining on its own. */
const SIGNAL_GRACE_MS = 1_000;

function send(message: WorkerMessage): boolean {
  if (!process.connected || !process.send) return false;
  process.send(message);
  return true;
}

export function readWorkerConfig(env: NodeJS.ProcessEnv = process.env): WorkerConfig {
  const text = env[WORKER_CONFIG_ENV];
  if (!text) throw new Error(`${WORKER_CONFIG_ENV} is not set: this module runs only as a cluster worker`);
  return JSON.parse(text) as WorkerConfig;
}

export class ProxyWorker {
  readonly #config: WorkerConfig;
  readonly #log: Logger;
  readonly #proxy: ProxyPipeline;
  readonly #coordinator: IpcCoordinator;
  readonly #policies: PolicyRuntime;
  readonly #server;
  readonly #observed: ProxyObservability;
  #table: TableData | undefined;
  /** The HTTPS listener, when configured. */
  readonly #tls: TlsListener | undefined;
  #listening: Promise<void> | undefined;
  #draining: Promise<void> | undefined;

  constructor(config: WorkerConfig, log: Logger) {
    this.#config = config;
    this.#log = log;
    this.#coordinator = new IpcCoordinator((m) => send(m));
    this.#policies = new PolicyRuntime(config.policy ?? {}, this.#coordinator, log);
    this.#proxy = new ProxyPipeline(config.proxy, this.#policies);
    this.#observed = observeProxy({
      proxy: this.#proxy,
      table: () => this.#table,
      // The slot, not the pid: a replacement worker keeps the label (bounded across restarts).
      worker: process.env.EDGEGATE_WORKER_SLOT ?? String(cluster.worker?.id ?? process.pid),
      accessLog: config.accessLog,
      processMetrics: true,
      policies: () => this.#policies.stats(),
      tls: () => this.#tls?.stats.snapshot(),
    });
    const r = config.httpsRedirect;
    this.#server = createProxyServer(
      r ? new HttpsRedirector(r.statusCode, r.port) : this.#proxy,
      config.listener,
    );
    this.#tls = config.tls
      ? new TlsListener(this.#proxy, config.tls.settings, log, config.listener)
      : undefined;
    if (config.listener.h2c && !r)
      acceptH2c(this.#server, this.#proxy, config.listener, config.tls?.settings);
  }

  /** Installs the IPC and signal handlers and greets the primary, which answers with the current table. */
  start(): void {
    process.on('message', (m: unknown) => {
      if (isPrimaryMessage(m)) this.#onMessage(m);
    });
    process.once('disconnect', () => {
      this.#log.warn('primary is gone; draining');
      void this.drain(ORPHAN_DRAIN);
    });
    // A signal to the whole process group (Ctrl-C, `timeout`, an init that signals the group) reaches the primary
    // too, and its drain message follows at once: wait for it, so the primary's drain delay holds. A signal meant
    // for this worker alone gets no such message: drain on our own after a short grace.
    const onSignal = (signal: string) => {
      if (this.#draining) return;
      this.#log.info(`${signal} received; draining unless the primary does`);
      setTimeout(() => void this.drain(this.#config.drain), SIGNAL_GRACE_MS).unref();
    };
    process.on('SIGINT', () => onSignal('SIGINT'));
    process.on('SIGTERM', () => onSignal('SIGTERM'));
    send({ type: 'hello', pid: process.pid });
    // The watchdog's heartbeat: a timer of this event loop, so it stops when the loop is blocked.
    const beatMs = this.#config.watchdog?.heartbeatMs ?? 0;
    if (beatMs > 0) setInterval(() => send({ type: 'heartbeat' }), beatMs).unref();
  }

  #onMessage(m: PrimaryMessage): void {
    switch (m.type) {
      case 'policy-reply':
        return this.#coordinator.onReply(m);
      case 'test-busy':
        // Test hook: only with EDGEGATE_TEST_HOOKS=1 (the primary sends it only then, and the worker checks too).
        if (this.#policies.settings.testHooks)
          holdEventLoopBusy(m.ms, m.blockMs, () =>
            this.#log.info('test hook: busy period over', { ms: m.ms, blockMs: m.blockMs }),
          );
        return;
      case 'table':
        return this.#applyTable(m.version, m.hash, m.json);
      case 'certs':
        this.#tls?.applyCerts(m.set);
        this.#proxy.pools.clientCertificates.set(m.set.clients);
        return;
      case 'drain':
        void this.drain(m);
        return;
      case 'stats-request': {
        const l = listenerStats(this.#server);
        const mem = process.memoryUsage();
        send({
          type: 'stats',
          id: m.id,
          stats: {
            pid: process.pid,
            version: this.#proxy.version,
            requests: l.requests,
            inFlight: l.inFlight,
            connections: l.connections,
            draining: l.draining,
            pools: this.#proxy.pools.size,
            policies: this.#policies.stats(),
            memory: { rss: mem.rss, heapUsed: mem.heapUsed },
            ...(this.#tls ? { tls: this.#tls.figures() } : {}),
          },
        });
        return;
      }
      case 'metrics-request':
        void this.#observed.metrics.snapshot().then(
          (snapshot) => send({ type: 'metrics', id: m.id, snapshot }),
          (err) => this.#log.warn('cannot take a metrics snapshot', { error: (err as Error).message }),
        );
        return;
    }
  }

  #applyTable(version: number, hash: string, json: string): void {
    const started = performance.now();
    try {
      const data = decodeTable(json, version, hash);
      this.#proxy.setTable(data);
      this.#table = data;
    } catch (err) {
      this.#log.error('cannot apply routing table', { version, error: (err as Error).message });
      send({ type: 'table-error', version, message: (err as Error).message });
      return;
    }
    send({ type: 'table-ack', version, applyMs: performance.now() - started });
    // The first table is in place: only now may this worker take traffic.
    this.#listening ??= this.#listen();
  }

  async #listen(): Promise<void> {
    if (this.#draining) return;
    const { host, port, reusePort } = this.#config;
    try {
      const address = await listenProxyServer(this.#server, { host, port, reusePort });
      const t = this.#config.tls;
      const tlsAddress = t && (await this.#tls!.listen({ host: t.host, port: t.port, reusePort }));
      send({ type: 'listening', address, reusePort, ...(tlsAddress ? { tlsAddress } : {}) });
    } catch (err) {
      const e = err as NodeJS.ErrnoException;
      send({ type: 'listen-error', message: e.message, code: e.code });
      // Exit code 2: a configuration problem, not a crash to retry at once.
      process.exitCode = 2;
      process.disconnect?.();
      setImmediate(() => process.exit(2));
    }
  }

  drain(opts: Omit<DrainMessage, 'type'>): Promise<void> {
    this.#draining ??= (async () => {
      send({ type: 'draining' });
      const started = Date.now();
      const [result, tlsResult] = await Promise.all([
        drainServer(this.#server, {
          delayMs: opts.delayMs,
          timeoutMs: opts.timeoutMs,
          onListenerClosed: () => this.#log.debug('listener closed'),
        }),
        this.#tls?.drain(opts),
      ]);
      result.cut += tlsResult?.cut ?? 0;
      if (result.cut > 0) this.#log.warn('drain timeout: cut requests still running', { cut: result.cut });
      // Pools close gracefully; bounded by what is left of the budget.
      const left = Math.max(0, opts.timeoutMs - (Date.now() - started));
      await Promise.race([this.#proxy.close(), new Promise((r) => setTimeout(r, left).unref())]);
      this.#log.info('drained', { ms: Date.now() - started, cut: result.cut });
      process.exit(0);
    })();
    return this.#draining;
  }
}

/** Entry point of a worker process. */
export function runWorker(): void {
  const config = readWorkerConfig();
  const log = createLogger(config.logLevel, 'worker').child({
    worker: cluster.worker?.id,
    pid: process.pid,
  });
  // Nothing a client sends may end this process: what the listeners' guards miss is logged and counted here.
  installProcessSafetyNet(log);
  new ProxyWorker(config, log).start();
}
