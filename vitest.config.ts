import { defineConfig } from 'vitest/config';

// Every test file starts its own private dbus-daemon and simulator, so files run
// in parallel in separate forks. The JSON report is what .ci/run reads for totals.
export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    exclude: ['test/bluez-vm/**', 'node_modules/**'],
    pool: 'forks',
    testTimeout: 20_000,
    hookTimeout: 20_000,
    reporters: ['default', ['json', { outputFile: '.vitest-results.json' }]],
  },
});
