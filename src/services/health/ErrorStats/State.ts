/**
 * The error statistics as a value: totals and counts by type since start, the last operations
 * (newest first, at most `recentSize`), the sliding window (./Window.ts) and when the last alert
 * fired. `recordOperation` adds one operation and decides whether it raises the high-error-rate
 * alert: the window's rate strictly above the threshold, over at least the minimum number of
 * operations, and no alert within the cool-down. Pure functions on an immutable state; the
 * service (../ErrorStats.ts) applies them atomically with `Ref.modify`.
 *
 * Memory stays bounded however long Aurora runs: the window is bucketed, the recent operations are
 * a fixed-size list, an error detail is capped, and the per-type counts are keyed by error tag, a
 * small closed set.
 */
import { Duration, Option } from "effect"
import {
  addType,
  type BucketWindow,
  countOperation,
  emptyWindow,
  latestCounts,
  type RateSummary,
  rateOf,
  windowByType,
  windowCounts,
  type WindowSize
} from "./Window.js"

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

export interface ErrorStatsSettings extends WindowSize {
  readonly alertThreshold: number
  readonly alertMinOperations: number
  readonly alertCooldownMs: number
  readonly recentSize: number
}

export const errorStatsSettings = (options: ErrorStatsOptions = {}): ErrorStatsSettings => ({
  windowMs: Duration.toMillis(options.window ?? Duration.minutes(5)),
  alertThreshold: options.alertThreshold ?? 0.5,
  alertMinOperations: options.alertMinOperations ?? 4,
  alertCooldownMs: Duration.toMillis(options.alertCooldown ?? Duration.minutes(15)),
  recentSize: Math.max(1, Math.floor(options.recentSize ?? 50)),
  // A bucket longer than the window would make the window meaningless.
  bucketMs: Math.max(
    1,
    Math.min(Duration.toMillis(options.window ?? Duration.minutes(5)), Duration.toMillis(options.bucket ?? Duration.seconds(1)))
  )
})

/** Counts by type, most frequent first (ties by name), for display. */
export const sortedByType = (byType: Readonly<Record<string, number>>): Array<readonly [string, number]> =>
  Object.entries(byType).sort(([a, x], [b, y]) => y - x || a.localeCompare(b))

/** An error detail is usually a server message: cap it so one huge body cannot hog memory. */
const maxDetailLength = 500

export interface ErrorStatsState extends BucketWindow {
  readonly total: number
  readonly errors: number
  readonly byType: Readonly<Record<string, number>>
  /** Newest first, at most `recentSize`. */
  readonly recent: ReadonlyArray<RecordedOperation>
  readonly lastAlertAt: number | undefined
}

export const emptyErrorStats: ErrorStatsState = {
  ...emptyWindow,
  total: 0,
  errors: 0,
  byType: {},
  recent: [],
  lastAlertAt: undefined
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

  const detail = operation.detail === undefined ? undefined : operation.detail.slice(0, maxDetailLength)
  const recorded: RecordedOperation = detail === undefined
    ? { at: now, kind: operation.kind, outcome: operation.outcome }
    : { at: now, kind: operation.kind, outcome: operation.outcome, detail }

  const next: ErrorStatsState = {
    ...state,
    ...countOperation(state, now, errorType, settings),
    total: state.total + 1,
    errors: state.errors + (isError ? 1 : 0),
    byType: isError ? addType(state.byType, errorType) : state.byType,
    recent: [recorded, ...state.recent.slice(0, settings.recentSize - 1)]
  }

  const window = latestCounts(next)
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
  return `error rate ${Math.round(alert.rate * 100)}% over ${
    describeWindow(alert.window)
  }, ${alert.errors}/${alert.total}, top types ${types}`
}
