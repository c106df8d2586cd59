/**
 * A tool call the agent asked Aurora to run (a Letta client tool), where it may act, what it
 * returned, and how long Aurora remembers that it ran.
 *
 * A call id is Letta's `tool_call_id`; the same id arriving again (a retried continuation, a
 * restart, a replayed stop) is the same call, and is never executed twice: see ToolCalls.
 */
import { Schema } from "effect"
import { Partition } from "./Event.js"

/** As the `approval_request_message` names it: `arguments` is the model's whole JSON text, unchecked. */
export const ToolCall = Schema.Struct({
  name: Schema.String,
  arguments: Schema.String,
  toolCallId: Schema.String
})
export type ToolCall = typeof ToolCall.Type

/** Where the triggering message came from: a tool call may act there only (see Tools' confinement). */
export interface ToolScope {
  /** null for a direct message. */
  readonly guildId: string | null
  /** The triggering channel (thread, DM channel). */
  readonly channelId: string
}

export const ToolStatus = Schema.Literal("success", "error")
export type ToolStatus = typeof ToolStatus.Type

/** What the agent is told: Letta's `ToolReturn` (`status`, `tool_return`). Never a thrown error. */
export interface ToolResult {
  readonly status: ToolStatus
  /** One line for an error; bounded data (JSON) for a read. */
  readonly toolReturn: string
}

export const ToolResult = {
  success: (toolReturn: string): ToolResult => ({ status: "success", toolReturn }),
  error: (toolReturn: string): ToolResult => ({ status: "error", toolReturn })
}

/** The answer to a call that was recorded as started and never finished: it is not run again. */
export const interruptedResult: ToolResult = ToolResult.error(
  "interrupted: Aurora stopped while running this tool call; it may or may not have taken effect, and it was not run again"
)

/** The answer when the call could not be recorded before running: it is not run at all. */
export const unrecordedResult: ToolResult = ToolResult.error(
  "not run: Aurora could not record this tool call before running it (storage failure); try again later"
)

/**
 * How long a call is remembered. A call id can come back while its run lives (retried
 * continuations: seconds; a restart: within AURORA_MAX_EVENT_AGE, 1 hour by default; an approval
 * waits at most 60 minutes), so a week is far beyond any replay; a stop found pending later than
 * that must be answered as interrupted without looking here (see the design note in ToolCalls).
 */
export const toolCallRetentionMs = 7 * 24 * 60 * 60 * 1000

/** Calls kept per partition (guild, or the DMs): the newest by start. Bounds the table under heavy use. */
export const maxToolCallsPerPartition = 5_000

/** Stored tool returns are cut to this many characters (the tools already bound what they return). */
export const maxStoredReturnLength = 16_000

/** A result as stored: its return cut to `maxStoredReturnLength`. */
export const storedResult = (result: ToolResult): ToolResult =>
  result.toolReturn.length <= maxStoredReturnLength
    ? result
    : { ...result, toolReturn: result.toolReturn.slice(0, maxStoredReturnLength) }

export interface ToolCallStart {
  readonly toolCallId: string
  readonly tool: string
  readonly partition: Partition
  /** The triggering event's channel and message. */
  readonly channelId: string
  readonly messageId: string
  /** Epoch milliseconds. */
  readonly at: number
}

/** A remembered call: started, and finished once its result was recorded. */
export interface ToolCallRecord {
  readonly toolCallId: string
  readonly tool: string
  readonly partitionKey: string
  readonly channelId: string
  readonly messageId: string
  readonly startedAt: number
  readonly finished: { readonly at: number; readonly result: ToolResult } | null
}

export const partitionKeyOf = (start: ToolCallStart): string => Partition.key(start.partition)
