/**
 * Applies what ./Classify.ts decided for one journal entry: the restart rules, done once, shared
 * by start-up recovery (../Recovery.ts, every entry) and the take-up of an open stop
 * (../StopTakeUp.ts, the entry whose continuation Letta refused). `settle(entry, recovery)`:
 *
 * - `Finished` -> the entry is removed from the journal; one warning line;
 * - `Replay` -> the journal row is rewritten when the interruption changed the event; the event
 *   is the caller's to put back in the queue (`replay`), after the cancels of the dead letters;
 * - `DeadLetter` -> the letter is recorded, the entry removed from the journal, the dead letter
 *   counted, the cut-off run written to the runs log (`recoveredRun`), ⚠️ on the user's message
 *   (Feedback); its run is to be cancelled, unless it goes on (`leftRunning`): through its
 *   conversation when it ran in one (`conversationCancel`, bounded by the client's cancel timeout:
 *   it must land before a replayed event of that conversation is sent), else by its run id
 *   (`runCancel`, best effort: the caller runs it in the background);
 * - `LeftToTakeUp` -> the entry stays as it is; its cut-off run is written to the runs log as
 *   `interrupted` (`waitingRun`), so `/aurora runs` shows the mention while the take-up carries it
 *   on (or waits for Letta), until the continuation's outcome replaces that line.
 *
 * A journal or dead letter write that fails is a `SettleFailed` naming what could not be done
 * (Recovery stops the start on it; the take-up logs it). A runs log write that fails is logged.
 */
import { Clock, Data, Effect } from "effect"
import type { StorageError } from "../../domain/Errors.js"
import type { QueuedEvent } from "../../domain/Event.js"
import { Feedback } from "../../services/discord/Feedback.js"
import * as Metrics from "../../services/health/Metrics.js"
import { cancelTimeout } from "../../services/letta/LettaClient.js"
import { LettaExecutor } from "../../services/letta/LettaExecutor.js"
import { DeadLetters } from "../../services/queue/DeadLetters.js"
import { EventJournal, type JournalEntry } from "../../services/queue/EventJournal.js"
import { runRecorder } from "../dispatch/RunRecording.js"
import { type Recovery, recoveredRun, waitingRun } from "./Classify.js"

/** A write the restart rules needed could not be made. */
export class SettleFailed extends Data.TaggedError("SettleFailed")<{
  /** What could not be done, e.g. "record a dead letter". */
  readonly operation: string
  readonly error: StorageError
}> {}

export interface Settled {
  /** The event to put back in the queue (its journal row is up to date), or null. */
  readonly replay: QueuedEvent | null
  /** The dead-lettered run's cancel through its conversation, to await before any replay; or null. */
  readonly conversationCancel: Effect.Effect<void> | null
  /** The dead-lettered run's cancel by its id (agents route), to run in the background; or null. */
  readonly runCancel: Effect.Effect<void> | null
}

const nothing: Settled = { replay: null, conversationCancel: null, runCancel: null }

export const makeSettle = Effect.gen(function*() {
  const journal = yield* EventJournal
  const deadLetters = yield* DeadLetters
  const executor = yield* LettaExecutor
  const recordRun = yield* runRecorder
  const feedback = yield* Feedback

  const failed = (operation: string) => (error: StorageError) => new SettleFailed({ operation, error })

  const settle = (entry: JournalEntry, recovery: Recovery): Effect.Effect<Settled, SettleFailed> =>
    Effect.gen(function*() {
      switch (recovery._tag) {
        case "LeftToTakeUp": {
          const waiting = waitingRun(entry, yield* Clock.currentTimeMillis)
          if (waiting !== null) yield* recordRun(recovery.event, waiting)
          return nothing
        }
        case "Finished": {
          const { agentId, messageId } = recovery.event
          yield* journal.remove(messageId).pipe(Effect.mapError(failed("remove a finished event")))
          yield* Effect.logWarning("recovery: the fallback reply was recorded before the restart; not posted again").pipe(
            Effect.annotateLogs({ messageId, agentId, runId: recovery.runId ?? "none" })
          )
          return nothing
        }
        case "Replay":
          if (recovery.rewrite) yield* journal.update(recovery.event).pipe(Effect.mapError(failed("record an interruption")))
          return { ...nothing, replay: recovery.event }
        case "DeadLetter": {
          const { letter, cancelRunId } = recovery
          const { messageId, agentId } = letter.event
          yield* deadLetters.add(letter).pipe(Effect.mapError(failed("record a dead letter")))
          yield* journal.remove(messageId).pipe(Effect.mapError(failed("remove a dead-lettered event")))
          yield* Metrics.deadLettered(letter.reason)
          const cutOff = recoveredRun(entry, letter)
          if (cutOff !== null) yield* recordRun(letter.event, cutOff)
          yield* feedback.tell("dead_letter", letter.event)
          yield* Effect.logDebug(`recovery: dead-lettered (${letter.reason}): ${letter.detail ?? ""}`).pipe(
            Effect.annotateLogs({ messageId, agentId })
          )
          if (recovery.leftRunning === true) return nothing
          if (letter.conversationId !== undefined) {
            const conversationCancel = executor.cancelConversation(letter.conversationId).pipe(
              // Bounded here too: a cancel that never answers must not hold anything up.
              Effect.timeoutOption(cancelTimeout),
              Effect.asVoid,
              Effect.annotateLogs({ messageId, agentId, conversationId: letter.conversationId })
            )
            return { ...nothing, conversationCancel }
          }
          if (cancelRunId === null) return nothing
          const runCancel = executor.cancelRun(agentId, cancelRunId).pipe(
            Effect.asVoid,
            Effect.annotateLogs({ messageId, agentId, runId: cancelRunId })
          )
          return { ...nothing, runCancel }
        }
      }
    })

  return { settle } as const
})
