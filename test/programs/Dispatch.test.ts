/**
 * The dispatch program against layer-swapped fakes (./DispatchHarness.ts: settings, executor,
 * typing sender, a recording journal over the memory one, the memory dead-letter store) and the
 * real CircuitBreaker, ErrorStats and EventQueue, all under TestClock. Events without a
 * conversation mode run on the agents route (`shared`); DispatchConversations.test.ts covers
 * `channel` mode.
 */
import { describe, expect, it } from "@effect/vitest"
import { Deferred, Duration, Effect, Fiber, HashMap, Logger, TestClock } from "effect"
import { Partition, type QueuedEvent } from "../../src/domain/Event.js"
import { AgentNotFound, LettaTimeout } from "../../src/domain/LettaErrors.js"
import { promptOtid } from "../../src/domain/Otid.js"
import { defaultGuildSettings } from "../../src/domain/Settings.js"
import { makeDispatcher } from "../../src/programs/Dispatch.js"
import { DeadLetters } from "../../src/services/queue/DeadLetters.js"
import { typingGrace } from "../../src/services/discord/TypingIndicator.js"
import { ErrorStats } from "../../src/services/health/ErrorStats.js"
import { EventJournal, makeMemoryJournal } from "../../src/services/queue/EventJournal.js"
import { DispatchOutcome, EventQueue, type EventQueueService } from "../../src/services/queue/EventQueue.js"
import { QueuePolicy } from "../../src/services/queue/QueuePolicy.js"
import { makeLettaRetrySchedule } from "../../src/services/letta/RetryPolicy.js"
import { captureLogs, type LogLine } from "../fakes/logs.js"
import { event } from "../services/queue/harness.js"
import {
  counterValue,
  discordSend,
  makeHarness,
  openBreaker,
  report,
  retrySchedule,
  serverError,
  settle,
  toolCall
} from "./DispatchHarness.js"

/** When a run that is still going shows typing first (ms after its dispatch started). */
const grace = Duration.toMillis(typingGrace)

describe("dispatch", () => {
  it.effect("a successful run is Done and recorded as a success", () => {
    const h = makeHarness({ run: (request) => Effect.succeed(report(request.agentId)) })
    return Effect.gen(function*() {
      const { dispatch } = yield* makeDispatcher({ retrySchedule })
      const outcome = yield* dispatch(event("m1"))
      expect(outcome).toEqual(DispatchOutcome.done)
      expect(h.requests.map((r) => [r.request.agentId, r.request.prompt])).toEqual([["a1", "prompt m1"]])
      const stats = yield* Effect.flatMap(ErrorStats, (s) => s.snapshot)
      expect(stats.total).toBe(1)
      expect(stats.errors).toBe(0)
      expect(stats.recentOperations[0]?.outcome).toBe("success")
    }).pipe(Effect.provide(h.layer))
  })

  it.effect("a transient failure is retried per the schedule, then the event is kept (held, at most 5 s)", () => {
    const h = makeHarness({ run: (request) => Effect.fail(serverError(request.agentId)) })
    return Effect.gen(function*() {
      const { dispatch } = yield* makeDispatcher({ retrySchedule })
      const fiber = yield* Effect.fork(dispatch(event("m1")))
      yield* settle
      expect(h.requests.map((r) => r.at)).toEqual([0])
      yield* TestClock.adjust(Duration.seconds(1))
      yield* settle
      expect(h.requests.map((r) => r.at)).toEqual([0, 1_000])
      yield* TestClock.adjust(Duration.seconds(2))
      const outcome = yield* Fiber.join(fiber)
      expect(h.requests.map((r) => r.at)).toEqual([0, 1_000, 3_000])
      expect(outcome).toEqual(DispatchOutcome.held(Duration.seconds(5)))
      const stats = yield* Effect.flatMap(ErrorStats, (s) => s.snapshot)
      expect(stats.byType).toEqual({ LettaServerError: 3 })
    }).pipe(Effect.provide(h.layer))
  })

  it.effect("every attempt of an event sends its prompt, its images and one otid; another event, another otid", () => {
    const h = makeHarness({
      run: (request, call) => call <= 2 ? Effect.fail(serverError(request.agentId)) : Effect.succeed(report(request.agentId))
    })
    const png = "https://cdn.discordapp.com/attachments/1/2/cat.png"
    return Effect.gen(function*() {
      const { dispatch } = yield* makeDispatcher({ retrySchedule })
      const fiber = yield* Effect.fork(dispatch({ ...event("m1"), images: [png] }))
      yield* TestClock.adjust(Duration.seconds(3))
      expect(yield* Fiber.join(fiber)).toEqual(DispatchOutcome.done)
      yield* dispatch(event("m2"))
      const sent = h.requests.map(({ request }) => [request.prompt, request.otid, request.images])
      expect(sent).toEqual([
        ["prompt m1", promptOtid("m1"), [png]],
        ["prompt m1", promptOtid("m1"), [png]],
        ["prompt m1", promptOtid("m1"), [png]],
        ["prompt m2", promptOtid("m2"), undefined]
      ])
      expect(promptOtid("m1")).not.toBe(promptOtid("m2"))
    }).pipe(Effect.provide(h.layer))
  })

  it.effect("an open breaker holds the event (at most its remaining cool-down) without calling the executor", () => {
    const h = makeHarness({
      breaker: { failureThreshold: 1, cooldown: "30 seconds" },
      run: (request) => Effect.succeed(report(request.agentId))
    })
    return Effect.gen(function*() {
      const { dispatch } = yield* makeDispatcher({ retrySchedule })
      yield* openBreaker
      yield* TestClock.adjust(Duration.seconds(10))
      const outcome = yield* dispatch(event("m1"))
      expect(outcome).toEqual(DispatchOutcome.held(Duration.seconds(20)))
      expect(h.requests).toHaveLength(0)
      // A rejection by the breaker is not an agent-run outcome.
      expect((yield* Effect.flatMap(ErrorStats, (s) => s.snapshot)).total).toBe(0)
    }).pipe(Effect.provide(h.layer))
  })

  it.effect("a permanent failure (AgentNotFound) is Done and never retried", () => {
    const h = makeHarness({
      run: (request) => Effect.fail(new AgentNotFound({ agentId: request.agentId, sideEffect: false, reason: "404" }))
    })
    return Effect.gen(function*() {
      const { dispatch } = yield* makeDispatcher({ retrySchedule })
      const fiber = yield* Effect.fork(dispatch(event("m1")))
      yield* TestClock.adjust(Duration.minutes(1))
      expect(yield* Fiber.join(fiber)).toEqual(DispatchOutcome.done)
      expect(h.requests).toHaveLength(1)
      expect((yield* Effect.flatMap(ErrorStats, (s) => s.snapshot)).byType).toEqual({ AgentNotFound: 1 })
    }).pipe(Effect.provide(h.layer))
  })

  it.effect("a permanent failure becomes a dead letter `failed` with the error's tag, reason and attempts", () => {
    const h = makeHarness({
      run: (request) =>
        Effect.fail(new AgentNotFound({ agentId: request.agentId, sideEffect: false, reason: "404 agent a1 not found" }))
    })
    return Effect.gen(function*() {
      const { dispatch } = yield* makeDispatcher({ retrySchedule })
      const before = yield* counterValue("aurora_dead_letters_total", { reason: "failed" })
      yield* TestClock.adjust(Duration.seconds(42))
      // Dispatched twice before (two Held outcomes): this is its third dispatch.
      const outcome = yield* dispatch(event("m1", { attempts: 2 }))
      expect(outcome).toEqual(DispatchOutcome.done)
      const page = yield* Effect.flatMap(DeadLetters, (store) => store.list(Partition.guild("g1")))
      expect(page.letters).toEqual([{
        event: event("m1", { attempts: 2 }),
        reason: "failed",
        errorType: "AgentNotFound",
        detail: "404 agent a1 not found",
        attempts: 3,
        failedAt: 42_000
      }])
      expect(yield* counterValue("aurora_dead_letters_total", { reason: "failed" })).toBe(before + 1)
    }).pipe(Effect.provide(h.layer))
  })

  it.effect("an event older than the maximum age when its turn comes (a long pause) is dead-lettered expired, never sent", () => {
    const h = makeHarness({ run: (request) => Effect.succeed(report(request.agentId)) })
    return Effect.gen(function*() {
      const { dispatch } = yield* makeDispatcher({ retrySchedule, maxEventAge: "1 hour" })
      const before = yield* counterValue("aurora_dead_letters_total", { reason: "expired" })
      yield* TestClock.adjust(Duration.hours(1))
      // Exactly the maximum age: still answered.
      expect(yield* dispatch(event("on-time", { enqueuedAt: 0 }))).toEqual(DispatchOutcome.done)
      expect(yield* dispatch(event("late", { enqueuedAt: -1, attempts: 1 }))).toEqual(DispatchOutcome.done)
      expect(h.requests.map((r) => r.request.prompt)).toEqual(["prompt on-time"])
      // Not even recorded as started: nothing to recover or cancel for it.
      expect(h.log.filter((line) => line.includes("late"))).toEqual([])
      const page = yield* Effect.flatMap(DeadLetters, (store) => store.list(Partition.guild("g1")))
      expect(page.letters).toEqual([{
        event: event("late", { enqueuedAt: -1, attempts: 1 }),
        reason: "expired",
        errorType: null,
        detail: "pending for 1h 1ms (limit 1h) when its turn came",
        attempts: 1,
        failedAt: 3_600_000
      }])
      expect(yield* counterValue("aurora_dead_letters_total", { reason: "expired" })).toBe(before + 1)
    }).pipe(Effect.provide(h.layer))
  })

  it.effect("a defect in the dispatch is not lost: it becomes a dead letter `failed` of type Defect", () => {
    const h = makeHarness({ run: () => Effect.die(new Error("bug in a tool summary")) })
    return Effect.gen(function*() {
      const { dispatch } = yield* makeDispatcher({ retrySchedule })
      const outcome = yield* dispatch(event("m1"))
      expect(outcome).toEqual(DispatchOutcome.done)
      const page = yield* Effect.flatMap(DeadLetters, (store) => store.list(Partition.guild("g1")))
      expect(page.letters.map((letter) => [letter.event.messageId, letter.reason, letter.errorType, letter.attempts]))
        .toEqual([["m1", "failed", "Defect", 1]])
      expect(page.letters[0]?.detail).toContain("bug in a tool summary")
    }).pipe(Effect.provide(h.layer))
  })

  it.effect("a dead-letter store that fails is logged, and the event still counts as done", () => {
    const lines: Array<LogLine> = []
    const h = makeHarness({
      failDeadLetters: true,
      run: (request) => Effect.fail(new AgentNotFound({ agentId: request.agentId, sideEffect: false, reason: "404" }))
    })
    return Effect.gen(function*() {
      const { dispatch } = yield* makeDispatcher({ retrySchedule })
      expect(yield* dispatch(event("m1"))).toEqual(DispatchOutcome.done)
      expect(lines.filter((l) => l.level === "ERROR").map((l) => l.message)).toEqual([
        expect.stringContaining("run failed permanently (AgentNotFound: 404); the event could not be dead-lettered and is lost")
      ])
    }).pipe(Effect.provide(h.layer), Effect.provide(captureLogs(lines)))
  })

  it.effect("a transient failure leaves no dead letter", () => {
    const h = makeHarness({ run: (request) => Effect.fail(serverError(request.agentId)) })
    return Effect.gen(function*() {
      const { dispatch } = yield* makeDispatcher({ retrySchedule })
      const fiber = yield* Effect.fork(dispatch(event("m1")))
      yield* TestClock.adjust(Duration.minutes(1))
      expect((yield* Fiber.join(fiber))._tag).toBe("Held")
      expect(h.requests).toHaveLength(3)
      const page = yield* Effect.flatMap(DeadLetters, (store) => store.list(Partition.guild("g1")))
      expect(page.total).toBe(0)
    }).pipe(Effect.provide(h.layer))
  })

  it.effect("the run's progress is journalled as it happens: started before the request, run id, first side effect once", () => {
    const h = makeHarness({
      run: (request) =>
        Effect.gen(function*() {
          const observer = request.observer ?? {}
          yield* observer.onRunId?.("r1") ?? Effect.void
          // A read-only call is not a side effect; the first acting call is recorded, later ones not.
          yield* observer.onToolCall?.(toolCall("discord_read_messages", "t0")) ?? Effect.void
          yield* observer.onToolCall?.(toolCall("discord_send", "t1")) ?? Effect.void
          yield* observer.onToolCall?.(toolCall("discord_add_reaction", "t2")) ?? Effect.void
          return report(request.agentId)
        })
    })
    return Effect.gen(function*() {
      const { dispatch } = yield* makeDispatcher({ retrySchedule })
      const journal = yield* EventJournal
      yield* journal.append(event("m1"))
      yield* TestClock.adjust(Duration.seconds(7))
      expect(yield* dispatch(event("m1"))).toEqual(DispatchOutcome.done)
      expect(h.log).toEqual([
        "append:m1",
        "runStarted:m1@7000",
        "letta:prompt m1",
        "runIdSeen:m1:r1",
        "sideEffectSeen:m1"
      ])
      // What a crash now would leave behind (the queue, not the dispatcher, removes a done event).
      expect((yield* journal.load).map((e) => e.run)).toEqual([{ startedAt: 7_000, runId: "r1", sideEffect: true }])
    }).pipe(Effect.provide(h.layer))
  })

  it.effect("journal write failures are logged and do not stop the run", () => {
    const lines: Array<LogLine> = []
    const h = makeHarness({
      failJournal: true,
      run: (request) =>
        Effect.gen(function*() {
          yield* request.observer?.onRunId?.("r1") ?? Effect.void
          yield* request.observer?.onToolCall?.(discordSend) ?? Effect.void
          return report(request.agentId)
        })
    })
    return Effect.gen(function*() {
      const { dispatch } = yield* makeDispatcher({ retrySchedule })
      expect(yield* dispatch(event("m1"))).toEqual(DispatchOutcome.done)
      expect(h.requests).toHaveLength(1)
      expect(lines.filter((l) => l.level === "ERROR").map((l) => l.message)).toEqual([
        "journal: could not record the run start",
        "journal: could not record the run id",
        "journal: could not record the side effect"
      ].map((m) => expect.stringContaining(m)))
    }).pipe(Effect.provide(h.layer), Effect.provide(captureLogs(lines)))
  })

  it.effect("an event replayed after a crash has its cut-off run cancelled before it is sent", () => {
    const h = makeHarness({ run: (request) => Effect.succeed(report(request.agentId)) })
    return Effect.gen(function*() {
      const { dispatch } = yield* makeDispatcher({ retrySchedule })
      expect(yield* dispatch(event("m1", { interruptedRunId: "r0", interruptions: 1 }))).toEqual(DispatchOutcome.done)
      expect(h.log).toEqual(["runStarted:m1@0", "cancel:a1:r0", "letta:prompt m1"])
      // A plain event cancels nothing.
      yield* dispatch(event("m2"))
      expect(h.log.slice(3)).toEqual(["runStarted:m2@0", "letta:prompt m2"])
    }).pipe(Effect.provide(h.layer))
  })

  it.effect("a cancel that fails is logged and the event is sent anyway", () => {
    const lines: Array<LogLine> = []
    const h = makeHarness({ cancelled: false, run: (request) => Effect.succeed(report(request.agentId)) })
    return Effect.gen(function*() {
      const { dispatch } = yield* makeDispatcher({ retrySchedule })
      expect(yield* dispatch(event("m1", { interruptedRunId: "r0", interruptions: 1 }))).toEqual(DispatchOutcome.done)
      expect(h.log).toEqual(["runStarted:m1@0", "cancel:a1:r0", "letta:prompt m1"])
      expect(lines.some((l) => l.level === "WARN" && l.message.includes("could not be cancelled"))).toBe(true)
    }).pipe(Effect.provide(h.layer), Effect.provide(captureLogs(lines)))
  })

  it.effect("a shutdown while the cut-off run is being cancelled resets the progress too", () => {
    const h = makeHarness({ cancelled: "hangs", run: (request) => Effect.succeed(report(request.agentId)) })
    return Effect.gen(function*() {
      const { dispatch } = yield* makeDispatcher({ retrySchedule })
      const journal = yield* EventJournal
      const replayed = event("m1", { interruptedRunId: "r0", interruptions: 1 })
      yield* journal.append(replayed)
      const fiber = yield* Effect.fork(dispatch(replayed))
      yield* settle
      expect((yield* journal.load).map((e) => e.run)).toEqual([{ startedAt: 0, runId: null, sideEffect: false }])
      yield* Fiber.interrupt(fiber)
      expect(yield* journal.load).toEqual([{ event: replayed, run: null }])
      expect(h.requests).toHaveLength(0)
    }).pipe(Effect.provide(h.layer))
  })

  it.effect("a run interrupted (shutdown) before the agent acted has its progress reset; after it acted, kept", () =>
    Effect.gen(function*() {
      for (const acted of [false, true]) {
        const h = makeHarness({
          run: (request) =>
            Effect.gen(function*() {
              yield* request.observer?.onRunId?.("r1") ?? Effect.void
              if (acted) yield* request.observer?.onToolCall?.(discordSend) ?? Effect.void
              return yield* Effect.never
            })
        })
        yield* Effect.gen(function*() {
          const { dispatch } = yield* makeDispatcher({ retrySchedule })
          const journal = yield* EventJournal
          yield* journal.append(event("m1"))
          const fiber = yield* Effect.fork(dispatch(event("m1")))
          yield* settle
          expect((yield* journal.load).map((e) => e.run)).toEqual([{ startedAt: 0, runId: "r1", sideEffect: acted }])
          yield* Fiber.interrupt(fiber)
          const entries = yield* journal.load
          expect(entries.map((e) => e.event.messageId)).toEqual(["m1"])
          expect(entries.map((e) => e.run)).toEqual([acted ? { startedAt: 0, runId: "r1", sideEffect: true } : null])
          expect(h.log.includes("update:m1")).toBe(!acted)
        }).pipe(Effect.provide(h.layer))
      }
    }))

  it.effect("a failure after the agent acted (timeout after discord_send) is Done and never re-sent", () => {
    const h = makeHarness({
      run: (request) =>
        Effect.zipRight(
          request.observer?.onToolCall?.(discordSend) ?? Effect.void,
          Effect.fail(
            new LettaTimeout({
              agentId: request.agentId,
              sideEffect: true,
              reason: "timed out",
              timeout: request.timeout,
              phase: "stream"
            })
          )
        )
    })
    return Effect.gen(function*() {
      const { dispatch } = yield* makeDispatcher({ retrySchedule })
      const fiber = yield* Effect.fork(dispatch(event("m1")))
      yield* TestClock.adjust(Duration.minutes(1))
      expect(yield* Fiber.join(fiber)).toEqual(DispatchOutcome.done)
      expect(h.requests).toHaveLength(1)
      // Handled, not failed: no dead letter either.
      expect((yield* Effect.flatMap(DeadLetters, (store) => store.list(Partition.guild("g1")))).total).toBe(0)
    }).pipe(Effect.provide(h.layer))
  })

  it.effect("typing shows while the agent works and stops at its discord_send", () =>
    Effect.gen(function*() {
      const toolCall = yield* Deferred.make<void>()
      const finish = yield* Deferred.make<void>()
      const h = makeHarness({
        run: (request) =>
          Effect.gen(function*() {
            yield* Deferred.await(toolCall)
            yield* request.observer?.onToolCall?.(discordSend) ?? Effect.void
            yield* Deferred.await(finish)
            return report(request.agentId)
          })
      })
      yield* Effect.gen(function*() {
        const { dispatch } = yield* makeDispatcher({ retrySchedule })
        const fiber = yield* Effect.fork(dispatch(event("m1", { channelId: "c7" })))
        yield* settle
        // Typing waits for the grace: a run that answers within it shows none.
        expect(h.typed).toEqual([])
        yield* TestClock.adjust(typingGrace)
        yield* settle
        expect(h.typed).toEqual([{ channelId: "c7", at: grace }])
        yield* TestClock.adjust(Duration.seconds(8))
        yield* settle
        expect(h.typed.map((t) => t.at)).toEqual([grace, grace + 8_000])
        yield* Deferred.succeed(toolCall, undefined)
        yield* settle
        // The run is still going, but the reply is out: no more typing.
        yield* TestClock.adjust(Duration.seconds(8))
        yield* settle
        yield* TestClock.adjust(Duration.seconds(8))
        yield* settle
        expect(h.typed.map((t) => t.at)).toEqual([grace, grace + 8_000])
        expect(fiber.unsafePoll()).toBeNull()
        yield* Deferred.succeed(finish, undefined)
        expect(yield* Fiber.join(fiber)).toEqual(DispatchOutcome.done)
      }).pipe(Effect.provide(h.layer))
    }))

  it.effect("typing stops when the run ends, even without a tool call", () =>
    Effect.gen(function*() {
      const finish = yield* Deferred.make<void>()
      const h = makeHarness({
        run: (request) => Effect.as(Deferred.await(finish), report(request.agentId))
      })
      yield* Effect.gen(function*() {
        const { dispatch } = yield* makeDispatcher({ retrySchedule })
        const fiber = yield* Effect.fork(dispatch(event("m1")))
        yield* settle
        yield* TestClock.adjust(Duration.millis(grace + 8_000))
        yield* settle
        yield* Deferred.succeed(finish, undefined)
        yield* Fiber.join(fiber)
        yield* TestClock.adjust(Duration.seconds(30))
        yield* settle
        expect(h.typed.map((t) => t.at)).toEqual([grace, grace + 8_000])
      }).pipe(Effect.provide(h.layer))
    }))

  it.effect("typing stops when the dispatch is interrupted (shutdown) or fails unexpectedly", () =>
    Effect.gen(function*() {
      const h = makeHarness({
        run: (request, call) =>
          call === 1
            ? Effect.never
            : Effect.zipRight(Effect.sleep(Duration.seconds(10)), Effect.die(new Error(`bug in run ${request.prompt}`)))
      })
      yield* Effect.gen(function*() {
        const { dispatch } = yield* makeDispatcher({ retrySchedule })
        const interrupted = yield* Effect.fork(dispatch(event("m1", { channelId: "c1" })))
        yield* settle
        yield* TestClock.adjust(Duration.seconds(8))
        yield* settle
        yield* Fiber.interrupt(interrupted)
        // The fiber goes on after the dispatch (as the queue's does, to settle the event): the
        // typing must stop with the dispatch, not with the fiber.
        const outcome = yield* Deferred.make<DispatchOutcome>()
        const failed = yield* Effect.fork(
          Effect.zipRight(
            Effect.flatMap(dispatch(event("m2", { channelId: "c2" })), (o) => Deferred.succeed(outcome, o)),
            Effect.never
          )
        )
        yield* TestClock.adjust(Duration.seconds(10))
        // The defect is dead-lettered: the dispatch itself ends normally.
        expect(yield* Deferred.await(outcome)).toEqual(DispatchOutcome.done)
        yield* TestClock.adjust(Duration.seconds(60))
        yield* settle
        yield* Fiber.interrupt(failed)
        // m1 from the grace until 8 s; m2, started at 8 s and failing at 18 s, from 8 s + grace.
        expect(h.typed).toEqual([
          { channelId: "c1", at: grace },
          { channelId: "c2", at: 8_000 + grace },
          { channelId: "c2", at: 16_000 + grace }
        ])
      }).pipe(Effect.provide(h.layer))
    }))

  it.effect("every line of a run carries the event's ids; the line that ends it, its timings", () => {
    const lines: Array<{ readonly message: string; readonly annotations: Record<string, unknown> }> = []
    const logger = Logger.add(Logger.make(({ annotations, message }) => {
      lines.push({
        message: Array.isArray(message) ? message.join(" ") : String(message),
        annotations: Object.fromEntries(HashMap.toEntries(annotations))
      })
    }))
    const h = makeHarness({
      run: (request, call) =>
        Effect.zipRight(
          Effect.logInfo(`executor working on ${request.prompt}`),
          call === 1
            ? Effect.fail(serverError(request.agentId))
            : Effect.as(Effect.sleep(Duration.seconds(2)), report(request.agentId))
        )
    })
    return Effect.gen(function*() {
      const { dispatch } = yield* makeDispatcher({ retrySchedule: makeLettaRetrySchedule({ jitter: 0, attempts: 1 }) })
      yield* TestClock.adjust(Duration.seconds(3))
      expect(yield* dispatch(event("m1", { guildId: "g9", channelId: "c9", agentId: "a9", enqueuedAt: 1_000 }))).toEqual(
        DispatchOutcome.held(Duration.seconds(5))
      )
      const done = yield* Effect.fork(dispatch(event("m2", { guildId: null, channelId: "dm-1", enqueuedAt: 3_000, attempts: 1 })))
      yield* TestClock.adjust(Duration.seconds(2))
      expect(yield* Fiber.join(done)).toEqual(DispatchOutcome.done)
      const ids = (line: { readonly annotations: Record<string, unknown> }) => {
        const { agentId, channelId, guildId, messageId } = line.annotations
        return { guildId, channelId, messageId, agentId }
      }
      expect(lines.map((line) => line.message)).toEqual([
        "executor working on prompt m1",
        "run failed transiently (LettaServerError: 502 Bad Gateway); kept at the front of its channel",
        "executor working on prompt m2",
        "run finished in 2000 ms after 0 ms in queue"
      ])
      expect(lines.slice(0, 2).map(ids)).toEqual(
        Array(2).fill({ guildId: "g9", channelId: "c9", messageId: "m1", agentId: "a9" })
      )
      expect(lines.slice(2).map(ids)).toEqual(Array(2).fill({ guildId: "dm", channelId: "dm-1", messageId: "m2", agentId: "a1" }))
      expect(lines[1]?.annotations).toMatchObject({ queuedMs: 2_000, runMs: 0, attempts: 1 })
      expect(lines[3]?.annotations).toMatchObject({ queuedMs: 0, runMs: 2_000, attempts: 2 })
      expect(lines[0]?.annotations).not.toHaveProperty("runMs")
    }).pipe(Effect.provide(h.layer), Effect.provide(logger))
  })

  it.effect("no typing when the guild's typing setting is off", () => {
    const h = makeHarness({
      settings: { typing: false },
      run: (request) => Effect.as(Effect.sleep(Duration.seconds(20)), report(request.agentId))
    })
    return Effect.gen(function*() {
      const { dispatch } = yield* makeDispatcher({ retrySchedule })
      const fiber = yield* Effect.fork(dispatch(event("m1")))
      yield* TestClock.adjust(Duration.seconds(20))
      expect(yield* Fiber.join(fiber)).toEqual(DispatchOutcome.done)
      expect(h.typed).toEqual([])
    }).pipe(Effect.provide(h.layer))
  })

  it.effect("the guild's timeout setting bounds the run", () => {
    const h = makeHarness({
      settings: { timeout: 45 },
      run: (request) => Effect.succeed(report(request.agentId))
    })
    return Effect.gen(function*() {
      const { dispatch } = yield* makeDispatcher({ retrySchedule })
      yield* dispatch(event("m1"))
      expect(h.requests.map((r) => Duration.toMillis(r.request.timeout))).toEqual([45_000])
      // A direct message has no guild: the default timeout applies.
      yield* dispatch(event("m2", { guildId: null }))
      expect(h.requests.map((r) => Duration.toMillis(r.request.timeout))).toEqual([45_000, defaultGuildSettings.timeout * 1_000])
    }).pipe(Effect.provide(h.layer))
  })
})

describe("dispatch consuming the real EventQueue", () => {
  const withQueue = <A, E, R>(
    use: (queue: EventQueueService, entries: Effect.Effect<ReadonlyArray<QueuedEvent>>) => Effect.Effect<A, E, R>
  ) =>
    Effect.gen(function*() {
      const memory = yield* makeMemoryJournal
      const queue = yield* EventQueue.make().pipe(
        Effect.provide(QueuePolicy.layerFixed({ capacity: 50, spacing: 0 })),
        Effect.provideService(EventJournal, memory.journal)
      )
      // The dispatcher records run progress in the queue's own journal.
      return yield* use(queue, memory.entries).pipe(Effect.provideService(EventJournal, memory.journal))
    })

  it.scoped("an open breaker keeps events queued; after the cool-down each is delivered exactly once", () => {
    const delivered: Array<string> = []
    const h = makeHarness({
      breaker: { failureThreshold: 1, cooldown: "30 seconds" },
      run: (request) => Effect.sync(() => void delivered.push(request.prompt)).pipe(Effect.as(report(request.agentId)))
    })
    return withQueue((queue, entries) =>
      Effect.gen(function*() {
        const { dispatch } = yield* makeDispatcher({ retrySchedule })
        yield* openBreaker
        for (const [id, channelId] of [["m1", "c1"], ["m2", "c1"], ["m3", "c2"], ["m4", "c3"]] as const) {
          yield* queue.offer(event(id, { channelId }))
        }
        yield* Effect.forkScoped(queue.consume(dispatch))
        yield* settle
        yield* TestClock.adjust(Duration.seconds(29))
        yield* settle
        expect(delivered).toEqual([])
        expect((yield* entries).map((e) => e.messageId)).toEqual(["m1", "m2", "m3", "m4"])
        for (let i = 0; i < 10; i++) {
          yield* TestClock.adjust(Duration.seconds(1))
          yield* settle
        }
        expect([...delivered].sort()).toEqual(["prompt m1", "prompt m2", "prompt m3", "prompt m4"])
        // m1 before m2: one channel is FIFO.
        expect(delivered.indexOf("prompt m1")).toBeLessThan(delivered.indexOf("prompt m2"))
        expect(yield* entries).toEqual([])
        const stats = yield* queue.stats
        expect(stats.inFlight).toEqual([])
        expect(stats.partitions.reduce((n, p) => n + p.pending, 0)).toBe(0)
        // Nothing more turns up later.
        yield* TestClock.adjust(Duration.minutes(5))
        yield* settle
        expect(delivered).toHaveLength(4)
      })
    ).pipe(Effect.provide(h.layer))
  })

  it.scoped("runs are serialized per agent while different agents overlap", () => {
    const running = new Map<string, number>()
    const maxPerAgent = new Map<string, number>()
    let total = 0
    let maxTotal = 0
    const delivered: Array<string> = []
    const h = makeHarness({
      run: (request) =>
        Effect.acquireUseRelease(
          Effect.sync(() => {
            const now = (running.get(request.agentId) ?? 0) + 1
            running.set(request.agentId, now)
            maxPerAgent.set(request.agentId, Math.max(maxPerAgent.get(request.agentId) ?? 0, now))
            total++
            maxTotal = Math.max(maxTotal, total)
          }),
          () => Effect.as(Effect.sleep(Duration.seconds(1)), report(request.agentId)),
          () =>
            Effect.sync(() => {
              running.set(request.agentId, (running.get(request.agentId) ?? 1) - 1)
              total--
              delivered.push(request.prompt)
            })
        )
    })
    return withQueue((queue) =>
      Effect.gen(function*() {
        const { dispatch } = yield* makeDispatcher({ retrySchedule })
        // Each agent's events are in different channels, so only the per-agent rule can serialize them.
        for (
          const [id, channelId, agentId] of [
            ["m1", "c1", "a1"],
            ["m2", "c2", "a1"],
            ["m3", "c3", "a1"],
            ["m4", "c4", "a2"],
            ["m5", "c5", "a2"],
            ["m6", "c6", "a2"]
          ] as const
        ) {
          yield* queue.offer(event(id, { channelId, agentId }))
        }
        yield* Effect.forkScoped(queue.consume(dispatch))
        for (let i = 0; i < 10; i++) {
          yield* settle
          yield* TestClock.adjust(Duration.millis(500))
        }
        yield* settle
        expect(delivered).toHaveLength(6)
        expect(maxPerAgent.get("a1")).toBe(1)
        expect(maxPerAgent.get("a2")).toBe(1)
        expect(maxTotal).toBe(2)
      })
    ).pipe(Effect.provide(h.layer))
  })
})
