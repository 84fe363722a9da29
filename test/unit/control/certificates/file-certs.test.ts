/** The certificate flags' grammar (src/control/certificates/file-certs.ts): what is accepted, what names the flag. */
import { describe, expect, it } from 'vitest';
import { parseCertFlag, parseClientCertFlag } from '../../../../src/control/certificates/file-certs.ts';
import { ConfigError } from '../../../../src/lib/errors.ts';

describe('--tls-cert / --tls-default-cert', () => {
  it('takes CERT,KEY with optional hostnames, lower-cased, wildcards allowed', () => {
    expect(parseCertFlag('c.pem,k.pem', '--tls-cert')).toEqual({
      hostnames: [],
      certFile: 'c.pem',
      keyFile: 'k.pem',
    });
    expect(parseCertFlag('A.Example.com, *.b.example.com=c.pem,k.pem', '--tls-cert')).toEqual({
      hostnames: ['a.example.com', '*.b.example.com'],
      certFile: 'c.pem',
      keyFile: 'k.pem',
    });
  });

  it('refuses malformed values with the flag named', () => {
    for (const v of [
      'c.pem',
      'c.pem,k.pem,x.pem',
      ',k.pem',
      'a..b=c.pem,k.pem',
      'x_y.test=c.pem,k.pem',
      '*.*.a=c,k',
    ])
      expect(() => parseCertFlag(v, '--tls-cert'), v).toThrow(/^--tls-cert: /);
    expect(() => parseCertFlag('a.test=c.pem,k.pem', '--tls-default-cert', false)).toThrow(ConfigError);
  });
});

describe('--upstream-client-cert', () => {
  it('takes NAMESPACE/NAME=CERT,KEY and keys it by namespace/name', () => {
    expect(parseClientCertFlag('shop/client=c.pem,k.pem')).toEqual({
      key: 'shop/client',
      hostnames: [],
      certFile: 'c.pem',
      keyFile: 'k.pem',
    });
  });

  it('refuses anything else, naming the flag', () => {
    for (const v of [
      'client=c.pem,k.pem',
      'Shop/client=c.pem,k.pem',
      'shop/client=c.pem',
      'shop/=c.pem,k.pem',
    ])
      expect(() => parseClientCertFlag(v), v).toThrow(/^--upstream-client-cert: /);
  });
});
