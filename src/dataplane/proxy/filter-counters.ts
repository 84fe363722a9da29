/**
 * The counters of the CORS, RequestMirror and ResponseCompression filters as snapshot entries: keys
 * `prefix\0label…` (cluster/worker-report.ts), which the primary renders as edgegate_cors_preflights_total{result},
 * edgegate_mirror_requests_total, edgegate_mirror_dropped_total{reason}, edgegate_mirror_errors_total and
 * edgegate_compressed_responses_total{encoding}.
 */
import {
  COMPRESSED_COUNTER,
  CORS_PREFLIGHTS_COUNTER,
  MIRROR_DROPPED_COUNTER,
  MIRROR_ERRORS_COUNTER,
  MIRROR_SENT_COUNTER,
} from '../../cluster/worker-report.ts';
import type { MirrorCounters } from './request-mirror.ts';

export function filterCounterValues(
  mirror: MirrorCounters,
  cors: { preflightsAllowed: number; preflightsRefused: number },
  compressed: Record<string, number>,
): Record<string, number> {
  const out: Record<string, number> = {
    [MIRROR_SENT_COUNTER]: mirror.sent,
    [MIRROR_ERRORS_COUNTER]: mirror.errors,
    [`${CORS_PREFLIGHTS_COUNTER}\u0000allowed`]: cors.preflightsAllowed,
    [`${CORS_PREFLIGHTS_COUNTER}\u0000refused`]: cors.preflightsRefused,
  };
  for (const [reason, n] of Object.entries(mirror.dropped))
    out[`${MIRROR_DROPPED_COUNTER}\u0000${reason}`] = n;
  for (const [encoding, n] of Object.entries(compressed)) out[`${COMPRESSED_COUNTER}\u0000${encoding}`] = n;
  return out;
}
