/**
 * The request pipeline of a worker: normalize → match → redirect | pick backend → pick endpoint → forward over the
 * endpoint's undici Pool, streaming both ways with backpressure. Tables arrive whole and are swapped in between
 * requests: a request keeps the table it started with.
 */
import { randomUUID } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Dispatcher } from 'undici';
import { errorBody, type GatewayErrorCode, GatewayErrors } from '../errors.ts';
import {
  noteGatewayError,
  type RequestObserver,
  type RequestRecord,
  recordOf,
} from '../observe/request-observer.ts';
import { type CompiledEntry, normalizeHost, RoutingTable } from '../table/index.ts';
import type { ClusterData, EndpointData, PathRewrite, TableData } from '../table/types.ts';
import { WeightedRoundRobin } from './balancer.ts';
import { forwardedTrailers, requestHasBody, requestProto } from './h2-compat.ts';
import { acceptableRequestId, clientResponseHeaders, upstreamRequestHeaders } from './headers.ts';
import { normalizePath } from './normalize-path.ts';
import { UpstreamPools } from './upstream-pools.ts';
import { upstreamDispatchOptions } from './upstream-tls.ts';

export interface ProxySettings {
  /** How many proxies in front of the gateway are trusted to set X-Forwarded-For (0: none, the peer is the client). */
  trustedHops: number;
  /** Time for the upstream to send response headers. */
  upstreamHeadersTimeoutMs: number;
  /** Longest pause between two chunks of the upstream's response body. */
  upstreamBodyTimeoutMs: number;
  /** Keep `%2F` / `%5C` in paths (opaque) instead of refusing them with 400. */
  allowEncodedSlash: boolean;
  /** Scheme of the listener, for X-Forwarded-Proto and redirects. */
  proto: 'http' | 'https';
}

export const DEFAULT_PROXY_SETTINGS: ProxySettings = {
  trustedHops: 0,
  upstreamHeadersTimeoutMs: 60_000,
  upstreamBodyTimeoutMs: 60_000,
  allowEncodedSlash: false,
  proto: 'http',
};

/** A table made ready for serving: the index plus balancing state. */
class ServedTable {
  readonly table: RoutingTable;
  readonly #backendPickers = new Map<string, WeightedRoundRobin<ClusterData>>();
  readonly #endpointPickers = new Map<string, WeightedRoundRobin<EndpointData>>();

  constructor(data: TableData) {
    this.table = new RoutingTable(data);
    for (const c of data.clusters) {
      this.#endpointPickers.set(
        c.id,
        new WeightedRoundRobin(
          c.endpoints,
          c.endpoints.map((e) => e.weight),
        ),
      );
    }
    for (const e of data.entries) {
      if (!e.backends || this.#backendPickers.has(e.ruleId)) continue;
      const clusters = e.backends.map((b) => this.table.clusters.get(b.cluster)!);
      this.#backendPickers.set(
        e.ruleId,
        new WeightedRoundRobin(
          clusters,
          e.backends.map((b) => b.weight),
        ),
      );
    }
  }

  pickCluster(entry: CompiledEntry): ClusterData | undefined {
    return this.#backendPickers.get(entry.data.ruleId)?.pick();
  }

  pickEndpoint(cluster: ClusterData): EndpointData | undefined {
    return this.#endpointPickers.get(cluster.id)?.pick();
  }
}

function clientAddressOf(req: IncomingMessage): string {
  const a = req.socket.remoteAddress ?? '';
  return a.startsWith('::ffff:') && a.includes('.') ? a.slice(7) : a;
}

function rewritePath(path: string, rewrite: PathRewrite, prefixLength: number): string {
  if (rewrite.type === 'ReplaceFullPath') return rewrite.value;
  const rest = path.slice(prefixLength);
  const base = rewrite.value.endsWith('/') ? rewrite.value.slice(0, -1) : rewrite.value;
  const joined = base + (rest === '' || rest.startsWith('/') ? rest : `/${rest}`);
  return joined === '' ? '/' : joined;
}

export function sendError(
  res: ServerResponse,
  code: GatewayErrorCode,
  requestId: string,
  message?: string,
): void {
  noteGatewayError(res, code);
  if (res.headersSent) {
    res.destroy();
    return;
  }
  const body = errorBody(code, requestId, message);
  res.writeHead(GatewayErrors[code].status, {
    'content-type': 'application/json',
    'content-length': Buffer.byteLength(body),
    'x-request-id': requestId,
    'cache-control': 'no-store',
  });
  res.end(body);
}

function upstreamErrorCode(err: Error & { code?: string }): GatewayErrorCode {
  switch (err.code) {
    case 'UND_ERR_CONNECT_TIMEOUT':
    case 'UND_ERR_HEADERS_TIMEOUT':
    case 'UND_ERR_BODY_TIMEOUT':
    case 'ETIMEDOUT':
      return 'EDGEGATE_UPSTREAM_TIMEOUT';
    case 'ECONNREFUSED':
    case 'EHOSTUNREACH':
    case 'ENETUNREACH':
    case 'ENOTFOUND':
    case 'EAI_AGAIN':
      return 'EDGEGATE_UPSTREAM_CONNECT';
    case 'UND_ERR_SOCKET':
    case 'ECONNRESET':
    case 'EPIPE':
    case 'UND_ERR_CLOSED':
      return 'EDGEGATE_UPSTREAM_RESET';
    default:
      return err.code?.startsWith('HPE_') ? 'EDGEGATE_UPSTREAM_PROTOCOL' : 'EDGEGATE_UPSTREAM_CONNECT';
  }
}

/** Streams one upstream response to the client, pausing the upstream when the client cannot keep up. */
class ForwardHandler implements Dispatcher.DispatchHandler {
  readonly #res: ServerResponse;
  readonly #entry: CompiledEntry;
  readonly #requestId: string;
  readonly #record: RequestRecord | undefined;
  /** HTTP/2 client: upstream trailers (gRPC status) are passed on; HTTP/1.1 clients get none (as before). */
  readonly #h2Client: boolean;
  #controller: Dispatcher.DispatchController | undefined;
  #clientGone = false;
  #onDrain = () => this.#controller?.resume();

  constructor(
    req: IncomingMessage,
    res: ServerResponse,
    entry: CompiledEntry,
    requestId: string,
    record: RequestRecord | undefined,
  ) {
    this.#res = res;
    this.#record = record;
    this.#entry = entry;
    this.#requestId = requestId;
    this.#h2Client = req.httpVersionMajor === 2;
    res.on('close', () => {
      // (HTTP/2 compat responses have no writableFinished; writableEnded says the same once end() ran.)
      if (!res.writableFinished && !res.writableEnded) {
        this.#clientGone = true;
        this.#controller?.abort(new Error('client closed the connection'));
      }
    });
    req.on('error', () => {
      this.#clientGone = true;
      this.#controller?.abort(new Error('client request failed'));
    });
  }

  onRequestStart(controller: Dispatcher.DispatchController): void {
    this.#controller = controller;
    if (this.#clientGone) controller.abort(new Error('client closed the connection'));
  }

  onResponseStart(
    _controller: Dispatcher.DispatchController,
    statusCode: number,
    headers: Record<string, string | string[] | undefined>,
  ): void {
    const res = this.#res;
    this.#record?.answered();
    if (res.destroyed) return;
    try {
      res.writeHead(
        statusCode,
        clientResponseHeaders(headers, this.#entry.data.responseHeaders, this.#requestId),
      );
    } catch {
      sendError(
        res,
        'EDGEGATE_UPSTREAM_PROTOCOL',
        this.#requestId,
        'the upstream sent a header that cannot be forwarded',
      );
      this.#controller?.abort(new Error('invalid upstream header'));
    }
  }

  onResponseData(controller: Dispatcher.DispatchController, chunk: Buffer): void {
    if (!this.#res.write(chunk)) {
      controller.pause();
      this.#res.once('drain', this.#onDrain);
    }
  }

  onResponseEnd(
    _controller: Dispatcher.DispatchController,
    trailers: Record<string, string | string[]>,
  ): void {
    if (this.#h2Client) {
      const t = forwardedTrailers(trailers);
      if (t) (this.#res as unknown as { addTrailers(t: Record<string, string>): void }).addTrailers(t);
    }
    this.#res.end();
  }

  onResponseError(_controller: Dispatcher.DispatchController, error: Error): void {
    if (this.#clientGone) return;
    if (this.#res.headersSent) {
      // Mid-response failure: the only honest signal left is to cut the client connection (truncated body).
      this.#res.destroy();
      return;
    }
    sendError(this.#res, upstreamErrorCode(error), this.#requestId);
  }
}

export class ProxyPipeline {
  readonly settings: ProxySettings;
  readonly pools = new UpstreamPools();
  /** Metrics and access log (observe/): set before the first table. */
  observer: RequestObserver | undefined;
  #served: ServedTable | undefined;

  constructor(settings: Partial<ProxySettings> = {}) {
    this.settings = { ...DEFAULT_PROXY_SETTINGS, ...settings };
  }

  get version(): number {
    return this.#served?.table.version ?? 0;
  }

  get table(): RoutingTable | undefined {
    return this.#served?.table;
  }

  /** Swap in a new table. Requests already running keep the table they started with. */
  setTable(data: TableData): void {
    this.observer?.recorder.install(data);
    this.#served = new ServedTable(data);
    this.pools.retain(data.clusters);
  }

  handle(req: IncomingMessage, res: ServerResponse): void {
    const incomingId = req.headers['x-request-id'];
    const requestId =
      typeof incomingId === 'string' && acceptableRequestId(incomingId) ? incomingId : randomUUID();
    const record = recordOf(res);
    if (record !== undefined) record.requestId = requestId;
    const served = this.#served;
    if (!served) return sendError(res, 'EDGEGATE_NO_ROUTE', requestId, 'no routing table yet');

    const target = req.url ?? '';
    const q = target.indexOf('?');
    const rawPath = q < 0 ? target : target.slice(0, q);
    const rawQuery = q < 0 ? '' : target.slice(q + 1);
    const path = normalizePath(rawPath, { allowEncodedSlash: this.settings.allowEncodedSlash });
    if (path === undefined) return sendError(res, 'EDGEGATE_BAD_REQUEST', requestId, 'invalid request path');

    const hostHeader = req.headers.host ?? '';
    const host = normalizeHost(hostHeader);
    const headers = req.headers;
    const entry = served.table.match({
      host,
      path,
      method: req.method ?? 'GET',
      rawQuery,
      header: (name) => {
        const v = headers[name];
        return Array.isArray(v) ? v.join(', ') : v;
      },
    });
    if (!entry) return sendError(res, 'EDGEGATE_NO_ROUTE', requestId);
    const data = entry.data;
    if (record !== undefined) record.entry = data;

    if (data.redirect) {
      const rd = data.redirect;
      const proto = requestProto(req, this.settings.proto);
      const scheme = rd.scheme ?? proto;
      const colon = hostHeader.lastIndexOf(':');
      const requestPort =
        colon > hostHeader.lastIndexOf(']') && colon >= 0 ? hostHeader.slice(colon + 1) : '';
      const port =
        rd.port !== undefined ? String(rd.port) : rd.scheme && rd.scheme !== proto ? '' : requestPort;
      const defaultPort = (scheme === 'https' && port === '443') || (scheme === 'http' && port === '80');
      const location = `${scheme}://${rd.hostname ?? host}${port && !defaultPort ? `:${port}` : ''}${
        rd.path ? rewritePath(path, rd.path, entry.prefixLength) : path
      }${rawQuery ? `?${rawQuery}` : ''}`;
      res.writeHead(rd.statusCode, { location, 'content-length': 0, 'x-request-id': requestId });
      res.end();
      return;
    }

    let cluster: ClusterData | undefined;
    let upstreamPath = path;
    if (data.catalog) {
      const rest = data.catalog.prefix === '/' ? path : path.slice(data.catalog.prefix.length);
      const s1 = rest.indexOf('/', 1);
      const dc = s1 < 0 ? rest.slice(1) : rest.slice(1, s1);
      const s2 = s1 < 0 ? -1 : rest.indexOf('/', s1 + 1);
      const service = s1 < 0 ? '' : s2 < 0 ? rest.slice(s1 + 1) : rest.slice(s1 + 1, s2);
      if (dc === '' || service === '')
        return sendError(
          res,
          'EDGEGATE_NO_ROUTE',
          requestId,
          `expected ${data.catalog.prefix === '/' ? '' : data.catalog.prefix}/{datacenter}/{service}/{path}`,
        );
      const services = data.catalog.services[dc];
      if (!services)
        return sendError(
          res,
          'EDGEGATE_CATALOG_UNKNOWN_DATACENTER',
          requestId,
          `datacenter ${dc} is unknown or not exposed`,
        );
      const clusterId = services[service];
      if (!clusterId)
        return sendError(
          res,
          'EDGEGATE_CATALOG_UNKNOWN_SERVICE',
          requestId,
          `service ${service} is unknown or not exposed in datacenter ${dc}`,
        );
      cluster = served.table.clusters.get(clusterId);
      upstreamPath = s2 < 0 ? '/' : rest.slice(s2);
    } else {
      cluster = served.pickCluster(entry);
      if (data.rewrite?.path) upstreamPath = rewritePath(path, data.rewrite.path, entry.prefixLength);
    }
    if (!cluster) return sendError(res, 'EDGEGATE_NO_HEALTHY_UPSTREAM', requestId);
    if (record !== undefined) record.cluster = cluster;
    const endpoint = served.pickEndpoint(cluster);
    if (!endpoint)
      return sendError(
        res,
        'EDGEGATE_NO_HEALTHY_UPSTREAM',
        requestId,
        `no healthy endpoint for ${cluster.service} in ${cluster.datacenter}`,
      );

    const clientAddress = clientAddressOf(req);
    const xff = headers['x-forwarded-for'];
    const upstreamHeaders = upstreamRequestHeaders(
      req.rawHeaders,
      {
        host: data.rewrite?.hostname ?? (hostHeader || `${endpoint.address}:${endpoint.port}`),
        clientAddress,
        proto: requestProto(req, this.settings.proto),
        originalHost: hostHeader,
        requestId,
        priorForwardedFor: this.settings.trustedHops > 0 && typeof xff === 'string' ? xff : undefined,
      },
      data.requestHeaders,
    );
    // gRPC needs `TE: trailers` end to end over HTTP/2 (the only TE value HTTP/2 allows).
    if (cluster.pool.protocol === 'h2' && headers.te === 'trailers') upstreamHeaders.push('te', 'trailers');
    const hasBody = requestHasBody(req);
    const pool = this.pools.get(endpoint, cluster.pool);
    const handler = new ForwardHandler(req, res, entry, requestId, record);
    record?.dispatched(endpoint);
    pool.dispatch(
      {
        path: rawQuery ? `${upstreamPath}?${rawQuery}` : upstreamPath,
        method: (req.method ?? 'GET') as Dispatcher.HttpMethod,
        headers: upstreamHeaders,
        body: hasBody ? req : null,
        headersTimeout: this.settings.upstreamHeadersTimeoutMs,
        bodyTimeout: this.settings.upstreamBodyTimeoutMs,
        ...upstreamDispatchOptions(cluster.pool, endpoint),
      },
      handler,
    );
  }

  async close(): Promise<void> {
    await this.pools.close();
  }
}
