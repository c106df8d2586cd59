/**
 * Held events and the circuit breaker's releases, under TestClock: the real dispatcher, breaker,
 * queue and release wiring (BreakerRelease.ts) over a fake executor. Events the breaker turned
 * away go in the very instant it admits traffic again, never at the end of a hold that no longer
 * applies, and while half-open at most its 3 trials run.
 */
import { describe, expect, it } from "@effect/vitest"
import { Clock, Deferred, type Duration, Effect, Layer, TestClock } from "effect"
import type { ApprovalGate } from "../../src/services/approvals/Ports.js"
import { ApprovalsUnavailable } from "../fakes/approvalsUnavailable.js"
import { DiscordTools, makeDiscordTools } from "../../src/services/discord/Tools.js"
import { ToolCalls } from "../../src/services/queue/ToolCalls.js"
import { OpenStops } from "../../src/services/queue/OpenStops.js"
import { noActions } from "./DispatchHarness.js"
import type { RunReport, RunRequest } from "../../src/domain/AgentRun.js"
import type { DiscordFailure } from "../../src/domain/Errors.js"
import type { QueuedEvent } from "../../src/domain/Event.js"
import { LettaServerError, type LettaRunError } from "../../src/domain/LettaErrors.js"
import { defaultGlobalSettings, defaultGuildSettings } from "../../src/domain/Settings.js"
import { releaseHeldEvents } from "../../src/programs/BreakerRelease.js"
import type { AuroraConfig } from "../../src/domain/Config.js"
import { makeDispatcher } from "../../src/programs/Dispatch.js"
import { configFrom } from "../fakes/config.js"
import { CircuitBreaker } from "../../src/services/health/CircuitBreaker.js"
import { ErrorStats } from "../../src/services/health/ErrorStats.js"
import { ConversationStore } from "../../src/services/conversation/ConversationStore.js"
import { DeadLetters } from "../../src/services/queue/DeadLetters.js"
import { RunLog } from "../../src/services/queue/RunLog.js"
import { EventJournal } from "../../src/services/queue/EventJournal.js"
import { EventQueue } from "../../src/services/queue/EventQueue.js"
import { QueuePolicy } from "../../src/services/queue/QueuePolicy.js"
import { LettaExecutor } from "../../src/services/letta/LettaExecutor.js"
import { makeLettaRetrySchedule } from "../../src/services/letta/RetryPolicy.js"
import { defaultGuildState, SettingsStore } from "../../src/services/storage/SettingsStore.js"
import { TypingIndicator, TypingSender } from "../../src/services/discord/TypingIndicator.js"
import { ReplyPoster } from "../../src/services/discord/ReplyPoster.js"
import { event } from "../services/queue/harness.js"
import { recordingFeedback } from "../fakes/reactions.js"
import type { Feedback } from "../../src/services/discord/Feedback.js"

const report = (agentId: string): RunReport => ({
  agentId,
  toolCalls: [],
  toolReturns: [],
  assistantMessages: [],
  stopReason: "end_turn",
  usage: null,
  durationMs: 0,
  sideEffect: false,
  firstToolCallMs: null
})

/** Lets every forked fiber (loop, release forwarder, dispatches) run until it blocks. */
const settle = Effect.repeatN(Effect.yieldNow(), 200)

interface World {
  /** Executor calls: the prompt's message id and the Clock time. */
  readonly requests: Array<{ readonly id: string; readonly at: number }>
  /** Every event handed to the dispatcher, turned away or not. */
  readonly dispatches: Array<string>
  readonly layer: Layer.Layer<
    | SettingsStore
    | LettaExecutor
    | CircuitBreaker
    | ErrorStats
    | TypingIndicator
    | ReplyPoster
    | EventJournal
    | DeadLetters
    | EventQueue
    | ConversationStore
    | RunLog
    | AuroraConfig
    | Feedback
    | DiscordTools
    | ToolCalls
    | OpenStops
    | ApprovalGate
  >
}

/** The breaker opens on one failure and cools down for 60 s; channels are spaced `spacing` apart. */
const makeWorld = (
  run: (request: RunRequest) => Effect.Effect<RunReport, LettaRunError>,
  spacing: Duration.DurationInput = "2 seconds"
): World => {
  const requests: Array<{ readonly id: string; readonly at: number }> = []
  const settings = Layer.mock(SettingsStore, {
    _tag: "aurora/SettingsStore",
    currentGlobal: () => defaultGlobalSettings,
    guild: (guildId: string) =>
      Effect.succeed({
        ...defaultGuildState(guildId),
        enabled: true,
        agentId: "a1",
        settings: { ...defaultGuildSettings, typing: false }
      })
  })
  const executor = Layer.mock(LettaExecutor, {
    _tag: "aurora/LettaExecutor",
    run: (request: RunRequest) =>
      Effect.flatMap(Clock.currentTimeMillis, (at) => {
        requests.push({ id: request.prompt.replace("prompt ", ""), at })
        return run(request)
      }),
    cancelRun: () => Effect.succeed(true)
  })
  const sender = Layer.succeed(TypingSender, { sendTyping: (): Effect.Effect<void, DiscordFailure> => Effect.void })
  const queue = EventQueue.layer().pipe(Layer.provide(QueuePolicy.layerFixed({ capacity: 50, spacing })))
  const layer = Layer.mergeAll(
    settings,
    recordingFeedback().layer.pipe(Layer.provide(settings)),
    executor,
    CircuitBreaker.layer({ failureThreshold: 1, cooldown: "60 seconds" }),
    ErrorStats.Default,
    TypingIndicator.Default.pipe(Layer.provide(sender)),
    Layer.succeed(ReplyPoster, { postReply: () => Effect.succeed("posted") }),
    DeadLetters.layerMemory,
    ConversationStore.layerMemory,
    RunLog.layerMemory,
    Layer.succeed(DiscordTools, DiscordTools.make(makeDiscordTools(noActions))),
    ToolCalls.layerMemory,
    OpenStops.layerMemory,
    ApprovalsUnavailable,
    queue,
    configFrom()
  ).pipe(Layer.provideMerge(EventJournal.layerMemory), Layer.orDie)
  return { requests, dispatches: [], layer }
}

/** The dispatch program as DispatchLive runs it: releases forwarded to the queue, then the loop. */
const startDispatching = (world: World) =>
  Effect.gen(function*() {
    const { dispatch } = yield* makeDispatcher({ retrySchedule: makeLettaRetrySchedule({ jitter: 0 }) })
    const queue = yield* EventQueue
    yield* releaseHeldEvents
    const counted = (e: QueuedEvent) => Effect.zipRight(Effect.sync(() => world.dispatches.push(e.messageId)), dispatch(e))
    yield* Effect.forkScoped(queue.consume(counted))
    return queue
  })

const openBreaker = Effect.flatMap(
  CircuitBreaker,
  (breaker) =>
    Effect.ignore(
      breaker.protect(Effect.fail(new LettaServerError({ agentId: "a1", sideEffect: false, reason: "503", status: 503 })), () =>
        true)
    )
)

describe("held events and the breaker's releases", () => {
  it.scoped("events held by an open breaker are dispatched in the same clock instant as the reset", () => {
    const world = makeWorld((request) => Effect.succeed(report(request.agentId)))
    return Effect.gen(function*() {
      const queue = yield* startDispatching(world)
      yield* openBreaker
      yield* queue.offer(event("m1", { channelId: "c1" }))
      yield* queue.offer(event("m2", { channelId: "c2" }))
      yield* settle
      expect(world.dispatches).toEqual(["m1", "m2"])
      // Held for the cool-down, without polling: nobody asks the breaker again meanwhile.
      yield* TestClock.adjust("1 second")
      yield* settle
      yield* TestClock.adjust("9 seconds")
      yield* settle
      expect(world.dispatches).toEqual(["m1", "m2"])
      expect(world.requests).toEqual([])

      yield* Effect.flatMap(CircuitBreaker, (breaker) => breaker.reset)
      yield* settle
      // 10 s after they were turned away, well before the 60 s hold; the channels' 2 s spacing
      // does not apply either (they never ran).
      expect(world.requests).toEqual([{ id: "m1", at: 10_000 }, { id: "m2", at: 10_000 }])
      yield* TestClock.adjust("5 minutes")
      yield* settle
      expect(world.requests).toHaveLength(2)
      expect((yield* queue.stats).partitions[0]?.pending).toBe(0)
    }).pipe(Effect.provide(world.layer))
  })

  it.scoped("half-open admits exactly 3 held events; the others wait for the verdict and go when a trial closes it", () => {
    const gates: Array<Deferred.Deferred<void>> = []
    const world = makeWorld((request) =>
      Effect.gen(function*() {
        const gate = yield* Deferred.make<void>()
        gates.push(gate)
        yield* Deferred.await(gate)
        return report(request.agentId)
      })
    )
    return Effect.gen(function*() {
      const queue = yield* startDispatching(world)
      yield* openBreaker
      // One agent per channel, so only the breaker limits how many run at once.
      for (let i = 1; i <= 5; i++) yield* queue.offer(event(`m${i}`, { channelId: `c${i}`, agentId: `a${i}` }))
      yield* settle
      expect(world.dispatches).toHaveLength(5)

      yield* TestClock.adjust("60 seconds")
      yield* settle
      expect(world.requests.map((r) => r.id).sort()).toEqual(["m1", "m2", "m3"])
      expect(world.requests.every((r) => r.at === 60_000)).toBe(true)
      // While the trials run, the other two stay held: no request, no further dispatch.
      const dispatchesAtHalfOpen = world.dispatches.length
      yield* TestClock.adjust("5 seconds")
      yield* settle
      yield* TestClock.adjust("20 seconds")
      yield* settle
      expect(world.requests).toHaveLength(3)
      expect(world.dispatches).toHaveLength(dispatchesAtHalfOpen)

      // The first trial succeeds: the breaker closes, and the two held events go at once.
      yield* Deferred.succeed(gates[0]!, undefined)
      yield* settle
      expect(world.requests.slice(3).map((r) => [r.id, r.at]).sort()).toEqual([["m4", 85_000], ["m5", 85_000]])
      yield* Effect.forEach(gates, (gate) => Deferred.succeed(gate, undefined))
      yield* TestClock.adjust("5 minutes")
      yield* settle
      // Each event reached the executor exactly once.
      expect(world.requests.map((r) => r.id).sort()).toEqual(["m1", "m2", "m3", "m4", "m5"])
      expect((yield* queue.stats).inFlight).toEqual([])
    }).pipe(Effect.provide(world.layer))
  })
})
