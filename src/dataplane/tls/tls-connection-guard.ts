/**
 * Connection-level TLS rules of the HTTPS listener (the request side is https-server.ts):
 *
 * - **Unknown SNI**: a name no certificate serves, with no default certificate, fails the handshake with a fatal
 *   `unrecognized_name` alert (RFC 6066 §3), as docs/tls.md says. Node's SNICallback can only fail by destroying the
 *   socket (a bare TCP close), so the alert record is written on the TCP socket under the TLS one before that; the
 *   ClientHello is still being processed, nothing has been sent yet, and an alert before the handshake keys is a
 *   plaintext record in TLS 1.2 and 1.3 alike.
 * - **No renegotiation**: OpenSSL refuses it with a `no_renegotiation` alert (`SSL_OP_NO_RENEGOTIATION`,
 *   tls-settings.ts), on which the client ends the connection; Node's own check (`disableRenegotiation`, which
 *   destroys a connection whose renegotiation handshake starts) is armed on every connection as a second lock.
 * - **No resumption across certificates**: session tickets are off (tls-settings.ts), so a session made for one
 *   certificate is never resumed for another; a resumed session reaching this point anyway is closed and counted
 *   (`edgegate_tls_handshake_errors_total{reason="session_resumed"}`).
 */
import type { Server as NetServer, Socket } from 'node:net';
import type { SecureContext, TLSSocket } from 'node:tls';
import type { CertStore } from './cert-store.ts';
import type { TlsStats } from './tls-stats.ts';

/** A fatal (2) `unrecognized_name` (112) alert, in a TLS record of content type 21 (alert), version 1.2. */
const UNRECOGNIZED_NAME_ALERT = Buffer.from([0x15, 0x03, 0x03, 0x00, 0x02, 0x02, 0x70]);

function noCertificate(servername: string): Error {
  return Object.assign(new Error(`no certificate for ${JSON.stringify(servername)} and no default`), {
    code: 'ERR_EDGEGATE_NO_CERTIFICATE',
  });
}

const peerKey = (s: { remoteAddress?: string | undefined; remotePort?: number | undefined }) =>
  `${s.remoteAddress}|${s.remotePort}`;

export class TlsConnectionGuard {
  readonly #store: CertStore;
  readonly #stats: TlsStats;
  /** The TCP socket under each connection in its handshake, by peer address and port (a connection's identity). */
  readonly #tcp = new Map<string, Socket>();

  constructor(store: CertStore, stats: TlsStats) {
    this.#store = store;
    this.#stats = stats;
  }

  /** The listener's `SNICallback` (Node calls it with the TLS socket as `this`). */
  get SNICallback(): (servername: string, cb: (err: Error | null, ctx?: SecureContext) => void) => void {
    const guard = this;
    return function (this: TLSSocket, servername, cb) {
      const c = guard.#store.resolve(servername);
      if (c) return cb(null, c.context);
      const tcp = guard.#tcp.get(peerKey(this));
      if (!tcp || tcp.destroyed) return cb(noCertificate(servername));
      tcp.write(UNRECOGNIZED_NAME_ALERT, () => cb(noCertificate(servername)));
    };
  }

  /** Installs the connection listeners; call right after the server is created. */
  attach(server: NetServer): void {
    server.on('connection', (tcp: Socket) => {
      const key = peerKey(tcp);
      this.#tcp.set(key, tcp);
      tcp.once('close', () => {
        if (this.#tcp.get(key) === tcp) this.#tcp.delete(key);
      });
    });
    server.on('secureConnection', (socket: TLSSocket) => {
      this.#tcp.delete(peerKey(socket));
      if (socket.isSessionReused()) {
        this.#stats.handshakeError('session_resumed');
        socket.destroy();
        return;
      }
      socket.disableRenegotiation();
    });
  }
}
