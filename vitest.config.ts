import { defineConfig } from "vitest/config"

// Unit suites run in parallel; end-to-end suites (test/e2e, real sockets and child processes)
// run after them, one file at a time, so a loaded 2-core machine does not make them flaky; the
// fault-injection suite (test/faults, the built program killed and restarted) runs last, alone.
export default defineConfig({
  test: {
    projects: [
      {
        extends: true,
        test: {
          name: "unit",
          include: ["test/**/*.test.ts"],
          exclude: ["test/e2e/**", "test/faults/**", "node_modules/**"],
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
      },
      {
        extends: true,
        test: {
          // The fault-injection suite: the built program as child processes, one at a time, last.
          name: "faults",
          include: ["test/faults/**/*.test.ts"],
          pool: "forks",
          poolOptions: { forks: { singleFork: true } },
          testTimeout: 180_000,
          hookTimeout: 60_000,
          sequence: { groupOrder: 2 }
        }
      }
    ]
  }
})
