/**
 * PROXY protocol (v1 and v2) on a listener, for gateways behind an L4 load balancer: the client address for IP
 * rules, rate-limit keys, X-Forwarded-For and the access log comes from the header the balancer writes.
 *
 * Off unless `--proxy-protocol CIDRS` names the trusted sources (the balancers). Then, per connection:
 * - from a trusted source the header is REQUIRED: the bytes are read (at most one header, MAX_V1/V2_LENGTH) before
 *   the HTTP or TLS server sees the socket; a connection without a valid header, with a malformed or oversized
 *   one, or silent past `proxyProtocolTimeoutMs`, is closed and counted (`edgegate_requests_refused_total`,
 *   reason `proxy_protocol_*`). A connection closed before sending a byte (a balancer's TCP health check) is not.
 * - from any other source nothing is read or honoured: the connection is served as a plain one, so a PROXY
 *   header it sends is just bytes to Node's HTTP parser (400) or the TLS handshake (fails), and the address stays
 *   the TCP peer. Closing those connections instead would add nothing (the header is never believed either way)
 *   and would cut off clients that reach the node directly.
 *
 * How the socket is handed over: the server's own `connection` listeners are taken off and called once the header
 * is consumed, with the bytes after it pushed back (`unshift`). The HTTP/1 server reads them when the socket
 * resumes; the TLS server's socket takes buffered bytes at its creation. The address is set on the object the
 * request handlers see: the TCP socket (HTTP), or the TLS socket once its handshake is done (HTTPS; matched by
 * the connection's own address and port, unique on a listener).
 */
import type { Server, Socket } from 'node:net';
import type { TLSSocket } from 'node:tls';
import { ConfigError } from '../../lib/errors.ts';
import { IpMatcher, parseAddress, parseCidr } from '../../table/ip-rules.ts';
import type { AdmissionProtocol, RefusalReason } from './admission.ts';
import { edgeEvents } from './edge-events.ts';
import { type ProxiedAddress, parseProxyHeader } from './proxy-protocol.ts';

export interface ProxyProtocolSettings {
  /** Trusted source CIDRs (canonical); empty: PROXY protocol off. */
  proxyProtocolFrom: string[];
  /** Time a trusted source has to send the whole header. */
  proxyProtocolTimeoutMs: number;
}

/**
 * `--proxy-protocol` (EDGEGATE_PROXY_PROTOCOL): comma-separated trusted source CIDRs, canonical; undefined or
 * empty: off. `0.0.0.0/0,::/0` trusts every source (only behind a balancer that is the sole way in).
 */
export function proxyProtocolSourcesFrom(value: string | undefined, timeoutMs: number | undefined): string[] {
  if (value === undefined || value.trim() === '' || value.trim() === 'off') return [];
  if (timeoutMs === 0) throw new ConfigError('--proxy-protocol-timeout: must be longer than 0');
  return value.split(',').map((raw) => {
    const p = parseCidr(raw.trim());
    if ('error' in p) throw new ConfigError(`--proxy-protocol: ${p.error}`);
    return p.canonical;
  });
}

type ConnectionListener = (this: Server, socket: Socket) => void;

const peerKey = (s: { remoteAddress?: string | undefined; remotePort?: number | undefined }) =>
  `${s.remoteAddress}|${s.remotePort}`;

/** Makes the proxied client the socket's peer for every reader of remoteAddress / remotePort / remoteFamily. */
function adopt(socket: Socket, client: ProxiedAddress): void {
  Object.defineProperties(socket, {
    remoteAddress: { value: client.address, configurable: true },
    remotePort: { value: client.port, configurable: true },
    remoteFamily: { value: client.family, configurable: true },
  });
}

/**
 * Installs PROXY protocol handling on `server` (an http.Server, or the HTTPS listener's TLS server with
 * `tls: true`). Call it last, after every `connection` listener is in place. No-op when no source is trusted.
 */
export function acceptProxyProtocol(
  server: Server,
  settings: ProxyProtocolSettings,
  protocol: AdmissionProtocol,
  tls: boolean,
): void {
  if (settings.proxyProtocolFrom.length === 0) return;
  const trusted = new IpMatcher(settings.proxyProtocolFrom);
  const listeners = server.listeners('connection') as ConnectionListener[];
  server.removeAllListeners('connection');
  const handOver = (socket: Socket) => {
    for (const l of listeners) l.call(server, socket);
  };
  /** TLS: the proxied client of each connection still in its handshake, by the connection's own peer. */
  const pending = tls ? new Map<string, ProxiedAddress>() : undefined;
  if (pending)
    server.prependListener('secureConnection', (socket: TLSSocket) => {
      const key = peerKey(socket);
      const client = pending.get(key);
      if (client === undefined) return;
      pending.delete(key);
      adopt(socket, client);
    });

  server.on('connection', (socket: Socket) => {
    if (!trusted.matches(parseAddress(socket.remoteAddress ?? ''))) {
      handOver(socket);
      return;
    }
    let buf: Buffer = Buffer.alloc(0);
    const refuse = (reason: RefusalReason, message: string) => {
      cleanup();
      edgeEvents.refused(protocol, reason, message, socket.remoteAddress);
      socket.destroy();
    };
    const onData = (chunk: Buffer) => {
      buf = buf.length === 0 ? chunk : Buffer.concat([buf, chunk]);
      const r = parseProxyHeader(buf);
      if (r.state === 'partial') return;
      if (r.state === 'invalid') return refuse(`proxy_protocol_${r.reason}`, r.message);
      cleanup();
      socket.pause();
      if (buf.length > r.length) socket.unshift(buf.subarray(r.length));
      if (r.client) {
        if (pending) {
          const key = peerKey(socket);
          pending.set(key, r.client);
          socket.once('close', () => pending.delete(key));
        } else adopt(socket, r.client);
      }
      handOver(socket);
      // The HTTP/1 server reads the pushed-back bytes from the stream; the TLS socket took them at its creation
      // and reads the connection itself from here on (resuming the TCP socket would compete with it).
      if (!tls) socket.resume();
    };
    const onEnd = () => {
      cleanup();
      if (buf.length > 0)
        edgeEvents.refused(
          protocol,
          'proxy_protocol_malformed',
          'the connection ended inside the PROXY header',
          socket.remoteAddress,
        );
      socket.destroy();
    };
    const timer = setTimeout(
      () => refuse('proxy_protocol_timeout', 'no complete PROXY header in time'),
      settings.proxyProtocolTimeoutMs,
    );
    const cleanup = () => {
      clearTimeout(timer);
      socket.off('data', onData);
      socket.off('end', onEnd);
      socket.off('error', onError);
    };
    const onError = () => {
      cleanup();
      socket.destroy();
    };
    socket.on('data', onData);
    socket.on('end', onEnd);
    socket.on('error', onError);
  });
}
