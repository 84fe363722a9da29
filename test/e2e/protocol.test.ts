/**
 * HTTP/1.1 protocol behaviour through the gateway: backpressure both ways, Expect: 100-continue, HTTP/1.0
 * clients, trailers (dropped both ways), chunked uploads.
 */
import { type IncomingMessage, request, type ServerResponse } from 'node:http';
import { connect } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import {
  type Gateway,
  rawExchange,
  startEcho,
  startGateway,
  startUpstream,
  statusOf,
  tableOf,
  type Upstream,
} from '../support/inproc-gateway.ts';
import { waitFor } from '../support/wait.ts';

const cleanup: (() => Promise<void>)[] = [];
afterEach(async () => {
  while (cleanup.length > 0) await cleanup.pop()!();
});

async function through(up: Upstream): Promise<Gateway> {
  cleanup.push(() => up.close());
  const gw = await startGateway(
    tableOf({ rules: [{ backends: [{ consul: { service: 'up' } }] }] }, { up: [up.port] }),
  );
  cleanup.push(() => gw.close());
  return gw;
}

function bodyOf(raw: string): string {
  return raw.slice(raw.indexOf('\r\n\r\n') + 4);
}

describe('backpressure', () => {
  it('a slow reader pauses the upstream (the gateway does not buffer the response)', async () => {
    const total = 64 * 1024 * 1024;
    const chunk = Buffer.alloc(64 * 1024, 'd');
    let written = 0;
    let blockedSince = 0;
    const up = await startUpstream('big', (_req, res: ServerResponse) => {
      res.writeHead(200, { 'content-length': total });
      const pump = () => {
        while (written < total) {
          written += chunk.length;
          if (!res.write(chunk)) {
            blockedSince = performance.now();
            res.once('drain', () => {
              blockedSince = 0;
              pump();
            });
            return;
          }
        }
        res.end();
      };
      pump();
    });
    const gw = await through(up);
    const received = await new Promise<number>((resolve, reject) => {
      const req = request(
        { host: '127.0.0.1', port: gw.port, path: '/big', headers: { host: 't' } },
        async (res) => {
          res.pause();
          // The client reads nothing: the upstream must stay blocked, far from having written everything.
          await waitFor(() => blockedSince > 0 && performance.now() - blockedSince > 300, {
            intervalMs: 10,
            message: 'upstream blocked for 300 ms',
          });
          const writtenWhilePaused = written;
          console.log(
            `backpressure: client paused, upstream blocked after ${(writtenWhilePaused / 1048576).toFixed(1)} MiB of ${total / 1048576} MiB`,
          );
          expect(writtenWhilePaused).toBeLessThan(total / 4);
          let n = 0;
          res.on('data', (c: Buffer) => {
            n += c.length;
          });
          res.on('end', () => resolve(n));
          res.on('error', reject);
          res.resume();
        },
      );
      req.on('error', reject);
      req.end();
    });
    expect(received).toBe(total);
  });

  it('a slow upstream reader pauses the client upload', async () => {
    const total = 64 * 1024 * 1024;
    let upstreamReq: IncomingMessage | undefined;
    let readBytes = 0;
    const up = await startUpstream('sink', (req, res) => {
      upstreamReq = req;
      req.pause();
      req.on('data', (c: Buffer) => {
        readBytes += c.length;
      });
      req.on('end', () => res.end(String(readBytes)));
    });
    const gw = await through(up);
    const chunk = Buffer.alloc(64 * 1024, 'u');
    let sent = 0;
    let blockedSince = 0;
    const answer = new Promise<string>((resolve, reject) => {
      const req = request(
        {
          host: '127.0.0.1',
          port: gw.port,
          method: 'PUT',
          path: '/upload',
          headers: { host: 't', 'content-length': total },
        },
        (res) => {
          let body = '';
          res.on('data', (c: Buffer) => {
            body += c;
          });
          res.on('end', () => resolve(body));
        },
      );
      req.on('error', reject);
      const pump = () => {
        while (sent < total) {
          sent += chunk.length;
          if (!req.write(chunk)) {
            blockedSince = performance.now();
            req.once('drain', () => {
              blockedSince = 0;
              pump();
            });
            return;
          }
        }
        req.end();
      };
      pump();
    });
    await waitFor(
      () => upstreamReq !== undefined && blockedSince > 0 && performance.now() - blockedSince > 300,
      {
        intervalMs: 10,
        message: 'client blocked for 300 ms',
      },
    );
    console.log(
      `backpressure: upstream paused, client blocked after ${(sent / 1048576).toFixed(1)} MiB of 64 MiB`,
    );
    expect(sent).toBeLessThan(total / 4);
    upstreamReq!.resume();
    expect(await answer).toBe(String(total));
  });
});

describe('Expect: 100-continue', () => {
  it('the client gets 100 Continue, the body is forwarded, and the upstream never sees Expect', async () => {
    const up = await startEcho('echo');
    const gw = await through(up);
    const body = 'x'.repeat(5000);
    const response = await new Promise<string>((resolve, reject) => {
      const socket = connect(gw.port, '127.0.0.1');
      let data = '';
      let sentBody = false;
      socket.on('connect', () =>
        socket.write(
          `POST /upload HTTP/1.1\r\nHost: test.local\r\nContent-Length: ${body.length}\r\nExpect: 100-continue\r\nConnection: close\r\n\r\n`,
        ),
      );
      socket.on('data', (c: Buffer) => {
        data += c.toString('latin1');
        if (!sentBody && data.startsWith('HTTP/1.1 100 Continue\r\n\r\n')) {
          sentBody = true;
          socket.write(body);
        }
      });
      socket.on('error', reject);
      socket.on('close', () => resolve(data));
    });
    expect(response.startsWith('HTTP/1.1 100 Continue\r\n\r\n')).toBe(true);
    const final = response.slice('HTTP/1.1 100 Continue\r\n\r\n'.length);
    expect(statusOf(final)).toBe(200);
    const seen = JSON.parse(bodyOf(final));
    expect(seen.bodyBytes).toBe(body.length);
    expect(seen.headers.expect).toBeUndefined();
  });
});

describe('HTTP/1.0 clients', () => {
  it('get a complete response, close-delimited when the upstream streams chunked', async () => {
    const up = await startEcho('echo');
    const gw = await through(up);
    const response = await rawExchange(
      gw.port,
      'GET /data?size=30000&chunks=5 HTTP/1.0\r\nHost: test.local\r\n\r\n',
    );
    expect(statusOf(response)).toBe(200);
    expect(response.toLowerCase()).not.toContain('transfer-encoding: chunked');
    expect(bodyOf(response)).toBe('x'.repeat(30000));
  });

  it('without a Host header are still served (by a route for every host)', async () => {
    const up = await startEcho('echo');
    const gw = await through(up);
    const response = await rawExchange(gw.port, 'GET /old HTTP/1.0\r\n\r\n');
    expect(statusOf(response)).toBe(200);
    expect(JSON.parse(bodyOf(response)).path).toBe('/old');
  });
});

describe('trailers', () => {
  it('upstream response trailers are dropped; the body is intact', async () => {
    const up = await startUpstream('trailing', (_req, res) => {
      res.writeHead(200, { trailer: 'x-checksum', 'content-type': 'text/plain' });
      res.write('part one, ');
      res.addTrailers({ 'x-checksum': 'abc' });
      res.end('part two');
    });
    const gw = await through(up);
    const response = await rawExchange(
      gw.port,
      'GET / HTTP/1.1\r\nHost: t\r\nTE: trailers\r\nConnection: close\r\n\r\n',
    );
    expect(statusOf(response)).toBe(200);
    expect(response.toLowerCase()).not.toContain('x-checksum');
    expect(response.toLowerCase()).not.toMatch(/\r\ntrailer:/);
    expect(response).toContain('part one, ');
    expect(response).toContain('part two');
  });

  it('client request trailers are dropped; the chunked body is forwarded', async () => {
    let seenTrailers: Record<string, string | undefined> | undefined;
    let seenBody = '';
    const up = await startUpstream('sink', (req, res) => {
      req.on('data', (c: Buffer) => {
        seenBody += c;
      });
      req.on('end', () => {
        seenTrailers = req.trailers;
        res.end('ok');
      });
    });
    const gw = await through(up);
    const response = await rawExchange(
      gw.port,
      'POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\nTrailer: x-sig\r\nConnection: close\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\nx-sig: s1\r\n\r\n',
    );
    expect(statusOf(response)).toBe(200);
    expect(seenBody).toBe('hello world');
    expect(seenTrailers).toEqual({});
  });
});
