/**
 * Consul's `/v1/health/service/:name` answer → the catalog's Instance. The health of an instance is the worst
 * status of all its checks, node checks included (a failing node check takes down every service on the node).
 * Maintenance mode (`_node_maintenance`, `_service_maintenance:<id>`) counts as critical whatever it reports.
 */
import type { Health, Instance } from '../../../api/catalog.ts';

interface ConsulCheck {
  CheckID?: string;
  Status?: string;
}

interface ConsulServiceEntry {
  Node?: { Node?: string; Address?: string };
  Service?: {
    ID?: string;
    Service?: string;
    Address?: string;
    Port?: number;
    Tags?: string[] | null;
    Meta?: Record<string, string> | null;
    Weights?: { Passing?: number; Warning?: number } | null;
  };
  Checks?: ConsulCheck[] | null;
}

const RANK: Record<Health, number> = { passing: 0, warning: 1, critical: 2 };

export function isMaintenanceCheck(id: string | undefined): boolean {
  return id === '_node_maintenance' || (id?.startsWith('_service_maintenance:') ?? false);
}

/** Worst status of the checks; no checks at all is passing (Consul's own rule). Unknown statuses are critical. */
export function aggregateHealth(checks: readonly ConsulCheck[]): Health {
  let worst: Health = 'passing';
  for (const c of checks) {
    let h: Health;
    if (isMaintenanceCheck(c.CheckID)) h = 'critical';
    else if (c.Status === 'passing' || c.Status === 'warning' || c.Status === 'critical') h = c.Status;
    else h = 'critical';
    if (RANK[h] > RANK[worst]) worst = h;
  }
  return worst;
}

function clampWeight(n: unknown): number {
  return typeof n === 'number' && Number.isInteger(n) && n >= 1 ? Math.min(n, 65535) : 1;
}

/**
 * Maps the entries to instances, sorted by id (a stable order, so an unchanged service compares equal). Entries
 * without a usable port or address are skipped: they cannot be routed to.
 */
export function instancesFromHealth(body: unknown): Instance[] {
  if (!Array.isArray(body)) throw new TypeError('expected an array of service entries');
  const out: Instance[] = [];
  for (const e of body as ConsulServiceEntry[]) {
    const svc = e?.Service;
    if (!svc) continue;
    const address = svc.Address || e.Node?.Address;
    const port = svc.Port;
    if (!address || typeof port !== 'number' || !Number.isInteger(port) || port < 1 || port > 65535) continue;
    const health = aggregateHealth(e.Checks ?? []);
    const weights = svc.Weights ?? {};
    out.push({
      id: svc.ID || `${e.Node?.Node ?? address}:${port}`,
      address,
      port,
      tags: [...(svc.Tags ?? [])],
      meta: { ...(svc.Meta ?? {}) },
      health,
      weight: clampWeight(health === 'warning' ? weights.Warning : weights.Passing),
    });
  }
  return out.sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : a.address < b.address ? -1 : 1));
}
