/**
 * Removes a real-node sandbox when the process that made it dies without removing it (SIGKILL, a crash).
 * Started detached by test/support/node-sandbox.ts with the sandbox's record file as its argument; it polls
 * twice a second and exits when the owner removes the record (a normal stop) or after removing everything itself.
 */
import { existsSync, readFileSync, rmSync } from 'node:fs';
import { destroyRecord, processStart, type SandboxRecord } from './node-sandbox.ts';

const path = process.argv[2];
if (!path) {
  console.error('usage: node-reaper.ts <record.json>');
  process.exit(2);
}

function read(): SandboxRecord | undefined {
  try {
    return JSON.parse(readFileSync(path!, 'utf8')) as SandboxRecord;
  } catch {
    return undefined;
  }
}

process.on('SIGTERM', () => process.exit(0));

for (;;) {
  if (!existsSync(path)) process.exit(0);
  const record = read();
  if (record && processStart(record.owner.pid) !== record.owner.start) {
    console.error(`[node-reaper] owner ${record.owner.pid} is gone: removing sandbox ${record.slot}`);
    const left = await destroyRecord(record);
    if (left.length === 0) {
      rmSync(path, { force: true });
      console.error('[node-reaper] removed');
      process.exit(0);
    }
    console.error(`[node-reaper] could not remove: ${left.join('; ')}`);
    process.exit(1);
  }
  await new Promise((resolve) => setTimeout(resolve, 500));
}
