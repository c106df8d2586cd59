/**
 * The circuit breaker shared by every agent run against one Letta server. When the server keeps
 * failing, runs fail fast with CircuitOpen instead of piling up timeouts; after a cool-down a few
 * trial runs probe it, and one success closes the breaker again.
 *
 * All decisions are pure functions of the state; `Ref.modify` applies them atomically, so many
 * concurrent runs see one consistent breaker (100 simultaneous failures open it exactly once).
 *
 * The moment it may admit more than before (OPEN -> HALF-OPEN, a trial's success, a manual reset,
 * a trial slot freed without a verdict) it signals a release (`subscribeReleases`): that is what
 * sends the callers it turned away back. Their `CircuitOpen.retryIn` is only a safety net, so one
 * turned away while every trial slot is busy gets the whole cool-down: the verdict comes first.
 */
import { Cause, Clock, Data, Duration, Effect, Exit, Layer, Option, PubSub, Ref, Stream } from "effect"
import { CircuitOpen } from "../../domain/LettaErrors.js"

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

interface Settings {
  readonly failureThreshold: number
  readonly cooldownMs: number
  readonly halfOpenTrials: number
}

const settingsOf = (options: CircuitBreakerOptions): Settings => ({
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

interface Machine {
  readonly state: BreakerState
  readonly generation: number
}

interface Change {
  readonly to: BreakerState
  readonly reason: string
}

interface Step<A> {
  readonly result: A
  readonly next: Machine
  readonly change: Option.Option<Change>
}

type Admission =
  | { readonly _tag: "Admitted"; readonly generation: number }
  | { readonly _tag: "Rejected"; readonly retryInMs: number }

type Verdict =
  | { readonly _tag: "Healthy" }
  | { readonly _tag: "Unhealthy"; readonly error: string }
  /** Interrupted or a defect: says nothing about the server, but frees a trial slot. */
  | { readonly _tag: "Released" }

const stay = <A>(machine: Machine, result: A): Step<A> => ({ result, next: machine, change: Option.none() })

const move = <A>(machine: Machine, result: A, to: BreakerState, reason: string): Step<A> => ({
  result,
  next: { state: to, generation: machine.generation + 1 },
  change: Option.some({ to, reason })
})

/** An open breaker whose cool-down has passed is half-open, whoever looks first. */
const promote = (machine: Machine, now: number, settings: Settings): Step<void> =>
  machine.state._tag === "Open" && now - machine.state.since >= settings.cooldownMs
    ? move(
        machine,
        undefined,
        BreakerState.HalfOpen({ trialsInFlight: 0 }),
        `cool-down of ${Duration.format(Duration.millis(settings.cooldownMs))} elapsed, admitting up to ${settings.halfOpenTrials} trial run(s)`
      )
    : stay(machine, undefined)

const admit = (machine: Machine, now: number, settings: Settings): Step<Admission> => {
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

const settle = (machine: Machine, generation: number, verdict: Verdict, now: number, settings: Settings): Step<void> => {
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

const verdictOf = <A, E>(exit: Exit.Exit<A, E>, isFailure: (e: E) => boolean): Verdict => {
  if (Exit.isSuccess(exit)) return { _tag: "Healthy" }
  const failure = Cause.failureOption(exit.cause)
  if (Option.isNone(failure)) return { _tag: "Released" }
  // An error the server answered deliberately (404, 422, ...) proves the server is up.
  return isFailure(failure.value) ? { _tag: "Unhealthy", error: describeError(failure.value) } : { _tag: "Healthy" }
}

// ---------------------------------------------------------------------------------------------

const make = (options: CircuitBreakerOptions = {}) =>
  Effect.gen(function*() {
    const settings = settingsOf(options)
    const machine = yield* Ref.make<Machine>({ state: BreakerState.Closed({ failures: 0 }), generation: 0 })
    // Sliding: a slow subscriber loses old transitions rather than blocking a run.
    const transitions = yield* PubSub.sliding<BreakerTransition>(64)
    // A release says "look again"; one not yet taken says all that a second one would.
    const releases = yield* PubSub.sliding<void>(1)

    /** Applies a step atomically, then announces its transition (if any) and release exactly once. */
    const apply = <A>(decide: (m: Machine, now: number) => Step<A>): Effect.Effect<A> =>
      Effect.gen(function*() {
        const now = yield* Clock.currentTimeMillis
        const [result, transition, release] = yield* Ref.modify(
          machine,
          (m): [readonly [A, Option.Option<BreakerTransition>, boolean], Machine] => {
            const step = decide(m, now)
            const transition = Option.map(step.change, (c): BreakerTransition => ({ from: m.state, to: c.to, reason: c.reason, at: now }))
            return [[step.result, transition, admitsMore(m.state, step.next.state)], step.next]
          }
        )
        if (Option.isSome(transition)) yield* announce(transition.value)
        if (release) yield* PubSub.publish(releases, undefined)
        return result
      })

    const announce = (t: BreakerTransition) => {
      const message = `circuit breaker ${breakerLabel(t.from).word} -> ${breakerLabel(t.to).word}: ${t.reason}`
      const log = t.to._tag === "Open" ? Effect.logWarning(message) : Effect.logInfo(message)
      return log.pipe(
        Effect.annotateLogs({ breakerFrom: breakerLabel(t.from).word, breakerTo: breakerLabel(t.to).word }),
        Effect.zipRight(PubSub.publish(transitions, t))
      )
    }

    const protect = <A, E, R>(
      effect: Effect.Effect<A, E, R>,
      isFailure: (error: E) => boolean
    ): Effect.Effect<A, E | CircuitOpen, R> =>
      // Taking a slot and registering its release must not be split by an interruption,
      // or a half-open breaker could keep a slot forever.
      Effect.uninterruptibleMask((restore) =>
        Effect.flatMap(apply((m, now) => admit(m, now, settings)), (admission): Effect.Effect<A, E | CircuitOpen, R> =>
          admission._tag === "Rejected"
            ? Effect.fail(new CircuitOpen({ retryIn: Duration.millis(Math.max(0, admission.retryInMs)) }))
            : restore(effect).pipe(
                Effect.onExit((exit) =>
                  apply((m, now) => settle(m, admission.generation, verdictOf(exit, isFailure), now, settings))
                )
              )
        )
      )

    const state: Effect.Effect<BreakerState> = apply((m, now) => {
      const step = promote(m, now, settings)
      return { ...step, result: step.next.state }
    })

    const reset: Effect.Effect<void> = Effect.gen(function*() {
      const was = yield* apply((m): Step<BreakerState> =>
        m.state._tag === "Closed"
          ? { result: m.state, next: { state: BreakerState.Closed({ failures: 0 }), generation: m.generation + 1 }, change: Option.none() }
          : move(m, m.state, BreakerState.Closed({ failures: 0 }), "manual reset")
      )
      if (was._tag === "Closed") yield* Effect.logInfo("circuit breaker manual reset: already CLOSED, failure count cleared")
    })

    return {
      /** Runs `effect` if the breaker admits it; `isFailure` says which errors mean "service unhealthy". */
      protect,
      /** The current state (an open breaker past its cool-down reads as half-open). */
      state,
      /** Forces CLOSED (the owner's `/aurora events resetcircuit`). */
      reset,
      /** Every transition, as it happens. Subscribes when the stream starts. */
      changes: Stream.fromPubSub(transitions),
      /** Subscribes at once, so no transition after this point is missed. */
      subscribe: PubSub.subscribe(transitions),
      /** Subscribes at once to the releases (see `admitsMore`); several not yet taken read as one. */
      subscribeReleases: PubSub.subscribe(releases)
    } as const
  })

export class CircuitBreaker extends Effect.Service<CircuitBreaker>()("aurora/CircuitBreaker", {
  effect: make()
}) {
  /** With other thresholds than the defaults (tests). */
  static readonly layer = (options: CircuitBreakerOptions): Layer.Layer<CircuitBreaker> =>
    Layer.effect(CircuitBreaker, Effect.map(make(options), CircuitBreaker.make))
}
