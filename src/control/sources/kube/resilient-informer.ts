/**
 * A list+watch informer that keeps itself alive. @kubernetes/client-node's ListWatch relists on 410 Gone but
 * stops for good after any other error (API server down, connection reset, 5xx, 403): this wrapper restarts it
 * with exponential backoff and jitter, resuming from the last resourceVersion (a too-old one answers 410, which
 * relists). `synced` turns true after the first complete list and stays true: the cache keeps the last known
 * state while the API server is away.
 */
import type { KubernetesObject } from '@kubernetes/client-node';
import { type BackoffOptions, backoffDelay } from '../../../lib/backoff.ts';

/** The part of client-node's ListWatch this uses (a fake in unit tests). */
export interface InformerLike<T> {
  on(verb: 'add' | 'update' | 'delete', cb: (obj: T) => void): void;
  on(verb: 'error', cb: (err?: unknown) => void): void;
  start(): Promise<void>;
  stop(): Promise<void>;
  list(): ReadonlyArray<T>;
  get(name: string, namespace?: string): T | undefined;
}

export interface ResilientInformerOptions<T> {
  /** For logs: `gatewayroutes (all namespaces)`. */
  name: string;
  create: () => InformerLike<T>;
  /**
   * Something in the cache changed (or the first list completed). After the first list, a change comes with the
   * object and what happened to it (a relist after a restart reports its differences the same way).
   */
  onChange: (verb?: 'add' | 'update' | 'delete', obj?: T) => void;
  /** An error stopped the informer; it restarts after `delayMs`. */
  onError?: (err: unknown, delayMs: number) => void;
  backoff?: BackoffOptions;
  random?: () => number;
}

export const DEFAULT_BACKOFF: BackoffOptions = { baseMs: 500, maxMs: 30_000 };

export class ResilientInformer<T extends KubernetesObject = KubernetesObject> {
  readonly name: string;
  readonly #opts: ResilientInformerOptions<T>;
  readonly #informer: InformerLike<T>;
  #synced = false;
  #stopped = false;
  #failures = 0;
  #attempt = 0;
  #failedAttempt = -1;
  #timer: NodeJS.Timeout | undefined;
  #restarts = 0;
  #errors = 0;

  constructor(opts: ResilientInformerOptions<T>) {
    this.name = opts.name;
    this.#opts = opts;
    this.#informer = opts.create();
    const changed = (verb: 'add' | 'update' | 'delete') => (obj: T) => {
      // Events flow again: the watch is healthy, so the next failure starts from the base delay.
      this.#failures = 0;
      if (this.#synced) opts.onChange(verb, obj);
    };
    this.#informer.on('add', changed('add'));
    this.#informer.on('update', changed('update'));
    this.#informer.on('delete', changed('delete'));
    this.#informer.on('error', (err) => this.#failed(err));
  }

  get synced(): boolean {
    return this.#synced;
  }

  list(): ReadonlyArray<T> {
    return this.#informer.list();
  }

  get(name: string, namespace?: string): T | undefined {
    return this.#informer.get(name, namespace);
  }

  stats(): { restarts: number; errors: number; synced: boolean } {
    return { restarts: this.#restarts, errors: this.#errors, synced: this.#synced };
  }

  start(): void {
    void this.#run();
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    clearTimeout(this.#timer);
    await this.#informer.stop();
  }

  async #run(): Promise<void> {
    if (this.#stopped) return;
    const attempt = ++this.#attempt;
    try {
      await this.#informer.start();
    } catch (err) {
      this.#failed(err);
      return;
    }
    // start() resolves after the list and the watch request; a failure on the way was reported through 'error'.
    if (this.#failedAttempt === attempt || this.#stopped) return;
    this.#failures = 0;
    if (!this.#synced) {
      this.#synced = true;
      this.#opts.onChange();
    }
  }

  #failed(err: unknown): void {
    this.#errors++;
    this.#failedAttempt = this.#attempt;
    if (this.#stopped || this.#timer) return;
    this.#failures++;
    const delay = backoffDelay(
      this.#failures,
      this.#opts.backoff ?? DEFAULT_BACKOFF,
      this.#opts.random ?? Math.random,
    );
    this.#opts.onError?.(err, delay);
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      this.#restarts++;
      void this.#run();
    }, delay);
  }
}
