/**
 * Path normalization, done once per request; the result is what routes match AND what is forwarded, so a path
 * cannot look like one thing to the matcher and another to the upstream.
 *
 * - percent-encoded unreserved characters are decoded (`%7E` → `~`, `%2e` → `.`), other escapes upper-cased;
 * - `.` and `..` segments are removed (RFC 3986 §5.2.4; `..` never climbs above `/`);
 * - runs of `/` are merged;
 * - an encoded `/` (`%2F`) or `\` (`%5C`), a raw `\`, a NUL or a control character makes the path invalid
 *   (unless `allowEncodedSlash`, which keeps `%2F` / `%5C` encoded and opaque).
 */

export interface NormalizeOptions {
  allowEncodedSlash?: boolean;
}

const HEX = '0123456789ABCDEF';

function isUnreserved(c: number): boolean {
  return (
    (c >= 0x41 && c <= 0x5a) ||
    (c >= 0x61 && c <= 0x7a) ||
    (c >= 0x30 && c <= 0x39) ||
    c === 0x2d ||
    c === 0x2e ||
    c === 0x5f ||
    c === 0x7e
  );
}

function hexValue(c: number): number {
  if (c >= 0x30 && c <= 0x39) return c - 0x30;
  if (c >= 0x41 && c <= 0x46) return c - 0x37;
  if (c >= 0x61 && c <= 0x66) return c - 0x57;
  return -1;
}

/** Fast check: a path with none of `%`, `.`, `//`, `\` and no control characters needs no work. */
function isSimple(path: string): boolean {
  let prevSlash = false;
  for (let i = 0; i < path.length; i++) {
    const c = path.charCodeAt(i);
    if (c === 0x25 || c === 0x2e || c === 0x5c || c < 0x21 || c === 0x7f) return false;
    const slash = c === 0x2f;
    if (slash && prevSlash) return false;
    prevSlash = slash;
  }
  return true;
}

/** Returns the normalized path, or undefined when the path must be refused (400). `path` excludes the query. */
export function normalizePath(path: string, options: NormalizeOptions = {}): string | undefined {
  if (path.length === 0 || path.charCodeAt(0) !== 0x2f) return undefined;
  if (isSimple(path)) return path;

  // 1. percent-decoding of unreserved characters, validation of everything else.
  let decoded = '';
  for (let i = 0; i < path.length; i++) {
    const c = path.charCodeAt(i);
    if (c < 0x21 || c === 0x7f || c === 0x5c) return undefined;
    if (c !== 0x25) {
      decoded += path[i];
      continue;
    }
    const hi = hexValue(path.charCodeAt(i + 1));
    const lo = hexValue(path.charCodeAt(i + 2));
    if (hi < 0 || lo < 0) return undefined;
    const byte = hi * 16 + lo;
    i += 2;
    if (byte === 0x2f || byte === 0x5c) {
      if (!options.allowEncodedSlash) return undefined;
      decoded += `%${HEX[hi]}${HEX[lo]}`;
    } else if (byte < 0x20 || byte === 0x7f) {
      return undefined;
    } else if (isUnreserved(byte)) {
      decoded += String.fromCharCode(byte);
    } else {
      decoded += `%${HEX[hi]}${HEX[lo]}`;
    }
  }

  // 2. dot segments and duplicate slashes.
  const segments = decoded.split('/');
  const out: string[] = [];
  for (let i = 1; i < segments.length; i++) {
    const seg = segments[i]!;
    const last = i === segments.length - 1;
    if (seg === '..') {
      out.pop();
      if (last) out.push('');
    } else if (seg === '.' || (seg === '' && !last)) {
      if (last) out.push('');
    } else {
      out.push(seg);
    }
  }
  return `/${out.join('/')}`;
}
