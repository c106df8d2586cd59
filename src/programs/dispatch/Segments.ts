/**
 * What the dispatch and the approval continuation share to run the segments of a run past its
 * approval stops:
 *
 * - `clientToolsOf`: a guild whose `tools` is `builtin` declares Aurora's Discord tools as
 *   `client_tools` on every request (the prompt's and every continuation); otherwise none;
 * - `continuation`: one continuation through the circuit breaker, counted in the error statistics
 *   like a run, and retried on transient failures by the retry schedule (the same answers and
 *   otid each time: Letta takes a repeated answer as a repeat). An open breaker is a transient
 *   failure here (a connection error "circuit open"): the loop is mid-run and cannot be put back
 *   in the queue, so it waits like any retry;
 * - `busyWhileAwaiting`: Letta's 409 "waiting for approval" (AgentBusy with `pendingApproval`) in
 *   a conversation (or an agent's default conversation) where the approval gate waits on a person,
 *   or where Aurora holds an open stop (OpenStops: a tool loop answering it, or the start-up
 *   take-up of one a previous process left, programs/StopTakeUp.ts), is a busy conversation
 *   (ConversationBusy: back to the queue with the busy backoff, no dead letter); any other 409
 *   about an approval stays a permanent failure. An open stop that cannot be read counts as none
 *   (logged).
 */
import { Effect, type Schedule } from "effect"
import type { ClientToolDeclaration, ContinuationRequest, RunReport } from "../../domain/AgentRun.js"
import { ConversationBusy, isServiceFailure, LettaConnectionError, type LettaRunError } from "../../domain/LettaErrors.js"
import type { GuildSettings } from "../../domain/Settings.js"
import { ApprovalGate } from "../../services/approvals/Ports.js"
import { definitions } from "../../services/discord/Tools.js"
import { CircuitBreaker } from "../../services/health/CircuitBreaker.js"
import { ErrorStats } from "../../services/health/ErrorStats.js"
import { OpenStops } from "../../services/queue/OpenStops.js"
import { LettaExecutor } from "../../services/letta/LettaExecutor.js"
import { retryOnFailure } from "../../services/letta/RetryPolicy.js"

export const clientToolsOf = (settings: Pick<GuildSettings, "tools">): ReadonlyArray<ClientToolDeclaration> | undefined =>
  settings.tools === "builtin" ? definitions : undefined

export const makeSegments = Effect.gen(function*() {
  const breaker = yield* CircuitBreaker
  const executor = yield* LettaExecutor
  const stats = yield* ErrorStats
  const gate = yield* ApprovalGate
  const stops = yield* OpenStops

  /** Aurora itself waits on the conversation's stop: a person's decision, or its own answer. */
  const awaited = (agentId: string, conversationId: string | null) =>
    Effect.flatMap(
      gate.pendingFor(agentId, conversationId),
      (waiting) =>
        waiting ? Effect.succeed({ waiting, what: "a person's approval" }) : stops.pendingFor(agentId, conversationId).pipe(
          Effect.catchAll((error) => Effect.as(Effect.logError(`could not read the open stops (${error.reason})`), false)),
          Effect.map((open) => ({ waiting: open, what: "Aurora's answer to an open tool call stop" }))
        )
    )

  const continuation = (
    request: ContinuationRequest,
    schedule: Schedule.Schedule<unknown, LettaRunError>
  ): Effect.Effect<RunReport, LettaRunError> => {
    const once = breaker.protect(executor.continueRun(request), isServiceFailure).pipe(
      Effect.tap(() => stats.record({ kind: "agent_run", outcome: "success" })),
      Effect.catchTag("CircuitOpen", () =>
        Effect.fail(
          new LettaConnectionError({
            agentId: request.agentId,
            runId: undefined,
            sideEffect: false,
            reason: "circuit open: Letta is failing, the continuation waits"
          })
        )),
      Effect.tapError((error) => stats.record({ kind: "agent_run", outcome: { errorType: error._tag }, detail: error.reason }))
    )
    return retryOnFailure(once, schedule)
  }

  const busyWhileAwaiting =
    (agentId: string, conversationId: string | undefined) =>
    <A>(effect: Effect.Effect<A, LettaRunError>): Effect.Effect<A, LettaRunError> =>
      Effect.catchTag(effect, "AgentBusy", (error): Effect.Effect<never, LettaRunError> =>
        error.pendingApproval
          ? Effect.flatMap(awaited(agentId, conversationId ?? null), ({ waiting, what }): Effect.Effect<never, LettaRunError> =>
            waiting
              ? Effect.fail(
                new ConversationBusy({
                  agentId,
                  runId: error.runId,
                  sideEffect: error.sideEffect,
                  reason: `waiting for ${what} (${error.reason})`,
                  conversationId: conversationId ?? `${agentId} (default conversation)`
                })
              )
              : Effect.fail(error))
          : Effect.fail(error))

  return { continuation, busyWhileAwaiting } as const
})
