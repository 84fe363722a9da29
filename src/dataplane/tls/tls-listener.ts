/**
 * Everything one proxy process needs for HTTPS: the certificate store (fed by `certs` messages or, in a single
 * process, by the CertManager directly), the HTTP/2 + HTTP/1.1 secure server over the shared ProxyPipeline, and
 * the process's TLS counters. Used by cluster workers and by `--workers 0` alike.
 */
import type { AddressInfo } from 'node:net';
import type { CertSet } from '../../api/certificate.ts';
import type { Logger } from '../../lib/log.ts';
import { type ListenerSettings, listenProxyServer } from '../proxy/server.ts';
import { CertStore } from './cert-store.ts';
import {
  createHttpsProxyServer,
  drainHttpsServer,
  httpsListenerStats,
  type RequestHandler,
  refreshDefaultCertificate,
} from './https-server.ts';
import type { TlsListenerSettings } from './tls-settings.ts';
import { TlsStats } from './tls-stats.ts';

export class TlsListener {
  readonly store: CertStore;
  readonly stats = new TlsStats();
  readonly server;

  /** `listener`: the HTTP listener's edge settings (request checks, limits, client timeouts), applied here too. */
  constructor(
    proxy: RequestHandler,
    settings: Partial<TlsListenerSettings>,
    log: Logger,
    listener: Partial<ListenerSettings> = {},
  ) {
    this.store = new CertStore((bundle, err) =>
      log.error('certificate rejected; its hostnames keep the previous one', {
        source: bundle.source,
        error: err.message,
      }),
    );
    this.server = createHttpsProxyServer(proxy, this.store, this.stats, settings, listener);
  }

  applyCerts(set: CertSet): void {
    this.store.update(set);
    refreshDefaultCertificate(this.server, this.store);
  }

  listen(opts: { host: string | undefined; port: number; reusePort: boolean }): Promise<AddressInfo> {
    return listenProxyServer(this.server, opts);
  }

  drain(opts: { delayMs: number; timeoutMs: number }): Promise<{ cut: number; ms: number }> {
    return drainHttpsServer(this.server, opts);
  }

  figures() {
    return { ...this.stats.snapshot(), ...httpsListenerStats(this.server), certVersion: this.store.version };
  }

  close(): void {
    this.server.close();
  }
}
