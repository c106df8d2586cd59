/**
 * The take-up of an open stop and the triggering message's journal entry (programs/StopTakeUp.ts,
 * 3. and 4.), with the real continuation over ./TakeUpHarness.ts, under TestClock: Recovery left
 * the entry as it was (the agent had not acted), and exactly one thing answers the mention.
 * - answered -> the entry is removed (never replayed), then the record;
 * - refused -> the entry follows the restart rules: replayed once (its interruption recorded), or
 *   dead-lettered `interrupted` the second time (its conversation cancelled); then the record;
 * - unreachable -> the entry and the record are both kept, unchanged;
 * - held by the approval gate -> the entry is removed, then the record; nothing is sent;
 * - what the run did before (the stop's stored actions, a send of the stop that started without
 *   a result) reaches the continuation: a silent end after it gets no fallback post.
 */
import { describe, expect, it } from "@effect/vitest"
import { Duration, Effect, Fiber, TestClock } from "effect"
import { Partition, type QueuedEvent } from "../../src/domain/Event.js"
import { LettaRejected, LettaServerError } from "../../src/domain/LettaErrors.js"
import { interruptedResult } from "../../src/domain/ToolCall.js"
import { actedAtStop, notRunResult } from "../../src/programs/StopTakeUp.js"
import { PendingApprovals } from "../../src/services/approvals/PendingApprovals.js"
import { DeadLetters } from "../../src/services/queue/DeadLetters.js"
import { EventJournal, type JournalEntry } from "../../src/services/queue/EventJournal.js"
import { DispatchOutcome, EventQueue } from "../../src/services/queue/EventQueue.js"
import { OpenStops } from "../../src/services/queue/OpenStops.js"
import { RunLog } from "../../src/services/queue/RunLog.js"
import { ToolCalls } from "../../src/services/queue/ToolCalls.js"
import { event } from "../services/queue/harness.js"
import { makeHarness, silentReport } from "./DispatchHarness.js"
import { builtin, channelId, counted, openStops, origin, personal, start, stopOf, takeUpStops, world } from "./TakeUpHarness.js"

/** The mention cut off at the stop, as Recovery left it: started in conv-1, the agent had not acted. */
const cutOff = (over: Partial<QueuedEvent> = {}) => event("m1", { channelId, enqueuedAt: 0, ...over })

const seedEntry = (e: QueuedEvent) =>
  Effect.gen(function*() {
    const journal = yield* EventJournal
    yield* journal.append(e)
    yield* journal.runStarted(e.messageId, 100)
    yield* journal.runIdSeen(e.messageId, "run-1", "conv-1")
  })

/** The open stop: Aurora's read, started (no result) when the process stopped. */
const seedReadStop = (actionsBefore: ReadonlyArray<string> = []) =>
  Effect.gen(function*() {
    yield* Effect.flatMap(ToolCalls, (calls) => calls.begin(start("k1", "discord_read_messages")))
    yield* Effect.flatMap(
      OpenStops,
      (stops) => stops.open({ ...stopOf("k1", [builtin("discord_read_messages", "k1")]), actionsBefore })
    )
  })

const entries = Effect.flatMap(EventJournal, (journal) => journal.load)
const letters = Effect.map(Effect.flatMap(DeadLetters, (d) => d.list(Partition.guild("g1"))), (page) => page.letters)

/** Every event the queue hands out now (each done at once). */
const queued = Effect.gen(function*() {
  const queue = yield* EventQueue
  const seen: Array<string> = []
  const fiber = yield* Effect.fork(
    queue.consume((e) => Effect.as(Effect.sync(() => seen.push(e.messageId)), DispatchOutcome.done))
  )
  yield* Effect.repeatN(Effect.yieldNow(), 50)
  yield* TestClock.adjust(Duration.seconds(1))
  yield* Effect.repeatN(Effect.yieldNow(), 50)
  yield* Fiber.interrupt(fiber)
  return seen
})

const rejected = new LettaRejected({
  agentId: "a1",
  sideEffect: false,
  reason: "400 No tool call is currently awaiting approval",
  status: 400
})
const serverDown = new LettaServerError({ agentId: "a1", sideEffect: false, reason: "503 Service Unavailable", status: 503 })

describe("StopTakeUp and the journal entry of the cut-off mention", () => {
  it.effect("answered: the continuation's answer is the only one; the entry is removed, never replayed", () => {
    const d = counted()
    const h = makeHarness({
      settings: { tools: "builtin" },
      actions: d.actions,
      run: () => Effect.die("no prompt: the mention is never sent again"),
      continueRun: () => Effect.succeed(silentReport("a1", ["here is what I read"], "run-2"))
    })
    return Effect.gen(function*() {
      yield* seedEntry(cutOff())
      yield* seedReadStop()
      expect(yield* takeUpStops).toEqual(["answered"])
      // Nothing acted before: the silent end is answered by the fallback, once.
      expect(h.posts.map((p) => [p.replyTo, p.content])).toEqual([["m1", "here is what I read"]])
      expect(h.log.filter((line) => line.startsWith("remove:") || line.startsWith("cancel"))).toEqual(["remove:m1"])
      expect(yield* entries).toEqual([])
      expect(yield* openStops).toEqual([])
      expect(yield* queued).toEqual([])
      expect(h.requests).toEqual([])
    }).pipe(Effect.provide(world(h)))
  })

  it.effect("refused, first cut-off: the entry is replayed once, its interruption recorded; the record deleted", () => {
    const h = makeHarness({
      settings: { tools: "builtin" },
      run: () => Effect.die("no prompt"),
      continueRun: () => Effect.fail(rejected)
    })
    return Effect.gen(function*() {
      yield* seedEntry(cutOff())
      yield* seedReadStop()
      expect(yield* takeUpStops).toEqual(["refused"])
      const [entry] = yield* entries
      expect(entry?.event).toMatchObject({ messageId: "m1", interruptions: 1, interruptedConversationId: "conv-1" })
      expect(entry?.run).toBeNull()
      expect(yield* letters).toEqual([])
      expect(yield* openStops).toEqual([])
      // No cancel here: the replay's dispatch cancels the interrupted run before the re-send.
      expect(h.log.filter((line) => line.startsWith("cancel"))).toEqual([])
      expect(yield* queued).toEqual(["m1"])
    }).pipe(Effect.provide(world(h)))
  })

  it.effect("refused, second cut-off: the entry is dead-lettered interrupted and its conversation cancelled", () => {
    const h = makeHarness({
      settings: { tools: "builtin" },
      run: () => Effect.die("no prompt"),
      continueRun: () => Effect.fail(rejected)
    })
    return Effect.gen(function*() {
      yield* seedEntry(cutOff({ interruptions: 1 }))
      yield* seedReadStop()
      expect(yield* takeUpStops).toEqual(["refused"])
      expect(yield* entries).toEqual([])
      expect((yield* letters).map((l) => [l.event.messageId, l.reason, l.conversationId])).toEqual([
        ["m1", "interrupted", "conv-1"]
      ])
      expect(h.log.filter((line) => line.startsWith("cancel"))).toEqual(["cancelConversation:conv-1"])
      expect(yield* openStops).toEqual([])
      expect(yield* queued).toEqual([])
    }).pipe(Effect.provide(world(h)))
  })

  it.effect("unreachable: the entry and the record are both kept as they were, for the next start", () => {
    const h = makeHarness({
      settings: { tools: "builtin" },
      run: () => Effect.die("no prompt"),
      continueRun: () => Effect.fail(serverDown)
    })
    return Effect.gen(function*() {
      yield* seedEntry(cutOff())
      yield* seedReadStop()
      const before: ReadonlyArray<JournalEntry> = yield* entries
      const fiber = yield* Effect.fork(takeUpStops)
      yield* TestClock.adjust("1 hour")
      expect(yield* Fiber.join(fiber)).toEqual(["kept"])
      expect(yield* entries).toEqual(before)
      expect((yield* openStops).map((s) => s.key)).toEqual(["k1"])
      expect(yield* letters).toEqual([])
      expect(yield* queued).toEqual([])
    }).pipe(Effect.provide(world(h)))
  })

  it.effect("held by the approval gate: the entry is removed (the gate's flow answers), then the record; nothing sent", () => {
    const h = makeHarness({ settings: { tools: "builtin" }, run: () => Effect.die("no prompt") })
    return Effect.gen(function*() {
      yield* seedEntry(cutOff())
      yield* Effect.flatMap(PendingApprovals, (approvals) =>
        approvals.create({
          ...origin,
          calls: [{ name: "web_search", toolCallId: "w1", arguments: "{}" }],
          answered: [],
          actionsBefore: [],
          requestedAt: 1_000
        }, 600_000))
      yield* Effect.flatMap(
        OpenStops,
        (stops) => stops.open(stopOf("s1", [builtin("discord_read_messages", "s1"), personal("web_search", "w1")]))
      )
      expect(yield* takeUpStops).toEqual(["gate"])
      expect(h.continuations).toEqual([])
      expect(yield* entries).toEqual([])
      expect(yield* openStops).toEqual([])
      expect(yield* queued).toEqual([])
    }).pipe(Effect.provide(world(h)))
  })
})

describe("what the run did before reaches the continuation (no second answer by the fallback)", () => {
  it.effect("a send stored with the stop (an earlier round trip): the silent end is not posted", () => {
    const d = counted()
    const h = makeHarness({
      settings: { tools: "builtin" },
      actions: d.actions,
      run: () => Effect.die("no prompt"),
      continueRun: () => Effect.succeed(silentReport("a1", ["I already told you"], "run-2"))
    })
    return Effect.gen(function*() {
      yield* seedReadStop(["discord_send"])
      expect(yield* takeUpStops).toEqual(["answered"])
      expect(h.posts).toEqual([])
      const runs = yield* Effect.flatMap(RunLog, (log) => log.recent(Partition.guild("g1"), 10))
      expect(runs).toMatchObject([{ messageId: "m1", outcome: "answered" }])
      expect(runs[0]?.toolCalls).toContain("discord_send")
    }).pipe(Effect.provide(world(h)))
  })

  it.effect("a send of the stop that started without a result may have posted: the silent end is not posted", () => {
    const d = counted()
    const h = makeHarness({
      settings: { tools: "builtin" },
      actions: d.actions,
      run: () => Effect.die("no prompt"),
      continueRun: () => Effect.succeed(silentReport("a1", ["my message may not have gone out"], "run-2"))
    })
    return Effect.gen(function*() {
      yield* Effect.flatMap(ToolCalls, (calls) => calls.begin(start("s1", "discord_send")))
      yield* Effect.flatMap(OpenStops, (stops) => stops.open(stopOf("s1", [builtin("discord_send", "s1")])))
      expect(yield* takeUpStops).toEqual(["answered"])
      expect(h.continuations[0]?.request.answers).toEqual([{ _tag: "ToolReturn", toolCallId: "s1", result: interruptedResult }])
      expect(h.posts).toEqual([])
      expect(d.posts).toEqual([])
    }).pipe(Effect.provide(world(h)))
  })

  it("actedAtStop: the stop's built-in Discord actions answered 'interrupted', not the reads, the not-run or a person's", () => {
    const stop = stopOf("s1", [
      builtin("discord_send", "s1"),
      builtin("discord_read_messages", "s2"),
      builtin("discord_add_reaction", "s3"),
      personal("discord_delete_message", "w1"),
      builtin("discord_send", "s4")
    ])
    const answers = [
      { _tag: "ToolReturn" as const, toolCallId: "s1", result: interruptedResult },
      { _tag: "ToolReturn" as const, toolCallId: "s2", result: interruptedResult },
      { _tag: "ToolReturn" as const, toolCallId: "s3", result: notRunResult },
      { _tag: "Decision" as const, toolCallId: "w1", approve: false, reason: "no" },
      { _tag: "ToolReturn" as const, toolCallId: "s4", result: interruptedResult }
    ]
    expect(actedAtStop(stop, answers)).toEqual(["discord_send", "discord_send"])
  })
})
