/**
 * Plain TLS counters of one process, kept off the hot path (incremented on handshake events only) and read through
 * `snapshot()`: the metrics module exposes them (edgegate_tls_handshakes_total, edgegate_tls_handshake_errors_total
 * {reason}, edgegate_tls_certificate_expiry_seconds{hostname}).
 */
import { FLOOD_REASONS, type FloodReason, type TlsStatsSnapshot } from '../../cluster/worker-report.ts';

/** The reason of a session error Node raised while tearing an abusive session down; undefined: not a flood. */
export function floodReasonOf(err: Error & { code?: string }): FloodReason | undefined {
  if (err.code === 'ERR_HTTP2_TOO_MANY_INVALID_FRAMES') return 'invalid_frames';
  if (err.code === 'ERR_HTTP2_ERROR') return 'nghttp2';
  return undefined;
}

/** A short, bounded reason for a failed handshake (metric label). */
export function handshakeErrorReason(err: Error & { code?: string; reason?: string }): string {
  const code = err.code ?? '';
  if (code === 'ERR_TLS_HANDSHAKE_TIMEOUT') return 'timeout';
  if (code === 'ECONNRESET' || code === 'EPIPE') return 'client_reset';
  if (code === 'ERR_EDGEGATE_NO_CERTIFICATE') return 'unknown_servername';
  const r = `${err.reason ?? ''} ${err.message}`.toLowerCase();
  if (r.includes('no shared cipher')) return 'no_shared_cipher';
  if (
    r.includes('unsupported protocol') ||
    r.includes('wrong version number') ||
    r.includes('version too low')
  )
    return 'unsupported_protocol';
  if (r.includes('http request')) return 'plain_http';
  if (r.includes('no application protocol')) return 'no_alpn_match';
  if (r.includes('alert')) return 'client_alert';
  return 'other';
}

export class TlsStats {
  readonly #handshakes = new Map<string, number>();
  readonly #errors = new Map<string, number>();
  #floods = 0;
  readonly #floodReasons: Record<string, number> = Object.fromEntries(FLOOD_REASONS.map((r) => [r, 0]));

  handshake(protocol: string): void {
    this.#handshakes.set(protocol, (this.#handshakes.get(protocol) ?? 0) + 1);
  }

  handshakeError(reason: string): void {
    this.#errors.set(reason, (this.#errors.get(reason) ?? 0) + 1);
  }

  floodStopped(reason: FloodReason): void {
    this.#floods++;
    this.#floodReasons[reason] = (this.#floodReasons[reason] ?? 0) + 1;
  }

  snapshot(): TlsStatsSnapshot {
    return {
      handshakes: Object.fromEntries(this.#handshakes),
      handshakeErrors: Object.fromEntries(this.#errors),
      floodsStopped: this.#floods,
      floodsByReason: { ...this.#floodReasons },
    };
  }
}
