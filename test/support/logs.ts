/** Print server log tails when a test fails. */
import { beforeEach } from 'vitest';
import { formatTail } from './proc.ts';

export interface LogSource {
  name: string;
  logPath: string;
}

/**
 * Registers (in the calling describe block or file) a hook that prints the last
 * `lines` lines of each log when a test fails. `sources` is evaluated at failure
 * time, so servers started in beforeAll can be listed lazily.
 */
export function printLogsOnFailure(sources: () => LogSource[], lines = 60): void {
  beforeEach(({ onTestFailed }) => {
    onTestFailed(() => {
      let text = '';
      for (const s of sources()) text += formatTail(s.name, s.logPath, lines);
      console.error(text);
    });
  });
}

/** Log sources of a Consul agent (or its info) for printLogsOnFailure. */
export function consulLogs(
  ...agents: Array<{ datacenter: string; logPath: string } | undefined>
): LogSource[] {
  return agents.flatMap((a) => (a ? [{ name: `consul-${a.datacenter}`, logPath: a.logPath }] : []));
}

/** Log sources of a kube-apiserver + etcd (or their info) for printLogsOnFailure. */
export function kubeLogs(kube: { logPaths: { etcd: string; apiserver: string } } | undefined): LogSource[] {
  if (!kube) return [];
  return [
    { name: 'etcd', logPath: kube.logPaths.etcd },
    { name: 'kube-apiserver', logPath: kube.logPaths.apiserver },
  ];
}
