import { describe, expect, it } from 'vitest';
import { literalFirstSegment } from '../../../src/table/index.ts';

describe('literalFirstSegment (regex index key)', () => {
  it.each([
    ['/orders/[0-9]+', 'orders'],
    ['/re123/[0-9]+', 're123'],
    ['/health', 'health'],
    ['/a/b', 'a'],
    ['/v1-beta/x.*', 'v1-beta'],
    ['/a/b{0,1}', 'a'],
  ])('%s is indexed under %s', (source, segment) => {
    expect(literalFirstSegment(source)).toBe(segment);
  });

  it.each([
    '.*',
    '/ord.*',
    '/ab?/x',
    '/a+/x',
    '/a/b|/c/d',
    '(/a|/b)/x',
    '/(a|b)/x',
    '/a\\.b/x',
    '/[ab]/x',
    '/',
    '/a/*',
  ])('%s is not indexed (it can match more than one first segment)', (source) => {
    expect(literalFirstSegment(source)).toBeUndefined();
  });

  it('every path a segment-indexed regex matches has that first segment', () => {
    const cases: [string, string[]][] = [
      ['/orders/[0-9]+', ['/orders/1', '/orders/42']],
      ['/a/b{0,1}', ['/a/', '/a/b']],
      ['/health', ['/health']],
    ];
    for (const [source, paths] of cases) {
      const re = new RegExp(`^(?:${source})$`);
      for (const p of paths) {
        expect(re.test(p)).toBe(true);
        expect(p.split('/')[1]).toBe(literalFirstSegment(source));
      }
    }
  });
});
