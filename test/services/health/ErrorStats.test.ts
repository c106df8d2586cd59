import { describe, expect, it } from "@effect/vitest"
import { Duration, Effect, Exit, Fiber, Option, Queue, TestClock } from "effect"
import { LettaServerError } from "../../../src/domain/LettaErrors.js"
import {
  emptyErrorStats,
  errorStatsSettings,
  ErrorStats,
  type Operation,
  recordOperation,
  sortedByType,
  windowCounts
} from "../../../src/services/health/ErrorStats.js"
import { captureLogs, type LogLine } from "../../fakes/logs.js"

const ok: Operation = { kind: "agent_run", outcome: "success" }
const failed = (errorType: string, detail?: string): Operation =>
  detail === undefined ? { kind: "agent_run", outcome: { errorType } } : { kind: "agent_run", outcome: { errorType }, detail }

const withDefaults = Effect.provide(ErrorStats.Default)

describe("ErrorStats", () => {
  it.effect("counts totals, errors and rates", () =>
    Effect.gen(function*() {
      const stats = yield* ErrorStats
      const empty = yield* stats.snapshot
      expect(empty).toEqual({
        total: 0,
        errors: 0,
        errorRate: 0,
        recent5m: { total: 0, errors: 0, rate: 0 },
        byType: {},
        recentOperations: []
      })

      yield* stats.record(ok)
      yield* stats.record(ok)
      yield* stats.record(failed("LettaTimeout"))
      yield* stats.record(ok)
      const snapshot = yield* stats.snapshot
      expect(snapshot.total).toBe(4)
      expect(snapshot.errors).toBe(1)
      expect(snapshot.errorRate).toBe(0.25)
      expect(snapshot.recent5m).toEqual({ total: 4, errors: 1, rate: 0.25 })
    }).pipe(withDefaults))

  it.effect("the 5-minute window slides; older operations stay in the totals", () =>
    Effect.gen(function*() {
      const stats = yield* ErrorStats
      yield* stats.record(failed("LettaTimeout"))
      yield* stats.record(failed("LettaTimeout"))
      yield* TestClock.adjust("2 minutes")
      yield* stats.record(ok)
      yield* stats.record(ok)

      yield* TestClock.adjust(Duration.millis(3 * 60_000 - 1))
      expect((yield* stats.snapshot).recent5m).toEqual({ total: 4, errors: 2, rate: 0.5 })

      yield* TestClock.adjust("1 millis") // exactly 5 minutes after the first two
      const slid = yield* stats.snapshot
      expect(slid.recent5m).toEqual({ total: 2, errors: 0, rate: 0 })
      expect(slid.total).toBe(4)
      expect(slid.errors).toBe(2)
      expect(slid.errorRate).toBe(0.5)

      yield* TestClock.adjust("2 minutes")
      expect((yield* stats.snapshot).recent5m).toEqual({ total: 0, errors: 0, rate: 0 })
      expect((yield* stats.snapshot).total).toBe(4)
    }).pipe(withDefaults))

  it.effect("counts errors by type and sorts them most frequent first", () =>
    Effect.gen(function*() {
      const stats = yield* ErrorStats
      for (const type of ["LettaTimeout", "AgentNotFound", "LettaTimeout", "RunFailed", "LettaTimeout", "RunFailed"]) {
        yield* stats.record(failed(type))
      }
      yield* stats.record(ok)
      const { byType } = yield* stats.snapshot
      expect(byType).toEqual({ LettaTimeout: 3, RunFailed: 2, AgentNotFound: 1 })
      expect(sortedByType(byType)).toEqual([["LettaTimeout", 3], ["RunFailed", 2], ["AgentNotFound", 1]])
    }).pipe(withDefaults))

  it.effect("keeps the 50 newest operations, newest first, with time, kind, outcome and detail", () =>
    Effect.gen(function*() {
      const stats = yield* ErrorStats
      for (let i = 0; i < 60; i++) {
        yield* stats.record(i % 2 === 0 ? { ...ok, detail: `op-${i}` } : failed("LettaServerError", `op-${i}`))
        yield* TestClock.adjust("1 second")
      }
      const { recentOperations, total } = yield* stats.snapshot
      expect(total).toBe(60)
      expect(recentOperations).toHaveLength(50)
      expect(recentOperations.map((op) => op.detail)).toEqual(Array.from({ length: 50 }, (_, i) => `op-${59 - i}`))
      expect(recentOperations[0]).toEqual({
        at: 59_000,
        kind: "agent_run",
        outcome: { errorType: "LettaServerError" },
        detail: "op-59"
      })
      expect(recentOperations[49]).toEqual({ at: 10_000, kind: "agent_run", outcome: "success", detail: "op-10" })
    }).pipe(withDefaults))

  it.effect("alerts above 50 % with at least 4 operations, logged at error level and published", () =>
    Effect.gen(function*() {
      const lines: Array<LogLine> = []
      yield* Effect.scoped(
        Effect.gen(function*() {
          const stats = yield* ErrorStats
          const alerts = yield* stats.subscribeAlerts
          yield* stats.record(failed("LettaTimeout"))
          yield* stats.record(failed("LettaServerError"))
          yield* stats.record(failed("LettaTimeout"))
          // 3 of 3 failed, but 3 operations are too few to judge.
          expect(yield* Queue.size(alerts)).toBe(0)

          yield* TestClock.adjust("10 seconds")
          yield* stats.record(ok)
          const fired = yield* Queue.takeAll(alerts)
          expect(Array.from(fired)).toEqual([
            {
              at: 10_000,
              window: Duration.minutes(5),
              total: 4,
              errors: 3,
              rate: 0.75,
              topTypes: [["LettaTimeout", 2], ["LettaServerError", 1]]
            }
          ])
        }).pipe(withDefaults, Effect.provide(captureLogs(lines)))
      )
      expect(lines).toEqual([
        {
          level: "ERROR",
          message: "error rate 75% over 5 minutes, 3/4, top types LettaTimeout 2, LettaServerError 1"
        }
      ])
    }))

  it.effect("does not alert at exactly 50 %", () =>
    Effect.gen(function*() {
      const stats = yield* ErrorStats
      const alerts = yield* stats.subscribeAlerts
      yield* stats.record(ok)
      yield* stats.record(failed("RunFailed"))
      yield* stats.record(ok)
      yield* stats.record(failed("RunFailed"))
      expect((yield* stats.snapshot).recent5m.rate).toBe(0.5)
      expect(yield* Queue.size(alerts)).toBe(0)
      yield* stats.record(failed("RunFailed")) // 3/5 = 60 %
      expect(yield* Queue.size(alerts)).toBe(1)
    }).pipe(withDefaults, Effect.scoped))

  it.effect("alerts at most once per 15-minute cool-down, and again after it", () =>
    Effect.gen(function*() {
      const lines: Array<LogLine> = []
      const fired = yield* Effect.scoped(
        Effect.gen(function*() {
          const stats = yield* ErrorStats
          const alerts = yield* stats.subscribeAlerts
          // The error rate stays at 100 %: one failure every 30 s, 0:00 .. 14:30.
          for (let i = 0; i < 30; i++) {
            yield* stats.record(failed("LettaConnectionError"))
            yield* TestClock.adjust("30 seconds")
          }
          // The first alert fired with the 4th failure, at 1:30; the cool-down runs to 16:30.
          expect(yield* Queue.size(alerts)).toBe(1)
          yield* TestClock.adjust(Duration.millis(90_000 - 1))
          yield* stats.record(failed("LettaConnectionError"))
          expect(yield* Queue.size(alerts)).toBe(1)
          yield* TestClock.adjust("1 millis")
          yield* stats.record(failed("LettaConnectionError"))
          return yield* Queue.takeAll(alerts)
        }).pipe(withDefaults, Effect.provide(captureLogs(lines)))
      )
      expect(Array.from(fired, (a) => a.at)).toEqual([90_000, 990_000])
      expect(lines.filter((l) => l.level === "ERROR")).toHaveLength(2)
    }))

  it.effect("records the outcome of a tracked effect by its error tag", () =>
    Effect.gen(function*() {
      const stats = yield* ErrorStats
      const error = new LettaServerError({ agentId: "a", sideEffect: false, reason: "502 bad gateway", status: 502 })
      expect(yield* stats.track("agent_run", Effect.succeed(1))).toBe(1)
      expect(yield* Effect.exit(stats.track("agent_run", Effect.fail(error)))).toEqual(Exit.fail(error))
      const fiber = yield* Effect.fork(stats.track("agent_run", Effect.never))
      yield* Fiber.interrupt(fiber)
      const { byType, recentOperations, total } = yield* stats.snapshot
      expect(total).toBe(2)
      expect(byType).toEqual({ LettaServerError: 1 })
      expect(recentOperations[0]).toEqual({
        at: 0,
        kind: "agent_run",
        outcome: { errorType: "LettaServerError" },
        detail: "502 bad gateway"
      })
    }).pipe(withDefaults))

  it.effect("memory stays bounded over 100 000 operations across hours", () =>
    Effect.gen(function*() {
      // The model: 100 000 operations spread over ~3 hours.
      const settings = errorStatsSettings()
      let state = emptyErrorStats
      let alerts = 0
      for (let i = 0; i < 100_000; i++) {
        const [alert, next] = recordOperation(state, i % 3 === 0 ? failed(`Type${i % 7}`) : ok, i * 108, settings)
        if (Option.isSome(alert)) alerts++
        state = next
      }
      expect(state.total).toBe(100_000)
      expect(state.recent).toHaveLength(50)
      expect(state.past.length).toBeLessThanOrEqual(300)
      // The running window sums agree with a full recount.
      const now = 99_999 * 108
      const recount = windowCounts(state, now, settings)
      expect(state.pastTotal + (state.current?.total ?? 0)).toBe(recount.total)
      expect(state.pastErrors + (state.current?.errors ?? 0)).toBe(recount.errors)
      // The clock is at 2:59:59.892; the window starts with the bucket of 2:55:00 (1 s buckets):
      // operations 97 223 (at 10 500 084 ms) to 99 999.
      expect(recount.total).toBe(2_777)
      expect(Object.keys(state.byType)).toHaveLength(7)
      expect(alerts).toBe(0) // a third of operations failing is below the threshold

      // The service: the same volume, driven by the TestClock.
      const stats = yield* ErrorStats
      for (let round = 0; round < 100; round++) {
        for (let i = 0; i < 1_000; i++) yield* stats.record(i % 2 === 0 ? ok : failed("LettaTimeout"))
        yield* TestClock.adjust("108 seconds")
      }
      const snapshot = yield* stats.snapshot
      expect(snapshot.total).toBe(100_000)
      expect(snapshot.errors).toBe(50_000)
      expect(snapshot.recentOperations).toHaveLength(50)
      // The clock is at 3 h; the window holds the rounds recorded at 2:56:24 and 2:58:12.
      expect(snapshot.recent5m).toEqual({ total: 2_000, errors: 1_000, rate: 0.5 })
    }).pipe(withDefaults))
})
