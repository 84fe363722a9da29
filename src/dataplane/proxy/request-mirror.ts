/**
 * The RequestMirror filter at request time: a copy of a share of a rule's requests goes to a second cluster,
 * fire-and-forget. The copy is sent after the request itself was handed to its exchange, its answer is read and
 * dropped as it arrives (never buffered), and nothing about it reaches the client: a dead, slow or failing mirror
 * never delays or fails the request.
 *
 * Bounded: at most `maxInFlight` copies per worker are in flight (more are dropped and counted), each for at most
 * `timeoutMs`, and only to an endpoint below its pool capacity; bodies are copied only up to the filter's
 * `maxBodyBytes` (a larger body skips the copy, never the request). The copy's Host is the request's with
 * `-shadow` appended to the host name (Envoy's convention, which Gateway API implementations share).
 */
import type { IncomingMessage } from 'node:http';
import type { Dispatcher } from 'undici';
import type { ClusterRuntime } from './cluster-runtime.ts';
import { LB_ROUND_ROBIN } from './cluster-runtime.ts';
import type { BodySink } from './request-body.ts';
import type { Upstream } from './upstream-pools.ts';

/** A mirror of one rule, resolved per table. */
export interface MirrorTarget {
  cluster: ClusterRuntime;
  fraction: number;
  maxBodyBytes: number;
}

export type MirrorDropReason = 'in_flight' | 'body_too_large' | 'no_endpoint' | 'overloaded' | 'cancelled';

/** Worker-wide mirror counters (edgegate_mirror_*). */
export class MirrorCounters {
  sent = 0;
  errors = 0;
  dropped: Record<MirrorDropReason, number> = {
    in_flight: 0,
    body_too_large: 0,
    no_endpoint: 0,
    overloaded: 0,
    cancelled: 0,
  };
}

export interface MirrorSettings {
  /** Copies in flight per worker; more are dropped. */
  maxInFlight: number;
  /** A copy not answered completely within this is aborted. */
  timeoutMs: number;
}

class MirrorTimeout extends Error {
  readonly code = 'EDGEGATE_MIRROR_TIMEOUT';
}

/** The undici handler of one copy: reads and drops the answer. */
class MirrorCall implements Dispatcher.DispatchHandler {
  readonly #mirrors: RequestMirrors;
  readonly #upstream: Upstream;
  #controller: Dispatcher.DispatchController | null = null;
  #timer: NodeJS.Timeout | undefined;
  #done = false;

  constructor(mirrors: RequestMirrors, upstream: Upstream, timeoutMs: number) {
    this.#mirrors = mirrors;
    this.#upstream = upstream;
    this.#timer = setTimeout(onMirrorTimer, timeoutMs, this);
  }

  onRequestStart(controller: Dispatcher.DispatchController): void {
    this.#controller = controller;
  }
  onResponseStart(): void {}
  onResponseData(): void {}
  onResponseEnd(): void {
    this.finish(false);
  }
  onResponseError(_c: Dispatcher.DispatchController | null, _err: Error): void {
    this.finish(true);
  }

  timedOut(): void {
    this.#timer = undefined;
    if (this.#done) return;
    if (this.#controller !== null) this.#controller.abort(new MirrorTimeout('mirror timeout'));
    else this.finish(true);
  }

  finish(failed: boolean): void {
    if (this.#done) return;
    this.#done = true;
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#upstream.inFlight--;
    this.#mirrors.settled(failed);
  }
}

function onMirrorTimer(call: MirrorCall): void {
  call.timedOut();
}

/** `api.example.com:8080` → `api.example.com-shadow:8080`; `[::1]:80` → `[::1]-shadow:80`. */
export function shadowHost(host: string): string {
  const close = host.lastIndexOf(']');
  const colon = host.lastIndexOf(':');
  if (colon > close && colon >= 0) return `${host.slice(0, colon)}-shadow${host.slice(colon)}`;
  return `${host}-shadow`;
}

/**
 * An HTTP/2 stream's copies wait for the end of the I/O phase, as its first try does (exchange.ts): a stream reset
 * in the same read (rapid reset) sends no copy either.
 */
function onDeferredSend(p: PendingMirror, body: Buffer | null): void {
  p.sendNow(body);
}

/** The copies a request still owes once its body is known. */
export class PendingMirror {
  readonly #mirrors: RequestMirrors;
  readonly #req: IncomingMessage;
  readonly #targets: MirrorTarget[];
  readonly #method: string;
  readonly #path: string;
  readonly #headers: string[];
  /** The request's own exchange: a copy goes for exactly the requests that reached an upstream. */
  #primary: { readonly reachedUpstream: boolean } | undefined;

  constructor(
    mirrors: RequestMirrors,
    req: IncomingMessage,
    targets: MirrorTarget[],
    method: string,
    path: string,
    headers: string[],
  ) {
    this.#mirrors = mirrors;
    this.#req = req;
    this.#targets = targets;
    this.#method = method;
    this.#path = path;
    this.#headers = headers;
  }

  /** The largest body any of the copies takes. */
  get limit(): number {
    let max = 0;
    for (const t of this.#targets) max = Math.max(max, t.maxBodyBytes);
    return max;
  }

  /** The body is known (null: empty): send every copy whose bound it fits, count the others. */
  send(body: Buffer | null, primary: { readonly reachedUpstream: boolean }): void {
    this.#primary = primary;
    if (this.#req.httpVersionMajor === 2) setImmediate(onDeferredSend, this, body);
    else this.sendNow(body);
  }

  sendNow(body: Buffer | null): void {
    const stream = (this.#req as { stream?: { destroyed: boolean } }).stream;
    // An HTTP/2 stream reset before its request went upstream (rapid reset) gets no copy either; one whose request
    // was already written upstream does, whatever the client did next.
    if (stream?.destroyed === true && this.#primary?.reachedUpstream !== true) {
      for (let i = 0; i < this.#targets.length; i++) this.#mirrors.drop('cancelled');
      return;
    }
    for (const t of this.#targets) {
      if (body !== null && body.length > t.maxBodyBytes) this.#mirrors.drop('body_too_large');
      else this.#mirrors.dispatch(t, this.#method, this.#path, this.#headers, body);
    }
  }

  /** The body is larger than the gateway reads (streamed to the request's upstream): no copy. */
  skip(): void {
    for (let i = 0; i < this.#targets.length; i++) this.#mirrors.drop('body_too_large');
  }

  /** A BodySink that hands the body to the exchange first, then sends the copies. */
  sinkFor(exchange: BodySink & { readonly reachedUpstream: boolean }): BodySink {
    return {
      bodyComplete: (body) => {
        exchange.bodyComplete(body);
        this.send(body, exchange);
      },
      bodyStreams: () => {
        exchange.bodyStreams();
        this.skip();
      },
      bodyTimedOut: () => exchange.bodyTimedOut(),
      bodyAborted: () => exchange.bodyAborted(),
    };
  }
}

/** The mirrors of one worker: sampling, the in-flight bound, dispatch, counters. */
export class RequestMirrors {
  readonly counters = new MirrorCounters();
  readonly settings: MirrorSettings;
  inFlight = 0;

  constructor(settings: MirrorSettings) {
    this.settings = settings;
  }

  /**
   * The copies this request gets (each target samples its share), undefined: none. They are sent once the body is
   * known (PendingMirror.send). `declaredLength`: Content-Length, when the request has a body; a copy whose bound
   * it exceeds is skipped at once.
   */
  start(
    req: IncomingMessage,
    targets: MirrorTarget[],
    method: string,
    path: string,
    headers: string[],
    hasBody: boolean,
    declaredLength: string | undefined,
  ): PendingMirror | undefined {
    let chosen: MirrorTarget[] | undefined;
    for (const t of targets) {
      if (t.fraction < 1 && !(Math.random() < t.fraction)) continue;
      if (hasBody && declaredLength !== undefined && Number(declaredLength) > t.maxBodyBytes) {
        this.drop('body_too_large');
        continue;
      }
      if (chosen === undefined) chosen = [t];
      else chosen.push(t);
    }
    if (chosen === undefined) return undefined;
    return new PendingMirror(this, req, chosen, method, path, shadowHeaders(headers));
  }

  drop(reason: MirrorDropReason): void {
    this.counters.dropped[reason]++;
  }

  dispatch(t: MirrorTarget, method: string, path: string, headers: string[], body: Buffer | null): void {
    if (this.inFlight >= this.settings.maxInFlight) return this.drop('in_flight');
    const up = t.cluster.pick(LB_ROUND_ROBIN, undefined, undefined);
    if (up === undefined) return this.drop('no_endpoint');
    if (up.inFlight >= up.capacity) return this.drop('overloaded');
    this.inFlight++;
    up.inFlight++;
    this.counters.sent++;
    const call = new MirrorCall(this, up, this.settings.timeoutMs);
    try {
      up.pool.dispatch(
        {
          path,
          method: method as Dispatcher.HttpMethod,
          headers,
          body,
          headersTimeout: this.settings.timeoutMs,
          bodyTimeout: this.settings.timeoutMs,
        },
        call,
      );
    } catch {
      call.finish(true);
    }
  }

  settled(failed: boolean): void {
    this.inFlight--;
    if (failed) this.counters.errors++;
  }
}

/** The request's upstream headers with Host given the `-shadow` suffix (a copy: the request keeps its own). */
function shadowHeaders(headers: string[]): string[] {
  const out = headers.slice();
  for (let i = 0; i < out.length; i += 2)
    if (out[i] === 'host') {
      out[i + 1] = shadowHost(out[i + 1]!);
      break;
    }
  return out;
}
