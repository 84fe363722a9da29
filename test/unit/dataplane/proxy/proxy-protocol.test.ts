/**
 * The PROXY protocol header parser (v1 text, v2 binary): exact results for the spec's cases, and a property test
 * that no input makes it throw or claim more bytes than it was given or the bounds allow.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  MAX_V1_LENGTH,
  MAX_V2_LENGTH,
  parseProxyHeader,
  V2_SIGNATURE,
} from '../../../../src/dataplane/proxy/proxy-protocol.ts';
import { proxyProtocolSourcesFrom } from '../../../../src/dataplane/proxy/proxy-protocol-listener.ts';

const b = (s: string) => Buffer.from(s, 'latin1');

function v2(verCmd: number, famProto: number, body: Buffer): Buffer {
  const head = Buffer.from([verCmd, famProto, 0, 0]);
  head.writeUInt16BE(body.length, 2);
  return Buffer.concat([V2_SIGNATURE, head, body]);
}

const inet4 = Buffer.from([192, 0, 2, 1, 127, 0, 0, 1, 0x9c, 0x40, 0, 80]);

describe('parseProxyHeader: v1', () => {
  it('TCP4 and TCP6 lines give the source address and port; the length covers the CRLF only', () => {
    const line = 'PROXY TCP4 192.0.2.1 127.0.0.1 40000 80\r\n';
    expect(parseProxyHeader(b(`${line}GET / HTTP/1.1\r\n`))).toEqual({
      state: 'done',
      version: 1,
      length: line.length,
      client: { address: '192.0.2.1', port: 40000, family: 'IPv4' },
    });
    expect(parseProxyHeader(b('PROXY TCP6 2001:db8::1 ::1 0 443\r\n'))).toMatchObject({
      state: 'done',
      client: { address: '2001:db8::1', port: 0, family: 'IPv6' },
    });
    expect(parseProxyHeader(b('PROXY UNKNOWN\r\n'))).toMatchObject({ state: 'done', client: undefined });
  });

  it('waits for the rest of a line, and for a CR at the end', () => {
    for (const part of [
      'P',
      'PROXY',
      'PROXY TCP4 192.0.2.1 127.0.0.1 40000 80',
      'PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r',
    ])
      expect(parseProxyHeader(b(part)).state).toBe('partial');
  });

  it('refuses what is not exactly the format', () => {
    const bad = [
      'PROXY TCP4 192.0.2.1 127.0.0.1 40000 80\n',
      'PROXY TCP4 192.0.2.1 127.0.0.1 040000 80\r\n',
      'PROXY TCP4 192.0.2.1 127.0.0.1 65536 80\r\n',
      'PROXY TCP4 192.0.2.1  127.0.0.1 1 80\r\n',
      'PROXY TCP4 2001:db8::1 127.0.0.1 1 80\r\n',
      'PROXY TCP6 192.0.2.1 ::1 1 80\r\n',
      'PROXY TCP6 fe80::1%eth0 ::1 1 80\r\n',
      'PROXY UDP4 192.0.2.1 127.0.0.1 1 80\r\n',
      'PROXY TCP4 192.0.2.1 127.0.0.1 1 80 extra\r\n',
      'PROXY TCP4 192.0.2.1 127.0.0.1 1 8\u00ff\r\n',
    ];
    for (const s of bad)
      expect(parseProxyHeader(b(s)), JSON.stringify(s)).toMatchObject({ state: 'invalid' });
    expect(parseProxyHeader(b(`PROXY UNKNOWN ${'x'.repeat(MAX_V1_LENGTH)}`))).toMatchObject({
      state: 'invalid',
      reason: 'oversized',
    });
    expect(parseProxyHeader(b('GET / HTTP/1.1\r\n'))).toMatchObject({ state: 'invalid', reason: 'missing' });
    expect(parseProxyHeader(b('POST / HTTP/1.1\r\n'))).toMatchObject({ state: 'invalid', reason: 'missing' });
  });
});

describe('parseProxyHeader: v2', () => {
  it('PROXY over TCP4 and TCP6; TLVs after the addresses are skipped', () => {
    const tlv = Buffer.from([0x01, 0x00, 0x02, 0x68, 0x32]);
    const h = v2(0x21, 0x11, Buffer.concat([inet4, tlv]));
    expect(parseProxyHeader(Buffer.concat([h, b('GET')]))).toEqual({
      state: 'done',
      version: 2,
      length: h.length,
      client: { address: '192.0.2.1', port: 40000, family: 'IPv4' },
    });
    const six = Buffer.alloc(36);
    six.writeUInt16BE(0x2001, 0);
    six.writeUInt16BE(0x0db8, 2);
    six.writeUInt16BE(7, 14);
    six.writeUInt16BE(443, 32);
    expect(parseProxyHeader(v2(0x21, 0x21, six))).toMatchObject({
      client: { address: '2001:db8::7', port: 443, family: 'IPv6' },
    });
  });

  it('LOCAL, UNSPEC, AF_UNIX and an unspecified transport carry no client address', () => {
    expect(parseProxyHeader(v2(0x20, 0x11, inet4))).toMatchObject({ state: 'done', client: undefined });
    expect(parseProxyHeader(v2(0x20, 0x00, Buffer.alloc(0)))).toMatchObject({
      state: 'done',
      client: undefined,
    });
    expect(parseProxyHeader(v2(0x21, 0x00, Buffer.alloc(0)))).toMatchObject({
      state: 'done',
      client: undefined,
    });
    expect(parseProxyHeader(v2(0x21, 0x31, Buffer.alloc(216)))).toMatchObject({
      state: 'done',
      client: undefined,
    });
    expect(parseProxyHeader(v2(0x21, 0x10, inet4))).toMatchObject({ state: 'done', client: undefined });
  });

  it('refuses another version or command, unknown families, short address blocks and oversized headers', () => {
    expect(parseProxyHeader(v2(0x11, 0x11, inet4))).toMatchObject({ state: 'invalid', reason: 'malformed' });
    expect(parseProxyHeader(v2(0x22, 0x11, inet4))).toMatchObject({ state: 'invalid', reason: 'malformed' });
    expect(parseProxyHeader(v2(0x21, 0x41, inet4))).toMatchObject({ state: 'invalid', reason: 'malformed' });
    expect(parseProxyHeader(v2(0x21, 0x13, inet4))).toMatchObject({ state: 'invalid', reason: 'malformed' });
    expect(parseProxyHeader(v2(0x21, 0x21, inet4))).toMatchObject({ state: 'invalid', reason: 'malformed' });
    const big = v2(0x21, 0x11, inet4);
    big.writeUInt16BE(MAX_V2_LENGTH, 14);
    expect(parseProxyHeader(big)).toMatchObject({ state: 'invalid', reason: 'oversized' });
  });

  it('waits for the signature, the fixed part and the announced length', () => {
    const h = v2(0x21, 0x11, inet4);
    for (const n of [1, 11, 12, 15, 16, h.length - 1])
      expect(parseProxyHeader(h.subarray(0, n)).state).toBe('partial');
    expect(parseProxyHeader(Buffer.from([0x0d, 0x0a, 0x0d, 0x0b]))).toMatchObject({ state: 'invalid' });
  });
});

describe('parseProxyHeader: any input', () => {
  it('never throws, never claims bytes it was not given, never beyond the bounds', () => {
    const valid = [
      b('PROXY TCP4 192.0.2.1 127.0.0.1 40000 80\r\n'),
      b('PROXY TCP6 2001:db8::1 ::1 1 2\r\n'),
      v2(0x21, 0x11, inet4),
    ];
    const mutated = fc
      .tuple(
        fc.constantFrom(...valid),
        fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { maxLength: 6 }),
        fc.nat({ max: 60 }),
        fc.uint8Array({ maxLength: 40 }),
      )
      .map(([base, flips, cut, tail]) => {
        const x = Buffer.from(base);
        for (const [at, byte] of flips) x[at % x.length] = byte;
        return Buffer.concat([x.subarray(0, Math.max(0, x.length - cut)), tail]);
      });
    const input = fc.oneof(
      mutated,
      fc.uint8Array({ maxLength: 600 }).map((u) => Buffer.from(u)),
    );
    fc.assert(
      fc.property(input, (buf) => {
        const r = parseProxyHeader(buf);
        if (r.state === 'done') {
          expect(r.length).toBeLessThanOrEqual(buf.length);
          expect(r.length).toBeLessThanOrEqual(r.version === 1 ? MAX_V1_LENGTH : MAX_V2_LENGTH);
          if (r.client) expect(r.client.port).toBeLessThanOrEqual(65535);
        }
        if (r.state === 'partial') expect(buf.length).toBeLessThan(MAX_V2_LENGTH);
      }),
      { numRuns: 5000 },
    );
  });
});

describe('--proxy-protocol', () => {
  it('canonical CIDRs; off when empty; a bad entry or a zero timeout is a clear error', () => {
    expect(proxyProtocolSourcesFrom('10.0.0.1/8, 2001:db8::/32', 5000)).toEqual([
      '10.0.0.0/8',
      '2001:db8::/32',
    ]);
    expect(proxyProtocolSourcesFrom(undefined, undefined)).toEqual([]);
    expect(proxyProtocolSourcesFrom('', undefined)).toEqual([]);
    expect(() => proxyProtocolSourcesFrom('lb.example', undefined)).toThrow(/--proxy-protocol: /);
    expect(() => proxyProtocolSourcesFrom('10.0.0.0/8', 0)).toThrow(/--proxy-protocol-timeout/);
  });
});
