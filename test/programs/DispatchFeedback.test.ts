/**
 * ⚠️ on the user's message for every dead letter at dispatch (failed, expired, a Defect, a store
 * that fails), once per message, never for an event that is answered or kept; and a reaction that
 * fails or hangs never changes or delays the dispatch. The dispatcher over ./DispatchHarness.ts
 * (Feedback over recording reactions), under TestClock.
 */
import { describe, expect, it } from "@effect/vitest"
import { Duration, Effect, Fiber, TestClock } from "effect"
import { MissingAccess } from "../../src/domain/Errors.js"
import { Partition } from "../../src/domain/Event.js"
import { AgentNotFound, LettaRejected } from "../../src/domain/LettaErrors.js"
import { makeDispatcher } from "../../src/programs/Dispatch.js"
import { Feedback } from "../../src/services/discord/Feedback.js"
import { DeadLetters } from "../../src/services/queue/DeadLetters.js"
import { DispatchOutcome } from "../../src/services/queue/EventQueue.js"
import { sentPairs } from "../fakes/reactions.js"
import { event } from "../services/queue/harness.js"
import { type HarnessOptions, makeHarness, report, retrySchedule, serverError, settle } from "./DispatchHarness.js"

const warning = "\u26A0\uFE0F"

const notFound = (agentId: string) => new AgentNotFound({ agentId, sideEffect: false, reason: "404 agent not found" })

/** The harness's dispatcher, and a way to wait for the reactions it set off. */
const dispatcher = Effect.all({ dispatcher: makeDispatcher({ retrySchedule, maxEventAge: "1 hour" }), feedback: Feedback })

const failing = (options: Partial<HarnessOptions> = {}) =>
  makeHarness({ run: (request) => Effect.fail(notFound(request.agentId)), ...options })

describe("dispatch: feedback on dead letters", () => {
  it.effect("a permanent failure: ⚠️ on the message, in its channel (a DM's too)", () => {
    const h = failing()
    return Effect.gen(function*() {
      const { dispatcher: { dispatch }, feedback } = yield* dispatcher
      yield* dispatch(event("m1"))
      yield* dispatch(event("m2", { guildId: null, channelId: "dm-7" }))
      yield* feedback.idle
      expect(h.reactions.map((r) => [r.channelId, r.messageId, r.emoji])).toEqual([
        ["c1", "m1", warning],
        ["dm-7", "m2", warning]
      ])
    }).pipe(Effect.provide(h.layer))
  })

  it.effect("expired when its turn came: ⚠️, and nothing sent to the agent", () => {
    const h = makeHarness({ run: (request) => Effect.succeed(report(request.agentId)) })
    return Effect.gen(function*() {
      const { dispatcher: { dispatch }, feedback } = yield* dispatcher
      yield* TestClock.adjust(Duration.hours(2))
      expect(yield* dispatch(event("m1"))).toEqual(DispatchOutcome.done)
      yield* feedback.idle
      expect(h.requests).toEqual([])
      expect(sentPairs(h.reactions)).toEqual([`m1:${warning}`])
    }).pipe(Effect.provide(h.layer))
  })

  it.effect("a Defect in the dispatcher: ⚠️", () => {
    const h = makeHarness({ run: () => Effect.die(new Error("bug")) })
    return Effect.gen(function*() {
      const { dispatcher: { dispatch }, feedback } = yield* dispatcher
      yield* dispatch(event("m1"))
      yield* feedback.idle
      expect(sentPairs(h.reactions)).toEqual([`m1:${warning}`])
    }).pipe(Effect.provide(h.layer))
  })

  it.effect("a dead-letter store that fails: the event is lost, the user still gets ⚠️", () => {
    const h = failing({ failDeadLetters: true })
    return Effect.gen(function*() {
      const { dispatcher: { dispatch }, feedback } = yield* dispatcher
      yield* dispatch(event("m1"))
      yield* feedback.idle
      expect(sentPairs(h.reactions)).toEqual([`m1:${warning}`])
    }).pipe(Effect.provide(h.layer))
  })

  it.effect("retried by an admin and dead-lettered again: still one ⚠️", () => {
    const h = makeHarness({
      run: (request, call) =>
        Effect.fail(
          call === 1
            ? notFound(request.agentId)
            : new LettaRejected({ agentId: request.agentId, sideEffect: false, reason: "400", status: 400 })
        )
    })
    return Effect.gen(function*() {
      const { dispatcher: { dispatch }, feedback } = yield* dispatcher
      yield* dispatch(event("m1"))
      yield* feedback.idle
      // `/aurora queue retry`: the dead letter's event, queued again a minute later.
      yield* TestClock.adjust(Duration.minutes(1))
      yield* dispatch(event("m1", { enqueuedAt: 60_000 }))
      yield* feedback.idle
      const letters = yield* Effect.flatMap(DeadLetters, (store) => store.list(Partition.guild("g1")))
      expect(letters.letters.map((l) => l.errorType)).toEqual(expect.arrayContaining(["LettaRejected"]))
      expect(sentPairs(h.reactions)).toEqual([`m1:${warning}`])
    }).pipe(Effect.provide(h.layer))
  })

  it.effect("answered, kept after a transient failure, or failed after the agent acted: no reaction", () => {
    const h = makeHarness({
      run: (request, call) =>
        call === 1
          ? Effect.succeed(report(request.agentId))
          : call <= 4
          ? Effect.fail(serverError(request.agentId))
          : Effect.fail(new AgentNotFound({ agentId: request.agentId, sideEffect: true, reason: "404 after acting" }))
    })
    return Effect.gen(function*() {
      const { dispatcher: { dispatch }, feedback } = yield* dispatcher
      expect(yield* dispatch(event("m1"))).toEqual(DispatchOutcome.done)
      const held = yield* Effect.fork(dispatch(event("m2")))
      yield* TestClock.adjust(Duration.minutes(1))
      expect((yield* Fiber.join(held))._tag).toBe("Held")
      expect(yield* dispatch(event("m3"))).toEqual(DispatchOutcome.done)
      yield* feedback.idle
      expect(h.requests).toHaveLength(5)
      expect(h.reactions).toEqual([])
    }).pipe(Effect.provide(h.layer))
  })

  it.effect("`feedback` false in the guild: dead-lettered, no reaction", () => {
    const h = failing({ settings: { feedback: false } })
    return Effect.gen(function*() {
      const { dispatcher: { dispatch }, feedback } = yield* dispatcher
      yield* dispatch(event("m1"))
      yield* feedback.idle
      expect((yield* Effect.flatMap(DeadLetters, (store) => store.list(Partition.guild("g1")))).total).toBe(1)
      expect(h.reactions).toEqual([])
    }).pipe(Effect.provide(h.layer))
  })

  it.effect("a reaction refused (403) or left unanswered changes nothing: same outcome, dead letter kept, no delay", () => {
    let calls = 0
    const h = failing({
      reactions: {
        answer: (call) =>
          ++calls === 1 ? Effect.fail(new MissingAccess({ channelId: call.channelId, operation: "addReaction" })) : Effect.never
      }
    })
    return Effect.gen(function*() {
      const { dispatcher: { dispatch }, feedback } = yield* dispatcher
      // Under TestClock a dispatch that waited for the hanging reaction would never return.
      expect(yield* dispatch(event("m1"))).toEqual(DispatchOutcome.done)
      expect(yield* dispatch(event("m2"))).toEqual(DispatchOutcome.done)
      yield* settle
      expect(yield* feedback.inFlight).toBe(1)
      const letters = yield* Effect.flatMap(DeadLetters, (store) => store.list(Partition.guild("g1")))
      expect(letters.letters.map((l) => l.event.messageId).sort()).toEqual(["m1", "m2"])
      yield* TestClock.adjust(Duration.seconds(10))
      yield* feedback.idle
      // Each tried once: the refusal and the timeout are not retried.
      expect(sentPairs(h.reactions)).toEqual([`m1:${warning}`, `m2:${warning}`])
    }).pipe(Effect.provide(h.layer))
  })
})
