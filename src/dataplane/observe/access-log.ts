/**
 * The access log: one JSON line per request on stdout (operational events go to stderr, see log.ts), written in
 * batches by the data path itself (not through winston: its format and transport streams cost tens of µs per line,
 * which at 1 % sampling was ~1 µs on every request of a worker). Sampled: a request is logged with probability
 * `sampleRate`; answers ≥ 500 are always logged while the log is on. Only the fields below are written — never
 * request header values except the configured allow-list, never the query string (tokens travel there), never
 * Authorization, cookies or anything that looks like a credential (such names are refused in the allow-list).
 */
import { writeSync } from 'node:fs';
import { ConfigError } from '../../lib/errors.ts';

export interface AccessLogSettings {
  enabled: boolean;
  /** Share of requests logged, 0…1. */
  sampleRate: number;
  /** Request headers whose values are logged (lower-case names). Credentials are refused. */
  headers: string[];
}

export const DEFAULT_ACCESS_LOG: AccessLogSettings = {
  enabled: true,
  sampleRate: 1,
  headers: ['user-agent'],
};

/** Header names that may carry credentials or session state: never logged, whatever the allow-list says. */
const SECRET_HEADER = /authorization|cookie|token|secret|passw|api-?key|session|signature|credential|jwt/i;

/** Longest value written for a path or header (log lines stay bounded). */
const MAX_VALUE = 1024;

/** Checks and normalizes access-log settings; bad values are a ConfigError naming the flag. */
export function accessLogSettings(opts: {
  enabled?: boolean;
  sampleRate?: number | string;
  headers?: string[] | string;
}): AccessLogSettings {
  const rate = opts.sampleRate === undefined ? 1 : Number(opts.sampleRate);
  if (!(rate >= 0 && rate <= 1))
    throw new ConfigError(
      `--access-log-sample: expected a number from 0 to 1, got ${JSON.stringify(opts.sampleRate)}`,
    );
  const list =
    opts.headers === undefined
      ? DEFAULT_ACCESS_LOG.headers
      : (Array.isArray(opts.headers) ? opts.headers : opts.headers.split(','))
          .map((h) => h.trim().toLowerCase())
          .filter((h) => h !== '');
  for (const h of list) {
    if (!/^[a-z0-9!#$%&'*+.^_`|~-]+$/.test(h))
      throw new ConfigError(`--access-log-headers: ${JSON.stringify(h)} is not a header name`);
    if (SECRET_HEADER.test(h))
      throw new ConfigError(`--access-log-headers: ${h} may carry credentials and is never logged`);
  }
  return { enabled: opts.enabled ?? true, sampleRate: rate, headers: list };
}

/** The fields of one access log line. */
export interface AccessLogLine {
  time: string;
  requestId: string;
  client: string;
  method: string;
  host: string;
  /** Normalized request path as received, without the query string. */
  path: string;
  status: number;
  bytesIn: number;
  bytesOut: number;
  durationMs: number;
  /** `address:port` of the upstream endpoint of the last try ('' if none). */
  upstream: string;
  /** Upstream response-header time of the last try, ms (-1: no upstream answer). */
  upstreamMs: number;
  route: string;
  service: string;
  datacenter: string;
  retries: number;
  /** The gateway's error code when the gateway generated the answer. */
  code?: string;
  headers?: Record<string, string>;
}

function clip(v: string): string {
  return v.length > MAX_VALUE ? `${v.slice(0, MAX_VALUE)}…` : v;
}

/** Lines gathered beyond this are written at once, not at the end of the event-loop turn. */
const FLUSH_BYTES = 64 * 1024;

/**
 * stdout, written in batches: the lines of one event-loop turn leave in one write (a write per line costs a syscall
 * each, several µs), at FLUSH_BYTES sooner, and synchronously at process exit. Not held longer: a worker that is
 * killed loses at most the turn it was in.
 */
export class AccessLog {
  readonly settings: AccessLogSettings;
  readonly #out: (text: string) => void;
  #lines: string[] = [];
  #bytes = 0;
  #scheduled = false;
  readonly #flushSoon = () => {
    this.#scheduled = false;
    this.#flush();
  };
  readonly #flushAtExit = () => {
    if (this.#lines.length === 0) return;
    try {
      writeSync(1, this.#lines.join(''));
    } catch {}
    this.#lines = [];
  };

  /** `out`: where batches go (process.stdout by default). */
  constructor(settings: AccessLogSettings, out?: (text: string) => void) {
    this.settings = settings;
    this.#out = out ?? ((text) => process.stdout.write(text));
    process.on('exit', this.#flushAtExit);
  }

  /** Decides whether a finished request is written: cheap, and decided before any field is built. */
  wants(status: number): boolean {
    const s = this.settings;
    if (!s.enabled) return false;
    return status >= 500 || s.sampleRate >= 1 || (s.sampleRate > 0 && Math.random() < s.sampleRate);
  }

  /** Header values from the allow-list only. */
  pickHeaders(headers: Record<string, string | string[] | undefined>): Record<string, string> | undefined {
    let out: Record<string, string> | undefined;
    for (const name of this.settings.headers) {
      const v = headers[name];
      if (v === undefined) continue;
      out ??= {};
      out[name] = clip(Array.isArray(v) ? v.join(', ') : v);
    }
    return out;
  }

  write(line: AccessLogLine): void {
    line.path = clip(line.path);
    line.host = clip(line.host);
    const text = `${JSON.stringify(line)}\n`;
    this.#lines.push(text);
    this.#bytes += text.length;
    if (this.#bytes >= FLUSH_BYTES) this.#flush();
    else if (!this.#scheduled) {
      this.#scheduled = true;
      setImmediate(this.#flushSoon);
    }
  }

  #flush(): void {
    if (this.#lines.length === 0) return;
    const text = this.#lines.join('');
    this.#lines = [];
    this.#bytes = 0;
    this.#out(text);
  }

  /** Writes what is gathered; nothing more is expected. */
  close(): void {
    this.#flush();
    process.off('exit', this.#flushAtExit);
  }
}
