/**
 * The PROXY protocol header (HAProxy's spec, versions 1 and 2) that an L4 load balancer writes at the start of a
 * connection to say who the client is. A pure, strict parser of the prefix of a connection's bytes; the HTTP and
 * TLS parsers stay Node's. The listener side is proxy-protocol-listener.ts.
 *
 * v1: one text line, `PROXY TCP4|TCP6 <src> <dst> <sport> <dport>\r\n` or `PROXY UNKNOWN…\r\n`, at most 107 bytes.
 * Addresses must be what they claim (TCP4 dotted quads, TCP6 IPv6), ports decimal 0…65535 without leading zeros,
 * single spaces. UNKNOWN: the connection's own addresses are used (the spec's rule for a proxy that cannot tell).
 *
 * v2: a 12-byte signature, version/command, family/transport, a 16-bit length, then the addresses and TLVs. LOCAL
 * (the balancer's own health check) and the UNSPEC and AF_UNIX families carry no usable client address: the
 * connection's own is used. TLVs (after the addresses) are skipped. A header longer than MAX_V2_LENGTH is refused.
 */
import { isIPv4, isIPv6 } from 'node:net';

export const V2_SIGNATURE = Buffer.from([
  0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a,
]);
const V1_PREFIX = Buffer.from('PROXY ', 'latin1');
/** The v1 line's maximum length, CRLF included (the spec's 107). */
export const MAX_V1_LENGTH = 107;
/** The v2 header's maximum length, addresses and TLVs included (the spec allows 16 + 65535). */
export const MAX_V2_LENGTH = 16 + 2048;

export interface ProxiedAddress {
  /** The client (source) address and port as the balancer saw them. */
  address: string;
  port: number;
  family: 'IPv4' | 'IPv6';
}

export type ProxyHeaderResult =
  /** Not enough bytes yet. */
  | { state: 'partial' }
  /** A valid header of `length` bytes; `client` undefined: use the connection's own peer (LOCAL, UNKNOWN, UNSPEC, AF_UNIX). */
  | { state: 'done'; version: 1 | 2; length: number; client: ProxiedAddress | undefined }
  /** Not a PROXY header, or a broken / oversized one. */
  | { state: 'invalid'; reason: 'missing' | 'malformed' | 'oversized'; message: string };

const PARTIAL = { state: 'partial' } as const;
const invalid = (reason: 'missing' | 'malformed' | 'oversized', message: string) =>
  ({ state: 'invalid', reason, message }) as const;

/** Parses the header at the start of `buf` (the bytes received so far). */
export function parseProxyHeader(buf: Buffer): ProxyHeaderResult {
  if (buf.length === 0) return PARTIAL;
  if (buf[0] === V1_PREFIX[0]) return parseV1(buf);
  if (buf[0] === V2_SIGNATURE[0]) return parseV2(buf);
  return invalid('missing', 'the connection does not start with a PROXY protocol header');
}

function startsWithPrefix(buf: Buffer, prefix: Buffer): boolean | undefined {
  const n = Math.min(buf.length, prefix.length);
  if (buf.compare(prefix, 0, n, 0, n) !== 0) return false;
  return n === prefix.length ? true : undefined;
}

const PORT = /^(0|[1-9][0-9]{0,4})$/;

function parseV1(buf: Buffer): ProxyHeaderResult {
  const prefix = startsWithPrefix(buf, V1_PREFIX);
  if (prefix === false)
    return invalid('missing', 'the connection does not start with a PROXY protocol header');
  const end = buf.indexOf('\r\n', 0, 'latin1');
  if (end < 0 || end + 2 > MAX_V1_LENGTH) {
    if (buf.length >= MAX_V1_LENGTH || (end >= 0 && end + 2 > MAX_V1_LENGTH))
      return invalid('oversized', `PROXY v1 line longer than ${MAX_V1_LENGTH} bytes`);
    // A bare LF, or any byte outside printable ASCII, can never become a valid line.
    for (let i = 0; i < buf.length; i++) {
      const c = buf[i]!;
      if ((c < 0x20 || c > 0x7e) && !(c === 0x0d && i === buf.length - 1))
        return invalid('malformed', 'PROXY v1 line with a control or non-ASCII byte');
    }
    return PARTIAL;
  }
  const line = buf.toString('latin1', 0, end);
  // Printable ASCII only (the CRLF is outside `line`).
  if (!/^[\x20-\x7e]*$/.test(line))
    return invalid('malformed', 'PROXY v1 line with a control or non-ASCII byte');
  const parts = line.split(' ');
  if (parts[1] === 'UNKNOWN') return { state: 'done', version: 1, length: end + 2, client: undefined };
  if (parts.length !== 6) return invalid('malformed', 'PROXY v1: expected 6 space-separated fields');
  const [, proto, src, dst, sport, dport] = parts as [string, string, string, string, string, string];
  const family = proto === 'TCP4' ? 'IPv4' : proto === 'TCP6' ? 'IPv6' : undefined;
  if (!family)
    return invalid('malformed', `PROXY v1: unknown protocol ${JSON.stringify(proto.slice(0, 16))}`);
  const isAddr = family === 'IPv4' ? isIPv4 : isIPv6;
  if (!isAddr(src) || !isAddr(dst) || src.includes('%') || dst.includes('%'))
    return invalid('malformed', `PROXY v1: addresses are not ${proto} addresses`);
  if (!PORT.test(sport) || !PORT.test(dport) || Number(sport) > 65535 || Number(dport) > 65535)
    return invalid('malformed', 'PROXY v1: ports must be decimal 0…65535');
  return {
    state: 'done',
    version: 1,
    length: end + 2,
    client: { address: src, port: Number(sport), family },
  };
}

function parseV2(buf: Buffer): ProxyHeaderResult {
  const sig = startsWithPrefix(buf, V2_SIGNATURE);
  if (sig === false) return invalid('missing', 'the connection does not start with a PROXY protocol header');
  if (buf.length < 16) return PARTIAL;
  const verCmd = buf[12]!;
  if (verCmd >> 4 !== 2) return invalid('malformed', `PROXY v2: version ${verCmd >> 4}`);
  const command = verCmd & 0x0f;
  if (command > 1) return invalid('malformed', `PROXY v2: unknown command ${command}`);
  const length = 16 + buf.readUInt16BE(14);
  if (length > MAX_V2_LENGTH)
    return invalid('oversized', `PROXY v2 header longer than ${MAX_V2_LENGTH} bytes`);
  const famProto = buf[13]!;
  const af = famProto >> 4;
  const transport = famProto & 0x0f;
  if (af > 3 || transport > 2)
    return invalid('malformed', `PROXY v2: unknown family/transport 0x${famProto.toString(16)}`);
  const need = af === 1 ? 12 : af === 2 ? 36 : af === 3 ? 216 : 0;
  if (length - 16 < need)
    return invalid('malformed', 'PROXY v2: address block shorter than its family needs');
  if (buf.length < length) return PARTIAL;
  // LOCAL (the balancer talking for itself), UNSPEC, AF_UNIX and an unspecified transport: no client address.
  if (command === 0 || af === 0 || af === 3 || transport === 0)
    return { state: 'done', version: 2, length, client: undefined };
  if (af === 1) {
    const address = `${buf[16]}.${buf[17]}.${buf[18]}.${buf[19]}`;
    return {
      state: 'done',
      version: 2,
      length,
      client: { address, port: buf.readUInt16BE(24), family: 'IPv4' },
    };
  }
  const groups: string[] = [];
  for (let i = 0; i < 8; i++) groups.push(buf.readUInt16BE(16 + 2 * i).toString(16));
  // Canonical form (compressed zeros, IPv4-mapped as dotted) through the URL parser's IPv6 serializer.
  const address = new URL(`http://[${groups.join(':')}]/`).hostname.slice(1, -1);
  return {
    state: 'done',
    version: 2,
    length,
    client: { address, port: buf.readUInt16BE(48), family: 'IPv6' },
  };
}
