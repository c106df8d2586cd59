/**
 * The log lines the queue's pure transitions ask for (`Note`s), written once the state update is
 * made: an overflow episode's start and end (with its count), and a replayed event skipped because
 * it was already queued.
 */
import { Effect } from "effect"
import type { Note } from "./state/QueueState.js"

export const emitNotes = (notes: ReadonlyArray<Note>): Effect.Effect<void> =>
  Effect.forEach(
    notes,
    (note) => {
      switch (note._tag) {
        case "OverflowStarted":
          return Effect.logWarning("queue full: rejecting new events").pipe(
            Effect.annotateLogs({ partition: note.partition, capacity: note.capacity })
          )
        case "OverflowEnded":
          return Effect.logWarning(`queue overflow ended: ${note.rejected} event(s) rejected`).pipe(
            Effect.annotateLogs({ partition: note.partition, rejected: note.rejected })
          )
        case "RestoreSkipped":
          return Effect.logWarning("restore: event already queued, skipped").pipe(
            Effect.annotateLogs({ messageId: note.messageId })
          )
      }
    },
    { discard: true }
  )
