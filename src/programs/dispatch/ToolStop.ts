/**
 * The plain decisions of the tool loop (./ToolLoop.ts), tested directly:
 *
 * - `splitStop`: which calls of an approval stop Aurora runs itself (its built-in Discord tools,
 *   and only when the guild's `tools` is `builtin`: with `mcp` a tool of the same name is the
 *   agent's own, stopped for a person's approval) and which ones a person must decide, each in the
 *   stop's order;
 * - `limitAnswers`: past `maxRoundTrips`, every call of the stop is answered without running it
 *   (a built-in call with an error return, another with a deny), so that the conversation is not
 *   left waiting on Aurora;
 * - `deniedAnswers`: the gate could not ask a person: each call is denied with its reason;
 * - `continuationOtid`: one continuation, one otid: derived from the event's message and the first
 *   answered tool call id, so a retry of the same answers sends the same otid;
 * - `mergeSegments`: the report of a run carried over several segments, as the fallback and the
 *   runs view read it: the segments' tool calls, returns and text in order, plus Aurora's executed
 *   Discord actions that succeeded (a built-in `discord_send` that posted is an answer; one that
 *   failed is not, so a run whose only send failed stays silent and gets the fallback).
 * - `discordActionsOf`, `executedActions`, `withActionsBefore`: the Discord actions a run made
 *   before an approval stop travel with the approval (ApprovalRequest `actionsBefore`), as tool
 *   names: the ones a report counts as its answer (every streamed Discord action, by the rule of
 *   `isSilentRun`), the ones Aurora executed with success, and, once the run is resumed, put back
 *   in front of the continuation's report, so that a run that answered before its stop is not
 *   taken for silent after it (no second answer by the fallback).
 */
import { type ApprovalAnswer, ApprovalAnswer as Answer } from "../../domain/Approval.js"
import { isDiscordAction, type RunReport, type RunUsage } from "../../domain/AgentRun.js"
import { otidFor } from "../../domain/Otid.js"
import { type ToolCall, ToolResult } from "../../domain/ToolCall.js"

/** Continuations one dispatch (or one resume) may send before Aurora stops the run. */
export const maxRoundTrips = 20

export const loopLimitReason = `Aurora stopped this run: more than ${maxRoundTrips} tool round-trips`

export interface SplitStop {
  readonly aurora: ReadonlyArray<ToolCall>
  readonly others: ReadonlyArray<ToolCall>
}

export const splitStop = (
  calls: ReadonlyArray<ToolCall>,
  builtin: boolean,
  isBuiltinTool: (name: string) => boolean
): SplitStop => ({
  aurora: builtin ? calls.filter((call) => isBuiltinTool(call.name)) : [],
  others: builtin ? calls.filter((call) => !isBuiltinTool(call.name)) : calls
})

export const limitAnswers = (split: SplitStop): ReadonlyArray<ApprovalAnswer> => [
  ...split.aurora.map((call) => Answer.toolReturn(call.toolCallId, ToolResult.error(loopLimitReason))),
  ...split.others.map((call) => Answer.decision(call.toolCallId, false, loopLimitReason))
]

export const deniedAnswers = (calls: ReadonlyArray<ToolCall>, reason: string): ReadonlyArray<ApprovalAnswer> =>
  calls.map((call) => Answer.decision(call.toolCallId, false, reason))

export const continuationOtid = (messageId: string, answers: ReadonlyArray<ApprovalAnswer>): string =>
  otidFor(messageId, answers[0]?.toolCallId ?? "continuation")

/** A built-in call Aurora answered, with the result the agent was given. */
export interface Executed {
  readonly call: ToolCall
  readonly result: ToolResult
}

/** How the runs view names an execution by Aurora: the tool and ✓ (success) or ✗ (error). */
export const executedLabel = (executed: Executed): string =>
  `${executed.call.name}${executed.result.status === "success" ? "✓" : "✗"}`

const addUsage = (a: RunUsage | null, b: RunUsage | null): RunUsage | null =>
  a === null ? b : b === null ? a : {
    promptTokens: a.promptTokens + b.promptTokens,
    completionTokens: a.completionTokens + b.completionTokens,
    totalTokens: a.totalTokens + b.totalTokens,
    stepCount: a.stepCount + b.stepCount
  }

/**
 * `sofar` carried on by `next` (a continuation's report), Aurora having answered `executed`
 * between them. The result's stop is `next`'s.
 */
/** Aurora's executions that count as an answer: Discord actions that succeeded. */
const succeededActions = (executed: ReadonlyArray<Executed>): ReadonlyArray<Executed> =>
  executed.filter((e) => e.result.status === "success" && isDiscordAction(e.call.name))

/** The tools of Aurora's executions that count as an answer, in order. */
export const executedActions = (executed: ReadonlyArray<Executed>): ReadonlyArray<string> =>
  succeededActions(executed).map((e) => e.call.name)

/** The Discord actions a report shows, in order: what makes it not silent (see `isSilentRun`). */
export const discordActionsOf = (report: Pick<RunReport, "toolCalls">): ReadonlyArray<string> =>
  report.toolCalls.flatMap((call) => (isDiscordAction(call.name) ? [call.name] : []))

/**
 * `report` (a resumed run's) with the Discord actions its run made before the stop in front of its
 * own tool calls (no id or arguments: only their names were kept), and acted if there is one.
 */
export const withActionsBefore = (report: RunReport, actionsBefore: ReadonlyArray<string>): RunReport =>
  actionsBefore.length === 0 ? report : {
    ...report,
    toolCalls: [...actionsBefore.map((name) => ({ name, toolCallId: "", argumentsSummary: "" })), ...report.toolCalls],
    sideEffect: true
  }

export const mergeSegments = (sofar: RunReport, executed: ReadonlyArray<Executed>, next: RunReport): RunReport => {
  const actions = succeededActions(executed)
  return {
    ...next,
    ...(next.runId === undefined && sofar.runId !== undefined ? { runId: sofar.runId } : {}),
    toolCalls: [
      ...sofar.toolCalls,
      ...actions.map((e) => ({ name: e.call.name, toolCallId: e.call.toolCallId, argumentsSummary: "" })),
      ...next.toolCalls
    ],
    toolReturns: [
      ...sofar.toolReturns,
      ...executed.map((e) => ({ toolCallId: e.call.toolCallId, name: e.call.name, status: e.result.status })),
      ...next.toolReturns
    ],
    assistantMessages: [...sofar.assistantMessages, ...next.assistantMessages],
    usage: addUsage(sofar.usage, next.usage),
    durationMs: sofar.durationMs + next.durationMs,
    sideEffect: sofar.sideEffect || next.sideEffect || actions.length > 0,
    firstToolCallMs: sofar.firstToolCallMs ?? next.firstToolCallMs
  }
}

/** `report` with Aurora's executions of its stop recorded, when the loop ends at that stop. */
export const withExecuted = (report: RunReport, executed: ReadonlyArray<Executed>): RunReport => {
  const actions = succeededActions(executed)
  return {
    ...report,
    toolCalls: [
      ...report.toolCalls,
      ...actions.map((e) => ({ name: e.call.name, toolCallId: e.call.toolCallId, argumentsSummary: "" }))
    ],
    sideEffect: report.sideEffect || actions.length > 0
  }
}
