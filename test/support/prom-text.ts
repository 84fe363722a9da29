/**
 * A small reader of the Prometheus text exposition format (0.0.4) for tests: samples with labels, and the
 * HELP / TYPE metadata per family. promtool (see promtool.ts) does the strict validation; this is for reading
 * values.
 */

export interface PromSample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

export interface PromText {
  samples: PromSample[];
  help: Map<string, string>;
  type: Map<string, string>;
}

function unescapeLabel(v: string): string {
  return v.replace(/\\(["\\n])/g, (_m, c: string) => (c === 'n' ? '\n' : c));
}

export function parsePromText(text: string): PromText {
  const samples: PromSample[] = [];
  const help = new Map<string, string>();
  const type = new Map<string, string>();
  for (const line of text.split('\n')) {
    if (line === '') continue;
    const meta = /^# (HELP|TYPE) (\S+) ?(.*)$/.exec(line);
    if (meta) {
      (meta[1] === 'HELP' ? help : type).set(meta[2]!, meta[3]!);
      continue;
    }
    if (line.startsWith('#')) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})? (\S+)( \d+)?$/.exec(line);
    if (!m) throw new Error(`unparsable exposition line: ${line}`);
    const labels: Record<string, string> = {};
    const body = m[3] ?? '';
    const re = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)",?/g;
    let lm: RegExpExecArray | null = re.exec(body);
    while (lm !== null) {
      labels[lm[1]!] = unescapeLabel(lm[2]!);
      lm = re.exec(body);
    }
    const raw = m[4]!;
    const value = raw === '+Inf' ? Infinity : raw === '-Inf' ? -Infinity : Number(raw);
    samples.push({ name: m[1]!, labels, value });
  }
  return { samples, help, type };
}

/** The family a sample belongs to (histogram series map to their base name). */
export function familyOf(sample: string, families: Map<string, string>): string {
  if (families.has(sample)) return sample;
  for (const suffix of ['_bucket', '_sum', '_count', '_total', '_created']) {
    if (sample.endsWith(suffix) && families.has(sample.slice(0, -suffix.length)))
      return sample.slice(0, -suffix.length);
  }
  return sample;
}

/** Sum of the samples of `name` whose labels include `match`. */
export function sumOf(p: PromText, name: string, match: Record<string, string> = {}): number {
  let n = 0;
  for (const s of p.samples) {
    if (s.name !== name) continue;
    if (Object.entries(match).every(([k, v]) => s.labels[k] === v)) n += s.value;
  }
  return n;
}

/** GET `/metrics` of an admin server (`http://host:port`) and parse it; a non-200 answer is an error. */
export async function scrapeMetrics(adminUrl: string): Promise<PromText> {
  const r = await fetch(`${adminUrl}/metrics`);
  if (r.status !== 200) throw new Error(`GET ${adminUrl}/metrics: ${r.status}`);
  return parsePromText(await r.text());
}
