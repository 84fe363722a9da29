/**
 * The one request/reply channel from the primary to its workers: a request carries an id, the worker's answer
 * carries it back, and a worker that does not answer within the timeout is left out (undefined), never waited on.
 * Used for the figures asked at scrape time (`stats-request`, `metrics-request`).
 */
export class WorkerRequests<T> {
  #seq = 0;
  readonly #waiting = new Map<number, (value: T) => void>();

  /** Sends a request through `send(id)`; resolves with the answer, or undefined after `timeoutMs`. */
  ask(send: (id: number) => void, timeoutMs: number): Promise<T | undefined> {
    return new Promise((resolve) => {
      const id = ++this.#seq;
      const timer = setTimeout(() => {
        this.#waiting.delete(id);
        resolve(undefined);
      }, timeoutMs);
      this.#waiting.set(id, (value) => {
        clearTimeout(timer);
        this.#waiting.delete(id);
        resolve(value);
      });
      send(id);
    });
  }

  /** A worker's answer to request `id` (a late answer, after its timeout, is dropped). */
  answer(id: number, value: T): void {
    this.#waiting.get(id)?.(value);
  }
}
