/**
 * `aurora_approvals_total{outcome}`: tool approvals asked in Discord (approvals/Gate.ts), by how
 * each ended: `approved` (every call approved by people), `denied` (at least one call denied by a
 * person), `timed_out` (the deadline denied at least one call), `unavailable` (it could not be
 * stored or posted, so every call was denied at once). Kept beside Metrics.ts, in the same
 * registry, so that approvals stay one concern; `registerApprovalMetrics` puts the four series at
 * zero when the gate starts, so `/metrics` lists them from the start.
 */
import { Effect, Metric, MetricKey } from "effect"

export const approvalOutcomes = ["approved", "denied", "timed_out", "unavailable"] as const
export type ApprovalOutcome = (typeof approvalOutcomes)[number]

const approvalsTotal = MetricKey.counter("aurora_approvals_total", {
  description: "Tool approvals asked in Discord, by outcome (approved, denied, timed_out, unavailable).",
  incremental: true
})

const series = new Map(
  approvalOutcomes.map((outcome) =>
    [outcome, Metric.fromMetricKey(MetricKey.tagged(approvalsTotal, "outcome", outcome))] as const
  )
)

/** One approval ended with `outcome`. */
export const approvalEnded = (outcome: ApprovalOutcome): Effect.Effect<void> => {
  const counter = series.get(outcome)
  return counter === undefined ? Effect.void : Metric.increment(counter)
}

export const registerApprovalMetrics: Effect.Effect<void> = Effect.forEach(series.values(), Metric.value, { discard: true })
