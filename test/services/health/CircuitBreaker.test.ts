import { describe, expect, it } from "@effect/vitest"
import { Deferred, Duration, Effect, Exit, Fiber, Queue, Ref, TestClock } from "effect"
import {
  AgentNotFound,
  CircuitOpen,
  isServiceFailure,
  LettaServerError,
  type LettaRunError
} from "../../../src/domain/LettaErrors.js"
import {
  admitsMore,
  BreakerState,
  breakerLabel,
  CircuitBreaker,
  renderBreakerState
} from "../../../src/services/health/CircuitBreaker.js"
import { captureLogs, type LogLine } from "../../fakes/logs.js"

const serverError: LettaRunError = new LettaServerError({ agentId: "agent-1", sideEffect: false, reason: "503", status: 503 })
const notFound: LettaRunError = new AgentNotFound({ agentId: "agent-1", sideEffect: false, reason: "no such agent" })

/** A breaker with the design's defaults, plus a counter of how many runs actually executed. */
const setup = Effect.gen(function*() {
  const breaker = yield* CircuitBreaker
  const executions = yield* Ref.make(0)
  const run = (outcome: Effect.Effect<string, LettaRunError>) =>
    breaker.protect(Effect.zipRight(Ref.update(executions, (n) => n + 1), outcome), isServiceFailure)
  const fail = run(Effect.fail(serverError)).pipe(Effect.exit)
  const succeed = run(Effect.succeed("ok")).pipe(Effect.exit)
  const failTimes = (n: number) => Effect.repeatN(fail, n - 1)
  return { breaker, executions, run, fail, succeed, failTimes }
})

const expectCircuitOpen = <A>(exit: Exit.Exit<A, LettaRunError | CircuitOpen>): CircuitOpen => {
  if (Exit.isSuccess(exit)) throw new Error("expected CircuitOpen, got success")
  const error = exit.cause._tag === "Fail" ? exit.cause.error : undefined
  if (!(error instanceof CircuitOpen)) throw new Error(`expected CircuitOpen, got ${String(exit.cause)}`)
  return error
}

/** Starts a trial run that signals once it is running and then waits for `gate`. */
const startTrial = (
  run: (outcome: Effect.Effect<string, LettaRunError>) => Effect.Effect<string, LettaRunError | CircuitOpen>,
  gate: Deferred.Deferred<string, LettaRunError>
) =>
  Effect.gen(function*() {
    const started = yield* Deferred.make<void>()
    const fiber = yield* Effect.fork(run(Effect.zipRight(Deferred.succeed(started, undefined), Deferred.await(gate))))
    yield* Deferred.await(started)
    return fiber
  })

const withDefaults = Effect.provide(CircuitBreaker.Default)

describe("CircuitBreaker", () => {
  it.effect("opens after exactly 5 consecutive failures, not 4", () =>
    Effect.gen(function*() {
      const { breaker, failTimes } = yield* setup
      yield* failTimes(4)
      expect(yield* breaker.state).toEqual(BreakerState.Closed({ failures: 4 }))
      yield* failTimes(1)
      const state = yield* breaker.state
      expect(state._tag).toBe("Open")
    }).pipe(withDefaults))

  it.effect("a success in between resets the consecutive count", () =>
    Effect.gen(function*() {
      const { breaker, failTimes, succeed } = yield* setup
      yield* failTimes(4)
      yield* succeed
      yield* failTimes(4)
      expect(yield* breaker.state).toEqual(BreakerState.Closed({ failures: 4 }))
      yield* failTimes(1)
      expect((yield* breaker.state)._tag).toBe("Open")
    }).pipe(withDefaults))

  it.effect("an open breaker fails fast with CircuitOpen and retryIn, without running the effect", () =>
    Effect.gen(function*() {
      const { breaker, executions, failTimes, succeed } = yield* setup
      yield* failTimes(5)
      expect(yield* Ref.get(executions)).toBe(5)

      const first = expectCircuitOpen(yield* succeed)
      expect(Duration.toMillis(first.retryIn)).toBe(60_000)
      yield* TestClock.adjust("20 seconds")
      const later = expectCircuitOpen(yield* succeed)
      expect(Duration.toMillis(later.retryIn)).toBe(40_000)
      yield* TestClock.adjust("39 seconds")
      expectCircuitOpen(yield* succeed)

      expect(yield* Ref.get(executions)).toBe(5)
      expect((yield* breaker.state)._tag).toBe("Open")
    }).pipe(withDefaults))

  it.effect("after the cool-down, half-open admits 3 concurrent trials, a 4th fails fast, a success closes", () =>
    Effect.gen(function*() {
      const { breaker, executions, failTimes, run, succeed } = yield* setup
      yield* failTimes(5)
      yield* TestClock.adjust("60 seconds")
      expect(yield* breaker.state).toEqual(BreakerState.HalfOpen({ trialsInFlight: 0 }))

      const gate = yield* Deferred.make<string, LettaRunError>()
      const trials = yield* Effect.all([startTrial(run, gate), startTrial(run, gate), startTrial(run, gate)])
      expect(yield* breaker.state).toEqual(BreakerState.HalfOpen({ trialsInFlight: 3 }))

      // Turned away until the trials decide (a release signal); the cool-down is only a safety net.
      const fourth = expectCircuitOpen(yield* succeed)
      expect(Duration.toMillis(fourth.retryIn)).toBe(60_000)
      expect(yield* Ref.get(executions)).toBe(8)

      yield* Deferred.succeed(gate, "ok")
      const results = yield* Effect.all(trials.map(Fiber.join))
      expect(results).toEqual(["ok", "ok", "ok"])
      expect(yield* breaker.state).toEqual(BreakerState.Closed({ failures: 0 }))
      expect(Exit.isSuccess(yield* succeed)).toBe(true)
    }).pipe(withDefaults))

  it.effect("a trial failure re-opens the breaker and restarts the cool-down", () =>
    Effect.gen(function*() {
      const { breaker, executions, fail, failTimes, succeed } = yield* setup
      yield* failTimes(5)
      yield* TestClock.adjust("60 seconds")
      yield* fail
      const state = yield* breaker.state
      expect(state).toEqual(BreakerState.Open({ since: 60_000 }))

      expect(Duration.toMillis(expectCircuitOpen(yield* succeed).retryIn)).toBe(60_000)
      yield* TestClock.adjust("59 seconds")
      expect(Duration.toMillis(expectCircuitOpen(yield* succeed).retryIn)).toBe(1_000)
      expect(yield* Ref.get(executions)).toBe(6)

      yield* TestClock.adjust("1 second")
      expect(Exit.isSuccess(yield* succeed)).toBe(true)
      expect(yield* breaker.state).toEqual(BreakerState.Closed({ failures: 0 }))
    }).pipe(withDefaults))

  it.effect("errors that are not service failures never trip it and count as health", () =>
    Effect.gen(function*() {
      const { breaker, failTimes, run } = yield* setup
      const answered = run(Effect.fail(notFound)).pipe(Effect.exit)
      for (let i = 0; i < 20; i++) {
        const exit = yield* answered
        // The caller still gets its own error.
        expect(exit).toEqual(Exit.fail(notFound))
      }
      expect(yield* breaker.state).toEqual(BreakerState.Closed({ failures: 0 }))

      yield* failTimes(4)
      yield* answered
      expect(yield* breaker.state).toEqual(BreakerState.Closed({ failures: 0 }))

      // In half-open, a server that answers 404 is up: the trial closes the breaker.
      yield* failTimes(5)
      yield* TestClock.adjust("1 minute")
      yield* answered
      expect(yield* breaker.state).toEqual(BreakerState.Closed({ failures: 0 }))
    }).pipe(withDefaults))

  it.effect("a manual reset forces CLOSED and is logged", () =>
    Effect.gen(function*() {
      const lines: Array<LogLine> = []
      yield* Effect.gen(function*() {
        const { breaker, executions, failTimes, succeed } = yield* setup
        yield* failTimes(5)
        expect((yield* breaker.state)._tag).toBe("Open")
        yield* breaker.reset
        expect(yield* breaker.state).toEqual(BreakerState.Closed({ failures: 0 }))
        expect(Exit.isSuccess(yield* succeed)).toBe(true)
        expect(yield* Ref.get(executions)).toBe(6)
      }).pipe(withDefaults, Effect.provide(captureLogs(lines)))
      expect(lines.filter((l) => l.message.includes("manual reset"))).toEqual([
        { level: "INFO", message: "circuit breaker OPEN -> CLOSED: manual reset" }
      ])
    }))

  it.effect("each transition is logged exactly once, at its level, and published", () =>
    Effect.gen(function*() {
      const lines: Array<LogLine> = []
      const published = yield* Effect.scoped(
        Effect.gen(function*() {
          const { breaker, fail, failTimes, succeed } = yield* setup
          const changes = yield* breaker.subscribe
          yield* failTimes(5) // CLOSED -> OPEN
          yield* failTimes(3) // rejected, no transition
          yield* TestClock.adjust("60 seconds")
          yield* fail // OPEN -> HALF-OPEN, then HALF-OPEN -> OPEN
          yield* TestClock.adjust("60 seconds")
          yield* breaker.state // OPEN -> HALF-OPEN, seen by a status read
          yield* breaker.state // no transition
          yield* succeed // HALF-OPEN -> CLOSED
          yield* succeed
          return yield* Queue.takeAll(changes)
        }).pipe(withDefaults, Effect.provide(captureLogs(lines)))
      )
      const transitionLines = lines.filter((l) => l.message.startsWith("circuit breaker"))
      expect(transitionLines.map((l) => [l.level, l.message.split(":")[0]])).toEqual([
        ["WARN", "circuit breaker CLOSED -> OPEN"],
        ["INFO", "circuit breaker OPEN -> HALF-OPEN"],
        ["WARN", "circuit breaker HALF-OPEN -> OPEN"],
        ["INFO", "circuit breaker OPEN -> HALF-OPEN"],
        ["INFO", "circuit breaker HALF-OPEN -> CLOSED"]
      ])
      expect(transitionLines[0]?.message).toContain("5 consecutive failures, last: LettaServerError (503)")
      expect(transitionLines[2]?.message).toContain("trial run failed")
      expect(transitionLines[4]?.message).toContain("trial run succeeded")

      const words = Array.from(published, (t) => `${breakerLabel(t.from).word}->${breakerLabel(t.to).word}`)
      expect(words).toEqual(["CLOSED->OPEN", "OPEN->HALF-OPEN", "HALF-OPEN->OPEN", "OPEN->HALF-OPEN", "HALF-OPEN->CLOSED"])
      expect(Array.from(published, (t) => t.at)).toEqual([0, 60_000, 60_000, 120_000, 120_000])
    }))

  it.effect("100 concurrent failing calls open it exactly once", () =>
    Effect.gen(function*() {
      const lines: Array<LogLine> = []
      yield* Effect.scoped(
        Effect.gen(function*() {
          const { breaker, executions, run } = yield* setup
          const changes = yield* breaker.subscribe
          const gate = yield* Deferred.make<string, LettaRunError>()
          // All 100 are admitted while CLOSED, then all fail at once.
          const fibers = yield* Effect.all(Array.from({ length: 100 }, () => startTrial(run, gate)))
          yield* Deferred.fail(gate, serverError)
          const exits = yield* Effect.all(fibers.map(Fiber.await))
          expect(exits.every((e) => Exit.isFailure(e))).toBe(true)
          expect(yield* Ref.get(executions)).toBe(100)
          expect((yield* breaker.state)._tag).toBe("Open")
          const published = yield* Queue.takeAll(changes)
          expect(Array.from(published, (t) => [t.from._tag, t.to._tag])).toEqual([["Closed", "Open"]])
        }).pipe(withDefaults, Effect.provide(captureLogs(lines)))
      )
      expect(lines.filter((l) => l.message.includes("-> OPEN"))).toHaveLength(1)
    }))

  it.effect("an interrupted trial frees its slot", () =>
    Effect.gen(function*() {
      const { breaker, failTimes, run, succeed } = yield* setup
      yield* failTimes(5)
      yield* TestClock.adjust("60 seconds")
      const gate = yield* Deferred.make<string, LettaRunError>()
      const [first, second, third] = yield* Effect.all([startTrial(run, gate), startTrial(run, gate), startTrial(run, gate)])
      expectCircuitOpen(yield* succeed)

      yield* Fiber.interrupt(first)
      expect(yield* breaker.state).toEqual(BreakerState.HalfOpen({ trialsInFlight: 2 }))
      const replacement = yield* startTrial(run, gate)
      expect(yield* breaker.state).toEqual(BreakerState.HalfOpen({ trialsInFlight: 3 }))

      // Every trial interrupted: the breaker is not stuck, the next caller becomes a trial.
      yield* Effect.all([second, third, replacement].map(Fiber.interrupt))
      expect(yield* breaker.state).toEqual(BreakerState.HalfOpen({ trialsInFlight: 0 }))
      expect(Exit.isSuccess(yield* succeed)).toBe(true)
      expect(yield* breaker.state).toEqual(BreakerState.Closed({ failures: 0 }))
    }).pipe(withDefaults))

  it.effect("outcomes of runs admitted before a transition do not count", () =>
    Effect.gen(function*() {
      const { breaker, failTimes, run, succeed } = yield* setup
      const lateGate = yield* Deferred.make<string, LettaRunError>()
      const interruptedLater = yield* startTrial(run, lateGate)
      const succeedsLater = yield* startTrial(run, lateGate)
      yield* failTimes(5)
      yield* TestClock.adjust("60 seconds")
      const gate = yield* Deferred.make<string, LettaRunError>()
      yield* Effect.all([startTrial(run, gate), startTrial(run, gate), startTrial(run, gate)])

      // Admitted while CLOSED: neither frees a trial slot nor decides the trial.
      yield* Fiber.interrupt(interruptedLater)
      expect(yield* breaker.state).toEqual(BreakerState.HalfOpen({ trialsInFlight: 3 }))
      expectCircuitOpen(yield* succeed)
      yield* Deferred.succeed(lateGate, "late")
      expect(yield* Fiber.join(succeedsLater)).toBe("late")
      expect(yield* breaker.state).toEqual(BreakerState.HalfOpen({ trialsInFlight: 3 }))
    }).pipe(withDefaults))

  it.effect("options change threshold, cool-down and trial count", () =>
    Effect.gen(function*() {
      const { breaker, failTimes, run, succeed } = yield* setup
      yield* failTimes(2)
      expect((yield* breaker.state)._tag).toBe("Open")
      expect(Duration.toMillis(expectCircuitOpen(yield* succeed).retryIn)).toBe(10_000)
      yield* TestClock.adjust("10 seconds")
      const gate = yield* Deferred.make<string, LettaRunError>()
      const trial = yield* startTrial(run, gate)
      expect(Duration.toMillis(expectCircuitOpen(yield* succeed).retryIn)).toBe(10_000)
      yield* Deferred.succeed(gate, "ok")
      yield* Fiber.join(trial)
      expect(yield* breaker.state).toEqual(BreakerState.Closed({ failures: 0 }))
    }).pipe(
      Effect.provide(CircuitBreaker.layer({ failureThreshold: 2, cooldown: "10 seconds", halfOpenTrials: 1 }))
    ))

  it("a release is what lets more runs in: leaving OPEN, closing, a freed trial slot; nothing else", () => {
    const closed = BreakerState.Closed({ failures: 0 })
    const open = BreakerState.Open({ since: 0 })
    const halfOpen = (trialsInFlight: number) => BreakerState.HalfOpen({ trialsInFlight })
    expect(admitsMore(open, halfOpen(0))).toBe(true)
    expect(admitsMore(open, halfOpen(1))).toBe(true)
    expect(admitsMore(open, closed)).toBe(true)
    expect(admitsMore(halfOpen(3), closed)).toBe(true)
    expect(admitsMore(halfOpen(3), halfOpen(2))).toBe(true)
    expect(admitsMore(halfOpen(1), halfOpen(2))).toBe(false)
    expect(admitsMore(halfOpen(2), open)).toBe(false)
    expect(admitsMore(closed, open)).toBe(false)
    expect(admitsMore(closed, BreakerState.Closed({ failures: 3 }))).toBe(false)
    expect(admitsMore(open, BreakerState.Open({ since: 5 }))).toBe(false)
  })

  it.effect("releases are signalled at once: half-open, a freed slot, a trial's success, a reset; never on opening", () =>
    Effect.scoped(
      Effect.gen(function*() {
        const { breaker, fail, failTimes, run, succeed } = yield* setup
        const releases = yield* breaker.subscribeReleases
        const released = Effect.map(Queue.takeAll(releases), (chunk) => chunk.length > 0)
        yield* failTimes(5)
        expect(yield* released).toBe(false)
        yield* TestClock.adjust("60 seconds")
        expect(yield* released).toBe(false) // promotion is lazy: the first look signals it
        yield* breaker.state
        expect(yield* released).toBe(true)
        const gate = yield* Deferred.make<string, LettaRunError>()
        const trials = yield* Effect.all([startTrial(run, gate), startTrial(run, gate), startTrial(run, gate)])
        expectCircuitOpen(yield* succeed)
        expect(yield* released).toBe(false)
        yield* Fiber.interrupt(trials[0]!)
        expect(yield* released).toBe(true)
        yield* startTrial(run, gate)
        yield* Deferred.succeed(gate, "ok")
        yield* Effect.all(trials.slice(1).map(Fiber.join))
        expect((yield* breaker.state)._tag).toBe("Closed")
        expect(yield* released).toBe(true)
        yield* failTimes(5)
        expect(yield* released).toBe(false)
        yield* breaker.reset
        expect(yield* released).toBe(true)
        // Already CLOSED: a reset lets nothing more in.
        yield* breaker.reset
        yield* fail
        expect(yield* released).toBe(false)
      })
    ).pipe(withDefaults))

  it("renders one word and its emoji for status views", () => {
    expect(renderBreakerState(BreakerState.Closed({ failures: 3 }))).toBe("🟢 CLOSED")
    expect(renderBreakerState(BreakerState.Open({ since: 0 }))).toBe("🔴 OPEN")
    expect(renderBreakerState(BreakerState.HalfOpen({ trialsInFlight: 1 }))).toBe("🟡 HALF-OPEN")
  })
})
