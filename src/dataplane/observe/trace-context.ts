/**
 * W3C Trace Context (https://www.w3.org/TR/trace-context/) for the gateway's tracing: a strict reader of the
 * client's `traceparent` and the writer of the one sent upstream. Whatever is not exactly a valid header is refused
 * as a whole (the gateway then starts a new trace and drops the client's `tracestate` with it):
 *
 * - not one string (several `traceparent` fields arrive joined by ", " and are refused by their length);
 * - version not two lower-case hex digits, or `ff` (forbidden);
 * - version `00` with anything but exactly 55 characters (`00-` 32 hex `-` 16 hex `-` 2 hex): extra fields, a
 *   missing digit, surrounding spaces;
 * - a later version shorter than 55 characters or whose 56th character is not `-` (its extra fields are ignored,
 *   the four known ones are read as version 00's);
 * - upper-case hex anywhere, or any other character;
 * - an all-zero trace id or parent id.
 *
 * Only the `sampled` bit of the flags is used and passed on.
 */

/** The fields of a valid `traceparent`. */
export interface TraceParent {
  traceId: string;
  spanId: string;
  /** Trace flags (only bit 0, sampled, is meaningful). */
  flags: number;
}

/** `traceparent` of version 00: 2 + 1 + 32 + 1 + 16 + 1 + 2. */
export const TRACEPARENT_LENGTH = 55;

function isLowerHex(s: string, from: number, to: number): boolean {
  for (let i = from; i < to; i++) {
    const c = s.charCodeAt(i);
    // 0-9, a-f
    if (!((c >= 48 && c <= 57) || (c >= 97 && c <= 102))) return false;
  }
  return true;
}

function isAllZero(s: string, from: number, to: number): boolean {
  for (let i = from; i < to; i++) if (s.charCodeAt(i) !== 48) return false;
  return true;
}

/** The client's `traceparent` header value, or undefined when it is absent or not exactly valid. */
export function parseTraceparent(value: string | string[] | undefined): TraceParent | undefined {
  if (typeof value !== 'string' || value.length < TRACEPARENT_LENGTH) return undefined;
  if (!isLowerHex(value, 0, 2)) return undefined;
  const version = value.slice(0, 2);
  if (version === 'ff') return undefined;
  if (
    version === '00'
      ? value.length !== TRACEPARENT_LENGTH
      : value.length > TRACEPARENT_LENGTH && value[55] !== '-'
  )
    return undefined;
  if (value[2] !== '-' || value[35] !== '-' || value[52] !== '-') return undefined;
  if (!isLowerHex(value, 3, 35) || !isLowerHex(value, 36, 52) || !isLowerHex(value, 53, 55)) return undefined;
  if (isAllZero(value, 3, 35) || isAllZero(value, 36, 52)) return undefined;
  return {
    traceId: value.slice(3, 35),
    spanId: value.slice(36, 52),
    flags: Number.parseInt(value.slice(53, 55), 16),
  };
}

/** The `traceparent` sent upstream (always version 00; only the sampled flag). */
export function formatTraceparent(traceId: string, spanId: string, flags: number): string {
  return `00-${traceId}-${spanId}-${(flags & 1) === 1 ? '01' : '00'}`;
}
