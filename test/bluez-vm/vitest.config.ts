import { defineConfig } from 'vitest/config';

// The real-BlueZ tier (`npm run test:bluez`): one qemu guest for the whole run, so one file, one
// fork, no parallelism. Its JSON report is summed into the CI totals by .ci/run.
export default defineConfig({
  test: {
    include: ['test/bluez-vm/**/*.test.ts'],
    pool: 'forks',
    fileParallelism: false,
    testTimeout: 120_000,
    hookTimeout: 600_000,
    reporters: ['default', ['json', { outputFile: 'test/bluez-vm/.vitest-results.json' }]],
  },
});
