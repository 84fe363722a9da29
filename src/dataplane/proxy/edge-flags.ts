/**
 * The data plane's edge defaults as `edgegate run` flags (each also an environment variable): client timeouts and
 * limits of the listener, the request checks (each can be turned off), the proxy's upstream timeouts, retry budget,
 * WebSocket idle time and passive outlier detection, and what one client may hold of the upstreams (client body
 * timeout, request buffering, send timeout, per-connection cap; docs/security.md). Absent flags keep the defaults
 * of server.ts / proxy.ts / outlier.ts.
 */
import { ConfigError } from '../../lib/errors.ts';
import { DEFAULT_OUTLIER_SETTINGS, type OutlierSettings } from './outlier.ts';
import { DEFAULT_PROXY_SETTINGS, type ProxySettings } from './proxy.ts';
import { DEFAULT_LISTENER_SETTINGS, type ListenerSettings } from './server.ts';

type Parse = (text: string, flag: string) => number | boolean | string;

export interface EdgeFlag {
  flag: string;
  env: string;
  help: string;
  /** Where the value goes (`outlier`: the proxy's outlier-detection settings). */
  target: 'listener' | 'proxy' | 'outlier';
  key: keyof ListenerSettings | keyof ProxySettings | keyof OutlierSettings;
  parse: 'duration' | 'count' | 'switch' | 'size' | 'choice';
  /** For a choice: the values accepted. */
  choices?: readonly string[];
  /** For a switch: the setting's value when the flag is given (the flags turn a default off). */
  whenSet?: boolean;
  /** For a count or a size: the largest value accepted (default 1,000,000). */
  max?: number;
}

/** `65536`, `64k`, `1m` → bytes (k and m are KiB and MiB). */
function parseSize(text: string, flag: string, max: number): number {
  const m = /^(\d+)([kKmM]?)$/.exec(text.trim());
  const n = m ? Number(m[1]) * (m[2] === '' ? 1 : /k/i.test(m[2]!) ? 1024 : 1024 * 1024) : Number.NaN;
  if (!(n <= max))
    throw new ConfigError(
      `${flag}: expected a size in bytes up to ${max} (like 65536, 64k or 1m), got ${JSON.stringify(text)}`,
    );
  return n;
}

export const EDGE_FLAGS: EdgeFlag[] = [
  {
    flag: '--upstream-client',
    env: 'EDGEGATE_UPSTREAM_CLIENT',
    help: 'HTTP client for cleartext HTTP/1.1 upstreams: raw (sockets + Node’s llhttp parser, docs/data-plane.md) or undici; TLS, HTTP/2, h2c and pipelining use undici either way',
    target: 'proxy',
    key: 'upstreamClient',
    parse: 'choice',
    choices: ['raw', 'undici'],
  },
  {
    flag: '--http1-server',
    env: 'EDGEGATE_HTTP1_SERVER',
    help: 'HTTP/1.1 server of the plain listener: raw (sockets + Node’s llhttp parser, docs/data-plane.md) or node (node:http); the HTTPS listener uses node:http either way',
    target: 'listener',
    key: 'http1Server',
    parse: 'choice',
    choices: ['raw', 'node'],
  },
  {
    flag: '--client-header-timeout',
    env: 'EDGEGATE_CLIENT_HEADER_TIMEOUT',
    help: 'time a client has to send the request headers (slowloris guard); HTTPS: also the TLS handshake and an HTTP/2 session’s first request',
    target: 'listener',
    key: 'headersTimeoutMs',
    parse: 'duration',
  },
  {
    flag: '--client-request-timeout',
    env: 'EDGEGATE_CLIENT_REQUEST_TIMEOUT',
    help: 'time a client has to send the whole request, body included; 0: none',
    target: 'listener',
    key: 'requestTimeoutMs',
    parse: 'duration',
  },
  {
    flag: '--client-keepalive-timeout',
    env: 'EDGEGATE_CLIENT_KEEPALIVE_TIMEOUT',
    help: 'idle keep-alive time of client connections; keep it above the idle timeout of load balancers in front',
    target: 'listener',
    key: 'keepAliveTimeoutMs',
    parse: 'duration',
  },
  {
    flag: '--max-request-headers',
    env: 'EDGEGATE_MAX_REQUEST_HEADERS',
    help: 'more request headers than this: 431 (every listener and protocol)',
    target: 'listener',
    key: 'maxHeaders',
    parse: 'count',
  },
  {
    flag: '--max-client-connections',
    env: 'EDGEGATE_MAX_CLIENT_CONNECTIONS',
    help: 'open client connections per worker and listener (HTTP and HTTPS), more are refused at accept; 0: no cap',
    target: 'listener',
    key: 'maxConnections',
    parse: 'count',
  },
  {
    flag: '--h2c',
    env: 'EDGEGATE_H2C',
    help: 'also accept cleartext HTTP/2 with prior knowledge (h2c) on the HTTP listener, e.g. plaintext gRPC clients (off by default)',
    target: 'listener',
    key: 'h2c',
    parse: 'switch',
    whenSet: true,
  },
  {
    flag: '--allow-underscore-headers',
    env: 'EDGEGATE_ALLOW_UNDERSCORE_HEADERS',
    help: 'accept header names with underscores (refused with 400 by default: they alias dashes in CGI-style upstreams)',
    target: 'listener',
    key: 'rejectUnderscoreHeaders',
    parse: 'switch',
    whenSet: false,
  },
  {
    flag: '--allow-authority-mismatch',
    env: 'EDGEGATE_ALLOW_AUTHORITY_MISMATCH',
    help: 'accept an absolute-form request target whose host differs from Host (refused by default)',
    target: 'listener',
    key: 'rejectAuthorityMismatch',
    parse: 'switch',
    whenSet: false,
  },
  {
    flag: '--allow-control-characters',
    env: 'EDGEGATE_ALLOW_CONTROL_CHARACTERS',
    help: 'accept control characters in header values (refused by default)',
    target: 'listener',
    key: 'rejectControlCharacters',
    parse: 'switch',
    whenSet: false,
  },
  {
    flag: '--allow-encoded-slash',
    env: 'EDGEGATE_ALLOW_ENCODED_SLASH',
    help: 'keep %2F / %5C in paths, opaque (refused with 400 by default)',
    target: 'proxy',
    key: 'allowEncodedSlash',
    parse: 'switch',
    whenSet: true,
  },
  {
    flag: '--upstream-header-timeout',
    env: 'EDGEGATE_UPSTREAM_HEADER_TIMEOUT',
    help: 'default per try: time for the upstream to send response headers (route: timeouts.responseHeaders)',
    target: 'proxy',
    key: 'upstreamHeadersTimeoutMs',
    parse: 'duration',
  },
  {
    flag: '--upstream-idle-timeout',
    env: 'EDGEGATE_UPSTREAM_IDLE_TIMEOUT',
    help: 'default per try: longest pause in the upstream’s response body (route: timeouts.idle)',
    target: 'proxy',
    key: 'upstreamBodyTimeoutMs',
    parse: 'duration',
  },
  {
    flag: '--retry-budget-percent',
    env: 'EDGEGATE_RETRY_BUDGET_PERCENT',
    help: 'retries in progress per backend at most this % of its active requests',
    target: 'proxy',
    key: 'retryBudgetPercent',
    parse: 'count',
    max: 100,
  },
  {
    flag: '--retry-budget-min',
    env: 'EDGEGATE_RETRY_BUDGET_MIN',
    help: '…or this many, whichever is larger',
    target: 'proxy',
    key: 'retryBudgetMinConcurrent',
    parse: 'count',
  },
  {
    flag: '--client-body-timeout',
    env: 'EDGEGATE_CLIENT_BODY_TIMEOUT',
    help: 'longest pause between two reads of a request body (nginx client_body_timeout) → 408; 0: none',
    target: 'proxy',
    key: 'clientBodyTimeoutMs',
    parse: 'duration',
  },
  {
    flag: '--request-buffer-size',
    env: 'EDGEGATE_REQUEST_BUFFER_SIZE',
    help: 'request bodies up to this size are read whole before an upstream connection is taken (larger ones stream); 0: stream all',
    target: 'proxy',
    key: 'requestBufferBytes',
    parse: 'size',
    max: 64 * 1024 * 1024,
  },
  {
    flag: '--send-timeout',
    env: 'EDGEGATE_SEND_TIMEOUT',
    help: 'a response the client reads nothing of for this long is abandoned and its upstream connection released (nginx send_timeout); 0: never',
    target: 'proxy',
    key: 'sendTimeoutMs',
    parse: 'duration',
  },
  {
    flag: '--max-upstream-requests-per-connection',
    env: 'EDGEGATE_MAX_UPSTREAM_REQUESTS_PER_CONNECTION',
    help: 'requests one client connection (HTTP/2 session or pipelining HTTP/1.1) may have upstream at once; more wait, then 429; 0: no cap',
    target: 'proxy',
    key: 'maxUpstreamRequestsPerConnection',
    parse: 'count',
    max: 10_000,
  },
  {
    flag: '--proxy-protocol-timeout',
    env: 'EDGEGATE_PROXY_PROTOCOL_TIMEOUT',
    help: 'with --proxy-protocol: time a trusted source has to send the PROXY header; then the connection is closed',
    target: 'listener',
    key: 'proxyProtocolTimeoutMs',
    parse: 'duration',
  },
  {
    flag: '--websocket-idle-timeout',
    env: 'EDGEGATE_WEBSOCKET_IDLE_TIMEOUT',
    help: 'close a proxied WebSocket idle both ways this long',
    target: 'proxy',
    key: 'websocketIdleTimeoutMs',
    parse: 'duration',
  },
  {
    flag: '--outlier-consecutive-failures',
    env: 'EDGEGATE_OUTLIER_CONSECUTIVE_FAILURES',
    help: 'failures in a row (5xx, connect failure, reset, timeout) that eject an endpoint; 0: no outlier detection',
    target: 'outlier',
    key: 'consecutiveFailures',
    parse: 'count',
  },
  {
    flag: '--outlier-base-ejection',
    env: 'EDGEGATE_OUTLIER_BASE_EJECTION',
    help: 'first ejection time; each further ejection of the endpoint adds this much',
    target: 'outlier',
    key: 'baseEjectionMs',
    parse: 'duration',
  },
  {
    flag: '--outlier-max-ejection',
    env: 'EDGEGATE_OUTLIER_MAX_EJECTION',
    help: 'longest ejection',
    target: 'outlier',
    key: 'maxEjectionMs',
    parse: 'duration',
  },
  {
    flag: '--outlier-max-ejection-percent',
    env: 'EDGEGATE_OUTLIER_MAX_EJECTION_PERCENT',
    help: 'at most this % of a backend’s endpoints ejected at once (rounded down; a cluster-wide failure is not ejected)',
    target: 'outlier',
    key: 'maxEjectionPercent',
    parse: 'count',
    max: 100,
  },
];

const DEFAULTS: Record<EdgeFlag['target'], object> = {
  listener: DEFAULT_LISTENER_SETTINGS,
  proxy: DEFAULT_PROXY_SETTINGS,
  outlier: DEFAULT_OUTLIER_SETTINGS,
};

/** The help text of a flag with its default, read from the settings' defaults (the one place they are written). */
export function edgeFlagHelp(f: EdgeFlag): string {
  if (f.parse === 'switch') return f.help;
  const initial = (DEFAULTS[f.target] as Record<string, unknown>)[f.key];
  if (f.parse === 'choice') return `${f.help} (default ${String(initial)})`;
  const value = Number(initial);
  const shown =
    f.parse === 'count'
      ? String(value)
      : f.parse === 'size'
        ? value % (1024 * 1024) === 0 && value > 0
          ? `${value / 1024 / 1024}m`
          : value % 1024 === 0 && value > 0
            ? `${value / 1024}k`
            : String(value)
        : value % 60_000 === 0 && value > 0
          ? `${value / 60_000}m`
          : value % 1000 === 0
            ? `${value / 1000}s`
            : `${value}ms`;
  return `${f.help} (default ${shown})`;
}

/**
 * The settings the given flags set, by target. `values` holds commander's option values (camelCase of the flag,
 * string or true); `duration` parses `5s`, `250ms`, a bare number of seconds.
 */
export function edgeSettingsFrom(
  values: Record<string, unknown>,
  duration: (text: string, flag: string) => number,
): { listener: Partial<ListenerSettings>; proxy: Partial<ProxySettings> } {
  const out = {
    listener: {} as Record<string, unknown>,
    proxy: {} as Record<string, unknown>,
    outlier: {} as Record<string, unknown>,
  };
  for (const f of EDGE_FLAGS) {
    const name = f.flag.slice(2).replace(/-([a-z])/g, (_m, c: string) => c.toUpperCase());
    const raw = values[name];
    if (raw === undefined || raw === false) continue;
    const parse: Parse =
      f.parse === 'duration'
        ? duration
        : f.parse === 'size'
          ? (text, flag) => parseSize(text, flag, f.max ?? 1_000_000)
          : f.parse === 'switch'
            ? () => f.whenSet!
            : f.parse === 'choice'
              ? (text, flag) => {
                  if (!f.choices!.includes(text.trim()))
                    throw new ConfigError(
                      `${flag}: expected one of ${f.choices!.join(', ')}, got ${JSON.stringify(text)}`,
                    );
                  return text.trim();
                }
              : (text, flag) => {
                  const n = Number(text);
                  const max = f.max ?? 1_000_000;
                  if (!/^\d+$/.test(String(text).trim()) || n > max)
                    throw new ConfigError(
                      `${flag}: expected a whole number 0…${max}, got ${JSON.stringify(text)}`,
                    );
                  return n;
                };
    out[f.target][f.key] = parse(String(raw), f.flag);
  }
  const outlier = { ...DEFAULT_OUTLIER_SETTINGS, ...out.outlier };
  if (outlier.maxEjectionMs < outlier.baseEjectionMs)
    throw new ConfigError(
      `--outlier-max-ejection (${outlier.maxEjectionMs} ms) is shorter than --outlier-base-ejection (${outlier.baseEjectionMs} ms)`,
    );
  if (Object.keys(out.outlier).length > 0) out.proxy.outlier = outlier;
  return { listener: out.listener, proxy: out.proxy } as {
    listener: Partial<ListenerSettings>;
    proxy: Partial<ProxySettings>;
  };
}
