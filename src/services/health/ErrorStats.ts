/**
 * Error statistics for `/aurora events errors`, `events status` and the high-error-rate alert:
 * totals since start, a sliding window (5 minutes by default) and the last operations.
 *
 * Memory stays bounded however long Aurora runs: the window is kept as per-second buckets (at
 * most window / bucket of them), the recent operations in a fixed-size list, and the per-type
 * counts are keyed by error tag, a small closed set.
 */
import { Cause, Clock, Duration, Effect, Exit, Layer, Option, PubSub, Ref, Stream } from "effect"

export type OperationOutcome = "success" | { readonly errorType: string }

export interface Operation {
  /** What was attempted, e.g. "agent_run". */
  readonly kind: string
  readonly outcome: OperationOutcome
  readonly detail?: string | undefined
}

export interface RecordedOperation extends Operation {
  /** Epoch ms, from the Effect Clock. */
  readonly at: number
}

export interface RateSummary {
  readonly total: number
  readonly errors: number
  /** errors / total, 0 when there were no operations. */
  readonly rate: number
}

export interface ErrorSnapshot {
  readonly total: number
  readonly errors: number
  readonly errorRate: number
  /** The sliding window (5 minutes unless configured otherwise). */
  readonly recent5m: RateSummary
  readonly byType: Readonly<Record<string, number>>
  /** Newest first. */
  readonly recentOperations: ReadonlyArray<RecordedOperation>
}

export interface ErrorRateAlert {
  readonly at: number
  readonly window: Duration.Duration
  readonly total: number
  readonly errors: number
  readonly rate: number
  /** Error types within the window, most frequent first. */
  readonly topTypes: ReadonlyArray<readonly [string, number]>
}

export interface ErrorStatsOptions {
  /** The sliding window for the recent rate and the alert (default 5 minutes). */
  readonly window?: Duration.DurationInput
  /** The alert fires when the window's error rate is strictly above this (default 0.5). */
  readonly alertThreshold?: number
  /** ...and the window holds at least this many operations (default 4). */
  readonly alertMinOperations?: number
  /** At most one alert per this period (default 15 minutes). */
  readonly alertCooldown?: Duration.DurationInput
  /** How many recent operations are kept (default 50). */
  readonly recentSize?: number
  /** Granularity of the window (default 1 second). */
  readonly bucket?: Duration.DurationInput
}

export interface ErrorStatsSettings {
  readonly windowMs: number
  readonly alertThreshold: number
  readonly alertMinOperations: number
  readonly alertCooldownMs: number
  readonly recentSize: number
  readonly bucketMs: number
}

export const errorStatsSettings = (options: ErrorStatsOptions = {}): ErrorStatsSettings => ({
  windowMs: Duration.toMillis(options.window ?? Duration.minutes(5)),
  alertThreshold: options.alertThreshold ?? 0.5,
  alertMinOperations: options.alertMinOperations ?? 4,
  alertCooldownMs: Duration.toMillis(options.alertCooldown ?? Duration.minutes(15)),
  recentSize: Math.max(1, Math.floor(options.recentSize ?? 50)),
  // A bucket longer than the window would make the window meaningless.
  bucketMs: Math.max(1, Math.min(Duration.toMillis(options.window ?? Duration.minutes(5)), Duration.toMillis(options.bucket ?? Duration.seconds(1))))
})

/** Counts by type, most frequent first (ties by name), for display. */
export const sortedByType = (byType: Readonly<Record<string, number>>): Array<readonly [string, number]> =>
  Object.entries(byType).sort(([a, x], [b, y]) => y - x || a.localeCompare(b))

const rateOf = (errors: number, total: number): number => (total === 0 ? 0 : errors / total)

/** An error detail is usually a server message: cap it so one huge body cannot hog memory. */
const maxDetailLength = 500

// ---------------------------------------------------------------------------------------------
// The model: pure functions over an immutable state, applied atomically with Ref.modify.

interface Bucket {
  readonly start: number
  readonly total: number
  readonly errors: number
  readonly byType: Readonly<Record<string, number>>
}

export interface ErrorStatsState {
  readonly total: number
  readonly errors: number
  readonly byType: Readonly<Record<string, number>>
  /** Newest first, at most `recentSize`. */
  readonly recent: ReadonlyArray<RecordedOperation>
  /**
   * The window: finished buckets (oldest first, pruned on record) and the bucket being filled.
   * Keeping the current one apart makes a record O(1): the array is copied once per bucket.
   */
  readonly past: ReadonlyArray<Bucket>
  readonly current: Bucket | undefined
  /** Sums over `past`, so the alert check needs no loop. */
  readonly pastTotal: number
  readonly pastErrors: number
  readonly lastAlertAt: number | undefined
}

export const emptyErrorStats: ErrorStatsState = {
  total: 0,
  errors: 0,
  byType: {},
  recent: [],
  past: [],
  current: undefined,
  pastTotal: 0,
  pastErrors: 0,
  lastAlertAt: undefined
}

const inWindow = (bucket: Bucket, now: number, settings: ErrorStatsSettings): boolean =>
  now - bucket.start < settings.windowMs

const addType = (byType: Readonly<Record<string, number>>, type: string): Record<string, number> => ({
  ...byType,
  [type]: (byType[type] ?? 0) + 1
})

const bucketsInWindow = (state: ErrorStatsState, now: number, settings: ErrorStatsSettings): Array<Bucket> =>
  [...state.past, ...(state.current === undefined ? [] : [state.current])].filter((b) => inWindow(b, now, settings))

/** The window's counts as seen at `now`. */
export const windowCounts = (state: ErrorStatsState, now: number, settings: ErrorStatsSettings): RateSummary => {
  let total = 0
  let errors = 0
  for (const bucket of bucketsInWindow(state, now, settings)) {
    total += bucket.total
    errors += bucket.errors
  }
  return { total, errors, rate: rateOf(errors, total) }
}

/** Error types within the window as seen at `now`. */
export const windowByType = (
  state: ErrorStatsState,
  now: number,
  settings: ErrorStatsSettings
): Record<string, number> => {
  const byType: Record<string, number> = {}
  for (const bucket of bucketsInWindow(state, now, settings)) {
    for (const [type, n] of Object.entries(bucket.byType)) byType[type] = (byType[type] ?? 0) + n
  }
  return byType
}

/** Moves a finished current bucket into `past` and drops the buckets that left the window. */
const slide = (state: ErrorStatsState, bucketStart: number, now: number, settings: ErrorStatsSettings): ErrorStatsState => {
  let { current, past, pastErrors, pastTotal } = state
  if (current !== undefined && current.start !== bucketStart) {
    past = [...past, current]
    pastTotal += current.total
    pastErrors += current.errors
    current = undefined
  }
  let expired = 0
  while (expired < past.length) {
    const bucket = past[expired]
    if (bucket === undefined || inWindow(bucket, now, settings)) break
    pastTotal -= bucket.total
    pastErrors -= bucket.errors
    expired++
  }
  if (expired > 0) past = past.slice(expired)
  return { ...state, current, past, pastTotal, pastErrors }
}

/** Records one operation at `now`; returns the alert to raise, if this operation triggers one. */
export const recordOperation = (
  state: ErrorStatsState,
  operation: Operation,
  now: number,
  settings: ErrorStatsSettings
): [Option.Option<ErrorRateAlert>, ErrorStatsState] => {
  const errorType = operation.outcome === "success" ? undefined : operation.outcome.errorType
  const isError = errorType !== undefined
  const bucketStart = now - (now % settings.bucketMs)

  const slid = slide(state, bucketStart, now, settings)
  const current = slid.current ?? { start: bucketStart, total: 0, errors: 0, byType: {} }
  const updated: Bucket = {
    start: bucketStart,
    total: current.total + 1,
    errors: current.errors + (isError ? 1 : 0),
    byType: isError ? addType(current.byType, errorType) : current.byType
  }

  const detail = operation.detail === undefined ? undefined : operation.detail.slice(0, maxDetailLength)
  const recorded: RecordedOperation = detail === undefined
    ? { at: now, kind: operation.kind, outcome: operation.outcome }
    : { at: now, kind: operation.kind, outcome: operation.outcome, detail }

  const next: ErrorStatsState = {
    ...slid,
    total: state.total + 1,
    errors: state.errors + (isError ? 1 : 0),
    byType: isError ? addType(state.byType, errorType) : state.byType,
    recent: [recorded, ...state.recent.slice(0, settings.recentSize - 1)],
    current: updated
  }

  const windowTotal = next.pastTotal + updated.total
  const window: RateSummary = {
    total: windowTotal,
    errors: next.pastErrors + updated.errors,
    rate: rateOf(next.pastErrors + updated.errors, windowTotal)
  }
  const coolingDown = state.lastAlertAt !== undefined && now - state.lastAlertAt < settings.alertCooldownMs
  if (window.total < settings.alertMinOperations || window.rate <= settings.alertThreshold || coolingDown) {
    return [Option.none(), next]
  }
  const alert: ErrorRateAlert = {
    at: now,
    window: Duration.millis(settings.windowMs),
    total: window.total,
    errors: window.errors,
    rate: window.rate,
    topTypes: sortedByType(windowByType(next, now, settings))
  }
  return [Option.some(alert), { ...next, lastAlertAt: now }]
}

export const snapshotOf = (state: ErrorStatsState, now: number, settings: ErrorStatsSettings): ErrorSnapshot => ({
  total: state.total,
  errors: state.errors,
  errorRate: rateOf(state.errors, state.total),
  recent5m: windowCounts(state, now, settings),
  byType: state.byType,
  recentOperations: state.recent
})

const describeWindow = (window: Duration.Duration): string => {
  const ms = Duration.toMillis(window)
  return ms % 60_000 === 0 ? `${ms / 60_000} minute${ms === 60_000 ? "" : "s"}` : Duration.format(window)
}

/** e.g. "error rate 75% over 5 minutes, 3/4, top types LettaTimeout 2, LettaServerError 1" */
export const describeAlert = (alert: ErrorRateAlert): string => {
  const types = alert.topTypes.slice(0, 3).map(([type, n]) => `${type} ${n}`).join(", ")
  return `error rate ${Math.round(alert.rate * 100)}% over ${describeWindow(alert.window)}, ${alert.errors}/${alert.total}, top types ${types}`
}

// ---------------------------------------------------------------------------------------------

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
