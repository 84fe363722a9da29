import { describe, expect, it } from 'vitest';
import { clientAddress } from '../../../../src/dataplane/policy/client-address.ts';
import { checkIp, IpMatcher, parseAddress, parseCidr } from '../../../../src/table/ip-rules.ts';

describe('parseAddress', () => {
  it('turns IPv4-mapped IPv6 (dotted and hex) into IPv4', () => {
    expect(parseAddress('::ffff:10.1.2.3')?.toString()).toBe('10.1.2.3');
    expect(parseAddress('::ffff:a01:203')?.toString()).toBe('10.1.2.3');
    expect(parseAddress('[2001:db8::1]')?.toString()).toBe('2001:db8::1');
    expect(parseAddress('fe80::1%eth0')?.toString()).toBe('fe80::1');
  });

  it('refuses the lenient forms inet_aton would accept', () => {
    for (const bad of ['10.1', '0x0a010203', '012.001.002.003', '167838211', '', 'example.com'])
      expect(parseAddress(bad), bad).toBeUndefined();
  });
});

describe('parseCidr', () => {
  it('canonicalizes, clears host bits, and maps IPv4-mapped prefixes to IPv4', () => {
    expect(parseCidr('10.1.2.3/8')).toMatchObject({ canonical: '10.0.0.0/8' });
    expect(parseCidr('192.0.2.7')).toMatchObject({ canonical: '192.0.2.7/32' });
    expect(parseCidr('::ffff:10.0.0.0/104')).toMatchObject({ canonical: '10.0.0.0/8' });
    expect(parseCidr('2001:db8::1/32')).toMatchObject({ canonical: '2001:db8::/32' });
  });

  it('names what is wrong', () => {
    expect(parseCidr('10.0.0.0/33')).toEqual({ error: expect.stringContaining('prefix length') });
    expect(parseCidr('10.0.0/8')).toEqual({ error: expect.stringContaining('invalid IP address') });
    expect(parseCidr('::ffff:10.0.0.0/64')).toEqual({ error: expect.stringContaining('/96 or longer') });
  });
});

describe('checkIp', () => {
  const allow = new IpMatcher(['10.0.0.0/8', '2001:db8::/32']);
  const deny = new IpMatcher(['10.9.0.0/16']);
  it('deny wins, a non-empty allow list must match, unparseable never passes an allow list', () => {
    expect(checkIp(parseAddress('10.1.1.1'), allow, deny)).toBeUndefined();
    expect(checkIp(parseAddress('10.9.1.1'), allow, deny)).toBe('denied');
    expect(checkIp(parseAddress('::ffff:10.9.1.1'), allow, deny)).toBe('denied');
    expect(checkIp(parseAddress('11.0.0.1'), allow, deny)).toBe('not-allowed');
    expect(checkIp(parseAddress('2001:db8::5'), allow, deny)).toBeUndefined();
    expect(checkIp(undefined, allow, deny)).toBe('not-allowed');
    expect(checkIp(undefined, undefined, deny)).toBeUndefined();
  });
});

describe('clientAddress', () => {
  it('is the peer without trusted hops, whatever X-Forwarded-For says', () => {
    expect(clientAddress('::ffff:127.0.0.1', '10.0.0.1', 0).text).toBe('127.0.0.1');
  });
  it('is the N-th entry from the right behind N trusted hops', () => {
    expect(clientAddress('10.0.0.2', 'spoof, 203.0.113.5', 1).text).toBe('203.0.113.5');
    expect(clientAddress('10.0.0.2', 'spoof, 203.0.113.5, 10.0.0.1', 2).text).toBe('203.0.113.5');
    expect(clientAddress('10.0.0.2', ['1.1.1.1', '203.0.113.5'], 1).text).toBe('203.0.113.5');
    // fewer entries than hops: the leftmost
    expect(clientAddress('10.0.0.2', '203.0.113.5', 3).text).toBe('203.0.113.5');
    // no header: the peer
    expect(clientAddress('10.0.0.2', undefined, 1).text).toBe('10.0.0.2');
  });
  it('an unparseable entry is replaced by the nearest trusted address (the next entry right, else the peer)', () => {
    for (const garbage of [
      'unknown',
      '10.1',
      'x',
      '1.2.3.4.5',
      '[::1',
      '999.1.1.1:80',
      '1.2.3.4:port',
      '_hidden',
    ]) {
      const c = clientAddress('10.0.0.2', garbage, 1);
      expect(c, garbage).toMatchObject({ text: '10.0.0.2', substituted: true });
      expect(c.addr?.toString()).toBe('10.0.0.2');
    }
    // behind two trusted hops: the entry the inner proxy wrote (the outer proxy's address)
    expect(clientAddress('10.0.0.2', '1.1.1.1, unknown, 10.0.0.1', 2)).toMatchObject({
      text: '10.0.0.1',
      substituted: true,
    });
    // client-controlled entries left of the chosen one play no part, valid or not
    expect(clientAddress('10.0.0.2', 'garbage, 203.0.113.5', 1)).toMatchObject({
      text: '203.0.113.5',
      substituted: false,
    });
  });
  it('reads the address out of ip:port and bracketed IPv6 entries (the port is dropped)', () => {
    expect(clientAddress('10.0.0.2', '203.0.113.5:4711', 1)).toMatchObject({
      text: '203.0.113.5',
      substituted: false,
    });
    expect(clientAddress('10.0.0.2', '[2001:db8::1]:443', 1).text).toBe('2001:db8::1');
    expect(clientAddress('10.0.0.2', '[2001:db8::1]', 1).text).toBe('2001:db8::1');
    expect(clientAddress('10.0.0.2', '[::ffff:10.9.0.1]:80', 1).text).toBe('10.9.0.1');
    // every spelling of one address is one rate-limit key
    const keys = new Set(
      ['203.0.113.5', '203.0.113.5:1', '203.0.113.5:65535', '::ffff:203.0.113.5', '[::ffff:cb00:7105]:9'].map(
        (e) => clientAddress('10.0.0.2', e, 1).text,
      ),
    );
    expect([...keys]).toEqual(['203.0.113.5']);
  });
});
