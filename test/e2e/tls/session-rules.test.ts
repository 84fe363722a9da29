/**
 * Security regressions of the HTTPS listener's TLS sessions, with node:tls clients against a real gateway:
 *
 * - session resumption across certificates: a session made with SNI `a.test` (its name rewritten to `b.test`, as
 *   an attacker's client cache would hold it) was resumed for `b.test`, on a connection authenticated only with
 *   a's certificate. Now no session resumes (TLS 1.3 and 1.2): every handshake presents the certificate of its SNI;
 * - client-initiated renegotiation on HTTP/1.1 over TLS 1.2 was accepted; now it is refused and ends the
 *   connection, and the listener keeps serving;
 * - an unknown SNI (no default certificate) got a bare TCP close; now the documented `unrecognized_name` alert.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { connect, type TLSSocket } from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { scrapeMetrics, sumOf } from '../../support/prom-text.ts';
import { catalogYaml, type Echo, startEcho, tempDir, waitFor } from '../cluster/helpers.ts';
import { makeCert, routeYaml, startTlsGateway, type TlsGateway } from './helpers.ts';

const tmp = tempDir('edgegate-tls-sessions-');
let echo: Echo;
let gw: TlsGateway;

type Version = 'TLSv1.2' | 'TLSv1.3';

interface Handshake {
  socket: TLSSocket;
  reused: boolean;
  org: string;
  /** Resolves with the last session the server handed out (TLS 1.3 sends tickets after the handshake). */
  session(): Promise<Buffer | undefined>;
}

function handshake(servername: string, version: Version, session?: Buffer): Promise<Handshake> {
  return new Promise((resolve, reject) => {
    const socket = connect({
      host: '127.0.0.1',
      port: gw.tlsPort,
      servername,
      rejectUnauthorized: false,
      minVersion: version,
      maxVersion: version,
      ALPNProtocols: ['http/1.1'],
      ...(session ? { session } : {}),
    });
    let last: Buffer | undefined;
    socket.on('session', (s: Buffer) => {
      last = s;
    });
    socket.once('secureConnect', () =>
      resolve({
        socket,
        reused: socket.isSessionReused(),
        org: String(socket.getPeerCertificate().subject?.O ?? ''),
        // One request and its answer: any session ticket has arrived by then.
        session: async () => {
          await httpGet(socket, servername);
          return last ?? socket.getSession();
        },
      }),
    );
    socket.once('error', reject);
  });
}

/** One HTTP/1.1 request on an open TLS connection; resolves with the status line. */
function httpGet(socket: TLSSocket, host: string): Promise<string> {
  return new Promise((resolve, reject) => {
    let text = '';
    const onData = (d: Buffer) => {
      text += d.toString('latin1');
      const end = text.indexOf('\r\n\r\n');
      const length = /\r\ncontent-length: (\d+)/i.exec(text);
      if (end >= 0 && length && text.length >= end + 4 + Number(length[1])) {
        socket.off('data', onData);
        resolve(text.slice(0, text.indexOf('\r\n')));
      }
    };
    socket.on('data', onData);
    socket.once('error', reject);
    socket.write(`GET /x HTTP/1.1\r\nHost: ${host}\r\n\r\n`);
  });
}

beforeAll(async () => {
  echo = await startEcho('tls-sessions');
  const certDir = join(tmp.dir, 'certs');
  mkdirSync(certDir);
  mkdirSync(join(tmp.dir, 'routes'));
  // Two certificates, no default: names of the same length, so a session's name can be swapped in place.
  const a = makeCert(certDir, 'a', 'a.test');
  const b = makeCert(certDir, 'b', 'b.test');
  writeFileSync(join(tmp.dir, 'routes', 'r.yaml'), routeYaml('sites', ['a.test', 'b.test']));
  writeFileSync(join(tmp.dir, 'catalog.yaml'), catalogYaml([{ port: echo.port }]));
  gw = await startTlsGateway({
    routes: join(tmp.dir, 'routes'),
    catalog: join(tmp.dir, 'catalog.yaml'),
    // One worker: every connection meets the same TLS server (and, before the fix, the same ticket keys).
    workers: 1,
    args: ['--tls-cert', `${a.cert},${a.key}`, '--tls-cert', `${b.cert},${b.key}`],
  });
}, 60_000);

afterAll(async () => {
  await gw?.stop();
  await echo?.stop();
  tmp.remove();
});

describe('TLS sessions', () => {
  for (const version of ['TLSv1.3', 'TLSv1.2'] as const) {
    it(`${version}: a session made for a.test is not resumed for b.test (nor at all)`, async () => {
      const first = await handshake('a.test', version);
      expect(first.org).toBe('a');
      const session = await first.session();
      first.socket.destroy();
      expect(session).toBeDefined();
      // The same session for the same name: not resumed either (resumption is off).
      const again = await handshake('a.test', version, session);
      expect(again.reused).toBe(false);
      expect(again.org).toBe('a');
      again.socket.destroy();
      // The attack: the session, relabelled b.test, offered under SNI b.test.
      const forged = Buffer.from(session!);
      for (let i = forged.indexOf('a.test'); i >= 0; i = forged.indexOf('a.test', i + 1))
        forged.write('b.test', i);
      const cross = await handshake('b.test', version, forged);
      expect(cross.reused).toBe(false);
      expect(cross.org).toBe('b');
      expect(await httpGet(cross.socket, 'b.test')).toBe('HTTP/1.1 200 OK');
      cross.socket.destroy();
    });
  }

  it('a client renegotiation on HTTP/1.1 over TLS 1.2 is refused and ends that connection only', async () => {
    const h = await handshake('a.test', 'TLSv1.2');
    expect(await httpGet(h.socket, 'a.test')).toBe('HTTP/1.1 200 OK');
    h.socket.on('error', () => {});
    const closed = new Promise<'closed'>((r) => h.socket.once('close', () => r('closed')));
    const renegotiated = new Promise<'renegotiated' | 'failed'>((resolve) => {
      const started = h.socket.renegotiate({ rejectUnauthorized: false }, (err) =>
        resolve(err ? 'failed' : 'renegotiated'),
      );
      if (!started) resolve('failed');
    });
    // Accepted (before the fix) the callback reports success and the connection stays open.
    expect(await Promise.race([renegotiated, closed])).not.toBe('renegotiated');
    // Refused with a no_renegotiation alert: the connection ends.
    await closed;
    // The listener serves the next connection.
    const next = await handshake('a.test', 'TLSv1.2');
    expect(await httpGet(next.socket, 'a.test')).toBe('HTTP/1.1 200 OK');
    next.socket.destroy();
  });

  for (const version of ['TLSv1.3', 'TLSv1.2'] as const) {
    it(`${version}: an unknown SNI gets the unrecognized_name alert`, async () => {
      const before = sumOf(
        await scrapeMetrics(`http://127.0.0.1:${gw.adminPort}`),
        'edgegate_tls_handshake_errors_total',
        {
          reason: 'unknown_servername',
        },
      );
      const err = await handshake('nobody.test', version).then(
        (h) => {
          h.socket.destroy();
          return undefined;
        },
        (e: NodeJS.ErrnoException) => e,
      );
      expect(err?.code).toBe('ERR_SSL_TLSV1_UNRECOGNIZED_NAME');
      expect(err?.message).toContain('SSL alert number 112');
      await waitFor('the refused handshake to be counted', async () => {
        const m = await scrapeMetrics(`http://127.0.0.1:${gw.adminPort}`);
        return (
          sumOf(m, 'edgegate_tls_handshake_errors_total', { reason: 'unknown_servername' }) === before + 1
        );
      });
    });
  }
});
