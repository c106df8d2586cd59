/**
 * The silent-run fallback in the dispatcher (./DispatchHarness.ts: layer-swapped fakes, the fake
 * reply poster recording every post, the journal's writes in one log with the posts), under
 * TestClock.
 */
import { describe, expect, it } from "@effect/vitest"
import { Duration, Effect, Fiber, HashMap, Logger, TestClock } from "effect"
import { MissingAccess } from "../../src/domain/Errors.js"
import { RunFailed } from "../../src/domain/LettaErrors.js"
import { cutMarker } from "../../src/domain/FallbackReply.js"
import { makeDispatcher } from "../../src/programs/Dispatch.js"
import { DeadLetters } from "../../src/services/queue/DeadLetters.js"
import { typingGrace } from "../../src/services/discord/TypingIndicator.js"
import { Partition } from "../../src/domain/Event.js"
import { DispatchOutcome } from "../../src/services/queue/EventQueue.js"
import { event } from "../services/queue/harness.js"
import { counterValue, makeHarness, retrySchedule, settle, silentReport, toolCall } from "./DispatchHarness.js"

/** When a run that is still going shows typing first (ms after its dispatch started). */
const grace = Duration.toMillis(typingGrace)

interface Line {
  readonly level: string
  readonly message: string
  readonly annotations: Record<string, unknown>
}

const capture = (lines: Array<Line>) =>
  Logger.add(Logger.make(({ annotations, logLevel, message }) => {
    lines.push({
      level: logLevel.label,
      message: Array.isArray(message) ? message.map(String).join(" ") : String(message),
      annotations: Object.fromEntries(HashMap.toEntries(annotations))
    })
  }))

/** aurora_silent_runs_total by action, now. */
const silentRuns = Effect.all({
  posted: counterValue("aurora_silent_runs_total", { action: "posted" }),
  none: counterValue("aurora_silent_runs_total", { action: "none" }),
  failed: counterValue("aurora_silent_runs_total", { action: "failed" })
})

/** The counts added since `before`. */
const since = (before: { readonly posted: number; readonly none: number; readonly failed: number }) =>
  Effect.map(silentRuns, (now) => ({
    posted: now.posted - before.posted,
    none: now.none - before.none,
    failed: now.failed - before.failed
  }))

const silentLines = (lines: ReadonlyArray<Line>) => lines.filter((line) => line.message.startsWith("silent run:"))

describe("dispatch: the silent-run fallback", () => {
  it.effect("a silent run's text is posted once as a reply to the mention, recorded in the journal first", () => {
    const h = makeHarness({ run: (request) => Effect.succeed(silentReport(request.agentId, ["The answer", "is 42."], "run-7")) })
    const lines: Array<Line> = []
    return Effect.gen(function*() {
      const before = yield* silentRuns
      const { dispatch } = yield* makeDispatcher({ retrySchedule })
      yield* TestClock.adjust(Duration.seconds(5))
      expect(yield* dispatch(event("m1", { channelId: "c7" }))).toEqual(DispatchOutcome.done)
      expect(h.posts).toEqual([{ channelId: "c7", replyTo: "m1", content: "The answer\n\nis 42.", nonce: "m1.0", at: 5_000 }])
      // Recorded before the post, after the run.
      expect(h.log.filter((line) => !line.startsWith("runIdSeen"))).toEqual([
        "runStarted:m1@5000",
        "letta:prompt m1",
        "fallbackRecorded:m1@5000",
        "post:m1#m1.0"
      ])
      expect(yield* since(before)).toEqual({ posted: 1, none: 0, failed: 0 })
      expect(silentLines(lines).map((line) => [line.level, line.message, line.annotations["runId"]])).toEqual([
        ["INFO", "silent run: the agent ended without a Discord reply; its text was posted as a reply (1 message(s))", "run-7"]
      ])
    }).pipe(Effect.provide(h.layer), Effect.provide(capture(lines)))
  })

  it.effect("typing has stopped when the reply is posted", () => {
    const h = makeHarness({
      run: (request) => Effect.as(Effect.sleep(Duration.seconds(20)), silentReport(request.agentId, ["late answer"]))
    })
    return Effect.gen(function*() {
      const { dispatch } = yield* makeDispatcher({ retrySchedule })
      const fiber = yield* Effect.fork(dispatch(event("m1")))
      yield* settle
      yield* TestClock.adjust(Duration.seconds(20))
      expect(yield* Fiber.join(fiber)).toEqual(DispatchOutcome.done)
      expect(h.typed.map((typing) => typing.at)).toEqual([grace, grace + 8_000, grace + 16_000])
      expect(h.posts.map((post) => post.at)).toEqual([20_000])
      yield* TestClock.adjust(Duration.seconds(30))
      expect(h.typed).toHaveLength(3)
    }).pipe(Effect.provide(h.layer))
  })

  it.effect("a long text goes out as at most 3 messages, in order, one nonce each, the last one marked", () => {
    const h = makeHarness({ run: (request) => Effect.succeed(silentReport(request.agentId, ["@everyone ".repeat(10_000)])) })
    return Effect.gen(function*() {
      const { dispatch } = yield* makeDispatcher({ retrySchedule })
      yield* dispatch(event("1300000000000000001"))
      expect(h.posts.map((post) => post.nonce)).toEqual([
        "1300000000000000001.0",
        "1300000000000000001.1",
        "1300000000000000001.2"
      ])
      for (const post of h.posts) expect(post.content.length).toBeLessThanOrEqual(2000)
      expect(h.posts[2]!.content.endsWith(cutMarker)).toBe(true)
      expect(h.log.filter((line) => line.startsWith("fallbackRecorded"))).toHaveLength(1)
    }).pipe(Effect.provide(h.layer))
  })

  it.effect("never when the agent called discord_send (or reacted), whatever it wrote", () => {
    const h = makeHarness({
      run: (request, call) =>
        Effect.succeed({
          ...silentReport(request.agentId, ["I replied in the channel."]),
          toolCalls: [
            toolCall("discord_read_messages", "t0"),
            toolCall(call === 1 ? "discord_send" : "discord_add_reaction", "t1")
          ]
        })
    })
    const lines: Array<Line> = []
    return Effect.gen(function*() {
      const before = yield* silentRuns
      const { dispatch } = yield* makeDispatcher({ retrySchedule })
      expect(yield* dispatch(event("m1"))).toEqual(DispatchOutcome.done)
      expect(yield* dispatch(event("m2"))).toEqual(DispatchOutcome.done)
      expect(h.posts).toEqual([])
      expect(h.log.filter((line) => line.startsWith("fallbackRecorded"))).toEqual([])
      expect(yield* since(before)).toEqual({ posted: 0, none: 0, failed: 0 })
      expect(silentLines(lines)).toEqual([])
    }).pipe(Effect.provide(h.layer), Effect.provide(capture(lines)))
  })

  it.effect("fallback off: nothing posted, a warning with the run id, counted none", () => {
    const h = makeHarness({
      settings: { fallback: "off" },
      run: (request) => Effect.succeed(silentReport(request.agentId, ["An answer nobody will see."], "run-off"))
    })
    const lines: Array<Line> = []
    return Effect.gen(function*() {
      const before = yield* silentRuns
      const { dispatch } = yield* makeDispatcher({ retrySchedule })
      expect(yield* dispatch(event("m1"))).toEqual(DispatchOutcome.done)
      expect(h.posts).toEqual([])
      expect(h.log.filter((line) => line.startsWith("fallbackRecorded"))).toEqual([])
      expect(yield* since(before)).toEqual({ posted: 0, none: 1, failed: 0 })
      expect(silentLines(lines).map((line) => [line.level, line.message, line.annotations["runId"]])).toEqual([
        ["WARN", "silent run: the agent ended without a Discord reply; fallback is off, so its text was not posted", "run-off"]
      ])
    }).pipe(Effect.provide(h.layer), Effect.provide(capture(lines)))
  })

  it.effect("no text (send_message and memory tools only): nothing posted, a warning, counted none", () => {
    const h = makeHarness({
      run: (request) =>
        Effect.succeed({
          ...silentReport(request.agentId, [" "]),
          toolCalls: [toolCall("core_memory_append", "t1"), toolCall("send_message", "t2")]
        })
    })
    const lines: Array<Line> = []
    return Effect.gen(function*() {
      const before = yield* silentRuns
      const { dispatch } = yield* makeDispatcher({ retrySchedule })
      yield* dispatch(event("m1"))
      expect(h.posts).toEqual([])
      expect(yield* since(before)).toEqual({ posted: 0, none: 1, failed: 0 })
      expect(silentLines(lines).map((line) => [line.level, line.message])).toEqual([
        ["WARN", "silent run: the agent ended without a Discord reply and without text; nothing was posted"]
      ])
    }).pipe(Effect.provide(h.layer), Effect.provide(capture(lines)))
  })

  it.effect("a post Discord refuses: one warning with the run id, counted failed, the rest not posted, never retried, the event done", () => {
    const h = makeHarness({
      run: (request) => Effect.succeed(silentReport(request.agentId, [`${"a".repeat(1500)}\n${"b".repeat(1500)}`], "run-403")),
      post: (reply, call) =>
        call === 1 ? Effect.fail(new MissingAccess({ channelId: reply.channelId, operation: "postReply" })) : Effect.succeed("x")
    })
    const lines: Array<Line> = []
    return Effect.gen(function*() {
      const before = yield* silentRuns
      const { dispatch } = yield* makeDispatcher({ retrySchedule })
      expect(yield* dispatch(event("m1"))).toEqual(DispatchOutcome.done)
      yield* TestClock.adjust(Duration.minutes(5))
      expect(h.posts.map((post) => post.nonce)).toEqual(["m1.0"])
      expect(yield* since(before)).toEqual({ posted: 0, none: 0, failed: 1 })
      expect(silentLines(lines).map((line) => [line.level, line.message, line.annotations["runId"]])).toEqual([
        [
          "WARN",
          "silent run: Discord refused the fallback reply (MissingAccess: the bot may not post in this channel); " +
          "0 of 2 message(s) posted, not retried",
          "run-403"
        ]
      ])
      const letters = yield* Effect.flatMap(DeadLetters, (store) => store.list(Partition.guild("g1")))
      expect(letters.letters).toEqual([])
    }).pipe(Effect.provide(h.layer), Effect.provide(capture(lines)))
  })

  it.effect("a fallback that cannot be recorded first is not posted (a restart could post it again): counted failed", () => {
    const h = makeHarness({ failJournal: true, run: (request) => Effect.succeed(silentReport(request.agentId, ["text"])) })
    const lines: Array<Line> = []
    return Effect.gen(function*() {
      const before = yield* silentRuns
      const { dispatch } = yield* makeDispatcher({ retrySchedule })
      expect(yield* dispatch(event("m1"))).toEqual(DispatchOutcome.done)
      expect(h.posts).toEqual([])
      expect(yield* since(before)).toEqual({ posted: 0, none: 0, failed: 1 })
      expect(silentLines(lines).map((line) => line.level)).toEqual(["ERROR"])
    }).pipe(Effect.provide(h.layer), Effect.provide(capture(lines)))
  })

  it.effect("a direct message uses the default setting (post)", () => {
    const h = makeHarness({
      // The guild's settings say off; a DM has none and takes the defaults.
      settings: { fallback: "off" },
      run: (request) => Effect.succeed(silentReport(request.agentId, ["hello in private"]))
    })
    return Effect.gen(function*() {
      const { dispatch } = yield* makeDispatcher({ retrySchedule })
      yield* dispatch(event("m1", { guildId: null, channelId: "dm-1", trigger: "dm" }))
      expect(h.posts.map((post) => [post.channelId, post.replyTo, post.content])).toEqual([["dm-1", "m1", "hello in private"]])
    }).pipe(Effect.provide(h.layer))
  })

  it.effect("a run that failed (max_steps, after writing text) is never followed by a fallback", () => {
    const h = makeHarness({
      run: (request) =>
        Effect.fail(
          new RunFailed({ agentId: request.agentId, sideEffect: false, reason: "stop reason max_steps", stopReason: "max_steps" })
        )
    })
    return Effect.gen(function*() {
      const before = yield* silentRuns
      const { dispatch } = yield* makeDispatcher({ retrySchedule })
      expect(yield* dispatch(event("m1"))).toEqual(DispatchOutcome.done)
      expect(h.posts).toEqual([])
      expect(yield* since(before)).toEqual({ posted: 0, none: 0, failed: 0 })
    }).pipe(Effect.provide(h.layer))
  })
})
