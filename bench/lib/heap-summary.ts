/**
 * A V8 heap snapshot (`.heapsnapshot`, as `--heapsnapshot-signal` writes it: taken after a full GC, so it holds
 * only live objects) → live bytes by kind and by constructor, and the difference between two snapshots. What the
 * memory part of bench/kube-control.bench.ts uses to tell a leak (objects that stay live) from V8 keeping heap it
 * no longer needs (RSS high, live bytes back down).
 */
import { readFileSync } from 'node:fs';

export interface HeapSummary {
  /** Live bytes (self sizes) in total. */
  total: number;
  /** Live bytes by node type: object, string, array, code, closure, hidden, … */
  byType: Record<string, number>;
  /** Live bytes and counts by constructor (objects) or `(type)` for the rest; largest first. */
  byName: { name: string; bytes: number; count: number }[];
}

interface Snapshot {
  snapshot: { meta: { node_fields: string[]; node_types: [string[], ...unknown[]] } };
  nodes: number[];
  strings: string[];
}

export function summarizeHeap(file: string, top = 40): HeapSummary {
  const snap = JSON.parse(readFileSync(file, 'utf8')) as Snapshot;
  const fields = snap.snapshot.meta.node_fields;
  const types = snap.snapshot.meta.node_types[0];
  const width = fields.length;
  const iType = fields.indexOf('type');
  const iName = fields.indexOf('name');
  const iSize = fields.indexOf('self_size');
  const byType: Record<string, number> = {};
  const byName = new Map<string, { bytes: number; count: number }>();
  let total = 0;
  for (let i = 0; i < snap.nodes.length; i += width) {
    const type = types[snap.nodes[i + iType]!] ?? 'unknown';
    const size = snap.nodes[i + iSize]!;
    total += size;
    byType[type] = (byType[type] ?? 0) + size;
    const name =
      type === 'object' || type === 'closure' ? snap.strings[snap.nodes[i + iName]!]! : `(${type})`;
    const e = byName.get(name);
    if (e) {
      e.bytes += size;
      e.count++;
    } else byName.set(name, { bytes: size, count: 1 });
  }
  return {
    total,
    byType,
    byName: [...byName.entries()]
      .map(([name, v]) => ({ name, ...v }))
      .sort((a, b) => b.bytes - a.bytes)
      .slice(0, top),
  };
}

/** The constructors whose live bytes grew most from `a` to `b`. */
export function heapGrowth(a: HeapSummary, b: HeapSummary, top = 15): { name: string; deltaBytes: number }[] {
  const before = new Map(a.byName.map((x) => [x.name, x.bytes]));
  return b.byName
    .map((x) => ({ name: x.name, deltaBytes: x.bytes - (before.get(x.name) ?? 0) }))
    .sort((x, y) => y.deltaBytes - x.deltaBytes)
    .slice(0, top);
}
