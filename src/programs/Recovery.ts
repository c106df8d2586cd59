/**
 * Start-up recovery: puts the events the journal kept back into the queue, or dead-letters them,
 * before the listener and the dispatcher start (so replayed events come before any new one).
 *
 * Per journal entry, in journal order, by the rules of ./recovery/Classify.ts, applied by
 * ./recovery/Settle.ts:
 * - its run had ended silently and Aurora had recorded that it would post the agent's text itself
 *   (the fallback, see dispatch/Fallback.ts) -> finished: removed from the journal, never replayed,
 *   never dead-lettered, never posted again (the post may have gone out before the restart; a
 *   second one would answer twice); logged at warning;
 * - its run had reached a stop of Aurora's built-in tools that is still open (OpenStops holds a
 *   record whose origin is the entry's message): the start-up take-up (StopTakeUp.ts) continues
 *   that run where it stopped, so the event is never sent again (that would answer twice, and a
 *   cancel would cut the continuation off): before the agent acted, the entry is left as it is,
 *   for the take-up to settle once it knows how the continuation went (not replayed, nothing
 *   cancelled); after, it is dead-lettered `interrupted-after-reply` as below, but neither its run
 *   nor its conversation is cancelled. The open stops are read once, before the entries; a store
 *   that cannot be read stops the start (without it, an event could be answered twice);
 * - its run had started and the agent had acted -> dead letter `interrupted-after-reply`: sending
 *   it again would make the agent act (post) twice;
 * - pending for longer than AURORA_MAX_EVENT_AGE -> dead letter `expired`: an answer that late
 *   would be out of place;
 * - its run had started before the agent acted -> replayed once (the recorded run is cancelled on
 *   the server before the re-send, through its conversation when it ran in one, see Dispatch); cut
 *   off a second time -> dead letter `interrupted`;
 * - never started -> replayed as it was.
 *
 * A dead-lettered event's recorded run, if any, is cancelled on the server (unless the take-up
 * continues it): a client disconnect does not stop a Letta run, and nothing will send the event
 * again. On the agents route the run
 * (by its id) is cancelled in the background. A run in a conversation is cancelled through the
 * conversation before the replayed events are queued (all such cancels at once, each bounded by
 * the client's cancel timeout): a conversation's cancel stops whatever runs there, so it must land
 * before a replayed event of the same channel is sent there, or it would stop that run instead.
 * Every dead-lettered event gets ⚠️ on the user's message (Feedback, in the background, bounded;
 * the Discord gateway is built, and ready, before recovery runs: see src/layers/Live.ts).
 * A journal that cannot be read or written here stops the start: starting with an empty queue
 * would lose the pending events silently.
 *
 * A dead-lettered event whose run had started was dispatched, but its run never reached an outcome:
 * it is written to the runs log (`/aurora runs`, see `recoveredRun`) as `interrupted` (or
 * `dead-lettered` when it expired), with its run and conversation; a write that fails is logged
 * and does not stop the start. An event that never started was not dispatched: it is not a run.
 * An entry left to the take-up is written there as `interrupted` too (`waitingRun`: "Aurora carries
 * the run on from there"), so that it is visible until the continuation's outcome replaces it.
 */
import { Clock, Data, Duration, Effect, Layer } from "effect"
import { AuroraConfig } from "../domain/Config.js"
import type { DeadLetterReason } from "../domain/DeadLetter.js"
import type { StorageError } from "../domain/Errors.js"
import type { QueuedEvent } from "../domain/Event.js"
import { EventJournal } from "../services/queue/EventJournal.js"
import { EventQueue } from "../services/queue/EventQueue.js"
import { OpenStops } from "../services/queue/OpenStops.js"
import { classify } from "./recovery/Classify.js"
import { makeSettle } from "./recovery/Settle.js"

/** The journal could not be read or written at start-up; Aurora does not start without it. */
export class RecoveryFailed extends Data.TaggedError("RecoveryFailed")<{
  readonly operation: string
  readonly reason: string
}> {
  override get message() {
    return `cannot recover the pending events: could not ${this.operation} (${this.reason}); not starting, so that no pending event is lost`
  }
}

export interface RecoverySummary {
  readonly replayed: number
  readonly expired: number
  readonly interrupted: number
  readonly interruptedAfterReply: number
  /** Entries whose fallback reply was recorded before the restart: removed, not posted again. */
  readonly fallbackRecorded: number
  /** Entries whose run waits at an open stop, before the agent acted: kept for the take-up. */
  readonly leftToTakeUp: number
}

const fatal = (operation: string) => (error: StorageError) =>
  new RecoveryFailed({ operation, reason: `${error.operation}: ${error.reason}` })

/**
 * Reads the open stops and the journal and settles every entry (./recovery/Settle.ts): journal
 * writes and dead letters first, then one `restore` of the replayed events in journal order.
 * Conversation cancels are awaited before it; run cancels are forked into the scope.
 */
export const recover = Effect.gen(function*() {
  const journal = yield* EventJournal
  const queue = yield* EventQueue
  const stops = yield* OpenStops
  const { settle } = yield* makeSettle
  // AURORA_MAX_EVENT_AGE: pending events older than this are not replayed.
  const maxAgeMs = Duration.toMillis((yield* AuroraConfig).maxEventAge)

  const stopped = new Set(
    (yield* stops.all.pipe(Effect.mapError(fatal("read the open stops")))).map((stop) => stop.origin.messageId)
  )
  const entries = yield* journal.load.pipe(Effect.mapError(fatal("read the event journal")))
  const now = yield* Clock.currentTimeMillis
  const replayed: Array<QueuedEvent> = []
  const conversationCancels: Array<Effect.Effect<void>> = []
  const counts: Record<Exclude<DeadLetterReason, "failed">, number> = {
    expired: 0,
    interrupted: 0,
    "interrupted-after-reply": 0
  }
  let fallbackRecorded = 0
  let leftToTakeUp = 0

  for (const entry of entries) {
    const recovery = classify(entry, now, maxAgeMs, stopped.has(entry.event.messageId))
    const settled = yield* settle(entry, recovery).pipe(
      Effect.mapError((failed) => fatal(failed.operation)(failed.error))
    )
    if (recovery._tag === "Finished") fallbackRecorded += 1
    if (recovery._tag === "LeftToTakeUp") {
      leftToTakeUp += 1
      yield* Effect.logInfo("recovery: its run waits at an open stop; left to the take-up, not replayed").pipe(
        Effect.annotateLogs({ messageId: entry.event.messageId, agentId: entry.event.agentId })
      )
    }
    if (recovery._tag === "DeadLetter" && recovery.letter.reason !== "failed") counts[recovery.letter.reason] += 1
    if (settled.replay !== null) replayed.push(settled.replay)
    if (settled.conversationCancel !== null) conversationCancels.push(settled.conversationCancel)
    // Best effort and in the background: an unreachable Letta must not hold up the start.
    if (settled.runCancel !== null) yield* Effect.forkScoped(settled.runCancel)
  }

  yield* Effect.all(conversationCancels, { concurrency: "unbounded", discard: true })
  yield* queue.restore(replayed)
  const summary: RecoverySummary = {
    replayed: replayed.length,
    expired: counts.expired,
    interrupted: counts.interrupted,
    interruptedAfterReply: counts["interrupted-after-reply"],
    fallbackRecorded,
    leftToTakeUp
  }
  yield* Effect.logInfo(
    `recovery: ${summary.replayed} pending event(s) replayed; dead-lettered ${summary.expired} expired, ` +
      `${summary.interrupted} interrupted, ${summary.interruptedAfterReply} interrupted after reply; ` +
      `${summary.fallbackRecorded} finished with a recorded fallback reply; ` +
      `${summary.leftToTakeUp} left to the take-up of their open stop`
  ).pipe(Effect.annotateLogs({ ...summary }))
  return summary
})

/** Runs `recover` once while the app starts; build it after the queue and before the programs. */
export const RecoveryLive = Layer.scopedDiscard(recover)
