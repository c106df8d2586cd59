/**
 * The fake Letta server's tool approvals, as the real server (letta-ai/letta, `letta/agents/helpers.py`
 * `_prepare_in_context_messages_no_persist_async`, `validate_approval_tool_call_ids`) and the SDK's
 * 1.12 types (`ApprovalCreate`, `ApprovalReturn`, `ToolReturn`, `ToolReturnCreate`) have them.
 *
 * A run stops for approval by streaming an `approval_request_message` (`tool_call` = the first
 * call, `tool_calls` = all of them) and then `stop_reason: "requires_approval"`. From the moment
 * that item is played (written to the client, or played unseen after the client left), the
 * conversation — or, on the agents route, the agent's default conversation — has a pending
 * approval naming those tool call ids. The next messages request there is decided before it takes
 * a behaviour:
 *
 * - a continuation (first message `{ type: "approval", approvals: [...] }`, or the SDK's
 *   `{ type: "tool_return", tool_returns: [...] }`, which the server converts to the same) whose
 *   tool call ids are exactly the pending ones (as a set) is accepted: the pending approval is
 *   cleared and the run plays the agent's next scripted behaviour (which may stop for approval
 *   again: round-trips chain);
 * - with other ids: 400 `Invalid tool call IDs. Expected '[...]', but received '[...]'.`;
 * - an item that is neither a tool return (`tool_call_id`, `status` success|error, `tool_return`)
 *   nor an approval (`tool_call_id`, `approve` boolean): 422, as pydantic answers;
 * - a continuation when nothing is pending: accepted as a repeat when its ids are those of an
 *   answer already given there (the server's idempotency check: it runs a keep-alive turn, which
 *   here plays the next behaviour), else 400 `Cannot process approval response: No tool call is
 *   currently awaiting approval. ...`;
 * - a user message while an approval is pending: 409 with the server's PendingApprovalError text
 *   (`CONFLICT: Cannot send a new message: The agent is waiting for approval on a tool call. ...`),
 *   which Aurora reads as `AgentBusy` with `pendingApproval` (src/services/letta/ClientErrors.ts).
 *
 * Every item of every continuation is recorded (accepted, repeated or rejected) with what the
 * client said: tool call id, status, tool return, approve, reason and the message's otid.
 *
 * A client tool call (`Behaviours.clientToolCall`) is only made when the request declared the
 * tool in `client_tools`: the model never sees a tool it was not given. When it was not declared,
 * the fake makes the mistake visible instead of inventing a call: the run ends at once with
 * `stop_reason: "invalid_tool_call"`, and the miss is recorded.
 */
import type { ApprovalReturn, ToolReturn } from "@letta-ai/letta-client/resources/agents/messages"
import type { Behaviour, StreamItem } from "./Script.js"

/** Where a pending approval lives: a conversation, or an agent's default conversation (agents route). */
export interface ApprovalTarget {
  readonly agentId: string
  readonly conversationId?: string | undefined
}

export interface PendingApproval extends ApprovalTarget {
  /** The run that stopped for approval. */
  readonly runId: string
  /** The `approval_request_message`'s id (the server's `pending_request_id`). */
  readonly requestMessageId: string
  readonly toolCalls: ReadonlyArray<{ readonly name: string; readonly toolCallId: string; readonly arguments: string }>
}

/** One item of a continuation's `approvals` (or `tool_returns`), as the client sent it. */
export interface ContinuationRecord extends ApprovalTarget {
  /**
   * `accepted`: it answered the pending approval; `repeated`: nothing was pending and it repeated
   * an answer already given (the server's idempotent path); `rejected`: answered 400 or 422.
   */
  readonly outcome: "accepted" | "repeated" | "rejected"
  /** The run the continuation started (absent when rejected). */
  readonly runId?: string
  /** `tool`: a client tool's return; `approval`: a decision on a server tool. */
  readonly type: "tool" | "approval"
  readonly toolCallId: string
  readonly status?: "success" | "error"
  readonly toolReturn?: ToolReturn["tool_return"]
  readonly approve?: boolean
  readonly reason?: string | null
  /** The otid of the message that carried it (null when the client set none). */
  readonly otid: string | null
  /** Wall-clock milliseconds. */
  readonly at: number
}

/** A `Behaviours.clientToolCall` whose tools the request had not declared. */
export interface UndeclaredClientTool extends ApprovalTarget {
  readonly names: ReadonlyArray<string>
  readonly declared: ReadonlyArray<string>
}

/** The detail of the server's 409 for a user message while an approval is pending. */
export const pendingApprovalDetail =
  "CONFLICT: Cannot send a new message: The agent is waiting for approval on a tool call. Please approve or deny the pending request before continuing."

export const noPendingApprovalDetail =
  "Cannot process approval response: No tool call is currently awaiting approval. Please send a regular message to interact with the agent."

/** Python's repr of a list of strings, as the server's messages print them. */
const pythonList = (ids: ReadonlyArray<string>) => `[${ids.map((id) => `'${id}'`).join(", ")}]`

export const invalidToolCallIdsDetail = (expected: ReadonlyArray<string>, received: ReadonlyArray<string>) =>
  `Invalid tool call IDs. Expected '${pythonList(expected)}', but received '${pythonList(received)}'.`

/** What a messages request is, decided before it may take a behaviour. */
export type Admission =
  | { readonly _tag: "Message" }
  | { readonly _tag: "Continue"; readonly repeated: boolean; readonly answers: ReadonlyArray<Answer> }
  | {
    readonly _tag: "Reject"
    readonly status: 400 | 409 | 422
    readonly body: unknown
    readonly rejected: "pending-approval" | "invalid-approval"
  }

type Answer = Omit<ContinuationRecord, keyof ApprovalTarget | "outcome" | "runId" | "at">

const field = (value: unknown, key: string): unknown =>
  typeof value === "object" && value !== null ? Reflect.get(value, key) : undefined

const keyOf = (target: ApprovalTarget) =>
  target.conversationId === undefined ? `agent:${target.agentId}` : `conversation:${target.conversationId}`

const sameIds = (a: ReadonlyArray<string>, b: ReadonlyArray<string>) => {
  const left = new Set(a)
  const right = new Set(b)
  return left.size === right.size && [...left].every((id) => right.has(id))
}

/** The tool calls of an approval_request_message item (`tool_calls`, else the deprecated `tool_call`). */
const toolCallsOf = (item: StreamItem): PendingApproval["toolCalls"] => {
  const list: ReadonlyArray<unknown> = Array.isArray(item["tool_calls"]) ? item["tool_calls"] : [item["tool_call"]]
  return list.flatMap((call) => {
    const name = field(call, "name")
    const toolCallId = field(call, "tool_call_id")
    const args = field(call, "arguments")
    return typeof name === "string" && typeof toolCallId === "string"
      ? [{ name, toolCallId, arguments: typeof args === "string" ? args : "" }]
      : []
  })
}

/**
 * Reads one item of `approvals` as the SDK types it: `ToolReturn` (`type: "tool"`) or
 * `ApprovalReturn` (`type: "approval"`); without a type, by its fields. Undefined when it is neither.
 */
const answerOf = (raw: unknown, otid: string | null): Answer | undefined => {
  const toolCallId = field(raw, "tool_call_id")
  if (typeof toolCallId !== "string") return undefined
  const type = field(raw, "type")
  const status = field(raw, "status")
  const toolReturn = field(raw, "tool_return")
  const approve = field(raw, "approve")
  const reason = field(raw, "reason")
  if (type === "tool" || (type === undefined && approve === undefined)) {
    const validReturn = typeof toolReturn === "string" || Array.isArray(toolReturn)
    if ((status !== "success" && status !== "error") || !validReturn) return undefined
    const tool: Pick<ToolReturn, "status" | "tool_return"> = { status, tool_return: toolReturn }
    return { type: "tool", toolCallId, status: tool.status, toolReturn: tool.tool_return, otid }
  }
  if (type !== "approval" && type !== undefined) return undefined
  if (typeof approve !== "boolean") return undefined
  if (reason !== undefined && reason !== null && typeof reason !== "string") return undefined
  const decision: Pick<ApprovalReturn, "approve" | "reason"> = { approve, reason: reason ?? null }
  return { type: "approval", toolCallId, approve: decision.approve, reason: decision.reason ?? null, otid }
}

/** The continuation a request carries, when its first message is one. */
const continuationOf = (body: unknown): { readonly items: ReadonlyArray<unknown>; readonly otid: string | null } | undefined => {
  const messages = field(body, "messages")
  const first: unknown = Array.isArray(messages) ? messages[0] : undefined
  const otid = field(first, "otid")
  const type = field(first, "type")
  if (type !== "approval" && type !== "tool_return") return undefined
  // ApprovalCreate.approvals, or ToolReturnCreate.tool_returns (the server converts the latter).
  const items = field(first, type === "approval" ? "approvals" : "tool_returns")
  return { items: Array.isArray(items) ? items : [], otid: typeof otid === "string" ? otid : null }
}

/** Names of the request's `client_tools`. */
export const declaredClientTools = (body: unknown): ReadonlyArray<string> => {
  const tools = field(body, "client_tools")
  return Array.isArray(tools)
    ? tools.flatMap((tool) => (typeof field(tool, "name") === "string" ? [String(field(tool, "name"))] : []))
    : []
}

const invalidToolCallStop: Behaviour = {
  _tag: "Stream",
  frames: [
    { _tag: "Item", item: { message_type: "stop_reason", stop_reason: "invalid_tool_call" } },
    { _tag: "Done" }
  ]
}

/** How many earlier answers per conversation the repeat check looks at (the server looks at recent messages). */
const answersKept = 10

export const makeApprovals = () => {
  const pending = new Map<string, PendingApproval>()
  const answered = new Map<string, Array<ReadonlyArray<string>>>()
  const continuations: Array<ContinuationRecord> = []
  const undeclared: Array<UndeclaredClientTool> = []

  /** A streamed item was played in a run of this target: an approval request makes it pending. */
  const observe = (target: ApprovalTarget & { readonly runId: string }, item: StreamItem) => {
    if (item.message_type !== "approval_request_message") return
    pending.set(keyOf(target), {
      agentId: target.agentId,
      ...(target.conversationId === undefined ? {} : { conversationId: target.conversationId }),
      runId: target.runId,
      requestMessageId: typeof item["id"] === "string" ? item["id"] : "",
      toolCalls: toolCallsOf(item)
    })
  }

  const admit = (target: ApprovalTarget, body: unknown): Admission => {
    const waiting = pending.get(keyOf(target))
    const continuation = continuationOf(body)
    if (continuation === undefined) {
      return waiting === undefined
        ? { _tag: "Message" }
        : { _tag: "Reject", status: 409, body: { detail: pendingApprovalDetail }, rejected: "pending-approval" }
    }
    const answers = continuation.items.map((item) => answerOf(item, continuation.otid))
    const invalid = answers.findIndex((answer) => answer === undefined)
    const valid = answers.flatMap((answer) => (answer === undefined ? [] : [answer]))
    const reject = (status: 400 | 422, body: unknown): Admission => {
      record(target, valid, "rejected", undefined)
      return { _tag: "Reject", status, body, rejected: "invalid-approval" }
    }
    if (invalid >= 0) {
      return reject(422, {
        detail: [{ type: "missing", loc: ["body", "messages", 0, "approvals", invalid], msg: "Field required" }]
      })
    }
    const ids = valid.map((answer) => answer.toolCallId)
    if (ids.length === 0) {
      return reject(400, { detail: "Invalid approval response. Approval response message does not contain any approvals." })
    }
    if (waiting === undefined) {
      const repeated = (answered.get(keyOf(target)) ?? []).some((earlier) => sameIds(earlier, ids))
      return repeated ? { _tag: "Continue", repeated, answers: valid } : reject(400, { detail: noPendingApprovalDetail })
    }
    const expected = waiting.toolCalls.map((call) => call.toolCallId)
    if (!sameIds(expected, ids)) return reject(400, { detail: invalidToolCallIdsDetail(expected, ids) })
    return { _tag: "Continue", repeated: false, answers: valid }
  }

  const record = (
    target: ApprovalTarget,
    answers: ReadonlyArray<Answer>,
    outcome: ContinuationRecord["outcome"],
    runId: string | undefined
  ) => {
    const at = Date.now()
    for (const answer of answers) {
      continuations.push({
        agentId: target.agentId,
        ...(target.conversationId === undefined ? {} : { conversationId: target.conversationId }),
        outcome,
        ...(runId === undefined ? {} : { runId }),
        ...answer,
        at
      })
    }
  }

  /** An admitted continuation started its run: the approval is answered. */
  const commit = (target: ApprovalTarget, admission: Admission & { readonly _tag: "Continue" }, runId: string) => {
    record(target, admission.answers, admission.repeated ? "repeated" : "accepted", runId)
    if (admission.repeated) return
    const key = keyOf(target)
    pending.delete(key)
    answered.set(key, [...(answered.get(key) ?? []), admission.answers.map((a) => a.toolCallId)].slice(-answersKept))
  }

  /** The behaviour a request plays: a client tool call the request did not declare ends the run instead. */
  const resolve = (target: ApprovalTarget, behaviour: Behaviour, body: unknown): Behaviour => {
    if (behaviour._tag !== "Stream" || behaviour.clientTools === undefined) return behaviour
    const declared = declaredClientTools(body)
    const names = behaviour.clientTools.filter((name) => !declared.includes(name))
    if (names.length === 0) return behaviour
    undeclared.push({ ...target, names, declared })
    return invalidToolCallStop
  }

  return {
    observe,
    admit,
    commit,
    resolve,
    continuations: (): ReadonlyArray<ContinuationRecord> => [...continuations],
    pending: (target: ApprovalTarget): PendingApproval | undefined => pending.get(keyOf(target)),
    undeclared: (): ReadonlyArray<UndeclaredClientTool> => [...undeclared]
  } as const
}

export type Approvals = ReturnType<typeof makeApprovals>

/** Whether a request's first message is a continuation (an approval or tool returns). */
export const isContinuation = (body: unknown): boolean => continuationOf(body) !== undefined
