/**
 * Child of bench/table-handoff.ts: receives a table (as an object or as JSON text, whichever the parent sends),
 * builds the RoutingTable as a worker does, and acknowledges.
 */
import { RoutingTable } from '../src/table/index.ts';
import type { TableData } from '../src/table/types.ts';

process.on('message', (m: { version: number; table?: TableData; json?: string }) => {
  const data = m.json !== undefined ? (JSON.parse(m.json) as TableData) : m.table!;
  new RoutingTable(data);
  process.send?.({ ack: m.version });
});
process.send?.({ ready: true });
