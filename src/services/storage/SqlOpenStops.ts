/**
 * The durable OpenStops store: the `open_stops` table (see migrations.ts), with the memory store's
 * semantics (queue/OpenStops.ts). The calls and the actions before the stop are JSON columns, read
 * and written whole (`[]` for rows stored before 10_open_stop_actions); `open` is
 * an INSERT OR REPLACE on the key (a re-opened stop keeps one row, with a new record order). A row
 * that does not decode is a storage failure. Each write is committed before it returns.
 */
import { SqlClient } from "@effect/sql"
import { Effect, Either, ParseResult, Schema } from "effect"
import { StorageError } from "../../domain/Errors.js"
import type { OpenStop, OpenStopsService } from "../queue/OpenStops.js"
import { storageErrorOf } from "./Database.js"
import { originColumns, originOfRow, rowOfOrigin } from "./OriginColumns.js"

const Calls = Schema.parseJson(Schema.Array(Schema.Struct({
  name: Schema.String,
  arguments: Schema.String,
  toolCallId: Schema.String,
  aurora: Schema.Boolean
})))

const Actions = Schema.parseJson(Schema.Array(Schema.String))

const StopRow = Schema.Struct({
  stop_key: Schema.String,
  ...originColumns,
  calls: Calls,
  actions_before: Actions,
  opened_at: Schema.Number
})

const decodeRow = Schema.decodeUnknownEither(StopRow)

const stopOf = (row: unknown): Either.Either<OpenStop, string> =>
  Either.map(
    Either.mapLeft(decodeRow(row), (error) => ParseResult.TreeFormatter.formatErrorSync(error)),
    (decoded): OpenStop => ({
      key: decoded.stop_key,
      origin: originOfRow(decoded),
      calls: decoded.calls,
      actionsBefore: decoded.actions_before,
      openedAt: decoded.opened_at
    })
  )

export const makeSqlOpenStops: Effect.Effect<OpenStopsService, never, SqlClient.SqlClient> = Effect.gen(function*() {
  const sql = yield* SqlClient.SqlClient

  const decoded = (operation: string, rows: ReadonlyArray<unknown>) =>
    Effect.forEach(rows, (row) =>
      Either.match(stopOf(row), {
        onLeft: (problem) => Effect.fail(new StorageError({ operation, reason: `unreadable open stop row: ${problem}` })),
        onRight: Effect.succeed
      }))

  return {
    open: (stop) =>
      sql`INSERT OR REPLACE INTO open_stops ${
        sql.insert({
          stop_key: stop.key,
          ...rowOfOrigin(stop.origin),
          calls: Schema.encodeSync(Calls)(stop.calls),
          actions_before: Schema.encodeSync(Actions)(stop.actionsBefore),
          opened_at: stop.openedAt
        })
      }`.pipe(Effect.asVoid, Effect.mapError(storageErrorOf("OpenStops.open"))),
    close: (key) =>
      sql`DELETE FROM open_stops WHERE stop_key = ${key}`.pipe(Effect.asVoid, Effect.mapError(storageErrorOf("OpenStops.close"))),
    all: sql`SELECT * FROM open_stops ORDER BY opened_at, rowid`.pipe(
      Effect.mapError(storageErrorOf("OpenStops.all")),
      Effect.flatMap((rows) => decoded("OpenStops.all", rows))
    ),
    pendingFor: (agentId, conversationId) =>
      (conversationId === null
        ? sql`SELECT 1 FROM open_stops WHERE agent_id = ${agentId} AND conversation_id IS NULL LIMIT 1`
        : sql`SELECT 1 FROM open_stops WHERE agent_id = ${agentId} AND conversation_id = ${conversationId} LIMIT 1`).pipe(
          Effect.map((rows) => rows.length > 0),
          Effect.mapError(storageErrorOf("OpenStops.pendingFor"))
        )
  }
})
