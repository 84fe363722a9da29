/**
 * One worker's data plane, the one assembly of it: policies → proxy pipeline → the HTTP listener (or the HTTPS
 * redirector on it) and the HTTPS listener, with their recording (metrics snapshot, access log).
 *
 * Both process shapes build exactly this: a worker process (`worker.ts`, which adds the IPC with the primary,
 * signals and the watchdog's heartbeat around it) and the single process of `--workers 0` (`run.ts`). What
 * differs between them is passed in: how pod-wide policy state is shared (over IPC with the primary, or in this
 * process), the `worker` label, and whether this process reports Node's own metrics.
 */
import type { AddressInfo } from 'node:net';
import type { CertSet } from '../api/certificate.ts';
import type { PolicyCoordinator } from '../cluster/policy-state.ts';
import type { Logger } from '../lib/log.ts';
import type { PolicySettings } from '../table/policy-types.ts';
import type { TableData } from '../table/types.ts';
import type { AccessLogSettings } from './observe/access-log.ts';
import type { TracingSettings } from './observe/tracing-settings.ts';
import { PolicyRuntime } from './policy/policy-runtime.ts';
import { ProxyPipeline, type ProxySettings } from './proxy/proxy.ts';
import {
  createProxyServer,
  type DrainOptions,
  type DrainResult,
  drainServer,
  type ListenerSettings,
  type ListenOptions,
  listenProxyServer,
} from './proxy/server.ts';
import { observeProxy, type ProxyObservability } from './proxy-observability.ts';
import { acceptH2c } from './tls/h2c-listener.ts';
import { HttpsRedirector } from './tls/https-redirect.ts';
import { TlsListener } from './tls/tls-listener.ts';
import type { TlsListenerSettings } from './tls/tls-settings.ts';

export interface DataPlaneSettings {
  /** ProxyPipeline settings (the pipeline fills in its defaults). */
  proxy: Partial<ProxySettings>;
  /** Pod-wide policy settings (IP lists, trusted hops, secrets dir, overload thresholds, workers). */
  policy: Partial<PolicySettings>;
  listener: Partial<ListenerSettings>;
  accessLog?: AccessLogSettings;
  /** OpenTelemetry tracing (absent or disabled: off, no per-request trace objects). */
  tracing?: TracingSettings;
  /** The HTTPS listener's settings (absent: no HTTPS listener). Certificates arrive through `applyCerts`. */
  tls?: Partial<TlsListenerSettings>;
  /** Every request on the HTTP listener is redirected to HTTPS with this status (absent: proxied as usual). */
  httpsRedirect?: { statusCode: 301 | 308; port: number };
}

export interface DataPlaneIdentity {
  /** `worker` label of this process's metrics (the slot, so a replacement keeps it; `0` for one process). */
  worker: string;
  /** Report Node's default process metrics (off when the primary is this same process and reports them). */
  processMetrics: boolean;
}

export class DataPlane {
  readonly policies: PolicyRuntime;
  readonly proxy: ProxyPipeline;
  /** The HTTP listener's server (the proxy, or the HTTPS redirector). */
  readonly server;
  /** The HTTPS listener, when configured. */
  readonly tls: TlsListener | undefined;
  readonly #observed: ProxyObservability;
  #table: TableData | undefined;
  #tlsListening = false;

  constructor(
    settings: DataPlaneSettings,
    coordinator: PolicyCoordinator,
    log: Logger,
    id: DataPlaneIdentity,
  ) {
    this.policies = new PolicyRuntime(settings.policy, coordinator, log);
    this.proxy = new ProxyPipeline(settings.proxy, this.policies);
    this.tls = settings.tls ? new TlsListener(this.proxy, settings.tls, log, settings.listener) : undefined;
    this.#observed = observeProxy({
      proxy: this.proxy,
      table: () => this.#table,
      worker: id.worker,
      accessLog: settings.accessLog,
      ...(settings.tracing ? { tracing: settings.tracing, log } : {}),
      processMetrics: id.processMetrics,
      policies: () => this.policies.stats(),
      // An HTTPS listener that never listened (no certificates) has nothing to report.
      tls: () => (this.#tlsListening ? this.tls?.stats.snapshot() : undefined),
    });
    const r = settings.httpsRedirect;
    this.server = createProxyServer(
      r ? new HttpsRedirector(r.statusCode, r.port) : this.proxy,
      settings.listener,
    );
    // `--h2c`: cleartext HTTP/2 with prior knowledge on the HTTP listener too (not when it only redirects).
    if (settings.listener.h2c && !r) acceptH2c(this.server, this.proxy, settings.listener, settings.tls);
  }

  /** The table this data plane serves (undefined until the first one). */
  get table(): TableData | undefined {
    return this.#table;
  }

  /** Swaps the routing table in between requests. */
  setTable(table: TableData): void {
    this.proxy.setTable(table);
    this.#table = table;
  }

  /**
   * Serving certificates to the HTTPS listener; client certificates (mTLS to upstreams) and the Consul mesh
   * identity (leaf and roots) to the pools.
   */
  applyCerts(set: CertSet): void {
    this.tls?.applyCerts(set);
    this.proxy.pools.clientCertificates.set(set.clients, set.mesh);
  }

  /** Opens the HTTP listener; rejects with the listen error (EADDRINUSE…). */
  listen(at: ListenOptions): Promise<AddressInfo> {
    return listenProxyServer(this.server, at);
  }

  /** Opens the HTTPS listener (configured in the settings); rejects with the listen error. */
  async listenTls(at: ListenOptions): Promise<AddressInfo> {
    if (!this.tls) throw new Error('no HTTPS listener is configured');
    const address = await this.tls.listen(at);
    this.#tlsListening = true;
    return address;
  }

  /** The metrics snapshot of this process (the primary merges the workers'). */
  metricsSnapshot() {
    return this.#observed.metrics.snapshot();
  }

  /** Exports the spans still held (tracing on); resolves at once when tracing is off. */
  flushTraces(): Promise<void> {
    return this.#observed.flush();
  }

  /**
   * Both listeners stop taking connections after `delayMs`; requests in flight finish up to `timeoutMs`, the rest
   * are cut (counted). The pools stay open: `close()` ends them.
   */
  async drain(opts: DrainOptions): Promise<DrainResult> {
    const [result, tlsResult] = await Promise.all([
      drainServer(this.server, opts),
      this.#tlsListening ? this.tls?.drain(opts) : undefined,
    ]);
    result.cut += tlsResult?.cut ?? 0;
    return result;
  }

  /** Closes everything at once (tests, `stop()`): listeners, connections, pools, recording. */
  async close(): Promise<void> {
    this.tls?.close();
    this.server.close();
    this.server.closeIdleConnections();
    await this.proxy.close();
    this.server.closeAllConnections();
    this.#observed.stop();
  }
}
