/**
 * The Consul HTTP API over undici. Why not the `consul` package: its Watch cannot reset an index that goes
 * backwards, has no rate limit, no jitter and no abort of an in-flight blocking request; and going through one
 * undici Agent gives exact control of `index`/`wait`, the client timeout above `wait`, AbortSignal on stop, and
 * TLS (CA, client certificate) in one place. Each blocking query holds one keep-alive connection while it waits.
 */
import { Agent, request } from 'undici';
import { type ConsulSettings, readTokenFile } from './settings.ts';

export interface ConsulResponse {
  status: number;
  /** `X-Consul-Index`, if the answer had a valid one. */
  index: number | undefined;
  /** Parsed JSON for 2xx answers; the text otherwise. */
  body: unknown;
  text: string;
  /** `X-Consul-LastContact` (ms since the answering server heard from the leader; stale reads). */
  lastContactMs: number | undefined;
  /** `X-Consul-KnownLeader` (`false`: the answering server knows no leader; its data may be old). */
  knownLeader: boolean | undefined;
}

export interface GetOptions {
  signal?: AbortSignal;
  /** Whole-request deadline (headers and body). */
  timeoutMs: number;
}

export class ConsulHttpError extends Error {
  override name = 'ConsulHttpError';
  readonly status: number;
  constructor(status: number, message: string) {
    super(message);
    this.status = status;
  }
}

export class ConsulHttp {
  readonly #settings: ConsulSettings;
  readonly #agent: Agent;
  #token: string | undefined;
  #requests = 0;

  constructor(settings: ConsulSettings) {
    this.#settings = settings;
    this.#token = settings.token;
    this.#agent = new Agent({
      keepAliveTimeout: 30_000,
      connect: {
        ca: settings.caCert,
        cert: settings.clientCert,
        key: settings.clientKey,
        servername: settings.tlsServerName,
        rejectUnauthorized: settings.tlsVerify,
      },
    });
  }

  get address(): string {
    return this.#settings.address;
  }

  /** Requests sent so far (all endpoints). */
  get requests(): number {
    return this.#requests;
  }

  /** After a 403: pick up a rotated token from CONSUL_HTTP_TOKEN_FILE. True if it changed. */
  reloadToken(): boolean {
    if (!this.#settings.tokenFile) return false;
    try {
      const next = readTokenFile(this.#settings.tokenFile);
      if (next === this.#token) return false;
      this.#token = next;
      return true;
    } catch {
      return false;
    }
  }

  /** The query parameters every read carries: consistency mode, namespace, partition. */
  commonQuery(): Record<string, string> {
    const q: Record<string, string> = {};
    if (this.#settings.consistency === 'stale') q.stale = '';
    if (this.#settings.consistency === 'consistent') q.consistent = '';
    if (this.#settings.namespace) q.ns = this.#settings.namespace;
    if (this.#settings.partition) q.partition = this.#settings.partition;
    return q;
  }

  async get(
    path: string,
    query: Record<string, string | undefined>,
    opts: GetOptions,
  ): Promise<ConsulResponse> {
    const url = new URL(path, this.#settings.address);
    for (const [k, v] of Object.entries(query)) if (v !== undefined) url.searchParams.set(k, v);
    const headers: Record<string, string> = { accept: 'application/json' };
    if (this.#token) headers['x-consul-token'] = this.#token;
    const timeout = AbortSignal.timeout(opts.timeoutMs);
    const signal = opts.signal ? AbortSignal.any([opts.signal, timeout]) : timeout;
    this.#requests++;
    const res = await request(url, {
      method: 'GET',
      headers,
      signal,
      dispatcher: this.#agent,
      headersTimeout: opts.timeoutMs,
      bodyTimeout: opts.timeoutMs,
    });
    const text = await res.body.text();
    const rawIndex = res.headers['x-consul-index'];
    const index = typeof rawIndex === 'string' && /^\d+$/.test(rawIndex) ? Number(rawIndex) : undefined;
    const rawContact = res.headers['x-consul-lastcontact'];
    const lastContactMs =
      typeof rawContact === 'string' && /^\d+$/.test(rawContact) ? Number(rawContact) : undefined;
    const rawLeader = res.headers['x-consul-knownleader'];
    const knownLeader = rawLeader === 'true' ? true : rawLeader === 'false' ? false : undefined;
    let body: unknown = text;
    if (res.statusCode >= 200 && res.statusCode < 300) {
      try {
        body = text === '' ? null : JSON.parse(text);
      } catch {
        throw new ConsulHttpError(res.statusCode, `${path}: answer is not JSON: ${text.slice(0, 200)}`);
      }
    }
    return { status: res.statusCode, index, body, text, lastContactMs, knownLeader };
  }

  async close(): Promise<void> {
    await this.#agent.destroy();
  }
}
