/**
 * Edge checks on a parsed request, before routing: what Node's strict parser lets through but a gateway should
 * not forward. One pass over the raw headers; each check can be turned off in ListenerSettings.
 *
 * Node's parser (llhttp, strict mode) already refuses with 400, before any of this runs: CL+TE together,
 * duplicate or invalid Content-Length, Transfer-Encoding other than a final `chunked`, obs-fold, bare LF line
 * endings, and CR / LF / NUL / other control characters in header values. The control-character check here is
 * defence in depth should the parser ever be run leniently.
 */
import type { IncomingMessage } from 'node:http';
import { normalizeHost } from '../../table/index.ts';

export interface RequestCheckSettings {
  /** `X_Forwarded_For` style names: many servers (CGI, nginx, some frameworks) fold `_` into `-`. */
  rejectUnderscoreHeaders: boolean;
  /** Absolute-form target (`GET http://a/ HTTP/1.1`) whose authority differs from Host. */
  rejectAuthorityMismatch: boolean;
  /** C0 control characters (except HTAB) and DEL in header values. */
  rejectControlCharacters: boolean;
}

// C0 controls except HTAB, and DEL.
const CONTROL = /[\x00-\x08\x0a-\x1f\x7f]/;

/** Authority of an absolute-form target, or undefined for origin-form; '' when the target is unusable. */
function authorityOf(target: string): string | undefined {
  if (target.charCodeAt(0) === 0x2f) return undefined;
  const scheme = target.startsWith('http://') ? 7 : target.startsWith('https://') ? 8 : -1;
  if (scheme < 0) return '';
  let end = scheme;
  while (end < target.length && target[end] !== '/' && target[end] !== '?') end++;
  const authority = target.slice(scheme, end);
  // Userinfo in a request target is never legitimate and a classic confusion vector.
  return authority.includes('@') ? '' : authority;
}

/** Why the request must be refused with 400, or undefined when it may proceed. */
export function checkRequest(req: IncomingMessage, s: RequestCheckSettings): string | undefined {
  const raw = req.rawHeaders;
  let hosts = 0;
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i]!;
    if (name.length === 4 && name.toLowerCase() === 'host') hosts++;
    if (s.rejectUnderscoreHeaders && name.includes('_'))
      return `header name ${JSON.stringify(name)} contains "_"`;
    if (s.rejectControlCharacters && CONTROL.test(raw[i + 1]!))
      return `header ${JSON.stringify(name)} contains a control character`;
  }
  if (hosts > 1) return 'duplicate Host header';
  const authority = authorityOf(req.url ?? '');
  if (authority === '') return 'unsupported request target';
  if (
    authority !== undefined &&
    s.rejectAuthorityMismatch &&
    normalizeHost(authority) !== normalizeHost(req.headers.host)
  )
    return 'request target authority and Host header differ';
  return undefined;
}

/** Only `Upgrade: websocket` is proxied as an upgrade; other upgrades (h2c…) are served as plain requests. */
export function isWebSocketUpgrade(req: IncomingMessage): boolean {
  const u = req.headers.upgrade;
  return u !== undefined && u.toLowerCase() === 'websocket';
}
