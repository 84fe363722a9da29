// The informer wrapper against client-node's real ListWatch, with the API server's watch replaced by a fake:
// a non-410 error restarts it with backoff (resuming from the last resourceVersion), a 410 relists, and nothing
// is reported before the first list completed.
import { type KubernetesObject, ListWatch, type Watch } from '@kubernetes/client-node';
import { describe, expect, it } from 'vitest';
import { ResilientInformer } from '../../../../../src/control/sources/kube/resilient-informer.ts';
import { backoffDelay } from '../../../../../src/lib/backoff.ts';
import { waitFor } from '../../../../support/wait.ts';

type Done = (err: unknown) => void;
type Cb = (phase: string, obj: unknown) => void;

class FakeWatch {
  calls: Array<{ rv: string; cb: Cb; done: Done }> = [];
  failNext: unknown[] = [];
  async watch(_path: string, query: Record<string, unknown>, cb: Cb, done: Done): Promise<AbortController> {
    const err = this.failNext.shift();
    if (err) {
      done(err);
      return new AbortController();
    }
    this.calls.push({ rv: String(query.resourceVersion), cb, done });
    return new AbortController();
  }
  get last() {
    return this.calls[this.calls.length - 1]!;
  }
}

const obj = (name: string, rv: string): KubernetesObject => ({
  metadata: { name, namespace: 'ns', resourceVersion: rv },
});

function setup(listResults: Array<KubernetesObject[] | Error>) {
  const watch = new FakeWatch();
  let lists = 0;
  const listFn = async () => {
    const r = listResults[Math.min(lists, listResults.length - 1)]!;
    lists++;
    if (r instanceof Error) throw r;
    return { metadata: { resourceVersion: String(100 + lists) }, items: r };
  };
  let changes = 0;
  const errors: number[] = [];
  const inf = new ResilientInformer({
    name: 'test',
    create: () => new ListWatch('/x', watch as unknown as Watch, listFn, false),
    onChange: () => changes++,
    onError: (_e, delay) => errors.push(delay),
    backoff: { baseMs: 5, maxMs: 40 },
  });
  return { inf, watch, lists: () => lists, changes: () => changes, errors };
}

describe('ResilientInformer', () => {
  it('reports nothing until the first list succeeds, retrying a failed list with backoff', async () => {
    const t = setup([new Error('connect ECONNREFUSED'), new Error('503'), [obj('a', '1')]]);
    t.inf.start();
    await waitFor(() => t.inf.synced, { timeoutMs: 5000 });
    expect(t.lists()).toBe(3);
    expect(t.errors).toHaveLength(2);
    expect(t.changes()).toBe(1); // the sync itself, not one per listed object
    expect(t.inf.list().map((o) => o.metadata?.name)).toEqual(['a']);
    await t.inf.stop();
  });

  it('restarts after a watch error (client-node would stop) and resumes from the last resourceVersion', async () => {
    const t = setup([[obj('a', '1')]]);
    t.inf.start();
    await waitFor(() => t.inf.synced && t.watch.calls.length === 1, { timeoutMs: 5000 });
    t.watch.last.cb('ADDED', obj('b', '150'));
    expect(t.inf.list()).toHaveLength(2);
    t.watch.last.done(Object.assign(new Error('socket hang up'), { code: 'ECONNRESET' }));
    await waitFor(() => t.watch.calls.length === 2, { timeoutMs: 5000 });
    expect(t.watch.last.rv).toBe('150');
    expect(t.lists()).toBe(1); // no relist needed
    expect(t.inf.stats().restarts).toBe(1);
    await t.inf.stop();
  });

  it('relists after 410 Gone and reports deletions that happened meanwhile', async () => {
    const t = setup([[obj('a', '1'), obj('b', '2')], [obj('b', '3')]]);
    t.inf.start();
    await waitFor(() => t.inf.synced && t.watch.calls.length === 1, { timeoutMs: 5000 });
    const before = t.changes();
    t.watch.last.cb('ERROR', { code: 410, message: 'too old resource version' });
    t.watch.last.done(null);
    await waitFor(() => t.lists() === 2 && t.watch.calls.length === 2, { timeoutMs: 5000 });
    expect(t.inf.list().map((o) => o.metadata?.name)).toEqual(['b']);
    expect(t.changes()).toBeGreaterThan(before);
    await t.inf.stop();
  });

  it('backs off exponentially with jitter, capped', () => {
    const o = { baseMs: 100, maxMs: 1000 };
    expect(backoffDelay(1, o, () => 0)).toBe(50);
    expect(backoffDelay(1, o, () => 1)).toBe(100);
    expect(backoffDelay(3, o, () => 1)).toBe(400);
    expect(backoffDelay(10, o, () => 1)).toBe(1000);
    expect(backoffDelay(10, o, () => 0)).toBe(500);
  });
});
