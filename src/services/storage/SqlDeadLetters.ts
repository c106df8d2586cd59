/**
 * The durable DeadLetters store: the `dead_letters` table (see migrations.ts), with the semantics
 * of the memory store: newest first (by failedAt, then by insertion), the newest
 * `maxDeadLettersPerPartition` kept per partition, a letter replacing an earlier one of the same
 * message id in its partition.
 *
 * `add` is one transaction: the letter is written, the event's `pending_events` row is deleted
 * and the partition is pruned together, so a crash never leaves an event both pending and dead,
 * nor a partition over its bound.
 */
import { SqlClient } from "@effect/sql"
import { Effect, Either, ParseResult, Schema } from "effect"
import { type DeadLetter, DeadLetterReason, maxDeadLettersPerPartition } from "../../domain/DeadLetter.js"
import { Partition } from "../../domain/Event.js"
import { storageErrorOf } from "./Database.js"
import type { DeadLettersService } from "../queue/DeadLetters.js"
import { encodeEvent, EventJson } from "./SqlEventJournal.js"

const LetterRow = Schema.Struct({
  message_id: Schema.String,
  event: EventJson,
  reason: DeadLetterReason,
  error_type: Schema.NullOr(Schema.String),
  detail: Schema.NullOr(Schema.String),
  attempts: Schema.Number,
  failed_at: Schema.Number,
  conversation_id: Schema.NullOr(Schema.String)
})

const decodeLetterRow = Schema.decodeUnknownEither(LetterRow)

const letterOf = (row: unknown): Either.Either<DeadLetter, string> =>
  Either.map(
    Either.mapLeft(decodeLetterRow(row), (error) => ParseResult.TreeFormatter.formatErrorSync(error)),
    (decoded) => ({
      event: decoded.event,
      reason: decoded.reason,
      errorType: decoded.error_type,
      detail: decoded.detail,
      attempts: decoded.attempts,
      failedAt: decoded.failed_at,
      ...(decoded.conversation_id === null ? {} : { conversationId: decoded.conversation_id })
    })
  )

/** SQLite's "no limit". */
const unlimited = -1

export const makeSqlDeadLetters: Effect.Effect<DeadLettersService, never, SqlClient.SqlClient> = Effect.gen(
  function*() {
    const sql = yield* SqlClient.SqlClient

    /**
     * A row that does not decode is logged and left out (it is still counted in a page's total,
     * and an operator can see it in the table): one damaged letter must not hide the others.
     */
    const readable = (rows: ReadonlyArray<{ readonly message_id: unknown }>, partition: string) =>
      Effect.gen(function*() {
        const letters: Array<DeadLetter> = []
        for (const row of rows) {
          const letter = letterOf(row)
          if (Either.isRight(letter)) {
            letters.push(letter.right)
          } else {
            yield* Effect.logError("dead letters: a stored dead letter cannot be read; it is skipped").pipe(
              Effect.annotateLogs({ partition, messageId: String(row.message_id), problem: letter.left })
            )
          }
        }
        return letters
      })

    const add = (letter: DeadLetter) =>
      Effect.gen(function*() {
        const event = letter.event
        const partition = Partition.key(Partition.ofEvent(event))
        const json = yield* encodeEvent("DeadLetters.add")(event)
        yield* sql.withTransaction(Effect.gen(function*() {
          // seq: after every letter of the partition, so that a replaced letter counts as new.
          yield* sql`INSERT OR REPLACE INTO dead_letters
            (partition, message_id, seq, channel_id, reason, error_type, detail, attempts, enqueued_at, failed_at, event,
              conversation_id)
            VALUES (${partition}, ${event.messageId},
              (SELECT coalesce(max(seq), 0) + 1 FROM dead_letters WHERE partition = ${partition}),
              ${event.channelId}, ${letter.reason}, ${letter.errorType}, ${letter.detail}, ${letter.attempts},
              ${event.enqueuedAt}, ${letter.failedAt}, ${json}, ${letter.conversationId ?? null})`
          yield* sql`DELETE FROM pending_events WHERE message_id = ${event.messageId}`
          yield* sql`DELETE FROM dead_letters WHERE partition = ${partition} AND message_id IN (
            SELECT message_id FROM dead_letters WHERE partition = ${partition}
            ORDER BY failed_at DESC, seq DESC LIMIT -1 OFFSET ${maxDeadLettersPerPartition})`
        })).pipe(Effect.mapError(storageErrorOf("DeadLetters.add")))
      })

    // Both reads in one transaction, so that the page and its total agree.
    const list = (partition: Partition, limit?: number) => {
      const key = Partition.key(partition)
      const rows = limit === undefined ? unlimited : Math.max(0, Math.floor(limit))
      return Effect.gen(function*() {
        const page = yield* sql.withTransaction(Effect.all([
          sql<{ readonly message_id: unknown }>`
            SELECT message_id, event, reason, error_type, detail, attempts, failed_at, conversation_id FROM dead_letters
            WHERE partition = ${key} ORDER BY failed_at DESC, seq DESC LIMIT ${rows}`,
          sql<{ readonly total: number }>`SELECT count(*) AS total FROM dead_letters WHERE partition = ${key}`
        ])).pipe(Effect.mapError(storageErrorOf("DeadLetters.list")))
        const [letterRows, count] = page
        return { letters: yield* readable(letterRows, key), total: count[0]?.total ?? 0 }
      })
    }

    const find = (partition: Partition, messageId: string) => {
      const key = Partition.key(partition)
      return Effect.gen(function*() {
        const rows = yield* sql<{ readonly message_id: unknown }>`
          SELECT message_id, event, reason, error_type, detail, attempts, failed_at, conversation_id FROM dead_letters
          WHERE partition = ${key} AND message_id = ${messageId}`.pipe(
          Effect.mapError(storageErrorOf("DeadLetters.find"))
        )
        const letters = yield* readable(rows, key)
        return letters[0] ?? null
      })
    }

    const remove = (partition: Partition, messageId: string) =>
      sql`DELETE FROM dead_letters WHERE partition = ${Partition.key(partition)} AND message_id = ${messageId}`.pipe(
        Effect.mapError(storageErrorOf("DeadLetters.remove"))
      )

    // The stored event's enqueue time is read from its JSON: it tells the dead letter from a
    // newer one of a re-queued copy, which was enqueued later.
    const removeUnchanged = (letter: DeadLetter) =>
      sql<{ readonly message_id: string }>`
        DELETE FROM dead_letters
        WHERE partition = ${Partition.key(Partition.ofEvent(letter.event))} AND message_id = ${letter.event.messageId}
          AND failed_at = ${letter.failedAt} AND reason = ${letter.reason} AND attempts = ${letter.attempts}
          AND json_extract(event, '$.enqueuedAt') = ${letter.event.enqueuedAt}
        RETURNING message_id`.pipe(
        Effect.map((rows) => rows.length > 0),
        Effect.mapError(storageErrorOf("DeadLetters.removeUnchanged"))
      )

    return { add, list, find, remove, removeUnchanged }
  }
)
