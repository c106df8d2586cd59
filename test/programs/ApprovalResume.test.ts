/**
 * ApprovalResume (the ApprovalContinuation): a person's decision continues the stopped run with
 * the answers as given, on its route; the tool loop carries it on; a silent end gets the fallback
 * as a reply to the triggering message, unless the run made a Discord action before its stop (the
 * approval's `actionsBefore`, or Aurora's send at the stop); the runs log row says how it ended;
 * failures are recorded, never thrown; the resumed run's side effects reach the triggering
 * message's journal entry when it still has one (a restart at an open stop).
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import { ApprovalAnswer, type ApprovalRequest } from "../../src/domain/Approval.js"
import type { RunReport } from "../../src/domain/AgentRun.js"
import { Partition } from "../../src/domain/Event.js"
import { RunFailed } from "../../src/domain/LettaErrors.js"
import { otidFor } from "../../src/domain/Otid.js"
import { ToolResult } from "../../src/domain/ToolCall.js"
import { makeApprovalResume } from "../../src/programs/ApprovalResume.js"
import { EventJournal } from "../../src/services/queue/EventJournal.js"
import { RunLog } from "../../src/services/queue/RunLog.js"
import { ToolCalls } from "../../src/services/queue/ToolCalls.js"
import { event } from "../services/queue/harness.js"
import { makeHarness, noActions, retrySchedule, silentReport, toolCall } from "./DispatchHarness.js"
import { channelId, origin } from "./TakeUpHarness.js"

const approved = [ApprovalAnswer.decision("w1", true, "approved by Alice")]
const runsOf = Effect.flatMap(RunLog, (log) => log.recent(Partition.guild("g1"), 10))

describe("ApprovalResume", () => {
  it.effect("the decision continues the run on its conversation; nothing sent before and a silent end: the fallback answers", () => {
    const h = makeHarness({
      run: () => Effect.die("no prompt"),
      continueRun: () => Effect.succeed(silentReport("a1", ["Found it."], "run-2"))
    })
    return Effect.gen(function*() {
      const { resume } = yield* makeApprovalResume({ retrySchedule })
      yield* resume(origin, approved, [])
      expect(h.continuations.map((c) => c.request)).toMatchObject([{
        agentId: "a1",
        conversationId: "conv-1",
        otid: otidFor("m1", "w1"),
        answers: approved
      }])
      expect(h.posts).toMatchObject([{ channelId, replyTo: "m1", content: "Found it." }])
      expect((yield* runsOf)[0]).toMatchObject({ messageId: "m1", outcome: "silent-posted", runId: "run-2" })
    }).pipe(Effect.provide(h.layer))
  })

  it.effect("builtin: a send after the decision runs once and answers the run", () => {
    const posts: Array<string> = []
    const stop: RunReport = {
      ...silentReport("a1", [], "run-2"),
      stopReason: "requires_approval",
      approvalStop: {
        runId: "run-2",
        calls: [{ name: "discord_send", toolCallId: "s1", arguments: JSON.stringify({ channelId, message: "done" }) }]
      }
    }
    const h = makeHarness({
      settings: { tools: "builtin" },
      actions: {
        ...noActions,
        locateChannel: (id) => Effect.succeed({ channelId: id, guildId: "g1", kind: "text", textBased: true }),
        post: (id, content) =>
          Effect.sync(() => {
            posts.push(content)
            return { channelId: id, messageId: "p1", replyTo: null }
          })
      },
      run: () => Effect.die("no prompt"),
      continueRun: (_, call) => Effect.succeed(call === 1 ? stop : silentReport("a1", ["ok"], "run-3"))
    })
    return Effect.gen(function*() {
      const { resume } = yield* makeApprovalResume({ retrySchedule })
      yield* resume(origin, approved, [])
      expect(posts).toEqual(["done"])
      expect(h.continuations[1]?.request.answers).toMatchObject([{
        _tag: "ToolReturn",
        toolCallId: "s1",
        result: { status: "success" }
      }])
      expect(h.continuations[1]?.request.clientTools?.length).toBe(4)
      expect(h.posts).toEqual([])
      expect((yield* runsOf)[0]).toMatchObject({ outcome: "answered", toolCalls: ["discord_send✓"] })
    }).pipe(Effect.provide(h.layer))
  })

  it.effect("a built-in send Aurora ran at the stop, before it asked, answers the run: no fallback, listed", () => {
    const h = makeHarness({
      settings: { tools: "builtin" },
      run: () => Effect.die("no prompt"),
      continueRun: () => Effect.succeed(silentReport("a1", ["Done."], "run-2"))
    })
    return Effect.gen(function*() {
      const calls = yield* ToolCalls
      const start = { tool: "discord_send", partition: Partition.guild("g1"), channelId, messageId: "m1", at: 1 }
      yield* calls.begin({ ...start, toolCallId: "s0" })
      yield* calls.finish("s0", ToolResult.success("sent message 5 to channel"), 2)
      yield* calls.begin({ ...start, tool: "discord_read_messages", toolCallId: "r0" })
      yield* calls.finish("r0", ToolResult.success("[]"), 2)
      const { resume } = yield* makeApprovalResume({ retrySchedule })
      yield* resume(origin, [
        ApprovalAnswer.toolReturn("s0", ToolResult.success("sent message 5 to channel")),
        ApprovalAnswer.toolReturn("r0", ToolResult.success("[]")),
        ...approved
      ], [])
      expect(h.posts).toEqual([])
      expect((yield* runsOf)[0]).toMatchObject({
        outcome: "answered",
        toolCalls: ["discord_send✓", "discord_read_messages✓"]
      })
    }).pipe(Effect.provide(h.layer))
  })

  it.effect("a built-in send that failed at the stop does not answer the run: the fallback posts the text", () => {
    const h = makeHarness({
      settings: { tools: "builtin" },
      run: () => Effect.die("no prompt"),
      continueRun: () => Effect.succeed(silentReport("a1", ["Done."], "run-2"))
    })
    return Effect.gen(function*() {
      const calls = yield* ToolCalls
      yield* calls.begin({
        tool: "discord_send",
        partition: Partition.guild("g1"),
        channelId,
        messageId: "m1",
        at: 1,
        toolCallId: "s0"
      })
      yield* calls.finish("s0", ToolResult.error("Missing Access"), 2)
      const { resume } = yield* makeApprovalResume({ retrySchedule })
      yield* resume(origin, [ApprovalAnswer.toolReturn("s0", ToolResult.error("Missing Access")), ...approved], [])
      expect(h.posts).toMatchObject([{ replyTo: "m1", content: "Done." }])
      expect((yield* runsOf)[0]).toMatchObject({ outcome: "silent-posted", toolCalls: ["discord_send✗"] })
    }).pipe(Effect.provide(h.layer))
  })

  it.effect("the agent sent before the stop (mcp-discord, run by Letta): the resumed run's text is not posted again", () => {
    const h = makeHarness({
      run: () => Effect.die("no prompt"),
      continueRun: () => Effect.succeed(silentReport("a1", ["I told the channel and emailed ops."], "run-2"))
    })
    return Effect.gen(function*() {
      const { resume } = yield* makeApprovalResume({ retrySchedule })
      yield* resume(origin, approved, ["discord_send"])
      expect(h.continuations).toHaveLength(1)
      // The run answered with its send before the approval: no second answer by the fallback.
      expect(h.posts).toEqual([])
      expect((yield* runsOf)[0]).toMatchObject({ outcome: "answered", toolCalls: ["discord_send"], runId: "run-2" })
    }).pipe(Effect.provide(h.layer))
  })

  it.effect("another approval stop later in the resumed run carries the actions before it on to the gate", () => {
    const opened: Array<ApprovalRequest> = []
    const h = makeHarness({
      settings: { tools: "builtin" },
      gate: {
        open: (request) => Effect.as(Effect.sync(() => opened.push(request)), { _tag: "Waiting", approvalId: "ap-2" }),
        pendingFor: () => Effect.succeed(false)
      },
      run: () => Effect.die("no prompt"),
      continueRun: () =>
        Effect.succeed({
          ...silentReport("a1", [], "run-2"),
          stopReason: "requires_approval",
          approvalStop: { runId: "run-2", calls: [{ name: "send_email", toolCallId: "e2", arguments: "{}" }] }
        })
    })
    return Effect.gen(function*() {
      const calls = yield* ToolCalls
      yield* calls.begin({
        tool: "discord_send",
        partition: Partition.guild("g1"),
        channelId,
        messageId: "m1",
        at: 1,
        toolCallId: "s0"
      })
      yield* calls.finish("s0", ToolResult.success("sent message 5 to channel"), 2)
      const { resume } = yield* makeApprovalResume({ retrySchedule })
      yield* resume(
        origin,
        [ApprovalAnswer.toolReturn("s0", ToolResult.success("sent message 5 to channel")), ...approved],
        ["discord_add_reaction"]
      )
      expect(opened).toMatchObject([{ calls: [{ toolCallId: "e2" }], runId: "run-2" }])
      // The agent's reaction before the first stop, then Aurora's send at that stop.
      expect(opened[0]?.actionsBefore).toEqual(["discord_add_reaction", "discord_send"])
      expect(h.posts).toEqual([])
      expect((yield* runsOf)[0]).toMatchObject({
        outcome: "awaiting-approval",
        toolCalls: ["discord_add_reaction", "discord_send✓"]
      })
    }).pipe(Effect.provide(h.layer))
  })

  it.effect("a continuation that fails is recorded in the runs log, never thrown", () => {
    const h = makeHarness({
      run: () => Effect.die("no prompt"),
      continueRun: () => Effect.fail(new RunFailed({ agentId: "a1", sideEffect: false, reason: "stop reason max_steps" }))
    })
    return Effect.gen(function*() {
      const { resume } = yield* makeApprovalResume({ retrySchedule })
      yield* resume(origin, approved, [])
      expect((yield* runsOf)[0]).toMatchObject({ outcome: "failed", detail: "RunFailed: stop reason max_steps" })
    }).pipe(Effect.provide(h.layer))
  })

  it.effect("the resumed run's side effects are recorded on the journal entry the message still has; a read is not one", () => {
    const stopAt = (name: string, toolCallId: string): RunReport => ({
      ...silentReport("a1", [], "run-2"),
      stopReason: "requires_approval",
      approvalStop: { runId: "run-2", calls: [{ name, toolCallId, arguments: JSON.stringify({ channelId, message: "hi" }) }] }
    })
    const h = makeHarness({
      settings: { tools: "builtin" },
      actions: {
        ...noActions,
        locateChannel: (id) => Effect.succeed({ channelId: id, guildId: "g1", kind: "text", textBased: true }),
        post: (id) => Effect.succeed({ channelId: id, messageId: "p1", replyTo: null })
      },
      run: () => Effect.die("no prompt"),
      continueRun: (request, call) =>
        call === 1
          // The agent reads (streamed, its own tool), then stops at Aurora's read.
          ? Effect.as(
            request.observer?.onToolCall?.(toolCall("discord_read_messages", "r0")) ?? Effect.void,
            stopAt("discord_read_messages", "k1")
          )
          : call === 2
          ? Effect.succeed(stopAt("discord_send", "k2"))
          : Effect.succeed(silentReport("a1", [], "run-3"))
    })
    const sideEffect = Effect.map(
      Effect.flatMap(EventJournal, (journal) => journal.load),
      (entries) => entries.find((entry) => entry.event.messageId === "m1")?.run?.sideEffect
    )
    return Effect.gen(function*() {
      const journal = yield* EventJournal
      yield* journal.append(event("m1", { channelId }))
      yield* journal.runStarted("m1", 0)
      const { resume } = yield* makeApprovalResume({ retrySchedule })
      yield* resume(origin, approved, [])
      const lines = h.log.filter((line) => line.startsWith("letta:continue") || line.startsWith("sideEffectSeen"))
      // Marked once the send is about to run (its answer comes after), not for the reads before.
      expect(lines).toEqual(["letta:continue w1", "letta:continue k1", "sideEffectSeen:m1", "letta:continue k2"])
      expect(yield* sideEffect).toBe(true)
    }).pipe(Effect.provide(h.layer))
  })

  it.effect("a side-effecting call the resumed run streams is recorded on the journal entry", () => {
    const h = makeHarness({
      run: () => Effect.die("no prompt"),
      continueRun: (request) =>
        Effect.as(request.observer?.onToolCall?.(toolCall("discord_send", "t9")) ?? Effect.void, silentReport("a1", [], "run-2"))
    })
    return Effect.gen(function*() {
      const journal = yield* EventJournal
      yield* journal.append(event("m1", { channelId }))
      yield* journal.runStarted("m1", 0)
      const { resume } = yield* makeApprovalResume({ retrySchedule })
      yield* resume(origin, approved, [])
      expect(h.log.filter((line) => line.startsWith("sideEffectSeen"))).toEqual(["sideEffectSeen:m1"])
      expect((yield* journal.load)[0]?.run?.sideEffect).toBe(true)
    }).pipe(Effect.provide(h.layer))
  })
})
