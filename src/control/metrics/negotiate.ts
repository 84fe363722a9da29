/**
 * Which exposition format a scraper asked for: OpenMetrics when its `Accept` header prefers
 * `application/openmetrics-text` (any version; the body is OpenMetrics 1.0.0) to the Prometheus text format, else the
 * Prometheus text format (the default: no header, `*\/*`, `text/plain`, or OpenMetrics at a lower q).
 */
export function wantsOpenMetrics(accept: string | undefined): boolean {
  if (accept === undefined || accept === '') return false;
  let om = 0;
  let text = 0;
  for (const range of accept.split(',')) {
    const parts = range.split(';');
    const type = parts[0]!.trim().toLowerCase();
    let q = 1;
    for (let i = 1; i < parts.length; i++) {
      const p = parts[i]!.trim().toLowerCase();
      if (p.startsWith('q=')) {
        const n = Number(p.slice(2));
        q = Number.isFinite(n) && n >= 0 && n <= 1 ? n : 0;
      }
    }
    if (type === 'application/openmetrics-text') om = Math.max(om, q);
    else if (type === 'text/plain' || type === 'text/*' || type === '*/*') text = Math.max(text, q);
  }
  return om > 0 && om >= text;
}
