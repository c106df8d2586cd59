/**
 * The durable PendingApprovals store: the `approvals` table (see migrations.ts), with the memory
 * store's semantics (approvals/PendingApprovals.ts). The calls, the stop's other answers, the
 * Discord actions before the stop and the decisions are JSON columns, read and written whole. A decision is a compare-and-set of the
 * decisions column (`UPDATE ... WHERE decisions = <as read>`), retried on a lost race, so that of
 * a click and the deadline deciding the same call at once exactly one is recorded, whatever else
 * shares the connection. Each write is committed before it returns.
 */
import { SqlClient } from "@effect/sql"
import { Effect, Either, ParseResult, Schema } from "effect"
import type { ApprovalRequest } from "../../domain/Approval.js"
import { StorageError } from "../../domain/Errors.js"
import { type CallDecision, type CallTarget, decide, type Decided, type PendingApproval } from "../../domain/PendingApproval.js"
import { ToolStatus } from "../../domain/ToolCall.js"
import { newApproval, type PendingApprovalsService, waitsIn } from "../approvals/PendingApprovals.js"
import { storageErrorOf } from "./Database.js"
import { originColumns, originOfRow, rowOfOrigin } from "./OriginColumns.js"

const Calls = Schema.parseJson(Schema.Array(Schema.Struct({
  name: Schema.String,
  arguments: Schema.String,
  toolCallId: Schema.String
})))

const Answered = Schema.parseJson(Schema.Array(Schema.Union(
  Schema.Struct({
    _tag: Schema.Literal("ToolReturn"),
    toolCallId: Schema.String,
    result: Schema.Struct({ status: ToolStatus, toolReturn: Schema.String })
  }),
  Schema.Struct({ _tag: Schema.Literal("Decision"), toolCallId: Schema.String, approve: Schema.Boolean, reason: Schema.String })
)))

/** Tool names; a row stored before migration 9 has the column's default, `[]`. */
const ActionsBefore = Schema.parseJson(Schema.Array(Schema.String))

const Decisions = Schema.parseJson(Schema.Array(Schema.NullOr(Schema.Struct({
  approve: Schema.Boolean,
  reason: Schema.String,
  decidedBy: Schema.NullOr(Schema.String),
  at: Schema.Number
}))))

const ApprovalRow = Schema.Struct({
  id: Schema.Number,
  ...originColumns,
  calls: Calls,
  answered: Answered,
  actions_before: ActionsBefore,
  decisions: Decisions,
  approval_message_id: Schema.NullOr(Schema.String),
  requested_at: Schema.Number,
  deadline: Schema.Number
})

const decodeRow = Schema.decodeUnknownEither(ApprovalRow)
const encodeDecisions = Schema.encodeSync(Decisions)

/** The record and the decisions column exactly as read (the compare-and-set's expected value). */
const recordOf = (row: unknown): Either.Either<{ readonly approval: PendingApproval; readonly raw: string }, string> =>
  Either.map(
    Either.mapLeft(decodeRow(row), (error) => ParseResult.TreeFormatter.formatErrorSync(error)),
    (decoded) => ({
      raw: String(Reflect.get(row as object, "decisions")),
      approval: {
        id: decoded.id,
        origin: originOfRow(decoded),
        calls: decoded.calls,
        answered: decoded.answered,
        actionsBefore: decoded.actions_before,
        decisions: decoded.decisions,
        messageId: decoded.approval_message_id,
        requestedAt: decoded.requested_at,
        deadline: decoded.deadline
      }
    })
  )

/** A lost compare-and-set is retried this often before it is reported (it takes a storm of clicks on one message). */
const maxAttempts = 20

export const makeSqlPendingApprovals: Effect.Effect<PendingApprovalsService, never, SqlClient.SqlClient> = Effect.gen(
  function*() {
    const sql = yield* SqlClient.SqlClient

    /** A row that does not decode is a storage failure: an approval that cannot be read is not decided. */
    const decoded = (operation: string, rows: ReadonlyArray<unknown>) =>
      Effect.forEach(rows, (row) =>
        Either.match(recordOf(row), {
          onLeft: (problem) => Effect.fail(new StorageError({ operation, reason: `unreadable approval row: ${problem}` })),
          onRight: Effect.succeed
        }))

    const read = (operation: string, id: number) =>
      sql`SELECT * FROM approvals WHERE id = ${id}`.pipe(
        Effect.mapError(storageErrorOf(operation)),
        Effect.flatMap((rows) => decoded(operation, rows)),
        Effect.map((records) => records[0] ?? null)
      )

    const all = sql`SELECT * FROM approvals ORDER BY id`.pipe(
      Effect.mapError(storageErrorOf("PendingApprovals.all")),
      Effect.flatMap((rows) => decoded("PendingApprovals.all", rows)),
      Effect.map((records) => records.map((record) => record.approval))
    )

    const create = (request: ApprovalRequest, deadline: number) => {
      const draft = newApproval(0, request, deadline)
      return sql<{ readonly id: number }>`INSERT INTO approvals ${
        sql.insert({
          ...rowOfOrigin(draft.origin),
          calls: Schema.encodeSync(Calls)(draft.calls),
          answered: Schema.encodeSync(Answered)(draft.answered),
          actions_before: Schema.encodeSync(ActionsBefore)(draft.actionsBefore),
          decisions: encodeDecisions(draft.decisions),
          requested_at: draft.requestedAt,
          deadline
        })
      } RETURNING id`.pipe(
        Effect.mapError(storageErrorOf("PendingApprovals.create")),
        Effect.flatMap(([row]) =>
          row === undefined
            ? Effect.fail(new StorageError({ operation: "PendingApprovals.create", reason: "no id returned" }))
            : Effect.succeed({ ...draft, id: row.id })
        )
      )
    }

    const decideOnce = (id: number, target: CallTarget, decision: CallDecision, attempt: number): Effect.Effect<
      Decided,
      StorageError
    > =>
      Effect.gen(function*() {
        const found = yield* read("PendingApprovals.decide", id)
        if (found === null) return { _tag: "Unknown" } satisfies Decided
        const decided = decide(found.approval, target, decision)
        if (decided._tag !== "Decided") return decided
        // Any other fiber may decide between this read and the write (the scheduler may switch
        // here anyway); yielding makes that race as likely in tests as it is possible in production.
        yield* Effect.yieldNow()
        const written = yield* sql<{ readonly id: number }>`UPDATE approvals
          SET decisions = ${encodeDecisions(decided.approval.decisions)}
          WHERE id = ${id} AND decisions = ${found.raw} RETURNING id`.pipe(
          Effect.mapError(storageErrorOf("PendingApprovals.decide"))
        )
        if (written.length > 0) return decided
        if (attempt >= maxAttempts) {
          return yield* new StorageError({ operation: "PendingApprovals.decide", reason: "the approval kept changing" })
        }
        return yield* decideOnce(id, target, decision, attempt + 1)
      })

    return {
      create,
      setMessage: (id, messageId) =>
        sql<{ readonly id: number }>`UPDATE approvals SET approval_message_id = ${messageId} WHERE id = ${id} RETURNING id`
          .pipe(
            Effect.map((rows) => rows.length > 0),
            Effect.mapError(storageErrorOf("PendingApprovals.setMessage"))
          ),
      decide: (id, target, decision) => decideOnce(id, target, decision, 1),
      remove: (id) =>
        sql`DELETE FROM approvals WHERE id = ${id}`.pipe(
          Effect.asVoid,
          Effect.mapError(storageErrorOf("PendingApprovals.remove"))
        ),
      get: (id) => Effect.map(read("PendingApprovals.get", id), (found) => found?.approval ?? null),
      all,
      pendingFor: (agentId, conversationId) =>
        sql`SELECT * FROM approvals WHERE agent_id = ${agentId}`.pipe(
          Effect.mapError(storageErrorOf("PendingApprovals.pendingFor")),
          Effect.flatMap((rows) => decoded("PendingApprovals.pendingFor", rows)),
          Effect.map((records) => records.some((record) => waitsIn(record.approval, agentId, conversationId)))
        )
    }
  }
)
