/**
 * The durable EventJournal: the queue's pending events in the `pending_events` table (see
 * migrations.ts), so that a restart, even after a crash, resumes them in the order accepted.
 *
 * The semantics are the memory journal's. Every write is one statement addressed by message id,
 * with no read before it, and returns once its statement is committed (see Database for what a
 * commit survives).
 *
 * Writes are committed in groups (see `makeJournalWriter`): the queue appends, updates and removes
 * on its hot path and the dispatcher records each run's progress, five writes per event, and most
 * of a lone write's cost is the SqlClient's per-statement work (taking the connection, a span,
 * a scope) and its own commit, which a group pays once.
 *
 * Appending an id that is already journalled replaces its row, as the memory journal does: the
 * event moves to the end of the order and its run progress is cleared. The queue never appends a
 * duplicate on purpose; failing instead would strand an admin's retry of an event whose earlier
 * removal failed behind a row that nothing else would clear.
 */
import { SqlClient, type Statement } from "@effect/sql"
import { SqlError } from "@effect/sql/SqlError"
import { Cause, Chunk, Effect, Either, Exit, Fiber, Mailbox, Option, ParseResult, Schema, type Scope } from "effect"
import { StorageError } from "../../domain/Errors.js"
import { Partition, QueuedEvent } from "../../domain/Event.js"
import { storageErrorOf } from "./Database.js"
import type { EventJournalService, JournalEntry } from "../queue/EventJournal.js"

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

// --- group commit -------------------------------------------------------------

/** A journal write waiting for its commit. */
interface PendingWrite {
  /** The port's operation, for the StorageError its caller gets if the write fails. */
  readonly operation: string
  readonly statement: Statement.Statement<unknown>
  /**
   * Answers the waiting caller. A callback rather than a Deferred: a Deferred is built by
   * copying a prototype's properties, which costs more than the rest of the hand-over.
   */
  readonly answer: (result: Effect.Effect<void, StorageError>) => void
}

/** At most this many writes share a transaction, so that one group never holds the connection long. */
const maxGroupSize = 256

/**
 * A writer that committed within this long is busy: its next writes wait for the end of the
 * loop's turn to share a commit. One that did not is idle, and commits a write at once: a lone
 * mention's two awaited writes (its append before it is accepted, its run start before the Letta
 * request) then wait for no other callback of the turn. Under load (hundreds of writes a second)
 * writes come closer together than this, so groups form as before.
 */
export const defaultBusyWindowMs = 1

export interface JournalWriterOptions {
  /** Default `defaultBusyWindowMs`; Infinity: always wait for the end of the turn (tests). */
  readonly busyWindowMs?: number | undefined
}

/**
 * Resumes after the event loop has run the callbacks that were ready with the one running now
 * (setImmediate runs after the loop's I/O callbacks): the writes those callbacks make join the
 * group instead of each committing on its own.
 */
const endOfLoopTurn: Effect.Effect<void> = Effect.async<void>((resume) => {
  const handle = setImmediate(() => resume(Effect.void))
  return Effect.sync(() => clearImmediate(handle))
})

/** Why a group was not committed, in the words a caller's StorageError gives. */
const failureOf = (operation: string, cause: Cause.Cause<SqlError>): StorageError => {
  // withTransaction turns a failed COMMIT or ROLLBACK into a defect: squashing finds its SqlError.
  const error = Cause.squash(cause)
  return error instanceof SqlError
    ? storageErrorOf(operation)(error)
    : new StorageError({ operation, reason: error instanceof Error ? error.message : String(error) })
}

interface JournalWriter {
  /** Runs the statement with the other writes of its group; returns once the group is committed. */
  readonly write: (operation: string, statement: Statement.Statement<unknown>) => Effect.Effect<void, StorageError>
}

/**
 * One writer fiber commits the journal's writes in groups: the writes requested while it waited
 * (until the end of the event loop's turn, when it is busy: see `busyWindowMs`; an idle writer
 * does not wait) run in one transaction, in the order requested, so that the writes of one message
 * id keep their order. Each caller returns only after its group is
 * committed: a write that returned survives a crash as before. A group that fails (rolled back as
 * a whole) fails every write in it, each with a StorageError naming its own operation.
 *
 * A lone write runs as the plain statement; a group reserves the connection once for its
 * transaction and runs each statement on it directly, without the SqlClient's per-statement
 * acquisition, span and scope (statement transformers, unused here, are not applied).
 *
 * The price is the hand-over to the writer, and for a busy writer the wait for the end of the
 * turn: a write that finds no company (a quiet process) costs somewhat more CPU than a plain
 * statement. Under load, where CPU matters, groups grow by themselves and
 * the journal costs a fraction of one statement and commit per write (bench/journal-micro.ts).
 *
 * Closing the scope lets the writer commit what was already requested; a write requested after
 * that fails with a StorageError.
 */
const makeJournalWriter = (
  options: JournalWriterOptions
): Effect.Effect<JournalWriter, never, SqlClient.SqlClient | Scope.Scope> =>
  Effect.gen(function*() {
    const busyWindowMs = options.busyWindowMs ?? defaultBusyWindowMs
    const sql = yield* SqlClient.SqlClient
    const requests = yield* Mailbox.make<PendingWrite>()

    const onConnection = (writes: ReadonlyArray<PendingWrite>) =>
      Effect.flatMap(
        Effect.serviceOption(SqlClient.TransactionConnection),
        (transaction) =>
          Effect.forEach(writes, ({ statement }) => {
            if (Option.isNone(transaction)) return statement
            const [text, params] = statement.compile()
            return transaction.value[0].execute(text, params, undefined)
          }, { discard: true })
      )

    const commit = (writes: ReadonlyArray<PendingWrite>): Effect.Effect<void, SqlError> =>
      writes.length === 1 && writes[0] !== undefined
        ? Effect.asVoid(writes[0].statement)
        : sql.withTransaction(onConnection(writes))

    const commitGroup = (writes: ReadonlyArray<PendingWrite>) =>
      Effect.flatMap(Effect.exit(commit(writes)), (exit) =>
        Effect.sync(() => {
          for (const write of writes) {
            write.answer(Exit.isSuccess(exit) ? Effect.void : Effect.fail(failureOf(write.operation, exit.cause)))
          }
        }))

    const commitAll = (writes: Chunk.Chunk<PendingWrite>) =>
      Effect.forEach(Chunk.chunksOf(writes, maxGroupSize), (group) => commitGroup(Chunk.toReadonlyArray(group)), {
        discard: true
      })

    // A taken group is always committed and answered, even if the writer is interrupted meanwhile.
    // The wall clock, not Effect's: whether the writer is busy is about real time, under any clock.
    let lastCommitAt = Number.NEGATIVE_INFINITY
    const isBusy = () => busyWindowMs === Number.POSITIVE_INFINITY || performance.now() - lastCommitAt < busyWindowMs
    const writeGroups: Effect.Effect<void> = Effect.uninterruptibleMask((restore) =>
      Effect.gen(function*() {
        while (true) {
          const [first, done] = yield* restore(requests.takeAll)
          if (!done && isBusy()) yield* endOfLoopTurn
          const rest = yield* requests.clear
          yield* commitAll(Chunk.appendAll(first, rest))
          lastCommitAt = performance.now()
          if (done) return
        }
      })
    )

    const closed = (operation: string) => new StorageError({ operation, reason: "the journal is closed" })

    const writer = yield* Effect.forkScoped(writeGroups.pipe(
      // Only if the writer stopped before the mailbox ended (it is never expected to): no write
      // is left waiting for an answer.
      Effect.ensuring(Effect.zipRight(
        requests.end,
        Effect.flatMap(
          requests.clear,
          (left) => Effect.sync(() => Chunk.forEach(left, (write) => write.answer(Effect.fail(closed(write.operation)))))
        )
      ))
    ))
    yield* Effect.addFinalizer(() => Effect.zipRight(requests.end, Fiber.await(writer)))

    // Uninterruptible: a caller learns what became of its write, as when a statement ran in place.
    const write = (operation: string, statement: Statement.Statement<unknown>) =>
      Effect.uninterruptible(Effect.async<void, StorageError>((answer) => {
        if (!requests.unsafeOffer({ operation, statement, answer })) answer(Effect.fail(closed(operation)))
      }))

    return { write }
  })

// --- the journal --------------------------------------------------------------

export const makeSqlEventJournal = (
  options: JournalWriterOptions = {}
): Effect.Effect<EventJournalService, never, SqlClient.SqlClient | Scope.Scope> =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const { write } = yield* makeJournalWriter(options)

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
