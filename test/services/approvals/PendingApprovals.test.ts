/**
 * The pending approvals store: the same scenarios run against the SQL store (SQLite in a temp
 * dir) and the memory store, which must agree; the SQL store across a restart (with the Discord
 * actions the run made before its stop); a click and the deadline racing for the same calls
 * (exactly one decision per call); migration 7, and migration 9 on a database of the version
 * before it (its rows read as nothing sent).
 */
import { Migrator, SqlClient } from "@effect/sql"
import { SqliteClient } from "@effect/sql-sqlite-node"
import { describe, expect, it } from "@effect/vitest"
import { Effect, Layer } from "effect"
import * as path from "node:path"
import { type CallDecision, type Decided } from "../../../src/domain/PendingApproval.js"
import { PendingApprovals, type PendingApprovalsService } from "../../../src/services/approvals/PendingApprovals.js"
import { Database, databaseFileName } from "../../../src/services/storage/Database.js"
import { migrationSteps, requiredTables } from "../../../src/services/storage/migrations.js"
import { makeTempDir } from "../../fakes/tempDir.js"
import { request } from "./fixtures.js"

const tempDir = makeTempDir("approvals-store")

const byAlice = (approve: boolean, at = 2_000): CallDecision => ({
  approve,
  reason: `${approve ? "approved" : "denied"} by alice (111)`,
  decidedBy: "111",
  at
})
const byDeadline: CallDecision = { approve: false, reason: "no decision within 10 minutes", decidedBy: null, at: 9_000 }

const tag = (decided: Decided) => decided._tag

/** One scenario, run on a store: everything it observed, for comparing the two stores. */
const scenario = (store: PendingApprovalsService) =>
  Effect.gen(function*() {
    const first = yield* store.create(request(), 601_000)
    const second = yield* store.create(
      request({ conversationId: null, calls: [request().calls[0]!], actionsBefore: [] }),
      700_000
    )
    const observed: Array<unknown> = [first, second]
    observed.push(yield* store.setMessage(first.id, "approval-msg-1"), yield* store.setMessage(999, "x"))
    observed.push(yield* store.pendingFor("agent-1", "conv-1"), yield* store.pendingFor("agent-1", null))
    observed.push(yield* store.pendingFor("agent-2", "conv-1"))
    observed.push(tag(yield* store.decide(first.id, 0, byAlice(true))))
    observed.push(tag(yield* store.decide(first.id, 0, byAlice(false))))
    observed.push(yield* store.decide(first.id, "all", byDeadline))
    observed.push(tag(yield* store.decide(first.id, "all", byDeadline)))
    observed.push(tag(yield* store.decide(12345, 0, byAlice(true))))
    observed.push(yield* store.pendingFor("agent-1", "conv-1"))
    observed.push(yield* store.get(first.id))
    yield* store.remove(first.id)
    observed.push(yield* store.get(first.id), yield* store.all)
    const third = yield* store.create(request(), 800_000)
    // Ids are never reused, even after the newest was removed.
    observed.push(third.id > second.id)
    return observed
  })

const sqlLayer = (dir: string) => PendingApprovals.layerSql.pipe(Layer.provideMerge(Database.layer(dir)))

describe("PendingApprovals: the SQL store and the memory store agree", () => {
  it.scoped("the same scenario gives the same observations", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir
      const sql = yield* Effect.flatMap(PendingApprovals, scenario).pipe(Effect.provide(sqlLayer(dir)))
      const memory = yield* Effect.flatMap(PendingApprovals, scenario).pipe(Effect.provide(PendingApprovals.layerMemory))
      expect(sql).toEqual(memory)
      // And what they observed is right.
      const [first, , setKnown, setUnknown, pendingConv, pendingDefault, pendingOther, d1, d2, expired, d4, d5, after] = sql
      expect(first).toMatchObject({ id: 1, decisions: [null, null], messageId: null, deadline: 601_000 })
      expect([first, sql[1]]).toMatchObject([{ actionsBefore: ["discord_send"] }, { actionsBefore: [] }])
      expect([setKnown, setUnknown, pendingConv, pendingDefault, pendingOther]).toEqual([true, false, true, true, false])
      expect([d1, d2, d4, d5]).toEqual(["Decided", "AlreadyDecided", "AlreadyDecided", "Unknown"])
      // "all" decided only the call still open.
      expect(expired).toMatchObject({ _tag: "Decided", decidedCalls: [1] })
      expect(after).toBe(false)
      expect(sql[13]).toMatchObject({ messageId: "approval-msg-1", decisions: [byAlice(true), byDeadline] })
      expect(sql[14]).toBeNull()
    }))

  it.scoped("the SQL store keeps everything across a restart", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir
      const created = yield* Effect.gen(function*() {
        const store = yield* PendingApprovals
        const approval = yield* store.create(request({ guildId: null }), 601_000)
        yield* store.setMessage(approval.id, "approval-msg")
        yield* store.decide(approval.id, 1, byAlice(false))
        return approval
      }).pipe(Effect.provide(sqlLayer(dir)))
      const reread = yield* Effect.flatMap(PendingApprovals, (store) => store.all).pipe(Effect.provide(sqlLayer(dir)))
      expect(reread).toEqual([{ ...created, messageId: "approval-msg", decisions: [null, byAlice(false)] }])
      expect(reread[0]?.answered).toEqual(request().answered)
      expect(reread[0]?.actionsBefore).toEqual(["discord_send"])
      expect(reread[0]?.origin.guildId).toBeNull()
    }))

  it.scoped("a click and the deadline racing: each call is decided exactly once", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir
      for (const layer of [sqlLayer(dir), PendingApprovals.layerMemory]) {
        const results = yield* Effect.gen(function*() {
          const store = yield* PendingApprovals
          const approval = yield* store.create(request(), 601_000)
          const raced = yield* Effect.all(
            [store.decide(approval.id, 0, byAlice(true)), store.decide(approval.id, "all", byDeadline)],
            { concurrency: "unbounded" }
          )
          return { raced, final: yield* store.get(approval.id) }
        }).pipe(Effect.provide(layer))
        const decidedCalls = results.raced.flatMap((r) => (r._tag === "Decided" ? r.decidedCalls : []))
        // Every call decided by one of the two, none by both.
        expect([...decidedCalls].sort()).toEqual([0, 1])
        expect(results.final?.decisions.every((d) => d !== null)).toBe(true)
      }
    }))
})

describe("migration 7_approvals", () => {
  it.scoped("creates the approvals table, listed as required", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir
      const columns = yield* Effect.flatMap(SqlClient.SqlClient, (sql) =>
        sql<{ readonly name: string }>`SELECT name FROM pragma_table_info('approvals')`).pipe(
          Effect.provide(Database.layer(dir))
        )
      expect(columns.map((c) =>
        c.name
      )).toEqual([
        "id",
        "guild_id",
        "channel_id",
        "message_id",
        "agent_id",
        "conversation_id",
        "run_id",
        "calls",
        "answered",
        "decisions",
        "approval_message_id",
        "requested_at",
        "deadline",
        "actions_before"
      ])
      expect(requiredTables).toContain("approvals")
    }))
})

describe("migration 9_approval_actions", () => {
  it.scoped("upgrades a database of the version before: a pending approval stored then reads as nothing sent", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir
      // The previous version: every migration before 9, and a pending approval as it wrote one.
      const before = Object.fromEntries(Object.entries(migrationSteps).filter(([id]) => parseInt(id, 10) < 9))
      const applied = yield* Effect.gen(function*() {
        const sql = yield* SqlClient.SqlClient
        const ids = yield* Migrator.make({})({ loader: Migrator.fromRecord(before) })
        yield* sql`INSERT INTO approvals
          (guild_id, channel_id, message_id, agent_id, conversation_id, run_id, calls, answered, decisions,
           approval_message_id, requested_at, deadline)
          VALUES ('g1', 'c1', 'm1', 'agent-1', 'conv-1', 'run-1',
            '[{"name":"web_search","arguments":"{}","toolCallId":"call-1"}]', '[]', '[null]', 'approval-msg', 1000, 601000)`
        return ids.map(([id]) => id)
      }).pipe(Effect.provide(SqliteClient.layer({ filename: path.join(dir, databaseFileName) })))
      expect(applied).toContain(7)
      expect(applied).not.toContain(9)
      const stored = yield* Effect.flatMap(PendingApprovals, (store) => store.all).pipe(Effect.provide(sqlLayer(dir)))
      expect(stored).toMatchObject([{
        id: 1,
        origin: { messageId: "m1", conversationId: "conv-1" },
        calls: [{ name: "web_search", toolCallId: "call-1" }],
        answered: [],
        actionsBefore: [],
        decisions: [null],
        messageId: "approval-msg"
      }])
    }))
})
