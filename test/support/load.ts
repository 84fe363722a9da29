/** A small bounded load generator over keep-alive node:http connections: fixed concurrency, fixed count. */
import { Agent, request } from 'node:http';

export interface LoadResult {
  statuses: number[];
  errors: string[];
  latenciesMs: number[];
}

export function percentile(values: number[], p: number): number {
  if (values.length === 0) return 0;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!;
}

export async function runLoad(
  port: number,
  opts: {
    total: number;
    concurrency: number;
    path?: string | ((i: number) => string);
    host?: string;
    headers?: Record<string, string>;
    /** Called after each completed request (e.g. to change the table mid-run). */
    onResult?: (done: number) => void;
    /** Stop early (before `total`) once this returns true. */
    stop?: () => boolean;
  },
): Promise<LoadResult> {
  const agent = new Agent({ keepAlive: true, maxSockets: opts.concurrency });
  const result: LoadResult = { statuses: [], errors: [], latenciesMs: [] };
  let next = 0;
  let done = 0;
  const one = (i: number) =>
    new Promise<void>((resolve) => {
      const started = performance.now();
      const path = typeof opts.path === 'function' ? opts.path(i) : (opts.path ?? '/');
      const req = request(
        {
          host: '127.0.0.1',
          port,
          path,
          agent,
          headers: { host: opts.host ?? 'test.local', ...opts.headers },
        },
        (res) => {
          res.resume();
          res.on('end', () => {
            result.statuses.push(res.statusCode ?? 0);
            result.latenciesMs.push(performance.now() - started);
            resolve();
          });
          res.on('error', (err) => {
            result.errors.push(err.message);
            resolve();
          });
        },
      );
      req.on('error', (err) => {
        result.errors.push(err.message);
        resolve();
      });
      req.end();
    });
  const worker = async () => {
    while (next < opts.total && !opts.stop?.()) {
      const i = next++;
      await one(i);
      done++;
      opts.onResult?.(done);
    }
  };
  await Promise.all(Array.from({ length: opts.concurrency }, worker));
  agent.destroy();
  return result;
}
