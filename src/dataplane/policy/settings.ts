/**
 * Pod-wide policy settings from `edgegate run` flags (each also an EDGEGATE_* variable): global IP lists, the
 * secrets directory, overload thresholds, and the test hooks switch (EDGEGATE_TEST_HOOKS=1, environment only).
 */
import { ConfigError } from '../../lib/errors.ts';
import { parseCidr } from '../../table/ip-rules.ts';
import type { PolicySettings } from '../../table/policy-types.ts';

export interface PolicyFlags {
  ipAllow?: string;
  ipDeny?: string;
  secretsDir?: string;
  overloadDelay?: string;
  overloadMemory?: string;
}

function cidrList(value: string | undefined, flag: string): string[] {
  if (value === undefined || value.trim() === '') return [];
  return value.split(',').map((raw) => {
    const c = raw.trim();
    const p = parseCidr(c);
    if ('error' in p) throw new ConfigError(`${flag}: ${p.error}`);
    return p.canonical;
  });
}

/** `512Mi`, `2Gi`, `1500M`, `1073741824`: bytes. */
export function parseBytes(value: string, flag: string): number {
  const m = /^(\d+(?:\.\d+)?)(Ki|Mi|Gi|K|M|G)?$/.exec(value.trim());
  if (!m)
    throw new ConfigError(
      `${flag}: expected a size like 1536Mi, 2Gi or a byte count, got ${JSON.stringify(value)}`,
    );
  const unit = { Ki: 1024, Mi: 1024 ** 2, Gi: 1024 ** 3, K: 1e3, M: 1e6, G: 1e9 }[m[2] ?? ''] ?? 1;
  return Math.round(Number(m[1]) * unit);
}

export function policySettingsFrom(
  o: PolicyFlags,
  env: Record<string, string | undefined>,
  parseDuration: (value: string, flag: string) => number,
): Partial<PolicySettings> {
  return {
    ipAllow: cidrList(o.ipAllow, '--ip-allow'),
    ipDeny: cidrList(o.ipDeny, '--ip-deny'),
    secretsDir: o.secretsDir || undefined,
    overloadDelayMs:
      o.overloadDelay === undefined ? undefined : parseDuration(o.overloadDelay, '--overload-delay'),
    overloadMemoryBytes: o.overloadMemory ? parseBytes(o.overloadMemory, '--overload-memory') : 0,
    testHooks: env.EDGEGATE_TEST_HOOKS === '1',
  };
}
