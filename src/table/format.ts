/** Human-readable rendering of a table, for `edgegate routes`. */
import type { EntryData, MatchData, TableData } from './types.ts';

function describeMatch(m: MatchData): string {
  const parts = [`${m.path.type} ${m.path.value}`];
  if (m.method) parts.push(`method ${m.method}`);
  for (const h of m.headers) parts.push(`header ${h.name}${h.type === 'Exact' ? '=' : '~'}${h.value}`);
  for (const q of m.queryParams) parts.push(`query ${q.name}${q.type === 'Exact' ? '=' : '~'}${q.value}`);
  return parts.join(', ');
}

function describeAction(e: EntryData, table: TableData): string {
  if (e.redirect) return `redirect ${e.redirect.statusCode}`;
  if (e.catalog) {
    const dcs = Object.entries(e.catalog.services).map(
      ([dc, svcs]) => `${dc}: ${Object.keys(svcs).join(' ') || '(none)'}`,
    );
    return `catalog /{datacenter}/{service}/… — ${dcs.join('; ') || 'no datacenters'}`;
  }
  const clusters = new Map(table.clusters.map((c) => [c.id, c]));
  const total = (e.backends ?? []).reduce((a, b) => a + b.weight, 0);
  return (e.backends ?? [])
    .map((b) => {
      const c = clusters.get(b.cluster)!;
      const share = total > 0 ? `${Math.round((b.weight / total) * 1000) / 10}% ` : '';
      return `${share}${c.id.split('|')[0]} (${c.endpoints.length} endpoint${c.endpoints.length === 1 ? '' : 's'})`;
    })
    .join(' + ');
}

export function formatTable(table: TableData): string {
  let out = `table hash ${table.hash}: ${table.entries.length} entries, ${table.clusters.length} clusters\n`;
  for (const h of table.hosts) {
    out += `\nhost ${h.host}\n`;
    for (const i of h.entries) {
      const e = table.entries[i]!;
      const extras = [
        e.rewrite ? 'rewrite' : '',
        e.requestHeaders ? 'request headers' : '',
        e.responseHeaders ? 'response headers' : '',
      ]
        .filter(Boolean)
        .join(', ');
      out += `  ${describeMatch(e.matchData)}\n    → ${describeAction(e, table)}${extras ? ` [${extras}]` : ''}  (${e.ruleId})\n`;
    }
  }
  return out;
}
