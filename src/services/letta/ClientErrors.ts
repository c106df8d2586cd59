/**
 * How a failure of the official Letta client reads as Aurora's typed errors (`classifyClientError`).
 *
 * A request addressed to a conversation (`/v1/conversations/{id}/...`: the context names the
 * conversation) reads 404 as `ConversationNotFound` and a 409 that does not mention an approval as
 * `ConversationBusy`. Everything else — the agents routes, and creating a conversation, whose 404
 * is about the agent — reads 404 as `AgentNotFound` and 409 as `AgentBusy` (`pendingApproval`
 * when the answer mentions an approval, on either route).
 */
import { APIConnectionError, APIConnectionTimeoutError, APIError, APIUserAbortError } from "@letta-ai/letta-client"
import { Clock, Duration, Effect } from "effect"
import {
  AgentBusy,
  AgentNotFound,
  ConversationBusy,
  ConversationNotFound,
  LettaConnectionError,
  LettaRateLimited,
  LettaRejected,
  LettaServerError,
  LettaTimeout,
  LettaUnauthorized,
  type LettaRunError,
  RunFailed
} from "../../domain/LettaErrors.js"

/** What a failure is classified against: the run as far as it got. */
export interface FailureContext {
  readonly agentId: string
  /** The conversation the request addressed; absent on the agents routes. */
  readonly conversationId?: string | undefined
  readonly runId?: string | undefined
  readonly sideEffect: boolean
  /** The bound that applied, reported in LettaTimeout. */
  readonly timeout: Duration.Duration
  /** Removes secrets from text that will end up in an error message. */
  readonly redact: (text: string) => string
}

export const errorText = (cause: unknown): string => {
  if (cause instanceof Error) return cause.message
  return typeof cause === "string" ? cause : JSON.stringify(cause) ?? String(cause)
}

const bodyText = (body: unknown): string => (body === undefined ? "" : JSON.stringify(body) ?? "")

const bodyField = (body: unknown, key: string): string | undefined => {
  if (typeof body !== "object" || body === null || !(key in body)) return undefined
  const value: unknown = Reflect.get(body, key)
  return typeof value === "string" ? value : undefined
}

/**
 * The run named in a busy answer: `Another request (run_id=run-...) is currently being processed`,
 * or a `"run_id":"run-..."` field beside the detail.
 */
const blockingRunIdOf = (text: string): string | undefined => /run_id"?\s*[=:]\s*"?([A-Za-z0-9_-]+)/.exec(text)?.[1]

/** Longest Retry-After honoured: a server asking for more is treated as asking for this. */
export const maxRetryAfter = Duration.minutes(5)

/**
 * Reads `retry-after-ms` (milliseconds) or `Retry-After` (seconds, or an HTTP date relative to
 * `nowMs`). Unparseable or absent -> undefined; negative -> zero; capped at `maxRetryAfter`.
 */
export const parseRetryAfter = (
  headers: { readonly get: (name: string) => string | null } | undefined,
  nowMs: number
): Duration.Duration | undefined => {
  if (headers === undefined) return undefined
  const clamp = (ms: number) => Duration.min(Duration.millis(Math.max(0, ms)), maxRetryAfter)
  const ms = headers.get("retry-after-ms")
  if (ms !== null && ms.trim() !== "" && Number.isFinite(Number(ms))) return clamp(Number(ms))
  const value = headers.get("retry-after")
  if (value === null || value.trim() === "") return undefined
  const seconds = Number(value)
  if (Number.isFinite(seconds)) return clamp(seconds * 1000)
  const date = Date.parse(value)
  return Number.isNaN(date) ? undefined : clamp(date - nowMs)
}

/**
 * Maps whatever the Letta client threw to Aurora's typed errors. `phase` is where the run was
 * when it happened (the client's own timeout only ever covers the headers).
 */
export const classifyClientError = (
  cause: unknown,
  context: FailureContext & { readonly phase: "headers" | "stream" }
): Effect.Effect<LettaRunError> =>
  Effect.gen(function*() {
    const base = {
      agentId: context.agentId,
      runId: context.runId,
      sideEffect: context.sideEffect
    }
    const reason = context.redact(errorText(cause))
    if (cause instanceof APIConnectionTimeoutError) {
      return new LettaTimeout({ ...base, reason, timeout: context.timeout, phase: "headers" })
    }
    if (cause instanceof APIConnectionError || cause instanceof APIUserAbortError) {
      return new LettaConnectionError({ ...base, reason })
    }
    if (!(cause instanceof APIError)) {
      // Raw fetch/body errors (a socket closed mid-stream surfaces as "terminated").
      return new LettaConnectionError({ ...base, reason })
    }
    const status = cause.status
    if (status === undefined) {
      // An `event: error` frame: the client throws an APIError without a status, the frame's
      // JSON (an error_message) as its body.
      const runId = base.runId ?? bodyField(cause.error, "run_id")
      const message = bodyField(cause.error, "message") ?? bodyField(cause.error, "detail") ?? reason
      return new RunFailed({
        ...base,
        runId,
        reason: context.redact(message),
        errorType: bodyField(cause.error, "error_type")
      })
    }
    const conversationId = context.conversationId
    if (status === 404) {
      return conversationId === undefined
        ? new AgentNotFound({ ...base, reason })
        : new ConversationNotFound({ ...base, reason, conversationId })
    }
    if (status === 408) return new LettaTimeout({ ...base, reason, timeout: context.timeout, phase: "server" })
    if (status === 429) {
      const now = yield* Clock.currentTimeMillis
      return new LettaRateLimited({ ...base, reason, retryAfter: parseRetryAfter(cause.headers, now) })
    }
    if (status === 409) {
      const text = `${cause.message} ${bodyText(cause.error)}`
      const pendingApproval = /approval/i.test(text)
      if (conversationId === undefined || pendingApproval) return new AgentBusy({ ...base, reason, pendingApproval })
      return new ConversationBusy({ ...base, reason, conversationId, blockingRunId: blockingRunIdOf(text) })
    }
    if (status === 401 || status === 403) return new LettaUnauthorized({ ...base, reason, status })
    if (status >= 500) return new LettaServerError({ ...base, reason, status })
    // 400, 422 and any other refusal of the request itself.
    return new LettaRejected({ ...base, reason, status })
  })
