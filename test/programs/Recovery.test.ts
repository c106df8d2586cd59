/**
 * Start-up recovery: the pure classifier of one journal entry, and `recover` against the memory
 * journal, the memory dead-letter store, a real EventQueue and a fake executor, under TestClock.
 */
import { defaultGlobalSettings } from "../../src/domain/Settings.js"
import { describe, expect, it } from "@effect/vitest"
import { Context, Duration, Effect, Exit, Fiber, Layer, Metric, MetricState, TestClock } from "effect"
import { StorageError } from "../../src/domain/Errors.js"
import { Partition, type QueuedEvent } from "../../src/domain/Event.js"
import { recover, RecoveryFailed } from "../../src/programs/Recovery.js"
import { classify, waitingDetail } from "../../src/programs/recovery/Classify.js"
import { makeMemoryOpenStops, OpenStops, type OpenStopsService } from "../../src/services/queue/OpenStops.js"
import { DeadLetters, type DeadLettersService, makeMemoryDeadLetters } from "../../src/services/queue/DeadLetters.js"
import {
  EventJournal,
  type EventJournalService,
  type JournalEntry,
  makeMemoryJournal
} from "../../src/services/queue/EventJournal.js"
import { DispatchOutcome, EventQueue } from "../../src/services/queue/EventQueue.js"
import { QueuePolicy } from "../../src/services/queue/QueuePolicy.js"
import { LettaExecutor } from "../../src/services/letta/LettaExecutor.js"
import { makeMemoryRunLog, RunLog, type RunLogService } from "../../src/services/queue/RunLog.js"
import { configFrom } from "../fakes/config.js"
import { captureLogs, type LogLine } from "../fakes/logs.js"
import { event } from "../services/queue/harness.js"
import { type ReactionCall, recordingFeedback } from "../fakes/reactions.js"
import { Feedback } from "../../src/services/discord/Feedback.js"
import { defaultGuildState, SettingsStore } from "../../src/services/storage/SettingsStore.js"
import { defaultGuildSettings } from "../../src/domain/Settings.js"

const hour = 3_600_000
/** Every test starts its clock here, so that events can be hours old. */
const now = 10 * hour

const pending = (e: QueuedEvent): JournalEntry => ({ event: e, run: null })
const started = (e: QueuedEvent, runId: string | null, sideEffect = false): JournalEntry => ({
  event: e,
  run: { startedAt: now - 1_000, runId, sideEffect }
})

const deadLetterCount = (reason: string) =>
  Effect.map(Metric.snapshot, (pairs) => {
    const pair = pairs.find((p) =>
      p.metricKey.name === "aurora_dead_letters_total" && p.metricKey.tags.some((t) => t.key === "reason" && t.value === reason)
    )
    return pair !== undefined && MetricState.isCounterState(pair.metricState) ? Number(pair.metricState.count) : 0
  })

describe("classify (one journal entry at start-up)", () => {
  it("a run that had acted is dead-lettered interrupted-after-reply, naming its run, which is to be cancelled", () => {
    const e = event("m1", { enqueuedAt: now - 5_000, attempts: 1 })
    expect(classify(started(e, "r1", true), now, hour)).toEqual({
      _tag: "DeadLetter",
      letter: {
        event: e,
        reason: "interrupted-after-reply",
        errorType: null,
        detail: "run r1 was cut off by a restart after the agent acted",
        attempts: 2,
        failedAt: now
      },
      cancelRunId: "r1"
    })
  })

  it("a side effect wins over age, and over an earlier interruption", () => {
    const old = event("m1", { enqueuedAt: now - 2 * hour, interruptions: 1 })
    const verdict = classify(started(old, "r1", true), now, hour)
    expect(verdict._tag === "DeadLetter" && verdict.letter.reason).toBe("interrupted-after-reply")
  })

  it("expired only past AURORA_MAX_EVENT_AGE: exactly the limit is replayed, 1 ms more is not", () => {
    const atLimit = event("m1", { enqueuedAt: now - hour })
    expect(classify(pending(atLimit), now, hour)).toEqual({ _tag: "Replay", event: atLimit, rewrite: false })
    const over = event("m2", { enqueuedAt: now - hour - 1 })
    expect(classify(pending(over), now, hour)).toEqual({
      _tag: "DeadLetter",
      letter: {
        event: over,
        reason: "expired",
        errorType: null,
        detail: "pending for 1h 1ms at restart (limit 1h)",
        attempts: 0,
        failedAt: now
      },
      cancelRunId: null
    })
  })

  it("an expired event whose run had started (no side effect) is dead-lettered expired, its run to be cancelled", () => {
    const verdict = classify(started(event("m1", { enqueuedAt: now - 2 * hour }), "r1"), now, hour)
    expect(verdict._tag).toBe("DeadLetter")
    if (verdict._tag === "DeadLetter") {
      expect(verdict.letter.reason).toBe("expired")
      expect(verdict.letter.attempts).toBe(1)
      expect(verdict.cancelRunId).toBe("r1")
    }
  })

  it("a run cut off before acting is replayed once, carrying its run id and one interruption", () => {
    const e = event("m1", { enqueuedAt: now - 5_000, attempts: 1 })
    expect(classify(started(e, "r1"), now, hour)).toEqual({
      _tag: "Replay",
      event: { ...e, interruptions: 1, interruptedRunId: "r1" },
      rewrite: true
    })
    // Without a run id there is nothing to cancel, and no stale id is carried over.
    const replay = classify(started(e, null), now, hour)
    expect(replay).toEqual({ _tag: "Replay", event: { ...e, interruptions: 1 }, rewrite: true })
    expect(replay._tag === "Replay" && "interruptedRunId" in replay.event).toBe(false)
  })

  it("a run cut off before acting for the second time is dead-lettered interrupted", () => {
    const e = event("m1", { enqueuedAt: now - 5_000, interruptions: 1, interruptedRunId: "r1" })
    expect(classify(started(e, "r2"), now, hour)).toEqual({
      _tag: "DeadLetter",
      letter: {
        event: e,
        reason: "interrupted",
        errorType: null,
        detail: "run r2 was cut off by a restart before the agent acted, for the second time",
        attempts: 1,
        failedAt: now
      },
      cancelRunId: "r2"
    })
  })

  it("a run cut off in a conversation is replayed with that conversation to cancel through; a stale one is dropped", () => {
    const e = event("m1", { enqueuedAt: now - 5_000, conversationMode: "channel" })
    const run = { startedAt: now - 1_000, runId: "r1", sideEffect: false, conversationId: "conv-1" }
    expect(classify({ event: e, run }, now, hour)).toEqual({
      _tag: "Replay",
      event: { ...e, interruptions: 1, interruptedRunId: "r1", interruptedConversationId: "conv-1" },
      rewrite: true
    })
    // An earlier interruption's conversation is not carried into a replay whose run had none.
    const earlier = event("m2", { enqueuedAt: now - 5_000, interruptedRunId: "r0", interruptedConversationId: "conv-0" })
    expect(classify(started(earlier, "r1"), now, hour)).toEqual({
      _tag: "Replay",
      event: { ...event("m2", { enqueuedAt: now - 5_000 }), interruptions: 1, interruptedRunId: "r1" },
      rewrite: true
    })
  })

  it("a dead letter keeps the conversation its cut-off run went to", () => {
    const e = event("m1", { enqueuedAt: now - 5_000, conversationMode: "channel" })
    const run = { startedAt: now - 1_000, runId: "r1", sideEffect: true, conversationId: "conv-1" }
    const verdict = classify({ event: e, run }, now, hour)
    expect(verdict._tag === "DeadLetter" && verdict.letter).toMatchObject({
      reason: "interrupted-after-reply",
      conversationId: "conv-1"
    })
    const shared = classify(started(e, "r1", true), now, hour)
    expect(shared._tag === "DeadLetter" && "conversationId" in shared.letter).toBe(false)
  })

  it("a recorded fallback finishes the entry: not replayed, not dead-lettered, whatever else is true of it", () => {
    const e = event("m1", { enqueuedAt: now - 5_000, attempts: 1 })
    const run = { startedAt: now - 1_000, runId: "r1", sideEffect: false, fallbackAt: now - 500 }
    expect(classify({ event: e, run }, now, hour)).toEqual({ _tag: "Finished", event: e, runId: "r1" })
    // Older than AURORA_MAX_EVENT_AGE, interrupted once already, or with a side effect: finished all the same.
    const old = event("m2", { enqueuedAt: now - 2 * hour, interruptions: 1 })
    expect(classify({ event: old, run: { ...run, runId: null, sideEffect: true } }, now, hour)).toEqual({
      _tag: "Finished",
      event: old,
      runId: null
    })
  })

  it("an event that never started is replayed as it is (an earlier interruption included)", () => {
    const e = event("m1", { enqueuedAt: now - 5_000, interruptions: 1, interruptedRunId: "r1" })
    expect(classify(pending(e), now, hour)).toEqual({ _tag: "Replay", event: e, rewrite: false })
  })
})

interface Setup {
  readonly journal: EventJournalService
  /** The open stops a previous process left (seed them before `restart`). */
  readonly stops: OpenStopsService
  readonly deadLetters: DeadLettersService
  readonly runLog: RunLogService
  /** Cancels of the fake executor: "agent:run" (cancelRun), "conversation:<id>" (cancelConversation). */
  readonly cancels: Array<string>
  /** Feedback reactions sent; read after `feedbackIdle`. */
  readonly reactions: ReadonlyArray<ReactionCall>
  readonly feedbackIdle: Effect.Effect<void>
}

/**
 * The memory stores, an executor whose cancels record (or never answer), and Feedback over
 * recording reactions (every guild's `feedback` setting is `feedback`, default on), living as
 * long as the test's scope.
 */
const makeSetup = (
  options: { readonly cancel?: "records" | "hangs"; readonly feedback?: boolean; readonly failRunLog?: boolean } = {}
) =>
  Effect.gen(function*() {
    const settings = Layer.mock(SettingsStore, {
      _tag: "aurora/SettingsStore",
      currentGlobal: () => defaultGlobalSettings,
      guild: (guildId: string) =>
        Effect.succeed({
          ...defaultGuildState(guildId),
          settings: { ...defaultGuildSettings, feedback: options.feedback ?? true }
        })
    })
    const recording = recordingFeedback()
    const feedback = Context.get(yield* Layer.build(recording.layer.pipe(Layer.provide(settings))), Feedback)
    const memory = yield* makeMemoryJournal
    const deadLetters = yield* makeMemoryDeadLetters
    const stops = yield* makeMemoryOpenStops
    const memoryRunLog = yield* makeMemoryRunLog()
    const runLog: RunLogService = options.failRunLog === true
      ? { ...memoryRunLog, record: () => Effect.fail(new StorageError({ operation: "RunLog.record", reason: "disk full" })) }
      : memoryRunLog
    const cancels: Array<string> = []
    const executor = Layer.mock(LettaExecutor, {
      _tag: "aurora/LettaExecutor",
      cancelRun: (agentId: string, runId: string) =>
        options.cancel === "hangs"
          ? Effect.never
          : Effect.sync(() => {
            cancels.push(`${agentId}:${runId}`)
            return true
          }),
      cancelConversation: (conversationId: string) =>
        options.cancel === "hangs"
          ? Effect.never
          : Effect.sync(() => {
            cancels.push(`conversation:${conversationId}`)
            return true
          })
    })
    /** A fresh queue over the same journal, as after a restart; `recover` runs on it. */
    const restart = (config: Record<string, string> = {}, openStops: OpenStopsService = stops) =>
      Effect.gen(function*() {
        const queue = yield* EventQueue.make().pipe(
          Effect.provide(QueuePolicy.layerFixed({ capacity: 2, spacing: 0 })),
          Effect.provideService(EventJournal, memory.journal)
        )
        const summary = yield* recover.pipe(
          Effect.provideService(EventQueue, queue),
          Effect.provide(configFrom(config))
        )
        return { queue, summary }
      }).pipe(
        Effect.provideService(EventJournal, memory.journal),
        Effect.provideService(DeadLetters, deadLetters),
        Effect.provideService(RunLog, runLog),
        Effect.provideService(Feedback, feedback),
        Effect.provideService(OpenStops, openStops),
        Effect.provide(executor)
      )
    const seed = (entries: ReadonlyArray<JournalEntry>) =>
      Effect.forEach(entries, ({ event: e, run }) =>
        Effect.gen(function*() {
          yield* memory.journal.append(e)
          if (run === null) return
          yield* memory.journal.runStarted(e.messageId, run.startedAt)
          if (run.runId !== null) yield* memory.journal.runIdSeen(e.messageId, run.runId, run.conversationId)
          if (run.sideEffect) yield* memory.journal.sideEffectSeen(e.messageId)
          if (run.fallbackAt !== undefined) yield* memory.journal.fallbackRecorded(e.messageId, run.fallbackAt)
        }), { discard: true })
    const setup: Setup = {
      journal: memory.journal,
      stops,
      deadLetters,
      runLog,
      cancels,
      reactions: recording.calls,
      feedbackIdle: feedback.idle
    }
    return { ...setup, restart, seed }
  })

/** Hands every ready event to a recording consumer until the queue has nothing left to start. */
const drain = (queue: Effect.Effect.Success<ReturnType<typeof EventQueue.make>>) =>
  Effect.gen(function*() {
    const seen: Array<QueuedEvent> = []
    const fiber = yield* Effect.fork(queue.consume((e) => Effect.sync(() => seen.push(e)).pipe(Effect.as(DispatchOutcome.done))))
    yield* Effect.repeatN(Effect.yieldNow(), 50)
    yield* TestClock.adjust(Duration.seconds(1))
    yield* Effect.repeatN(Effect.yieldNow(), 50)
    yield* Fiber.interrupt(fiber)
    return seen
  })

describe("classify: an entry whose run waits at an open stop (the take-up continues it)", () => {
  const inConversation = (e: QueuedEvent, sideEffect: boolean): JournalEntry => ({
    event: e,
    run: { startedAt: now - 1_000, runId: "r1", sideEffect, conversationId: "conv-1" }
  })

  it("the agent had not acted -> left to the take-up: not replayed, nothing to cancel", () => {
    const e = event("m1", { enqueuedAt: now - 5_000 })
    expect(classify(inConversation(e, false), now, hour, true)).toEqual({ _tag: "LeftToTakeUp", event: e })
    // Even when it is old: the take-up decides (its continuation may answer).
    const old = event("m2", { enqueuedAt: now - 2 * hour })
    expect(classify(inConversation(old, false), now, hour, true)).toEqual({ _tag: "LeftToTakeUp", event: old })
  })

  it("the agent had acted -> dead letter interrupted-after-reply, its run and conversation left running", () => {
    const e = event("m1", { enqueuedAt: now - 5_000, attempts: 1 })
    expect(classify(inConversation(e, true), now, hour, true)).toEqual({
      _tag: "DeadLetter",
      letter: {
        event: e,
        reason: "interrupted-after-reply",
        errorType: null,
        detail: "run r1 was cut off by a restart after the agent acted; its open stop is continued, not cancelled",
        attempts: 2,
        failedAt: now,
        conversationId: "conv-1"
      },
      cancelRunId: null,
      leftRunning: true
    })
  })

  it("a recorded fallback still comes first; without an open stop the rules are unchanged", () => {
    const e = event("m1", { enqueuedAt: now - 5_000 })
    const posted: JournalEntry = {
      event: e,
      run: { startedAt: now - 1_000, runId: "r1", sideEffect: false, fallbackAt: now - 500 }
    }
    expect(classify(posted, now, hour, true)).toEqual({ _tag: "Finished", event: e, runId: "r1" })
    expect(classify(inConversation(e, false), now, hour, false)).toMatchObject({ _tag: "Replay", rewrite: true })
    expect(classify(inConversation(e, true), now, hour, false)).toMatchObject({ _tag: "DeadLetter", cancelRunId: "r1" })
    expect(classify(inConversation(e, true), now, hour, false)).not.toHaveProperty("leftRunning")
  })
})

describe("recover (start-up)", () => {
  it.scoped("an entry whose fallback reply was recorded is removed with a warning: never replayed, posted or dead-lettered", () =>
    Effect.gen(function*() {
      yield* TestClock.setTime(now)
      const s = yield* makeSetup()
      const posted = event("f1", { enqueuedAt: now - 3_000 })
      const plain = event("p1", { enqueuedAt: now - 2_000 })
      yield* s.seed([{
        event: posted,
        run: { startedAt: now - 2_500, runId: "r-f1", sideEffect: false, fallbackAt: now - 2_000 }
      }])
      yield* s.seed([pending(plain)])
      const lines: Array<LogLine> = []
      const { queue, summary } = yield* s.restart().pipe(Effect.provide(captureLogs(lines)))
      expect(summary).toEqual({
        replayed: 1,
        expired: 0,
        interrupted: 0,
        interruptedAfterReply: 0,
        fallbackRecorded: 1,
        leftToTakeUp: 0
      })
      expect(lines.filter((line) => line.level === "WARN").map((line) => line.message)).toEqual([
        "recovery: the fallback reply was recorded before the restart; not posted again"
      ])
      expect((yield* s.journal.load).map((entry) => entry.event.messageId)).toEqual(["p1"])
      expect((yield* s.deadLetters.list(Partition.guild("g1"))).letters).toEqual([])
      expect(s.cancels).toEqual([])
      expect((yield* drain(queue)).map((e) => e.messageId)).toEqual(["p1"])
    }))

  it.scoped("replays, dead-letters and cancels per entry; replays keep the journal's order", () =>
    Effect.gen(function*() {
      yield* TestClock.setTime(now)
      const s = yield* makeSetup()
      // Journal order is not enqueuedAt order here, so only the journal's order explains the result.
      const plain1 = event("p1", { enqueuedAt: now - 3_000 })
      const acted = event("a1", { enqueuedAt: now - 2_000, agentId: "agent-x" })
      const cut = event("c1", { enqueuedAt: now - 9_000 })
      const old = event("o1", { enqueuedAt: now - 2 * hour })
      const twice = event("t1", { enqueuedAt: now - 1_000, interruptions: 1, interruptedRunId: "r-old" })
      const plain2 = event("p2", { enqueuedAt: now - 8_000 })
      yield* s.seed([
        pending(plain1),
        started(acted, "r-acted", true),
        started(cut, "r-cut"),
        pending(old),
        started(twice, "r-twice"),
        pending(plain2)
      ])
      const before = {
        expired: yield* deadLetterCount("expired"),
        interrupted: yield* deadLetterCount("interrupted"),
        afterReply: yield* deadLetterCount("interrupted-after-reply")
      }

      const { queue, summary } = yield* s.restart()
      expect(summary).toEqual({
        replayed: 3,
        expired: 1,
        interrupted: 1,
        interruptedAfterReply: 1,
        fallbackRecorded: 0,
        leftToTakeUp: 0
      })

      const letters = yield* s.deadLetters.list(Partition.guild("g1"))
      expect(letters.letters.map((l) => [l.event.messageId, l.reason])).toEqual(
        expect.arrayContaining([["a1", "interrupted-after-reply"], ["o1", "expired"], ["t1", "interrupted"]])
      )
      expect(letters.total).toBe(3)
      expect({
        expired: yield* deadLetterCount("expired"),
        interrupted: yield* deadLetterCount("interrupted"),
        afterReply: yield* deadLetterCount("interrupted-after-reply")
      }).toEqual({ expired: before.expired + 1, interrupted: before.interrupted + 1, afterReply: before.afterReply + 1 })

      // The journal keeps only the replayed events; the interrupted one carries its interruption.
      const entries = yield* s.journal.load
      expect(entries).toEqual([
        { event: plain1, run: null },
        { event: { ...cut, interruptions: 1, interruptedRunId: "r-cut" }, run: null },
        { event: plain2, run: null }
      ])

      // Cancels run in the background.
      yield* Effect.repeatN(Effect.yieldNow(), 20)
      expect([...s.cancels].sort()).toEqual(["a1:r-twice", "agent-x:r-acted"])

      // Restored beyond the capacity (2), in journal order within the channel.
      const stats = yield* queue.stats
      expect(stats.partitions.map((p) => p.pending)).toEqual([3])
      expect((yield* drain(queue)).map((e) => e.messageId)).toEqual(["p1", "c1", "p2"])
    }))

  it.scoped("an event cut off twice before acting is replayed once, then dead-lettered interrupted", () =>
    Effect.gen(function*() {
      yield* TestClock.setTime(now)
      const s = yield* makeSetup()
      yield* s.seed([started(event("m1", { enqueuedAt: now - 1_000 }), "r1")])
      const first = yield* s.restart()
      expect(first.summary.replayed).toBe(1)
      expect(s.cancels).toEqual([])
      // The replay is dispatched and cut off again, before the agent acts.
      yield* s.journal.runStarted("m1", now + 500)
      yield* s.journal.runIdSeen("m1", "r2")
      const second = yield* s.restart()
      expect(second.summary).toEqual({
        replayed: 0,
        expired: 0,
        interrupted: 1,
        interruptedAfterReply: 0,
        fallbackRecorded: 0,
        leftToTakeUp: 0
      })
      const letter = yield* s.deadLetters.find(Partition.guild("g1"), "m1")
      expect(letter?.reason).toBe("interrupted")
      expect(letter?.event.interruptedRunId).toBe("r1")
      expect(yield* s.journal.load).toEqual([])
      yield* Effect.repeatN(Effect.yieldNow(), 20)
      expect(s.cancels).toEqual(["a1:r2"])
    }))

  it.scoped("a run cut off in a conversation is restored carrying interruptedConversationId, journal included", () =>
    Effect.gen(function*() {
      yield* TestClock.setTime(now)
      const s = yield* makeSetup()
      const e = event("m1", { enqueuedAt: now - 1_000, conversationMode: "channel" })
      yield* s.seed([{ event: e, run: { startedAt: now - 500, runId: "r1", sideEffect: false, conversationId: "conv-1" } }])
      const { queue, summary } = yield* s.restart()
      expect(summary.replayed).toBe(1)
      const replayed = { ...e, interruptions: 1, interruptedRunId: "r1", interruptedConversationId: "conv-1" }
      expect(yield* s.journal.load).toEqual([{ event: replayed, run: null }])
      expect(yield* drain(queue)).toEqual([replayed])
    }))

  it.scoped("a dead-lettered run in a conversation is cancelled through it before the replays are queued, not in the background", () =>
    Effect.gen(function*() {
      yield* TestClock.setTime(now)
      const s = yield* makeSetup()
      const acted = event("m1", { enqueuedAt: now - 2_000, conversationMode: "channel" })
      const next = event("m2", { enqueuedAt: now - 1_000, conversationMode: "channel" })
      yield* s.seed([
        { event: acted, run: { startedAt: now - 1_500, runId: "r1", sideEffect: true, conversationId: "conv-1" } },
        pending(next)
      ])
      const { queue, summary } = yield* s.restart()
      expect(summary).toEqual({
        replayed: 1,
        expired: 0,
        interrupted: 0,
        interruptedAfterReply: 1,
        fallbackRecorded: 0,
        leftToTakeUp: 0
      })
      // Done when recovery returns (no yield in between): a replayed event of the channel can only
      // be sent to the conversation after its cancel, which would otherwise stop that run instead.
      expect(s.cancels).toEqual(["conversation:conv-1"])
      const letter = yield* s.deadLetters.find(Partition.guild("g1"), "m1")
      expect(letter).toMatchObject({ reason: "interrupted-after-reply", conversationId: "conv-1" })
      expect((yield* drain(queue)).map((e) => e.messageId)).toEqual(["m2"])
    }))

  it.scoped("a conversation's cancel that never answers holds the start for at most the cancel timeout", () =>
    Effect.gen(function*() {
      yield* TestClock.setTime(now)
      const s = yield* makeSetup({ cancel: "hangs" })
      const acted = event("m1", { enqueuedAt: now - 2_000, conversationMode: "channel" })
      yield* s.seed([{ event: acted, run: { startedAt: now - 1_500, runId: "r1", sideEffect: true, conversationId: "conv-1" } }])
      const restarted = yield* Effect.fork(s.restart())
      yield* TestClock.adjust(Duration.millis(4_999))
      expect(restarted.unsafePoll()).toBeNull()
      yield* TestClock.adjust(Duration.millis(1))
      expect((yield* Fiber.join(restarted)).summary.interruptedAfterReply).toBe(1)
    }))

  it.scoped("AURORA_MAX_EVENT_AGE sets the limit", () =>
    Effect.gen(function*() {
      yield* TestClock.setTime(now)
      const s = yield* makeSetup()
      yield* s.seed([
        pending(event("m1", { enqueuedAt: now - 10 * 60_000 - 1 })),
        pending(event("m2", { enqueuedAt: now - 10 * 60_000 }))
      ])
      const { summary } = yield* s.restart({ AURORA_MAX_EVENT_AGE: "10 minutes" })
      expect(summary).toEqual({
        replayed: 1,
        expired: 1,
        interrupted: 0,
        interruptedAfterReply: 0,
        fallbackRecorded: 0,
        leftToTakeUp: 0
      })
      expect((yield* s.journal.load).map((e) => e.event.messageId)).toEqual(["m2"])
    }))

  it.scoped("a cancel that never answers does not hold up the start", () =>
    Effect.gen(function*() {
      yield* TestClock.setTime(now)
      const s = yield* makeSetup({ cancel: "hangs" })
      yield* s.seed([started(event("m1", { enqueuedAt: now - 1_000 }), "r1", true), pending(event("m2", { enqueuedAt: now }))])
      const { summary } = yield* s.restart()
      expect(summary).toEqual({
        replayed: 1,
        expired: 0,
        interrupted: 0,
        interruptedAfterReply: 1,
        fallbackRecorded: 0,
        leftToTakeUp: 0
      })
    }))

  it.scoped("runs cut off by the restart go to the runs log: interrupted, or dead-lettered when expired; not the others", () =>
    Effect.gen(function*() {
      yield* TestClock.setTime(now)
      const s = yield* makeSetup()
      const inConversation = event("a1", { enqueuedAt: now - 3_000, conversationMode: "channel" })
      yield* s.seed([
        { event: inConversation, run: { startedAt: now - 2_500, runId: "r-acted", sideEffect: true, conversationId: "conv-1" } },
        started(event("t1", { enqueuedAt: now - 2_000, interruptions: 1 }), null),
        started(event("o1", { enqueuedAt: now - 2 * hour }), "r-old"),
        pending(event("o2", { enqueuedAt: now - 2 * hour })),
        started(event("c1", { enqueuedAt: now - 1_000 }), "r-cut"),
        pending(event("p1", { enqueuedAt: now - 500 }))
      ])
      yield* s.restart()
      const runs = yield* s.runLog.recent(Partition.guild("g1"), 100)
      const base = { guildId: "g1", channelId: "c1", toolCalls: [], durationMs: null, finishedAt: now }
      expect(runs).toEqual(expect.arrayContaining([
        {
          ...base,
          messageId: "a1",
          outcome: "interrupted",
          runId: "r-acted",
          conversationId: "conv-1",
          queuedMs: 500,
          detail: "interrupted-after-reply: run r-acted was cut off by a restart after the agent acted"
        },
        {
          ...base,
          messageId: "t1",
          outcome: "interrupted",
          runId: null,
          conversationId: null,
          queuedMs: 1_000,
          detail: "interrupted: a run (no run id seen) was cut off by a restart before the agent acted, for the second time"
        },
        {
          ...base,
          messageId: "o1",
          outcome: "dead-lettered",
          runId: "r-old",
          conversationId: null,
          queuedMs: 2 * hour - 1_000,
          detail: "expired: pending for 2h at restart (limit 1h)"
        }
      ]))
      // Never started (o2), or replayed to run again (c1, p1): not runs that ended.
      expect(runs.map((r) => r.messageId).sort()).toEqual(["a1", "o1", "t1"])
    }))

  it.scoped("a runs log that cannot be written does not stop the start", () =>
    Effect.gen(function*() {
      yield* TestClock.setTime(now)
      const s = yield* makeSetup({ failRunLog: true })
      yield* s.seed([started(event("a1", { enqueuedAt: now - 2_000 }), "r1", true), pending(event("p1", { enqueuedAt: now }))])
      const { summary } = yield* s.restart()
      expect(summary).toEqual({
        replayed: 1,
        expired: 0,
        interrupted: 0,
        interruptedAfterReply: 1,
        fallbackRecorded: 0,
        leftToTakeUp: 0
      })
      expect((yield* s.deadLetters.find(Partition.guild("g1"), "a1"))?.reason).toBe("interrupted-after-reply")
    }))

  it.scoped("every dead letter at start-up gets ⚠️ on its message (expired, interrupted, after reply); replays none", () =>
    Effect.gen(function*() {
      yield* TestClock.setTime(now)
      const s = yield* makeSetup()
      yield* s.seed([
        pending(event("p1", { enqueuedAt: now - 3_000 })),
        started(event("a1", { enqueuedAt: now - 2_000, channelId: "c2" }), "r-acted", true),
        started(event("c1", { enqueuedAt: now - 9_000 }), "r-cut"),
        pending(event("o1", { enqueuedAt: now - 2 * hour, guildId: null, channelId: "dm-1" })),
        started(event("t1", { enqueuedAt: now - 1_000, interruptions: 1 }), "r-twice")
      ])
      yield* s.restart()
      yield* s.feedbackIdle
      expect(s.reactions.map((r) => [r.channelId, r.messageId, r.emoji])).toEqual([
        ["c2", "a1", "\u26A0\uFE0F"],
        ["dm-1", "o1", "\u26A0\uFE0F"],
        ["c1", "t1", "\u26A0\uFE0F"]
      ])
    }))

  it.scoped("`feedback` false: dead-lettered at start-up without a reaction", () =>
    Effect.gen(function*() {
      yield* TestClock.setTime(now)
      const s = yield* makeSetup({ feedback: false })
      yield* s.seed([pending(event("o1", { enqueuedAt: now - 2 * hour }))])
      const { summary } = yield* s.restart()
      yield* s.feedbackIdle
      expect(summary.expired).toBe(1)
      expect(s.reactions).toEqual([])
    }))

  it.scoped("an empty journal restores nothing", () =>
    Effect.gen(function*() {
      const s = yield* makeSetup()
      const { queue, summary } = yield* s.restart()
      expect(summary).toEqual({
        replayed: 0,
        expired: 0,
        interrupted: 0,
        interruptedAfterReply: 0,
        fallbackRecorded: 0,
        leftToTakeUp: 0
      })
      expect((yield* queue.stats).partitions).toEqual([])
    }))

  it.scoped("a journal that cannot be read stops the start with a message naming the problem", () =>
    Effect.gen(function*() {
      const deadLetters = yield* makeMemoryDeadLetters
      const memory = yield* makeMemoryJournal
      const broken: EventJournalService = {
        ...memory.journal,
        load: Effect.fail(new StorageError({ operation: "EventJournal.load", reason: "SQLITE_IOERR: disk I/O error" }))
      }
      const queue = yield* EventQueue.make().pipe(
        Effect.provide(QueuePolicy.layerFixed({ capacity: 50, spacing: 0 })),
        Effect.provideService(EventJournal, broken)
      )
      const exit = yield* recover.pipe(
        Effect.provideService(EventJournal, broken),
        Effect.provideService(DeadLetters, deadLetters),
        Effect.provideService(RunLog, yield* makeMemoryRunLog()),
        Effect.provideService(EventQueue, queue),
        Effect.provide(OpenStops.layerMemory),
        Effect.provide(Layer.mock(LettaExecutor, { _tag: "aurora/LettaExecutor" })),
        Effect.provide(Layer.mock(Feedback, { _tag: "aurora/Feedback" })),
        Effect.provide(configFrom()),
        Effect.exit
      )
      expect(Exit.isFailure(exit)).toBe(true)
      if (Exit.isFailure(exit)) {
        const error = exit.cause._tag === "Fail" ? exit.cause.error : undefined
        expect(error).toBeInstanceOf(RecoveryFailed)
        expect(error?.message).toBe(
          "cannot recover the pending events: could not read the event journal " +
            "(EventJournal.load: SQLITE_IOERR: disk I/O error); not starting, so that no pending event is lost"
        )
      }
    }))
})

describe("recover: entries whose run waits at an open stop", () => {
  const stopFor = (messageId: string, conversationId: string) => ({
    key: `k-${messageId}`,
    origin: { guildId: "g1", channelId: "c1", messageId, agentId: "a1", conversationId, runId: `r-${messageId}` },
    calls: [{ name: "discord_read_messages", arguments: "{}", toolCallId: `k-${messageId}`, aurora: true }],
    actionsBefore: [],
    openedAt: now - 1_000
  })
  const inConversation = (e: QueuedEvent, conversationId: string, sideEffect: boolean): JournalEntry => ({
    event: e,
    run: { startedAt: now - 1_500, runId: `r-${e.messageId}`, sideEffect, conversationId }
  })

  it.scoped("are left to the take-up (unacted) or dead-lettered without a cancel (acted); the others as before", () =>
    Effect.gen(function*() {
      yield* TestClock.setTime(now)
      const s = yield* makeSetup()
      const waiting = event("w1", { enqueuedAt: now - 3_000 })
      const actedAtStop = event("s1", { enqueuedAt: now - 2_500 })
      const acted = event("x1", { enqueuedAt: now - 2_000 })
      const cut = event("c1", { enqueuedAt: now - 1_800 })
      const seeded = [
        inConversation(waiting, "conv-w", false),
        inConversation(actedAtStop, "conv-s", true),
        inConversation(acted, "conv-x", true),
        inConversation(cut, "conv-c", false)
      ]
      yield* s.seed(seeded)
      yield* s.stops.open(stopFor("w1", "conv-w"))
      yield* s.stops.open(stopFor("s1", "conv-s"))
      const { queue, summary } = yield* s.restart()
      expect(summary).toEqual({
        replayed: 1,
        expired: 0,
        interrupted: 0,
        interruptedAfterReply: 2,
        fallbackRecorded: 0,
        leftToTakeUp: 1
      })
      // Only the run without an open stop is cancelled; the replayed one is cancelled by its dispatch.
      expect(s.cancels).toEqual(["conversation:conv-x"])
      // The entry left to the take-up is untouched (its run progress kept); the replayed one rewritten.
      const journal = yield* s.journal.load
      expect(journal.map((entry) => entry.event.messageId)).toEqual(["w1", "c1"])
      expect(journal[0]).toEqual(seeded[0])
      expect(journal[1]?.event).toMatchObject({ interruptions: 1, interruptedConversationId: "conv-c" })
      const letters = (yield* s.deadLetters.list(Partition.guild("g1"))).letters
      expect(letters.map((l) => [l.event.messageId, l.reason]).sort()).toEqual([
        ["s1", "interrupted-after-reply"],
        ["x1", "interrupted-after-reply"]
      ])
      // Only the replayed event reaches the queue: the waiting one is never sent again.
      expect((yield* drain(queue)).map((e) => e.messageId)).toEqual(["c1"])
      // The open stops are the take-up's: recovery does not touch them.
      expect((yield* s.stops.all).map((stop) => stop.key)).toEqual(["k-w1", "k-s1"])
      // The runs view shows the waiting mention (interrupted, carried on) beside the dead letters.
      const runs = yield* s.runLog.recent(Partition.guild("g1"), 100)
      expect(runs.find((r) => r.messageId === "w1")).toEqual({
        guildId: "g1",
        channelId: "c1",
        messageId: "w1",
        outcome: "interrupted",
        detail: waitingDetail,
        toolCalls: [],
        runId: "r-w1",
        conversationId: "conv-w",
        durationMs: null,
        queuedMs: 1_500,
        finishedAt: now
      })
      expect(runs.map((r) => r.messageId).sort()).toEqual(["s1", "w1", "x1"])
    }))

  it.scoped("open stops that cannot be read stop the start (an event could be answered twice)", () =>
    Effect.gen(function*() {
      const s = yield* makeSetup()
      const broken: OpenStopsService = {
        ...s.stops,
        all: Effect.fail(new StorageError({ operation: "OpenStops.all", reason: "SQLITE_IOERR" }))
      }
      const exit = yield* s.restart({}, broken).pipe(Effect.exit)
      expect(Exit.isFailure(exit) && exit.cause._tag === "Fail" ? exit.cause.error : undefined).toMatchObject({
        _tag: "RecoveryFailed",
        operation: "read the open stops"
      })
    }))
})
