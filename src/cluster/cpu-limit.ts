/**
 * How many CPUs this process may really use: the cgroup CPU quota (a container's `resources.limits.cpu`) when
 * there is one, else `os.availableParallelism()`. Node's own count ignores the quota, so a pod limited to 2 CPUs
 * on a 64-core node would otherwise fork 64 workers and be throttled.
 */
import { readFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';

/** cgroup v2 `cpu.max`: `max 100000` (no limit) or `200000 100000` (2 CPUs). */
export function parseCpuMax(text: string): number | undefined {
  const [quota, period] = text.trim().split(/\s+/);
  if (quota === undefined || quota === 'max') return undefined;
  return quotaToCpus(Number(quota), Number(period ?? 100_000));
}

/** cgroup v1: `cpu.cfs_quota_us` (-1: no limit) and `cpu.cfs_period_us`. */
export function parseCfs(quotaText: string, periodText: string): number | undefined {
  return quotaToCpus(Number(quotaText.trim()), Number(periodText.trim()));
}

function quotaToCpus(quota: number, period: number): number | undefined {
  if (!(quota > 0) || !(period > 0)) return undefined;
  // 1.5 CPUs → 2 workers: a fractional share still lets one more worker make progress.
  return Math.max(1, Math.ceil(quota / period));
}

/** `/proc/self/cgroup` lines (`hierarchy:controllers:path`) → the path of the v2 group or the v1 `cpu` group. */
export function cgroupPaths(procSelfCgroup: string): { v2?: string; v1cpu?: string } {
  const out: { v2?: string; v1cpu?: string } = {};
  for (const line of procSelfCgroup.split('\n')) {
    const [hierarchy, controllers, ...rest] = line.split(':');
    const path = rest.join(':');
    if (hierarchy === '0' && controllers === '') out.v2 = path;
    else if (controllers?.split(',').includes('cpu')) out.v1cpu = path;
  }
  return out;
}

type Read = (file: string) => string | undefined;

const readOrUndefined: Read = (file) => {
  try {
    return readFileSync(file, 'utf8');
  } catch {
    return undefined;
  }
};

/** Ancestors of a cgroup path, the group itself first: a quota on any ancestor limits us too. */
function withAncestors(path: string): string[] {
  const parts = path.split('/').filter((p) => p !== '');
  const out: string[] = [];
  for (let i = parts.length; i >= 0; i--) out.push(parts.slice(0, i).join('/'));
  return out;
}

/** The smallest CPU quota found on our cgroup or its ancestors, or undefined when there is none. */
export function cgroupCpuLimit(read: Read = readOrUndefined, root = '/sys/fs/cgroup'): number | undefined {
  const self = read('/proc/self/cgroup');
  const paths = self === undefined ? {} : cgroupPaths(self);
  const limits: number[] = [];
  // Inside a container the group's own directory is usually mounted at the root, so look there too.
  const v2 = paths.v2 !== undefined ? [...withAncestors(paths.v2), ''] : [''];
  for (const p of new Set(v2)) {
    const text = read(`${root}${p ? `/${p}` : ''}/cpu.max`);
    const n = text === undefined ? undefined : parseCpuMax(text);
    if (n !== undefined) limits.push(n);
  }
  if (limits.length === 0) {
    for (const dir of [`${root}/cpu`, `${root}/cpu,cpuacct`]) {
      const v1 = paths.v1cpu !== undefined ? [...withAncestors(paths.v1cpu), ''] : [''];
      for (const p of new Set(v1)) {
        const base = `${dir}${p ? `/${p}` : ''}`;
        const quota = read(`${base}/cpu.cfs_quota_us`);
        const period = read(`${base}/cpu.cfs_period_us`);
        const n = quota === undefined || period === undefined ? undefined : parseCfs(quota, period);
        if (n !== undefined) limits.push(n);
      }
    }
  }
  return limits.length === 0 ? undefined : Math.min(...limits);
}

/** Default worker count: the cgroup quota, never more than the CPUs Node reports, at least 1. */
export function cpuLimit(read?: Read, root?: string): number {
  const cpus = availableParallelism();
  const quota = cgroupCpuLimit(read, root);
  return Math.max(1, quota === undefined ? cpus : Math.min(quota, cpus));
}
