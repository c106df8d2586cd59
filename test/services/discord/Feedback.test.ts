/**
 * Feedback reactions under TestClock: the service over a recording Reactions fake and a settings
 * mock (guild g-off has `feedback` false), and its pure rules (the decision, the bounded record).
 */
import { defaultGlobalSettings } from "../../../src/domain/Settings.js"
import { describe, expect, it } from "@effect/vitest"
import { Deferred, Effect, FiberId, Layer, Logger, LogLevel, TestClock } from "effect"
import { type DiscordFailure, MessageNotFound, MissingAccess } from "../../../src/domain/Errors.js"
import { defaultGuildSettings } from "../../../src/domain/Settings.js"
import { Feedback, type FeedbackTarget } from "../../../src/services/discord/Feedback.js"
import { decideFeedback, feedbackEmoji, RecentKeys } from "../../../src/services/discord/FeedbackRules.js"
import { defaultGuildState, SettingsStore } from "../../../src/services/storage/SettingsStore.js"
import { counterValue } from "../../programs/DispatchHarness.js"
import { type ReactionCall, recordingFeedback, type RecordingOptions, sentPairs } from "../../fakes/reactions.js"

const hourglass = "\u23F3"
const warning = "\u26A0\uFE0F"

const inGuild = (messageId: string, guildId = "g1"): FeedbackTarget => ({ guildId, channelId: `c-${guildId}`, messageId })
const inDm = (messageId: string): FeedbackTarget => ({ guildId: null, channelId: "dm-1", messageId })

interface LogLine {
  readonly level: string
  readonly message: string
}

const makeHarness = (options: RecordingOptions = {}) => {
  const lines: Array<LogLine> = []
  const settings = Layer.mock(SettingsStore, {
    _tag: "aurora/SettingsStore",
    currentGlobal: () => defaultGlobalSettings,
    guild: (guildId: string) =>
      Effect.succeed({
        ...defaultGuildState(guildId),
        enabled: true,
        agentId: "a1",
        settings: { ...defaultGuildSettings, feedback: guildId !== "g-off" }
      })
  })
  const feedback = recordingFeedback(options)
  const capture = Logger.make(({ logLevel, message }) => {
    lines.push({ level: logLevel.label, message: Array.isArray(message) ? message.join(" ") : String(message) })
  })
  const layer = Layer.mergeAll(
    feedback.layer.pipe(Layer.provide(settings)),
    Logger.replace(Logger.defaultLogger, capture),
    Logger.minimumLogLevel(LogLevel.Debug)
  )
  return { calls: feedback.calls, lines, layer }
}

const reactions = (kind: string, result: string) => counterValue("aurora_feedback_reactions_total", { emoji_kind: kind, result })

/** Every series' value, to compare before and after (the registry is process-wide). */
const allCounts = Effect.all({
  queueFullSent: reactions("queue_full", "sent"),
  queueFullSkipped: reactions("queue_full", "skipped"),
  queueFullFailed: reactions("queue_full", "failed"),
  queueFullDropped: reactions("queue_full", "dropped"),
  deadLetterSent: reactions("dead_letter", "sent"),
  deadLetterSkipped: reactions("dead_letter", "skipped"),
  deadLetterFailed: reactions("dead_letter", "failed"),
  deadLetterDropped: reactions("dead_letter", "dropped")
})

const delta = <A extends Record<string, number>>(before: A, after: A): Partial<A> =>
  Object.fromEntries(
    Object.entries(after).filter(([k, v]) => v !== before[k]).map(([k, v]) => [k, v - (before[k] ?? 0)])
  ) as Partial<
    A
  >

const failWith = (error: (call: ReactionCall) => DiscordFailure) => (call: ReactionCall) => Effect.fail(error(call))

describe("Feedback", () => {
  it.effect("⏳ once per message: told twice, one request; sent and skipped are counted", () => {
    const h = makeHarness()
    return Effect.gen(function*() {
      const feedback = yield* Feedback
      const before = yield* allCounts
      yield* feedback.tell("queue_full", inGuild("m1"))
      yield* feedback.idle
      yield* feedback.tell("queue_full", inGuild("m1"))
      yield* feedback.idle
      expect(h.calls).toEqual([{ channelId: "c-g1", messageId: "m1", emoji: hourglass, at: 0 }])
      expect(delta(before, yield* allCounts)).toEqual({ queueFullSent: 1, queueFullSkipped: 1 })
    }).pipe(Effect.provide(h.layer))
  })

  it.effect("⚠️ once per message even when dead-lettered twice; ⏳ on the same message is its own pair", () => {
    const h = makeHarness()
    return Effect.gen(function*() {
      const feedback = yield* Feedback
      yield* feedback.tell("dead_letter", inGuild("m1"))
      yield* feedback.tell("dead_letter", inGuild("m2"))
      yield* feedback.idle
      // `/aurora queue retry` and a second dead letter of m1, an hour later.
      yield* TestClock.adjust("1 hour")
      yield* feedback.tell("dead_letter", inGuild("m1"))
      yield* feedback.tell("queue_full", inGuild("m1"))
      yield* feedback.idle
      expect(sentPairs(h.calls)).toEqual([`m1:${warning}`, `m2:${warning}`, `m1:${hourglass}`])
    }).pipe(Effect.provide(h.layer))
  })

  it.effect("feedback off in the guild: nothing sent (skipped); DMs use the default, on", () => {
    const h = makeHarness()
    return Effect.gen(function*() {
      const feedback = yield* Feedback
      const before = yield* allCounts
      yield* feedback.tell("queue_full", inGuild("m1", "g-off"))
      yield* feedback.tell("dead_letter", inGuild("m2", "g-off"))
      yield* feedback.tell("dead_letter", inDm("m3"))
      yield* feedback.tell("queue_full", inDm("m4"))
      yield* feedback.idle
      expect(h.calls.map((c) => [c.channelId, c.messageId, c.emoji])).toEqual([
        ["dm-1", "m3", warning],
        ["dm-1", "m4", hourglass]
      ])
      expect(delta(before, yield* allCounts)).toEqual({
        queueFullSent: 1,
        queueFullSkipped: 1,
        deadLetterSent: 1,
        deadLetterSkipped: 1
      })
    }).pipe(Effect.provide(h.layer))
  })

  it.effect("a failing reaction is logged with its reason (warning first per guild, then debug), counted, never retried", () => {
    const h = makeHarness({
      answer: failWith((call) =>
        call.messageId === "gone"
          ? new MessageNotFound({ channelId: call.channelId, messageId: call.messageId })
          : new MissingAccess({ channelId: call.channelId, operation: "addReaction" })
      )
    })
    return Effect.gen(function*() {
      const feedback = yield* Feedback
      const before = yield* allCounts
      yield* feedback.tell("dead_letter", inGuild("m1"))
      yield* feedback.idle
      yield* feedback.tell("queue_full", inGuild("gone"))
      yield* feedback.idle
      yield* feedback.tell("dead_letter", inGuild("m2", "g2"))
      yield* feedback.idle
      // Told again: the pair was attempted, so nothing is sent a second time.
      yield* feedback.tell("dead_letter", inGuild("m1"))
      yield* feedback.idle
      yield* TestClock.adjust("1 minute")
      yield* feedback.idle
      expect(sentPairs(h.calls)).toEqual([`m1:${warning}`, `gone:${hourglass}`, `m2:${warning}`])
      const failures = h.lines.filter((l) => l.message.includes("not added"))
      expect(failures).toEqual([
        {
          level: "WARN",
          message: `feedback reaction ${warning} not added: missing permission (403: the bot needs Add Reactions and ` +
            "Read Message History there); not retried (further failures in this server are logged at debug)"
        },
        {
          level: "DEBUG",
          message: `feedback reaction ${hourglass} not added: the message is gone (404 Unknown Message); not retried`
        },
        {
          level: "WARN",
          message: `feedback reaction ${warning} not added: missing permission (403: the bot needs Add Reactions and ` +
            "Read Message History there); not retried (further failures in this server are logged at debug)"
        }
      ])
      expect(delta(before, yield* allCounts)).toEqual({ deadLetterFailed: 2, queueFullFailed: 1, deadLetterSkipped: 1 })
    }).pipe(Effect.provide(h.layer))
  })

  it.effect("a reaction with no answer is withdrawn after 10 s and logged; `tell` returned at once", () => {
    const withdrawn: Array<string> = []
    const h = makeHarness({
      answer: (call) => Effect.onInterrupt(Effect.never, () => Effect.sync(() => withdrawn.push(call.messageId)))
    })
    return Effect.gen(function*() {
      const feedback = yield* Feedback
      // Under it.effect a `tell` that waited for Discord would never return: the clock does not move.
      yield* feedback.tell("dead_letter", inDm("m1"))
      yield* Effect.repeatN(Effect.yieldNow(), 20)
      expect(yield* feedback.inFlight).toBe(1)
      yield* TestClock.adjust("9999 millis")
      expect(withdrawn).toEqual([])
      yield* TestClock.adjust("1 millis")
      yield* feedback.idle
      expect(withdrawn).toEqual(["m1"])
      expect(h.lines.filter((l) => l.message.includes("not added"))).toEqual([{
        level: "WARN",
        message:
          `feedback reaction ${warning} not added: no answer within 10s; not retried (further failures in DMs are logged at debug)`
      }])
      expect(h.calls).toHaveLength(1)
    }).pipe(Effect.provide(h.layer))
  })

  it.effect("at most maxInFlight reactions in flight: beyond, dropped and counted without a request; then it goes on", () => {
    const gate = Deferred.unsafeMake<void>(FiberId.none)
    const h = makeHarness({ maxInFlight: 3, answer: () => Deferred.await(gate) })
    return Effect.gen(function*() {
      const feedback = yield* Feedback
      const before = yield* allCounts
      for (const id of ["m1", "m2", "m3", "m4", "m5"]) yield* feedback.tell("dead_letter", inGuild(id))
      yield* Effect.repeatN(Effect.yieldNow(), 20)
      expect(yield* feedback.inFlight).toBe(3)
      expect(h.calls.map((c) => c.messageId)).toEqual(["m1", "m2", "m3"])
      expect(delta(before, yield* allCounts)).toEqual({ deadLetterDropped: 2 })
      yield* Deferred.succeed(gate, undefined)
      yield* feedback.idle
      expect(yield* feedback.inFlight).toBe(0)
      // A dropped reaction was never recorded as sent: told again, it goes.
      yield* feedback.tell("dead_letter", inGuild("m4"))
      yield* feedback.idle
      expect(h.calls.map((c) => c.messageId)).toEqual(["m1", "m2", "m3", "m4"])
      expect(delta(before, yield* allCounts)).toEqual({ deadLetterDropped: 2, deadLetterSent: 4 })
    }).pipe(Effect.provide(h.layer))
  })

  it.effect("the record of sent reactions is bounded: the oldest pair is forgotten (and Discord's PUT is idempotent)", () => {
    const h = makeHarness({ remembered: 2 })
    return Effect.gen(function*() {
      const feedback = yield* Feedback
      for (const id of ["m1", "m2", "m3", "m2", "m1"]) {
        yield* feedback.tell("dead_letter", inGuild(id))
        yield* feedback.idle
      }
      // m1 was evicted by m3, so it goes again; m2 was still remembered.
      expect(h.calls.map((c) => c.messageId)).toEqual(["m1", "m2", "m3", "m1"])
    }).pipe(Effect.provide(h.layer))
  })
})

describe("feedback rules", () => {
  it("the emoji: ⏳ for a full queue, ⚠️ (with U+FE0F) for a dead letter", () => {
    expect(feedbackEmoji).toEqual({ queue_full: hourglass, dead_letter: warning })
    expect(encodeURIComponent(feedbackEmoji.dead_letter)).toBe("%E2%9A%A0%EF%B8%8F")
  })

  it("sends only when on and first; off wins", () => {
    expect(decideFeedback(true, true)).toEqual({ _tag: "Send" })
    expect(decideFeedback(true, false)).toEqual({ _tag: "Skip", reason: "already reacted" })
    expect(decideFeedback(false, true)).toEqual({ _tag: "Skip", reason: "feedback is off" })
    expect(decideFeedback(false, false)).toEqual({ _tag: "Skip", reason: "feedback is off" })
  })

  it("RecentKeys keeps the newest `capacity` keys, in insertion order", () => {
    const keys = new RecentKeys(3)
    expect(["a", "b", "a", "c", "d"].map((k) => keys.add(k))).toEqual([true, true, false, true, true])
    expect(keys.size).toBe(3)
    expect(["a", "b", "c", "d"].map((k) => keys.has(k))).toEqual([false, true, true, true])
    // Re-adding a remembered key does not refresh it: "b" is still the oldest.
    keys.add("c")
    keys.add("e")
    expect(["b", "c", "d", "e"].map((k) => keys.has(k))).toEqual([false, true, true, true])
  })

  it("RecentKeys at 10 000 stays at 10 000", () => {
    const keys = new RecentKeys(10_000)
    for (let i = 0; i < 25_000; i++) keys.add(`m${i}`)
    expect(keys.size).toBe(10_000)
    expect(keys.has("m14999")).toBe(false)
    expect(keys.has("m15000")).toBe(true)
  })
})
