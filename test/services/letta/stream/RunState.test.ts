/**
 * What a run's streamed items mean, as plain functions: each message type's change to the run's
 * record and what it asks the executor to emit, tool calls counted once per id, side effects,
 * an error_message failing the run, and the verdict on a finished stream.
 */
import type { LettaStreamingResponse } from "@letta-ai/letta-client/resources/agents/messages"
import { describe, expect, it } from "@effect/vitest"
import { Either, LogLevel } from "effect"
import { applyItem, claimRunId, conclude, type Emission, makeRunState } from "../../../../src/services/letta/stream/RunState.js"

const meta = { id: "message-1", date: "2025-01-01T00:00:00Z" }

const call = (name: string, toolCallId: string, args = "{}") => ({ name, arguments: args, tool_call_id: toolCallId })

const toolCall = (name: string, toolCallId: string, args = "{}"): LettaStreamingResponse => ({
  ...meta,
  message_type: "tool_call_message",
  tool_call: call(name, toolCallId, args)
})

const toolReturn = (toolCallId: string, status: "success" | "error" = "success"): LettaStreamingResponse => ({
  ...meta,
  message_type: "tool_return_message",
  tool_call_id: toolCallId,
  status,
  tool_return: "ok"
})

const log = (level: LogLevel.LogLevel, message: string, annotations?: Record<string, unknown>): Emission => ({
  _tag: "Log",
  level,
  message,
  annotations
})

describe("applyItem", () => {
  it("reasoning is a debug line, truncated, and changes nothing", () => {
    const state = makeRunState(1000)
    const long = "think ".repeat(200)
    const [line] = applyItem(state, { ...meta, message_type: "reasoning_message", reasoning: long }, 1000)
    expect(line?._tag === "Log" && line.level).toEqual(LogLevel.Debug)
    expect(line?._tag === "Log" && line.message.length).toBe("agent reasoning: ".length + 500)
    expect(applyItem(state, { ...meta, message_type: "hidden_reasoning_message", state: "redacted" }, 1000)).toEqual([
      log(LogLevel.Debug, "agent reasoning (hidden)")
    ])
    expect(state).toEqual(makeRunState(1000))
  })

  it("a tool call is recorded, logged and announced; the first one sets firstToolCallMs", () => {
    const state = makeRunState(1000)
    const first = applyItem(state, toolCall("discord_send", "call-1", "{\"content\":\"hi\"}"), 1250)
    const summary = { name: "discord_send", toolCallId: "call-1", argumentsSummary: "{\"content\":\"hi\"}" }
    expect(first).toEqual([
      log(LogLevel.Info, "tool call discord_send", {
        tool: "discord_send",
        toolCallId: "call-1",
        arguments: "{\"content\":\"hi\"}",
        sideEffecting: true
      }),
      { _tag: "ToolCall", call: summary }
    ])
    applyItem(state, toolCall("web_search", "call-2"), 1900)
    expect(state.toolCalls.map((c) => c.toolCallId)).toEqual(["call-1", "call-2"])
    expect(state.firstToolCallMs).toBe(250)
  })

  it("a tool call id is counted once, across shapes and items; calls without an id always count", () => {
    const state = makeRunState(0)
    // The newer list shape, with the deprecated field repeating the first call.
    const both: LettaStreamingResponse = {
      ...meta,
      message_type: "tool_call_message",
      tool_call: call("discord_send", "call-1"),
      tool_calls: [call("discord_send", "call-1"), call("discord_react", "call-2"), call("discord_send", "call-1")]
    }
    const emitted = applyItem(state, both, 10)
    expect(emitted.filter((e) => e._tag === "ToolCall").map((e) => e._tag === "ToolCall" && e.call.toolCallId)).toEqual([
      "call-1",
      "call-2"
    ])
    expect(applyItem(state, toolCall("discord_send", "call-1"), 20)).toEqual([])
    applyItem(state, toolCall("conversation_search", ""), 30)
    applyItem(state, toolCall("conversation_search", ""), 40)
    expect(state.toolCalls.map((c) => c.toolCallId)).toEqual(["call-1", "call-2", "", ""])
  })

  it("only a side-effecting tool marks the run, and the mark stays", () => {
    const state = makeRunState(0)
    for (const name of ["discord_read_messages", "discord_get_user", "discord_list_channels", "web_search"]) {
      applyItem(state, toolCall(name, `call-${name}`), 0)
    }
    expect(state.sideEffect).toBe(false)
    applyItem(state, toolCall("discord_send", "call-send"), 0)
    applyItem(state, toolCall("archival_memory_search", "call-search"), 0)
    expect(state.sideEffect).toBe(true)
  })

  it("a tool return takes its call's name and is recorded and logged", () => {
    const state = makeRunState(0)
    applyItem(state, toolCall("discord_send", "call-1"), 0)
    expect(applyItem(state, toolReturn("call-1", "error"), 0)).toEqual([
      log(LogLevel.Info, "tool return discord_send: error", { tool: "discord_send", toolCallId: "call-1", status: "error" })
    ])
    expect(applyItem(state, toolReturn("call-unknown"), 0)).toEqual([
      log(LogLevel.Info, "tool return call-unknown: success", { tool: "", toolCallId: "call-unknown", status: "success" })
    ])
    expect(state.toolReturns).toEqual([
      { toolCallId: "call-1", name: "discord_send", status: "error" },
      { toolCallId: "call-unknown", status: "success" }
    ])
  })

  it("assistant text is recorded whole and logged truncated; approvals are logged; pings do nothing", () => {
    const state = makeRunState(0)
    const text = "x".repeat(400)
    const [line] = applyItem(state, { ...meta, message_type: "assistant_message", content: [{ type: "text", text }] }, 0)
    expect(state.assistantMessages).toEqual([text])
    expect(line?._tag === "Log" && line.message).toBe(`assistant message: ${"x".repeat(299)}…`)
    expect(applyItem(state, { ...meta, message_type: "approval_request_message", tool_call: call("discord_send", "c") }, 0))
      .toEqual([log(LogLevel.Info, "agent requests a tool approval: discord_send", { toolCallIds: "c" })])
    expect(applyItem(state, { ...meta, message_type: "ping" }, 0)).toEqual([])
    expect(state.toolCalls).toEqual([])
  })

  it("stop reason and usage are recorded and logged; other items are ignored with a debug line", () => {
    const state = makeRunState(0)
    expect(applyItem(state, { message_type: "stop_reason", stop_reason: "end_turn" }, 0)).toEqual([
      log(LogLevel.Info, "stop reason: end_turn")
    ])
    const usage = { promptTokens: 120, completionTokens: 30, totalTokens: 150, stepCount: 0 }
    expect(
      applyItem(state, { message_type: "usage_statistics", prompt_tokens: 120, completion_tokens: 30, total_tokens: 150 }, 0)
    ).toEqual([log(LogLevel.Debug, "usage", usage)])
    expect(state.stopReason).toBe("end_turn")
    expect(state.usage).toEqual(usage)
    expect(applyItem(state, { ...meta, message_type: "system_message", content: "..." }, 0)).toEqual([
      log(LogLevel.Debug, "stream item ignored: system_message")
    ])
    expect(applyItem(state, { ...meta, reasoning: "no type" }, 0)).toEqual([
      log(LogLevel.Debug, "stream item ignored: untyped")
    ])
  })

  it("an error_message logs a warning and then fails the run, with the run id already seen", () => {
    const state = makeRunState(0)
    const error = (detail?: string): LettaStreamingResponse => ({
      message_type: "error_message",
      run_id: "run-from-item",
      error_type: "internal_error",
      message: "An error occurred",
      ...(detail === undefined ? {} : { detail })
    })
    expect(applyItem(state, error("boom"), 0)).toEqual([
      log(LogLevel.Warning, "run error: An error occurred", { errorType: "internal_error", detail: "boom" }),
      { _tag: "Fail", runId: "run-from-item", reason: "An error occurred: boom", errorType: "internal_error" }
    ])
    state.runId = "run-1"
    expect(applyItem(state, error(), 0)[1]).toEqual({
      _tag: "Fail",
      runId: "run-1",
      reason: "An error occurred",
      errorType: "internal_error"
    })
  })
})

describe("claimRunId", () => {
  it("answers the run id only for the first item that shows one", () => {
    const state = makeRunState(0)
    expect(claimRunId(state, { ...meta, message_type: "ping" })).toBeUndefined()
    expect(claimRunId(state, { ...meta, message_type: "reasoning_message", reasoning: "", run_id: "" })).toBeUndefined()
    expect(claimRunId(state, { ...meta, message_type: "reasoning_message", reasoning: "", run_id: "run-1" })).toBe("run-1")
    expect(claimRunId(state, { ...meta, message_type: "reasoning_message", reasoning: "", run_id: "run-2" })).toBeUndefined()
    expect(state.runId).toBe("run-1")
  })
})

describe("conclude", () => {
  it("no stop reason is a connection error; an unsuccessful one is RunFailed", () => {
    const state = makeRunState(0)
    state.runId = "run-1"
    const missing = Either.flip(conclude(state, "agent-1", 10))
    expect(Either.getOrThrow(missing)).toMatchObject({
      _tag: "LettaConnectionError",
      agentId: "agent-1",
      runId: "run-1",
      sideEffect: false,
      reason: "stream ended before a stop reason"
    })
    state.stopReason = "max_steps"
    state.sideEffect = true
    expect(Either.getOrThrow(Either.flip(conclude(state, "agent-1", 10)))).toMatchObject({
      _tag: "RunFailed",
      sideEffect: true,
      reason: "stop reason max_steps",
      stopReason: "max_steps"
    })
  })

  it("a successful stop reason reports what was streamed and the duration", () => {
    const state = makeRunState(1000)
    applyItem(state, toolCall("discord_send", "call-1"), 1100)
    applyItem(state, toolReturn("call-1"), 1200)
    applyItem(state, { ...meta, message_type: "assistant_message", content: "done" }, 1300)
    applyItem(state, { message_type: "stop_reason", stop_reason: "tool_rule" }, 1400)
    const report = Either.getOrThrow(conclude(state, "agent-1", 1500))
    expect(report).toEqual({
      agentId: "agent-1",
      toolCalls: [{ name: "discord_send", toolCallId: "call-1", argumentsSummary: "{}" }],
      toolReturns: [{ toolCallId: "call-1", name: "discord_send", status: "success" }],
      assistantMessages: ["done"],
      stopReason: "tool_rule",
      usage: null,
      durationMs: 500,
      sideEffect: true,
      firstToolCallMs: 100
    })
    // A copy: items after the verdict do not change the report.
    applyItem(state, { ...meta, message_type: "assistant_message", content: "late" }, 1600)
    expect(report.assistantMessages).toEqual(["done"])
  })
  it("requires_approval after an approval request is a report with the stop's calls (all of tool_calls)", () => {
    const state = makeRunState(0)
    state.runId = "run-9"
    applyItem(state, {
      ...meta,
      message_type: "approval_request_message",
      tool_call: { name: "discord_send", tool_call_id: "c1", arguments: "{\"a\":1}" },
      tool_calls: [
        { name: "discord_send", tool_call_id: "c1", arguments: "{\"a\":1}" },
        { name: "web_search", tool_call_id: "c2", arguments: "{}" }
      ]
    }, 5)
    applyItem(state, { message_type: "stop_reason", stop_reason: "requires_approval" }, 6)
    const report = Either.getOrThrow(conclude(state, "agent-1", 10))
    expect(report.approvalStop).toEqual({
      runId: "run-9",
      calls: [
        { name: "discord_send", toolCallId: "c1", arguments: "{\"a\":1}" },
        { name: "web_search", toolCallId: "c2", arguments: "{}" }
      ]
    })
    expect(report.stopReason).toBe("requires_approval")
  })

  it("tool_call alone is the stop's call; requires_approval without a request fails; end_turn has no stop", () => {
    const single = makeRunState(0)
    applyItem(single, { ...meta, message_type: "approval_request_message", tool_call: call("discord_send", "c") }, 0)
    single.stopReason = "requires_approval"
    expect(Either.getOrThrow(conclude(single, "a", 1)).approvalStop?.calls.map((c) => c.toolCallId)).toEqual(["c"])
    const bare = makeRunState(0)
    bare.stopReason = "requires_approval"
    expect(Either.getOrThrow(Either.flip(conclude(bare, "a", 1)))).toMatchObject({ _tag: "RunFailed" })
    const ended = makeRunState(0)
    applyItem(ended, { ...meta, message_type: "approval_request_message", tool_call: call("discord_send", "c") }, 0)
    ended.stopReason = "end_turn"
    expect(Either.getOrThrow(conclude(ended, "a", 1)).approvalStop).toBeUndefined()
  })
})
