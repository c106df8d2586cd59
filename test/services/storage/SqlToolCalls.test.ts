/**
 * The tool call record (ToolCalls): the SQL store against the memory model over a long mixed
 * sequence with restarts, the at-most-once rule of `executeOnce` across a failure injected between
 * the record and the side effect (and between the side effect and the result), the bounds, and
 * migration 5 on a database of the previous version.
 */
import { Migrator, SqlClient } from "@effect/sql"
import { SqliteClient } from "@effect/sql-sqlite-node"
import { describe, expect, it } from "@effect/vitest"
import { Effect, Exit, Layer, Ref } from "effect"
import * as path from "node:path"
import { StorageError } from "../../../src/domain/Errors.js"
import { Partition } from "../../../src/domain/Event.js"
import {
  interruptedResult,
  maxStoredReturnLength,
  type ToolCallStart,
  ToolResult,
  unrecordedResult
} from "../../../src/domain/ToolCall.js"
import { executeOnce, makeMemoryToolCalls, ToolCalls, type ToolCallsService } from "../../../src/services/queue/ToolCalls.js"
import { Database, databaseFileName } from "../../../src/services/storage/Database.js"
import { migrationSteps, requiredTables } from "../../../src/services/storage/migrations.js"
import { makeSqlToolCalls } from "../../../src/services/storage/SqlToolCalls.js"
import { seededInts } from "../../fakes/seededInts.js"
import { makeTempDir } from "../../fakes/tempDir.js"

/** Every migration's id, in order: an upgraded or fresh database has applied them all. */
const everyMigrationId = Object.keys(migrationSteps).map((id) => parseInt(id, 10))

const tempDir = makeTempDir("tool-calls")

/** One "run of the bot" on the database in `dir`, with the SQL tool call record. */
const session = <A, E>(dir: string, use: Effect.Effect<A, E, ToolCalls | SqlClient.SqlClient>) =>
  use.pipe(Effect.provide(ToolCalls.layerSql.pipe(Layer.provideMerge(Database.layer(dir)))))

const database = <A, E>(dir: string, use: Effect.Effect<A, E, SqlClient.SqlClient>) =>
  use.pipe(Effect.provide(Database.layer(dir)))

const start = (toolCallId: string, at: number, guildId: string | null = "g1", tool = "discord_send"): ToolCallStart => ({
  toolCallId,
  tool,
  partition: guildId === null ? Partition.dm : Partition.guild(guildId),
  channelId: "c1",
  messageId: "m1",
  at
})

const now = Effect.succeed(5_000)

/** A side effect that counts: the "send" of a test. */
const counter = Effect.map(Ref.make(0), (count) => ({
  count: Ref.get(count),
  send: Effect.as(Ref.update(count, (n) => n + 1), ToolResult.success("sent message 42"))
}))

describe("ToolCalls: executeOnce runs a call id at most once", () => {
  it.scoped("a finished call is replayed, never executed again, after a restart too", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir
      const { count, send } = yield* counter
      const first = yield* session(
        dir,
        Effect.flatMap(ToolCalls, (calls) => executeOnce(calls, start("call-1", 1_000), send, now))
      )
      expect(first).toEqual({ result: ToolResult.success("sent message 42"), execution: "executed" })
      const again = yield* session(
        dir,
        Effect.flatMap(ToolCalls, (calls) => executeOnce(calls, start("call-1", 2_000), send, now))
      )
      expect(again).toEqual({ result: ToolResult.success("sent message 42"), execution: "replayed" })
      expect(yield* count).toBe(1)
      const record = yield* session(dir, Effect.flatMap(ToolCalls, (calls) => calls.find("call-1")))
      expect(record).toEqual({
        toolCallId: "call-1",
        tool: "discord_send",
        partitionKey: "guild:g1",
        channelId: "c1",
        messageId: "m1",
        startedAt: 1_000,
        finished: { at: 5_000, result: ToolResult.success("sent message 42") }
      })
    }))

  it.scoped("a failure between the record and the send: the retry after a restart does not send, it answers interrupted", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir
      const { count, send } = yield* counter
      // The process dies right after the start was committed, before the send.
      const crashed = yield* session(
        dir,
        Effect.flatMap(ToolCalls, (calls) => executeOnce(calls, start("call-1", 1_000), Effect.dieMessage("killed"), now))
      ).pipe(Effect.exit)
      expect(Exit.isFailure(crashed)).toBe(true)
      const retry = yield* session(
        dir,
        Effect.flatMap(ToolCalls, (calls) => executeOnce(calls, start("call-1", 2_000), send, now))
      )
      expect(retry).toEqual({ result: interruptedResult, execution: "interrupted" })
      expect(retry.result.status).toBe("error")
      expect(yield* count).toBe(0)
      // The answer is recorded: every later replay says the same, and never sends.
      const later = yield* session(
        dir,
        Effect.flatMap(ToolCalls, (calls) => executeOnce(calls, start("call-1", 3_000), send, now))
      )
      expect(later).toEqual({ result: interruptedResult, execution: "replayed" })
      expect(yield* count).toBe(0)
    }))

  it.scoped("a failure between the send and its result: the retry after a restart does not send twice", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir
      const { count, send } = yield* counter
      const crashed = yield* session(
        dir,
        Effect.flatMap(
          ToolCalls,
          (calls) => executeOnce(calls, start("call-1", 1_000), Effect.zipRight(send, Effect.interrupt), now)
        )
      ).pipe(Effect.exit)
      expect(Exit.isInterrupted(crashed)).toBe(true)
      expect(yield* count).toBe(1)
      const retry = yield* session(
        dir,
        Effect.flatMap(ToolCalls, (calls) => executeOnce(calls, start("call-1", 2_000), send, now))
      )
      expect(retry.execution).toBe("interrupted")
      expect(yield* count).toBe(1)
    }))

  it.effect("storage failures: a begin that cannot be written runs nothing; a finish that cannot is logged, the result kept", () =>
    Effect.gen(function*() {
      const { count, send } = yield* counter
      const memory = yield* makeMemoryToolCalls()
      const broken = new StorageError({ operation: "ToolCalls.begin", reason: "disk full" })
      const noBegin: ToolCallsService = { ...memory, begin: () => Effect.fail(broken) }
      expect(yield* executeOnce(noBegin, start("call-1", 1), send, now)).toEqual({
        result: unrecordedResult,
        execution: "unrecorded"
      })
      expect(yield* count).toBe(0)
      const noFinish: ToolCallsService = { ...memory, finish: () => Effect.fail(broken) }
      expect(yield* executeOnce(noFinish, start("call-2", 1), send, now)).toEqual({
        result: ToolResult.success("sent message 42"),
        execution: "executed"
      })
      expect(yield* count).toBe(1)
      // Its result is unknown to the record: a replay would answer interrupted, never send again.
      expect((yield* executeOnce(memory, start("call-2", 2), send, now)).execution).toBe("interrupted")
      expect(yield* count).toBe(1)
    }))
})

describe("ToolCalls (memory and SQL alike)", () => {
  it.scoped("the SQL store behaves as the memory store over a mixed sequence with restarts, bounds included", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir
      const bound = 6
      const retention = 60_000
      const next = seededInts(20261204)
      const partitions: ReadonlyArray<string | null> = ["g1", "g2", null]
      type Step = { readonly kind: "reopen" } | {
        readonly kind: "op"
        readonly run: (s: ToolCallsService) => Effect.Effect<unknown, StorageError>
      }
      const steps: Array<Step> = []
      let now = 0
      const begun: Array<string> = []
      for (let i = 0; i < 600; i++) {
        // 0 to 6 s a step: same-millisecond ties, and calls aging past the retention.
        now += next(4) * 2_000
        const at = now
        const id = `call-${next(30)}`
        // Results mostly for calls begun lately (as a run finishes what it started), some for any id.
        const recentId = next(4) === 0 ? id : begun[begun.length - 1 - next(Math.min(3, begun.length || 1))] ?? id
        const kind = next(20)
        const result = next(2) === 0 ? ToolResult.success(`ok ${i}`) : ToolResult.error(`failed ${i}`)
        const guild = partitions[next(3)] ?? null
        if (kind === 0) steps.push({ kind: "reopen" })
        else if (kind < 9) {
          begun.push(id)
          const call = start(id, at, guild, `tool-${next(3)}`)
          steps.push({ kind: "op", run: (s) => s.begin(call) })
        } else if (kind < 15) steps.push({ kind: "op", run: (s) => s.finish(recentId, result, at) })
        else if (kind < 17) steps.push({ kind: "op", run: (s) => s.find(id) })
        else {
          const limit = next(4)
          steps.push({ kind: "op", run: (s) => s.recent(guild === null ? "dm" : `guild:${guild}`, limit) })
        }
      }
      const everything = (s: ToolCallsService) => Effect.forEach(["guild:g1", "guild:g2", "dm"], (p) => s.recent(p, 100))
      const run = <R>(fresh: Effect.Effect<ToolCallsService, never, R>) =>
        Effect.gen(function*() {
          let store = yield* fresh
          const answers: Array<unknown> = []
          for (const step of steps) {
            if (step.kind === "reopen") store = yield* fresh
            else answers.push(yield* step.run(store))
          }
          return { answers, final: yield* everything(store) }
        })
      const memory = yield* makeMemoryToolCalls(bound, retention)
      const expected = yield* run(Effect.succeed(memory))
      const actual = yield* database(dir, run(makeSqlToolCalls(bound, retention)))
      // The sequence exercises every answer of begin and both answers of finish.
      const tags = expected.answers.flatMap((a) => (typeof a === "object" && a !== null && "_tag" in a ? [a._tag] : []))
      for (const tag of ["Run", "Finished", "Interrupted"]) expect(tags.filter((t) => t === tag).length).toBeGreaterThan(20)
      expect(expected.answers.filter((a) => a === true).length).toBeGreaterThan(40)
      expect(expected.answers.filter((a) => a === false).length).toBeGreaterThan(40)
      expect(expected.final.every((rows) => rows.length <= bound)).toBe(true)
      expect(actual).toEqual(expected)
    }))

  it.effect("pruning: calls older than the retention go, and each partition keeps its newest; returns are cut when stored", () =>
    Effect.gen(function*() {
      const calls = yield* makeMemoryToolCalls(2, 1_000)
      yield* calls.begin(start("old", 0, "g2"))
      yield* calls.begin(start("a", 10))
      yield* calls.begin(start("b", 20))
      yield* calls.begin(start("c", 30))
      expect((yield* calls.recent("guild:g1", 10)).map((r) => r.toolCallId)).toEqual(["c", "b"])
      expect(yield* calls.find("old")).not.toBeNull()
      yield* calls.begin(start("d", 1_001))
      expect(yield* calls.find("old")).toBeNull()
      expect(yield* calls.finish("d", ToolResult.success("x".repeat(maxStoredReturnLength + 10)), 1_002)).toBe(true)
      expect((yield* calls.find("d"))?.finished?.result.toolReturn.length).toBe(maxStoredReturnLength)
      // A second finish does not replace the first answer.
      expect(yield* calls.finish("d", ToolResult.error("late"), 1_003)).toBe(false)
    }))
})

describe("migration 5_tool_calls", () => {
  it.scoped("upgrades a database of the previous version: the table, its indexes; earlier tables untouched", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir
      const applied = yield* Effect.gen(function*() {
        const sql = yield* SqlClient.SqlClient
        const ids = yield* Migrator.make({})({
          loader: Migrator.fromRecord({
            "1_settings": migrationSteps["1_settings"],
            "2_durable_queue": migrationSteps["2_durable_queue"],
            "3_conversations": migrationSteps["3_conversations"],
            "4_agent_turn": migrationSteps["4_agent_turn"]
          })
        })
        yield* sql`INSERT INTO global_settings (key, value, updated_at) VALUES ('dmAgentId', 'agent-dm', 0)`
        return ids.map(([id]) => id)
      }).pipe(Effect.provide(SqliteClient.layer({ filename: path.join(dir, databaseFileName) })))
      expect(applied).toEqual([1, 2, 3, 4])
      const schema = yield* session(
        dir,
        Effect.gen(function*() {
          const sql = yield* SqlClient.SqlClient
          const calls = yield* ToolCalls
          yield* calls.begin(start("call-1", 1))
          return {
            columns: yield* sql<{ readonly name: string; readonly notnull: number }>`
              SELECT name, "notnull" FROM pragma_table_info('tool_calls')`,
            newest: yield* sql<{ readonly name: string }>`SELECT name FROM pragma_index_info('tool_calls_newest')`,
            started: yield* sql<{ readonly name: string }>`SELECT name FROM pragma_index_info('tool_calls_started')`,
            global: yield* sql<{ readonly value: string }>`SELECT value FROM global_settings WHERE key = 'dmAgentId'`,
            migrations: yield* sql<{ readonly migration_id: number }>`SELECT migration_id FROM effect_sql_migrations`
          }
        })
      )
      expect(schema.columns.map((c) => [c.name, c.notnull])).toEqual([
        ["seq", 0],
        ["tool_call_id", 1],
        ["partition", 1],
        ["channel_id", 1],
        ["message_id", 1],
        ["tool", 1],
        ["started_at", 1],
        ["finished_at", 0],
        ["status", 0],
        ["tool_return", 0]
      ])
      expect(schema.newest.map((c) => c.name)).toEqual(["partition", "started_at", "seq"])
      expect(schema.started.map((c) => c.name)).toEqual(["started_at"])
      expect(schema.global).toEqual([{ value: "agent-dm" }])
      expect(schema.migrations.map((m) => m.migration_id)).toEqual(everyMigrationId)
      expect(requiredTables).toContain("tool_calls")
    }))
})
