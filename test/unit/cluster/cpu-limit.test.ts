import { availableParallelism } from 'node:os';
import { expect, test } from 'vitest';
import {
  cgroupCpuLimit,
  cgroupPaths,
  cpuLimit,
  parseCfs,
  parseCpuMax,
} from '../../../src/cluster/cpu-limit.ts';

test('cgroup v2 cpu.max: quota/period rounded up, "max" is no limit', () => {
  expect(parseCpuMax('max 100000\n')).toBeUndefined();
  expect(parseCpuMax('200000 100000\n')).toBe(2);
  expect(parseCpuMax('150000 100000')).toBe(2);
  expect(parseCpuMax('50000 100000')).toBe(1);
  expect(parseCpuMax('garbage')).toBeUndefined();
});

test('cgroup v1 cfs quota: -1 is no limit', () => {
  expect(parseCfs('-1\n', '100000\n')).toBeUndefined();
  expect(parseCfs('400000\n', '100000\n')).toBe(4);
});

test('/proc/self/cgroup: v2 path and v1 cpu controller path', () => {
  expect(cgroupPaths('0::/kubepods/pod1/c1\n')).toEqual({ v2: '/kubepods/pod1/c1' });
  expect(cgroupPaths('4:cpu,cpuacct:/docker/abc\n3:memory:/docker/abc\n')).toEqual({ v1cpu: '/docker/abc' });
});

function fakeFs(files: Record<string, string>) {
  return (f: string) => files[f];
}

test('the smallest quota on the group or an ancestor wins (v2)', () => {
  const read = fakeFs({
    '/proc/self/cgroup': '0::/kubepods/pod1/c1\n',
    '/sys/fs/cgroup/kubepods/pod1/c1/cpu.max': 'max 100000',
    '/sys/fs/cgroup/kubepods/pod1/cpu.max': '300000 100000',
    '/sys/fs/cgroup/kubepods/cpu.max': '800000 100000',
  });
  expect(cgroupCpuLimit(read)).toBe(3);
});

test('inside a container the group is mounted at the root (v2)', () => {
  const read = fakeFs({ '/proc/self/cgroup': '0::/\n', '/sys/fs/cgroup/cpu.max': '100000 100000' });
  expect(cgroupCpuLimit(read)).toBe(1);
});

test('cgroup v1 quota', () => {
  const read = fakeFs({
    '/proc/self/cgroup': '5:cpu,cpuacct:/docker/abc\n',
    '/sys/fs/cgroup/cpu,cpuacct/docker/abc/cpu.cfs_quota_us': '200000',
    '/sys/fs/cgroup/cpu,cpuacct/docker/abc/cpu.cfs_period_us': '100000',
  });
  expect(cgroupCpuLimit(read)).toBe(2);
});

test('no cgroup limit: availableParallelism(); never more than that, never less than 1', () => {
  expect(cpuLimit(fakeFs({}))).toBe(availableParallelism());
  const huge = fakeFs({ '/proc/self/cgroup': '0::/\n', '/sys/fs/cgroup/cpu.max': '100000000 100000' });
  expect(cpuLimit(huge)).toBe(availableParallelism());
  expect(cpuLimit()).toBeGreaterThanOrEqual(1);
});
