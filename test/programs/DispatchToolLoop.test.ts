/**
 * The tool loop in the dispatcher (./DispatchHarness.ts fakes, a fake Discord behind the real
 * DiscordTools, the memory ToolCalls, a Layer.succeed ApprovalGate), under TestClock: built-in
 * calls run once and answered in a continuation, confinement, exactly once across an interrupted
 * record, the 20 round-trip bound, the gate's Waiting and Unavailable, and a 409 pending approval.
 */
import { describe, expect, it } from "@effect/vitest"
import { Duration, Effect, Fiber, TestClock } from "effect"
import type { ApprovalRequest } from "../../src/domain/Approval.js"
import type { RunReport } from "../../src/domain/AgentRun.js"
import { Partition } from "../../src/domain/Event.js"
import { AgentBusy } from "../../src/domain/LettaErrors.js"
import { type ToolCall, interruptedResult } from "../../src/domain/ToolCall.js"
import { makeDispatcher } from "../../src/programs/Dispatch.js"
import { loopLimitReason, maxRoundTrips } from "../../src/programs/dispatch/ToolStop.js"
import type { ApprovalGateService } from "../../src/services/approvals/Ports.js"
import { definitions } from "../../src/services/discord/Tools.js"
import { DeadLetters } from "../../src/services/queue/DeadLetters.js"
import { DispatchOutcome } from "../../src/services/queue/EventQueue.js"
import { RunLog } from "../../src/services/queue/RunLog.js"
import { makeMemoryToolCalls } from "../../src/services/queue/ToolCalls.js"
import { event } from "../services/queue/harness.js"
import { counterValue, makeHarness, noActions, retrySchedule, serverError, silentReport } from "./DispatchHarness.js"

const send = (channelId: string, toolCallId = "call-1"): ToolCall => ({
  name: "discord_send",
  toolCallId,
  arguments: JSON.stringify({ channelId, message: "hello" })
})

const stopped = (calls: ReadonlyArray<ToolCall>, runId = "run-1"): RunReport => ({
  ...silentReport("a1", [], runId),
  stopReason: "requires_approval",
  approvalStop: { runId, calls }
})

/** The triggering message, in channel …01 of guild g1. */
const ev = event("m1", { channelId: "100000000000000001" })

const ended = silentReport("a1", ["all done"], "run-2")

/** A fake Discord: channel …01 in g1 (the triggering channel), …09 in another guild; posts recorded. */
const discord = () => {
  const posts: Array<string> = []
  const actions = {
    ...noActions,
    locateChannel: (channelId: string) =>
      Effect.succeed(
        channelId === "100000000000000001"
          ? { channelId, guildId: "g1", kind: "text" as const, textBased: true }
          : channelId === "900000000000000009"
          ? { channelId, guildId: "g2", kind: "text" as const, textBased: true }
          : null
      ),
    post: (channelId: string, content: string) =>
      Effect.sync(() => {
        posts.push(`${channelId}:${content}`)
        return { channelId, messageId: `posted-${posts.length}`, replyTo: null }
      })
  }
  return { posts, actions }
}

const gateOf = (answer: ApprovalGateService["open"], pending = false) => {
  const opened: Array<ApprovalRequest> = []
  const gate: ApprovalGateService = {
    open: (request) => Effect.zipRight(Effect.sync(() => void opened.push(request)), answer(request)),
    pendingFor: () => Effect.succeed(pending)
  }
  return { opened, gate }
}

const runsOf = Effect.flatMap(RunLog, (log) => log.recent(Partition.guild("g1"), 10))
const lettersOf = Effect.map(Effect.flatMap(DeadLetters, (d) => d.list(Partition.guild("g1"))), (page) => page.letters)

describe("dispatch: the tool loop", () => {
  it.effect("builtin: the request declares the client tools; a discord_send runs once and the continuation says success", () => {
    const d = discord()
    const h = makeHarness({
      settings: { tools: "builtin" },
      actions: d.actions,
      run: () => Effect.succeed(stopped([send("100000000000000001")])),
      continueRun: () => Effect.succeed(ended)
    })
    return Effect.gen(function*() {
      const before = yield* counterValue("aurora_tool_calls_total", {
        tool: "discord_send",
        executor: "aurora",
        status: "success"
      })
      const { dispatch } = yield* makeDispatcher({ retrySchedule })
      expect(yield* dispatch(ev)).toEqual(DispatchOutcome.done)
      expect(h.requests[0]?.request.clientTools).toEqual(definitions)
      expect(d.posts).toEqual(["100000000000000001:hello"])
      expect(h.continuations.map((c) => c.request.answers)).toEqual([[
        {
          _tag: "ToolReturn",
          toolCallId: "call-1",
          result: { status: "success", toolReturn: "sent message posted-1 to channel 100000000000000001" }
        }
      ]])
      expect(h.continuations[0]?.request.clientTools).toEqual(definitions)
      // The send answered: no fallback post, and the journal knows the agent acted before it ran.
      expect(h.posts).toEqual([])
      expect(h.log).toContain("sideEffectSeen:m1")
      const [run] = yield* runsOf
      expect(run).toMatchObject({ outcome: "answered", toolCalls: ["discord_send✓"] })
      expect(yield* counterValue("aurora_tool_calls_total", { tool: "discord_send", executor: "aurora", status: "success" }))
        .toBe(before + 1)
    }).pipe(Effect.provide(h.layer))
  })

  it.effect("mcp (the default): no client tools declared", () => {
    const h = makeHarness({ run: () => Effect.succeed(ended) })
    return Effect.gen(function*() {
      const { dispatch } = yield* makeDispatcher({ retrySchedule })
      yield* dispatch(ev)
      expect(h.requests[0]?.request.clientTools).toBeUndefined()
    }).pipe(Effect.provide(h.layer))
  })

  it.effect("another guild's channel: nothing posted, status error, and the silent run gets the fallback", () => {
    const d = discord()
    const h = makeHarness({
      settings: { tools: "builtin" },
      actions: d.actions,
      run: () => Effect.succeed(stopped([send("900000000000000009")])),
      continueRun: () => Effect.succeed(ended)
    })
    return Effect.gen(function*() {
      const { dispatch } = yield* makeDispatcher({ retrySchedule })
      yield* dispatch(ev)
      expect(d.posts).toEqual([])
      const answer = h.continuations[0]?.request.answers[0]
      expect(answer?._tag === "ToolReturn" && answer.result.status).toBe("error")
      expect(h.posts.map((p) => p.content)).toEqual(["all done"])
      expect((yield* runsOf)[0]).toMatchObject({ outcome: "silent-posted", toolCalls: ["discord_send✗"] })
    }).pipe(Effect.provide(h.layer))
  })

  it.effect("exactly once: a call recorded as started before a failure is answered interrupted, never posted", () =>
    Effect.gen(function*() {
      const d = discord()
      const calls = yield* makeMemoryToolCalls()
      // The record was written, then the process failed before the post (and before the result).
      yield* calls.begin({
        toolCallId: "call-1",
        tool: "discord_send",
        partition: Partition.guild("g1"),
        channelId: "100000000000000001",
        messageId: "m1",
        at: 0
      })
      const h = makeHarness({
        settings: { tools: "builtin" },
        actions: d.actions,
        toolCalls: calls,
        run: () => Effect.succeed(stopped([send("100000000000000001")])),
        continueRun: () => Effect.succeed(ended)
      })
      yield* Effect.gen(function*() {
        const { dispatch } = yield* makeDispatcher({ retrySchedule })
        yield* dispatch(ev)
        yield* dispatch(ev)
      }).pipe(Effect.provide(h.layer))
      expect(d.posts).toEqual([])
      expect(h.continuations.map((c) => c.request.answers)).toEqual([
        [{ _tag: "ToolReturn", toolCallId: "call-1", result: interruptedResult }],
        [{ _tag: "ToolReturn", toolCallId: "call-1", result: interruptedResult }]
      ])
    }))

  it.effect("a continuation's transient failure is retried with the same answers and otid; the send ran once", () => {
    const d = discord()
    const h = makeHarness({
      settings: { tools: "builtin" },
      actions: d.actions,
      run: () => Effect.succeed(stopped([send("100000000000000001")])),
      continueRun: (_, call) => call === 1 ? Effect.fail(serverError("a1")) : Effect.succeed(ended)
    })
    return Effect.gen(function*() {
      const { dispatch } = yield* makeDispatcher({ retrySchedule })
      const fiber = yield* Effect.fork(dispatch(ev))
      yield* TestClock.adjust(Duration.seconds(1))
      expect(yield* Fiber.join(fiber)).toEqual(DispatchOutcome.done)
      expect(h.requests).toHaveLength(1)
      expect(h.continuations).toHaveLength(2)
      expect(h.continuations[1]?.request.answers).toEqual(h.continuations[0]?.request.answers)
      expect(h.continuations[1]?.request.otid).toBe(h.continuations[0]?.request.otid)
      expect(d.posts).toEqual(["100000000000000001:hello"])
      expect((yield* runsOf)[0]).toMatchObject({ outcome: "answered" })
    }).pipe(Effect.provide(h.layer))
  })

  it.effect("a continuation that fails for good: the event is not sent again and is no dead letter (the agent acted)", () => {
    const d = discord()
    const h = makeHarness({
      settings: { tools: "builtin" },
      actions: d.actions,
      run: () => Effect.succeed(stopped([send("100000000000000001")])),
      continueRun: () => Effect.fail(new AgentBusy({ agentId: "a1", sideEffect: false, reason: "x", pendingApproval: false }))
    })
    return Effect.gen(function*() {
      const { dispatch } = yield* makeDispatcher({ retrySchedule })
      expect(yield* dispatch(ev)).toEqual(DispatchOutcome.done)
      expect(h.requests).toHaveLength(1)
      expect(d.posts).toEqual(["100000000000000001:hello"])
      expect((yield* runsOf)[0]).toMatchObject({ outcome: "failed" })
      expect(yield* lettersOf).toEqual([])
    }).pipe(Effect.provide(h.layer))
  })

  it.effect(`more than ${maxRoundTrips} round-trips: every pending call refused in one last continuation, ToolLoopLimit`, () => {
    const d = discord()
    const read: ToolCall = {
      name: "discord_read_messages",
      toolCallId: "r",
      arguments: "{\"channelId\":\"100000000000000001\"}"
    }
    const h = makeHarness({
      settings: { tools: "builtin" },
      actions: d.actions,
      run: () => Effect.succeed(stopped([{ ...read, toolCallId: "r0" }])),
      continueRun: (_, call) =>
        Effect.succeed(stopped([{ ...read, toolCallId: `r${call}` }, { ...send("100000000000000001", `s${call}`) }]))
    })
    return Effect.gen(function*() {
      const { dispatch } = yield* makeDispatcher({ retrySchedule })
      expect(yield* dispatch(ev)).toEqual(DispatchOutcome.done)
      expect(h.continuations).toHaveLength(maxRoundTrips + 1)
      const last = h.continuations[maxRoundTrips]?.request.answers
      expect(last?.map((a) => a._tag === "ToolReturn" ? a.result : a)).toEqual([
        { status: "error", toolReturn: loopLimitReason },
        { status: "error", toolReturn: loopLimitReason }
      ])
      // The refused send never ran: only the ones of the 19 stops before it posted.
      expect(d.posts).toHaveLength(maxRoundTrips - 1)
      expect(yield* lettersOf).toMatchObject([{ reason: "failed", errorType: "ToolLoopLimit" }])
    }).pipe(Effect.provide(h.layer))
  })

  it.effect("a tool that is not Aurora's: the gate's Waiting ends the dispatch awaiting approval", () => {
    const d = discord()
    const g = gateOf(() => Effect.succeed({ _tag: "Waiting", approvalId: "ap-1" }))
    const h = makeHarness({
      settings: { tools: "builtin" },
      actions: d.actions,
      gate: g.gate,
      run: () => Effect.succeed(stopped([send("100000000000000001"), { name: "web_search", toolCallId: "w1", arguments: "{}" }]))
    })
    return Effect.gen(function*() {
      const { dispatch } = yield* makeDispatcher({ retrySchedule })
      expect(yield* dispatch(ev)).toEqual(DispatchOutcome.done)
      expect(h.continuations).toEqual([])
      expect(g.opened).toMatchObject([{
        guildId: "g1",
        channelId: "100000000000000001",
        messageId: "m1",
        agentId: "a1",
        conversationId: null,
        runId: "run-1",
        calls: [{ name: "web_search", toolCallId: "w1" }],
        answered: [{ _tag: "ToolReturn", toolCallId: "call-1", result: { status: "success" } }],
        // The send of this same stop is an answer above, not an action before the stop.
        actionsBefore: []
      }])
      expect((yield* runsOf)[0]).toMatchObject({ outcome: "awaiting-approval", toolCalls: ["discord_send✓"] })
      expect(h.posts).toEqual([])
    }).pipe(Effect.provide(h.layer))
  })

  it.effect("mcp: the agent's own sends streamed before the stop go to the gate as the run's actions before it", () => {
    const g = gateOf(() => Effect.succeed({ _tag: "Waiting", approvalId: "ap-1" }))
    const h = makeHarness({
      gate: g.gate,
      run: () =>
        Effect.succeed({
          ...stopped([{ name: "send_email", toolCallId: "e1", arguments: "{}" }]),
          // Executed by Letta (mcp-discord): streamed as calls and returns, a read among them.
          toolCalls: [
            { name: "discord_read_messages", toolCallId: "r1", argumentsSummary: "{}" },
            { name: "discord_send", toolCallId: "s1", argumentsSummary: "{}" },
            { name: "discord_add_reaction", toolCallId: "s2", argumentsSummary: "{}" }
          ],
          sideEffect: true
        })
    })
    return Effect.gen(function*() {
      const { dispatch } = yield* makeDispatcher({ retrySchedule })
      expect(yield* dispatch(ev)).toEqual(DispatchOutcome.done)
      expect(g.opened).toMatchObject([{ calls: [{ toolCallId: "e1" }], answered: [] }])
      expect(g.opened[0]?.actionsBefore).toEqual(["discord_send", "discord_add_reaction"])
    }).pipe(Effect.provide(h.layer))
  })

  it.effect("the gate is Unavailable: each such call is denied at once with its reason", () => {
    const g = gateOf(() => Effect.succeed({ _tag: "Unavailable", reason: "Discord refused the message" }))
    const h = makeHarness({
      gate: g.gate,
      run: () => Effect.succeed(stopped([{ name: "discord_send", toolCallId: "x1", arguments: "{}" }])),
      continueRun: () => Effect.succeed(ended)
    })
    return Effect.gen(function*() {
      const { dispatch } = yield* makeDispatcher({ retrySchedule })
      yield* dispatch(ev)
      // With `mcp`, a discord_send stopped for approval is the agent's own tool: a person decides.
      expect(g.opened.map((r) => r.calls.map((c) => c.toolCallId))).toEqual([["x1"]])
      expect(h.continuations.map((c) => c.request.answers)).toEqual([[
        { _tag: "Decision", toolCallId: "x1", approve: false, reason: "Discord refused the message" }
      ]])
    }).pipe(Effect.provide(h.layer))
  })

  const pending409 = new AgentBusy({
    agentId: "a1",
    sideEffect: false,
    reason: "409 waiting for approval",
    pendingApproval: true
  })

  it.effect("409 pending approval where the gate waits: busy (back to the queue), no dead letter", () => {
    const g = gateOf(() => Effect.die("not opened"), true)
    const h = makeHarness({ gate: g.gate, run: () => Effect.fail(pending409) })
    return Effect.gen(function*() {
      const { dispatch } = yield* makeDispatcher({ retrySchedule })
      const outcome = yield* dispatch(ev)
      expect(outcome._tag).toBe("Retry")
      expect(yield* lettersOf).toEqual([])
    }).pipe(Effect.provide(h.layer))
  })

  it.effect("409 pending approval nobody waits on: a dead letter as before", () => {
    const h = makeHarness({ run: () => Effect.fail(pending409) })
    return Effect.gen(function*() {
      const { dispatch } = yield* makeDispatcher({ retrySchedule })
      expect(yield* dispatch(ev)).toEqual(DispatchOutcome.done)
      expect(yield* lettersOf).toMatchObject([{ reason: "failed", errorType: "AgentBusy" }])
    }).pipe(Effect.provide(h.layer))
  })
})
