/**
 * `aurora_feedback_reactions_total{emoji_kind, result}`: the feedback reactions (Feedback.ts), by
 * why (`queue_full`, `dead_letter`) and what became of them (`sent`, `failed`, `skipped`: feedback
 * off or already reacted, `dropped`: too many in flight). Kept beside Metrics.ts, in the same
 * registry, so that feedback stays one concern; `registerFeedbackMetrics` puts its eight series at
 * zero when the Feedback service starts, so `/metrics` lists them from the start.
 */
import { Effect, Metric, MetricKey } from "effect"
import { type FeedbackKind, feedbackKinds, type FeedbackResult, feedbackResults } from "../discord/FeedbackRules.js"

const reactionsTotal = MetricKey.counter("aurora_feedback_reactions_total", {
  description: "Feedback reactions on users' messages (⏳ queue full, ⚠️ dead letter), by emoji kind and result.",
  incremental: true
})

const seriesOf = (kind: FeedbackKind, result: FeedbackResult) =>
  Metric.fromMetricKey(MetricKey.tagged(MetricKey.tagged(reactionsTotal, "emoji_kind", kind), "result", result))

const series = new Map(
  feedbackKinds.flatMap((kind) => feedbackResults.map((result) => [`${kind}/${result}`, seriesOf(kind, result)] as const))
)

/** One feedback reaction came to `result`. */
export const feedbackReaction = (kind: FeedbackKind, result: FeedbackResult): Effect.Effect<void> =>
  Metric.increment(series.get(`${kind}/${result}`) ?? seriesOf(kind, result))

export const registerFeedbackMetrics: Effect.Effect<void> = Effect.forEach(series.values(), Metric.value, { discard: true })
