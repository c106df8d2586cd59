/**
 * The dispatcher in `channel` mode, under TestClock, against the fakes of ./DispatchHarness.ts and
 * the memory ConversationStore: which conversation an event runs in, a conversation lost on the
 * server, a busy conversation (never a failure), the cancel of an interrupted run through its
 * conversation, and a 409 storm through the real EventQueue.
 */
import { describe, expect, it } from "@effect/vitest"
import { Duration, Effect, HashMap, Logger, Option, TestClock } from "effect"
import type { RunRequest } from "../../src/domain/AgentRun.js"
import type { QueuedEvent } from "../../src/domain/Event.js"
import { Partition } from "../../src/domain/Event.js"
import { AgentNotFound, ConversationBusy, ConversationNotFound } from "../../src/domain/LettaErrors.js"
import { makeDispatcher } from "../../src/programs/Dispatch.js"
import { ConversationStore } from "../../src/services/conversation/ConversationStore.js"
import { BreakerState, CircuitBreaker } from "../../src/services/health/CircuitBreaker.js"
import { ErrorStats } from "../../src/services/health/ErrorStats.js"
import { DeadLetters } from "../../src/services/queue/DeadLetters.js"
import { EventJournal, makeMemoryJournal } from "../../src/services/queue/EventJournal.js"
import { DispatchOutcome, EventQueue } from "../../src/services/queue/EventQueue.js"
import { QueuePolicy } from "../../src/services/queue/QueuePolicy.js"
import { event } from "../services/queue/harness.js"
import { counterValue, makeHarness, report, retrySchedule, serverError, settle } from "./DispatchHarness.js"

const channelEvent = (id: string, over: Partial<QueuedEvent> = {}): QueuedEvent =>
  event(id, { conversationMode: "channel", ...over })

const c1 = { agentId: "a1", partitionKey: "guild:g1", channelId: "c1" }

const lost = (request: RunRequest) =>
  new ConversationNotFound({
    agentId: request.agentId,
    sideEffect: false,
    reason: "404 Conversation not found",
    conversationId: request.conversationId ?? "none"
  })

const busy = (request: RunRequest) =>
  new ConversationBusy({
    agentId: request.agentId,
    sideEffect: false,
    reason: "409 Cannot send a new message: Another request (run_id=run-x) is currently being processed",
    conversationId: request.conversationId ?? "none",
    blockingRunId: "run-x"
  })

interface Line {
  readonly level: string
  readonly message: string
  readonly annotations: Record<string, unknown>
}

const captureLines = (lines: Array<Line>) =>
  Logger.add(Logger.make(({ annotations, logLevel, message }) => {
    lines.push({
      level: logLevel.label,
      message: Array.isArray(message) ? message.join(" ") : String(message),
      annotations: Object.fromEntries(HashMap.toEntries(annotations))
    })
  }))

const deadLetters = Effect.flatMap(DeadLetters, (store) => store.list(Partition.guild("g1")))

describe("dispatch in channel mode", () => {
  it.effect("a channel's first event creates its conversation, later ones reuse it; threads, DMs and agents get their own", () => {
    const h = makeHarness({ run: (request) => Effect.succeed(report(request.agentId)) })
    return Effect.gen(function*() {
      const { dispatch } = yield* makeDispatcher({ retrySchedule })
      yield* TestClock.adjust(Duration.seconds(5))
      expect(yield* dispatch(channelEvent("m1"))).toEqual(DispatchOutcome.done)
      yield* dispatch(channelEvent("m2"))
      yield* dispatch(channelEvent("m3", { channelId: "thread-9" }))
      yield* dispatch(channelEvent("m4", { guildId: null, channelId: "dm-7" }))
      // Another agent bound to the guild: a new conversation in the same channel.
      yield* dispatch(channelEvent("m5", { agentId: "a2" }))
      // Shared mode, and an event without a mode: the agents route, no conversation.
      yield* dispatch(event("m6", { conversationMode: "shared" }))
      yield* dispatch(event("m7"))
      expect(h.creates).toEqual([
        { agentId: "a1", description: "Discord channel c1 in guild g1", at: 5_000 },
        { agentId: "a1", description: "Discord channel thread-9 in guild g1", at: 5_000 },
        { agentId: "a1", description: "Discord DM channel dm-7", at: 5_000 },
        { agentId: "a2", description: "Discord channel c1 in guild g1", at: 5_000 }
      ])
      expect(h.requests.map(({ request }) => [request.prompt, request.conversationId])).toEqual([
        ["prompt m1", "conv-1"],
        ["prompt m2", "conv-1"],
        ["prompt m3", "conv-2"],
        ["prompt m4", "conv-3"],
        ["prompt m5", "conv-4"],
        ["prompt m6", undefined],
        ["prompt m7", undefined]
      ])
      const store = yield* ConversationStore
      expect(yield* store.get(c1)).toEqual(Option.some({ conversationId: "conv-1", createdAt: 5_000, lastUsedAt: 5_000 }))
      const dm = yield* store.get({ agentId: "a1", partitionKey: "dm", channelId: "dm-7" })
      expect(Option.map(dm, (record) => record.conversationId)).toEqual(Option.some("conv-3"))
    }).pipe(Effect.provide(h.layer))
  })

  it.effect("the run id is journalled with its conversation; a successful run records the use", () => {
    const h = makeHarness({
      run: (request) => Effect.as(request.observer?.onRunId?.("r1") ?? Effect.void, report(request.agentId))
    })
    return Effect.gen(function*() {
      const { dispatch } = yield* makeDispatcher({ retrySchedule })
      const journal = yield* EventJournal
      const store = yield* ConversationStore
      yield* journal.append(channelEvent("m1"))
      yield* dispatch(channelEvent("m1"))
      expect(h.log).toEqual(["append:m1", "runStarted:m1@0", "create:a1", "letta:prompt m1@conv-1", "runIdSeen:m1:r1:conv-1"])
      expect((yield* journal.load).map((e) => e.run)).toEqual([
        { startedAt: 0, runId: "r1", conversationId: "conv-1", sideEffect: false }
      ])
      yield* TestClock.adjust(Duration.minutes(2))
      yield* dispatch(channelEvent("m2"))
      expect(yield* store.get(c1)).toEqual(Option.some({ conversationId: "conv-1", createdAt: 0, lastUsedAt: 120_000 }))
    }).pipe(Effect.provide(h.layer))
  })

  it.effect("a stored conversation gone on the server (404): forgotten, one new conversation, the event sent there", () => {
    const lines: Array<Line> = []
    const h = makeHarness({
      run: (request, call) => call === 1 ? Effect.fail(lost(request)) : Effect.succeed(report(request.agentId))
    })
    return Effect.gen(function*() {
      const { dispatch } = yield* makeDispatcher({ retrySchedule })
      yield* Effect.flatMap(ConversationStore, (store) => store.put(c1, "conv-old", 0))
      expect(yield* dispatch(channelEvent("m1"))).toEqual(DispatchOutcome.done)
      expect(h.log).toEqual(["runStarted:m1@0", "letta:prompt m1@conv-old", "create:a1", "letta:prompt m1@conv-1"])
      const stored = yield* Effect.flatMap(ConversationStore, (store) => store.get(c1))
      expect(Option.map(stored, (record) => record.conversationId)).toEqual(Option.some("conv-1"))
      const warnings = lines.filter((l) => l.level === "WARN")
      expect(warnings.map((l) => [l.message, l.annotations["lostConversationId"]])).toEqual([
        ["the channel's conversation is gone on the Letta server (404): forgotten, sending in a new one", "conv-old"]
      ])
      expect(lines.find((l) => l.message.startsWith("run finished"))?.annotations).toMatchObject({ conversationId: "conv-1" })
      expect((yield* deadLetters).total).toBe(0)
    }).pipe(Effect.provide(h.layer), Effect.provide(captureLines(lines)))
  })

  it.effect("a second 404 in the same dispatch is permanent: dead letter `failed` with the conversation, mapping forgotten", () => {
    const h = makeHarness({ run: (request) => Effect.fail(lost(request)) })
    return Effect.gen(function*() {
      const { dispatch } = yield* makeDispatcher({ retrySchedule })
      const store = yield* ConversationStore
      yield* store.put(c1, "conv-old", 0)
      expect(yield* dispatch(channelEvent("m1"))).toEqual(DispatchOutcome.done)
      expect(h.requests.map(({ request }) => request.conversationId)).toEqual(["conv-old", "conv-1"])
      expect(h.creates).toHaveLength(1)
      expect((yield* deadLetters).letters.map((l) => [l.reason, l.errorType, l.conversationId])).toEqual([
        ["failed", "ConversationNotFound", "conv-1"]
      ])
      expect(yield* store.get(c1)).toEqual(Option.none())
      // A conversation created by this very dispatch and lost at once is not replaced either.
      expect(yield* dispatch(channelEvent("m2"))).toEqual(DispatchOutcome.done)
      expect(h.creates).toHaveLength(2)
      expect(h.requests.map(({ request }) => request.conversationId)).toEqual(["conv-old", "conv-1", "conv-2"])
      expect((yield* deadLetters).total).toBe(2)
    }).pipe(Effect.provide(h.layer))
  })

  it.effect("a failed create is classified like a run: transient -> retried then held; agent gone -> dead letter", () => {
    const h = makeHarness({
      run: (request) => Effect.succeed(report(request.agentId)),
      create: (agentId, call) =>
        call <= 3
          ? Effect.fail(serverError(agentId))
          : Effect.fail(new AgentNotFound({ agentId, sideEffect: false, reason: "404 Agent a1 not found" }))
    })
    return Effect.gen(function*() {
      const { dispatch } = yield* makeDispatcher({ retrySchedule })
      const held = yield* Effect.fork(dispatch(channelEvent("m1")))
      yield* TestClock.adjust(Duration.seconds(3))
      expect(yield* held.await.pipe(Effect.flatten)).toEqual(DispatchOutcome.held(Duration.seconds(5)))
      expect(h.creates.map((c) => c.at)).toEqual([0, 1_000, 3_000])
      expect(yield* dispatch(channelEvent("m2"))).toEqual(DispatchOutcome.done)
      expect(h.requests).toEqual([])
      expect((yield* deadLetters).letters.map((l) => [l.event.messageId, l.errorType, "conversationId" in l])).toEqual([
        ["m2", "AgentNotFound", false]
      ])
    }).pipe(Effect.provide(h.layer))
  })

  it.effect("409 busy: retried after 1, 2, 4, 8, 16, 30, 30 s; never the breaker, ErrorStats or a dead letter; reset by a success", () => {
    const lines: Array<Line> = []
    const h = makeHarness({
      breaker: { failureThreshold: 1 },
      run: (request, call) => call <= 7 || call === 9 ? Effect.fail(busy(request)) : Effect.succeed(report(request.agentId))
    })
    return Effect.gen(function*() {
      const { dispatch } = yield* makeDispatcher({ retrySchedule })
      const before = yield* counterValue("aurora_conversation_busy_total", {})
      const outcomes: Array<DispatchOutcome> = []
      for (let attempt = 0; attempt < 8; attempt++) outcomes.push(yield* dispatch(channelEvent("m1", { attempts: attempt })))
      expect(outcomes).toEqual([
        ...[1, 2, 4, 8, 16, 30, 30].map((s) => DispatchOutcome.retry(Duration.seconds(s))),
        DispatchOutcome.done
      ])
      // One request per dispatch: a busy answer is not retried within the dispatch.
      expect(h.requests).toHaveLength(8)
      expect(h.creates).toHaveLength(1)
      expect(yield* Effect.flatMap(CircuitBreaker, (breaker) => breaker.state)).toEqual(BreakerState.Closed({ failures: 0 }))
      expect((yield* Effect.flatMap(ErrorStats, (stats) => stats.snapshot)).byType).toEqual({})
      expect((yield* deadLetters).total).toBe(0)
      expect((yield* counterValue("aurora_conversation_busy_total", {})) - before).toBe(7)
      // The success ended the streak: the next busy answer starts again at 1 s.
      expect(yield* dispatch(channelEvent("m2"))).toEqual(DispatchOutcome.retry(Duration.seconds(1)))
      // Logged once per streak: its start, and its end with the count.
      const busyLines = lines.filter((l) => l.message.includes("busy"))
      expect(busyLines.map((l) => [l.level, l.message])).toEqual([
        ["INFO", "conversation busy (another request is being processed there); trying again in 1s"],
        ["INFO", "conversation free again after 7 busy answer(s)"],
        ["INFO", "conversation busy (another request is being processed there); trying again in 1s"]
      ])
      expect(busyLines[0]?.annotations).toMatchObject({ conversationId: "conv-1", blockingRunId: "run-x", messageId: "m1" })
      expect(busyLines[1]?.annotations).toMatchObject({ conversationId: "conv-1" })
    }).pipe(Effect.provide(h.layer), Effect.provide(captureLines(lines)))
  })

  it.effect("busy streaks are per conversation", () => {
    const h = makeHarness({ run: (request) => Effect.fail(busy(request)) })
    return Effect.gen(function*() {
      const { dispatch } = yield* makeDispatcher({ retrySchedule })
      yield* dispatch(channelEvent("m1"))
      expect(yield* dispatch(channelEvent("m1", { attempts: 1 }))).toEqual(DispatchOutcome.retry(Duration.seconds(2)))
      expect(yield* dispatch(channelEvent("m2", { channelId: "c2" }))).toEqual(DispatchOutcome.retry(Duration.seconds(1)))
      expect(yield* dispatch(channelEvent("m1", { attempts: 2 }))).toEqual(DispatchOutcome.retry(Duration.seconds(4)))
    }).pipe(Effect.provide(h.layer))
  })

  it.effect("an event replayed after a crash cancels its cut-off run through the conversation before the re-send", () => {
    const h = makeHarness({ run: (request) => Effect.succeed(report(request.agentId)) })
    return Effect.gen(function*() {
      const { dispatch } = yield* makeDispatcher({ retrySchedule })
      yield* Effect.flatMap(ConversationStore, (store) => store.put(c1, "conv-0", 0))
      const replayed = channelEvent("m1", { interruptedRunId: "r0", interruptedConversationId: "conv-0", interruptions: 1 })
      expect(yield* dispatch(replayed)).toEqual(DispatchOutcome.done)
      expect(h.log).toEqual(["runStarted:m1@0", "cancelConversation:conv-0", "letta:prompt m1@conv-0"])
    }).pipe(Effect.provide(h.layer))
  })
})

describe("dispatch in channel mode consuming the real EventQueue", () => {
  it.scoped("a 409 storm (busy 5 times) is delivered once after the backoffs; breaker closed, no dead letter", () => {
    const h = makeHarness({
      breaker: { failureThreshold: 1 },
      run: (request, call) => call <= 5 ? Effect.fail(busy(request)) : Effect.succeed(report(request.agentId))
    })
    return Effect.gen(function*() {
      const memory = yield* makeMemoryJournal
      const queue = yield* EventQueue.make().pipe(
        Effect.provide(QueuePolicy.layerFixed({ capacity: 50, spacing: 0 })),
        Effect.provideService(EventJournal, memory.journal)
      )
      const { dispatch } = yield* makeDispatcher({ retrySchedule }).pipe(Effect.provideService(EventJournal, memory.journal))
      yield* queue.offer(channelEvent("m1"))
      yield* Effect.forkScoped(queue.consume(dispatch))
      for (let second = 0; second < 40; second++) {
        yield* settle
        yield* TestClock.adjust(Duration.seconds(1))
      }
      yield* settle
      // 1 + 2 + 4 + 8 + 16 s of waiting between the six sends.
      expect(h.requests.map((r) => r.at)).toEqual([0, 1_000, 3_000, 7_000, 15_000, 31_000])
      expect(yield* memory.entries).toEqual([])
      expect(yield* Effect.flatMap(CircuitBreaker, (breaker) => breaker.state)).toEqual(BreakerState.Closed({ failures: 0 }))
      expect((yield* deadLetters).total).toBe(0)
    }).pipe(Effect.provide(h.layer))
  })
})
