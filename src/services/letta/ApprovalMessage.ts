/**
 * The first message of a continuation (a run stopped with `requires_approval`, answered): Letta's
 * `ApprovalCreate`, `{ type: "approval", approvals, otid }`, one item per answer in the given
 * order: a tool Aurora ran is a `ToolReturn` (`{ type: "tool", tool_call_id, status, tool_return }`),
 * a person's (or Aurora's) decision an `ApprovalReturn` (`{ type: "approval", tool_call_id, approve,
 * reason }`). And the `client_tools` of a request: the declarations as Letta takes them, or nothing
 * when there are none.
 */
import type { ApprovalCreate, ApprovalReturn, ToolReturn } from "@letta-ai/letta-client/resources/agents/messages"
import type { ApprovalAnswer } from "../../domain/Approval.js"
import type { ClientToolDeclaration } from "../../domain/AgentRun.js"

const approvalItem = (answer: ApprovalAnswer): ApprovalReturn | ToolReturn =>
  answer._tag === "ToolReturn"
    ? {
      type: "tool",
      tool_call_id: answer.toolCallId,
      status: answer.result.status,
      tool_return: answer.result.toolReturn
    }
    : { type: "approval", tool_call_id: answer.toolCallId, approve: answer.approve, reason: answer.reason }

export const approvalMessage = (answers: ReadonlyArray<ApprovalAnswer>, otid: string): ApprovalCreate => ({
  type: "approval",
  approvals: answers.map(approvalItem),
  otid
})

/** `client_tools` for a request: present only when some are declared. */
export const clientToolsField = (
  tools: ReadonlyArray<ClientToolDeclaration> | undefined
): { client_tools?: Array<{ name: string; description: string; parameters: { [key: string]: unknown } }> } =>
  tools === undefined || tools.length === 0
    ? {}
    : {
      client_tools: tools.map((tool) => ({ name: tool.name, description: tool.description, parameters: { ...tool.parameters } }))
    }
