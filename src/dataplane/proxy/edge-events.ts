/**
 * What the edge of one proxy process refuses or fails at: refusals counted by listener protocol and reason
 * (`edgegate_requests_refused_total`), exceptions caught while handling a request counted by where they were caught
 * (`edgegate_request_handler_errors_total`), and a sampled log of both. The first event of a kind is logged at once,
 * then at most one line per kind every `logIntervalMs`, carrying how many were left out in between: a flood of bad
 * requests costs a counter increment each, not a log line per packet.
 *
 * One instance per process (`edgeEvents`): every listener of the process reports here, and the process's metrics
 * snapshot reads `counterValues()`.
 */

import {
  HANDLER_ERRORS_COUNTER,
  REFUSED_COUNTER,
  UPSTREAM_H2_SESSION_COUNTER,
  WEBSOCKET_COUNTER,
} from '../../cluster/worker-report.ts';
import type { Logger } from '../../lib/log.ts';
import type { AdmissionProtocol, RefusalReason } from './admission.ts';

/**
 * Where an exception was caught: in a listener's request or upgrade handler (the request is answered 500 or its
 * connection closed), or by the process-level safety net (nothing left to answer).
 */
export type ErrorSite = 'request' | 'upgrade' | 'uncaught_exception' | 'unhandled_rejection';

/** How a WebSocket upgrade ended: `opened`, or why no tunnel opened (the `result` label). */
export type WebSocketResult =
  | 'opened'
  | 'bad_request'
  | 'no_route'
  | 'policy_denied'
  | 'no_healthy_upstream'
  | 'upstream_refused'
  | 'upstream_error'
  | 'internal';

/** Why an HTTP/2 connection to an upstream failed or broke (the `reason` label). */
export type UpstreamSessionReason = 'connect' | 'goaway' | 'protocol' | 'closed';

interface LogWindow {
  /** Time (ms) from which the next event of this kind is logged. */
  next: number;
  /** Events of this kind not logged since the last line. */
  suppressed: number;
}

export class EdgeEvents {
  /** Where the sampled lines go; none: counted only. */
  logger: Logger | undefined;
  logIntervalMs = 10_000;
  /** Clock of the sampling (tests substitute one). */
  now: () => number = Date.now;
  readonly #counts = new Map<string, number>();
  readonly #windows = new Map<string, LogWindow>();

  /** A request (or connection) refused at the edge. `client`: the peer address, when known. */
  refused(protocol: AdmissionProtocol, reason: RefusalReason, message: string, client?: string): void {
    const key = `${REFUSED_COUNTER}\u0000${protocol}\u0000${reason}`;
    this.#counts.set(key, (this.#counts.get(key) ?? 0) + 1);
    const suppressed = this.#sample(key);
    if (suppressed >= 0)
      this.logger?.info('request refused at the edge', {
        protocol,
        reason,
        message,
        ...(client ? { client } : {}),
        ...(suppressed > 0 ? { suppressed } : {}),
      });
  }

  /** An exception caught while handling a request, or by the process-level safety net. Never silent. */
  handlerError(site: ErrorSite, err: unknown): void {
    const key = `${HANDLER_ERRORS_COUNTER}\u0000${site}`;
    this.#counts.set(key, (this.#counts.get(key) ?? 0) + 1);
    const suppressed = this.#sample(key);
    if (suppressed >= 0) {
      const e = err instanceof Error ? err : new Error(String(err));
      this.logger?.error('exception while handling a request; the process keeps serving', {
        site,
        error: e.message,
        stack: e.stack,
        ...(suppressed > 0 ? { suppressed } : {}),
      });
    }
  }

  /** A WebSocket upgrade's outcome (any listener and protocol). */
  websocket(protocol: AdmissionProtocol, result: WebSocketResult): void {
    this.#count(`${WEBSOCKET_COUNTER}\u0000${protocol}\u0000${result}`);
  }

  /** An HTTP/2 upstream connection (`h2` over TLS or `h2c`) that could not be opened or broke with an error. */
  upstreamSessionError(protocol: 'h2' | 'h2c', reason: UpstreamSessionReason): void {
    this.#count(`${UPSTREAM_H2_SESSION_COUNTER}\u0000${protocol}\u0000${reason}`);
  }

  #count(key: string): void {
    this.#counts.set(key, (this.#counts.get(key) ?? 0) + 1);
  }

  /** Counters for the metrics snapshot (plain numbers by key; see REFUSED_COUNTER). */
  counterValues(): Record<string, number> {
    return Object.fromEntries(this.#counts);
  }

  /** -1: do not log this one; else log it, with this many left out since the previous line. */
  #sample(key: string): number {
    const now = this.now();
    let w = this.#windows.get(key);
    if (w === undefined) {
      w = { next: 0, suppressed: 0 };
      this.#windows.set(key, w);
    }
    if (now < w.next) {
      w.suppressed++;
      return -1;
    }
    const suppressed = w.suppressed;
    w.next = now + this.logIntervalMs;
    w.suppressed = 0;
    return suppressed;
  }
}

export const edgeEvents = new EdgeEvents();

let installed = false;

/**
 * The process-level safety net of a proxy process: an exception nothing caught, or a rejected promise nobody
 * handled, is logged with its stack and counted (`edgegate_request_handler_errors_total{site}`), and the process
 * keeps serving its other connections. Without it one such error would end the worker and every request it
 * carries, and a client able to trigger it could keep the port down (each restart backs off longer). The
 * per-request guards of the listeners catch what happens while a request is handled; this net is for the rest
 * (timers, stream callbacks).
 */
export function installProcessSafetyNet(logger: Logger): void {
  edgeEvents.logger ??= logger;
  if (installed) return;
  installed = true;
  process.on('uncaughtException', (err) => edgeEvents.handlerError('uncaught_exception', err));
  process.on('unhandledRejection', (reason) => edgeEvents.handlerError('unhandled_rejection', reason));
}
