/** Origin matching of the CORS filter and the mirror's shadow Host, edge cases (e2e: test/e2e/filters/). */
import { describe, expect, it } from 'vitest';
import { corsDataOf } from '../../../../src/compile/filters.ts';
import { CorsPolicy } from '../../../../src/dataplane/proxy/cors.ts';
import { shadowHost } from '../../../../src/dataplane/proxy/request-mirror.ts';

const policy = (allowOrigins: string[], allowCredentials = false) =>
  new CorsPolicy(corsDataOf({ allowOrigins, allowCredentials })!);

describe('CorsPolicy.allowedOrigin', () => {
  const p = policy(['https://*.example.com', 'http://[::1]:8080', 'https://exact.test', 'http://*']);
  it.each([
    ['https://a.example.com', 'https://a.example.com'],
    ['https://x.y.example.com', 'https://x.y.example.com'],
    ['https://A.EXAMPLE.COM', 'https://a.example.com'],
    ['https://example.com', undefined],
    ['https://.example.com', undefined],
    ['https://a.example.com.', undefined],
    ['https://a.example.com:443', 'https://a.example.com'.concat(':443')],
    ['https://a.example.com:444', undefined],
    ['http://[::1]:8080', 'http://[::1]:8080'],
    ['http://[::1]', 'http://[::1]'], // by http://* (port 80)
    ['http://[::1]:9090', undefined],
    ['https://exact.test', 'https://exact.test'],
    ['https://exact.test/', undefined],
    ['https://user@exact.test', undefined],
    ['http://anything.at.all', 'http://anything.at.all'],
    ['http://anything:8080', undefined],
    ['null', undefined],
    ['', undefined],
    [['https://exact.test', 'https://exact.test'], undefined],
    [`https://${'a'.repeat(600)}.example.com`, undefined],
  ] as [string | string[], string | undefined][])('%j → %s', (origin, want) => {
    expect(p.allowedOrigin(origin)).toBe(want);
  });

  it('`*` answers `*` without credentials, echoes serialized origins (never null) with them', () => {
    expect(policy(['*']).allowedOrigin('null')).toBe('*');
    expect(policy(['*'], true).allowedOrigin('null')).toBeUndefined();
    expect(policy(['*'], true).allowedOrigin('chrome-extension://abc')).toBe('chrome-extension://abc');
    expect(policy(['*'], true).allowedOrigin('https://a.test\u0000')).toBeUndefined();
    expect(policy([]).allowedOrigin('https://a.test')).toBeUndefined();
  });
});

describe('shadowHost', () => {
  it.each([
    ['api.example.com', 'api.example.com-shadow'],
    ['api.example.com:8080', 'api.example.com-shadow:8080'],
    ['[::1]:80', '[::1]-shadow:80'],
    ['[::1]', '[::1]-shadow'],
    ['10.0.0.1:8443', '10.0.0.1-shadow:8443'],
  ])('%s → %s', (host, want) => {
    expect(shadowHost(host)).toBe(want);
  });
});
