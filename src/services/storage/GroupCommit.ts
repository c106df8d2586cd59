/**
 * Group commit: one writer fiber per store commits the writes its callers request in groups,
 * each group in one transaction, in the order requested, so that the writes of one key keep their
 * order. A write is one statement or a few that belong together (always in the same transaction).
 *
 * - Each caller returns only after its group is committed: a write that returned survives a crash
 *   (see Database for what a commit survives).
 * - A group that fails (rolled back as a whole) fails every write in it, each with a StorageError
 *   naming its own operation. A store whose writes must not fail another's has a writer of its
 *   own (the event journal and the runs log each make one).
 * - An idle writer (no commit within `busyWindowMs`) commits what it was given at once: a lone
 *   mention's awaited writes wait for no other callback of the loop's turn. A busy one waits for
 *   the end of the turn first, so that the writes the turn's other callbacks make join the group:
 *   under load (hundreds of writes a second) writes come closer together than the window, and
 *   groups grow by themselves.
 * - A lone single-statement write runs as the plain statement; anything else reserves the
 *   connection once for its transaction and runs each statement on it directly, without the
 *   SqlClient's per-statement acquisition, span and scope (statement transformers, unused here,
 *   are not applied).
 * - Closing the scope lets the writer commit what was already requested; a write requested after
 *   that fails with a StorageError ("the <store> is closed").
 *
 * The price is the hand-over to the writer, and for a busy writer the wait for the end of the
 * turn: a write that finds no company costs somewhat more CPU than a plain statement. Under load,
 * where CPU matters, a write costs a fraction of one statement and commit (bench/journal-micro.ts).
 */
import { SqlClient, type Statement } from "@effect/sql"
import { SqlError } from "@effect/sql/SqlError"
import { Cause, Chunk, Effect, Exit, Fiber, Mailbox, Option, type Scope } from "effect"
import { StorageError } from "../../domain/Errors.js"
import { storageErrorOf } from "./Database.js"

/** A write waiting for its commit. */
interface PendingWrite {
  /** The port's operation, for the StorageError its caller gets if the write fails. */
  readonly operation: string
  readonly statements: ReadonlyArray<Statement.Statement<unknown>>
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
 * loop's turn to share a commit. One that did not is idle and commits at once.
 */
export const defaultBusyWindowMs = 1

export interface GroupCommitOptions {
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

export interface GroupCommit {
  /** Runs the statements with the other writes of their group; returns once the group is committed. */
  readonly write: (
    operation: string,
    ...statements: ReadonlyArray<Statement.Statement<unknown>>
  ) => Effect.Effect<void, StorageError>
}

/** `store` names the store in the error of a write requested after the scope closed ("the journal is closed"). */
export const makeGroupCommit = (
  store: string,
  options: GroupCommitOptions = {}
): Effect.Effect<GroupCommit, never, SqlClient.SqlClient | Scope.Scope> =>
  Effect.gen(function*() {
    const busyWindowMs = options.busyWindowMs ?? defaultBusyWindowMs
    const sql = yield* SqlClient.SqlClient
    const requests = yield* Mailbox.make<PendingWrite>()

    // The group's statements in one list, run by one loop: a loop per write cost more Effect
    // operations than handing its statement to SQLite.
    const onConnection = (writes: ReadonlyArray<PendingWrite>) =>
      Effect.flatMap(Effect.serviceOption(SqlClient.TransactionConnection), (transaction) => {
        const statements: Array<Statement.Statement<unknown>> = []
        for (const write of writes) statements.push(...write.statements)
        return Effect.forEach(statements, (statement) => {
          if (Option.isNone(transaction)) return statement
          const [text, params] = statement.compile()
          return transaction.value[0].execute(text, params, undefined)
        }, { discard: true })
      })

    const commit = (writes: ReadonlyArray<PendingWrite>): Effect.Effect<void, SqlError> => {
      const lone = writes.length === 1 ? writes[0]?.statements : undefined
      return lone !== undefined && lone.length === 1 && lone[0] !== undefined
        ? Effect.asVoid(lone[0])
        : sql.withTransaction(onConnection(writes))
    }

    const commitGroup = (writes: ReadonlyArray<PendingWrite>) =>
      Effect.flatMap(Effect.exit(commit(writes)), (exit) =>
        Effect.sync(() => {
          for (const write of writes) {
            write.answer(Exit.isSuccess(exit) ? Effect.void : Effect.fail(failureOf(write.operation, exit.cause)))
          }
        }))

    // Nearly always a single group: only a backlog over maxGroupSize is cut into several.
    const commitAll = (writes: ReadonlyArray<PendingWrite>): Effect.Effect<void> => {
      if (writes.length <= maxGroupSize) return commitGroup(writes)
      const groups: Array<ReadonlyArray<PendingWrite>> = []
      for (let start = 0; start < writes.length; start += maxGroupSize) {
        groups.push(writes.slice(start, start + maxGroupSize))
      }
      return Effect.forEach(groups, commitGroup, { discard: true })
    }

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
          yield* commitAll(Chunk.toReadonlyArray(Chunk.appendAll(first, rest)))
          lastCommitAt = performance.now()
          if (done) return
        }
      })
    )

    const closed = (operation: string) => new StorageError({ operation, reason: `the ${store} is closed` })

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
    const write = (operation: string, ...statements: ReadonlyArray<Statement.Statement<unknown>>) =>
      Effect.uninterruptible(Effect.async<void, StorageError>((answer) => {
        if (!requests.unsafeOffer({ operation, statements, answer })) answer(Effect.fail(closed(operation)))
      }))

    return { write }
  })
