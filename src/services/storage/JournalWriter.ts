/**
 * The SQL journal's group commit (see `makeJournalWriter`): its writes, requested by the queue and
 * the dispatcher, committed in groups by one writer fiber.
 */
import { SqlClient, type Statement } from "@effect/sql"
import { SqlError } from "@effect/sql/SqlError"
import { Cause, Chunk, Effect, Exit, Fiber, Mailbox, Option, type Scope } from "effect"
import { StorageError } from "../../domain/Errors.js"
import { storageErrorOf } from "./Database.js"

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

export interface JournalWriter {
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
export const makeJournalWriter = (
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
