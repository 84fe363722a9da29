/**
 * PROXY protocol v1/v2 on both listeners of a real `edgegate run --workers 2`, with 127.0.0.1 as the trusted
 * load balancer: headers written by hand on real sockets and by a real HAProxy (send-proxy / send-proxy-v2,
 * plain and TLS passthrough). The proxied address is what the IP rules decide on, what the ClientAddress rate
 * limit keys on, what X-Forwarded-For carries and what the access log shows. A trusted source without a valid
 * header is closed and counted; an untrusted source (127.0.0.2) is served plain and its header never honoured;
 * fuzzed headers only ever close connections.
 */
import { once } from 'node:events';
import { connect as h2connect } from 'node:http2';
import { connect, type Socket } from 'node:net';
import { connect as tlsConnect } from 'node:tls';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Haproxy, startHaproxy } from '../support/haproxy.ts';
import { freePort } from '../support/ports.ts';
import { scrapeMetrics, sumOf } from '../support/prom-text.ts';
import { makeTempDir, removeDir } from '../support/tmp.ts';
import { waitFor } from '../support/wait.ts';
import {
  type PolicyGateway,
  prefixRule,
  type RecordingUpstream,
  startPolicyGateway,
  startRecordingUpstream,
} from './policy/helpers.ts';
import { makeCert } from './tls/helpers.ts';

let up: RecordingUpstream;
let pg: PolicyGateway;
let tlsPort: number;
let haproxy: Haproxy;
let certDir: string;

beforeAll(async () => {
  certDir = makeTempDir('pp-certs');
  const cert = makeCert(certDir, 'pp', 'pp.test');
  up = await startRecordingUpstream('pp-upstream');
  tlsPort = await freePort({ udp: false });
  pg = await startPolicyGateway({
    services: { api: [{ port: up.port }] },
    routes: {
      pp: {
        rules: [
          prefixRule('allow-list', '/ip', { ipAllow: ['203.0.113.0/24'] }),
          prefixRule('per-client', '/limited', {
            rateLimit: { requests: 1, period: '60s', key: 'ClientAddress' },
          }),
          prefixRule('echo', '/echo'),
        ],
      },
    },
    args: [
      '--proxy-protocol',
      '127.0.0.1/32',
      '--proxy-protocol-timeout',
      '1s',
      '--listen-tls',
      `127.0.0.1:${tlsPort}`,
      '--tls-default-cert',
      `${cert.cert},${cert.key}`,
    ],
  });
  haproxy = await startHaproxy([
    { port: pg.gw.port, sendProxy: 'send-proxy' },
    { port: pg.gw.port, sendProxy: 'send-proxy-v2' },
    { port: tlsPort, sendProxy: 'send-proxy-v2' },
    { port: tlsPort, sendProxy: 'send-proxy' },
  ]);
}, 120_000);

afterAll(async () => {
  await haproxy?.stop();
  await pg?.stop();
  await up?.close();
  if (certDir) removeDir(certDir);
});

// ── PROXY headers, written by hand ───────────────────────────────────────────────────────────────────────────

const SIG = Buffer.from([0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a]);

function v1(src: string, sport = 40000): Buffer {
  const fam = src.includes(':') ? 'TCP6' : 'TCP4';
  const dst = fam === 'TCP4' ? '127.0.0.1' : '::1';
  return Buffer.from(`PROXY ${fam} ${src} ${dst} ${sport} 80\r\n`, 'latin1');
}

function v2(src: string, opts: { command?: number; tlv?: Buffer; sport?: number } = {}): Buffer {
  const tlv = opts.tlv ?? Buffer.alloc(0);
  const addr = Buffer.alloc(12);
  for (const [i, o] of src.split('.').entries()) addr.writeUInt8(Number(o), i);
  addr.writeUInt8(127, 4);
  addr.writeUInt8(1, 7);
  addr.writeUInt16BE(opts.sport ?? 40000, 8);
  addr.writeUInt16BE(80, 10);
  const head = Buffer.alloc(4);
  head.writeUInt8(0x20 | (opts.command ?? 1), 0);
  head.writeUInt8(0x11, 1);
  head.writeUInt16BE(addr.length + tlv.length, 2);
  return Buffer.concat([SIG, head, addr, tlv]);
}

function v2ipv6(src: string): Buffer {
  const addr = Buffer.alloc(36);
  const groups = new URL(`http://[${src}]/`).hostname.slice(1, -1);
  // Expand "::" for the test addresses used here (2001:db8::N).
  const [head, tail] = groups.split('::') as [string, string | undefined];
  const h = head ? head.split(':') : [];
  const t = tail ? tail.split(':') : [];
  const all = [...h, ...Array(8 - h.length - t.length).fill('0'), ...t];
  for (const [i, g] of all.entries()) addr.writeUInt16BE(Number.parseInt(g, 16), 2 * i);
  addr.writeUInt16BE(1, 30); // dst ::1
  addr.writeUInt16BE(40000, 32);
  addr.writeUInt16BE(80, 34);
  const hd = Buffer.from([0x21, 0x21, 0, 36]);
  return Buffer.concat([SIG, hd, addr]);
}

const GET = (path: string) => `GET ${path} HTTP/1.1\r\nHost: policy.test\r\nConnection: close\r\n\r\n`;

/** Opens a connection (from `from`), writes `bytes`, reads until the server closes: the whole answer ('' if none). */
async function exchange(
  bytes: Buffer | string,
  opts: { from?: string; port?: number } = {},
): Promise<string> {
  const s = connect({ host: '127.0.0.1', port: opts.port ?? pg.gw.port, localAddress: opts.from });
  await once(s, 'connect');
  return collect(s, bytes);
}

function collect(s: Socket | ReturnType<typeof tlsConnect>, bytes?: Buffer | string): Promise<string> {
  return new Promise((resolve) => {
    let out = '';
    s.on('data', (d: Buffer) => {
      out += d.toString('latin1');
    });
    s.on('error', () => {});
    s.on('close', () => resolve(out));
    s.setTimeout(15_000, () => s.destroy());
    if (bytes !== undefined) s.write(bytes);
  });
}

/** Over TLS: the PROXY header in clear first (as a balancer sends it), then the TLS handshake and the request. */
async function exchangeTls(header: Buffer, request: string): Promise<string> {
  const raw = connect({ host: '127.0.0.1', port: tlsPort });
  await once(raw, 'connect');
  raw.write(header);
  const t = tlsConnect({
    socket: raw,
    rejectUnauthorized: false,
    servername: 'pp.test',
    ALPNProtocols: ['http/1.1'],
  });
  await once(t, 'secureConnect');
  return collect(t, request);
}

const statusOf = (answer: string) => Number(/^HTTP\/1\.1 (\d{3})/.exec(answer)?.[1] ?? 0);
/** The X-Forwarded-For the upstream received (its JSON echo of the request headers, in a chunked body). */
const upstreamXff = (answer: string) => /"x-forwarded-for":"([^"]*)"/.exec(answer)?.[1];

async function refused(reason: string): Promise<number> {
  return sumOf(await scrapeMetrics(pg.gw.adminUrl), 'edgegate_requests_refused_total', { reason });
}

describe('PROXY protocol', () => {
  it('v1 and v2 over HTTP: X-Forwarded-For, the IP rule and the access log use the proxied address', async () => {
    for (const [name, header] of [
      ['v1', v1('203.0.113.7')],
      ['v2', v2('203.0.113.7')],
    ] as const) {
      const a = await exchange(Buffer.concat([header, Buffer.from(GET(`/echo?${name}`))]));
      expect(statusOf(a), name).toBe(200);
      expect(upstreamXff(a), name).toBe('203.0.113.7');
      expect(statusOf(await exchange(Buffer.concat([header, Buffer.from(GET('/ip'))]))), name).toBe(200);
    }
    // The allow-list decides on the proxied address, not on the balancer's (127.0.0.1 is not in it).
    expect(statusOf(await exchange(Buffer.concat([v1('198.51.100.7'), Buffer.from(GET('/ip'))])))).toBe(403);
    expect(statusOf(await exchange(Buffer.concat([v2('198.51.100.7'), Buffer.from(GET('/ip'))])))).toBe(403);
    // IPv6 through both versions.
    const a6 = await exchange(Buffer.concat([v1('2001:db8::5'), Buffer.from(GET('/echo?v6'))]));
    expect(upstreamXff(a6)).toBe('2001:db8::5');
    const b6 = await exchange(Buffer.concat([v2ipv6('2001:db8::6'), Buffer.from(GET('/echo?v6b'))]));
    expect(upstreamXff(b6)).toBe('2001:db8::6');
    await waitFor(() => pg.gw.output().includes('"client":"203.0.113.7"'), {
      message: 'the access log shows the proxied client',
      timeoutMs: 5_000,
    });
  });

  it('the header may come in pieces, TLVs are skipped, and the request behind it (body, pipelining) is intact', async () => {
    const s = connect({ host: '127.0.0.1', port: pg.gw.port });
    await once(s, 'connect');
    const header = v2('203.0.113.9', { tlv: Buffer.from([0x04, 0x00, 0x03, 0x61, 0x62, 0x63]) });
    const done = collect(s);
    s.write(header.subarray(0, 5));
    await new Promise((r) => setImmediate(r));
    s.write(header.subarray(5));
    s.write('POST /echo?a HTTP/1.1\r\nHost: policy.test\r\nContent-Length: 5\r\n\r\nhel');
    s.write(`lo${GET('/echo?b')}`);
    const out = await done;
    expect(out.match(/HTTP\/1\.1 200/g)).toHaveLength(2);
    expect(out).toContain('"bodyBytes":5');
    expect(out.match(/"x-forwarded-for":"203\.0\.113\.9"/g)).toHaveLength(2);
  });

  it('the ClientAddress rate limit keys on the proxied address', async () => {
    const get = (h: Buffer) => exchange(Buffer.concat([h, Buffer.from(GET('/limited'))])).then(statusOf);
    expect(await get(v2('203.0.113.20'))).toBe(200);
    expect(await get(v1('203.0.113.20'))).toBe(429);
    // Another client behind the same balancer has a bucket of its own.
    expect(await get(v2('203.0.113.21'))).toBe(200);
  });

  it('v1 and v2 over HTTPS, HTTP/1.1 and HTTP/2', async () => {
    for (const [header, want] of [
      [v1('203.0.113.30'), '203.0.113.30'],
      [v2('203.0.113.31'), '203.0.113.31'],
    ] as const) {
      const a = await exchangeTls(header, GET('/echo?tls'));
      expect(statusOf(a)).toBe(200);
      expect(upstreamXff(a)).toBe(want);
    }
    for (const [header, want] of [
      [v1('203.0.113.32'), '203.0.113.32'],
      [v2('203.0.113.33'), '203.0.113.33'],
    ] as const) {
      const session = h2connect(`https://127.0.0.1:${tlsPort}`, {
        createConnection: () => {
          const raw = connect({ host: '127.0.0.1', port: tlsPort });
          raw.write(header);
          return tlsConnect({
            socket: raw,
            rejectUnauthorized: false,
            servername: 'pp.test',
            ALPNProtocols: ['h2'],
          });
        },
      });
      const body = await new Promise<string>((resolve, reject) => {
        const req = session.request({ ':path': '/echo?h2', ':authority': 'policy.test' });
        let text = '';
        req.setEncoding('utf8');
        req.on('data', (d: string) => {
          text += d;
        });
        req.on('end', () => resolve(text));
        req.on('error', reject);
        req.end();
      });
      session.close();
      expect((JSON.parse(body) as { headers: Record<string, string> }).headers['x-forwarded-for']).toBe(want);
    }
  });

  it('LOCAL (v2) and UNKNOWN (v1) keep the connection’s own address', async () => {
    const local = await exchange(
      Buffer.concat([v2('203.0.113.40', { command: 0 }), Buffer.from(GET('/echo?l'))]),
    );
    expect(upstreamXff(local)).toBe('127.0.0.1');
    const unknown = await exchange(`PROXY UNKNOWN ffff::1 ffff::2 1 2\r\n${GET('/echo?u')}`);
    expect(upstreamXff(unknown)).toBe('127.0.0.1');
  });

  it('from a trusted source, no header, a malformed or oversized one, or a silent connection: closed and counted', async () => {
    const before = {
      missing: await refused('proxy_protocol_missing'),
      malformed: await refused('proxy_protocol_malformed'),
      oversized: await refused('proxy_protocol_oversized'),
      timeout: await refused('proxy_protocol_timeout'),
    };
    // Plain HTTP where a header is required: closed without an answer, never served as the balancer's request.
    expect(await exchange(GET('/echo?plain'))).toBe('');
    expect(await exchange(`PROXY TCP4 203.0.113.1 127.0.0.1 99999 80\r\n${GET('/echo')}`)).toBe('');
    expect(await exchange(`PROXY TCP4 2001:db8::1 127.0.0.1 1 80\r\n${GET('/echo')}`)).toBe('');
    expect(await exchange(`PROXY TCP4 203.0.113.1 127.0.0.1 ${'1'.repeat(120)}`)).toBe('');
    const big = v2('203.0.113.1');
    big.writeUInt16BE(4000, 14);
    expect(await exchange(big)).toBe('');
    // Silent past --proxy-protocol-timeout (1 s), and half a header then silence.
    expect(await exchange(Buffer.alloc(0))).toBe('');
    expect(await exchange('PROXY TCP4 203.0')).toBe('');
    expect(await refused('proxy_protocol_missing')).toBe(before.missing + 1);
    expect(await refused('proxy_protocol_malformed')).toBe(before.malformed + 2);
    expect(await refused('proxy_protocol_oversized')).toBe(before.oversized + 2);
    expect(await refused('proxy_protocol_timeout')).toBe(before.timeout + 2);
    // Over TLS too: a ClientHello where the header should be is closed before any handshake.
    const raw = connect({ host: '127.0.0.1', port: tlsPort });
    await once(raw, 'connect');
    const t = tlsConnect({ socket: raw, rejectUnauthorized: false, servername: 'pp.test' });
    const err = await new Promise<Error>((resolve) => t.once('error', resolve));
    expect(err.message).toMatch(/socket disconnected|ECONNRESET|closed/i);
  });

  it('client address spoofing: a PROXY header from an untrusted source (127.0.0.2) is not honoured; it is served plain with its own address', async () => {
    const plain = await exchange(GET('/echo?untrusted'), { from: '127.0.0.2' });
    expect(statusOf(plain)).toBe(200);
    expect(upstreamXff(plain)).toBe('127.0.0.2');
    for (const h of [v1('203.0.113.7'), v2('203.0.113.7')]) {
      for (const path of ['/ip', '/echo?spoof']) {
        const a = await exchange(Buffer.concat([h, Buffer.from(GET(path))]), { from: '127.0.0.2' });
        // The header is just bytes of a bad request: v1 reads as a request line with an unknown method (501),
        // v2's binary as a parse error (400). Never the allow-listed address's 200, never its address upstream.
        expect([400, 501]).toContain(statusOf(a));
        expect(a).not.toContain('HTTP/1.1 200');
        expect(a).not.toContain('203.0.113.7');
      }
    }
  });

  it('HAProxy send-proxy and send-proxy-v2 (HTTP, and TLS passed through): the client behind it is the address', async () => {
    for (const port of haproxy.ports.slice(0, 2)) {
      const a = await exchange(GET('/echo?haproxy'), { port, from: '127.0.0.3' });
      expect(statusOf(a)).toBe(200);
      expect(upstreamXff(a)).toBe('127.0.0.3');
    }
    for (const port of haproxy.ports.slice(2)) {
      const raw = connect({ host: '127.0.0.1', port, localAddress: '127.0.0.4' });
      await once(raw, 'connect');
      const t = tlsConnect({
        socket: raw,
        rejectUnauthorized: false,
        servername: 'pp.test',
        ALPNProtocols: ['http/1.1'],
      });
      await once(t, 'secureConnect');
      const a = await collect(t, GET('/echo?haproxy-tls'));
      expect(statusOf(a)).toBe(200);
      expect(upstreamXff(a)).toBe('127.0.0.4');
    }
  });

  it('fuzzed headers from a trusted source close the connection or are served: never a crash', async () => {
    const valid = [v1('203.0.113.50'), v2('203.0.113.51'), v2ipv6('2001:db8::7')];
    const mutated = fc
      .tuple(
        fc.constantFrom(...valid),
        fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { maxLength: 4 }),
        fc.nat(),
      )
      .map(([base, flips, cut]) => {
        const b = Buffer.from(base);
        for (const [at, byte] of flips) b[at % b.length] = byte;
        return b.subarray(0, Math.max(1, b.length - (cut % 4)));
      });
    const arbitrary = fc.oneof(
      mutated,
      fc.uint8Array({ minLength: 1, maxLength: 300 }).map((u) => Buffer.from(u)),
    );
    await fc.assert(
      fc.asyncProperty(arbitrary, async (junk) => {
        const a = await exchange(Buffer.concat([junk, Buffer.from(GET('/echo?fuzz'))]));
        // Either refused (closed, nothing written) or the mutation was still a valid header and the request
        // behind it was answered.
        expect(a === '' || /^HTTP\/1\.1 \d{3}/.test(a)).toBe(true);
      }),
      { numRuns: 150 },
    );
    // Both workers are the ones that started: nothing the fuzzer sent ended a process.
    const w = await (await fetch(`${pg.gw.adminUrl}/debug/workers`)).json();
    expect((w as { restarts: number }).restarts).toBe(0);
    expect(
      statusOf(await exchange(Buffer.concat([v2('203.0.113.52'), Buffer.from(GET('/echo?after'))]))),
    ).toBe(200);
  }, 120_000);
});
