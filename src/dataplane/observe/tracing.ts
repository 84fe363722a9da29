/**
 * OpenTelemetry tracing of one proxy process (a worker, or the single process of `--workers 0`), with the
 * OpenTelemetry JS SDK (@opentelemetry/sdk-trace) and its OTLP/HTTP protobuf exporter. Exists only when tracing is
 * configured: with tracing off no Tracing object is built and the request path checks one `undefined` field.
 *
 * Per request (RequestTrace):
 * - a SERVER span `<METHOD> <route>` from begin to the end of the response, child of the client's `traceparent`
 *   when that is valid (trace-context.ts), else the root of a new trace;
 * - an INTERNAL span `edgegate.policies` around the rule's policy gate (IP rules, overload guard, rate limit,
 *   concurrency, signatures, JWT, external auth, in their fixed order), with the outcome and, for a denial, the
 *   gateway error code and reason that name the policy;
 * - a CLIENT span `<METHOD>` per upstream try (a retry is a second one, `http.request.resend_count` 1), whose id is
 *   the parent id of the `traceparent` sent to the upstream, with the client's `tracestate` (validated) after it.
 *
 * Sampling: ratio-based on the trace id for new traces, the parent's sampled flag for continued ones (parent-based,
 * unless OTEL_TRACES_SAMPLER says otherwise). An unsampled request records nothing, but still sends a fresh
 * `traceparent` (flag 00) upstream so the trace id carries on.
 *
 * Export: the SDK's BatchSpanProcessor behind a bound of `maxQueueSize` spans held per process (queued or being
 * exported): a span over the bound is dropped and counted (queue_full), a batch the collector does not take is
 * counted as dropped (export_failed). shutdown() flushes what is held (worker drain).
 */
import type { IncomingMessage } from 'node:http';
import {
  type Context,
  ROOT_CONTEXT,
  type Span,
  SpanKind,
  SpanStatusCode,
  type Tracer,
  trace,
} from '@opentelemetry/api';
import { type ExportResult, ExportResultCode, TraceState } from '@opentelemetry/core';
import { OTLPTraceExporter } from '@opentelemetry/exporter-trace-otlp-proto';
import { resourceFromAttributes } from '@opentelemetry/resources';
import {
  BatchSpanProcessor,
  ParentBasedSampler,
  RandomIdGenerator,
  type ReadableSpan,
  type Sampler,
  type SpanExporter,
  type SpanProcessor,
  TraceIdRatioBasedSampler,
  TracerProvider,
} from '@opentelemetry/sdk-trace';
import { TRACING_DROPPED_COUNTER, TRACING_EXPORTED_COUNTER } from '../../cluster/worker-report.ts';
import type { ClusterData, EndpointData } from '../../table/types.ts';
import { formatTraceparent, parseTraceparent } from './trace-context.ts';
import type { TracingSettings } from './tracing-settings.ts';

export interface TracingLog {
  warn(message: string, meta?: Record<string, unknown>): void;
  info(message: string, meta?: Record<string, unknown>): void;
}

/** Counts what the exporter took and what it did not. */
class CountingExporter implements SpanExporter {
  readonly #inner: SpanExporter;
  readonly #done: (n: number, result: ExportResult) => void;

  constructor(inner: SpanExporter, done: (n: number, result: ExportResult) => void) {
    this.#inner = inner;
    this.#done = done;
  }

  export(spans: ReadableSpan[], resultCallback: (result: ExportResult) => void): void {
    this.#inner.export(spans, (result) => {
      this.#done(spans.length, result);
      resultCallback(result);
    });
  }

  shutdown(): Promise<void> {
    return this.#inner.shutdown();
  }

  forceFlush(): Promise<void> {
    return this.#inner.forceFlush?.() ?? Promise.resolve();
  }
}

/** The SDK's batch processor behind an exact bound of spans held (queued or in an export). */
class BoundedProcessor implements SpanProcessor {
  readonly #inner: BatchSpanProcessor;
  readonly #max: number;
  held = 0;
  queueFull = 0;

  constructor(inner: BatchSpanProcessor, max: number) {
    this.#inner = inner;
    this.#max = max;
  }

  onStart(): void {}

  onEnd(span: ReadableSpan): void {
    if (this.held >= this.#max) {
      this.queueFull++;
      return;
    }
    this.held++;
    this.#inner.onEnd(span);
  }

  forceFlush(): Promise<void> {
    return this.#inner.forceFlush();
  }

  shutdown(): Promise<void> {
    return this.#inner.shutdown();
  }
}

export class Tracing {
  readonly settings: TracingSettings;
  readonly tracer: Tracer;
  readonly #provider: TracerProvider;
  readonly #processor: BoundedProcessor;
  readonly #log: TracingLog | undefined;
  exported = 0;
  exportFailed = 0;
  #failing = false;

  constructor(settings: TracingSettings, log?: TracingLog, exporter?: SpanExporter) {
    this.settings = settings;
    this.#log = log;
    const inner =
      exporter ?? new OTLPTraceExporter({ url: settings.url, timeoutMillis: settings.exportTimeoutMs });
    const counting = new CountingExporter(inner, (n, r) => this.#exportDone(n, r));
    this.#processor = new BoundedProcessor(
      new BatchSpanProcessor({
        exporter: counting,
        maxQueueSize: settings.maxQueueSize,
        maxExportBatchSize: Math.min(settings.maxExportBatchSize, settings.maxQueueSize),
        scheduledDelayMillis: settings.scheduledDelayMs,
        // The exporter's own timeout ends an export first; this one only guards against a callback never called.
        exportTimeoutMillis: settings.exportTimeoutMs + 5_000,
      }),
      settings.maxQueueSize,
    );
    const root = new TraceIdRatioBasedSampler(settings.ratio);
    const sampler: Sampler = settings.parentBased ? new ParentBasedSampler({ root }) : root;
    this.#provider = new TracerProvider({
      sampler,
      resource: resourceFromAttributes({
        ...settings.resourceAttributes,
        'service.name': settings.serviceName,
        // Which process of the pod (each worker exports its own spans).
        'process.pid': process.pid,
      }),
      spanProcessors: [this.#processor],
    });
    this.tracer = this.#provider.getTracer('edgegate');
  }

  #exportDone(n: number, result: ExportResult): void {
    this.#processor.held -= n;
    if (result.code === ExportResultCode.SUCCESS) {
      this.exported += n;
      if (this.#failing) this.#log?.info('trace export recovered', { url: this.settings.url });
      this.#failing = false;
      return;
    }
    this.exportFailed += n;
    if (!this.#failing)
      this.#log?.warn('trace export failed; spans are dropped until it recovers', {
        url: this.settings.url,
        error: result.error?.message,
      });
    this.#failing = true;
  }

  /** Starts the trace of one request (its server span). */
  begin(req: IncomingMessage): RequestTrace {
    const h = req.headers;
    const parent = parseTraceparent(h.traceparent);
    let ctx = ROOT_CONTEXT;
    if (parent !== undefined) {
      const ts = h.tracestate;
      // An invalid tracestate is dropped as a whole: TraceState keeps only valid members (at most 32).
      const traceState = typeof ts === 'string' && ts !== '' ? new TraceState(ts) : undefined;
      ctx = trace.setSpanContext(ROOT_CONTEXT, {
        traceId: parent.traceId,
        spanId: parent.spanId,
        traceFlags: parent.flags & 1,
        isRemote: true,
        ...(traceState !== undefined ? { traceState } : {}),
      });
    }
    const method = req.method ?? 'GET';
    const span = this.tracer.startSpan(method, { kind: SpanKind.SERVER }, ctx);
    if (span.isRecording()) {
      const target = req.url ?? '';
      const q = target.indexOf('?');
      span.setAttributes({
        'http.request.method': method,
        'url.path': q < 0 ? target : target.slice(0, q),
        'url.scheme': (req.socket as { encrypted?: boolean }).encrypted ? 'https' : 'http',
        'server.address': h.host ?? h[':authority'] ?? '',
        'client.address': req.socket.remoteAddress ?? '',
        'network.protocol.version': req.httpVersionMajor === 2 ? '2' : req.httpVersion,
      });
      const ua = h['user-agent'];
      if (ua !== undefined) span.setAttribute('user_agent.original', ua);
    }
    return new RequestTrace(this, span, method);
  }

  /** Worker-wide counters for the primary's metrics. */
  counterValues(): Record<string, number> {
    return {
      [TRACING_EXPORTED_COUNTER]: this.exported,
      [`${TRACING_DROPPED_COUNTER}\u0000queue_full`]: this.#processor.queueFull,
      [`${TRACING_DROPPED_COUNTER}\u0000export_failed`]: this.exportFailed,
    };
  }

  /** Exports what is held now (benchmarks; shutdown() does it on drain). */
  flush(): Promise<void> {
    return this.#provider.forceFlush();
  }

  /** Exports what is held (bounded by the exporter's timeout), then stops. */
  shutdown(): Promise<void> {
    return this.#provider.shutdown();
  }
}

/** Span ids of the unsampled tries (no SDK span for them). */
const ids = new RandomIdGenerator();

/** What the request's record needs to know when it finishes. */
export interface TraceOutcome {
  status: number;
  route: string | undefined;
  service: string | undefined;
  datacenter: string | undefined;
  endpoint: EndpointData | undefined;
  retries: number;
  requestId: string;
  /** The gateway's error code, when it answered itself. */
  error: string | undefined;
}

/** The trace of one request: its server span, the policy span, the current try span. */
export class RequestTrace {
  readonly #tracing: Tracing;
  readonly server: Span;
  readonly #method: string;
  #ctx: Context | undefined;
  #policies: Span | undefined;
  #try: Span | undefined;
  #tryStatus = 0;
  #tries = 0;

  constructor(tracing: Tracing, server: Span, method: string) {
    this.#tracing = tracing;
    this.server = server;
    this.#method = method;
  }

  /** The request is sampled: its spans are exported. */
  get sampled(): boolean {
    return (this.server.spanContext().traceFlags & 1) === 1;
  }

  #context(): Context {
    this.#ctx ??= trace.setSpan(ROOT_CONTEXT, this.server);
    return this.#ctx;
  }

  policiesStart(): void {
    // Every sampler here decides by the trace id or the parent: the children of an unsampled span are unsampled too.
    if (!this.server.isRecording()) return;
    this.#policies = this.#tracing.tracer.startSpan(
      'edgegate.policies',
      { kind: SpanKind.INTERNAL },
      this.#context(),
    );
  }

  policiesEnd(allowed: boolean, code?: string, reason?: string): void {
    const s = this.#policies;
    if (s === undefined) return;
    this.#policies = undefined;
    if (s.isRecording()) {
      s.setAttribute('edgegate.policy.outcome', allowed ? 'pass' : 'deny');
      if (code !== undefined) s.setAttribute('edgegate.policy.code', code);
      if (reason !== undefined) s.setAttribute('edgegate.policy.reason', reason);
    }
    s.end();
  }

  /**
   * A try is being dispatched: starts its client span and returns the upstream headers with the client's
   * `traceparent` / `tracestate` replaced by this try's.
   */
  startTry(headers: string[], endpoint: EndpointData, cluster: ClusterData, path: string): string[] {
    this.endTry(undefined);
    const resend = this.#tries++;
    let traceparent: string;
    let tracestate: string | undefined;
    if (this.server.isRecording()) {
      const span = this.#tracing.tracer.startSpan(this.#method, { kind: SpanKind.CLIENT }, this.#context());
      this.#try = span;
      this.#tryStatus = 0;
      if (span.isRecording()) {
        const tls = cluster.pool.tls !== undefined;
        const host = endpoint.address.includes(':') ? `[${endpoint.address}]` : endpoint.address;
        const q = path.indexOf('?');
        span.setAttributes({
          'http.request.method': this.#method,
          'server.address': endpoint.address,
          'server.port': endpoint.port,
          'url.full': `${tls ? 'https' : 'http'}://${host}:${endpoint.port}${q < 0 ? path : path.slice(0, q)}`,
          'edgegate.service': cluster.service,
          'edgegate.datacenter': cluster.datacenter,
          'edgegate.endpoint': endpoint.id,
        });
        if (resend > 0) span.setAttribute('http.request.resend_count', resend);
      }
      const sc = span.spanContext();
      traceparent = formatTraceparent(sc.traceId, sc.spanId, sc.traceFlags);
      tracestate = sc.traceState?.serialize();
    } else {
      // Unsampled: no span is recorded, but the trace goes on upstream with a span id of this try.
      const sc = this.server.spanContext();
      traceparent = formatTraceparent(sc.traceId, ids.generateSpanId(), 0);
      tracestate = sc.traceState?.serialize();
    }
    const out: string[] = [];
    for (let i = 0; i < headers.length; i += 2) {
      const name = headers[i]!;
      if (name.length === 11 || name.length === 10) {
        const l = name.toLowerCase();
        if (l === 'traceparent' || l === 'tracestate') continue;
      }
      out.push(name, headers[i + 1]!);
    }
    out.push('traceparent', traceparent);
    if (tracestate !== undefined && tracestate !== '') out.push('tracestate', tracestate);
    return out;
  }

  /** The current try's response status arrived. */
  tryAnswered(status: number): void {
    this.#tryStatus = status;
  }

  /** The current try is over (error: it failed without a complete answer). */
  endTry(error: Error | undefined): void {
    const s = this.#try;
    if (s === undefined) return;
    this.#try = undefined;
    if (s.isRecording()) {
      const status = this.#tryStatus;
      if (status > 0) s.setAttribute('http.response.status_code', status);
      if (error !== undefined) {
        const code = (error as { code?: unknown }).code;
        s.setAttribute('error.type', typeof code === 'string' ? code : error.name);
        s.setStatus({ code: SpanStatusCode.ERROR, message: error.message });
      } else if (status >= 400) {
        s.setAttribute('error.type', String(status));
        s.setStatus({ code: SpanStatusCode.ERROR });
      }
    }
    s.end();
  }

  /** The response is over: ends every span still open, the server span last. */
  finish(o: TraceOutcome): void {
    // A gate that never answered (the client left, or its evaluation failed: the answer's code says which).
    if (this.#policies !== undefined) this.policiesEnd(false, undefined, 'unfinished');
    if (this.#try !== undefined) this.endTry(new Error('the response ended before the try did'));
    const s = this.server;
    if (s.isRecording()) {
      if (o.route !== undefined) {
        s.updateName(`${this.#method} ${o.route}`);
        s.setAttribute('edgegate.route', o.route);
      }
      if (o.service) s.setAttribute('edgegate.service', o.service);
      if (o.datacenter) s.setAttribute('edgegate.datacenter', o.datacenter);
      if (o.endpoint !== undefined) {
        s.setAttribute('edgegate.endpoint', o.endpoint.id);
        s.setAttribute('edgegate.endpoint.address', `${o.endpoint.address}:${o.endpoint.port}`);
      }
      s.setAttribute('http.response.status_code', o.status);
      s.setAttribute('edgegate.request_id', o.requestId);
      if (o.retries > 0) s.setAttribute('edgegate.retries', o.retries);
      if (o.error !== undefined) s.setAttribute('edgegate.error_code', o.error);
      if (o.status >= 500) {
        s.setAttribute('error.type', o.error ?? String(o.status));
        s.setStatus({ code: SpanStatusCode.ERROR });
      }
    }
    s.end();
  }
}
