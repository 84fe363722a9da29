/**
 * The three ways a client reaches the gateway — HTTP/1.1, HTTP/1.1 over TLS, HTTP/2 over TLS — behind one
 * request shape, so a security test runs once per listener and protocol (the test matrix of issue 23). HTTP/1
 * requests are written as raw bytes (nothing normalizes them on the way); HTTP/2 ones with node:http2, whose
 * pseudo-header fields carry the method, target and authority.
 */
import { once } from 'node:events';
import { constants as h2, connect as h2connect } from 'node:http2';
import { connect as netConnect, type Socket } from 'node:net';
import { connect as tlsConnect } from 'node:tls';

export type Transport = 'HTTP/1.1' | 'HTTP/1.1 over TLS' | 'HTTP/2';
export const H1_TRANSPORTS: readonly Transport[] = ['HTTP/1.1', 'HTTP/1.1 over TLS'];
export const ALL_TRANSPORTS: readonly Transport[] = [...H1_TRANSPORTS, 'HTTP/2'];

/** The gateway's two listeners. */
export interface Ports {
  /** Plain HTTP listener. */
  port: number;
  /** HTTPS listener (HTTP/2 and HTTP/1.1 over TLS). */
  tlsPort: number;
}

export interface TestRequest {
  method?: string;
  target: string;
  /** In order; the first `host` becomes HTTP/2's `:authority`, a second one a `host` field. Default Host: test.local. */
  headers?: [string, string][];
  body?: string;
}

export interface Answer {
  /** 0: no answer (HTTP/2 stream reset, or the connection closed without a status line). */
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
  /** HTTP/1: everything received, as latin1 text. */
  raw: string;
}

function connectFor(t: Transport, ports: Ports): Socket {
  return t === 'HTTP/1.1'
    ? netConnect(ports.port, '127.0.0.1')
    : tlsConnect({
        host: '127.0.0.1',
        port: ports.tlsPort,
        servername: 'test.local',
        rejectUnauthorized: false,
        ALPNProtocols: ['http/1.1'],
      });
}

/**
 * Raw HTTP/1 bytes on a fresh connection (TCP or TLS): resolves with everything received until the gateway closes
 * it, or what arrived by `timeoutMs`.
 */
export function rawOn(
  t: Transport,
  ports: Ports,
  payload: string | Buffer,
  timeoutMs = 3000,
): Promise<string> {
  if (t === 'HTTP/2') throw new Error('raw bytes are HTTP/1 only');
  return new Promise((resolve, reject) => {
    const socket = connectFor(t, ports);
    const chunks: Buffer[] = [];
    const timer = setTimeout(() => {
      socket.destroy();
      resolve(Buffer.concat(chunks).toString('latin1'));
    }, timeoutMs);
    socket.once(t === 'HTTP/1.1' ? 'connect' : 'secureConnect', () => socket.write(payload));
    socket.on('data', (c: Buffer) => chunks.push(c));
    socket.on('error', (err) => {
      if ((err as NodeJS.ErrnoException).code === 'ECONNRESET') return;
      clearTimeout(timer);
      reject(err);
    });
    socket.on('close', () => {
      clearTimeout(timer);
      resolve(Buffer.concat(chunks).toString('latin1'));
    });
  });
}

/** Status, headers and body of a raw HTTP/1 response (the last one, after any 1xx). */
export function parseRaw(raw: string): Answer {
  const m = /^HTTP\/1\.[01] (\d{3})/.exec(raw);
  const end = raw.indexOf('\r\n\r\n');
  const headers: Record<string, string | string[] | undefined> = {};
  if (end > 0)
    for (const line of raw.slice(0, end).split('\r\n').slice(1)) {
      const colon = line.indexOf(':');
      if (colon > 0) headers[line.slice(0, colon).toLowerCase()] = line.slice(colon + 1).trim();
    }
  return { status: m ? Number(m[1]) : 0, headers, body: end > 0 ? raw.slice(end + 4) : '', raw };
}

function h1Bytes(req: TestRequest): string {
  const headers = req.headers ?? [];
  const lines = [`${req.method ?? 'GET'} ${req.target} HTTP/1.1`];
  if (!headers.some(([n]) => n.toLowerCase() === 'host')) lines.push('Host: test.local');
  for (const [n, v] of headers) lines.push(`${n}: ${v}`);
  if (req.body !== undefined) lines.push(`Content-Length: ${Buffer.byteLength(req.body)}`);
  lines.push('Connection: close');
  return `${lines.join('\r\n')}\r\n\r\n${req.body ?? ''}`;
}

async function overH2(ports: Ports, req: TestRequest): Promise<Answer> {
  const session = h2connect(`https://127.0.0.1:${ports.tlsPort}`, {
    servername: 'test.local',
    rejectUnauthorized: false,
  });
  session.on('error', () => {});
  try {
    await once(session, 'connect');
    const out: Record<string, string | string[]> = { ':method': req.method ?? 'GET', ':path': req.target };
    let authority: string | undefined;
    for (const [name, value] of req.headers ?? []) {
      const n = name.toLowerCase();
      if (n === 'host' && authority === undefined) {
        authority = value;
        continue;
      }
      const prior = out[n];
      out[n] = prior === undefined ? value : Array.isArray(prior) ? [...prior, value] : [prior, value];
    }
    out[':authority'] = authority ?? 'test.local';
    const stream = session.request(out, { endStream: req.body === undefined });
    if (req.body !== undefined) stream.end(req.body);
    return await new Promise<Answer>((resolve) => {
      let status = 0;
      let headers: Record<string, string | string[] | undefined> = {};
      const chunks: Buffer[] = [];
      stream.on('response', (h) => {
        status = Number(h[':status']);
        headers = { ...h };
      });
      stream.on('data', (c: Buffer) => chunks.push(c));
      stream.on('error', () => {});
      stream.on('close', () => {
        const body = Buffer.concat(chunks).toString('latin1');
        // A reset before the response is no answer.
        resolve({
          status: stream.rstCode !== h2.NGHTTP2_NO_ERROR && status === 0 ? 0 : status,
          headers,
          body,
          raw: body,
        });
      });
    });
  } finally {
    session.destroy();
  }
}

/** One request on a fresh connection over the given transport. */
export async function send(t: Transport, ports: Ports, req: TestRequest): Promise<Answer> {
  if (t === 'HTTP/2') return overH2(ports, req);
  return parseRaw(await rawOn(t, ports, h1Bytes(req)));
}
