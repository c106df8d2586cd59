import { describe, expect, it } from "@effect/vitest"
import { ConfigProvider, Deferred, Duration, Effect, Exit, Layer, Logger, Option, Queue, Ref, TestClock } from "effect"
import { DiscordError } from "../../src/domain/Errors.js"
import { ownerIds } from "../../src/domain/Config.js"
import { alertMessage, configuredOwners, layer as alertsLayer, OwnerMessenger } from "../../src/programs/Alerts.js"
import { BreakerState, CircuitBreaker } from "../../src/services/health/CircuitBreaker.js"
import { ErrorStats, type Operation } from "../../src/services/health/ErrorStats.js"

interface LogLine {
  readonly level: string
  readonly message: string
}

interface Attempt {
  readonly userId: string
  readonly text: string
}

const ok: Operation = { kind: "agent_run", outcome: "success" }
const failed = (errorType: string): Operation => ({ kind: "agent_run", outcome: { errorType } })

/**
 * Starts the alert feature against a real ErrorStats and CircuitBreaker and a fake messenger:
 * every DM attempt lands in `attempts`; DMs to `failFor` fail.
 */
const start = (options: { readonly owners?: ReadonlyArray<string>; readonly failFor?: ReadonlyArray<string> } = {}) =>
  Effect.gen(function*() {
    const attempts = yield* Queue.unbounded<Attempt>()
    const log = yield* Ref.make<ReadonlyArray<Attempt>>([])
    const lookups = yield* Ref.make(0)
    const messenger = Layer.succeed(OwnerMessenger, {
      owners: Ref.update(lookups, (n) => n + 1).pipe(Effect.as(options.owners ?? ["111", "222"])),
      sendDirectMessage: (userId, text) =>
        Effect.gen(function*() {
          yield* Ref.update(log, (all) => [...all, { userId, text }])
          yield* Queue.offer(attempts, { userId, text })
          if (options.failFor?.includes(userId)) {
            return yield* new DiscordError({ operation: "sendDirectMessage", reason: "Cannot send messages to this user" })
          }
        })
    })
    const services = Layer.merge(ErrorStats.Default, CircuitBreaker.Default)
    const context = yield* Layer.build(Layer.provideMerge(alertsLayer.pipe(Layer.provide(messenger)), services))
    const stats = Effect.provide(ErrorStats, context)
    const breaker = Effect.provide(CircuitBreaker, context)
    const record = (operations: ReadonlyArray<Operation>) =>
      Effect.flatMap(stats, (s) => Effect.forEach(operations, s.record, { discard: true }))
    return { attempts, log, lookups, record, breaker } as const
  })

const captureLogs = (lines: Array<LogLine>, onLine: (line: LogLine) => void = () => {}) =>
  Logger.replace(
    Logger.defaultLogger,
    Logger.make(({ logLevel, message }) => {
      const line = { level: logLevel.label, message: Array.isArray(message) ? message.join(" ") : String(message) }
      lines.push(line)
      onLine(line)
    })
  )

/** 3 errors of 4 operations: 75 % > 50 %, enough operations: ErrorStats raises one alert. */
const highErrorRate = [ok, failed("LettaTimeout"), failed("LettaServerError"), failed("LettaTimeout")]

describe("owner alerts", () => {
  it.scoped("an alert sends one DM to every owner with the rate, N/M, breaker state and top error types", () =>
    Effect.gen(function*() {
      const lines: Array<LogLine> = []
      const alerts = yield* start().pipe(Effect.provide(captureLogs(lines)))
      yield* alerts.record(highErrorRate)
      const first = yield* Queue.take(alerts.attempts)
      const second = yield* Queue.take(alerts.attempts)
      expect([first.userId, second.userId]).toEqual(["111", "222"])
      expect(first.text).toBe(second.text)
      expect(first.text).toContain("75%")
      expect(first.text).toContain("3/4")
      expect(first.text).toContain("5 minutes")
      expect(first.text).toContain("🟢 CLOSED")
      expect(first.text).toContain("LettaTimeout ×2, LettaServerError ×1")

      // More errors within the cool-down, and time passing: no second alert, no repeated DM.
      yield* alerts.record([failed("LettaTimeout"), failed("LettaTimeout")])
      yield* TestClock.adjust(Duration.minutes(10))
      expect(yield* Ref.get(alerts.log)).toHaveLength(2)
      expect(lines.some((l) => l.level === "INFO" && l.message.includes("sent to 2 of 2 owner(s)"))).toBe(true)
    }))

  it.scoped("the DM names an open breaker", () =>
    Effect.gen(function*() {
      const alerts = yield* start({ owners: ["111"] })
      const breaker = yield* alerts.breaker
      // Five service failures open the breaker.
      yield* Effect.forEach(Array.from({ length: 5 }), () => Effect.either(breaker.protect(Effect.fail("down"), () => true)), {
        discard: true
      })
      expect((yield* breaker.state)._tag).toBe("Open")
      yield* alerts.record(highErrorRate)
      const dm = yield* Queue.take(alerts.attempts)
      expect(dm.text).toContain("🔴 OPEN")
      expect(dm.text).not.toContain("CLOSED")
    }))

  it.scoped("a failed DM is logged at warning and not retried; the other owners still get theirs", () =>
    Effect.gen(function*() {
      const lines: Array<LogLine> = []
      const alerts = yield* start({ failFor: ["111"] }).pipe(Effect.provide(captureLogs(lines)))
      yield* alerts.record(highErrorRate)
      expect((yield* Queue.take(alerts.attempts)).userId).toBe("111")
      expect((yield* Queue.take(alerts.attempts)).userId).toBe("222")
      // Long enough for any retry schedule to have fired under the TestClock.
      yield* TestClock.adjust(Duration.hours(1))
      expect((yield* Ref.get(alerts.log)).map((a) => a.userId)).toEqual(["111", "222"])
      const warnings = lines.filter((l) => l.level === "WARN")
      expect(warnings).toHaveLength(1)
      expect(warnings[0]?.message).toContain("owner 111")
      expect(warnings[0]?.message).toContain("DiscordError")
      expect(lines.some((l) => l.message.includes("sent to 1 of 2 owner(s)"))).toBe(true)
    }))

  it.scoped("no alert, no DM", () =>
    Effect.gen(function*() {
      const alerts = yield* start()
      // 1 error in 5 is 20 %: below the threshold.
      yield* alerts.record([ok, ok, failed("LettaTimeout"), ok, ok])
      yield* TestClock.adjust(Duration.minutes(30))
      expect(yield* Ref.get(alerts.log)).toEqual([])
      expect(yield* Ref.get(alerts.lookups)).toBe(0)

      // The feature was listening all along: a real alert goes out.
      yield* alerts.record([failed("LettaTimeout"), failed("LettaTimeout"), failed("LettaTimeout"), failed("LettaTimeout")])
      expect((yield* Queue.take(alerts.attempts)).userId).toBe("111")
    }))

  it.scoped("no owner to notify is a warning", () =>
    Effect.gen(function*() {
      const lines: Array<LogLine> = []
      const handled = yield* Deferred.make<void>()
      const alerts = yield* start({ owners: [] }).pipe(
        Effect.provide(captureLogs(lines, (line) => {
          if (line.message.includes("no owner")) Deferred.unsafeDone(handled, Exit.void)
        }))
      )
      yield* alerts.record(highErrorRate)
      // The alert is handled in the feature's fiber.
      yield* Deferred.await(handled)
      expect(yield* Ref.get(alerts.lookups)).toBe(1)
      expect(lines.some((l) => l.level === "WARN" && l.message.includes("AURORA_OWNER_IDS"))).toBe(true)
      expect(yield* Ref.get(alerts.log)).toEqual([])
    }))

  it("the message reads well", () => {
    const text = alertMessage(
      {
        at: 0,
        window: Duration.minutes(5),
        total: 10,
        errors: 8,
        rate: 0.8,
        topTypes: [["LettaServerError", 5], ["LettaTimeout", 2], ["RunFailed", 1], ["AgentBusy", 0]]
      },
      BreakerState.HalfOpen({ trialsInFlight: 1 })
    )
    expect(text).toBe(
      [
        "⚠️ Aurora: high error rate, 80% (8/10 operations failed) over the last 5 minutes.",
        "Circuit breaker: 🟡 HALF-OPEN.",
        "Top error types: LettaServerError ×5, LettaTimeout ×2, RunFailed ×1.",
        "Details: /aurora events errors"
      ].join("\n")
    )
  })

  it.effect("AURORA_OWNER_IDS: comma-separated ids, blanks ignored; unset or empty means the application owners", () =>
    Effect.gen(function*() {
      const read = (env: Record<string, string>) =>
        Effect.withConfigProvider(Effect.map(ownerIds, configuredOwners), ConfigProvider.fromMap(new Map(Object.entries(env))))
      expect(yield* read({ AURORA_OWNER_IDS: " 111111111111111111, 222222222222222222,,333333333333333333, not-an-id " }))
        .toEqual(Option.some(["111111111111111111", "222222222222222222", "333333333333333333"]))
      expect(yield* read({ AURORA_OWNER_IDS: " , " })).toEqual(Option.none())
      expect(yield* read({})).toEqual(Option.none())
    }))
})
