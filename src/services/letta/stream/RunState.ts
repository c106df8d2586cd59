/**
 * What a run's stream means: the record of what it has shown so far, `applyItem` (what one
 * streamed item changes in that record and what it asks the executor to do) and `conclude` (the
 * verdict on a stream read to its end). Plain functions: the executor (../LettaExecutor.ts) logs,
 * tells the observer, fails the run and owns the timeout and the cancel.
 *
 * Per item:
 * - reasoning, hidden reasoning: a debug line;
 * - tool call: each call not seen before (by id; calls without an id always count) is recorded,
 *   logged and announced to the observer; a side-effecting one marks the run, and the first one
 *   sets `firstToolCallMs`;
 * - tool return: recorded with the name of its call, and logged;
 * - assistant message: its text recorded, and logged (truncated);
 * - approval request: its calls recorded (the last request wins: one stop per run), an info line
 *   naming them; ping: nothing;
 * - error_message: a warning line, then the run fails (RunFailed, with the side effect seen so far);
 * - stop reason, usage: recorded, and logged;
 * - anything else: a debug line saying it was ignored.
 *
 * Hot path: every item of every run comes through here, so the record is mutated in place (see
 * `RunState`), and an item allocates only the emissions it answers (none for a ping).
 */
import type { LettaStreamingResponse } from "@letta-ai/letta-client/resources/agents/messages"
import { Either, LogLevel } from "effect"
import {
  isSideEffectingTool,
  isSuccessfulStopReason,
  type RunReport,
  type RunUsage,
  type ToolCallSummary,
  type ToolReturnSummary,
  truncate
} from "../../../domain/AgentRun.js"
import type { ToolCall } from "../../../domain/ToolCall.js"
import { LettaConnectionError, RunFailed } from "../../../domain/LettaErrors.js"
import { assistantText, pendingCallsOf, runIdOf, toolCallsOf, toolReturnsOf } from "./StreamItems.js"

/**
 * What the stream has shown so far; errors and timeouts report from it.
 *
 * One record per run, owned by that run: it is written only by the synchronous steps that handle
 * a streamed item (JavaScript never interleaves them) and read by the run's own timeout and
 * interruption handlers. A plain record rather than a Ref: a run updates it several times per
 * item, and a Ref operation per update cost more than handling the item.
 */
export interface RunState {
  /** Epoch ms, from the Effect Clock. */
  readonly startedAt: number
  phase: "headers" | "stream"
  runId: string | undefined
  sideEffect: boolean
  readonly toolCalls: Array<ToolCallSummary>
  readonly toolReturns: Array<ToolReturnSummary>
  readonly assistantMessages: Array<string>
  /** The calls of the last `approval_request_message`, if one was streamed. */
  approvalCalls: ReadonlyArray<ToolCall> | undefined
  stopReason: string | undefined
  usage: RunUsage | null
  firstToolCallMs: number | null
}

export const makeRunState = (startedAt: number): RunState => ({
  startedAt,
  phase: "headers",
  runId: undefined,
  sideEffect: false,
  toolCalls: [],
  toolReturns: [],
  assistantMessages: [],
  approvalCalls: undefined,
  stopReason: undefined,
  usage: null,
  firstToolCallMs: null
})

/** What handling an item asks the executor to do, in order. */
export type Emission =
  | {
    readonly _tag: "Log"
    readonly level: LogLevel.LogLevel
    readonly message: string
    /** Annotations of this line only; none for a plain line. */
    readonly annotations: Readonly<Record<string, unknown>> | undefined
  }
  /** Tell the run's observer about a new tool call. */
  | { readonly _tag: "ToolCall"; readonly call: ToolCallSummary }
  /** Fail the run with RunFailed; `reason` is the server's text, not yet redacted. */
  | { readonly _tag: "Fail"; readonly runId: string | undefined; readonly reason: string; readonly errorType: string }

const assistantLogLength = 300
const reasoningLogLength = 500

const line = (
  level: LogLevel.LogLevel,
  message: string,
  annotations?: Readonly<Record<string, unknown>>
): Emission => ({ _tag: "Log", level, message, annotations })

const nothing: ReadonlyArray<Emission> = []

/**
 * Records the run id if `item` is the first to show it, and answers it then: the executor logs
 * everything from this item on with the run id.
 */
export const claimRunId = (state: RunState, item: LettaStreamingResponse): string | undefined => {
  const itemRunId = runIdOf(item)
  if (itemRunId === undefined || state.runId !== undefined) return undefined
  state.runId = itemRunId
  return itemRunId
}

/** Applies one streamed item, received at `now` (epoch ms), to `state`; answers what to emit. */
export const applyItem = (state: RunState, item: LettaStreamingResponse, now: number): ReadonlyArray<Emission> => {
  switch (item.message_type) {
    case "reasoning_message":
      return [line(LogLevel.Debug, `agent reasoning: ${truncate(item.reasoning, reasoningLogLength)}`)]
    case "hidden_reasoning_message":
      return [line(LogLevel.Debug, "agent reasoning (hidden)")]
    case "tool_call_message": {
      const emissions: Array<Emission> = []
      for (const call of toolCallsOf(item)) {
        if (call.toolCallId !== "" && state.toolCalls.some((c) => c.toolCallId === call.toolCallId)) continue
        state.toolCalls.push(call)
        const sideEffecting = isSideEffectingTool(call.name)
        // The tool may run even if its return never arrives: the agent has acted.
        state.sideEffect = state.sideEffect || sideEffecting
        state.firstToolCallMs = state.firstToolCallMs ?? now - state.startedAt
        emissions.push(
          line(LogLevel.Info, `tool call ${call.name}`, {
            tool: call.name,
            toolCallId: call.toolCallId,
            arguments: call.argumentsSummary,
            sideEffecting
          }),
          { _tag: "ToolCall", call }
        )
      }
      return emissions
    }
    case "tool_return_message": {
      const returns = toolReturnsOf(item, state.toolCalls)
      state.toolReturns.push(...returns)
      return returns.map((ret) =>
        line(LogLevel.Info, `tool return ${ret.name ?? ret.toolCallId}: ${ret.status}`, {
          tool: ret.name ?? "",
          toolCallId: ret.toolCallId,
          status: ret.status
        })
      )
    }
    case "assistant_message": {
      const text = assistantText(item)
      state.assistantMessages.push(text)
      return [line(LogLevel.Info, `assistant message: ${truncate(text, assistantLogLength)}`)]
    }
    case "approval_request_message": {
      const calls = pendingCallsOf(item)
      state.approvalCalls = calls
      return [
        line(LogLevel.Info, `agent requests a tool approval: ${calls.map((call) => call.name).join(", ")}`, {
          toolCallIds: calls.map((call) => call.toolCallId).join(",")
        })
      ]
    }
    case "ping":
      return nothing
    case "error_message":
      return [
        line(LogLevel.Warning, `run error: ${item.message}`, { errorType: item.error_type, detail: item.detail ?? "" }),
        {
          _tag: "Fail",
          runId: state.runId ?? item.run_id,
          reason: item.detail ? `${item.message}: ${item.detail}` : item.message,
          errorType: item.error_type
        }
      ]
    case "stop_reason":
      state.stopReason = item.stop_reason
      return [line(LogLevel.Info, `stop reason: ${item.stop_reason}`)]
    case "usage_statistics": {
      const usage: RunUsage = {
        promptTokens: item.prompt_tokens ?? 0,
        completionTokens: item.completion_tokens ?? 0,
        totalTokens: item.total_tokens ?? 0,
        stepCount: item.step_count ?? 0
      }
      state.usage = usage
      return [line(LogLevel.Debug, "usage", usage)]
    }
    default:
      return [line(LogLevel.Debug, `stream item ignored: ${item.message_type ?? "untyped"}`)]
  }
}

/** The stop reason of a run waiting on tool calls (client tools, approvals). */
export const approvalStopReason = "requires_approval"

/**
 * Whether a finished stream is an approval stop, and on which calls: `requires_approval` after an
 * `approval_request_message` naming at least one call. Without one (or with no call Aurora can
 * answer) it is not: nothing could continue it, and it fails like any other stop reason.
 */
export const approvalStopOf = (
  state: Pick<RunState, "stopReason" | "approvalCalls">
): ReadonlyArray<ToolCall> | undefined =>
  state.stopReason === approvalStopReason && state.approvalCalls !== undefined && state.approvalCalls.length > 0
    ? state.approvalCalls
    : undefined

/**
 * The verdict on a stream read to its end (or on a run whose stop reason arrived before its
 * timeout), at `now`: a success report for a successful stop reason or an approval stop (with
 * `approvalStop`), RunFailed for any other, and LettaConnectionError when no stop reason came at
 * all.
 */
export const conclude = (
  state: RunState,
  agentId: string,
  now: number
): Either.Either<RunReport, LettaConnectionError | RunFailed> => {
  const base = { agentId, runId: state.runId, sideEffect: state.sideEffect }
  if (state.stopReason === undefined) {
    return Either.left(new LettaConnectionError({ ...base, reason: "stream ended before a stop reason" }))
  }
  const approvalCalls = approvalStopOf(state)
  if (!isSuccessfulStopReason(state.stopReason) && approvalCalls === undefined) {
    return Either.left(new RunFailed({ ...base, reason: `stop reason ${state.stopReason}`, stopReason: state.stopReason }))
  }
  return Either.right({
    agentId,
    ...(state.runId === undefined ? {} : { runId: state.runId }),
    toolCalls: [...state.toolCalls],
    toolReturns: [...state.toolReturns],
    assistantMessages: [...state.assistantMessages],
    stopReason: state.stopReason,
    usage: state.usage,
    durationMs: now - state.startedAt,
    sideEffect: state.sideEffect,
    firstToolCallMs: state.firstToolCallMs,
    ...(approvalCalls === undefined ? {} : {
      approvalStop: { ...(state.runId === undefined ? {} : { runId: state.runId }), calls: [...approvalCalls] }
    })
  })
}
