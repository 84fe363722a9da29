/**
 * The service lists the Consul source watches, as `service → tags` (the union over its instances):
 * - a datacenter's: `/v1/catalog/services?dc=` (an object of name → tags);
 * - a cluster peer's exported services: `/v1/internal/ui/services?peer=`. `/v1/catalog/services` ignores `peer`
 *   (Consul 1.22 answers with the local datacenter's list) and `/v1/imported-services` lists nothing without
 *   Enterprise; the UI's service list is the one read Consul OSS offers that names a peer's imported services
 *   (blocking, `service:read`). Its entries carry `Name`, `Tags` and `PeerName`.
 */
export const PEER_SERVICES = '/v1/internal/ui/services';

const strings = (v: unknown): string[] =>
  Array.isArray(v) ? v.filter((t): t is string => typeof t === 'string') : [];

export function serviceList(body: unknown): Record<string, string[]> {
  if (!body || typeof body !== 'object' || Array.isArray(body)) throw new TypeError('expected an object');
  const next: Record<string, string[]> = {};
  for (const [name, tags] of Object.entries(body as Record<string, unknown>)) next[name] = strings(tags);
  return next;
}

export function peerServiceList(body: unknown): Record<string, string[]> {
  if (!Array.isArray(body)) throw new TypeError('expected a list of services');
  const next: Record<string, Set<string>> = {};
  for (const e of body as { Name?: unknown; Tags?: unknown }[]) {
    if (typeof e?.Name !== 'string' || e.Name === '') continue;
    const tags = next[e.Name] ?? new Set<string>();
    next[e.Name] = tags;
    for (const t of strings(e.Tags)) tags.add(t);
  }
  return Object.fromEntries(
    Object.keys(next)
      .sort()
      .map((n) => [n, [...next[n]!].sort()]),
  );
}
