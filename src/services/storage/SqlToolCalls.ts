/**
 * The durable ToolCalls store: the `tool_calls` table (see migrations.ts), with the memory store's
 * semantics (queue/ToolCalls.ts). `begin` is one transaction: a new call is inserted and the
 * table pruned together (rows started more than the retention before it, the partition's rows
 * beyond its newest bound), or an unfinished one is answered as interrupted. Each write is
 * committed before it returns, so a call recorded as started survives the process being killed.
 */
import { SqlClient } from "@effect/sql"
import { Effect, Either, ParseResult, Schema } from "effect"
import {
  interruptedResult,
  maxToolCallsPerPartition,
  partitionKeyOf,
  storedResult,
  type ToolCallRecord,
  toolCallRetentionMs,
  type ToolCallStart,
  type ToolResult,
  ToolStatus
} from "../../domain/ToolCall.js"
import { StorageError } from "../../domain/Errors.js"
import type { Begin, ToolCallsService } from "../queue/ToolCalls.js"
import { storageErrorOf } from "./Database.js"

const CallRow = Schema.Struct({
  tool_call_id: Schema.String,
  tool: Schema.String,
  partition: Schema.String,
  channel_id: Schema.String,
  message_id: Schema.String,
  started_at: Schema.Number,
  finished_at: Schema.NullOr(Schema.Number),
  status: Schema.NullOr(ToolStatus),
  tool_return: Schema.NullOr(Schema.String)
})

const decodeRow = Schema.decodeUnknownEither(CallRow)

const recordOf = (row: unknown): Either.Either<ToolCallRecord, string> =>
  Either.map(
    Either.mapLeft(decodeRow(row), (error) => ParseResult.TreeFormatter.formatErrorSync(error)),
    (decoded) => ({
      toolCallId: decoded.tool_call_id,
      tool: decoded.tool,
      partitionKey: decoded.partition,
      channelId: decoded.channel_id,
      messageId: decoded.message_id,
      startedAt: decoded.started_at,
      finished: decoded.status === null || decoded.finished_at === null
        ? null
        : { at: decoded.finished_at, result: { status: decoded.status, toolReturn: decoded.tool_return ?? "" } }
    })
  )

const columns = "tool_call_id, tool, partition, channel_id, message_id, started_at, finished_at, status, tool_return"

/** `maxPerPartition` and `retentionMs` are parameters so that tests reach the bounds with a few rows. */
export const makeSqlToolCalls = (
  maxPerPartition: number = maxToolCallsPerPartition,
  retentionMs: number = toolCallRetentionMs
): Effect.Effect<ToolCallsService, never, SqlClient.SqlClient> =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient

    /** A row that does not decode is a storage failure: a call whose record cannot be read is not run. */
    const decoded = (operation: string, rows: ReadonlyArray<unknown>) =>
      Effect.forEach(rows, (row) =>
        Either.match(recordOf(row), {
          onLeft: (problem) => Effect.fail(new StorageError({ operation, reason: `unreadable tool call row: ${problem}` })),
          onRight: Effect.succeed
        }))

    const find = (toolCallId: string) =>
      sql`SELECT ${sql.literal(columns)} FROM tool_calls WHERE tool_call_id = ${toolCallId}`.pipe(
        Effect.mapError(storageErrorOf("ToolCalls.find")),
        Effect.flatMap((rows) => decoded("ToolCalls.find", rows)),
        Effect.map((records) => records[0] ?? null)
      )

    const begin = (start: ToolCallStart) => {
      const partition = partitionKeyOf(start)
      return sql.withTransaction(Effect.gen(function*() {
        const inserted = yield* sql<{ readonly seq: number }>`
          INSERT INTO tool_calls (tool_call_id, partition, channel_id, message_id, tool, started_at)
          VALUES (${start.toolCallId}, ${partition}, ${start.channelId}, ${start.messageId}, ${start.tool}, ${start.at})
          ON CONFLICT (tool_call_id) DO NOTHING
          RETURNING seq`
        if (inserted.length > 0) {
          yield* sql`DELETE FROM tool_calls WHERE started_at < ${start.at - retentionMs}`
          yield* sql`DELETE FROM tool_calls WHERE partition = ${partition} AND seq IN (
            SELECT seq FROM tool_calls WHERE partition = ${partition}
            ORDER BY started_at DESC, seq DESC LIMIT -1 OFFSET ${maxPerPartition})`
          return { _tag: "Run" } satisfies Begin
        }
        const rows = yield* sql`SELECT ${sql.literal(columns)} FROM tool_calls WHERE tool_call_id = ${start.toolCallId}`
        const [existing] = yield* decoded("ToolCalls.begin", rows)
        if (existing !== undefined && existing.finished !== null) {
          return { _tag: "Finished", result: existing.finished.result } satisfies Begin
        }
        yield* sql`UPDATE tool_calls SET finished_at = ${start.at}, status = ${interruptedResult.status},
          tool_return = ${interruptedResult.toolReturn}
          WHERE tool_call_id = ${start.toolCallId} AND status IS NULL`
        return { _tag: "Interrupted", result: interruptedResult } satisfies Begin
      })).pipe(Effect.catchTag("SqlError", (error) => Effect.fail(storageErrorOf("ToolCalls.begin")(error))))
    }

    const finish = (toolCallId: string, result: ToolResult, at: number) => {
      const stored = storedResult(result)
      return sql<{ readonly seq: number }>`
        UPDATE tool_calls SET finished_at = ${at}, status = ${stored.status}, tool_return = ${stored.toolReturn}
        WHERE tool_call_id = ${toolCallId} AND status IS NULL
        RETURNING seq`.pipe(
        Effect.map((rows) => rows.length > 0),
        Effect.mapError(storageErrorOf("ToolCalls.finish"))
      )
    }

    const recent = (partitionKey: string, limit: number) =>
      sql`SELECT ${sql.literal(columns)} FROM tool_calls WHERE partition = ${partitionKey}
        ORDER BY started_at DESC, seq DESC LIMIT ${Math.max(0, Math.floor(limit))}`.pipe(
        Effect.mapError(storageErrorOf("ToolCalls.recent")),
        Effect.flatMap((rows) => decoded("ToolCalls.recent", rows))
      )

    return { begin, finish, find, recent }
  })
