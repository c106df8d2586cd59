/**
 * The open stops (OpenStops): one shared test run against the memory store and the SQL store
 * (open, re-open replaces, close, oldest first, pendingFor per agent and conversation, the default
 * conversation as null, the actions before the stop kept), the SQL store across a restart on the
 * same database, and a row stored before 10_open_stop_actions read as no action before.
 */
import { Migrator, SqlClient } from "@effect/sql"
import { SqliteClient } from "@effect/sql-sqlite-node"
import { describe, expect, it } from "@effect/vitest"
import { Effect, Layer } from "effect"
import * as path from "node:path"
import { makeMemoryOpenStops, type OpenStop, OpenStops, type OpenStopsService } from "../../../src/services/queue/OpenStops.js"
import { Database, databaseFileName } from "../../../src/services/storage/Database.js"
import { migrationSteps } from "../../../src/services/storage/migrations.js"
import { makeTempDir } from "../../fakes/tempDir.js"

const tempDir = makeTempDir("open-stops")

const stop = (key: string, openedAt: number, conversationId: string | null, agentId = "a1"): OpenStop => ({
  key,
  origin: {
    guildId: conversationId === null ? null : "g1",
    channelId: "c1",
    messageId: `m-${key}`,
    agentId,
    conversationId,
    runId: null
  },
  calls: [
    { name: "discord_send", arguments: "{\"message\":\"hi\"}", toolCallId: key, aurora: true },
    { name: "web_search", arguments: "{}", toolCallId: `${key}-w`, aurora: false }
  ],
  // A stop in a conversation follows a send of the run (any shape will do, as long as it is kept).
  actionsBefore: conversationId === null ? [] : ["discord_send", "discord_add_reaction"],
  openedAt
})

/** The same semantics, whatever backs the store. */
const shared = (stops: OpenStopsService) =>
  Effect.gen(function*() {
    expect(yield* stops.all).toEqual([])
    expect(yield* stops.pendingFor("a1", null)).toBe(false)
    yield* stops.open(stop("s2", 2_000, "conv-1"))
    yield* stops.open(stop("s1", 1_000, null))
    yield* stops.open(stop("s3", 2_000, "conv-2", "a2"))
    // Oldest first, then by record order.
    expect((yield* stops.all).map((s) => s.key)).toEqual(["s1", "s2", "s3"])
    expect((yield* stops.all)[0]).toEqual(stop("s1", 1_000, null))
    expect((yield* stops.all)[1]?.actionsBefore).toEqual(["discord_send", "discord_add_reaction"])
    expect(yield* stops.pendingFor("a1", null)).toBe(true)
    expect(yield* stops.pendingFor("a1", "conv-1")).toBe(true)
    expect(yield* stops.pendingFor("a1", "conv-2")).toBe(false)
    expect(yield* stops.pendingFor("a2", null)).toBe(false)
    // Re-opening a key replaces its record (and its record order).
    yield* stops.open(stop("s2", 2_000, "conv-9"))
    expect((yield* stops.all).map((s) => s.key)).toEqual(["s1", "s3", "s2"])
    expect(yield* stops.pendingFor("a1", "conv-1")).toBe(false)
    expect(yield* stops.pendingFor("a1", "conv-9")).toBe(true)
    yield* stops.close("s1")
    yield* stops.close("unknown")
    expect((yield* stops.all).map((s) => s.key)).toEqual(["s3", "s2"])
    expect(yield* stops.pendingFor("a1", null)).toBe(false)
  })

describe("OpenStops", () => {
  it.effect("memory store", () => Effect.flatMap(makeMemoryOpenStops, shared))

  it.scoped("SQL store: the same semantics, and the records survive a restart", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir
      const session = <A, E>(use: Effect.Effect<A, E, OpenStops>) =>
        use.pipe(Effect.provide(OpenStops.layerSql.pipe(Layer.provide(Database.layer(dir)))))
      yield* session(Effect.flatMap(OpenStops, shared))
      const after = yield* session(Effect.flatMap(OpenStops, (stops) => stops.all))
      expect(after).toEqual([stop("s3", 2_000, "conv-2", "a2"), stop("s2", 2_000, "conv-9")])
    }))
})

describe("migration 10_open_stop_actions", () => {
  it.scoped("upgrades a database of the version before: a stop stored then reads as no action before it", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir
      const before = Object.fromEntries(Object.entries(migrationSteps).filter(([id]) => parseInt(id, 10) < 10))
      const applied = yield* Effect.gen(function*() {
        const sql = yield* SqlClient.SqlClient
        const ids = yield* Migrator.make({})({ loader: Migrator.fromRecord(before) })
        yield* sql`INSERT INTO open_stops
          (stop_key, guild_id, channel_id, message_id, agent_id, conversation_id, run_id, calls, opened_at)
          VALUES ('k1', 'g1', 'c1', 'm1', 'a1', 'conv-1', 'run-1',
            '[{"name":"discord_read_messages","arguments":"{}","toolCallId":"k1","aurora":true}]', 1000)`
        return ids.map(([id]) => id)
      }).pipe(Effect.provide(SqliteClient.layer({ filename: path.join(dir, databaseFileName) })))
      expect(applied).toContain(8)
      expect(applied).not.toContain(10)
      const stored = yield* Effect.flatMap(OpenStops, (stops) => stops.all).pipe(
        Effect.provide(OpenStops.layerSql.pipe(Layer.provide(Database.layer(dir))))
      )
      expect(stored).toMatchObject([{ key: "k1", origin: { messageId: "m1" }, actionsBefore: [] }])
    }))
})
