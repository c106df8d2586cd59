/** TypingIndicator under TestClock: the grace, refresh cadence, stop conditions, failures that never escape. */
import { describe, expect, it } from "@effect/vitest"
import { Clock, Deferred, Duration, Effect, Fiber, Layer, Logger, LogLevel, TestClock } from "effect"
import { type DiscordFailure, MissingAccess } from "../../../src/domain/Errors.js"
import { TypingIndicator, TypingSender, typingGrace } from "../../../src/services/discord/TypingIndicator.js"

interface LogLine {
  readonly level: LogLevel.LogLevel
  readonly message: string
}

/** A sender that records the Clock time of each call and fails when `failing` says so. */
const makeHarness = (failing: boolean) => {
  const sent: Array<number> = []
  const logs: Array<LogLine> = []
  const sender = Layer.succeed(TypingSender, {
    sendTyping: (channelId: string): Effect.Effect<void, DiscordFailure> =>
      Effect.flatMap(Clock.currentTimeMillis, (now) => {
        sent.push(now)
        return failing ? Effect.fail(new MissingAccess({ channelId, operation: "sendTyping" })) : Effect.void
      })
  })
  const capture = Logger.make(({ logLevel, message }) => {
    logs.push({ level: logLevel, message: Array.isArray(message) ? message.join(" ") : String(message) })
  })
  const layer = Layer.mergeAll(
    TypingIndicator.Default.pipe(Layer.provide(sender)),
    Logger.replace(Logger.defaultLogger, capture),
    Logger.minimumLogLevel(LogLevel.Debug)
  )
  return { sent, logs, layer }
}

/**
 * Typing shown until `until` completes, the way the dispatcher uses `show`: forked, then
 * interrupted; never fails, whatever `until` does.
 */
const showUntil = <E>(typing: TypingIndicator, channelId: string, until: Effect.Effect<void, E>) =>
  Effect.gen(function*() {
    const shown = yield* Effect.fork(typing.show(channelId))
    yield* Effect.ignore(until)
    yield* Fiber.interrupt(shown)
  })

/** Lets forked fibers run until they block. */
const settle = Effect.repeatN(Effect.yieldNow(), 20)

const grace = Duration.toMillis(typingGrace)

/** Lets the grace pass: the later calls come every 8 s from `grace` on. */
const pastGrace = Effect.zipRight(TestClock.adjust(typingGrace), settle)

describe("TypingIndicator", () => {
  it.effect("a run that ends within the grace shows no typing at all", () => {
    const h = makeHarness(false)
    return Effect.gen(function*() {
      const typing = yield* TypingIndicator
      const until = yield* Deferred.make<void>()
      const fiber = yield* Effect.fork(showUntil(typing, "c1", Deferred.await(until)))
      yield* settle
      yield* TestClock.adjust(Duration.millis(grace - 1))
      yield* settle
      yield* Deferred.succeed(until, undefined)
      yield* Fiber.join(fiber)
      yield* TestClock.adjust(Duration.seconds(60))
      yield* settle
      expect(h.sent).toEqual([])
    }).pipe(Effect.provide(h.layer))
  })

  it.effect("types once the grace is over and refreshes every 8 s, before Discord's 10 s expiry", () => {
    const h = makeHarness(false)
    return Effect.gen(function*() {
      const typing = yield* TypingIndicator
      const until = yield* Deferred.make<void>()
      const fiber = yield* Effect.fork(showUntil(typing, "c1", Deferred.await(until)))
      yield* settle
      expect(h.sent).toEqual([])
      yield* TestClock.adjust(Duration.millis(grace - 1))
      yield* settle
      expect(h.sent).toEqual([])
      yield* TestClock.adjust(Duration.millis(1))
      yield* settle
      expect(h.sent).toEqual([grace])
      yield* TestClock.adjust(Duration.millis(7_999))
      yield* settle
      expect(h.sent).toEqual([grace])
      yield* TestClock.adjust(Duration.millis(1))
      yield* settle
      expect(h.sent).toEqual([grace, grace + 8_000])
      yield* TestClock.adjust(Duration.seconds(8))
      yield* settle
      expect(h.sent).toEqual([grace, grace + 8_000, grace + 16_000])
      yield* Deferred.succeed(until, undefined)
      yield* Fiber.join(fiber)
    }).pipe(Effect.provide(h.layer))
  })

  it.effect("stops when `until` completes (and when it fails)", () => {
    const h = makeHarness(false)
    return Effect.gen(function*() {
      const typing = yield* TypingIndicator
      const until = yield* Deferred.make<void, string>()
      const fiber = yield* Effect.fork(showUntil(typing, "c1", Deferred.await(until)))
      yield* pastGrace
      yield* TestClock.adjust(Duration.seconds(9))
      yield* Deferred.fail(until, "the run failed")
      // Never fails, even when `until` does.
      yield* Fiber.join(fiber)
      expect(h.sent).toEqual([grace, grace + 8_000])
      yield* TestClock.adjust(Duration.seconds(60))
      yield* settle
      expect(h.sent).toEqual([grace, grace + 8_000])
    }).pipe(Effect.provide(h.layer))
  })

  it.effect("stops when its fiber is interrupted", () => {
    const h = makeHarness(false)
    return Effect.gen(function*() {
      const typing = yield* TypingIndicator
      const fiber = yield* Effect.fork(showUntil(typing, "c1", Effect.never))
      yield* pastGrace
      yield* TestClock.adjust(Duration.seconds(8))
      yield* settle
      expect(h.sent).toEqual([grace, grace + 8_000])
      yield* Fiber.interrupt(fiber)
      yield* TestClock.adjust(Duration.seconds(60))
      yield* settle
      expect(h.sent).toEqual([grace, grace + 8_000])
    }).pipe(Effect.provide(h.layer))
  })

  it.effect("a failing sender never fails the effect and keeps trying on schedule", () => {
    const h = makeHarness(true)
    return Effect.gen(function*() {
      const typing = yield* TypingIndicator
      const until = yield* Deferred.make<void>()
      const fiber = yield* Effect.fork(showUntil(typing, "c1", Deferred.await(until)))
      yield* pastGrace
      yield* TestClock.adjust(Duration.seconds(16))
      yield* settle
      expect(h.sent).toEqual([grace, grace + 8_000, grace + 16_000])
      yield* Deferred.succeed(until, undefined)
      const exit = yield* Fiber.await(fiber)
      expect(exit._tag).toBe("Success")
    }).pipe(Effect.provide(h.layer))
  })

  it.effect("logs the first failure at warning and the later ones at debug", () => {
    const h = makeHarness(true)
    return Effect.gen(function*() {
      const typing = yield* TypingIndicator
      const until = yield* Deferred.make<void>()
      const fiber = yield* Effect.fork(showUntil(typing, "c9", Deferred.await(until)))
      yield* pastGrace
      yield* TestClock.adjust(Duration.seconds(16))
      yield* settle
      yield* Deferred.succeed(until, undefined)
      yield* Fiber.join(fiber)
      const failures = h.logs.filter((line) => line.message.includes("typing indicator failed"))
      expect(failures.map((line) => line.level)).toEqual([LogLevel.Warning, LogLevel.Debug, LogLevel.Debug])
      expect(failures[0]?.message).toContain("c9")
      expect(failures[0]?.message).toContain("MissingAccess")
    }).pipe(Effect.provide(h.layer))
  })

  it.effect("show, forked: no call within the grace, then every 8 s until its fiber is interrupted", () => {
    const h = makeHarness(false)
    return Effect.gen(function*() {
      const typing = yield* TypingIndicator
      const early = yield* Effect.fork(typing.show("c1"))
      yield* settle
      yield* TestClock.adjust(Duration.millis(grace - 1))
      yield* settle
      yield* Fiber.interrupt(early)
      yield* TestClock.adjust(Duration.seconds(60))
      yield* settle
      expect(h.sent).toEqual([])

      const start = yield* Clock.currentTimeMillis
      const later = yield* Effect.fork(typing.show("c1"))
      yield* settle
      yield* TestClock.adjust(Duration.millis(grace + 8_000))
      yield* settle
      expect(h.sent).toEqual([start + grace, start + grace + 8_000])
      yield* Fiber.interrupt(later)
      yield* TestClock.adjust(Duration.seconds(60))
      yield* settle
      expect(h.sent).toHaveLength(2)
    }).pipe(Effect.provide(h.layer))
  })

  it.live("the live sender (atEndOfTurn) calls Discord at the end of the loop's turn, after the work already under way in it", () => {
    const calls: Array<string> = []
    const sender = TypingSender.atEndOfTurn((channelId) => Effect.sync(() => void calls.push(channelId)))
    return Effect.gen(function*() {
      const typing = yield* Effect.fork(sender.sendTyping("c1"))
      // Fibers yielding to each other (microtasks, as the Letta client's request does) come first.
      yield* settle
      expect(calls).toEqual([])
      yield* Fiber.join(typing)
      expect(calls).toEqual(["c1"])
    })
  })
})
