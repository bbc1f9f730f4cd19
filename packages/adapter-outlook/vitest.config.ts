import { defineProject } from 'vitest/config'

export default defineProject({
  test: {
    name: 'adapter-outlook',
    include: ['src/**/*.test.ts', 'test/**/*.test.ts', 'addin/**/*.test.ts'],
    testTimeout: 60_000,
    hookTimeout: 60_000,
  },
})
