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
import { Clock, Duration, Effect, Layer, Option, PubSub, Ref, Stream } from "effect"
import { CircuitOpen } from "../../domain/LettaErrors.js"
import {
  admit,
  admitsMore,
  breakerLabel,
  BreakerState,
  type BreakerTransition,
  type CircuitBreakerOptions,
  type Machine,
  move,
  promote,
  settingsOf,
  settle,
  type Step,
  verdictOf
} from "./CircuitBreaker/Machine.js"

export {
  admitsMore,
  breakerLabel,
  BreakerState,
  type BreakerTransition,
  type CircuitBreakerOptions,
  renderBreakerState
} from "./CircuitBreaker/Machine.js"

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
            const transition = Option.map(
              step.change,
              (c): BreakerTransition => ({ from: m.state, to: c.to, reason: c.reason, at: now })
            )
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
            ))
      )

    const state: Effect.Effect<BreakerState> = apply((m, now) => {
      const step = promote(m, now, settings)
      return { ...step, result: step.next.state }
    })

    const reset: Effect.Effect<void> = Effect.gen(function*() {
      const was = yield* apply((m): Step<BreakerState> =>
        m.state._tag === "Closed"
          ? {
            result: m.state,
            next: { state: BreakerState.Closed({ failures: 0 }), generation: m.generation + 1 },
            change: Option.none()
          }
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
