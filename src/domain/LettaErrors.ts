/**
 * Failures of an agent run, classified so that retry, the circuit breaker and error statistics
 * can each decide from the tag alone. `sideEffect` records whether the agent had already called a
 * side-effecting Discord tool when the failure happened: such a run is never re-sent.
 */
import { Data, type Duration } from "effect"

interface RunFailureFields {
  readonly agentId: string
  /** The run id seen in the stream, when one was seen. */
  readonly runId?: string | undefined
  /** The agent already called a side-effecting Discord tool (e.g. discord_send). */
  readonly sideEffect: boolean
  readonly reason: string
}

/** The Letta server could not be reached, or the connection broke. */
export class LettaConnectionError extends Data.TaggedError("LettaConnectionError")<RunFailureFields> {}

/** The whole run (headers or stream) exceeded the guild's timeout, or the server answered 408. */
export class LettaTimeout extends Data.TaggedError("LettaTimeout")<
  RunFailureFields & { readonly timeout: Duration.Duration; readonly phase: "headers" | "stream" | "server" }
> {}

/** 429: the server asks us to slow down; `retryAfter` from its Retry-After header when present. */
export class LettaRateLimited extends Data.TaggedError("LettaRateLimited")<
  RunFailureFields & { readonly retryAfter?: Duration.Duration | undefined }
> {}

/** 5xx. */
export class LettaServerError extends Data.TaggedError("LettaServerError")<
  RunFailureFields & { readonly status: number }
> {}

/** 404: no such agent (a mistyped agent id; not a sign of an unhealthy server). */
export class AgentNotFound extends Data.TaggedError("AgentNotFound")<RunFailureFields> {}

/** 401/403: the API key is missing, wrong or lacks access. */
export class LettaUnauthorized extends Data.TaggedError("LettaUnauthorized")<
  RunFailureFields & { readonly status: number }
> {}

/** 400/422: the server rejected the request. */
export class LettaRejected extends Data.TaggedError("LettaRejected")<
  RunFailureFields & { readonly status: number }
> {}

/** 409: the agent is busy, or blocked on a pending tool approval. */
export class AgentBusy extends Data.TaggedError("AgentBusy")<
  RunFailureFields & { readonly pendingApproval: boolean }
> {}

/**
 * 409 on a conversation, not about an approval: another request (a run still finishing on the
 * server, another client) holds it. Waiting is the answer: not a failure of the service or the run.
 */
export class ConversationBusy extends Data.TaggedError("ConversationBusy")<
  RunFailureFields & {
    readonly conversationId: string
    /** The run holding the conversation, when the server named it. */
    readonly blockingRunId?: string | undefined
  }
> {}

/** 404 on a conversation: it is gone on the server (deleted), so a new one is needed. */
export class ConversationNotFound extends Data.TaggedError("ConversationNotFound")<
  RunFailureFields & { readonly conversationId: string }
> {}

/** The run ended badly: an error stop reason, an `error_message` item or an `event: error` frame. */
export class RunFailed extends Data.TaggedError("RunFailed")<
  RunFailureFields & { readonly stopReason?: string | undefined; readonly errorType?: string | undefined }
> {}

/** The circuit breaker is open: no request was made. */
export class CircuitOpen extends Data.TaggedError("CircuitOpen")<{
  /**
   * When to look again at the latest: the end of the cool-down (OPEN), or a whole cool-down while
   * every trial slot is busy (HALF-OPEN), as a safety net under the breaker's release signal.
   */
  readonly retryIn: Duration.Duration
}> {}

export type LettaRunError =
  | LettaConnectionError
  | LettaTimeout
  | LettaRateLimited
  | LettaServerError
  | AgentNotFound
  | LettaUnauthorized
  | LettaRejected
  | AgentBusy
  | ConversationBusy
  | ConversationNotFound
  | RunFailed

/**
 * Failures that say the Letta service is unhealthy: the circuit breaker counts these. A busy or
 * lost conversation says nothing about the service's health.
 */
export const isServiceFailure = (error: LettaRunError): boolean => {
  switch (error._tag) {
    case "LettaConnectionError":
    case "LettaTimeout":
    case "LettaRateLimited":
    case "LettaServerError":
      return true
    default:
      return false
  }
}

/**
 * Failures worth sending again: service failures — but never once the agent has acted,
 * because a re-sent prompt would make it act (post) twice.
 */
export const isTransient = (error: LettaRunError): boolean => isServiceFailure(error) && !error.sideEffect

/**
 * The conversation is held by another request: send again later, at the front of its channel.
 * Never a failure: no breaker, no error statistics, no dead letter. (A 409 for a pending approval
 * is `AgentBusy` with `pendingApproval`, a permanent failure.)
 */
export const isBusy = (error: LettaRunError): error is ConversationBusy => error._tag === "ConversationBusy"
