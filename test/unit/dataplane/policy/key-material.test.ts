/**
 * Key files are a public key or a shared secret, never both: every encoding of public-key material is public (so
 * never an HMAC key), and files that mix kinds or are ambiguous are refused with a reason.
 */
import { execFileSync } from 'node:child_process';
import { generateKeyPairSync } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  classifyKey,
  type KeyMaterial,
  keyRefusesAlgorithm,
} from '../../../../src/dataplane/policy/key-material.ts';
import { KeyStore } from '../../../../src/dataplane/policy/key-store.ts';
import { makeTempDir, removeDir } from '../../../support/tmp.ts';

const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 });
const ec = generateKeyPairSync('ec', { namedCurve: 'P-256' });
const ed = generateKeyPairSync('ed25519');
let dir: string;
let certPem: string;
let certDer: Buffer;

beforeAll(() => {
  dir = makeTempDir('key-material');
  const key = join(dir, 'k.pem');
  const crt = join(dir, 'c.pem');
  execFileSync(
    'openssl',
    [
      'req',
      '-x509',
      '-newkey',
      'rsa:2048',
      '-nodes',
      '-keyout',
      key,
      '-out',
      crt,
      '-days',
      '1',
      '-subj',
      '/CN=t',
    ],
    { stdio: 'pipe' },
  );
  certPem = readFileSync(crt, 'utf8');
  execFileSync('openssl', ['x509', '-in', crt, '-outform', 'DER', '-out', join(dir, 'c.der')], {
    stdio: 'pipe',
  });
  certDer = readFileSync(join(dir, 'c.der'));
});

afterAll(() => removeDir(dir));

const kindOf = (bytes: Buffer | string, kid = 'k') => classifyKey(Buffer.from(bytes), kid);

describe('public-key material in any encoding is public (never an HMAC secret)', () => {
  const cases: [string, () => Buffer | string, string][] = [
    ['PEM SPKI', () => rsa.publicKey.export({ type: 'spki', format: 'pem' }), 'rsa'],
    ['PEM PKCS#1 (RSA PUBLIC KEY)', () => rsa.publicKey.export({ type: 'pkcs1', format: 'pem' }), 'rsa'],
    ['PEM certificate', () => certPem, 'rsa'],
    [
      'PEM with CRLF and surrounding blank lines',
      () => `\r\n\r\n${certPem.replaceAll('\n', '\r\n')}\r\n`,
      'rsa',
    ],
    ['DER SPKI', () => rsa.publicKey.export({ type: 'spki', format: 'der' }), 'rsa'],
    ['DER PKCS#1', () => rsa.publicKey.export({ type: 'pkcs1', format: 'der' }), 'rsa'],
    ['DER certificate', () => certDer, 'rsa'],
    ['EC SPKI', () => ec.publicKey.export({ type: 'spki', format: 'pem' }), 'ec'],
    ['Ed25519 SPKI', () => ed.publicKey.export({ type: 'spki', format: 'der' }), 'ed25519'],
    ['JWK RSA', () => JSON.stringify(rsa.publicKey.export({ format: 'jwk' })), 'rsa'],
    ['JWK with a BOM', () => `\uFEFF${JSON.stringify(ec.publicKey.export({ format: 'jwk' }))}`, 'ec'],
  ];
  it.each(cases)('%s', (_name, make, keyType) => {
    const c = kindOf(make());
    expect(c).toMatchObject({ kind: 'public', keyType });
    expect(keyRefusesAlgorithm(c as KeyMaterial, 'HS256')).toMatch(/cannot verify HS256/);
  });
});

describe('ambiguous or mixed files are refused with a reason', () => {
  const pem = () => String(rsa.publicKey.export({ type: 'spki', format: 'pem' }));
  it.each([
    ['two PEM blocks', () => `${pem()}${certPem}`, /2 PEM blocks/],
    ['a PEM block and a secret', () => `${pem()}my-shared-secret\n`, /text around the PEM block/],
    ['a secret and then a PEM block', () => `secret\n${pem()}`, /text around the PEM block/],
    ['a PEM block cut short', () => pem().slice(0, 80), /no end line/],
    [
      'a PEM block that does not parse',
      () => '-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n',
      /does not parse/,
    ],
    [
      'a private key (PKCS#8 PEM)',
      () => rsa.privateKey.export({ type: 'pkcs8', format: 'pem' }),
      /private key/,
    ],
    [
      'a private key (PKCS#1 DER)',
      () => rsa.privateKey.export({ type: 'pkcs1', format: 'der' }),
      /private key/,
    ],
    ['a private JWK', () => JSON.stringify(ec.privateKey.export({ format: 'jwk' })), /private JWK/],
    ['a JWK Set', () => JSON.stringify({ keys: [{ kty: 'oct', k: 'c2VjcmV0' }] }), /JWK Set/],
    [
      'a JWK with the fields of two key types',
      () => JSON.stringify({ ...rsa.publicKey.export({ format: 'jwk' }), k: 'c2VjcmV0' }),
      /mixed key material/,
    ],
    ['an oct JWK with RSA fields', () => JSON.stringify({ kty: 'oct', k: 'c2VjcmV0', n: 'AQAB' }), /mixed/],
    [
      'a JWK naming another kid',
      () => JSON.stringify({ kty: 'oct', k: 'c2VjcmV0', kid: 'other' }),
      /differs/,
    ],
    ['JSON that is not a JWK', () => '{"hello": 1', /not valid JSON/],
    ['an OpenSSH public key', () => 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIE user@host\n', /OpenSSH/],
    ['an empty file', () => '', /empty/],
    ['an unknown PEM block', () => '-----BEGIN FOO-----\nAA==\n-----END FOO-----\n', /unsupported PEM/],
  ])('%s', (_name, make, reason) => {
    const c = kindOf(make());
    expect(c.kind).toBe('refused');
    expect((c as { error: string }).error).toMatch(reason);
  });
});

describe('secrets and the algorithms a key verifies', () => {
  it('raw bytes and an oct JWK are secrets; a secret verifies only HS*', () => {
    const raw = kindOf('k1-secret-0123456789') as KeyMaterial;
    expect(raw).toMatchObject({ kind: 'secret' });
    expect(Buffer.from((raw as { secret: Uint8Array }).secret).toString()).toBe('k1-secret-0123456789');
    expect(keyRefusesAlgorithm(raw, 'HS256')).toBeUndefined();
    expect(keyRefusesAlgorithm(raw, 'RS256')).toMatch(/shared secret cannot verify RS256/);
    const jwk = kindOf(
      JSON.stringify({ kty: 'oct', k: Buffer.from('s3cret').toString('base64url'), alg: 'HS384' }),
    );
    expect(jwk).toMatchObject({ kind: 'secret', alg: 'HS384' });
    expect(keyRefusesAlgorithm(jwk as KeyMaterial, 'HS384')).toBeUndefined();
    expect(keyRefusesAlgorithm(jwk as KeyMaterial, 'HS256')).toMatch(/for HS384/);
  });

  it('an RSA key verifies RS* and PS*, not ES* or EdDSA; an EC key only ES*', () => {
    const r = kindOf(certPem) as KeyMaterial;
    for (const alg of ['RS256', 'RS512', 'PS256']) expect(keyRefusesAlgorithm(r, alg)).toBeUndefined();
    for (const alg of ['ES256', 'EdDSA', 'HS512']) expect(keyRefusesAlgorithm(r, alg)).toBeDefined();
    const e = kindOf(ec.publicKey.export({ type: 'spki', format: 'pem' })) as KeyMaterial;
    expect(keyRefusesAlgorithm(e, 'ES256')).toBeUndefined();
    expect(keyRefusesAlgorithm(e, 'RS256')).toBeDefined();
  });
});

describe('KeyStore', () => {
  it('gives HMAC users only secrets, leaves refused files out and reports each reason once', async () => {
    const set = join(dir, 'set');
    execFileSync('mkdir', ['-p', set]);
    const write = (name: string, content: string | Buffer) =>
      execFileSync('tee', [join(set, name)], { input: content, stdio: ['pipe', 'ignore', 'ignore'] });
    write('secret', 'k1-secret');
    write('cert', certPem);
    write('pkcs1', String(rsa.publicKey.export({ type: 'pkcs1', format: 'pem' })));
    write('mixed', `${certPem}k1-secret`);
    const refused: string[] = [];
    const store = new KeyStore(dir, 0, (s, kid, error) => refused.push(`${s}/${kid}: ${error}`));
    expect(Buffer.from((await store.hmacKey('set', 'secret'))!).toString()).toBe('k1-secret');
    expect(await store.hmacKey('set', 'cert')).toBeUndefined();
    expect(await store.hmacKey('set', 'pkcs1')).toBeUndefined();
    expect(await store.hmacKey('set', 'mixed')).toBeUndefined();
    expect([...(await store.materials('set')).keys()].sort()).toEqual(['cert', 'pkcs1', 'secret']);
    expect(store.stats().set).toMatchObject({
      keys: 3,
      refused: { mixed: expect.stringMatching(/text around/) },
    });
    // a re-read of unchanged files reports nothing again
    await store.materials('set');
    await new Promise((r) => setImmediate(r));
    await store.materials('set');
    expect(refused).toEqual([expect.stringMatching(/^set\/mixed: text around the PEM block CERTIFICATE/)]);
  });
});
