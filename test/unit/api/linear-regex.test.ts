/**
 * Route regexes: what the linear engine cannot run (or RE2 reads differently) is refused with a reason, and what
 * is admitted matches catastrophic inputs correctly, without hanging the test (correctness is asserted; timing is
 * the benchmark's business: bench/regex.bench.ts).
 */
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  compileRouteRegex,
  LINEAR_REGEX_ENGINE,
  MAX_REPETITION,
  regexSyntaxError,
} from '../../../src/api/linear-regex.ts';
import { formatPath, validateRoute } from '../../../src/api/validate.ts';

describe('regexSyntaxError', () => {
  it('the linear engine is on in this process', () => {
    expect(LINEAR_REGEX_ENGINE).toBe(true);
  });

  it.each([
    ['(a)\\1', /backreference \\1/],
    ['(?<n>a)\\k<n>', /named backreference/],
    ['(?=a)a', /lookahead/],
    ['(?!a)b', /lookahead/],
    ['(?<=a)b', /lookbehind/],
    ['(?<!a)b', /lookbehind/],
    ['(?i)abc', /inline flags/],
    ['(?i:a)b', /inline flags/],
    ['(?P<x>a)', /not supported/],
    ['x{17}', /counted repetition is limited to \{16\}/],
    ['[0-9]{1,64}', /counted repetition/],
    ['((a{5}){5})', /counted repetition/],
    ['\\pL+', /escape \\p/],
    ['\\p{L}+', /escape \\p/],
    ['abc\\z', /escape \\z/],
    ['\\Aabc', /escape \\A/],
    ['[[:alpha:]]+', /POSIX/],
    ['[]a]', /empty class/],
    ['[^]', /empty class/],
    ['\\x{41}', /two hex digits/],
    ['\\u41', /four hex digits/],
    ['[\\1]', /octal/],
    ['\\012', /octal/],
    ['/a(', /unterminated group|Unterminated group/i],
  ])('refuses %s', (pattern, reason) => {
    expect(regexSyntaxError(pattern)).toMatch(reason);
    expect(() => compileRouteRegex(pattern)).toThrow(reason);
  });

  it.each([
    '/orders/[0-9]+',
    '/api/v[0-9]+/users/[^/]+',
    '.*\\.(png|jpg|css)',
    '(a+)+$',
    '(a|aa)*c',
    '(?<name>[a-z]+)-x',
    '[a-f0-9]{16}[a-f0-9]{16}',
    `x{${MAX_REPETITION}}`,
    'x{2,}',
    '\\d+\\.\\w*\\s?\\bq\\B',
    '\\x41\\u0042\\cA\\0',
    '[\\]a-z\\-]+',
    '\\{2\\}',
  ])('admits %s', (pattern) => {
    expect(regexSyntaxError(pattern)).toBeUndefined();
  });
});

describe('catastrophic patterns match correctly on long inputs', () => {
  it.each([
    ['(a+)+$', 'a'.repeat(5000), true],
    ['(a+)+$', `${'a'.repeat(5000)}b`, false],
    ['(a|aa)*c', 'a'.repeat(8000), false],
    ['(x+x+)+y', 'x'.repeat(8000), false],
    ['(.*a){12}', 'a'.repeat(100), true],
    ['(.*a){12}', `${'a'.repeat(11)}${'b'.repeat(3000)}`, false],
    ['/api/(\\w+\\s?)*/x', `/api/${'word '.repeat(2000)}`, false],
  ])('%s against %d characters', (pattern, input, expected) => {
    expect(compileRouteRegex(pattern).test(input)).toBe(expected);
  });

  it('is anchored: the whole value must match', () => {
    const re = compileRouteRegex('/a|/b');
    expect(re.test('/a')).toBe(true);
    expect(re.test('/b')).toBe(true);
    expect(re.test('/ab')).toBe(false);
    expect(re.test('x/a')).toBe(false);
  });

  it('a fresh process that only imports the table module has the linear engine (every process shape)', () => {
    // The flags are set by the import, not by process arguments: the same holds for cluster workers, the
    // single-process shape and `edgegate validate`, which all import this module before compiling a regex.
    const script = `
      const { RoutingTable } = await import(${JSON.stringify(join(import.meta.dirname, '../../../src/table/index.ts'))});
      const { LINEAR_REGEX_ENGINE } = await import(${JSON.stringify(join(import.meta.dirname, '../../../src/api/linear-regex.ts'))});
      const re = new RegExp('^(?:(a+)+$)$');
      console.log(JSON.stringify({ linear: LINEAR_REGEX_ENGINE, m: re.test('a'.repeat(64) + 'b'), t: typeof RoutingTable }));
    `;
    const out = execFileSync(process.execPath, ['--input-type=module', '-e', script], {
      encoding: 'utf8',
      timeout: 60_000,
    });
    expect(JSON.parse(out)).toEqual({ linear: true, m: false, t: 'function' });
  });
});

describe('validate refuses what the linear engine cannot run, naming the field', () => {
  const route = (matches: unknown[]) => ({
    apiVersion: 'edgegate.io/v1alpha1',
    kind: 'GatewayRoute',
    metadata: { name: 'r', namespace: 'default' },
    spec: { rules: [{ matches, backends: [{ consul: { service: 's' } }] }] },
  });
  const errorsOf = (doc: unknown) => {
    const r = validateRoute(doc);
    return r.ok ? [] : r.errors.map((e) => `${formatPath(e.path)}: ${e.message}`);
  };

  it('backreference in a path, lookahead in a header, lookbehind in a query param, \\pL in a cookie', () => {
    const errs = errorsOf(
      route([
        { path: { type: 'RegularExpression', value: '/(a)\\1' } },
        { headers: [{ type: 'RegularExpression', name: 'x-a', value: '(?=a)a' }] },
        { queryParams: [{ type: 'RegularExpression', name: 'q', value: '(?<=a)b' }] },
        { cookies: [{ type: 'RegularExpression', name: 'c', value: '\\pL+' }] },
        { path: { type: 'RegularExpression', value: '/x{100}' } },
      ]),
    );
    expect(errs).toEqual([
      expect.stringMatching(
        /^spec\.rules\[0\]\.matches\[0\]\.path\.value: invalid regular expression: backreference/,
      ),
      expect.stringMatching(/^spec\.rules\[0\]\.matches\[1\]\.headers\[0\]\.value: .*lookahead/),
      expect.stringMatching(/^spec\.rules\[0\]\.matches\[2\]\.queryParams\[0\]\.value: .*lookbehind/),
      expect.stringMatching(/^spec\.rules\[0\]\.matches\[3\]\.cookies\[0\]\.value: .*escape \\p/),
      expect.stringMatching(/^spec\.rules\[0\]\.matches\[4\]\.path\.value: .*counted repetition/),
    ]);
  });

  it('the catastrophic-but-linear (a+)+ is admitted', () => {
    expect(errorsOf(route([{ path: { type: 'RegularExpression', value: '/(a+)+' } }]))).toEqual([]);
  });
});
