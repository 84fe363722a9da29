/**
 * One spelling per signature: only the canonical base64 of 32 bytes decodes, so a captured signature cannot be
 * re-spelled into a "new" one (edge cases; the replay itself is tested through a gateway in
 * test/e2e/policy-regressions.test.ts).
 */
import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import {
  announcedSha256,
  decodeCanonicalBase64,
  parseSignatureHeader,
} from '../../../../src/dataplane/policy/signature.ts';

/** 32 bytes whose base64 has `+`, `/` and a last character with spare low bits. */
const bytes = Buffer.from('fbff' + 'ab'.repeat(29) + 'fe', 'hex');
const canonical = bytes.toString('base64');

describe('decodeCanonicalBase64', () => {
  it('decodes the canonical form', () => {
    expect(canonical).toMatch(/[+/]/);
    expect(decodeCanonicalBase64(canonical, 32)).toEqual(bytes);
  });

  it.each([
    ['without padding', canonical.replace(/=+$/, '')],
    ['URL-safe alphabet', canonical.replaceAll('+', '-').replaceAll('/', '_')],
    ['URL-safe without padding', bytes.toString('base64url')],
    ['a space inside', `${canonical.slice(0, 10)} ${canonical.slice(10, -1)}`],
    ['a leading space', ` ${canonical}`],
    ['a tab', `${canonical.slice(0, -2)}\t=`],
    ['junk the decoder skips', `${canonical.slice(0, 20)}!${canonical.slice(21)}`],
    ['a dot', `${canonical.slice(0, 20)}.${canonical.slice(21)}`],
    ['double padding', `${canonical.slice(0, -1)}==`],
    ['padding in the middle', `${canonical.slice(0, 8)}=${canonical.slice(9)}`],
    [
      'non-zero trailing bits',
      `${canonical.slice(0, -2)}${String.fromCharCode(canonical.charCodeAt(42) + 1)}=`,
    ],
    ['a byte too many', Buffer.concat([bytes, Buffer.from([1])]).toString('base64')],
    ['a byte too few', bytes.subarray(1).toString('base64')],
    ['hex of the same bytes', bytes.toString('hex')],
    ['empty', ''],
  ])('refuses %s', (_name, text) => {
    expect(text).not.toBe(canonical);
    expect(decodeCanonicalBase64(text, 32)).toBeUndefined();
  });

  it('every one-character change of a canonical value is refused or decodes to other bytes', () => {
    const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=-_ .!';
    for (let i = 0; i < canonical.length; i++)
      for (const c of alphabet) {
        const text = canonical.slice(0, i) + c + canonical.slice(i + 1);
        if (text === canonical) continue;
        const d = decodeCanonicalBase64(text, 32);
        if (d) expect(d.equals(bytes), text).toBe(false);
      }
  });
});

describe('signature and digest headers', () => {
  it('a repeated field makes the signature header malformed', () => {
    expect(parseSignatureHeader(`keyId="k1", signature="${canonical}"`)).toEqual({
      keyId: 'k1',
      signature: canonical,
    });
    expect(
      parseSignatureHeader(`keyId="k1", signature="${canonical}", signature="${canonical}"`),
    ).toBeUndefined();
    expect(parseSignatureHeader(`keyId="k1", keyid="k2", signature="${canonical}"`)).toBeUndefined();
  });

  it('a digest is read only in canonical base64 of 32 bytes', () => {
    const d = createHash('sha256').update('hello').digest();
    const b64 = d.toString('base64');
    expect(announcedSha256(`sha-256=:${b64}:`, undefined)).toEqual(d);
    expect(announcedSha256(undefined, `SHA-256=${b64}`)).toEqual(d);
    expect(announcedSha256(`sha-256=:${b64.replace(/=$/, '')}:`, undefined)).toBeUndefined();
    expect(announcedSha256(`sha-256=:${d.toString('base64url')}:`, undefined)).toBeUndefined();
    expect(announcedSha256(undefined, `SHA-256=${d.toString('hex')}`)).toBeUndefined();
    expect(announcedSha256(`sha-256=:${Buffer.alloc(16).toString('base64')}:`, undefined)).toBeUndefined();
  });
});
