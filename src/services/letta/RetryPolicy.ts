/**
 * When a failed agent run is sent again. Only transient failures retry (connection, timeout, 408,
 * 429, 5xx) and never once the agent has acted (`isTransient`); 3 attempts in all, 1 s base
 * doubling, capped at 30 s, ±25 % jitter; a 429's Retry-After is a floor on the delay.
 */
import { Duration, Effect, Random, Schedule } from "effect"
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
 * The delay before retry number `retry` (0 for the first retry). `random` is in [0, 1) and picks
 * the point in the jitter band. The cap applies after jitter, so it is a hard maximum — except
 * for a 429's Retry-After, which is honoured even above it (itself bounded by `maxRetryAfter`).
 */
export const retryDelay = (
  retry: number,
  error: LettaRunError,
  random: number,
  options: RetryOptions = defaultRetryOptions
): Duration.Duration => {
  const nominal = Duration.toMillis(options.base) * Math.pow(options.factor, retry)
  const jittered = nominal * (1 - options.jitter + 2 * options.jitter * random)
  const delay = Duration.millis(Math.round(Math.min(jittered, Duration.toMillis(options.cap))))
  if (error._tag === "LettaRateLimited" && error.retryAfter !== undefined) {
    return Duration.max(delay, Duration.min(error.retryAfter, maxRetryAfter))
  }
  return delay
}

/** The retry schedule for agent runs; its input is the failure, its output [failure, retry number]. */
export const makeLettaRetrySchedule = (
  overrides: Partial<RetryOptions> = {}
): Schedule.Schedule<[LettaRunError, number], LettaRunError> => {
  const options: RetryOptions = { ...defaultRetryOptions, ...overrides }
  return Schedule.identity<LettaRunError>().pipe(
    Schedule.intersect(Schedule.recurs(Math.max(0, options.attempts - 1))),
    Schedule.whileInput(isTransient),
    Schedule.addDelayEffect(([error, retry]) =>
      Effect.gen(function* () {
        const delay = retryDelay(retry, error, yield* Random.next, options)
        yield* Effect.logWarning(
          `Letta run failed (${error._tag}); retry ${retry + 1} of ${options.attempts - 1} in ${Duration.format(delay)}`
        ).pipe(Effect.annotateLogs({ agentId: error.agentId, reason: error.reason }))
        return delay
      })
    )
  )
}

export const lettaRetrySchedule: Schedule.Schedule<[LettaRunError, number], LettaRunError> =
  makeLettaRetrySchedule()

/** Runs `effect`, sending it again on transient failures per the schedule. */
export const retryTransient = <A, R>(
  effect: Effect.Effect<A, LettaRunError, R>,
  overrides: Partial<RetryOptions> = {}
): Effect.Effect<A, LettaRunError, R> => retryOnFailure(effect, makeLettaRetrySchedule(overrides))

/**
 * `Effect.retry(effect, schedule)` for an effect that usually succeeds at once: the schedule's
 * driver is made only after the first attempt failed, so the common path pays nothing for the
 * retry machinery. The decisions and delays are the schedule's, as with `Effect.retry`: each
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
