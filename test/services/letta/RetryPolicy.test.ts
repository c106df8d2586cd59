/** The retry schedule for agent runs: which failures retry, how often, and after how long. */
import { describe, expect, it } from "@effect/vitest"
import { Clock, Duration, Effect, Exit, Fiber, Random, Ref, Schedule, TestClock } from "effect"
import {
  AgentNotFound,
  LettaConnectionError,
  LettaRateLimited,
  type LettaRunError,
  LettaServerError,
  LettaTimeout,
  RunFailed
} from "../../../src/domain/LettaErrors.js"
import { parseRetryAfter } from "../../../src/services/letta/LettaClient.js"
import {
  lettaRetrySchedule,
  makeLettaRetrySchedule,
  retryAfterFloor,
  retryOnFailure,
  retryTransient
} from "../../../src/services/letta/RetryPolicy.js"

const base = { agentId: "agent-1", sideEffect: false, reason: "test" }
const serverError = new LettaServerError({ ...base, status: 503 })
const rateLimited = (retryAfter?: Duration.Duration) =>
  new LettaRateLimited({ ...base, ...(retryAfter === undefined ? {} : { retryAfter }) })

/**
 * Runs an attempt that fails with `errors[i]` on attempt i (the last one repeating) under the
 * retry schedule, advancing the TestClock far enough for every retry; returns the attempt times.
 */
const attemptTimes = (
  errors: ReadonlyArray<LettaRunError>,
  advance: Duration.DurationInput = "10 minutes",
  retry: (attempt: Effect.Effect<never, LettaRunError>) => Effect.Effect<never, LettaRunError> = (attempt) =>
    Effect.retry(attempt, lettaRetrySchedule)
) =>
  Effect.gen(function*() {
    const times = yield* Ref.make<ReadonlyArray<number>>([])
    const attempt = Effect.gen(function*() {
      const now = yield* Clock.currentTimeMillis
      const done = yield* Ref.modify(times, (ts) => [ts.length, [...ts, now]])
      return yield* Effect.fail(errors[Math.min(done, errors.length - 1)] ?? serverError)
    })
    const fiber = yield* Effect.fork(retry(attempt))
    yield* TestClock.adjust(advance)
    const exit = yield* Fiber.await(fiber)
    expect(Exit.isFailure(exit)).toBe(true)
    return yield* Ref.get(times)
  })

const gaps = (times: ReadonlyArray<number>) => times.slice(1).map((t, i) => t - (times[i] ?? 0))

/** The waits between attempts when every draw of the jitter is `random`, for `attempts` attempts. */
const delaysWith = (random: number, errors: ReadonlyArray<LettaRunError>, attempts = 3) =>
  attemptTimes(errors, "10 minutes", (attempt) => Effect.retry(attempt, makeLettaRetrySchedule({ attempts }))).pipe(
    Effect.map(gaps),
    Effect.withRandom(Random.fixed([random]))
  )

describe("retry delays", () => {
  it.effect("double from 1 s with ±25 % jitter: the draw picks the point in [75 %, 125 %]", () =>
    Effect.gen(function*() {
      expect(yield* delaysWith(0, [serverError])).toEqual([750, 1500])
      expect(yield* delaysWith(0.5, [serverError])).toEqual([1000, 2000])
      expect(yield* delaysWith(0.9999, [serverError])).toEqual([1250, 2500])
      expect(yield* delaysWith(1, [serverError])).toEqual([1250, 2500])
    }))

  it.effect("are capped at 30 s, jitter included", () =>
    Effect.gen(function*() {
      expect(yield* delaysWith(0, [serverError], 8)).toEqual([750, 1500, 3000, 6000, 12_000, 24_000, 30_000])
      expect(yield* delaysWith(0.5, [serverError], 8)).toEqual([1000, 2000, 4000, 8000, 16_000, 30_000, 30_000])
      expect(yield* delaysWith(1, [serverError], 8)).toEqual([1250, 2500, 5000, 10_000, 20_000, 30_000, 30_000])
    }))

  it.effect("take a 429's Retry-After as a floor, above the cap too, itself bounded by 5 minutes", () =>
    Effect.gen(function*() {
      expect(yield* delaysWith(1, [rateLimited(Duration.seconds(10))])).toEqual([10_000, 10_000])
      expect(yield* delaysWith(0.5, [rateLimited(Duration.millis(100))])).toEqual([1000, 2000])
      expect(yield* delaysWith(0.5, [rateLimited(Duration.seconds(45))])).toEqual([45_000, 45_000])
      expect(yield* delaysWith(0.5, [rateLimited(Duration.hours(2))])).toEqual([300_000, 300_000])
      expect(yield* delaysWith(0.5, [rateLimited()])).toEqual([1000, 2000])
      expect(yield* delaysWith(0.5, [rateLimited(Duration.seconds(3)), serverError])).toEqual([3000, 2000])
    }))

  it("retryAfterFloor rounds to whole milliseconds and raises only a 429 with Retry-After", () => {
    expect(Duration.toMillis(retryAfterFloor(serverError, Duration.millis(1249.95)))).toBe(1250)
    expect(Duration.toMillis(retryAfterFloor(rateLimited(Duration.seconds(7)), Duration.millis(1250)))).toBe(7000)
    expect(Duration.toMillis(retryAfterFloor(rateLimited(Duration.seconds(7)), Duration.seconds(8)))).toBe(8000)
  })
})

describe("parseRetryAfter", () => {
  const headers = (entries: Record<string, string>) => new Headers(entries)
  const now = Date.parse("2026-01-01T00:00:00Z")

  it("reads seconds, milliseconds and HTTP dates", () => {
    expect(parseRetryAfter(headers({ "retry-after": "3" }), now)).toEqual(Duration.seconds(3))
    expect(parseRetryAfter(headers({ "retry-after": "1.5" }), now)).toEqual(Duration.millis(1500))
    expect(parseRetryAfter(headers({ "retry-after-ms": "250", "retry-after": "9" }), now)).toEqual(Duration.millis(250))
    expect(parseRetryAfter(headers({ "retry-after": "Thu, 01 Jan 2026 00:00:20 GMT" }), now)).toEqual(Duration.seconds(20))
  })

  it("ignores what it cannot read and bounds what it can", () => {
    expect(parseRetryAfter(headers({}), now)).toBeUndefined()
    expect(parseRetryAfter(undefined, now)).toBeUndefined()
    expect(parseRetryAfter(headers({ "retry-after": "soon" }), now)).toBeUndefined()
    expect(parseRetryAfter(headers({ "retry-after": "Wed, 31 Dec 2025 23:59:00 GMT" }), now)).toEqual(Duration.zero)
    expect(parseRetryAfter(headers({ "retry-after": "86400" }), now)).toEqual(Duration.minutes(5))
  })
})

describe("lettaRetrySchedule", () => {
  it.effect("makes 3 attempts in all, 1 s and 2 s apart within ±25 %", () =>
    Effect.gen(function*() {
      const times = yield* attemptTimes([serverError])
      expect(times).toHaveLength(3)
      const [first, second] = gaps(times)
      expect(first).toBeGreaterThanOrEqual(750)
      expect(first).toBeLessThanOrEqual(1250)
      expect(second).toBeGreaterThanOrEqual(1500)
      expect(second).toBeLessThanOrEqual(2500)
    }))

  it.effect("retries every transient kind: connection, timeout before acting, 408, 429, 5xx", () =>
    Effect.gen(function*() {
      const transient: ReadonlyArray<LettaRunError> = [
        new LettaConnectionError(base),
        new LettaTimeout({ ...base, timeout: Duration.seconds(60), phase: "stream" }),
        new LettaTimeout({ ...base, timeout: Duration.seconds(60), phase: "server" }),
        rateLimited(),
        serverError
      ]
      for (const error of transient) {
        expect(yield* attemptTimes([error])).toHaveLength(3)
      }
    }))

  it.effect("never retries a permanent failure or a run in which the agent acted", () =>
    Effect.gen(function*() {
      const permanent: ReadonlyArray<LettaRunError> = [
        new AgentNotFound(base),
        new RunFailed({ ...base, stopReason: "error" }),
        new LettaTimeout({ ...base, sideEffect: true, timeout: Duration.seconds(60), phase: "stream" }),
        new LettaConnectionError({ ...base, sideEffect: true })
      ]
      for (const error of permanent) {
        expect(yield* attemptTimes([error])).toHaveLength(1)
      }
    }))

  it.effect("stops as soon as a failure turns permanent", () =>
    Effect.gen(function*() {
      const times = yield* attemptTimes([serverError, new AgentNotFound(base)])
      expect(times).toHaveLength(2)
    }))

  it.effect("waits at least a 429's Retry-After", () =>
    Effect.gen(function*() {
      const attempts = yield* Ref.make(0)
      const attempt = Effect.zipRight(
        Ref.update(attempts, (n) => n + 1),
        Effect.fail(rateLimited(Duration.seconds(10)))
      )
      const fiber = yield* Effect.fork(Effect.retry(attempt, lettaRetrySchedule))
      yield* TestClock.adjust(Duration.millis(9_999))
      expect(yield* Ref.get(attempts)).toBe(1)
      yield* TestClock.adjust(Duration.millis(1))
      expect(yield* Ref.get(attempts)).toBe(2)
      yield* TestClock.adjust(Duration.seconds(10))
      expect(yield* Ref.get(attempts)).toBe(3)
      expect(Exit.isFailure(yield* Fiber.await(fiber))).toBe(true)
    }))

  it.effect("retryTransient returns the first success", () =>
    Effect.gen(function*() {
      const attempts = yield* Ref.make(0)
      const attempt = Effect.flatMap(Ref.updateAndGet(attempts, (n) => n + 1), (n) =>
        n < 3 ? Effect.fail<LettaRunError>(serverError) : Effect.succeed("answered"))
      const fiber = yield* Effect.fork(retryTransient(attempt))
      yield* TestClock.adjust("1 minute")
      expect(yield* Fiber.join(fiber)).toBe("answered")
      expect(yield* Ref.get(attempts)).toBe(3)
    }))
})

describe("retryOnFailure", () => {
  // Without jitter, so that both runs see the same delays.
  const schedule = makeLettaRetrySchedule({ jitter: 0 })
  const sequences: ReadonlyArray<readonly [string, ReadonlyArray<LettaRunError>]> = [
    ["transient failures", [serverError]],
    ["a permanent failure", [new AgentNotFound(base)]],
    ["transient, then permanent", [serverError, new AgentNotFound(base)]],
    ["a 429 with Retry-After", [rateLimited(Duration.seconds(10))]],
    ["a timeout, then a connection error", [
      new LettaTimeout({ ...base, timeout: Duration.seconds(5), phase: "stream" }),
      new LettaConnectionError(base)
    ]]
  ]
  for (const [name, errors] of sequences) {
    it.effect(`sends the same attempts at the same times as Effect.retry: ${name}`, () =>
      Effect.gen(function*() {
        const expected = yield* attemptTimes(errors, "10 minutes", (attempt) => Effect.retry(attempt, schedule))
        const start = yield* Clock.currentTimeMillis
        const actual = yield* attemptTimes(errors, "10 minutes", (attempt) => retryOnFailure(attempt, schedule))
        expect(gaps(actual)).toEqual(gaps(expected))
        expect(actual[0]).toBe(start)
      }))
  }

  it.effect("returns the first success without consulting the schedule", () =>
    Effect.gen(function*() {
      const stepped = yield* Ref.make(0)
      const counting = Schedule.tapInput(schedule, () => Ref.update(stepped, (n) => n + 1))
      expect(yield* retryOnFailure(Effect.succeed("answered"), counting)).toBe("answered")
      expect(yield* Ref.get(stepped)).toBe(0)
    }))

  it.effect("fails with the last failure once the schedule stops", () =>
    Effect.gen(function*() {
      const attempts = yield* Ref.make(0)
      const attempt = Effect.flatMap(Ref.updateAndGet(attempts, (n) => n + 1), (n) =>
        Effect.fail<LettaRunError>(new LettaServerError({ ...base, status: 500 + n })))
      const fiber = yield* Effect.fork(retryOnFailure(attempt, schedule))
      yield* TestClock.adjust("1 minute")
      const exit = yield* Fiber.await(fiber)
      expect(exit).toStrictEqual(Exit.fail(new LettaServerError({ ...base, status: 503 })))
    }))
})
