/** Temp dirs for server data and log files. */
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** A fresh directory under the OS temp dir, e.g. makeTempDir('consul-dc1'). */
export function makeTempDir(prefix: string): string {
  const base = join(tmpdir(), 'edgegate-test');
  mkdirSync(base, { recursive: true });
  return mkdtempSync(join(base, `${prefix}-`));
}

/**
 * Where server logs go: $EDGEGATE_TEST_LOG_DIR, or <tmp>/edgegate-test/logs.
 * Logs are kept after the servers stop, so a failure can be read afterwards.
 */
export function logDir(): string {
  const dir = process.env.EDGEGATE_TEST_LOG_DIR || join(tmpdir(), 'edgegate-test', 'logs');
  mkdirSync(dir, { recursive: true });
  return dir;
}

/** A unique log file path for a server, e.g. logPathFor('consul-dc1'). */
export function logPathFor(name: string): string {
  const stamp = new Date().toISOString().replace(/[:.]/g, '-');
  return join(logDir(), `${name}-${stamp}-${process.pid}-${Math.random().toString(36).slice(2, 8)}.log`);
}

export function removeDir(dir: string): void {
  rmSync(dir, { recursive: true, force: true, maxRetries: 3 });
}
