import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import {
  LEASE_RULES,
  rbacRulesJson,
  SECRET_RULES,
  WATCH_RULES,
} from '../../../../../src/control/sources/kube/rbac.ts';

describe('RBAC rules', () => {
  it('charts/edgegate/files/rbac-rules.json is current (run npm run gen:rbac)', () => {
    const file = new URL('../../../../../charts/edgegate/files/rbac-rules.json', import.meta.url);
    // Compared as data: the formatter may re-wrap the committed JSON.
    expect(JSON.parse(readFileSync(file, 'utf8'))).toEqual(JSON.parse(rbacRulesJson()));
  });

  it('grants no Secrets, no writes of GatewayRoute specs and Leases only through the lease Role', () => {
    const all = [...WATCH_RULES, ...LEASE_RULES];
    expect(all.some((r) => r.resources.includes('secrets'))).toBe(false);
    const routes = WATCH_RULES.find((r) => r.resources.includes('gatewayroutes'))!;
    expect(routes.verbs).toEqual(['get', 'list', 'watch']);
    expect(WATCH_RULES.some((r) => r.resources.includes('leases'))).toBe(false);
  });

  it('Secrets only in the separate secret rules: list and watch (one Secret by name), no get, no writes', () => {
    expect(SECRET_RULES).toEqual([{ apiGroups: [''], resources: ['secrets'], verbs: ['list', 'watch'] }]);
  });
});
