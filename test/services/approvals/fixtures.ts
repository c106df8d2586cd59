/** A request with two calls and one answer Aurora already had, shared by the approval tests. */
import { ApprovalAnswer, type ApprovalRequest } from "../../../src/domain/Approval.js"
import { ToolResult } from "../../../src/domain/ToolCall.js"

export const request = (overrides: Partial<ApprovalRequest> = {}): ApprovalRequest => ({
  guildId: "g1",
  channelId: "c1",
  messageId: "m1",
  agentId: "agent-1",
  conversationId: "conv-1",
  runId: "run-1",
  calls: [
    { name: "web_search", arguments: "{\"query\":\"weather\"}", toolCallId: "call-1" },
    { name: "send_email", arguments: "{\"to\":\"a@b.c\"}", toolCallId: "call-2" }
  ],
  answered: [ApprovalAnswer.toolReturn("call-0", ToolResult.success("sent message 9"))],
  actionsBefore: ["discord_send"],
  requestedAt: 1_000,
  ...overrides
})
