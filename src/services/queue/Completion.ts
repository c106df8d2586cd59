/**
 * What happens once a consumer handed an event returns: the outcome decides the event's fate
 * (done: out of the journal; retry or held: attempts+1 in the journal, back to the front of its
 * channel), then the run is settled in the state (its channel, exclusion key and place under its
 * agent's cap freed), the idle waiters are woken and the dispatch loop is asked to decide again.
 */
import { Cause, Clock, Deferred, Duration, Effect, Exit, Ref } from "effect"
import type { StorageError } from "../../domain/Errors.js"
import type { QueuedEvent } from "../../domain/Event.js"
import type { DispatchOutcome } from "./DispatchOutcome.js"
import type { EventJournalService } from "./EventJournal.js"
import type { State } from "./state/QueueState.js"
import { type Settlement, settle } from "./state/Scheduling.js"

/** The ids every log line about a dispatched event carries. */
const eventAnnotations = (event: QueuedEvent) => ({
  messageId: event.messageId,
  channelId: event.channelId,
  agentId: event.agentId
})

const logJournalError = (event: QueuedEvent, operation: string) => (error: StorageError) =>
  Effect.logError(`journal: could not ${operation} a dispatched event`, error).pipe(
    Effect.annotateLogs(eventAnnotations(event))
  )

export const makeCompletion = (
  state: Ref.Ref<State>,
  journal: EventJournalService,
  wake: Effect.Effect<void>
) => {
  // Idle waiters are rare (a shutdown waiting for its runs): no loop over them when there are none.
  const finish = (messageId: string, settlement: Settlement) =>
    Effect.flatMap(Ref.modify(state, (s) => settle(s, messageId, settlement)), (waiters) =>
      waiters.length === 0
        ? wake
        : Effect.zipRight(Effect.forEach(waiters, (waiter) => Deferred.succeed(waiter, undefined), { discard: true }), wake))

  /** The event is done: out of the journal, then settled. */
  const finished = (event: QueuedEvent) =>
    Effect.zipRight(
      journal.remove(event.messageId).pipe(Effect.catchAll(logJournalError(event, "remove"))),
      finish(event.messageId, { _tag: "Finished" })
    )

  /**
   * Applies a consumer's outcome. A consumer that failed or died is logged and counted as done
   * (the dispatch program owns its errors); one interrupted because the loop is closing keeps
   * its event, still journalled, at the front of its channel. Only the failure lines are
   * annotated: annotating the whole step would cost more than the step on the common path.
   */
  const complete = (event: QueuedEvent, exit: Exit.Exit<DispatchOutcome>, closing: Ref.Ref<boolean>) => {
    if (Exit.isFailure(exit)) {
      return Effect.gen(function*() {
        if (Cause.isInterruptedOnly(exit.cause) && (yield* Ref.get(closing))) {
          return yield* finish(event.messageId, { _tag: "Requeue", event, notBefore: 0 })
        }
        yield* Effect.logError("dispatch consumer failed; the event counts as done", exit.cause).pipe(
          Effect.annotateLogs(eventAnnotations(event))
        )
        yield* finished(event)
      })
    }
    const outcome = exit.value
    if (outcome._tag === "Done") return finished(event)
    return Effect.gen(function*() {
      const retried = { ...event, attempts: event.attempts + 1 }
      yield* journal.update(retried).pipe(Effect.catchAll(logJournalError(event, "update")))
      const now = yield* Clock.currentTimeMillis
      yield* finish(
        event.messageId,
        outcome._tag === "Retry"
          ? { _tag: "Requeue", event: retried, notBefore: now + Duration.toMillis(outcome.after) }
          : { _tag: "Hold", event: retried, fallbackAt: now + Duration.toMillis(outcome.fallback) }
      )
    })
  }

  return { complete } as const
}
