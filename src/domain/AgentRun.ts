/**
 * One agent run: what Aurora asks Letta to do and what it saw the agent do. The report is what
 * the dispatcher logs, counts and (for interrupted runs) persists.
 *
 * Silent runs. A run that ends normally (a successful stop reason) without any *Discord action*
 * is silent: the user who asked saw nothing, however much the agent wrote (see `isSilentRun`).
 * A Discord action is a tool call whose name starts with `discord_` and that is side-effecting
 * by `isSideEffectingTool`, for these reasons:
 * - only Discord tools reach the user: the mcp-discord tools (and Aurora's own client tools, which
 *   keep their names) are all named `discord_*`; memory tools (`core_memory_append`, ...) and
 *   other tools act, but nobody in the channel sees them;
 * - a read (`discord_read_*`, `discord_get_*`, `discord_list_*`, `discord_search_*`) posts nothing;
 * - Letta's own `send_message` only produces the run's assistant text, which Aurora never posts
 *   by itself: a run that "answered" with it is exactly the silent case;
 * - an unknown `discord_*` tool may post, so it counts as an action, and a call counts as soon as
 *   it was streamed, even if its return said it failed or never came (the tool may have run):
 *   wrongly taking a run for answered costs a missing fallback, wrongly taking it for silent
 *   would post a second answer.
 * A Discord tool under another name is not recognised: the fallback would post after it.
 */
import { type Duration, type Effect, Schema } from "effect"
import type { ApprovalAnswer } from "./Approval.js"
import { ToolCall } from "./ToolCall.js"

export const ToolCallSummary = Schema.Struct({
  name: Schema.String,
  toolCallId: Schema.String,
  /** The JSON arguments, whitespace collapsed and truncated (see `summarizeArguments`). */
  argumentsSummary: Schema.String
})
export type ToolCallSummary = typeof ToolCallSummary.Type

export const ToolReturnSummary = Schema.Struct({
  toolCallId: Schema.String,
  /** The tool's name when the server says or the matching call was seen. */
  name: Schema.optional(Schema.String),
  status: Schema.String
})
export type ToolReturnSummary = typeof ToolReturnSummary.Type

export const RunUsage = Schema.Struct({
  promptTokens: Schema.Number,
  completionTokens: Schema.Number,
  totalTokens: Schema.Number,
  stepCount: Schema.Number
})
export type RunUsage = typeof RunUsage.Type

export const ApprovalStop = Schema.Struct({
  /** The stopped run, when its id was streamed. */
  runId: Schema.optional(Schema.String),
  /** Every call of the stop, in order (at least one). */
  calls: Schema.Array(ToolCall)
})
export type ApprovalStop = typeof ApprovalStop.Type

/** A client tool declared on a request (Letta's `client_tools` item). */
export interface ClientToolDeclaration {
  readonly name: string
  readonly description: string
  readonly parameters: { readonly [key: string]: unknown }
}

export const RunReport = Schema.Struct({
  agentId: Schema.String,
  /** Absent when the server never put a run id on an item. */
  runId: Schema.optional(Schema.String),
  toolCalls: Schema.Array(ToolCallSummary),
  toolReturns: Schema.Array(ToolReturnSummary),
  assistantMessages: Schema.Array(Schema.String),
  stopReason: Schema.String,
  usage: Schema.NullOr(RunUsage),
  /** Wall time of the whole run (headers and stream), by the Effect Clock. */
  durationMs: Schema.Number,
  /** A side-effecting tool call was streamed (see `isSideEffectingTool`). */
  sideEffect: Schema.Boolean,
  /** Time from the start of the run to the first streamed tool call. */
  firstToolCallMs: Schema.NullOr(Schema.Number),
  /**
   * The run stopped with `requires_approval` after an `approval_request_message`: it waits for
   * the answers to these calls (client tools Aurora runs, or tools a person must approve). A
   * successful report: the run is not over, it is carried on by a continuation (see ToolLoop).
   */
  approvalStop: Schema.optional(ApprovalStop)
})
export type RunReport = typeof RunReport.Type

/** Hooks called while the run streams; they must not fail (failures are logged and ignored). */
export interface RunObserver {
  /** Called once, as soon as the stream shows the run id (e.g. to persist it for crash recovery). */
  readonly onRunId?: (runId: string) => Effect.Effect<void>
  /** Called for every streamed tool call (e.g. to stop the typing indicator after discord_send). */
  readonly onToolCall?: (call: ToolCallSummary) => Effect.Effect<void>
}

export interface RunRequest {
  readonly agentId: string
  /**
   * The Letta conversation to run in (`channel` mode): `POST /v1/conversations/{id}/messages`.
   * Absent: the agent's default conversation, `POST /v1/agents/{id}/messages`.
   */
  readonly conversationId?: string | undefined
  readonly prompt: string
  /** The message's `otid` (see Otid.ts): the same on every attempt of the event. */
  readonly otid: string
  /** Image URLs sent as image parts after the prompt (see Images.ts); none when absent or empty. */
  readonly images?: ReadonlyArray<string> | undefined
  /** Bound on the whole run: waiting for headers and reading the stream. */
  readonly timeout: Duration.Duration
  readonly observer?: RunObserver
  /** Declared as `client_tools` (the guild's `tools` = `builtin`); none when absent or empty. */
  readonly clientTools?: ReadonlyArray<ClientToolDeclaration> | undefined
}

/**
 * A continuation of a run stopped for approval: the same route (conversation or agent), the
 * stop's answers as the first message (`{ type: "approval", approvals }`) with `otid`
 * (`otidFor(messageId, <first answered tool call id>)`), bounded and streamed like a run.
 */
export interface ContinuationRequest extends Omit<RunRequest, "prompt" | "images"> {
  readonly answers: ReadonlyArray<ApprovalAnswer>
}

/**
 * Stop reasons that mean the agent finished its turn normally. `tool_rule` is a turn ended by a
 * terminal tool rule, which the Letta server itself records as a completed run.
 * Everything else is a failed run, including `max_steps` (the turn was cut off before the agent
 * finished), `requires_approval` without an `approval_request_message` (nothing names what to
 * answer; with one it is an approval stop, see `RunReport.approvalStop`), `cancelled`,
 * `no_tool_call` and any reason this version does not know.
 */
export const successfulStopReasons: ReadonlySet<string> = new Set(["end_turn", "tool_rule"])

export const isSuccessfulStopReason = (stopReason: string): boolean => successfulStopReasons.has(stopReason)

const readOnlyToolPrefixes = ["discord_read_", "discord_get_", "discord_list_", "discord_search_"]

/** Letta's built-in tools that only look things up. */
const readOnlyTools: ReadonlySet<string> = new Set([
  "conversation_search",
  "archival_memory_search",
  "web_search",
  "fetch_webpage"
])

/**
 * Whether calling this tool may have acted (posted, reacted, edited, written memory...). Only
 * tools that are clearly read-only are exempt: an unknown tool could post, so it counts as acting
 * and the run is never re-sent.
 */
export const isSideEffectingTool = (name: string): boolean =>
  !readOnlyTools.has(name) && !readOnlyToolPrefixes.some((prefix) => name.startsWith(prefix))

/** Whether calling this tool is a Discord action that may have reached the user (see the module header). */
export const isDiscordAction = (name: string): boolean => name.startsWith("discord_") && isSideEffectingTool(name)

/** The run ended normally without any Discord action (see the module header). */
export const isSilentRun = (report: Pick<RunReport, "stopReason" | "toolCalls">): boolean =>
  isSuccessfulStopReason(report.stopReason) && !report.toolCalls.some((call) => isDiscordAction(call.name))

/** What the agent wrote in the run: its assistant messages joined by a blank line, trimmed ("" when none). */
export const runText = (report: Pick<RunReport, "assistantMessages">): string => report.assistantMessages.join("\n\n").trim()

/** Collapses whitespace and truncates to `max` characters, marking the cut with an ellipsis. */
export const truncate = (text: string, max: number): string => {
  const flat = text.replace(/\s+/g, " ").trim()
  return flat.length <= max ? flat : `${flat.slice(0, Math.max(0, max - 1))}…`
}

export const argumentsSummaryLength = 200

export const summarizeArguments = (args: string): string => truncate(args, argumentsSummaryLength)
