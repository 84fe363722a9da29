/** Secrets out of debug views: the cases the e2e test (test/e2e/admin-exposure.test.ts) cannot enumerate. */
import { describe, expect, it } from 'vitest';
import { isLoopbackHost } from '../../../src/control/admin.ts';
import { redactSecrets, redactString } from '../../../src/control/redact.ts';

describe('redactSecrets', () => {
  it('URLs: userinfo and every query value, wherever the URL is in a string', () => {
    expect(redactString('https://user:pa55@auth.example/check?token=abc&x=1#f')).toBe(
      'https://[redacted]@auth.example/check?token=[redacted]&x=[redacted]#f',
    );
    expect(redactString('fetch failed: GET http://u@h:81/jwks?access_token=t0k: ECONNREFUSED')).toBe(
      'fetch failed: GET http://[redacted]@h:81/jwks?access_token=[redacted] ECONNREFUSED',
    );
    // Paths and plain text are left alone.
    expect(redactString('/billing/v1?x=1 served by consul:billing@dc2')).toBe(
      '/billing/v1?x=1 served by consul:billing@dc2',
    );
  });

  it('credentials in text: bearer and basic, PEM private keys, values the caller knows', () => {
    expect(redactString('Authorization: Bearer eyJhbGciOi.payload.sig')).toBe(
      'Authorization: Bearer [redacted]',
    );
    expect(redactString('Basic dXNlcjpwYXNzd29yZA==')).toBe('Basic [redacted]');
    expect(redactString('a token bucket')).toBe('a token bucket');
    const pem = '-----BEGIN EC PRIVATE KEY-----\nMHcCAQEEIB\n-----END EC PRIVATE KEY-----';
    expect(redactString(`key: ${pem} end`)).toBe('key: [redacted] private key end');
    expect(redactString('agent said: acl token 0f3c-secret-1 is bad', ['0f3c-secret-1'])).toBe(
      'agent said: acl token [redacted] is bad',
    );
  });

  it('fields named like secrets, and values of headers, queries and cookies named like secrets', () => {
    const out = redactSecrets({
      consulToken: 'ct',
      hmacSecret: 'hs',
      password: 'pw',
      keyPem: 'k',
      tokens: 5, // a count, not a secret
      keySet: 'partners', // a name, not a secret
      headers: [
        { type: 'Exact', name: 'x-api-key', value: 'K1' },
        { type: 'Exact', name: 'x-tenant', value: 'acme' },
      ],
      cookies: [{ type: 'Exact', name: 'session', value: 'S1' }],
      queryParams: [{ type: 'Exact', name: 'access_token', value: 'Q1' }],
      requestHeaders: {
        set: [
          ['authorization', 'Bearer abc'],
          ['x-env', 'prod'],
        ],
        add: [['x-auth-token', 'T']],
        remove: ['cookie'],
      },
      nested: { list: [{ clientSecret: ['a', 'b'] }] },
      // Two strings that are not a header edit: each is redacted as text, neither is blanked.
      problems: ['x.yaml:1: spec.jwt.jwksUrl: invalid value "https://u:pw@h/k?token=t"', 'another problem'],
    });
    expect(out).toEqual({
      consulToken: '[redacted]',
      hmacSecret: '[redacted]',
      password: '[redacted]',
      keyPem: '[redacted]',
      tokens: 5,
      keySet: 'partners',
      headers: [
        { type: 'Exact', name: 'x-api-key', value: '[redacted]' },
        { type: 'Exact', name: 'x-tenant', value: 'acme' },
      ],
      cookies: [{ type: 'Exact', name: 'session', value: '[redacted]' }],
      queryParams: [{ type: 'Exact', name: 'access_token', value: '[redacted]' }],
      requestHeaders: {
        set: [
          ['authorization', '[redacted]'],
          ['x-env', 'prod'],
        ],
        add: [['x-auth-token', '[redacted]']],
        remove: ['cookie'],
      },
      nested: { list: [{ clientSecret: ['[redacted]', '[redacted]'] }] },
      problems: [
        'x.yaml:1: spec.jwt.jwksUrl: invalid value "https://[redacted]@h/k?token=[redacted]"',
        'another problem',
      ],
    });
  });
});

describe('isLoopbackHost', () => {
  it('loopback addresses only; every interface is not loopback', () => {
    for (const h of ['127.0.0.1', '127.1.2.3', '::1', 'localhost', '::ffff:127.0.0.1'])
      expect(isLoopbackHost(h)).toBe(true);
    for (const h of [undefined, '', '0.0.0.0', '::', '10.0.0.1', '128.0.0.1', 'example.com'])
      expect(isLoopbackHost(h)).toBe(false);
  });
});
