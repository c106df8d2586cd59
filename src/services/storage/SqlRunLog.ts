/**
 * The durable RunLog: the `runs` table (see migrations.ts, 4_agent_turn), with the memory store's
 * semantics: one row per (partition, message id), a new record replacing the message's row and
 * counting as the newest (`seq`: after every row of the partition), newest first by finish time
 * then `seq`, the newest `maxRunsPerPartition` kept per partition.
 *
 * `record` is one transaction: the row is written and the partition pruned together, so the
 * table never holds more than the bound. Records are committed in groups (GroupCommit.ts: under
 * load the records made in one turn of the event loop share a transaction; every dispatch makes
 * one), by a writer of the runs log's own, so that a record that fails can fail only other
 * records, never a write of the event journal. The guild id is not a column: it is the partition's.
 */
import { SqlClient } from "@effect/sql"
import { Effect, Either, ParseResult, Schema, type Scope } from "effect"
import { Partition } from "../../domain/Event.js"
import {
  boundedRunRecord,
  maxRunsPerPartition,
  partitionOfRun,
  RunOutcome,
  type RunRecord,
  rowLimit
} from "../../domain/RunRecord.js"
import type { RunLogService } from "../queue/RunLog.js"
import { storageErrorOf } from "./Database.js"
import { makeGroupCommit } from "./GroupCommit.js"

const ToolCallsJson = Schema.parseJson(Schema.Array(Schema.String))

const encodeToolCalls = Schema.encodeSync(ToolCallsJson)

const RunRow = Schema.Struct({
  message_id: Schema.String,
  channel_id: Schema.String,
  conversation_id: Schema.NullOr(Schema.String),
  run_id: Schema.NullOr(Schema.String),
  outcome: RunOutcome,
  detail: Schema.NullOr(Schema.String),
  tool_calls: ToolCallsJson,
  duration_ms: Schema.NullOr(Schema.Number),
  queued_ms: Schema.NullOr(Schema.Number),
  finished_at: Schema.Number
})

const decodeRunRow = Schema.decodeUnknownEither(RunRow)

const recordOf = (row: unknown, guildId: string | null): Either.Either<RunRecord, string> =>
  Either.map(
    Either.mapLeft(decodeRunRow(row), (error) => ParseResult.TreeFormatter.formatErrorSync(error)),
    (decoded) => ({
      messageId: decoded.message_id,
      guildId,
      channelId: decoded.channel_id,
      conversationId: decoded.conversation_id,
      runId: decoded.run_id,
      outcome: decoded.outcome,
      toolCalls: decoded.tool_calls,
      durationMs: decoded.duration_ms,
      queuedMs: decoded.queued_ms,
      finishedAt: decoded.finished_at,
      detail: decoded.detail
    })
  )

/** `maxPerPartition` is a parameter so that tests can reach the bound with a few rows. */
export const makeSqlRunLog = (
  maxPerPartition: number = maxRunsPerPartition
): Effect.Effect<RunLogService, never, SqlClient.SqlClient | Scope.Scope> =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const { write } = yield* makeGroupCommit("runs log")

    const record = (input: RunRecord) => {
      const r = boundedRunRecord(input)
      const partition = Partition.key(partitionOfRun(r))
      const insert = sql`INSERT OR REPLACE INTO runs
          (partition, message_id, seq, channel_id, conversation_id, run_id, outcome, detail, tool_calls, duration_ms,
            queued_ms, finished_at)
          VALUES (${partition}, ${r.messageId},
            (SELECT coalesce(max(seq), 0) + 1 FROM runs WHERE partition = ${partition}),
            ${r.channelId}, ${r.conversationId}, ${r.runId}, ${r.outcome}, ${r.detail}, ${encodeToolCalls(r.toolCalls)},
            ${r.durationMs}, ${r.queuedMs}, ${r.finishedAt})`
      const prune = sql`DELETE FROM runs WHERE partition = ${partition} AND message_id IN (
          SELECT message_id FROM runs WHERE partition = ${partition}
          ORDER BY finished_at DESC, seq DESC LIMIT -1 OFFSET ${maxPerPartition})`
      return write("RunLog.record", insert, prune)
    }

    /**
     * A row that does not decode is logged and left out (an operator can still see it in the
     * table): one damaged row must not hide the others.
     */
    const recent = (partition: Partition, limit: number) => {
      const key = Partition.key(partition)
      const guildId = partition._tag === "Guild" ? partition.guildId : null
      return Effect.gen(function*() {
        const rows = yield* sql<{ readonly message_id: unknown }>`
          SELECT message_id, channel_id, conversation_id, run_id, outcome, detail, tool_calls, duration_ms, queued_ms,
            finished_at
          FROM runs WHERE partition = ${key} ORDER BY finished_at DESC, seq DESC LIMIT ${rowLimit(limit)}`.pipe(
          Effect.mapError(storageErrorOf("RunLog.recent"))
        )
        const records: Array<RunRecord> = []
        for (const row of rows) {
          const decoded = recordOf(row, guildId)
          if (Either.isRight(decoded)) {
            records.push(decoded.right)
          } else {
            yield* Effect.logError("runs: a stored run cannot be read; it is skipped").pipe(
              Effect.annotateLogs({ partition: key, messageId: String(row.message_id), problem: decoded.left })
            )
          }
        }
        return records
      })
    }

    return { record, recent }
  })
