import { describe, expect, it } from 'vitest';
import { TokenBucket } from '../../../src/lib/token-bucket.ts';

describe('TokenBucket', () => {
  it('gives its burst, then refills at its rate on the caller clock', () => {
    const b = TokenBucket.perSecond(10, 3, 0);
    expect(b.take(5, 0)).toBe(3);
    expect(b.tryTake(0)).toBe(100);
    expect(b.tryTake(50)).toBe(50);
    expect(b.tryTake(100)).toBe(0);
    expect(b.available(100)).toBe(0);
    expect(b.full(10_000)).toBe(true);
    expect(b.available(10_000)).toBe(3);
  });
});
