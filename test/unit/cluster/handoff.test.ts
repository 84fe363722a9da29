// The table hand-off: served once every live worker acknowledged the published version, including a worker that
// greeted after the publish; a worker that exits no longer holds it up; a newer publish replaces a pending one.
import { describe, expect, it } from 'vitest';
import { type HandoffStats, TableHandoff } from '../../../src/cluster/handoff.ts';

function track() {
  const done: HandoffStats[] = [];
  return { done, handoff: new TableHandoff((s) => done.push(s)) };
}

describe('TableHandoff', () => {
  it('is done when the last live worker acknowledged, with the slowest apply time', () => {
    const { done, handoff } = track();
    handoff.begin(3, 1200, [0, 1]);
    handoff.acknowledged(0, 3, 4.5);
    expect(done).toEqual([]);
    handoff.acknowledged(1, 3, 7.25);
    expect(done).toHaveLength(1);
    expect(done[0]).toMatchObject({ version: 3, bytes: 1200, workers: 2, maxApplyMs: 7.25 });
    expect(handoff.last?.version).toBe(3);
    // A late duplicate changes nothing.
    handoff.acknowledged(1, 3, 1);
    expect(done).toHaveLength(1);
  });

  it('waits for a worker that joined after the publish, once', () => {
    const { done, handoff } = track();
    handoff.begin(5, 10, [0]);
    handoff.join(1, 5);
    handoff.join(1, 5);
    handoff.acknowledged(0, 5, 1);
    expect(done).toEqual([]);
    handoff.acknowledged(1, 5, 1);
    expect(done[0]?.workers).toBe(2);
  });

  it('ignores acknowledgements of another version, and a newer publish replaces the pending one', () => {
    const { done, handoff } = track();
    handoff.begin(1, 10, [0, 1]);
    handoff.begin(2, 10, [0, 1]);
    handoff.acknowledged(0, 1, 1);
    handoff.acknowledged(1, 1, 1);
    expect(done).toEqual([]);
    handoff.acknowledged(0, 2, 1);
    handoff.acknowledged(1, 2, 1);
    expect(done.map((d) => d.version)).toEqual([2]);
  });

  it('a worker that exits no longer holds the hand-off up', () => {
    const { done, handoff } = track();
    handoff.begin(4, 10, [0, 1]);
    handoff.acknowledged(0, 4, 1);
    handoff.left(1);
    expect(done.map((d) => d.version)).toEqual([4]);
    // Leaving when nothing is pending is harmless.
    handoff.left(0);
    expect(done).toHaveLength(1);
  });
});
