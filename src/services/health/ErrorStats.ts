/**
 * Error statistics for `/aurora events errors`, `events status` and the high-error-rate alert:
 * totals since start, a sliding window (5 minutes by default) and the last operations.
 *
 * This module holds the service: recording (directly or by tracking an effect's outcome), the
 * snapshot, and the alerts, logged and published as they fire. The rules are pure functions in
 * ./ErrorStats/: the statistics and the alert decision (State.ts), the bucketed window (Window.ts).
 */
import { Cause, Clock, Effect, Exit, Layer, Option, PubSub, Ref, Stream } from "effect"
import {
  describeAlert,
  emptyErrorStats,
  type ErrorRateAlert,
  type ErrorSnapshot,
  type ErrorStatsOptions,
  errorStatsSettings,
  type Operation,
  recordOperation,
  snapshotOf
} from "./ErrorStats/State.js"

// The public types and pure functions, for callers that import them from here.
export * from "./ErrorStats/State.js"
export { type RateSummary, windowByType, windowCounts } from "./ErrorStats/Window.js"

const tagOf = (error: unknown): string =>
  typeof error === "object" && error !== null && "_tag" in error && typeof error._tag === "string"
    ? error._tag
    : "UnknownError"

const make = (options: ErrorStatsOptions = {}) =>
  Effect.gen(function*() {
    const settings = errorStatsSettings(options)
    const state = yield* Ref.make(emptyErrorStats)
    // Sliding: an alert subscriber that lags loses old alerts rather than slowing the recorder.
    const alerts = yield* PubSub.sliding<ErrorRateAlert>(16)

    const record = (operation: Operation): Effect.Effect<void> =>
      Effect.gen(function*() {
        const now = yield* Clock.currentTimeMillis
        const alert = yield* Ref.modify(state, (s) => recordOperation(s, operation, now, settings))
        if (Option.isSome(alert)) {
          yield* Effect.logError(describeAlert(alert.value)).pipe(
            Effect.annotateLogs({ errorRate: alert.value.rate, windowOperations: alert.value.total })
          )
          yield* PubSub.publish(alerts, alert.value)
        }
      })

    /**
     * Runs `effect` and records its outcome under `kind`: success, or the error's `_tag`
     * ("Defect" for a defect). An interrupted run is not an outcome and is not recorded.
     */
    const track = <A, E, R>(kind: string, effect: Effect.Effect<A, E, R>): Effect.Effect<A, E, R> =>
      Effect.onExit(effect, (exit) => {
        if (Exit.isSuccess(exit)) return record({ kind, outcome: "success" })
        const failure = Cause.failureOption(exit.cause)
        if (Option.isSome(failure)) {
          const error = failure.value
          const detail = typeof error === "object" && error !== null && "reason" in error && typeof error.reason === "string"
            ? error.reason
            : undefined
          return record({ kind, outcome: { errorType: tagOf(error) }, detail })
        }
        return Cause.isInterruptedOnly(exit.cause)
          ? Effect.void
          : record({ kind, outcome: { errorType: "Defect" }, detail: Cause.pretty(exit.cause).split("\n")[0] })
      })

    const snapshot: Effect.Effect<ErrorSnapshot> = Effect.gen(function*() {
      const now = yield* Clock.currentTimeMillis
      return snapshotOf(yield* Ref.get(state), now, settings)
    })

    return {
      record,
      track,
      snapshot,
      /** Alerts as they fire (the owner-DM feature subscribes). Subscribes when the stream starts. */
      alerts: Stream.fromPubSub(alerts),
      /** Subscribes at once, so no alert after this point is missed. */
      subscribeAlerts: PubSub.subscribe(alerts)
    } as const
  })

export class ErrorStats extends Effect.Service<ErrorStats>()("aurora/ErrorStats", {
  effect: make()
}) {
  /** With other windows and thresholds than the defaults (tests). */
  static readonly layer = (options: ErrorStatsOptions): Layer.Layer<ErrorStats> =>
    Layer.effect(ErrorStats, Effect.map(make(options), ErrorStats.make))
}
