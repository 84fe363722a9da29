/** Gateway API durations (`1h`, `30s`, `250ms`, `1m30s`) to milliseconds. The schema has checked the form. */
export function parseDuration(text: string): number {
  let total = 0;
  for (const m of text.matchAll(/([0-9]+)(ms|h|m|s)/g)) {
    const n = Number(m[1]);
    total += m[2] === 'h' ? n * 3_600_000 : m[2] === 'm' ? n * 60_000 : m[2] === 's' ? n * 1000 : n;
  }
  return total;
}
