/**
 * The durable EventJournal: the queue's pending events in the `pending_events` table (see
 * migrations.ts), so that a restart, even after a crash, resumes them in the order accepted.
 *
 * The semantics are the memory journal's. Every write is one statement addressed by message id,
 * with no read before it, and returns once its statement is committed (see Database for what a
 * commit survives).
 *
 * Writes are committed in groups (see GroupCommit.ts), by a writer of the journal's own: the
 * queue appends, updates and removes on its hot path and the dispatcher records each run's
 * progress, five writes per event, and most of a lone write's cost is the SqlClient's
 * per-statement work (taking the connection, a span, a scope) and its own commit, which a group
 * pays once.
 *
 * Appending an id that is already journalled replaces its row, as the memory journal does: the
 * event moves to the end of the order and its run progress is cleared. The queue never appends a
 * duplicate on purpose; failing instead would strand an admin's retry of an event whose earlier
 * removal failed behind a row that nothing else would clear.
 */
import { SqlClient, type Statement } from "@effect/sql"
import { Effect, Either, ParseResult, Schema, type Scope } from "effect"
import { StorageError } from "../../domain/Errors.js"
import { Partition, QueuedEvent } from "../../domain/Event.js"
import { storageErrorOf } from "./Database.js"
import { type GroupCommitOptions, makeGroupCommit } from "./GroupCommit.js"
import type { EventJournalService, JournalEntry } from "../queue/EventJournal.js"

export type { GroupCommitOptions } from "./GroupCommit.js"

/** The event as stored: JSON of its encoded form, so the schema decides what a stored event is. */
export const EventJson = Schema.parseJson(QueuedEvent)

const encodeEventJson = Schema.encodeEither(EventJson)

/** Encodes an event for a JSON column, or says why it cannot be (not expected for a typed event). */
const encodeEventSync = (operation: string, event: QueuedEvent): Either.Either<string, StorageError> =>
  Either.mapLeft(encodeEventJson(event), (error) =>
    new StorageError({
      operation,
      reason: `the event could not be encoded: ${ParseResult.TreeFormatter.formatErrorSync(error)}`
    }))

/** Encodes an event for a JSON column; a failure (not expected for a typed event) is a StorageError. */
export const encodeEvent = (operation: string) => (event: QueuedEvent): Effect.Effect<string, StorageError> =>
  Effect.suspend(() => encodeEventSync(operation, event))

const PendingRow = Schema.Struct({
  message_id: Schema.String,
  event: EventJson,
  run_started_at: Schema.NullOr(Schema.Number),
  run_id: Schema.NullOr(Schema.String),
  side_effect: Schema.Literal(0, 1),
  conversation_id: Schema.NullOr(Schema.String),
  fallback_at: Schema.NullOr(Schema.Number)
})

const decodePendingRow = Schema.decodeUnknownEither(PendingRow)

/** A stored row as a journal entry, or why it cannot be one. */
const entryOf = (row: unknown): Either.Either<JournalEntry, string> =>
  Either.flatMap(
    Either.mapLeft(decodePendingRow(row), (error) => ParseResult.TreeFormatter.formatErrorSync(error)),
    (decoded) =>
      decoded.event.messageId !== decoded.message_id
        ? Either.left(`the stored event's id (${decoded.event.messageId}) is not the row's`)
        : Either.right({
          event: decoded.event,
          run: decoded.run_started_at === null
            ? null
            : {
              startedAt: decoded.run_started_at,
              runId: decoded.run_id,
              sideEffect: decoded.side_effect === 1,
              ...(decoded.conversation_id === null ? {} : { conversationId: decoded.conversation_id }),
              ...(decoded.fallback_at === null ? {} : { fallbackAt: decoded.fallback_at })
            }
        })
  )

/** The row's message id for a log line, whatever else is wrong with the row. */
const messageIdOf = (row: { readonly message_id?: unknown }) => String(row.message_id)

// --- the journal --------------------------------------------------------------

export const makeSqlEventJournal = (
  options: GroupCommitOptions = {}
): Effect.Effect<EventJournalService, never, SqlClient.SqlClient | Scope.Scope> =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const { write } = yield* makeGroupCommit("journal", options)

    /** A write of the event's JSON; an event that cannot be encoded fails before anything is written. */
    const withJson = (operation: string, event: QueuedEvent, statement: (json: string) => Statement.Statement<unknown>) =>
      Either.match(encodeEventSync(operation, event), {
        onLeft: Effect.fail,
        onRight: (json) => write(operation, statement(json))
      })

    const append = (event: QueuedEvent) =>
      withJson("EventJournal.append", event, (json) =>
        sql`INSERT OR REPLACE INTO pending_events (message_id, partition, event)
          VALUES (${event.messageId}, ${Partition.key(Partition.ofEvent(event))}, ${json})`)

    const remove = (messageId: string) =>
      write("EventJournal.remove", sql`DELETE FROM pending_events WHERE message_id = ${messageId}`)

    const update = (event: QueuedEvent) =>
      withJson("EventJournal.update", event, (json) =>
        sql`UPDATE pending_events
          SET event = ${json}, run_started_at = NULL, run_id = NULL, side_effect = 0, conversation_id = NULL,
            fallback_at = NULL
          WHERE message_id = ${event.messageId}`)

    const runStarted = (messageId: string, at: number) =>
      write(
        "EventJournal.runStarted",
        sql`UPDATE pending_events
          SET run_started_at = ${at}, run_id = NULL, side_effect = 0, conversation_id = NULL, fallback_at = NULL
          WHERE message_id = ${messageId}`
      )

    // Progress of a run that was not recorded as started is ignored, as in the memory journal.
    const runIdSeen = (messageId: string, runId: string, conversationId?: string) =>
      write(
        "EventJournal.runIdSeen",
        sql`UPDATE pending_events SET run_id = ${runId}, conversation_id = coalesce(${conversationId ?? null}, conversation_id)
          WHERE message_id = ${messageId} AND run_started_at IS NOT NULL`
      )

    const sideEffectSeen = (messageId: string) =>
      write(
        "EventJournal.sideEffectSeen",
        sql`UPDATE pending_events SET side_effect = 1
          WHERE message_id = ${messageId} AND run_started_at IS NOT NULL`
      )

    const fallbackRecorded = (messageId: string, at: number) =>
      write(
        "EventJournal.fallbackRecorded",
        sql`UPDATE pending_events SET fallback_at = ${at}
          WHERE message_id = ${messageId} AND run_started_at IS NOT NULL`
      )

    /**
     * A row that does not decode (edited by hand, or written by a version whose event this one
     * cannot read) is logged and skipped rather than stopping the start-up: every other pending
     * event is still resumed. The row is left in place for an operator to inspect.
     */
    const load = Effect.gen(function*() {
      const rows = yield* sql<{ readonly message_id: unknown }>`
        SELECT message_id, event, run_started_at, run_id, side_effect, conversation_id, fallback_at
        FROM pending_events ORDER BY seq`.pipe(
        Effect.mapError(storageErrorOf("EventJournal.load"))
      )
      const entries: Array<JournalEntry> = []
      for (const row of rows) {
        const entry = entryOf(row)
        if (Either.isRight(entry)) {
          entries.push(entry.right)
        } else {
          yield* Effect.logError("journal: a pending event cannot be read; it is skipped").pipe(
            Effect.annotateLogs({ messageId: messageIdOf(row), problem: entry.left })
          )
        }
      }
      return entries
    })

    return { append, remove, update, runStarted, runIdSeen, sideEffectSeen, fallbackRecorded, load }
  })
