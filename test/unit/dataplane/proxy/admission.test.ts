/**
 * Admission (src/dataplane/proxy/admission.ts) case by case: the pure decision every listener takes before routing. The
 * live listeners run the same function (test/e2e/security-regressions.test.ts, the property test); here the
 * neighbours of each input are tried cheaply, including property checks of the Host grammar.
 */
import { isIP } from 'node:net';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  type AdmissionSettings,
  admit,
  isToken,
  isValidAuthority,
  methodRefusal,
} from '../../../../src/dataplane/proxy/admission.ts';
import { EdgeEvents } from '../../../../src/dataplane/proxy/edge-events.ts';

const S: AdmissionSettings = {
  rejectUnderscoreHeaders: true,
  rejectAuthorityMismatch: true,
  rejectControlCharacters: true,
  maxHeaders: 100,
};

/** HTTP/1.1 GET with these raw headers (Host: a.test unless given). */
function h1(target: string, headers: string[] = ['Host', 'a.test'], version = '1.1', method = 'GET') {
  return admit(method, target, version, headers, false, S);
}

function h2(target: string, headers: string[] = [], method = 'GET', authority = 'a.test') {
  return admit(
    method,
    target,
    '2.0',
    [':method', method, ':path', target, ':scheme', 'https', ':authority', authority, ...headers],
    true,
    S,
  );
}

describe('HTTP versions', () => {
  it('1.0 and 1.1 pass on HTTP/1; anything else is 505', () => {
    expect(h1('/', undefined, '1.1')).toBeUndefined();
    expect(h1('/', undefined, '1.0')).toBeUndefined();
    for (const v of ['2.0', '0.9', '3.0', '1.2', '2', ''])
      expect(h1('/', undefined, v)).toMatchObject({ status: 505, reason: 'version' });
  });
});

describe('methods', () => {
  it('every method of the HTTP/1.1 parser passes, CONNECT is 405', () => {
    for (const m of [
      'GET',
      'HEAD',
      'POST',
      'PUT',
      'DELETE',
      'OPTIONS',
      'PATCH',
      'TRACE',
      'PROPFIND',
      'M-SEARCH',
    ])
      expect(methodRefusal(m)).toBeUndefined();
    expect(methodRefusal('CONNECT')).toMatchObject({ status: 405, reason: 'method' });
  });

  it('methods are case-sensitive: lower- and mixed-case tokens are 501, like unknown ones', () => {
    for (const m of ['get', 'delete', 'Delete', 'pOST', 'FOO', 'PRI', 'GETX'])
      expect(methodRefusal(m)).toMatchObject({ status: 501, reason: 'method' });
  });

  it('a method that is not a token is 400', () => {
    for (const m of ['', 'G@T', 'GE T', 'GET\t', 'G(T', 'GÉT', '\u0000GET'])
      expect(methodRefusal(m)).toMatchObject({ status: 400, reason: 'method' });
  });

  it('isToken agrees with the RFC 9110 tchar set', () => {
    fc.assert(
      fc.property(fc.string({ maxLength: 8 }), (s) => {
        expect(isToken(s)).toBe(/^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/.test(s));
      }),
    );
  });
});

describe('request targets', () => {
  it('origin-form and http(s) absolute-form pass; everything else is 400', () => {
    expect(h1('/a/b?c=d')).toBeUndefined();
    expect(h1('http://a.test/x')).toBeUndefined();
    expect(h1('https://a.test')).toBeUndefined();
    for (const t of ['*', 'a.test:443', 'x', 'ftp://a.test/x', 'HTTP://a.test/', ''])
      expect(h1(t)).toMatchObject({ status: 400, reason: 'target' });
    expect(h1('http://u@a.test/')).toMatchObject({ status: 400, reason: 'target' });
    // HTTP/2's :path is origin-form only: `*` (OPTIONS) is refused as on HTTP/1.
    expect(h2('*', [], 'OPTIONS')).toMatchObject({ status: 400, reason: 'target' });
  });

  it('a fragment anywhere is 400, on both protocols', () => {
    for (const t of ['/x#', '/x#y', '/x?q#y', '/#', 'http://a.test/x#f']) {
      expect(h1(t)).toMatchObject({ status: 400, reason: 'fragment' });
      if (t.startsWith('/')) expect(h2(t)).toMatchObject({ status: 400, reason: 'fragment' });
    }
    expect(h1('/x%23y')).toBeUndefined();
  });
});

describe('Host', () => {
  it('accepts RFC 3986 hosts with an optional port 1–65535', () => {
    for (const h of [
      'a.test',
      'A.TEST.',
      'a-b_c~d.test',
      '127.0.0.1',
      '999.1.1.1',
      '[::1]',
      '[2001:db8::1]:8443',
      '[::ffff:10.0.0.1]',
      'a.test:1',
      'a.test:65535',
      'a.test:08080',
    ])
      expect(isValidAuthority(h), h).toBe(true);
  });

  it('refuses everything else', () => {
    for (const h of [
      '',
      ':80',
      'a.test:',
      'a.test:0',
      'a.test:65536',
      'a.test:99999',
      'a.test:123456',
      'a.test:8a',
      'a b',
      'a\tb',
      '[x',
      '[x]',
      '[::1',
      '[::1]x',
      '[::1]:',
      '[fe80::1%25eth0]',
      '[v1.x]',
      'u@a.test',
      'a/b',
      'a\\b',
      '%61.test',
      'é.test',
      'a.test:80:80',
      'a.test,admin.test',
      'a.test;for=1',
      "x!$&'()*+=.test",
    ])
      expect(isValidAuthority(h), JSON.stringify(h)).toBe(false);
  });

  it('an IPv6 literal is accepted exactly when node:net parses it', () => {
    fc.assert(
      fc.property(fc.oneof(fc.ipV6(), fc.string({ maxLength: 12 })), (s) => {
        if (s.includes(']') || s.includes('%')) return;
        expect(isValidAuthority(`[${s}]`)).toBe(isIP(s) === 6);
      }),
    );
  });

  it('an invalid, empty, duplicate or (HTTP/1.1) missing Host is 400; HTTP/1.0 without Host passes', () => {
    expect(h1('/', ['Host', '[x'])).toMatchObject({ status: 400, reason: 'host' });
    expect(h1('/', [], '1.1')).toMatchObject({ status: 400, reason: 'host', message: 'missing Host header' });
    expect(h1('/', ['Host', ''])).toMatchObject({ status: 400, reason: 'host' });
    expect(h1('/', ['Host', 'a.test', 'host', 'a.test'])).toMatchObject({ reason: 'duplicate_host' });
    expect(h1('/', [], '1.0')).toBeUndefined();
  });

  it('absolute-form: its authority is validated and must name the Host (unless the check is off)', () => {
    expect(h1('http://a.test:8080/x', ['Host', 'A.test'])).toBeUndefined();
    expect(h1('http://b.test/x')).toMatchObject({ reason: 'authority_mismatch' });
    expect(h1('http://[x/x')).toMatchObject({ reason: 'host' });
    expect(
      admit('GET', 'http://b.test/', '1.1', ['Host', 'a.test'], false, {
        ...S,
        rejectAuthorityMismatch: false,
      }),
    ).toBeUndefined();
  });

  it('HTTP/2: :authority is validated; a host field must name the same host', () => {
    expect(h2('/', [], 'GET', '[x')).toMatchObject({ status: 400, reason: 'host' });
    expect(h2('/', [], 'GET', 'a.test:99999')).toMatchObject({ reason: 'host' });
    expect(h2('/', ['host', 'a.test:443'])).toBeUndefined();
    expect(h2('/', ['host', 'b.test'])).toMatchObject({ reason: 'authority_mismatch' });
    expect(h2('/', ['host', 'a b'])).toMatchObject({ reason: 'host' });
  });
});

describe('headers', () => {
  it('underscores and control characters are refused unless switched off', () => {
    expect(h1('/', ['Host', 'a.test', 'X_User', '1'])).toMatchObject({ reason: 'underscore' });
    expect(h2('/', ['x_user', '1'])).toMatchObject({ reason: 'underscore' });
    for (const v of ['a\u0001b', 'a\u007fb', '\u0000', 'a\rb', 'a\nb'])
      expect(h1('/', ['Host', 'a.test', 'X', v])).toMatchObject({ reason: 'control_character' });
    expect(h1('/', ['Host', 'a.test', 'X', 'a\tb \u0080\u00ff'])).toBeUndefined();
    const off = { ...S, rejectUnderscoreHeaders: false, rejectControlCharacters: false };
    expect(admit('GET', '/', '1.1', ['Host', 'a.test', 'X_User', 'a\u0001'], false, off)).toBeUndefined();
  });

  it('more than maxHeaders headers is 431; HTTP/2 pseudo-header fields do not count', () => {
    const raw = (n: number) => [
      'Host',
      'a.test',
      ...Array.from({ length: n - 1 }, (_, i) => [`x-${i}`, 'v']).flat(),
    ];
    expect(admit('GET', '/', '1.1', raw(100), false, S)).toBeUndefined();
    expect(admit('GET', '/', '1.1', raw(101), false, S)).toMatchObject({ status: 431 });
    const hundred = Array.from({ length: 100 }, (_, i) => [`x-${i}`, 'v']).flat();
    expect(h2('/', hundred)).toBeUndefined();
    expect(h2('/', [...hundred, 'x-one-more', 'v'])).toMatchObject({ status: 431 });
  });

  it('Transfer-Encoding: one lone chunked passes; chunked not last is 400; other codings 501; HTTP/1.0 400', () => {
    const te = (...values: string[]) =>
      h1('/', ['Host', 'a.test', ...values.flatMap((v) => ['Transfer-Encoding', v])]);
    expect(te('chunked')).toBeUndefined();
    expect(te(' CHUNKED ')).toBeUndefined();
    for (const v of [['gzip, chunked'], ['gzip', 'chunked'], ['deflate,chunked'], ['chunked, chunked']])
      expect(te(...v)).toMatchObject({ status: 501, reason: 'transfer_encoding' });
    for (const v of [['xchunked'], ['chunked, gzip'], ['identity'], ['chunked', 'gzip'], ['']])
      expect(te(...v)).toMatchObject({ status: 400, reason: 'transfer_encoding' });
    expect(h1('/', ['Host', 'a.test', 'Transfer-Encoding', 'chunked'], '1.0')).toMatchObject({ status: 400 });
  });
});

describe('edge events', () => {
  it('counts every refusal but logs a kind at most once per interval, with the count left out', () => {
    const lines: Record<string, unknown>[] = [];
    const events = new EdgeEvents();
    events.logger = { info: (_m: string, meta: Record<string, unknown>) => lines.push(meta) } as never;
    let clock = 1_000_000;
    events.now = () => clock;
    for (let i = 0; i < 50; i++) events.refused('http1', 'malformed', 'malformed request');
    events.refused('h2', 'fragment', 'x');
    expect(events.counterValues()).toEqual({
      'requestsRefused\u0000http1\u0000malformed': 50,
      'requestsRefused\u0000h2\u0000fragment': 1,
    });
    expect(lines.map((l) => l.reason)).toEqual(['malformed', 'fragment']);
    clock += 10_000;
    events.refused('http1', 'malformed', 'malformed request');
    expect(lines.at(-1)).toMatchObject({ reason: 'malformed', suppressed: 49 });
  });
});
