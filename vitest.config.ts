import { defineConfig } from 'vitest/config'

export default defineConfig({
  test: {
    projects: [
      {
        test: {
          name: 'unit',
          include: ['test/unit/**/*.test.ts'],
          environment: 'node',
          setupFiles: ['test/helpers/node-polyfills.ts'],
          testTimeout: 30_000
        }
      },
      {
        test: {
          name: 'e2e',
          include: ['test/e2e/**/*.test.ts'],
          environment: 'node',
          setupFiles: ['test/helpers/node-polyfills.ts'],
          // Browsers and relays are heavy on a 2-core machine: one file at a time.
          fileParallelism: false,
          testTimeout: 180_000,
          hookTimeout: 120_000
        }
      }
    ]
  }
})
