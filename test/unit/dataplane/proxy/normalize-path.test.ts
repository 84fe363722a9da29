import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { normalizePath } from '../../../../src/dataplane/proxy/normalize-path.ts';

describe('normalizePath', () => {
  it.each([
    ['/', '/'],
    ['/a/b', '/a/b'],
    ['/a//b///c', '/a/b/c'],
    ['/a/./b/', '/a/b/'],
    ['/a/../b', '/b'],
    ['/a/../../b', '/b'],
    ['/..', '/'],
    ['/a/..', '/'],
    ['/%2e%2e/secret', '/secret'],
    ['/public/%2E%2E/admin', '/admin'],
    ['/%7Euser/%41', '/~user/A'],
    ['/a%20b', '/a%20b'],
    ['/a%c3%a9', '/a%C3%A9'],
  ])('%s → %s', (input, output) => {
    expect(normalizePath(input)).toBe(output);
  });

  it.each(['', 'a/b', '/a%2Fb', '/a%5cb', '/a\\b', '/a%00', '/a%zz', '/a%2', '/a b', '/a\tb'])(
    'refuses %j',
    (input) => {
      expect(normalizePath(input)).toBeUndefined();
    },
  );

  it('keeps encoded slashes opaque when allowed', () => {
    expect(normalizePath('/a%2fb/../c', { allowEncodedSlash: true })).toBe('/c');
    expect(normalizePath('/a%2fb', { allowEncodedSlash: true })).toBe('/a%2Fb');
  });

  it('is idempotent and never yields dot segments or empty segments', () => {
    fc.assert(
      fc.property(
        fc.array(fc.constantFrom('a', 'b', '.', '..', '', '%2e', '%2E%2e', '%41', '~'), { maxLength: 12 }),
        (parts) => {
          const out = normalizePath(`/${parts.join('/')}`);
          expect(out).toBeDefined();
          expect(normalizePath(out!)).toBe(out);
          const segments = out!.split('/').slice(1, -1);
          expect(segments.every((s) => s !== '.' && s !== '..' && s !== '')).toBe(true);
        },
      ),
    );
  });
});
