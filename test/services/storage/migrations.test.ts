/**
 * Migration 3 (conversations): its schema on a fresh database, and its upgrade of a database the
 * previous version (migrations 1 and 2) created and filled: pending events, run progress, dead
 * letters and guild settings are read back by the current stores, and the new ones start empty.
 */
import { Migrator, SqlClient } from "@effect/sql"
import { SqliteClient } from "@effect/sql-sqlite-node"
import { describe, expect, it } from "@effect/vitest"
import { Effect, Layer, Option } from "effect"
import * as path from "node:path"
import { defaultGuildSettings } from "../../../src/domain/Settings.js"
import { ConversationStore } from "../../../src/services/conversation/ConversationStore.js"
import { DeadLetters } from "../../../src/services/queue/DeadLetters.js"
import { EventJournal } from "../../../src/services/queue/EventJournal.js"
import { Database, databaseFileName } from "../../../src/services/storage/Database.js"
import { migrationSteps, requiredTables } from "../../../src/services/storage/migrations.js"
import { SettingsStore } from "../../../src/services/storage/SettingsStore.js"
import { Partition } from "../../../src/domain/Event.js"
import { makeTempDir } from "../../fakes/tempDir.js"

/** Every migration's id, in order: an upgraded or fresh database has applied them all. */
const everyMigrationId = Object.keys(migrationSteps).map((id) => parseInt(id, 10))

const tempDir = makeTempDir("migrations")

const columnsOf = (table: string) =>
  Effect.flatMap(SqlClient.SqlClient, (sql) =>
    sql<{ readonly name: string; readonly notnull: number; readonly pk: number }>`
    SELECT name, "notnull", pk FROM pragma_table_info(${table})`)

/** The current program's stores on the database in `dir` (running any pending migration). */
const current = Layer.mergeAll(SettingsStore.Default, EventJournal.layerSql, DeadLetters.layerSql, ConversationStore.layerSql)
const session = <A, E>(
  dir: string,
  use: Effect.Effect<A, E, SettingsStore | EventJournal | DeadLetters | ConversationStore | SqlClient.SqlClient>
) => use.pipe(Effect.provide(current.pipe(Layer.provideMerge(Database.layer(dir)))))

/** A database as the previous version left it: migrations 1 and 2 only, then its rows, written as it wrote them. */
const previousVersion = (dir: string) =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const applied = yield* Migrator.make({})({
      loader: Migrator.fromRecord({
        "1_settings": migrationSteps["1_settings"],
        "2_durable_queue": migrationSteps["2_durable_queue"]
      })
    })
    const event = (messageId: string) =>
      JSON.stringify({
        messageId,
        guildId: "g1",
        channelId: "c1",
        authorId: "u1",
        agentId: "agent-1",
        trigger: "mention",
        prompt: `prompt of ${messageId}`,
        enqueuedAt: 1_000,
        attempts: 1
      })
    yield* sql`INSERT INTO guild_settings (guild_id, enabled, agent_id, paused, timeout, updated_at)
      VALUES ('g1', 1, 'agent-1', 0, 120, 0)`
    yield* sql`INSERT INTO global_settings (key, value, updated_at) VALUES ('dmAgentId', 'agent-dm', 0)`
    yield* sql`INSERT INTO pending_events (message_id, partition, event) VALUES ('waiting', 'guild:g1', ${event("waiting")})`
    yield* sql`INSERT INTO pending_events (message_id, partition, event, run_started_at, run_id, side_effect)
      VALUES ('running', 'guild:g1', ${event("running")}, 5000, 'run-1', 0)`
    yield* sql`INSERT INTO dead_letters
      (partition, message_id, seq, channel_id, reason, error_type, detail, attempts, enqueued_at, failed_at, event)
      VALUES ('guild:g1', 'dead', 1, 'c1', 'failed', 'AgentNotFound', '404', 3, 1000, 9000, ${event("dead")})`
    return applied.map(([id]) => id)
  }).pipe(Effect.provide(SqliteClient.layer({ filename: path.join(dir, databaseFileName) })))

describe("migration 3_conversations", () => {
  it.scoped("a fresh database has the conversations table, its index and the new nullable columns", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir
      const schema = yield* session(
        dir,
        Effect.gen(function*() {
          const sql = yield* SqlClient.SqlClient
          const indexes = yield* sql<{ readonly name: string }>`
            SELECT name FROM pragma_index_list('conversations') WHERE origin = 'c'`
          const indexed = yield* sql<{ readonly name: string }>`SELECT name FROM pragma_index_info('conversations_newest')`
          return {
            conversations: yield* columnsOf("conversations"),
            pending: yield* columnsOf("pending_events"),
            dead: yield* columnsOf("dead_letters"),
            guild: yield* columnsOf("guild_settings"),
            indexes: indexes.map((row) => row.name),
            indexed: indexed.map((row) => row.name)
          }
        })
      )
      expect(schema.conversations).toEqual([
        { name: "agent_id", notnull: 1, pk: 1 },
        { name: "partition_key", notnull: 1, pk: 2 },
        { name: "channel_id", notnull: 1, pk: 3 },
        { name: "conversation_id", notnull: 1, pk: 0 },
        { name: "created_at", notnull: 1, pk: 0 },
        { name: "last_used_at", notnull: 1, pk: 0 }
      ])
      expect(schema.indexes).toEqual(["conversations_newest"])
      expect(schema.indexed).toEqual(["agent_id", "last_used_at", "partition_key", "channel_id"])
      expect(schema.pending.at(-2)).toEqual({ name: "conversation_id", notnull: 0, pk: 0 })
      expect(schema.dead.at(-1)).toEqual({ name: "conversation_id", notnull: 0, pk: 0 })
      expect(schema.guild.filter((c) => c.name === "conversations" || c.name === "parallel")).toEqual([
        { name: "conversations", notnull: 0, pk: 0 },
        { name: "parallel", notnull: 0, pk: 0 }
      ])
      expect(requiredTables).toContain("conversations")
    }))

  it.scoped("upgrades a database of the previous version: its rows read back, the new stores start empty", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir
      expect(yield* previousVersion(dir)).toEqual([1, 2])
      const upgraded = yield* session(
        dir,
        Effect.gen(function*() {
          const sql = yield* SqlClient.SqlClient
          const settings = yield* SettingsStore
          const conversations = yield* ConversationStore
          const key = { agentId: "agent-1", partitionKey: "guild:g1", channelId: "c1" }
          const before = yield* conversations.get(key)
          yield* conversations.put(key, "conv-1", 10_000)
          const applied = yield* sql<{ readonly migration_id: number }>`
            SELECT migration_id FROM effect_sql_migrations ORDER BY migration_id`
          const openStops = yield* sql<{ readonly n: number }>`SELECT COUNT(*) AS n FROM open_stops`
          return {
            openStops: openStops[0]?.n,
            applied: applied.map((row) => row.migration_id),
            guild: yield* settings.guild("g1"),
            global: yield* settings.global,
            pending: yield* Effect.flatMap(EventJournal, (j) => j.load),
            dead: yield* Effect.flatMap(DeadLetters, (d) => d.list(Partition.guild("g1"))),
            before,
            after: yield* conversations.get(key)
          }
        })
      )
      expect(upgraded.applied).toEqual(everyMigrationId)
      // 8_open_stops: the table exists, empty.
      expect(upgraded.openStops).toBe(0)
      expect(upgraded.guild.settings).toEqual({ ...defaultGuildSettings, timeout: 120 })
      expect(upgraded.guild).toMatchObject({ enabled: true, agentId: "agent-1" })
      expect(upgraded.global).toMatchObject({ dmAgentId: "agent-dm", dmConversations: "channel" })
      expect(upgraded.pending.map((entry) => [entry.event.messageId, entry.run])).toEqual([
        ["waiting", null],
        ["running", { startedAt: 5000, runId: "run-1", sideEffect: false }]
      ])
      // Queued before modes existed: no mode (read as "shared" by the queue and the dispatcher).
      expect(upgraded.pending.every((entry) => entry.event.conversationMode === undefined)).toBe(true)
      expect(upgraded.dead.letters).toHaveLength(1)
      expect(upgraded.dead.letters[0]).toMatchObject({ reason: "failed", attempts: 3, failedAt: 9000 })
      expect(upgraded.dead.letters[0]).not.toHaveProperty("conversationId")
      expect(upgraded.before).toEqual(Option.none())
      expect(upgraded.after).toEqual(Option.some({ conversationId: "conv-1", createdAt: 10_000, lastUsedAt: 10_000 }))

      // And the journal writes the new column on the upgraded table.
      const recorded = yield* session(
        dir,
        Effect.gen(function*() {
          const j = yield* EventJournal
          yield* j.runStarted("waiting", 20_000)
          yield* j.runIdSeen("waiting", "run-2", "conv-2")
          return yield* j.load
        })
      )
      expect(recorded[0]?.run).toEqual({ startedAt: 20_000, runId: "run-2", sideEffect: false, conversationId: "conv-2" })
    }))
})

describe("migration 4_agent_turn", () => {
  it.scoped("adds the three guild settings, the fallback record and the runs table; old guilds read the new defaults", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir
      expect(yield* previousVersion(dir)).toEqual([1, 2])
      const result = yield* session(
        dir,
        Effect.gen(function*() {
          const settings = yield* SettingsStore
          const indexed = yield* Effect.flatMap(
            SqlClient.SqlClient,
            (sql) => sql<{ readonly name: string }>`SELECT name FROM pragma_index_info('runs_newest')`
          )
          return {
            guild: yield* columnsOf("guild_settings"),
            pending: yield* columnsOf("pending_events"),
            runs: yield* columnsOf("runs"),
            indexed: indexed.map((row) => row.name),
            settings: (yield* settings.guild("g1")).settings
          }
        })
      )
      expect(result.guild.filter((c) => ["fallback", "images", "feedback"].includes(c.name))).toEqual([
        { name: "fallback", notnull: 0, pk: 0 },
        { name: "images", notnull: 0, pk: 0 },
        { name: "feedback", notnull: 0, pk: 0 }
      ])
      expect(result.pending.at(-1)).toEqual({ name: "fallback_at", notnull: 0, pk: 0 })
      expect(result.runs.filter((c) => c.pk > 0).map((c) => c.name)).toEqual(["partition", "message_id"])
      expect(result.indexed).toEqual(["partition", "finished_at", "seq"])
      expect(result.settings).toMatchObject({ fallback: "post", images: true, feedback: true, timeout: 120 })
      expect(requiredTables).toContain("runs")
    }))
})

describe("migration 6_tool_settings", () => {
  it.scoped("adds the tools and approvaltimeout columns; old guilds read the defaults (mcp, 10 minutes)", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir
      expect(yield* previousVersion(dir)).toEqual([1, 2])
      const result = yield* session(
        dir,
        Effect.gen(function*() {
          const settings = yield* SettingsStore
          return { guild: yield* columnsOf("guild_settings"), settings: (yield* settings.guild("g1")).settings }
        })
      )
      expect(result.guild.filter((c) => c.name === "tools" || c.name === "approvaltimeout")).toEqual([
        { name: "tools", notnull: 0, pk: 0 },
        { name: "approvaltimeout", notnull: 0, pk: 0 }
      ])
      expect(result.settings).toMatchObject({ tools: "mcp", approvaltimeout: 10, timeout: 120 })
    }))
})
