/**
 * The floor: the least a Node process on Node's own parser (src/dataplane/proxy/llhttp.ts) does to proxy a
 * keep-alive GET — what issue 17's prototype measured, rebuilt to measure it again beside nginx and edgegate on the
 * machine as it is today. Not a proxy anyone should run: each client connection gets its own upstream connection,
 * one request at a time, bodiless requests only, no timeouts, no header hygiene, no routing, no metrics.
 *
 *   node bench/floor-proxy.ts PORT UPSTREAM_PORT relay|rebuild
 *
 * relay: the upstream's answer leaves as the bytes it came in (its socket read with `data` events, each read
 *   parsed for the message boundaries and written on as it is) — the prototype's 0.91× row.
 * rebuild: both sockets read by the parser (`consume()`); the answer's head rebuilt from the parsed fields, the
 *   body copied behind it, one write — the prototype's 0.79× row, and what edgegate's data path does.
 *
 * bench/floor.sh runs it against nginx; docs/benchmarks.md ("Issue 17, step 4") has the figures.
 */
import { Buffer } from 'node:buffer';
import net from 'node:net';
import {
  kOnBody,
  kOnExecute,
  kOnHeadersComplete,
  kOnMessageComplete,
  METHODS,
  type NativeParser,
  newParser,
  REQUEST,
  RESPONSE,
  STRICT,
  type StreamHandle,
} from '../src/dataplane/proxy/llhttp.ts';

const [portArg, upstreamArg, mode = 'rebuild'] = process.argv.slice(2);
const upstreamPort = Number(upstreamArg);
if (!portArg || !upstreamPort || (mode !== 'relay' && mode !== 'rebuild')) {
  console.error('usage: node bench/floor-proxy.ts PORT UPSTREAM_PORT relay|rebuild');
  process.exit(2);
}

function consume(parser: NativeParser, socket: net.Socket): void {
  const handle = (socket as unknown as { _handle: StreamHandle })._handle;
  handle._consumed = true;
  parser.consume(handle);
}

function serve(client: net.Socket): void {
  const upstream = net.connect({ port: upstreamPort, host: '127.0.0.1', noDelay: true });
  const req = newParser();
  req.initialize(REQUEST, {}, 16 * 1024, STRICT);
  const res = newParser();
  res.initialize(RESPONSE, {}, 16 * 1024, STRICT);
  req[kOnHeadersComplete] = (
    major: number,
    minor: number,
    headers: string[],
    method: number,
    url: string,
  ): number => {
    let head = `${METHODS[method]} ${url} HTTP/${major}.${minor}\r\n`;
    for (let i = 0; i < headers.length; i += 2) head += `${headers[i]}: ${headers[i + 1]}\r\n`;
    upstream.write(`${head}\r\n`, 'latin1');
    return 0;
  };
  req[kOnExecute] = () => {};
  client.on('error', () => upstream.destroy());
  client.on('close', () => upstream.destroy());
  upstream.on('error', () => client.destroy());
  upstream.on('close', () => client.destroy());

  if (mode === 'relay') {
    upstream.on('data', (chunk: Buffer) => {
      res.execute(chunk);
      client.write(chunk);
    });
  } else {
    let head = '';
    let body: Buffer[] = [];
    res[kOnHeadersComplete] = (
      _major: number,
      _minor: number,
      headers: string[],
      _method: number,
      _url: string,
      status: number,
      message: string,
    ): number => {
      head = `HTTP/1.1 ${status} ${message}\r\n`;
      for (let i = 0; i < headers.length; i += 2) head += `${headers[i]}: ${headers[i + 1]}\r\n`;
      head += '\r\n';
      return 0;
    };
    res[kOnBody] = (chunk: Buffer) => {
      body.push(chunk);
    };
    res[kOnMessageComplete] = () => {
      const size = body.reduce((n, b) => n + b.length, 0);
      const out = Buffer.allocUnsafe(head.length + size);
      let at = out.write(head, 0, 'latin1');
      for (const b of body) {
        out.set(b, at);
        at += b.length;
      }
      body = [];
      client.write(out);
    };
    res[kOnExecute] = () => {};
    upstream.once('connect', () => consume(res, upstream));
  }
  consume(req, client);
}

net.createServer({ noDelay: true }, serve).listen(Number(portArg), '127.0.0.1');
