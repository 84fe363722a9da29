// The primary's request/reply channel to workers: answers are matched by id, a silent worker is left out after
// the timeout, and a late answer is dropped.
import { describe, expect, it } from 'vitest';
import { WorkerRequests } from '../../../src/cluster/worker-requests.ts';

describe('WorkerRequests', () => {
  it('matches answers to requests by id, whatever their order', async () => {
    const requests = new WorkerRequests<string>();
    const ids: number[] = [];
    const a = requests.ask((id) => ids.push(id), 1000);
    const b = requests.ask((id) => ids.push(id), 1000);
    expect(new Set(ids).size).toBe(2);
    requests.answer(ids[1]!, 'second');
    requests.answer(ids[0]!, 'first');
    expect(await Promise.all([a, b])).toEqual(['first', 'second']);
  });

  it('resolves undefined when no answer comes in time, and drops a late one', async () => {
    const requests = new WorkerRequests<number>();
    let sent = 0;
    const silent = requests.ask((id) => {
      sent = id;
    }, 5);
    expect(await silent).toBeUndefined();
    requests.answer(sent, 42);
    // The next request gets its own answer, not the late one.
    const next = requests.ask((id) => queueMicrotask(() => requests.answer(id, 7)), 1000);
    expect(await next).toBe(7);
  });
});
