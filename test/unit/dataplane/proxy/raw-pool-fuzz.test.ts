/**
 * Property test of the raw HTTP/1.1 pool against generated upstream bytes: well-formed responses taken apart and
 * put together wrong (framing headers mixed, chunk sizes bent, bytes cut, CR/LF/NUL dropped in, extra responses
 * appended), delivered in random slices. Whatever the upstream sends:
 *   - every request settles exactly once (end or error), with no exception escaping the pool;
 *   - the answer to the next request on the same pool is that request's own (no desync, whatever was left over).
 */
import { once } from 'node:events';
import net, { type AddressInfo, type Socket } from 'node:net';
import fc from 'fast-check';
import type { Dispatcher } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RawPool } from '../../../../src/dataplane/proxy/raw-pool.ts';

const FINAL = 'HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nfinal';

/** What the upstream sends for the fuzzed request: slices written one after the other, then close or stay. */
let script: { slices: Buffer[]; close: boolean } = { slices: [], close: false };
let server: net.Server;
let port = 0;

beforeAll(async () => {
  server = net.createServer((socket: Socket) => {
    socket.on('error', () => {});
    let buf = '';
    socket.on('data', (d: Buffer) => {
      buf += d.toString('latin1');
      while (buf.includes('\r\n\r\n')) {
        const head = buf.slice(0, buf.indexOf('\r\n\r\n'));
        buf = buf.slice(buf.indexOf('\r\n\r\n') + 4);
        if (head.includes(' /final ')) socket.write(FINAL);
        else {
          const { slices, close } = script;
          void (async () => {
            for (const s of slices) {
              if (socket.destroyed) return;
              socket.write(s);
              await new Promise((r) => setImmediate(r));
            }
            if (close) socket.end();
          })();
        }
      }
    });
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  port = (server.address() as AddressInfo).port;
});

afterAll(() => server.close());

interface Outcome {
  settled: number;
  error?: string;
  body: string;
}

function ask(pool: RawPool, path: string, method = 'GET'): Promise<Outcome> {
  return new Promise((resolve) => {
    const o: Outcome = { settled: 0, body: '' };
    let timer: NodeJS.Timeout | undefined;
    const settle = () => {
      o.settled++;
      // Settling twice would show up here: the promise resolves once, the count keeps going.
      clearTimeout(timer);
      timer = setTimeout(() => resolve(o), 20);
    };
    pool.dispatch(
      {
        method,
        path,
        headers: ['host', 'fuzz.test'],
        headersTimeout: 500,
        bodyTimeout: 500,
      } as Dispatcher.DispatchOptions,
      {
        onResponseData(_c, chunk) {
          o.body += chunk.toString('latin1');
        },
        onResponseEnd() {
          settle();
        },
        onResponseError(_c, err) {
          o.error = (err as { code?: string }).code ?? err.message;
          settle();
        },
      },
    );
  });
}

const heads = [
  'HTTP/1.1 200 OK',
  'HTTP/1.1 204 No Content',
  'HTTP/1.1 304 Not Modified',
  'HTTP/1.1 100 Continue',
  'HTTP/1.1 103 Early Hints',
  'HTTP/1.1 101 Switching Protocols',
  'HTTP/1.0 200 OK',
  'HTTP/1.1 999 Odd',
  'HTTP/1.1 2x0 OK',
  'HTTP/2 200',
  'ICY 200 OK',
];
const fields = [
  'content-length: 5',
  'content-length: 0',
  'content-length: 99',
  'content-length: -1',
  'content-length: 5, 5',
  'transfer-encoding: chunked',
  'transfer-encoding: gzip, chunked',
  'transfer-encoding: chunked, gzip',
  'connection: close',
  'connection: keep-alive',
  'keep-alive: timeout=0',
  'upgrade: websocket',
  'x-a: b',
  ' x-folded: c',
  'x-nul: a\0b',
  'x-cr: a\rb',
];
const bodies = [
  'hello',
  '',
  '5\r\nhello\r\n0\r\n\r\n',
  '5\r\nhello\r\n0\r\nx-t: 1\r\n\r\n',
  'ff\r\nhello\r\n0\r\n\r\n',
  '5 \r\nhello\r\n0\r\n\r\n',
  '5;ext=1\r\nhello\r\n0\r\n\r\n',
  'zz\r\n',
  FINAL,
  'HTTP/1.1 200 OK\r\ncontent-length: 6\r\n\r\nforged',
];

const response = fc
  .record({
    head: fc.constantFrom(...heads),
    fields: fc.array(fc.constantFrom(...fields), { maxLength: 4 }),
    eol: fc.constantFrom('\r\n', '\n', '\r\n', '\r\n'),
    body: fc.constantFrom(...bodies),
    extra: fc.option(fc.constantFrom(...bodies), { nil: undefined }),
    cut: fc.option(fc.nat(200), { nil: undefined }),
  })
  .map((r) => {
    let text = `${r.head}${r.eol}${r.fields.join(r.eol)}${r.fields.length ? r.eol : ''}${r.eol}${r.body}${r.extra ?? ''}`;
    if (r.cut !== undefined) text = text.slice(0, r.cut);
    return Buffer.from(text, 'latin1');
  });

describe('raw pool property: generated upstream responses', () => {
  it('settle every request exactly once and never desync the next request', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(response, { minLength: 1, maxLength: 2 }),
        fc.array(fc.nat(64), { maxLength: 4 }),
        fc.boolean(),
        fc.constantFrom('GET', 'HEAD', 'POST'),
        async (parts, cuts, close, method) => {
          const bytes = Buffer.concat(parts);
          const slices: Buffer[] = [];
          let at = 0;
          for (const c of cuts) {
            if (at >= bytes.length) break;
            slices.push(bytes.subarray(at, at + c + 1));
            at += c + 1;
          }
          if (at < bytes.length) slices.push(bytes.subarray(at));
          script = { slices, close };
          const pool = new RawPool({
            host: '127.0.0.1',
            port,
            connections: 1,
            keepAliveTimeoutMs: 2000,
            connectTimeoutMs: 1000,
          });
          try {
            const first = await ask(pool, '/fuzz', method);
            expect(first.settled).toBe(1);
            const next = await ask(pool, '/final');
            expect(next.settled).toBe(1);
            // Whatever the first answer left on the connection, the next request gets its own answer or, when the
            // upstream broke the connection, a failure — never someone else's bytes.
            if (next.error === undefined) expect(next.body).toBe('final');
          } finally {
            await pool.destroy();
          }
        },
      ),
      { numRuns: 100 },
    );
  }, 120_000);
});
