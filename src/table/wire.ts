/**
 * The routing table as bytes: serialized ONCE per table. The hash is taken over exactly the bytes the primary
 * sends to every worker and saves as last-known-good, so the three never serialize the table again. As a
 * by-product, each route's compiled form (the text of its entries and of the hostnames they are indexed under)
 * tells which routes a new version changed: Programmed follows that, not the table version.
 *
 * The bytes are the JSON of `{ entries, hosts, clusters }` (the same text `JSON.stringify` gives for that object);
 * `version` and `hash` travel beside them.
 */
import { createHash } from 'node:crypto';
import type { TableData } from './types.ts';

export type TableBody = Pick<TableData, 'entries' | 'hosts' | 'clusters'>;

export interface TableWire {
  /** JSON text of the table body: what is sent to workers and saved to disk. */
  readonly json: string;
  /** Content hash over `json` (16 hex digits of SHA-256). */
  readonly hash: string;
  /** Route (`namespace/name`) → its compiled form: the text of its entries and hostnames (compared, not shown). */
  readonly routes: ReadonlyMap<string, string>;
}

const wires = new WeakMap<TableData, TableWire>();
/** Entries are immutable once compiled, and a route compile did not touch keeps its entry objects (compile memo). */
const entryTexts = new WeakMap<object, string>();

export function hashOfJson(json: string): string {
  return createHash('sha256').update(json).digest('hex').slice(0, 16);
}

/** Serializes a table body once: its JSON, its hash, and each route's digest. */
export function encodeTableBody(body: TableBody): TableWire {
  const parts = new Map<string, string[]>();
  const texts = body.entries.map((e) => {
    let text = entryTexts.get(e);
    if (text === undefined) {
      text = JSON.stringify(e);
      entryTexts.set(e, text);
    }
    const list = parts.get(e.route);
    if (list) list.push(text);
    else parts.set(e.route, [text]);
    return text;
  });
  // Hostnames belong to a route's form too (they are not in its entries): a route that only moves to another
  // host has changed.
  for (const h of body.hosts) {
    let last: string | undefined;
    for (const i of h.entries) {
      const route = body.entries[i]?.route;
      if (route === undefined || route === last) continue;
      last = route;
      parts.get(route)?.push(`host ${h.host}`);
    }
  }
  const json = `{"entries":[${texts.join(',')}],"hosts":${JSON.stringify(body.hosts)},"clusters":${JSON.stringify(body.clusters)}}`;
  // A route's "digest" is the text of its entries and hostnames itself: comparing it with the last one is a
  // memcmp, cheaper than hashing thousands of small texts (and exact).
  const routes = new Map<string, string>();
  for (const [route, list] of parts) routes.set(route, list.length === 1 ? list[0]! : list.join('\n'));
  return { json, hash: hashOfJson(json), routes };
}

/** Ties an encoding to the table object it was made from (compile does, so nothing encodes it again). */
export function rememberWire(table: TableData, wire: TableWire): void {
  wires.set(table, wire);
}

/** The table's bytes, hash and route digests: encoded on first use, then the same for this object. */
export function tableWire(table: TableData): TableWire {
  let wire = wires.get(table);
  if (!wire) {
    wire = encodeTableBody(table);
    wires.set(table, wire);
  }
  return wire;
}

/** Bytes from the primary or the disk → the table (version and hash travel beside the bytes). */
export function decodeTable(json: string, version: number, hash: string): TableData {
  const body = JSON.parse(json) as TableBody;
  if (!Array.isArray(body.entries) || !Array.isArray(body.hosts) || !Array.isArray(body.clusters))
    throw new Error('routing table: entries, hosts and clusters must be arrays');
  return { hash, version, entries: body.entries, hosts: body.hosts, clusters: body.clusters };
}
