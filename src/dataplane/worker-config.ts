/**
 * What a worker needs to start, built by the primary (src/run.ts) from the `run` flags and handed over by the
 * supervisor (src/cluster/primary.ts) in the `EDGEGATE_WORKER_CONFIG` environment variable as JSON, unread.
 */

import type { SupervisedConfig } from '../cluster/protocol.ts';
import type { PolicySettings } from '../table/policy-types.ts';
import type { AccessLogSettings } from './observe/access-log.ts';
import type { TracingSettings } from './observe/tracing-settings.ts';
import type { ListenerSettings } from './proxy/server.ts';
import type { TlsListenerSettings } from './tls/tls-settings.ts';

export interface WorkerConfig extends SupervisedConfig {
  /** Proxy listen address, already parsed. */
  host: string | undefined;
  port: number;
  /** Listen with SO_REUSEPORT on a socket of its own (kernel balancing) instead of the cluster's shared handle. */
  reusePort: boolean;
  /** ProxyPipeline settings (forwarded as given; the pipeline fills in its defaults). */
  proxy: Record<string, unknown>;
  listener: Partial<ListenerSettings>;
  /** Pod-wide policy settings (IP lists, trusted hops, secrets dir, overload thresholds). */
  policy?: Partial<PolicySettings>;
  logLevel: string;
  /** Drain used when the worker itself gets SIGTERM/SIGINT and no drain message follows (a targeted kill). */
  drain: { delayMs: number; timeoutMs: number };
  /** Access log of this worker (default: on, every request). */
  accessLog?: AccessLogSettings;
  /** OpenTelemetry tracing (absent or disabled: off). */
  tracing?: TracingSettings;
  /** The HTTPS listener (absent: none). Certificates arrive in `certs` messages. */
  tls?: { host: string | undefined; port: number; settings: Partial<TlsListenerSettings> };
  /** Every request on the HTTP listener is redirected to HTTPS with this status (absent: proxied as usual). */
  httpsRedirect?: { statusCode: 301 | 308; port: number };
}
