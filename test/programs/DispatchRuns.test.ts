/**
 * What the dispatcher writes to the runs log (`/aurora runs`), against the layer-swapped fakes of
 * ./DispatchHarness.ts and the memory RunLog, under TestClock: one record per dispatched event with
 * its latest outcome, the tool calls and run id the run observer saw, the conversation, timings;
 * nothing for an open breaker or a busy conversation; a failing runs log changes nothing else.
 */
import { describe, expect, it } from "@effect/vitest"
import { Duration, Effect, Fiber, TestClock } from "effect"
import type { RunRequest } from "../../src/domain/AgentRun.js"
import { MissingAccess } from "../../src/domain/Errors.js"
import { Partition } from "../../src/domain/Event.js"
import { ConversationBusy, LettaServerError, LettaTimeout, RunFailed } from "../../src/domain/LettaErrors.js"
import type { RunRecord } from "../../src/domain/RunRecord.js"
import { makeDispatcher } from "../../src/programs/Dispatch.js"
import { finishedOutcome } from "../../src/programs/dispatch/RunRecording.js"
import { DeadLetters } from "../../src/services/queue/DeadLetters.js"
import { DispatchOutcome } from "../../src/services/queue/EventQueue.js"
import { RunLog } from "../../src/services/queue/RunLog.js"
import { makeLettaRetrySchedule } from "../../src/services/letta/RetryPolicy.js"
import { captureLogs, type LogLine } from "../fakes/logs.js"
import { event } from "../services/queue/harness.js"
import { makeHarness, openBreaker, report, retrySchedule, serverError, settle, toolCall } from "./DispatchHarness.js"

const runs = Effect.flatMap(RunLog, (log) => log.recent(Partition.guild("g1"), 100))

/** What a run of the fake executor shows its observer, as the executor does: the run id, then each tool call in order. */
const streams = (request: RunRequest, runId: string | undefined, tools: ReadonlyArray<string>) =>
  Effect.gen(function*() {
    if (runId !== undefined) yield* request.observer?.onRunId?.(runId) ?? Effect.void
    yield* Effect.forEach(tools, (name, i) => request.observer?.onToolCall?.(toolCall(name, `t${i}`)) ?? Effect.void)
  })

/** A report naming these tools (the dispatcher's record takes them from the observer, not from here). */
const reportWith = (agentId: string, runId: string, tools: ReadonlyArray<string>) => ({
  ...report(agentId),
  runId,
  toolCalls: tools.map((name, i) => toolCall(name, `t${i}`))
})

const record = (messageId: string, over: Partial<RunRecord>): RunRecord => ({
  messageId,
  guildId: "g1",
  channelId: "c1",
  conversationId: null,
  runId: null,
  outcome: "answered",
  toolCalls: [],
  durationMs: 0,
  queuedMs: 0,
  finishedAt: 0,
  detail: null,
  ...over
})

describe("finishedOutcome", () => {
  it("answered when the agent called a Discord tool that acts, else silent", () => {
    const withTools = (...names: ReadonlyArray<string>) => reportWith("a1", "r", names)
    expect(finishedOutcome(withTools("discord_read_messages", "discord_send"))).toBe("answered")
    expect(finishedOutcome(withTools("discord_add_reaction"))).toBe("answered")
    expect(finishedOutcome(withTools())).toBe("silent")
    // Reading, or acting elsewhere (memory, the web), is not an answer in Discord.
    expect(finishedOutcome(withTools("discord_read_messages", "discord_get_server_info", "core_memory_append"))).toBe("silent")
  })
})

describe("dispatch -> runs log", () => {
  it.effect("a finished run: answered, with the observed tool calls in order, run id, duration, time in queue", () => {
    const tools = ["discord_read_messages", "discord_send", "discord_add_reaction"]
    const h = makeHarness({
      run: (request) =>
        streams(request, "run-1", tools).pipe(
          Effect.zipRight(Effect.sleep("1500 millis")),
          Effect.as(reportWith(request.agentId, "run-1", tools))
        )
    })
    return Effect.gen(function*() {
      const { dispatch } = yield* makeDispatcher({ retrySchedule })
      yield* TestClock.adjust(Duration.millis(400))
      const fiber = yield* Effect.fork(dispatch(event("m1", { enqueuedAt: 100 })))
      yield* TestClock.adjust(Duration.millis(1500))
      expect(yield* Fiber.join(fiber)).toEqual(DispatchOutcome.done)
      expect(yield* runs).toEqual([
        record("m1", { runId: "run-1", toolCalls: tools, durationMs: 1_500, queuedMs: 300, finishedAt: 1_900 })
      ])
    }).pipe(Effect.provide(h.layer))
  })

  it.effect("a finished run without a Discord action is silent", () => {
    const h = makeHarness({
      run: (request) =>
        streams(request, "run-1", ["discord_read_messages"]).pipe(
          Effect.as(reportWith(request.agentId, "run-1", ["discord_read_messages"]))
        )
    })
    return Effect.gen(function*() {
      const { dispatch } = yield* makeDispatcher({ retrySchedule })
      yield* dispatch(event("m1"))
      expect(yield* runs).toEqual([record("m1", { outcome: "silent", runId: "run-1", toolCalls: ["discord_read_messages"] })])
    }).pipe(Effect.provide(h.layer))
  })

  it.effect("a silent run whose text Aurora posted is silent-posted; fallback off leaves it silent; a refused post says so", () =>
    Effect.gen(function*() {
      const silent = (request: RunRequest) =>
        Effect.succeed({ ...reportWith(request.agentId, "run-1", []), assistantMessages: ["hi"] })
      const posted = makeHarness({ run: silent })
      const off = makeHarness({ run: silent, settings: { fallback: "off" } })
      const refused = makeHarness({
        run: silent,
        post: () => Effect.fail(new MissingAccess({ operation: "postReply", channelId: "c1" }))
      })
      const outcomeWith = (h: ReturnType<typeof makeHarness>) =>
        Effect.gen(function*() {
          const { dispatch } = yield* makeDispatcher({ retrySchedule })
          yield* dispatch(event("m1"))
          return (yield* runs).map((r) => [r.outcome, r.detail])
        }).pipe(Effect.provide(h.layer))
      expect(yield* outcomeWith(posted)).toEqual([["silent-posted", null]])
      expect(posted.posts).toHaveLength(1)
      expect(yield* outcomeWith(off)).toEqual([["silent", null]])
      expect(off.posts).toHaveLength(0)
      expect(yield* outcomeWith(refused)).toEqual([["silent", "the fallback post failed (see the log)"]])
    }))

  it.effect("a transient failure kept for another try: failed, saying so; the last attempt's tools and run", () => {
    const h = makeHarness({
      run: (request, call) =>
        Effect.zipRight(
          streams(request, `run-${call}`, call === 3 ? ["discord_read_messages", "web_search"] : ["conversation_search"]),
          Effect.fail(new LettaServerError({ ...serverError(request.agentId), runId: `run-${call}` }))
        )
    })
    return Effect.gen(function*() {
      const { dispatch } = yield* makeDispatcher({ retrySchedule })
      const fiber = yield* Effect.fork(dispatch(event("m1")))
      yield* TestClock.adjust(Duration.seconds(3))
      expect(yield* Fiber.join(fiber)).toEqual(DispatchOutcome.held(Duration.seconds(5)))
      expect(yield* runs).toEqual([record("m1", {
        outcome: "failed",
        runId: "run-3",
        toolCalls: ["discord_read_messages", "web_search"],
        durationMs: 3_000,
        finishedAt: 3_000,
        detail: "LettaServerError: 502 Bad Gateway; kept: it will be tried again"
      })])
    }).pipe(Effect.provide(h.layer))
  })

  it.effect("a failure after the agent acted: failed, not sent again, with the error's run id and the send", () => {
    const h = makeHarness({
      run: (request) =>
        Effect.zipRight(
          streams(request, "run-seen", ["discord_send"]),
          Effect.fail(
            new LettaTimeout({
              agentId: request.agentId,
              runId: "run-err",
              sideEffect: true,
              reason: "no answer within 60 s",
              timeout: Duration.seconds(60),
              phase: "stream"
            })
          )
        )
    })
    return Effect.gen(function*() {
      const { dispatch } = yield* makeDispatcher({ retrySchedule })
      expect(yield* dispatch(event("m1"))).toEqual(DispatchOutcome.done)
      expect(yield* runs).toEqual([record("m1", {
        outcome: "failed",
        runId: "run-err",
        toolCalls: ["discord_send"],
        detail: "LettaTimeout: no answer within 60 s; the agent had acted: not sent again"
      })])
    }).pipe(Effect.provide(h.layer))
  })

  it.effect("a permanent failure: dead-lettered, with the tools seen (a failed run has no report) and the error's run id", () => {
    const h = makeHarness({
      run: (request) =>
        Effect.zipRight(
          streams(request, "run-7", ["discord_read_messages"]),
          Effect.fail(
            new RunFailed({ agentId: request.agentId, runId: "run-7", sideEffect: false, reason: "stop reason max_steps" })
          )
        )
    })
    return Effect.gen(function*() {
      const { dispatch } = yield* makeDispatcher({ retrySchedule })
      expect(yield* dispatch(event("m1"))).toEqual(DispatchOutcome.done)
      expect(yield* runs).toEqual([record("m1", {
        outcome: "dead-lettered",
        runId: "run-7",
        toolCalls: ["discord_read_messages"],
        detail: "RunFailed: stop reason max_steps"
      })])
      expect((yield* Effect.flatMap(DeadLetters, (d) => d.list(Partition.guild("g1")))).total).toBe(1)
    }).pipe(Effect.provide(h.layer))
  })

  it.effect("too old when its turn comes: dead-lettered without a run", () => {
    const h = makeHarness({ run: (request) => Effect.succeed(report(request.agentId)) })
    return Effect.gen(function*() {
      const { dispatch } = yield* makeDispatcher({ retrySchedule, maxEventAge: "1 hour" })
      yield* TestClock.adjust(Duration.hours(2))
      yield* dispatch(event("m1"))
      expect(h.requests).toHaveLength(0)
      expect(yield* runs).toEqual([record("m1", {
        outcome: "dead-lettered",
        durationMs: null,
        queuedMs: 7_200_000,
        finishedAt: 7_200_000,
        detail: "expired: pending for 2h (limit 1h) when its turn came"
      })])
    }).pipe(Effect.provide(h.layer))
  })

  it.effect("a fault in the dispatcher: dead-lettered as a defect", () => {
    const h = makeHarness({ run: () => Effect.die(new Error("bug in a fake")) })
    return Effect.gen(function*() {
      const { dispatch } = yield* makeDispatcher({ retrySchedule })
      expect(yield* dispatch(event("m1"))).toEqual(DispatchOutcome.done)
      const [only] = yield* runs
      expect(only).toMatchObject({ outcome: "dead-lettered", durationMs: null, queuedMs: null, runId: null })
      expect(only?.detail).toContain("Defect: Error: bug in a fake")
    }).pipe(Effect.provide(h.layer))
  })

  it.effect("an open breaker and a busy conversation never reached the agent: nothing is recorded", () => {
    const h = makeHarness({
      breaker: { failureThreshold: 1 },
      run: (request) =>
        Effect.fail(
          new ConversationBusy({
            agentId: request.agentId,
            sideEffect: false,
            reason: "409 busy",
            conversationId: request.conversationId ?? "none"
          })
        )
    })
    return Effect.gen(function*() {
      const { dispatch } = yield* makeDispatcher({ retrySchedule })
      expect((yield* dispatch(event("busy", { conversationMode: "channel" })))._tag).toBe("Retry")
      yield* openBreaker
      expect((yield* dispatch(event("held")))._tag).toBe("Held")
      expect(yield* runs).toEqual([])
    }).pipe(Effect.provide(h.layer))
  })

  it.effect("in a conversation: its id is recorded; a later outcome of the message replaces the earlier one", () => {
    const h = makeHarness({
      run: (request, call) =>
        call === 1
          ? Effect.fail(serverError(request.agentId))
          : Effect.zipRight(
            streams(request, "run-2", ["discord_send"]),
            Effect.succeed(reportWith(request.agentId, "run-2", ["discord_send"]))
          )
    })
    return Effect.gen(function*() {
      // No retries within a dispatch: the transient failure is held at once.
      const { dispatch } = yield* makeDispatcher({ retrySchedule: makeLettaRetrySchedule({ attempts: 1 }) })
      const first = event("m1", { conversationMode: "channel" })
      expect((yield* dispatch(first))._tag).toBe("Held")
      expect((yield* runs).map((r) => [r.outcome, r.conversationId])).toEqual([["failed", "conv-1"]])
      yield* TestClock.adjust(Duration.seconds(5))
      yield* dispatch({ ...first, attempts: 1 })
      expect(yield* runs).toEqual([record("m1", {
        conversationId: "conv-1",
        runId: "run-2",
        toolCalls: ["discord_send"],
        queuedMs: 5_000,
        finishedAt: 5_000
      })])
    }).pipe(Effect.provide(h.layer))
  })

  for (const failure of ["error", "defect"] as const) {
    it.effect(`a runs log that fails (${failure}) is logged and changes nothing else`, () => {
      const h = makeHarness({
        failRunLog: failure,
        run: (request, call) =>
          call === 1
            ? Effect.succeed(report(request.agentId))
            : Effect.fail(new RunFailed({ agentId: request.agentId, sideEffect: false, reason: "stop reason error" }))
      })
      const lines: Array<LogLine> = []
      return Effect.gen(function*() {
        const { dispatch } = yield* makeDispatcher({ retrySchedule })
        expect(yield* dispatch(event("ok"))).toEqual(DispatchOutcome.done)
        expect(yield* dispatch(event("bad"))).toEqual(DispatchOutcome.done)
        yield* settle
        // The failed run is still a dead letter, and nothing was taken for a fault in the dispatcher.
        const letters = yield* Effect.flatMap(DeadLetters, (d) => d.list(Partition.guild("g1")))
        expect(letters.letters.map((l) => [l.event.messageId, l.errorType])).toEqual([["bad", "RunFailed"]])
        expect(lines.filter((l) => l.message === "runs: could not record the run's outcome").map((l) => l.level)).toEqual([
          "ERROR",
          "ERROR"
        ])
        expect(lines.some((l) => l.message.includes("unexpectedly"))).toBe(false)
      }).pipe(Effect.provide(h.layer), Effect.provide(captureLogs(lines)))
    })
  }
})
