/**
 * Match conflicts between routes, pure: two routes (GatewayRoutes, translated HTTPRoutes, or one of each) with the
 * very same match on the same host. The table serves the one that wins by Gateway API precedence (the older
 * route, then the name: compile's comparePrecedence); the other's match is never reached. Both are told, by route
 * key: the loser that it is shadowed, the winner that it shadows another route.
 */
import type { EntryData, MatchData, TableData } from '../../table/types.ts';

function matchKey(m: MatchData): string {
  const sorted = <T extends { name: string }>(list: T[]) =>
    [...list].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  return JSON.stringify([
    m.path.type,
    m.path.value,
    m.method ?? '',
    sorted(m.headers).map((h) => [h.type, h.name.toLowerCase(), h.value]),
    sorted(m.queryParams).map((q) => [q.type, q.name, q.value]),
    sorted(m.cookies ?? []).map((c) => [c.type, c.name, c.value]),
  ]);
}

function describe(m: MatchData): string {
  const extra = [
    m.method ? `method ${m.method}` : '',
    ...m.headers.map((h) => `header ${h.name}`),
    ...m.queryParams.map((q) => `query ${q.name}`),
  ].filter(Boolean);
  return `${m.path.type} ${m.path.value}${extra.length ? ` (${extra.join(', ')})` : ''}`;
}

/** Route key → conflict messages; empty when no two routes share a match. */
export function routeConflicts(table: TableData | undefined): Map<string, string[]> {
  const out = new Map<string, string[]>();
  if (!table) return out;
  const add = (route: string, msg: string) => {
    const list = out.get(route);
    if (!list) out.set(route, [msg]);
    else if (!list.includes(msg)) list.push(msg);
  };
  for (const h of table.hosts) {
    // Cheap first: only entries whose path equals another's on this host get the full key.
    const paths = new Map<string, number>();
    for (const i of h.entries) {
      const p = table.entries[i]!.matchData.path;
      const k = `${p.type} ${p.value}`;
      paths.set(k, (paths.get(k) ?? 0) + 1);
    }
    const first = new Map<string, EntryData>();
    // h.entries is in precedence order: the first entry with a key is the one served.
    for (const i of h.entries) {
      const e = table.entries[i]!;
      if (e.catalog) continue;
      if ((paths.get(`${e.matchData.path.type} ${e.matchData.path.value}`) ?? 0) < 2) continue;
      const key = matchKey(e.matchData);
      const winner = first.get(key);
      if (!winner) {
        first.set(key, e);
        continue;
      }
      if (winner.route === e.route) continue;
      const host = h.host === '*' ? 'every host' : h.host;
      add(e.route, `match ${describe(e.matchData)} on ${host} is shadowed by route ${winner.route}`);
      add(winner.route, `match ${describe(e.matchData)} on ${host} shadows route ${e.route}`);
    }
  }
  return out;
}
