// The node is shared by the node test files one at a time: a lease from its control socket. A second taker waits
// until the first releases; one that gives up waiting (its timeout) is skipped, not granted a lease nobody holds.
import { describe, expect, it } from 'vitest';
import { sharedNode } from '../../support/node-client.ts';

const node = sharedNode();

describe('the node lease', () => {
  it('grants one holder at a time, in order, skipping a waiter that gave up', async () => {
    const releaseFirst = await node.lease('lease.test.ts first', 30 * 60_000);
    // Nobody else gets it while it is held: this one gives up after a second.
    await expect(node.lease('lease.test.ts impatient', 1_000)).rejects.toThrow(/no answer in 1000 ms/);
    let secondGranted = false;
    const second = node.lease('lease.test.ts second', 60_000).then((release) => {
      secondGranted = true;
      return release;
    });
    // Give the second request time to reach the queue (and prove it waits): a lease with a short timeout of its
    // own must also fail meanwhile.
    await expect(node.lease('lease.test.ts probe', 500)).rejects.toThrow(/no answer/);
    expect(secondGranted).toBe(false);
    await releaseFirst();
    const releaseSecond = await second;
    expect(secondGranted).toBe(true);
    await releaseSecond();
    // Free again: granted at once.
    const again = await node.lease('lease.test.ts again', 5_000);
    await again();
  }, 60_000);
});
