/**
 * One attempt of a dispatch: the agent's run through the circuit breaker, in the error statistics.
 *
 * - The run's failures that are Letta's (`isServiceFailure`) count against the breaker; the
 *   agent's own do not.
 * - An open breaker is a result (`AttemptResult.CircuitOpen`), not an error, so it is never
 *   retried.
 * - ErrorStats records every success and every failure but two: an open breaker and a busy
 *   conversation (the queue holds both; neither is the agent failing).
 */
import { Effect } from "effect"
import type { RunReport } from "../../domain/AgentRun.js"
import { isServiceFailure, type LettaRunError } from "../../domain/LettaErrors.js"
import { CircuitBreaker } from "../../services/health/CircuitBreaker.js"
import { ErrorStats } from "../../services/health/ErrorStats.js"
import { AttemptResult } from "./Outcome.js"

export const makeAttempt = Effect.gen(function*() {
  const breaker = yield* CircuitBreaker
  const stats = yield* ErrorStats
  return (send: Effect.Effect<RunReport, LettaRunError>): Effect.Effect<AttemptResult, LettaRunError> =>
    breaker.protect(send, isServiceFailure).pipe(
      Effect.tap(() => stats.record({ kind: "agent_run", outcome: "success" })),
      Effect.tapError((error) =>
        error._tag === "CircuitOpen" || error._tag === "ConversationBusy"
          ? Effect.void
          : stats.record({ kind: "agent_run", outcome: { errorType: error._tag }, detail: error.reason })
      ),
      Effect.map((report) => AttemptResult.Finished({ report })),
      Effect.catchTag("CircuitOpen", (open) => Effect.succeed(AttemptResult.CircuitOpen({ retryIn: open.retryIn })))
    )
})
