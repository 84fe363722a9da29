/** Accept-Encoding negotiation (RFC 9110 §12.5.3) edge cases. */
import { describe, expect, it } from 'vitest';
import { negotiate } from '../../../../src/dataplane/proxy/response-compression.ts';

const all = ['zstd', 'br', 'gzip'] as const;

describe('negotiate', () => {
  it.each([
    [undefined, undefined],
    ['', undefined],
    ['gzip', 'gzip'],
    ['gzip, br', 'br'],
    ['gzip;q=0.9, br;q=0.8', 'gzip'],
    ['gzip ; q = 0.9 , br;Q=0.8', 'gzip'],
    ['br;q=0, gzip;q=0, *', 'zstd'],
    ['*;q=0', undefined],
    ['identity;q=1, *;q=0', undefined],
    ['zstd;q=0.001', 'zstd'],
    ['zstd;q=0.0001', undefined],
    ['zstd;q=1.000', 'zstd'],
    ['zstd;q=1.001', undefined],
    ['zstd;q=.5', undefined],
    ['zstd;q', undefined],
    ['zstd;level=3', undefined],
    ['gzip;q=0.5, gzip;q=0', 'gzip'],
    [['gzip;q=0.1', 'br;q=0.2'], 'br'],
    [',,,, , ;;, gzip', 'gzip'],
  ] as [string | string[] | undefined, string | undefined][])('%j → %s', (ae, want) => {
    expect(negotiate(ae, all)).toBe(want);
  });

  it('only looks at the first 32 entries and headers up to 4 KiB', () => {
    const filler = Array.from({ length: 32 }, (_, i) => `x${i}`).join(',');
    expect(negotiate(`${filler},gzip`, all)).toBeUndefined();
    expect(negotiate(`gzip,${filler}`, all)).toBe('gzip');
    expect(negotiate(`gzip,${'a'.repeat(5000)}`, all)).toBeUndefined();
  });

  it('keeps to the offered encodings and their order', () => {
    expect(negotiate('zstd, br, gzip', ['gzip'])).toBe('gzip');
    expect(negotiate('zstd', ['gzip', 'br'])).toBeUndefined();
    expect(negotiate('*', ['br', 'gzip'])).toBe('br');
  });
});
