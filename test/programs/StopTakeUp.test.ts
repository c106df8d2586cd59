/**
 * The start-up take-up of open stops (programs/StopTakeUp.ts) with the real continuation
 * (ApprovalResume) over ./DispatchHarness.ts fakes, under TestClock: each kind of call is answered
 * without running anything (finished -> its result, started -> "interrupted", never recorded ->
 * "not run", a person's call -> denied), the record is deleted once answered or refused and kept
 * when Letta cannot be reached; a stop the gate holds is left to the gate; a loop cut off by a
 * shutdown leaves its record, which the take-up answers "interrupted"; and a 409 "waiting for
 * approval" in a conversation with an open stop is busy, not a dead letter.
 */
import { describe, expect, it } from "@effect/vitest"
import { Deferred, Effect, Fiber, TestClock } from "effect"
import type { RunReport } from "../../src/domain/AgentRun.js"
import type { ToolCall } from "../../src/domain/ToolCall.js"
import { Partition } from "../../src/domain/Event.js"
import { AgentBusy, LettaRejected, LettaServerError } from "../../src/domain/LettaErrors.js"
import { interruptedResult, toolCallRetentionMs, ToolResult } from "../../src/domain/ToolCall.js"
import { makeApprovalResume } from "../../src/programs/ApprovalResume.js"
import { makeDispatcher } from "../../src/programs/Dispatch.js"
import { notRunResult, restartedBeforeAsking } from "../../src/programs/StopTakeUp.js"
import { PendingApprovals } from "../../src/services/approvals/PendingApprovals.js"
import { DeadLetters } from "../../src/services/queue/DeadLetters.js"
import { OpenStops } from "../../src/services/queue/OpenStops.js"
import { RunLog } from "../../src/services/queue/RunLog.js"
import { ToolCalls } from "../../src/services/queue/ToolCalls.js"
import { event } from "../services/queue/harness.js"
import { counterValue, makeHarness, noActions, retrySchedule, settle, silentReport } from "./DispatchHarness.js"
import { builtin, channelId, counted, openStops, origin, personal, start, stopOf, takeUpStops, world } from "./TakeUpHarness.js"

const serverDown = new LettaServerError({ agentId: "a1", sideEffect: false, reason: "503 Service Unavailable", status: 503 })

describe("StopTakeUp: a stop a previous process left open is answered, never run", () => {
  it.effect("finished -> its result, started -> interrupted, never recorded -> not run, a person's call -> denied", () => {
    const d = counted()
    const h = makeHarness({
      settings: { tools: "builtin" },
      actions: d.actions,
      run: () => Effect.die("no prompt"),
      continueRun: () => Effect.succeed(silentReport("a1", [], "run-2"))
    })
    return Effect.gen(function*() {
      const calls = yield* ToolCalls
      yield* calls.begin(start("s1", "discord_send"))
      yield* calls.finish("s1", ToolResult.success("sent message 42"), 600)
      yield* calls.begin(start("s2", "discord_add_reaction"))
      const stops = yield* OpenStops
      yield* stops.open(stopOf("s1", [
        builtin("discord_send", "s1"),
        builtin("discord_add_reaction", "s2"),
        builtin("discord_read_messages", "s3"),
        personal("web_search", "w1")
      ]))

      const counted = (tool: string, status: string) =>
        counterValue("aurora_tool_calls_total", { tool, executor: "aurora", status })
      const before = [yield* counted("discord_add_reaction", "interrupted"), yield* counted("discord_read_messages", "error")]
      expect(yield* takeUpStops).toEqual(["answered"])
      // Counted once each; the replayed send was counted when it ran.
      expect([yield* counted("discord_add_reaction", "interrupted"), yield* counted("discord_read_messages", "error")])
        .toEqual([before[0]! + 1, before[1]! + 1])
      expect(h.continuations.map((c) => c.request)).toMatchObject([{
        agentId: "a1",
        conversationId: "conv-1",
        answers: [
          { _tag: "ToolReturn", toolCallId: "s1", result: ToolResult.success("sent message 42") },
          { _tag: "ToolReturn", toolCallId: "s2", result: interruptedResult },
          { _tag: "ToolReturn", toolCallId: "s3", result: notRunResult },
          { _tag: "Decision", toolCallId: "w1", approve: false, reason: restartedBeforeAsking }
        ]
      }])
      // Nothing ran: no post, no reaction; the never-run call is recorded with its answer.
      expect(d.posts).toEqual([])
      expect((yield* calls.find("s3"))?.finished?.result).toEqual(notRunResult)
      expect((yield* calls.find("s2"))?.finished?.result).toEqual(interruptedResult)
      expect(yield* openStops).toEqual([])
      // The continuation's outcome is the triggering message's runs log row.
      const runs = yield* Effect.flatMap(RunLog, (log) => log.recent(Partition.guild("g1"), 10))
      expect(runs).toMatchObject([{ messageId: "m1", runId: "run-2" }])
    }).pipe(Effect.provide(world(h)))
  })

  it.effect("oldest first; Letta unreachable keeps the record for the next start (tried once here); refused deletes it", () => {
    let down = true
    const h = makeHarness({
      settings: { tools: "builtin" },
      run: () => Effect.die("no prompt"),
      continueRun: (request) =>
        request.answers[0]?.toolCallId === "old"
          ? (down ? Effect.fail(serverDown) : Effect.succeed(silentReport("a1", [], "run-2")))
          : Effect.fail(
            new LettaRejected({
              agentId: "a1",
              sideEffect: false,
              reason: "400 No tool call is currently awaiting approval",
              status: 400
            })
          )
    })
    return Effect.gen(function*() {
      const stops = yield* OpenStops
      yield* stops.open(stopOf("new", [builtin("discord_send", "new")], 2_000, { messageId: "m2", conversationId: "conv-2" }))
      yield* stops.open(stopOf("old", [builtin("discord_send", "old")], 1_000))

      // The continuation's retries wait on the clock.
      const first = yield* Effect.fork(takeUpStops)
      yield* TestClock.adjust("1 hour")
      expect(yield* Fiber.join(first)).toEqual(["kept", "refused"])
      const tried = h.continuations.map((c) => c.request.answers[0]?.toolCallId)
      // The old stop first, with its retries (one take-up), then the new one once.
      expect(tried[0]).toBe("old")
      expect(tried.at(-1)).toBe("new")
      expect(tried.filter((id) => id === "new")).toHaveLength(1)
      expect((yield* openStops).map((s) => s.key)).toEqual(["old"])

      // The next start: Letta is back.
      down = false
      expect(yield* takeUpStops).toEqual(["answered"])
      expect(yield* openStops).toEqual([])
    }).pipe(Effect.provide(world(h)))
  })

  it.effect("a stop the approval gate holds is left to the gate: record deleted, nothing sent", () => {
    const h = makeHarness({ settings: { tools: "builtin" }, run: () => Effect.die("no prompt") })
    return Effect.gen(function*() {
      const approvals = yield* PendingApprovals
      yield* approvals.create({
        ...origin,
        calls: [{ name: "web_search", toolCallId: "w1", arguments: "{}" }],
        answered: [],
        actionsBefore: [],
        requestedAt: 1_000
      }, 600_000)
      yield* Effect.flatMap(
        OpenStops,
        (stops) => stops.open(stopOf("s1", [builtin("discord_send", "s1"), personal("web_search", "w1")]))
      )
      expect(yield* takeUpStops).toEqual(["gate"])
      expect(h.continuations).toEqual([])
      expect(yield* openStops).toEqual([])
    }).pipe(Effect.provide(world(h)))
  })

  it.effect("a stop older than the tool call record's retention: its built-in calls are interrupted, unlooked", () => {
    const h = makeHarness({
      settings: { tools: "builtin" },
      run: () => Effect.die("no prompt"),
      continueRun: () => Effect.succeed(silentReport("a1", [], "run-2"))
    })
    return Effect.gen(function*() {
      yield* TestClock.setTime(toolCallRetentionMs + 2_000)
      yield* Effect.flatMap(OpenStops, (stops) => stops.open(stopOf("s1", [builtin("discord_send", "s1")])))
      expect(yield* takeUpStops).toEqual(["answered"])
      expect(h.continuations[0]?.request.answers).toEqual([{ _tag: "ToolReturn", toolCallId: "s1", result: interruptedResult }])
    }).pipe(Effect.provide(world(h)))
  })
})

describe("a loop cut off by a shutdown", () => {
  const send: ToolCall = {
    name: "discord_send",
    toolCallId: "k1",
    arguments: JSON.stringify({ channelId, message: "hi" })
  }
  const stopped: RunReport = {
    ...silentReport("a1", [], "run-1"),
    // The continuation's segment reacted (the agent's own call) before it stopped at the send.
    toolCalls: [{ name: "discord_add_reaction", toolCallId: "r0", argumentsSummary: "" }],
    stopReason: "requires_approval",
    approvalStop: { runId: "run-1", calls: [send] }
  }

  it.effect("leaves its stop recorded (the send started, no result, the actions before it); the next start answers it 'interrupted' once", () => {
    const posting = Deferred.unsafeMake<void>(undefined as never)
    const h = makeHarness({
      settings: { tools: "builtin" },
      actions: {
        ...noActions,
        locateChannel: (id) => Effect.succeed({ channelId: id, guildId: "g1", kind: "text", textBased: true }),
        // Discord holds the post: the shutdown comes while it waits.
        post: () => Effect.zipRight(Deferred.succeed(posting, undefined), Effect.never)
      },
      run: () => Effect.die("no prompt"),
      continueRun: (_, call) => Effect.succeed(call === 1 ? stopped : silentReport("a1", ["noted"], "run-2"))
    })
    return Effect.gen(function*() {
      const { resume } = yield* makeApprovalResume({ retrySchedule })
      const fiber = yield* Effect.fork(resume(origin, [], ["discord_send"]))
      yield* Deferred.await(posting)
      yield* Fiber.interrupt(fiber)

      const left = yield* openStops
      expect(left).toMatchObject([{
        key: "k1",
        origin: { conversationId: "conv-1", runId: "run-1" },
        calls: [{ toolCallId: "k1" }],
        // What the run did before this stop: the actions before its resumption, then its own.
        actionsBefore: ["discord_send", "discord_add_reaction"]
      }])
      expect((yield* Effect.flatMap(ToolCalls, (calls) => calls.find("k1")))?.finished).toBeNull()

      expect(yield* takeUpStops).toEqual(["answered"])
      const answering = h.continuations.filter((c) => c.request.answers.some((a) => a.toolCallId === "k1"))
      expect(answering.map((c) => c.request.answers)).toEqual([[{
        _tag: "ToolReturn",
        toolCallId: "k1",
        result: interruptedResult
      }]])
      expect(yield* openStops).toEqual([])
    }).pipe(Effect.provide(world(h)))
  })
})

describe("a dispatch cut off by a shutdown mid-loop", () => {
  it.effect("the interrupted dispatch leaves the stop recorded for the next start", () => {
    const posting = Deferred.unsafeMake<void>(undefined as never)
    const send: ToolCall = {
      name: "discord_send",
      toolCallId: "d1",
      arguments: JSON.stringify({ channelId, message: "hi" })
    }
    const h = makeHarness({
      settings: { tools: "builtin" },
      actions: {
        ...noActions,
        locateChannel: (id) => Effect.succeed({ channelId: id, guildId: "g1", kind: "text", textBased: true }),
        post: () => Effect.zipRight(Deferred.succeed(posting, undefined), Effect.never)
      },
      run: () =>
        Effect.succeed({
          ...silentReport("a1", [], "run-1"),
          stopReason: "requires_approval",
          approvalStop: { runId: "run-1", calls: [send] }
        })
    })
    return Effect.gen(function*() {
      const { dispatch } = yield* makeDispatcher({ retrySchedule })
      const fiber = yield* Effect.fork(dispatch(event("m5", { channelId })))
      yield* Deferred.await(posting)
      // What DispatchLive's finalizer does once AURORA_SHUTDOWN_GRACE is over: the run is interrupted.
      yield* Fiber.interrupt(fiber)
      expect(yield* openStops).toMatchObject([{ key: "d1", origin: { messageId: "m5", agentId: "a1" } }])
    }).pipe(Effect.provide(world(h)))
  })
})

describe("busyWhileAwaiting: a 409 'waiting for approval' where Aurora holds an open stop", () => {
  const pending409 = new AgentBusy({
    agentId: "a1",
    sideEffect: false,
    reason: "409 waiting for approval",
    pendingApproval: true
  })
  const ev = event("m9", { channelId })

  it.effect("is busy (back to the queue), no dead letter; without the stop it stays a dead letter", () => {
    const h = makeHarness({ run: () => Effect.fail(pending409) })
    return Effect.gen(function*() {
      const { dispatch } = yield* makeDispatcher({ retrySchedule })
      const stops = yield* OpenStops
      // The event's run goes to the agent's default conversation (`shared`); a stop elsewhere does not count.
      yield* stops.open(stopOf("elsewhere", [builtin("discord_send", "elsewhere")], 1_000, { conversationId: "conv-7" }))
      expect((yield* dispatch(event("m8", { channelId })))._tag).not.toBe("Retry")
      yield* stops.open(stopOf("s1", [builtin("discord_send", "s1")], 1_000, { conversationId: null }))
      expect((yield* dispatch(ev))._tag).toBe("Retry")
      const letters = Effect.map(Effect.flatMap(DeadLetters, (d) => d.list(Partition.guild("g1"))), (page) => page.letters)
      expect((yield* letters).map((l) => l.event.messageId)).toEqual(["m8"])
      yield* stops.close("s1")
      yield* settle
      expect((yield* dispatch(ev))._tag).not.toBe("Retry")
      expect((yield* letters).map((l) => l.event.messageId).sort()).toEqual(["m8", "m9"])
    }).pipe(Effect.provide(world(h)))
  })
})
