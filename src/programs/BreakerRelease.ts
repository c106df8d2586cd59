/**
 * Held events go the moment the circuit breaker admits traffic again: each release the breaker
 * signals (OPEN -> HALF-OPEN, a trial's success, a manual reset, a trial slot freed) becomes a
 * `releaseHeld` of the queue, which wakes the dispatch loop at once. No polling: an event turned
 * away waits for the signal, its hold's fallback time being only a safety net.
 *
 * While HALF-OPEN with every trial slot busy, the released events are turned away again and
 * held again; the trials' verdict (a success closes the breaker, a freed slot admits one more)
 * is the next release. A release that comes while a turned-away dispatch is still settling is
 * not lost: the queue compares release counts when it settles the hold.
 */
import { Effect, Queue } from "effect"
import { CircuitBreaker } from "../services/health/CircuitBreaker.js"
import { EventQueue } from "../services/queue/EventQueue.js"

/** Subscribes now (no release after this point is missed) and forwards releases in the scope's lifetime. */
export const releaseHeldEvents = Effect.gen(function*() {
  const breaker = yield* CircuitBreaker
  const queue = yield* EventQueue
  const releases = yield* breaker.subscribeReleases
  yield* Queue.take(releases).pipe(
    Effect.zipRight(Effect.logDebug("circuit breaker admits traffic again: held events released")),
    Effect.zipRight(queue.releaseHeld),
    Effect.forever,
    Effect.forkScoped
  )
})
