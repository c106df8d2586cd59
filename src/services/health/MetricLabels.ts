/**
 * The label values of Aurora's metrics (see Metrics.ts): closed sets, declared once so every
 * series can be registered at zero, and the functions that map a domain value to its label.
 * `tool` is the one open label: a name that does not look like a tool name is counted as `other`.
 */
import type { DeadLetterReason } from "../../domain/DeadLetter.js"
import type { TriggerKind } from "../../domain/Event.js"
import type { CircuitOpen, LettaRunError } from "../../domain/LettaErrors.js"
import type { BreakerState } from "./CircuitBreaker.js"

export const triggerKinds = ["mention", "reply", "dm"] as const satisfies ReadonlyArray<TriggerKind>

/** Why an event was not accepted into the queue. */
export const rejectionReasons = ["full", "duplicate", "storage_error"] as const
export type RejectionReason = (typeof rejectionReasons)[number]

/** How a dispatched run ended, one word per kind of ending (see `runOutcomeOf`). */
export const runOutcomes = [
  "success",
  "run_failed",
  "timeout",
  "connection_error",
  "rate_limited",
  "server_error",
  "agent_not_found",
  "unauthorized",
  "rejected",
  "agent_busy",
  "conversation_busy",
  "conversation_not_found",
  "circuit_open",
  "interrupted"
] as const
export type RunOutcome = (typeof runOutcomes)[number]

export const tokenKinds = ["prompt", "completion"] as const

export const deadLetterReasons = ["failed", "expired", "interrupted-after-reply", "interrupted"] as const satisfies ReadonlyArray<
  DeadLetterReason
>

/**
 * What Aurora did after a silent run: posted the agent's text as a reply, nothing (the setting
 * is `off`, or there was no text), or it meant to post and could not (Discord refused a post, or
 * the journal could not record it first).
 */
export const silentRunActions = ["posted", "none", "failed"] as const
export type SilentRunAction = (typeof silentRunActions)[number]

/** The queue gauges are per scope, not per guild, so the label set stays at two series. */
export const queueScopes = ["guild", "dm"] as const
export type QueueScope = (typeof queueScopes)[number]

/** The outcome label of a failed run. */
export const runOutcomeOf = (error: LettaRunError | CircuitOpen): RunOutcome => {
  switch (error._tag) {
    case "RunFailed":
      return "run_failed"
    case "LettaTimeout":
      return "timeout"
    case "LettaConnectionError":
      return "connection_error"
    case "LettaRateLimited":
      return "rate_limited"
    case "LettaServerError":
      return "server_error"
    case "AgentNotFound":
      return "agent_not_found"
    case "LettaUnauthorized":
      return "unauthorized"
    case "LettaRejected":
      return "rejected"
    case "AgentBusy":
      return "agent_busy"
    case "ConversationBusy":
      return "conversation_busy"
    case "ConversationNotFound":
      return "conversation_not_found"
    case "CircuitOpen":
      return "circuit_open"
  }
}

/** Tool names come from the agent: keep what looks like one, lump the rest as "other". */
export const toolLabel = (name: string): string => (/^[A-Za-z0-9_.:-]{1,64}$/.test(name) ? name : "other")

/** The `state` label of `aurora_circuit_breaker_state`: one series per state, the current one at 1. */
export const breakerStates = ["closed", "half_open", "open"] as const
export type BreakerStateLabel = (typeof breakerStates)[number]

export const breakerStateLabel = (state: BreakerState): BreakerStateLabel =>
  state._tag === "Closed" ? "closed" : state._tag === "HalfOpen" ? "half_open" : "open"
