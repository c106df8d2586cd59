/**
 * Reading the items a Letta run streams: tool calls in the shapes servers send, tool returns
 * matched to their calls, assistant text, the run id.
 */
import type { LettaStreamingResponse } from "@letta-ai/letta-client/resources/agents/messages"
import { summarizeArguments, type ToolCallSummary, type ToolReturnSummary } from "../../../domain/AgentRun.js"
import type { ToolCall } from "../../../domain/ToolCall.js"

export type ToolCallMessage = Extract<LettaStreamingResponse, { message_type?: "tool_call_message" }>
export type ToolReturnMessage = Extract<LettaStreamingResponse, { message_type?: "tool_return_message" }>
export type ApprovalRequestMessage = Extract<LettaStreamingResponse, { message_type?: "approval_request_message" }>
export type AssistantMessage = Extract<LettaStreamingResponse, { message_type?: "assistant_message" }>

interface RawToolCall {
  readonly name?: string | null | undefined
  readonly arguments?: string | null | undefined
  readonly tool_call_id?: string | null | undefined
}

/** Servers send `tool_call` (deprecated), `tool_calls` (a list, newer) or both for the same calls. */
export const toolCallsOf = (item: ToolCallMessage): ReadonlyArray<ToolCallSummary> => {
  const raw: ReadonlyArray<RawToolCall> = Array.isArray(item.tool_calls) && item.tool_calls.length > 0
    ? item.tool_calls
    : item.tool_calls && !Array.isArray(item.tool_calls)
    ? [item.tool_calls]
    : item.tool_call
    ? [item.tool_call]
    : []
  return raw.flatMap((call) =>
    call.name
      ? [{ name: call.name, toolCallId: call.tool_call_id ?? "", argumentsSummary: summarizeArguments(call.arguments ?? "") }]
      : []
  )
}

/**
 * The calls an `approval_request_message` waits on, with their whole arguments: all of
 * `tool_calls` when it is a list, else `tool_call`; a call without a name or an id cannot be
 * answered and is left out.
 */
export const pendingCallsOf = (item: ApprovalRequestMessage): ReadonlyArray<ToolCall> => {
  const raw: ReadonlyArray<RawToolCall> = Array.isArray(item.tool_calls) && item.tool_calls.length > 0
    ? item.tool_calls
    : item.tool_calls && !Array.isArray(item.tool_calls)
    ? [item.tool_calls]
    : [item.tool_call]
  return raw.flatMap((call) =>
    call.name && call.tool_call_id
      ? [{ name: call.name, arguments: call.arguments ?? "", toolCallId: call.tool_call_id }]
      : []
  )
}

export const toolReturnsOf = (
  item: ToolReturnMessage,
  calls: ReadonlyArray<ToolCallSummary>
): ReadonlyArray<ToolReturnSummary> => {
  const nameOf = (toolCallId: string) => calls.find((call) => call.toolCallId === toolCallId)?.name ?? item.name ?? undefined
  const summary = (toolCallId: string, status: string): ToolReturnSummary => {
    const name = nameOf(toolCallId)
    return name === undefined ? { toolCallId, status } : { toolCallId, name, status }
  }
  if (Array.isArray(item.tool_returns) && item.tool_returns.length > 0) {
    return item.tool_returns.map((ret) => summary(ret.tool_call_id, ret.status))
  }
  return [summary(item.tool_call_id, item.status)]
}

export const assistantText = (item: AssistantMessage): string =>
  typeof item.content === "string"
    ? item.content
    : item.content.map((part) => ("text" in part && typeof part.text === "string" ? part.text : "")).join("")

export const runIdOf = (item: LettaStreamingResponse): string | undefined =>
  "run_id" in item && typeof item.run_id === "string" && item.run_id !== "" ? item.run_id : undefined
