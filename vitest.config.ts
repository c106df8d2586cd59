import { defineConfig } from "vitest/config"

// Unit suites run in parallel; end-to-end suites (test/e2e, real sockets and child processes)
// run after them, one file at a time, so a loaded 2-core machine does not make them flaky.
export default defineConfig({
  test: {
    projects: [
      {
        extends: true,
        test: {
          name: "unit",
          include: ["test/**/*.test.ts"],
          exclude: ["test/e2e/**", "node_modules/**"],
          testTimeout: 20_000
        }
      },
      {
        extends: true,
        test: {
          name: "e2e",
          include: ["test/e2e/**/*.test.ts"],
          pool: "forks",
          poolOptions: { forks: { singleFork: true } },
          testTimeout: 120_000,
          hookTimeout: 60_000,
          sequence: { groupOrder: 1 }
        }
      }
    ]
  }
})
