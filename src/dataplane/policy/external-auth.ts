/**
 * External authorization (the Traefik ForwardAuth / nginx auth_request shape): for each request the gateway sends
 * `GET <url>` to an auth service with the request's method, URI, host, scheme and client address in
 * X-Forwarded-* headers plus the headers the rule lists (never the body). A 2xx lets the request through, with the
 * listed auth response headers copied onto the upstream request (client copies of them removed); any other answer
 * is returned to the client as is (status, content-type, www-authenticate, location, and the body up to a limit).
 * No answer within the timeout, or a connection error: Closed → 503 EDGEGATE_EXTERNAL_AUTH_UNAVAILABLE, Open →
 * the request goes on (and the failure is counted). The 503 says only that the auth service is unavailable: never
 * its address or the connection error (those are the operator's: `onFailure` gets the cause, `timeout` or
 * `unavailable`).
 *
 * The URI the auth service is told about (X-Forwarded-Uri, and the nginx-style X-Original-Uri / X-Original-Url) is
 * the normalized path the route matched and the upstream receives, with the query as forwarded — never the raw
 * target, so `/ext/x/../admin` and `/ext/%61dmin` are `/ext/admin` to the auth service as they are to the upstream.
 * These headers are the gateway's: a client's copies are never passed on, even when `requestHeaders` lists them.
 */
import type { IncomingMessage } from 'node:http';
import { Agent, type Dispatcher } from 'undici';
import type { ExternalAuthData } from '../../table/policy-types.ts';
import { type Denial, deny } from './verdict.ts';

export type ExternalAuthResult = { ok: true; add: [string, string][] } | { ok: false; denial: Denial };

/** Auth-service response headers passed along with a denial. */
const PASSED_ON_DENIAL = ['content-type', 'www-authenticate', 'location', 'retry-after'];

export interface ExternalAuthFacts {
  method: string;
  /** The normalized request path (as matched and forwarded) plus `?` and the query when there is one. */
  uri: string;
  host: string;
  proto: string;
  clientAddress: string;
}

/** One undici Agent per worker for every auth service (keep-alive to each). */
export function createAuthAgent(): Dispatcher {
  return new Agent({ keepAliveTimeout: 4_000, connections: 64 });
}

export class ExternalAuthClient {
  readonly data: ExternalAuthData;
  readonly #agent: Dispatcher;
  readonly #onFailure: (reason: string) => void;
  readonly #origin: string;
  readonly #path: string;

  constructor(data: ExternalAuthData, agent: Dispatcher, onFailure: (reason: string) => void) {
    this.data = data;
    const url = new URL(data.url);
    this.#origin = url.origin;
    this.#path = url.pathname + url.search;
    this.#agent = agent;
    this.#onFailure = onFailure;
  }

  async check(
    req: IncomingMessage,
    facts: ExternalAuthFacts,
    requestId: string,
  ): Promise<ExternalAuthResult> {
    const d = this.data;
    const headers: Record<string, string> = {};
    for (const name of d.requestHeaders) {
      const v = req.headers[name];
      if (v !== undefined) headers[name] = Array.isArray(v) ? v.join(', ') : v;
    }
    // Set after the listed ones: the gateway's values always win over a client's copies.
    headers['x-forwarded-method'] = facts.method;
    headers['x-forwarded-uri'] = facts.uri;
    headers['x-forwarded-host'] = facts.host;
    headers['x-forwarded-proto'] = facts.proto;
    headers['x-forwarded-for'] = facts.clientAddress;
    headers['x-original-method'] = facts.method;
    headers['x-original-uri'] = facts.uri;
    headers['x-original-url'] = `${facts.proto}://${facts.host}${facts.uri}`;
    headers['x-request-id'] = requestId;
    delete headers.host;
    let res: Dispatcher.ResponseData;
    try {
      res = await this.#agent.request({
        origin: this.#origin,
        path: this.#path,
        method: 'GET',
        headers,
        headersTimeout: d.timeoutMs,
        bodyTimeout: d.timeoutMs,
        signal: AbortSignal.timeout(d.timeoutMs),
      });
    } catch {
      this.#onFailure('unavailable');
      if (d.failureMode === 'Open') return { ok: true, add: [] };
      return {
        ok: false,
        denial: deny('EDGEGATE_EXTERNAL_AUTH_UNAVAILABLE', requestId, {
          reason: 'unavailable',
          message: 'the external auth service is unavailable',
        }),
      };
    }
    if (res.statusCode >= 200 && res.statusCode < 300) {
      res.body.resume();
      const add: [string, string][] = [];
      for (const name of d.responseHeaders) {
        const v = res.headers[name];
        if (v === undefined) continue;
        for (const one of Array.isArray(v) ? v : [v]) if (!/[\r\n\0]/.test(one)) add.push([name, one]);
      }
      return { ok: true, add };
    }
    this.#onFailure(`status-${res.statusCode}`);
    const body = await readBounded(res.body, d.maxResponseBytes);
    const out: Record<string, string> = { 'cache-control': 'no-store', 'x-request-id': requestId };
    for (const name of PASSED_ON_DENIAL) {
      const v = res.headers[name];
      if (typeof v === 'string') out[name] = v;
    }
    return {
      ok: false,
      denial: {
        allowed: false,
        status: res.statusCode,
        code: undefined,
        reason: `status-${res.statusCode}`,
        headers: out,
        body,
        closeConnection: false,
      },
    };
  }
}

async function readBounded(body: Dispatcher.ResponseData['body'], max: number): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let size = 0;
  try {
    for await (const chunk of body) {
      const c = chunk as Buffer;
      if (size + c.length > max) {
        chunks.push(c.subarray(0, max - size));
        size = max;
        body.destroy();
        break;
      }
      chunks.push(c);
      size += c.length;
    }
  } catch {
    // a cut-short denial body is still a denial
  }
  return Buffer.concat(chunks, size);
}
