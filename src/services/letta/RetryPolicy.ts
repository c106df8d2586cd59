/**
 * When a failed agent run is sent again. Only transient failures retry (connection, timeout, 408,
 * 429, 5xx) and never once the agent has acted (`isTransient`); 3 attempts in all, 1 s base
 * doubling, ±25 % jitter, capped at 30 s; a 429's Retry-After is a floor on the delay. Built from
 * Effect's own schedules (exponential, jitteredWith, union with spaced as the cap).
 */
import { Duration, Effect, Schedule } from "effect"
import { isTransient, type LettaRunError } from "../../domain/LettaErrors.js"
import { maxRetryAfter } from "./LettaClient.js"

export interface RetryOptions {
  /** Attempts in all, the first included. */
  readonly attempts: number
  readonly base: Duration.DurationInput
  readonly factor: number
  readonly cap: Duration.DurationInput
  /** Relative spread: 0.25 means each delay is drawn from [75 %, 125 %] of its nominal value. */
  readonly jitter: number
}

export const defaultRetryOptions: RetryOptions = {
  attempts: 3,
  base: Duration.seconds(1),
  factor: 2,
  cap: Duration.seconds(30),
  jitter: 0.25
}

/**
 * The delays alone: `base` × `factor`^n, each drawn from [1 - jitter, 1 + jitter] of that, and
 * never above `cap`. The union takes the shorter of its two delays, so the cap is applied after
 * the jitter: a hard maximum.
 */
const backoff = (options: RetryOptions): Schedule.Schedule<unknown> =>
  Schedule.exponential(options.base, options.factor).pipe(
    Schedule.jitteredWith({ min: 1 - options.jitter, max: 1 + options.jitter }),
    Schedule.union(Schedule.spaced(options.cap))
  )

/**
 * A 429's Retry-After is a floor on the delay, honoured even above the cap (itself bounded by
 * `maxRetryAfter`). The delay is rounded to whole milliseconds, as the clock counts them.
 */
export const retryAfterFloor = (error: LettaRunError, delay: Duration.Duration): Duration.Duration => {
  const rounded = Duration.millis(Math.round(Duration.toMillis(delay)))
  return error._tag === "LettaRateLimited" && error.retryAfter !== undefined
    ? Duration.max(rounded, Duration.min(error.retryAfter, maxRetryAfter))
    : rounded
}

/** The retry schedule for agent runs; its input is the failure, its output [failure, retry number]. */
export const makeLettaRetrySchedule = (
  overrides: Partial<RetryOptions> = {}
): Schedule.Schedule<[LettaRunError, number], LettaRunError> => {
  const options: RetryOptions = { ...defaultRetryOptions, ...overrides }
  return Schedule.identity<LettaRunError>().pipe(
    Schedule.intersect(Schedule.recurs(Math.max(0, options.attempts - 1))),
    Schedule.whileInput(isTransient),
    // The other two wait nothing, so the intersection waits the backoff's delay.
    Schedule.intersect(backoff(options)),
    Schedule.map(([failure]) => failure),
    Schedule.modifyDelayEffect(([error, retry], delay) =>
      Effect.gen(function*() {
        const wait = retryAfterFloor(error, delay)
        yield* Effect.logWarning(
          `Letta run failed (${error._tag}); retry ${retry + 1} of ${options.attempts - 1} in ${Duration.format(wait)}`
        ).pipe(Effect.annotateLogs({ agentId: error.agentId, reason: error.reason }))
        return wait
      })
    )
  )
}

export const lettaRetrySchedule: Schedule.Schedule<[LettaRunError, number], LettaRunError> = makeLettaRetrySchedule()

/** Runs `effect`, sending it again on transient failures per the schedule. */
export const retryTransient = <A, R>(
  effect: Effect.Effect<A, LettaRunError, R>,
  overrides: Partial<RetryOptions> = {}
): Effect.Effect<A, LettaRunError, R> => retryOnFailure(effect, makeLettaRetrySchedule(overrides))

/**
 * `Effect.retry(effect, schedule)` for an effect that usually succeeds at once: the schedule's
 * driver is made only after the first attempt failed, so the common path pays nothing for the
 * retry machinery (`Effect.retry` with the Letta schedule costs about 20 µs more per run that
 * succeeds at once). The decisions and delays are the schedule's, as with `Effect.retry`: each
 * failure is fed to it, it waits its delay before the next attempt, and once it stops the last
 * failure is the result.
 */
export const retryOnFailure = <A, E, R, R2>(
  effect: Effect.Effect<A, E, R>,
  schedule: Schedule.Schedule<unknown, E, R2>
): Effect.Effect<A, E, R | R2> =>
  Effect.catchAll(effect, (first) =>
    Effect.flatMap(Schedule.driver(schedule), (driver) => {
      const afterFailure = (error: E): Effect.Effect<A, E, R | R2> =>
        Effect.matchEffect(driver.next(error), {
          onFailure: () => Effect.fail(error),
          onSuccess: () => Effect.catchAll(effect, afterFailure)
        })
      return afterFailure(first)
    }))
