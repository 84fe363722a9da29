import type { TlsStatsSnapshot } from '../../cluster/worker-report.ts';
/**
 * Plain TLS counters of one process, kept off the hot path (incremented on handshake events only) and read through
 * `snapshot()`: the metrics module exposes them (edgegate_tls_handshakes_total, edgegate_tls_handshake_errors_total
 * {reason}, edgegate_tls_certificate_expiry_seconds{hostname}).
 */

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

  handshake(protocol: string): void {
    this.#handshakes.set(protocol, (this.#handshakes.get(protocol) ?? 0) + 1);
  }

  handshakeError(reason: string): void {
    this.#errors.set(reason, (this.#errors.get(reason) ?? 0) + 1);
  }

  floodStopped(): void {
    this.#floods++;
  }

  snapshot(): TlsStatsSnapshot {
    return {
      handshakes: Object.fromEntries(this.#handshakes),
      handshakeErrors: Object.fromEntries(this.#errors),
      floodsStopped: this.#floods,
    };
  }
}
