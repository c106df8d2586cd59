/**
 * The tool loop's plain decisions: who runs which call, the refusals, the otid, the merged report,
 * and the Discord actions before a stop that a resumed run counts as its answer.
 */
import { describe, expect, it } from "@effect/vitest"
import type { RunReport } from "../../src/domain/AgentRun.js"
import { isSilentRun } from "../../src/domain/AgentRun.js"
import { otidFor } from "../../src/domain/Otid.js"
import { type ToolCall, ToolResult } from "../../src/domain/ToolCall.js"
import {
  continuationOtid,
  discordActionsOf,
  executedActions,
  limitAnswers,
  loopLimitReason,
  mergeSegments,
  splitStop,
  withActionsBefore
} from "../../src/programs/dispatch/ToolStop.js"
import { isBuiltinTool } from "../../src/services/discord/Tools.js"

const call = (name: string, toolCallId: string): ToolCall => ({ name, toolCallId, arguments: "{}" })
const report = (over: Partial<RunReport> = {}): RunReport => ({
  agentId: "a1",
  toolCalls: [],
  toolReturns: [],
  assistantMessages: [],
  stopReason: "end_turn",
  usage: null,
  durationMs: 10,
  sideEffect: false,
  firstToolCallMs: null,
  ...over
})

describe("ToolStop", () => {
  const stop = [call("web_search", "w"), call("discord_send", "s"), call("discord_read_messages", "r")]

  it("builtin: Aurora's tools are Aurora's, in order; mcp: every call is a person's", () => {
    expect(splitStop(stop, true, isBuiltinTool)).toEqual({ aurora: [stop[1], stop[2]], others: [stop[0]] })
    expect(splitStop(stop, false, isBuiltinTool)).toEqual({ aurora: [], others: stop })
  })

  it("past the bound every call is refused without running: error returns and denies", () => {
    expect(limitAnswers(splitStop(stop, true, isBuiltinTool))).toEqual([
      { _tag: "ToolReturn", toolCallId: "s", result: ToolResult.error(loopLimitReason) },
      { _tag: "ToolReturn", toolCallId: "r", result: ToolResult.error(loopLimitReason) },
      { _tag: "Decision", toolCallId: "w", approve: false, reason: loopLimitReason }
    ])
  })

  it("one continuation, one otid: from the message and the first answered call", () => {
    const answers = limitAnswers(splitStop(stop, true, isBuiltinTool))
    expect(continuationOtid("m1", answers)).toBe(otidFor("m1", "s"))
    expect(continuationOtid("m1", answers)).not.toBe(continuationOtid("m2", answers))
  })

  it("a built-in send that posted answers the run; one that failed leaves it silent", () => {
    const first = report({
      stopReason: "requires_approval",
      approvalStop: { calls: [call("discord_send", "s")] },
      runId: "run-1"
    })
    const posted = mergeSegments(first, [{ call: call("discord_send", "s"), result: ToolResult.success("sent") }], report())
    expect(isSilentRun(posted)).toBe(false)
    expect(posted).toMatchObject({ runId: "run-1", durationMs: 20, sideEffect: true })
    expect(posted.approvalStop).toBeUndefined()
    const failed = mergeSegments(first, [{ call: call("discord_send", "s"), result: ToolResult.error("no") }], report())
    expect(isSilentRun(failed)).toBe(true)
    expect(failed.toolReturns).toEqual([{ toolCallId: "s", name: "discord_send", status: "error" }])
  })

  it("the actions before a stop: a report's Discord actions (not reads), Aurora's executions that succeeded", () => {
    const shown = report({
      toolCalls: [
        { name: "discord_read_messages", toolCallId: "r", argumentsSummary: "" },
        { name: "core_memory_append", toolCallId: "m", argumentsSummary: "" },
        { name: "discord_send", toolCallId: "s", argumentsSummary: "" },
        { name: "discord_add_reaction", toolCallId: "a", argumentsSummary: "" }
      ]
    })
    expect(discordActionsOf(shown)).toEqual(["discord_send", "discord_add_reaction"])
    expect(executedActions([
      { call: call("discord_send", "s1"), result: ToolResult.error("Missing Access") },
      { call: call("discord_read_messages", "r1"), result: ToolResult.success("[]") },
      { call: call("discord_send", "s2"), result: ToolResult.success("sent") }
    ])).toEqual(["discord_send"])
  })

  it("a resumed run with actions before its stop is not silent; without any it is unchanged", () => {
    const resumed = report({ assistantMessages: ["done"] })
    expect(isSilentRun(resumed)).toBe(true)
    expect(withActionsBefore(resumed, [])).toBe(resumed)
    const answered = withActionsBefore(resumed, ["discord_send"])
    expect(isSilentRun(answered)).toBe(false)
    expect(answered.toolCalls.map((c) => c.name)).toEqual(["discord_send"])
    expect(answered.sideEffect).toBe(true)
  })
})
