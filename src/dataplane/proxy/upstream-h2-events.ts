/**
 * Failures of HTTP/2 connections to upstreams (`protocol: h2` over TLS, `h2c` cleartext), counted by reason
 * (`edgegate_upstream_http2_session_errors_total{protocol,reason}`): one HTTP/2 connection carries many requests,
 * so a session that cannot be opened or breaks is worth its own figure beside the per-request errors. Only pools of
 * HTTP/2 upstreams get these listeners; HTTP/1.1 pools pay nothing. Ordinary ends — an idle session closed, a
 * GOAWAY with NO_ERROR (graceful restart), the gateway closing a retired pool — are not failures.
 */
import type { Pool } from 'undici';
import { edgeEvents, type UpstreamSessionReason } from './edge-events.ts';

const kProtocol = Symbol('edgegate.h2Protocol');
type WatchedPool = Pool & { [kProtocol]?: 'h2' | 'h2c' };

/** Why a session ended, or undefined when it ended normally. */
export function sessionEndReason(
  err: (Error & { code?: string }) | undefined,
): UpstreamSessionReason | undefined {
  if (err === undefined) return undefined;
  const code = err.code ?? '';
  // undici's InformationalError (idle timeout, GOAWAY NO_ERROR), and pools the gateway closed itself.
  if (code === 'UND_ERR_INFO' || code === 'UND_ERR_CLOSED' || code === 'UND_ERR_DESTROYED') return undefined;
  const message = err.message ?? '';
  if (message.includes('GOAWAY')) return 'goaway';
  if (code.startsWith('ERR_HTTP2') || /frameError|unresponsive|PROTOCOL_ERROR/.test(message))
    return 'protocol';
  return 'closed';
}

function onConnectionError(this: WatchedPool): void {
  const p = this[kProtocol];
  if (p !== undefined) edgeEvents.upstreamSessionError(p, 'connect');
}

function onDisconnect(this: WatchedPool, _origin: URL, _targets: unknown, err: Error | undefined): void {
  const p = this[kProtocol];
  const reason = sessionEndReason(err);
  if (p !== undefined && reason !== undefined) edgeEvents.upstreamSessionError(p, reason);
}

/** Counts the session failures of the pool of an HTTP/2 upstream. */
export function watchHttp2Pool(pool: Pool, protocol: 'h2' | 'h2c'): void {
  (pool as WatchedPool)[kProtocol] = protocol;
  pool.on('connectionError', onConnectionError);
  pool.on('disconnect', onDisconnect);
}
