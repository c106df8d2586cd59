/**
 * Tool approvals decided by people in Discord (#16): a run stopped with `requires_approval` for a
 * tool that is not one of Aurora's, Aurora asked in the channel, and the run continues with the
 * decision. The shapes shared by the dispatch (which opens an approval), the approval gate (which
 * stores it, posts the buttons, takes the decisions and the deadline) and the continuation (which
 * sends the answers to Letta and finishes the run).
 */
import type { ToolCall, ToolResult } from "./ToolCall.js"

/**
 * One answer in a continuation (`{ type: "approval", approvals: [...] }`): a tool Aurora ran
 * (`{ type: "tool", tool_call_id, status, tool_return }`) or a person's decision
 * (`{ type: "approval", tool_call_id, approve, reason }`). A stop's every pending call is answered
 * in one continuation.
 */
export type ApprovalAnswer =
  | { readonly _tag: "ToolReturn"; readonly toolCallId: string; readonly result: ToolResult }
  | { readonly _tag: "Decision"; readonly toolCallId: string; readonly approve: boolean; readonly reason: string }

export const ApprovalAnswer = {
  toolReturn: (toolCallId: string, result: ToolResult): ApprovalAnswer => ({ _tag: "ToolReturn", toolCallId, result }),
  decision: (toolCallId: string, approve: boolean, reason: string): ApprovalAnswer => ({
    _tag: "Decision",
    toolCallId,
    approve,
    reason
  })
}

/** Where the stopped run lives and what triggered it: what a continuation needs after a restart. */
export interface ApprovalOrigin {
  /** null for a direct message. */
  readonly guildId: string | null
  readonly channelId: string
  /** The triggering message (the approval message replies to it). */
  readonly messageId: string
  readonly agentId: string
  /** The conversation the run stopped in; null: the agent's default conversation (`shared` mode, agents route). */
  readonly conversationId: string | null
  /** The stopped run, when its id was streamed. */
  readonly runId: string | null
}

/** What the dispatch asks the gate to open: the calls awaiting a person, and the stop's other answers. */
export interface ApprovalRequest extends ApprovalOrigin {
  /** The calls a person must decide, in the stop's order (at least one). */
  readonly calls: ReadonlyArray<ToolCall>
  /** The same stop's calls Aurora already ran (built-in tools): sent with the decisions. */
  readonly answered: ReadonlyArray<ApprovalAnswer>
  /**
   * The Discord actions the run made before this stop (tool names, in order; see AgentRun.ts
   * `isDiscordAction`): the agent's own calls streamed before it (an mcp-discord `discord_send`),
   * and Aurora's built-in ones that succeeded at earlier stops of the run. The run has answered
   * if there is one, so the continuation posts no fallback after it. Aurora's calls of this same
   * stop are not listed: they are in `answered` (and read back from ToolCalls).
   */
  readonly actionsBefore: ReadonlyArray<string>
  /** Epoch ms. */
  readonly requestedAt: number
}

/** The gate's answer to `open`. */
export type OpenedApproval =
  /** Stored, asked in Discord, deadline armed: the continuation will come from the decision. */
  | { readonly _tag: "Waiting"; readonly approvalId: string }
  /** Could not be asked (storage or Discord failed): every call is denied now with this reason. */
  | { readonly _tag: "Unavailable"; readonly reason: string }
