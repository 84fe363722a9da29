/**
 * The Node internal the raw data path stands on (src/dataplane/proxy/llhttp.ts: `_http_common.HTTPParser`). If a
 * Node upgrade renames a slot, reorders the arguments of a callback or stops returning errors with llhttp's codes,
 * this file fails before any traffic does.
 */
import { once } from 'node:events';
import net from 'node:net';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  isParseError,
  kOnBody,
  kOnExecute,
  kOnHeaders,
  kOnHeadersComplete,
  kOnMessageBegin,
  kOnMessageComplete,
  METHODS,
  newParser,
  REQUEST,
  RESPONSE,
  STRICT,
} from '../../../../src/dataplane/proxy/llhttp.ts';
import { bodilessRequest, requestHeaders } from '../../../../src/dataplane/proxy/raw-messages.ts';

interface Event {
  kind: string;
  args: unknown[];
}

function recorder(skipBody = false) {
  const events: Event[] = [];
  const p = newParser();
  p.initialize(RESPONSE, {}, 16 * 1024, STRICT);
  p[kOnHeaders] = (...args: unknown[]) => events.push({ kind: 'headers', args });
  p[kOnHeadersComplete] = (...args: unknown[]) => {
    events.push({ kind: 'head', args });
    return skipBody ? 1 : 0;
  };
  p[kOnBody] = (...args: unknown[]) => events.push({ kind: 'body', args: args.map(String) });
  p[kOnMessageComplete] = (...args: unknown[]) => events.push({ kind: 'done', args });
  return { p, events };
}

describe('Node’s HTTP parser as the raw data path uses it', () => {
  it('runs on the Node version the repository pins', () => {
    expect(process.versions.node.split('.')[0]).toBe('26');
  });

  it('calls back in order with the argument positions llhttp.ts types', () => {
    const { p, events } = recorder();
    const wire = 'HTTP/1.1 201 Created\r\nContent-Length: 3\r\nX-A: 1\r\nX-A: 2\r\n\r\nabc';
    expect(p.execute(Buffer.from(wire))).toBe(wire.length);
    expect(events.map((e) => e.kind)).toEqual(['head', 'body', 'done']);
    const [major, minor, headers, method, url, status, message, upgrade, keepAlive] = events[0]!.args;
    expect([major, minor, method, url, status, message, upgrade, keepAlive]).toEqual([
      1,
      1,
      undefined,
      undefined,
      201,
      'Created',
      false,
      true,
    ]);
    expect(headers).toEqual(['Content-Length', '3', 'X-A', '1', 'X-A', '2']);
    expect(events[1]!.args).toEqual(['abc']);
  });

  it('decodes chunked bodies and hands trailers through kOnHeaders before completion', () => {
    const { p, events } = recorder();
    const wire = 'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nxyz\r\n0\r\nT: 1\r\n\r\n';
    expect(p.execute(Buffer.from(wire))).toBe(wire.length);
    expect(events.map((e) => e.kind)).toEqual(['head', 'body', 'headers', 'done']);
    expect(events[2]!.args[0]).toEqual(['T', '1']);
  });

  it('delivers a head of more than 32 fields in pieces, then completes with undefined headers', () => {
    const { p, events } = recorder();
    let wire = 'HTTP/1.1 200 OK\r\nContent-Length: 0\r\n';
    for (let i = 0; i < 40; i++) wire += `X-${i}: ${i}\r\n`;
    expect(p.execute(Buffer.from(`${wire}\r\n`))).toBeGreaterThan(0);
    const pieces = events.filter((e) => e.kind === 'headers').flatMap((e) => e.args[0] as string[]);
    const head = events.find((e) => e.kind === 'head')!;
    const all = [...pieces, ...((head.args[2] as string[] | undefined) ?? [])];
    expect(all.length).toBe(82);
    expect(events.at(-1)!.kind).toBe('done');
  });

  it('skips the body when kOnHeadersComplete returns 1 (a response to HEAD)', () => {
    const { p, events } = recorder(true);
    const wire = 'HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n';
    expect(p.execute(Buffer.from(wire))).toBe(wire.length);
    expect(events.map((e) => e.kind)).toEqual(['head', 'done']);
  });

  it('returns (never throws) an Error with llhttp’s HPE_ code, strict about lone LF', () => {
    for (const [wire, code] of [
      ['HTTP/1.1 200 OK\r\nContent-Length: 2x\r\n\r\nok', 'HPE_INVALID_CONTENT_LENGTH'],
      ['HTTP/1.1 200 OK\nX: y\n\nok', 'HPE_'],
      ['HELLO\r\n\r\n', 'HPE_'],
    ] as const) {
      const { p } = recorder();
      const r = p.execute(Buffer.from(wire));
      expect(isParseError(r)).toBe(true);
      expect((r as Error & { code: string }).code.startsWith(code)).toBe(true);
    }
  });

  it('refuses a field name that is not a token and a control character in a value; passes obs-text', () => {
    // The relay of an upstream head (RawResponse.writeHeadParsed) writes the parsed fields unchecked because of this.
    for (const field of [
      'X-A: a\x01b',
      'X-A: a\x00b',
      'X-A: a\x7fb',
      'X-A: a\x1bb',
      'X A: b',
      'X\x80: v',
      'X(: v',
      'X-A: a\rb',
    ]) {
      const { p } = recorder();
      const r = p.execute(Buffer.from(`HTTP/1.1 200 OK\r\n${field}\r\nContent-Length: 0\r\n\r\n`, 'latin1'));
      expect(isParseError(r), JSON.stringify(field)).toBe(true);
    }
    const { p, events } = recorder();
    const r = p.execute(
      Buffer.from('HTTP/1.1 200 OK\r\nX-A: caf\xe9\tx\r\nContent-Length: 0\r\n\r\n', 'latin1'),
    );
    expect(isParseError(r)).toBe(false);
    expect((events.find((e) => e.kind === 'head')!.args[2] as string[]).slice(0, 2)).toEqual([
      'X-A',
      'caf\xe9\tx',
    ]);
  });

  it('refuses a head beyond the size given to initialize', () => {
    const { p } = recorder();
    const r = p.execute(Buffer.from(`HTTP/1.1 200 OK\r\nX: ${'a'.repeat(20_000)}\r\n\r\n`));
    expect((r as Error & { code: string }).code).toBe('HPE_HEADER_OVERFLOW');
  });

  it('completes a body delimited by the end of the connection on finish()', () => {
    const { p, events } = recorder();
    p.execute(Buffer.from('HTTP/1.1 200 OK\r\n\r\npartial'));
    expect(events.map((e) => e.kind)).toEqual(['head', 'body']);
    expect(events[0]!.args[8]).toBe(false); // not keep-alive: read to the end
    p.finish();
    expect(events.at(-1)!.kind).toBe('done');
  });

  describe('as a request parser (the raw listener, raw-server.ts)', () => {
    function requests() {
      const events: Event[] = [];
      const p = newParser();
      p.initialize(REQUEST, {}, 16 * 1024, STRICT);
      p[kOnMessageBegin] = () => events.push({ kind: 'begin', args: [] });
      p[kOnHeaders] = (...args: unknown[]) => events.push({ kind: 'headers', args });
      p[kOnHeadersComplete] = (...args: unknown[]) => {
        events.push({ kind: 'head', args });
        return 0;
      };
      p[kOnBody] = (...args: unknown[]) => events.push({ kind: 'body', args: args.map(String) });
      p[kOnMessageComplete] = () => events.push({ kind: 'done', args: [] });
      return { p, events };
    }

    it('passes the method as an index into METHODS, the target and keep-alive; pipelined messages in one read', () => {
      const { p, events } = requests();
      const wire =
        'POST /a?q=1 HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nhiGET /b HTTP/1.0\r\nHost: x\r\n\r\n';
      expect(p.execute(Buffer.from(wire))).toBe(wire.length);
      expect(events.map((e) => e.kind)).toEqual(['begin', 'head', 'body', 'done', 'begin', 'head', 'done']);
      const [major, minor, headers, method, url, , , upgrade, keepAlive] = events[1]!.args;
      expect([major, minor, METHODS[method as number], url, upgrade, keepAlive]).toEqual([
        1,
        1,
        'POST',
        '/a?q=1',
        false,
        true,
      ]);
      expect(headers).toEqual(['Host', 'x', 'Content-Length', '2']);
      const second = events[5]!.args;
      expect([second[1], METHODS[second[3] as number], second[8]]).toEqual([0, 'GET', false]);
    });

    it('stops after an upgrade request and returns where its head ends (the bytes after it are not parsed)', () => {
      const { p, events } = requests();
      const head = 'GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n';
      expect(p.execute(Buffer.from(`${head}GET / HTTP/1.1\r\n\r\n`))).toBe(head.length);
      expect(events.filter((e) => e.kind === 'head')).toHaveLength(1);
      expect(events[1]!.args[7]).toBe(true);
    });

    it('hands trailers of a chunked request to kOnHeaders after the body, and refuses CL with TE', () => {
      const { p, events } = requests();
      p.execute(
        Buffer.from(
          'POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\nX-T: 1\r\n\r\n',
        ),
      );
      expect(events.map((e) => e.kind)).toEqual(['begin', 'head', 'body', 'headers', 'done']);
      expect(events[3]!.args[0]).toEqual(['X-T', '1']);
      const bad = requests();
      const r = bad.p.execute(
        Buffer.from('POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n'),
      );
      expect((r as Error & { code: string }).code).toBe('HPE_INVALID_TRANSFER_ENCODING');
    });

    it('delivers the fields of a long head (more than 32) in pieces before kOnHeadersComplete', () => {
      const { p, events } = requests();
      const fields = Array.from({ length: 40 }, (_, i) => `X-F${i}: ${i}\r\n`).join('');
      p.execute(Buffer.from(`GET /long HTTP/1.1\r\nHost: x\r\n${fields}\r\n`));
      const pieces = events.filter((e) => e.kind === 'headers').flatMap((e) => e.args[0] as string[]);
      const head = events.find((e) => e.kind === 'head')!;
      const all = [...pieces, ...((head.args[2] as string[] | undefined) ?? [])];
      expect(all.length).toBe(82);
      expect(all.slice(0, 4)).toEqual(['Host', 'x', 'X-F0', '0']);
    });

    it('skips a message-complete slot that holds no function and goes on to the next request', () => {
      const p = newParser();
      p.initialize(REQUEST, {}, 16 * 1024, STRICT);
      const urls: string[] = [];
      p[kOnHeadersComplete] = (...args: unknown[]) => {
        urls.push(args[4] as string);
        return 0;
      };
      p[kOnMessageComplete] = null;
      const wire = 'GET /1 HTTP/1.1\r\nHost: a\r\n\r\nGET /2 HTTP/1.1\r\nHost: a\r\n\r\nGET /3 HTTP/1.1\r\n';
      expect(p.execute(Buffer.from(wire))).toBe(wire.length);
      expect(urls).toEqual(['/1', '/2']);
    });

    it('completes every request bodilessRequest calls bodiless with its head (generated framing fields)', () => {
      const lengths = fc.constantFrom('0', '00', '1', '5', '0005', ' 3', '3 ', '-1', '+1', '1e2', '0x1', '');
      const field = fc.oneof(
        fc.tuple(fc.constantFrom('Content-Length', 'content-length', 'CONTENT-LENGTH'), lengths),
        fc.tuple(
          fc.constantFrom('Transfer-Encoding', 'transfer-encoding'),
          fc.constantFrom('chunked', 'gzip, chunked', 'identity', 'gzip'),
        ),
        fc.tuple(fc.constantFrom('X-A', 'Accept'), fc.constantFrom('1', '*/*')),
      );
      const seen = { bodiless: 0, body: 0 };
      fc.assert(
        fc.property(
          fc.array(field, { maxLength: 3 }),
          fc.constantFrom('GET', 'POST', 'HEAD', 'OPTIONS'),
          (fields, method) => {
            const p = newParser();
            p.initialize(REQUEST, {}, 16 * 1024, STRICT);
            let raw: string[] = [];
            let body = 0;
            let complete = 0;
            p[kOnHeadersComplete] = (...args: unknown[]) => {
              raw = args[2] as string[];
              return 0;
            };
            p[kOnBody] = (chunk: Buffer) => {
              body += chunk.length;
            };
            p[kOnMessageComplete] = () => {
              complete++;
            };
            const head = `${method} / HTTP/1.1\r\nHost: a\r\n${fields.map(([n, v]) => `${n}: ${v}\r\n`).join('')}\r\n`;
            // The head alone: refused (the listener answers 400), or parsed and waiting for a body, or complete.
            if (isParseError(p.execute(Buffer.from(head)))) return;
            if (bodilessRequest(requestHeaders(raw))) {
              // The direction the raw listener relies on: what it completes itself, the parser completed too.
              seen.bodiless++;
              expect([body, complete]).toEqual([0, 1]);
            } else seen.body++; // the parser's own completion callback stays on for these
          },
        ),
        { numRuns: 1500 },
      );
      expect(seen.bodiless).toBeGreaterThan(100);
      expect(seen.body).toBeGreaterThan(100);
    });
  });

  it('reads a socket itself once consumed: kOnExecute per read with its bytes, readStop/readStart pause it', async () => {
    const server = net.createServer();
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    const accepted = once(server, 'connection');
    const client = net.connect((server.address() as net.AddressInfo).port, '127.0.0.1');
    const [socket] = (await accepted) as [net.Socket];
    const handle = (
      socket as unknown as { _handle: { readStop(): number; readStart(): number; isStreamBase: boolean } }
    )._handle;
    expect(handle.isStreamBase).toBe(true);
    const p = newParser();
    p.initialize(REQUEST, {}, 16 * 1024, STRICT);
    const seen: string[] = [];
    const reads: { ret: unknown; bytes: string }[] = [];
    p[kOnHeadersComplete] = (_a: number, _b: number, _h: string[], _m: number, url: string) => {
      seen.push(url);
      return 0;
    };
    p[kOnExecute] = (ret: unknown) => reads.push({ ret, bytes: p.getCurrentBuffer().toString('latin1') });
    p.consume(handle);
    let data = 0;
    socket.on('data', () => data++);
    const one = 'GET /one HTTP/1.1\r\nHost: x\r\n\r\n';
    client.write(one);
    await waitUntil(() => seen.length === 1);
    expect(reads[0]).toEqual({ ret: one.length, bytes: one });
    handle.readStop();
    await new Promise((r) => client.write('GET /two HTTP/1.1\r\nHost: x\r\n\r\n', r));
    // Stopped: the bytes wait in the kernel. (Turns of the event loop in which a read would have been parsed.)
    for (let i = 0; i < 20; i++) await new Promise((r) => setImmediate(r));
    expect(seen).toEqual(['/one']);
    handle.readStart();
    await waitUntil(() => seen.length === 2);
    expect(seen).toEqual(['/one', '/two']);
    expect(data).toBe(0); // no JS data events while consumed
    p.unconsume();
    client.destroy();
    socket.destroy();
    server.close();
  });
});

async function waitUntil(cond: () => boolean): Promise<void> {
  const deadline = Date.now() + 5_000;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error('condition not met in 5 s');
    await new Promise((r) => setImmediate(r));
  }
}
