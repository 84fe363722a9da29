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

describe('normalizePath edge cases', () => {
  it.each([
    // Decoded once only: an encoded percent sign stays, so `%252e%252e` never becomes a dot segment.
    ['/%252e%252e/x', '/%252e%252e/x'],
    // A trailing `..` or `.` leaves a trailing slash (RFC 3986 §5.2.4).
    ['/a/b/..', '/a/'],
    ['/a/b/.', '/a/b/'],
    ['/%2e', '/'],
    ['/a/%2e%2e', '/'],
    // Names that merely start with dots are not dot segments.
    ['/...', '/...'],
    ['/.well-known/x', '/.well-known/x'],
    ['/..a/b', '/..a/b'],
    ['/a%2eb', '/a.b'],
    // Every unreserved class is decoded; reserved and non-ASCII escapes are upper-cased and kept.
    ['/%41%5a%61%7a%30%39%2d%5f%7e', '/AZaz09-_~'],
    ['/%c3%a9%3f%23', '/%C3%A9%3F%23'],
    ['/./../a', '/a'],
    ['/a/..//b', '/b'],
  ])('%s → %s', (input, output) => {
    expect(normalizePath(input)).toBe(output);
  });

  it.each(['/a%7fb', '/a\x7fb', '/a%1fb', '/a\x00b', '/a%0d%0ab', '/a\rb'])(
    'refuses control characters %j',
    (input) => {
      expect(normalizePath(input)).toBeUndefined();
      expect(normalizePath(input, { allowEncodedSlash: true })).toBeUndefined();
    },
  );

  it('an opaque encoded slash is one segment for dot-segment removal', () => {
    expect(normalizePath('/a%2Fb/..', { allowEncodedSlash: true })).toBe('/');
    expect(normalizePath('/x/a%2f..%2fb', { allowEncodedSlash: true })).toBe('/x/a%2F..%2Fb');
  });
});
