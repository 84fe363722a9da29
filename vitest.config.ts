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
  },
});
