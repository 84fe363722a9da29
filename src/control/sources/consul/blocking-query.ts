/**
 * One Consul watch: a loop of blocking queries on one endpoint, following the rules of Consul's docs —
 * - the index sent is never 0 after the first answer (an index of 0 from a buggy server is treated as 1, so the
 *   next request still blocks instead of returning at once forever);
 * - an index that goes backwards (a restored snapshot, a new leader, a restarted dev agent) resets to 0: the
 *   answer's data is applied and the next request starts over without `index`;
 * - `wait` is sent with every blocking request and the client timeout sits above it (Consul adds up to
 *   wait/16 of jitter);
 * - a token bucket paces the loop, so a constantly changing key degrades to polling;
 * - errors back off exponentially with jitter, and the next request after an error does not block (index 0).
 * An endpoint that sends no `X-Consul-Index` cannot block: it is polled every `pollMs`.
 * Data is handed on only when the index moved (or on the first answer, or after a reset); a timed-out wait with
 * the same index hands on nothing.
 */
import { backoffDelay, pause } from '../../../lib/backoff.ts';
import { TokenBucket } from '../../../lib/token-bucket.ts';
import type { ConsulHttp, ConsulResponse } from './consul-http.ts';

export type WatchErrorKind = 'network' | 'timeout' | 'forbidden' | 'http' | 'invalid';

export interface WatchError {
  kind: WatchErrorKind;
  status?: number;
  message: string;
}

export interface BlockingQueryOptions {
  http: ConsulHttp;
  path: string;
  query: Record<string, string>;
  waitMs: number;
  ratePerSecond: number;
  rateBurst: number;
  backoffBaseMs: number;
  backoffMaxMs: number;
  /** Interval for endpoints that answer without an index (cannot block). */
  pollMs: number;
  /** Client deadline beyond wait + wait/16 (default 5 s). */
  timeoutSlackMs?: number;
  onData: (body: unknown, res: ConsulResponse) => void;
  onError: (err: WatchError, consecutive: number) => void;
  /** Every successful answer (even without a change): the watch is in contact. */
  onOk?: (res: ConsulResponse) => void;
  /** Every blocking request (one sent with `index`) that finished — answered, failed or timed out, not stopped: its duration in seconds. */
  onBlockingQuery?: (seconds: number) => void;
  random?: () => number;
}

export class BlockingQuery {
  readonly #o: BlockingQueryOptions;
  readonly #bucket: TokenBucket;
  readonly #abort = new AbortController();
  #index = 0;
  #requests = 0;
  #failures = 0;
  #answered = false;
  #loop: Promise<void> | undefined;

  constructor(opts: BlockingQueryOptions) {
    this.#o = opts;
    this.#bucket = TokenBucket.perSecond(opts.ratePerSecond, opts.rateBurst, performance.now());
  }

  /** The index the next request will send (0: none). */
  get index(): number {
    return this.#index;
  }
  get requests(): number {
    return this.#requests;
  }
  /** Consecutive failures (0 when the last request succeeded). */
  get failures(): number {
    return this.#failures;
  }
  /** True once an answer was handed on. */
  get answered(): boolean {
    return this.#answered;
  }
  get stopped(): boolean {
    return this.#abort.signal.aborted;
  }

  start(): this {
    this.#loop ??= this.#run();
    return this;
  }

  /** Aborts the in-flight request at once; resolves when the loop has ended. */
  async stop(): Promise<void> {
    this.#abort.abort();
    await this.#loop;
  }

  async #run(): Promise<void> {
    const signal = this.#abort.signal;
    while (!signal.aborted) {
      const wait = this.#bucket.tryTake(performance.now());
      if (wait > 0) {
        await pause(wait, signal);
        continue;
      }
      const outcome = await this.#once(signal);
      if (signal.aborted) return;
      if (outcome === 'error') {
        await pause(
          backoffDelay(
            this.#failures,
            { baseMs: this.#o.backoffBaseMs, maxMs: this.#o.backoffMaxMs },
            this.#o.random,
          ),
          signal,
        );
      } else if (outcome === 'poll') {
        await pause(this.#o.pollMs, signal);
      }
    }
  }

  async #once(signal: AbortSignal): Promise<'error' | 'poll' | 'block'> {
    const o = this.#o;
    const blocking = this.#index > 0;
    const query: Record<string, string | undefined> = {
      ...o.query,
      index: blocking ? String(this.#index) : undefined,
      wait: blocking ? `${o.waitMs}ms` : undefined,
    };
    // Consul adds up to wait/16 to the wait; the client deadline must come after that, with slack for transfer.
    const slack = o.timeoutSlackMs ?? 5000;
    const timeoutMs = blocking
      ? o.waitMs + Math.ceil(o.waitMs / 16) + slack
      : slack + Math.min(o.waitMs, 25_000);
    this.#requests++;
    const started = performance.now();
    let res: ConsulResponse;
    try {
      res = await o.http.get(o.path, query, { signal, timeoutMs });
    } catch (err) {
      if (signal.aborted) return 'error';
      if (blocking) o.onBlockingQuery?.((performance.now() - started) / 1000);
      const e = err as Error & { code?: string; status?: number };
      const timeout =
        e.name === 'TimeoutError' ||
        e.code === 'UND_ERR_HEADERS_TIMEOUT' ||
        e.code === 'UND_ERR_BODY_TIMEOUT';
      return this.#fail({
        kind: e.status ? 'invalid' : timeout ? 'timeout' : 'network',
        status: e.status,
        message: `${o.path}: ${timeout ? `no answer within ${timeoutMs} ms` : e.message || e.code || String(err)}`,
      });
    }
    if (blocking) o.onBlockingQuery?.((performance.now() - started) / 1000);
    if (res.status === 403)
      return this.#fail({
        kind: 'forbidden',
        status: 403,
        message: `${o.path}: 403 ${res.text.trim().slice(0, 200)}`,
      });
    if (res.status !== 200)
      return this.#fail({
        kind: 'http',
        status: res.status,
        message: `${o.path}: ${res.status} ${res.text.trim().slice(0, 200)}`,
      });

    this.#failures = 0;
    o.onOk?.(res);
    if (res.index === undefined) {
      // Not a blocking endpoint (or a proxy ate the header): poll it.
      this.#index = 0;
      this.#deliver(res);
      return 'poll';
    }
    const previous = this.#index;
    if (res.index < previous) {
      this.#index = 0;
      this.#deliver(res);
      return 'block';
    }
    this.#index = Math.max(1, res.index);
    if (!this.#answered || res.index !== previous) this.#deliver(res);
    return 'block';
  }

  #deliver(res: ConsulResponse): void {
    this.#answered = true;
    this.#o.onData(res.body, res);
  }

  #fail(err: WatchError): 'error' {
    // After an error the server may not be the one that issued the index (a restarted agent, another server
    // behind a balancer, a restored snapshot): a blocking request on an index the new server has not reached
    // would hang for the whole wait. Start over with a non-blocking read, which also detects an index reset.
    this.#index = 0;
    this.#failures++;
    this.#o.onError(err, this.#failures);
    return 'error';
  }
}
