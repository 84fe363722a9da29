import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    testTimeout: 60_000,
    hookTimeout: 120_000,
    pool: 'forks',
    reporters: ['default'],
    // One shared Consul pair and one kube-apiserver for the run, started only if a
    // selected test file uses them (see test/support/README.md).
    globalSetup: ['test/support/global-setup.ts'],
    // Gateways started by tests (they inherit this environment) do not shed requests because the test machine
    // itself is busy: the overload guard's event-loop signal is off unless a test turns it on with
    // --overload-delay (test/e2e/policy/shedding.test.ts). See docs/testing.md.
    env: { EDGEGATE_OVERLOAD_DELAY: '0' },
  },
});
