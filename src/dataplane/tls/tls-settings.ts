/**
 * The HTTPS listener's fixed policy and its tunable limits. The cipher list is Mozilla's "intermediate" profile
 * (TLS 1.2 + 1.3, forward secrecy and AEAD only), without the DHE suites: those need a DH parameter file the
 * gateway does not ship, and every client that can do DHE-GCM can do ECDHE-GCM.
 */

import { constants } from 'node:crypto';

export const MIN_TLS_VERSION = 'TLSv1.2';
export const MAX_TLS_VERSION = 'TLSv1.3';

/** TLS 1.2 suites (OpenSSL names), strongest-first; TLS 1.3 suites are OpenSSL's defaults (all three AEADs). */
export const INTERMEDIATE_CIPHERS = [
  'TLS_AES_128_GCM_SHA256',
  'TLS_AES_256_GCM_SHA384',
  'TLS_CHACHA20_POLY1305_SHA256',
  'ECDHE-ECDSA-AES128-GCM-SHA256',
  'ECDHE-RSA-AES128-GCM-SHA256',
  'ECDHE-ECDSA-AES256-GCM-SHA384',
  'ECDHE-RSA-AES256-GCM-SHA384',
  'ECDHE-ECDSA-CHACHA20-POLY1305',
  'ECDHE-RSA-CHACHA20-POLY1305',
].join(':');

/** Key-exchange groups in preference order (X25519 first, as Mozilla recommends). */
export const ECDH_CURVES = 'X25519:prime256v1:secp384r1';

/**
 * OpenSSL options of the listener's context and of every certificate's context (see docs/security.md):
 *
 * - `SSL_OP_NO_RENEGOTIATION`: a client's renegotiation request (TLS 1.2; HTTP/1.1 over TLS) is refused with a
 *   `no_renegotiation` alert, which ends the connection (TLS 1.3 and HTTP/2 have no renegotiation at all).
 * - `SSL_OP_NO_TICKET`: no session resumption. OpenSSL decides on resumption before the certificate callback that
 *   picks a certificate by SNI runs, with the listener's ticket keys and session-id context, and a session records
 *   no SNI on the server: a session made with SNI `a` would resume under SNI `b`, on a connection authenticated
 *   only for `a`. Node offers no hook to tie resumption to the SNI or to give each certificate its own ticket keys,
 *   so every handshake is a full one (resumption saves one signature on TLS 1.3; see docs/security.md).
 */
export const TLS_SECURE_OPTIONS = constants.SSL_OP_NO_RENEGOTIATION | constants.SSL_OP_NO_TICKET;

/** ALPN protocols offered, in server preference order. */
export const ALPN_PROTOCOLS = ['h2', 'http/1.1'];

export interface TlsListenerSettings {
  /** Concurrent streams a client may open on one HTTP/2 connection (SETTINGS_MAX_CONCURRENT_STREAMS). */
  maxConcurrentStreams: number;
  /** Largest request header block in bytes, both protocols (HTTP/2: SETTINGS_MAX_HEADER_LIST_SIZE). */
  maxHeaderListSize: number;
  /** Request headers per request (beyond: 431, as on the HTTP listener). */
  maxHeaders: number;
  /** Invalid frames tolerated per HTTP/2 session before it is torn down. */
  maxSessionInvalidFrames: number;
  /** Streams refused (over the concurrency limit) per session before it is torn down. */
  maxSessionRejectedStreams: number;
  /**
   * Rapid reset (CVE-2023-44487): a client that opens and cancels more than this many streams within one second
   * gets GOAWAY(ENHANCE_YOUR_CALM) and its session is destroyed. Node has its own mitigation underneath; this one
   * is explicit, counted and testable.
   */
  maxResetsPerSecond: number;
  /**
   * The same budget per client address, over all its sessions: many connections that each stay under
   * `maxResetsPerSecond` are cut once their address exceeds this (each session that resets past it is closed).
   */
  maxResetsPerSecondPerAddress: number;
  /** Time a client has to finish the TLS handshake. */
  handshakeTimeoutMs: number;
  /** A connection (either protocol) with no traffic for this long is closed. */
  idleTimeoutMs: number;
  /** Time a client has to send the request headers on HTTP/1.1 (slowloris guard). */
  headersTimeoutMs: number;
  /** Memory per HTTP/2 session in MB (Node's maxSessionMemory): beyond it new streams are refused. */
  maxSessionMemoryMb: number;
}

export const DEFAULT_TLS_LISTENER_SETTINGS: TlsListenerSettings = {
  maxConcurrentStreams: 100,
  maxHeaderListSize: 16 * 1024,
  maxHeaders: 100,
  maxSessionInvalidFrames: 100,
  maxSessionRejectedStreams: 100,
  maxResetsPerSecond: 200,
  maxResetsPerSecondPerAddress: 400,
  handshakeTimeoutMs: 10_000,
  idleTimeoutMs: 75_000,
  headersTimeoutMs: 15_000,
  maxSessionMemoryMb: 10,
};
