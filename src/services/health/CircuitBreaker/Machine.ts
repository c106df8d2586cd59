/**
 * The circuit breaker's rules as pure functions: its states, the admission of a run, the settling
 * of a run's outcome, the promotion of an open breaker whose cool-down has passed, and which
 * transitions are releases. The service (../CircuitBreaker.ts) applies them with `Ref.modify`.
 */
import { Cause, Data, Duration, Exit, Option } from "effect"

export type BreakerState = Data.TaggedEnum<{
  /** Traffic flows; `failures` counts consecutive service failures. */
  Closed: { readonly failures: number }
  /** Everything fails fast until `since` (epoch ms) + cooldown. */
  Open: { readonly since: number }
  /** Up to `halfOpenTrials` runs probe the server; the rest fail fast. */
  HalfOpen: { readonly trialsInFlight: number }
}>
export const BreakerState = Data.taggedEnum<BreakerState>()

export interface BreakerTransition {
  readonly from: BreakerState
  readonly to: BreakerState
  readonly reason: string
  /** Epoch ms, from the Effect Clock. */
  readonly at: number
}

export interface CircuitBreakerOptions {
  /** Consecutive service failures that open the breaker (default 5). */
  readonly failureThreshold?: number
  /** How long an open breaker rejects before admitting trials (default 60 s). */
  readonly cooldown?: Duration.DurationInput
  /** Trial runs admitted at once while half-open (default 3). */
  readonly halfOpenTrials?: number
}

export interface Settings {
  readonly failureThreshold: number
  readonly cooldownMs: number
  readonly halfOpenTrials: number
}

export const settingsOf = (options: CircuitBreakerOptions): Settings => ({
  failureThreshold: Math.max(1, Math.floor(options.failureThreshold ?? 5)),
  cooldownMs: Duration.toMillis(options.cooldown ?? Duration.seconds(60)),
  halfOpenTrials: Math.max(1, Math.floor(options.halfOpenTrials ?? 3))
})

/** The word and emoji shown in status views (`events status`, `/healthz`). */
export const breakerLabel = (state: BreakerState): { readonly word: "CLOSED" | "OPEN" | "HALF-OPEN"; readonly emoji: string } =>
  BreakerState.$match(state, {
    Closed: () => ({ word: "CLOSED", emoji: "🟢" }) as const,
    Open: () => ({ word: "OPEN", emoji: "🔴" }) as const,
    HalfOpen: () => ({ word: "HALF-OPEN", emoji: "🟡" }) as const
  })

/** e.g. "🔴 OPEN" */
export const renderBreakerState = (state: BreakerState): string => {
  const { emoji, word } = breakerLabel(state)
  return `${emoji} ${word}`
}

// ---------------------------------------------------------------------------------------------
// Pure transitions. `generation` changes on every transition: an outcome reported by a run that
// was admitted under an earlier generation is stale (e.g. the 6th of 100 concurrent failures, or
// a slow trial finishing after another trial already decided) and must not move the breaker again.

export interface Machine {
  readonly state: BreakerState
  readonly generation: number
}

interface Change {
  readonly to: BreakerState
  readonly reason: string
}

export interface Step<A> {
  readonly result: A
  readonly next: Machine
  readonly change: Option.Option<Change>
}

export type Admission =
  | { readonly _tag: "Admitted"; readonly generation: number }
  | { readonly _tag: "Rejected"; readonly retryInMs: number }

export type Verdict =
  | { readonly _tag: "Healthy" }
  | { readonly _tag: "Unhealthy"; readonly error: string }
  /** Interrupted or a defect: says nothing about the server, but frees a trial slot. */
  | { readonly _tag: "Released" }

export const stay = <A>(machine: Machine, result: A): Step<A> => ({ result, next: machine, change: Option.none() })

export const move = <A>(machine: Machine, result: A, to: BreakerState, reason: string): Step<A> => ({
  result,
  next: { state: to, generation: machine.generation + 1 },
  change: Option.some({ to, reason })
})

/** An open breaker whose cool-down has passed is half-open, whoever looks first. */
export const promote = (machine: Machine, now: number, settings: Settings): Step<void> =>
  machine.state._tag === "Open" && now - machine.state.since >= settings.cooldownMs
    ? move(
      machine,
      undefined,
      BreakerState.HalfOpen({ trialsInFlight: 0 }),
      `cool-down of ${
        Duration.format(Duration.millis(settings.cooldownMs))
      } elapsed, admitting up to ${settings.halfOpenTrials} trial run(s)`
    )
    : stay(machine, undefined)

export const admit = (machine: Machine, now: number, settings: Settings): Step<Admission> => {
  const promoted = promote(machine, now, settings)
  const current = promoted.next
  const withChange = (step: Step<Admission>): Step<Admission> =>
    Option.isSome(promoted.change) ? { ...step, change: promoted.change } : step
  switch (current.state._tag) {
    case "Closed":
      return withChange(stay(current, { _tag: "Admitted", generation: current.generation }))
    case "Open":
      return withChange(
        stay(current, { _tag: "Rejected", retryInMs: current.state.since + settings.cooldownMs - now })
      )
    case "HalfOpen": {
      const inFlight = current.state.trialsInFlight
      if (inFlight >= settings.halfOpenTrials) {
        // The trials' end is signalled (see `admitsMore`); the cool-down is only a safety net.
        return withChange(stay(current, { _tag: "Rejected", retryInMs: settings.cooldownMs }))
      }
      // Taking a slot is not a transition: the generation stays, so the trial's outcome counts.
      return withChange({
        result: { _tag: "Admitted", generation: current.generation },
        next: { ...current, state: BreakerState.HalfOpen({ trialsInFlight: inFlight + 1 }) },
        change: Option.none()
      })
    }
  }
}

export const settle = (machine: Machine, generation: number, verdict: Verdict, now: number, settings: Settings): Step<void> => {
  if (generation !== machine.generation) return stay(machine, undefined)
  const state = machine.state
  switch (state._tag) {
    // Nothing is admitted under an Open generation.
    case "Open":
      return stay(machine, undefined)
    case "Closed": {
      if (verdict._tag === "Released") return stay(machine, undefined)
      if (verdict._tag === "Healthy") {
        return state.failures === 0
          ? stay(machine, undefined)
          : { result: undefined, next: { ...machine, state: BreakerState.Closed({ failures: 0 }) }, change: Option.none() }
      }
      const failures = state.failures + 1
      if (failures >= settings.failureThreshold) {
        return move(
          machine,
          undefined,
          BreakerState.Open({ since: now }),
          `${failures} consecutive failures, last: ${verdict.error}`
        )
      }
      return { result: undefined, next: { ...machine, state: BreakerState.Closed({ failures }) }, change: Option.none() }
    }
    case "HalfOpen": {
      switch (verdict._tag) {
        case "Healthy":
          return move(machine, undefined, BreakerState.Closed({ failures: 0 }), "trial run succeeded")
        case "Unhealthy":
          return move(machine, undefined, BreakerState.Open({ since: now }), `trial run failed: ${verdict.error}`)
        case "Released":
          return {
            result: undefined,
            next: { ...machine, state: BreakerState.HalfOpen({ trialsInFlight: Math.max(0, state.trialsInFlight - 1) }) },
            change: Option.none()
          }
      }
    }
  }
}

/** Whether it may admit more in `to` than in `from` (it left OPEN, closed, or freed a trial slot): a release. */
export const admitsMore = (from: BreakerState, to: BreakerState): boolean =>
  from._tag === "Open"
    ? to._tag !== "Open"
    : from._tag === "HalfOpen" && (to._tag === "Closed" || (to._tag === "HalfOpen" && to.trialsInFlight < from.trialsInFlight))

const describeError = (error: unknown): string => {
  if (typeof error === "object" && error !== null && "_tag" in error && typeof error._tag === "string") {
    return "reason" in error && typeof error.reason === "string" ? `${error._tag} (${error.reason})` : error._tag
  }
  return String(error)
}

export const verdictOf = <A, E>(exit: Exit.Exit<A, E>, isFailure: (e: E) => boolean): Verdict => {
  if (Exit.isSuccess(exit)) return { _tag: "Healthy" }
  const failure = Cause.failureOption(exit.cause)
  if (Option.isNone(failure)) return { _tag: "Released" }
  // An error the server answered deliberately (404, 422, ...) proves the server is up.
  return isFailure(failure.value) ? { _tag: "Unhealthy", error: describeError(failure.value) } : { _tag: "Healthy" }
}
