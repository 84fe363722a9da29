/**
 * Durations, one syntax everywhere: GatewayRoute fields, `run` flags, `EDGEGATE_*` variables and Consul settings
 * all take Gateway API's Duration form (GEP-2257): one to four `<integer><unit>` parts, units `h`, `m`, `s`, `ms`
 * (`30s`, `250ms`, `1m30s`). A bare number is refused — `5` meant 5 ms in one old parser and 5 s in another —
 * except `0`, which is zero in any unit and is how a setting is turned off.
 */

/** The schema's pattern (GatewayRoute's Duration and the CRD use this text). */
export const DURATION_PATTERN = '^([0-9]{1,5}(h|m|s|ms)){1,4}$';
const FORM = new RegExp(DURATION_PATTERN);
const PART = /([0-9]+)(ms|h|m|s)/g;
const UNIT_MS = { h: 3_600_000, m: 60_000, s: 1000, ms: 1 } as const;

/** Milliseconds of a duration already known to be of the form above (the schema checked it). */
export function parseDuration(text: string): number {
  let total = 0;
  for (const m of text.matchAll(PART)) total += Number(m[1]) * UNIT_MS[m[2] as keyof typeof UNIT_MS];
  return total;
}

/** Whether `text` is a duration of the one accepted form (or `0`). */
export function isDuration(text: string): boolean {
  return text === '0' || FORM.test(text);
}

/** A setting's value that is not a duration; the message names the setting and shows the form. */
export class DurationError extends Error {
  override name = 'DurationError';
}

/**
 * Milliseconds of a setting's value (a flag, an environment variable), or a DurationError that names `setting`.
 * Surrounding whitespace is ignored.
 */
export function parseDurationSetting(value: string, setting: string): number {
  const text = String(value).trim();
  if (isDuration(text)) return parseDuration(text);
  const hint = /^[0-9]+$/.test(text) ? ` (a bare number has no unit: write ${text}s or ${text}ms)` : '';
  throw new DurationError(
    `${setting}: invalid duration ${JSON.stringify(value)}${hint}; expected e.g. 250ms, 30s, 5m, 1h or 1m30s`,
  );
}
