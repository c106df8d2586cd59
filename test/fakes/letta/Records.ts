/**
 * What the fake Letta server records: every request, every run, every cancel, and (conversations
 * route) every conversation created and every busy answer. Tests read them through FakeLetta.
 */
import type { SentMessage, ValidationIssue } from "./Messages.js"

/**
 * `messages` and `cancel` cover both routes (`/v1/agents/{id}/messages[/cancel]` and
 * `/v1/conversations/{id}/messages|cancel`: `conversationId` tells them apart);
 * `conversation-create` is `POST /v1/conversations/`, `conversation` is `GET /v1/conversations/{id}`.
 */
export type RequestKind =
  | "messages"
  | "cancel"
  | "agent"
  | "health"
  | "conversation-create"
  | "conversation"
  | "other"

export interface ReceivedRequest {
  /** 1-based, in arrival order over all requests. */
  readonly seq: number
  readonly kind: RequestKind
  readonly method: string
  readonly path: string
  readonly query: string
  /** Lower-case header names. */
  readonly headers: Readonly<Record<string, string>>
  /** Parsed JSON, the raw text when not JSON, undefined when empty. */
  readonly body: unknown
  /** The agent addressed: in the path, the `agent_id` of a create, the agent of a known conversation. */
  readonly agentId?: string
  /** The conversation addressed (conversations routes), or created (a create that succeeded). */
  readonly conversationId?: string
  /** The run id the fake gave a messages request (absent when the request was rejected). */
  readonly runId?: string
  /**
   * Answered without a run. `invalid` (either route): 422, the body's messages do not have the
   * SDK's shape (see Messages.ts). Conversations route: `busy`, 409 (a run in flight there, or a
   * scripted busy answer); `not-found`, 404 (unknown or deleted conversation). Either route
   * (Approvals.ts): `pending-approval`: 409 (a user message while tool calls await approval);
   * `invalid-approval`: 400/422 (a continuation that does not answer the pending calls, or is malformed).
   */
  readonly rejected?: "busy" | "not-found" | "invalid" | "pending-approval" | "invalid-approval"
  /** Messages requests (either route) whose body was valid: its messages as sent (content parts, otid). */
  readonly messages?: ReadonlyArray<SentMessage>
  /** A request rejected `invalid`: what the server's validation would say. */
  readonly issues?: ReadonlyArray<ValidationIssue>
  /** Wall-clock milliseconds. */
  readonly at: number
}

export interface RunRecord {
  readonly runId: string
  readonly agentId: string
  /** The conversation the run belongs to (conversations route); absent on the agents route. */
  readonly conversationId?: string
  readonly startedAt: number
  readonly finishedAt?: number
  /**
   * "completed" (the scripted run reached its end), "aborted" (agents route: the connection closed
   * first; either route: the fake went offline), "cancelled" (a cancel route).
   */
  readonly outcome?: "completed" | "aborted" | "cancelled"
  /** Names of the tool calls written to the stream so far (what the client may have seen the agent do). */
  readonly toolCallsWritten: ReadonlyArray<string>
  /** The stream's `[DONE]` frame was written: the run reached its end as scripted. */
  readonly doneWritten: boolean
  /**
   * Conversations route: when the client left before the stream ended. Like the real server, the
   * run went on (its script kept its pace, unwritten) until it ended or a cancel stopped it, and
   * kept the conversation busy meanwhile.
   */
  readonly detachedAt?: number
  /** Tool calls the run made after the client left: on a real server their effects happen unseen. */
  readonly toolCallsDetached?: ReadonlyArray<string>
}

export interface CancelRecord {
  readonly agentId: string
  /**
   * Agents route: the `run_ids` asked for; absent when the request had none (which would cancel
   * every run of the agent). Conversations route: always absent (it cancels the conversation's runs).
   */
  readonly runIds: ReadonlyArray<string> | undefined
  /** Conversations route: the conversation (a known one; cancels of unknown ones are not recorded here). */
  readonly conversationId?: string
  /** Conversations route: the runs this cancel ended. */
  readonly cancelledRunIds?: ReadonlyArray<string>
}

export interface ConversationRecord {
  /** `conv-<n>`, 1-based in creation order. */
  readonly id: string
  readonly agentId: string
  /** The `description` of the create request (null when absent). */
  readonly description: string | null
  /** The create request's JSON body as received. */
  readonly body: unknown
  /** Wall-clock milliseconds. */
  readonly createdAt: number
  /** Deleted by the test (`deleteConversation`): every later request on it is answered 404. */
  readonly deleted: boolean
}

export interface BusyAnswer {
  readonly conversationId: string
  readonly agentId: string
  /**
   * `in-flight`: a run of this conversation was in flight (the client overlapped its own sends, or
   * re-sent while a run it had left was still going); `scripted`: `scriptBusy`/`scriptBusyForAgent`.
   */
  readonly reason: "in-flight" | "scripted"
  /** The run named in the answer: the one in flight, or an invented `run-elsewhere-<n>`. */
  readonly blockingRunId: string
  /** Wall-clock milliseconds. */
  readonly at: number
}
