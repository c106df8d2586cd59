/**
 * The SQL conversation store (see test/services/conversation for the semantics both stores
 * share): pruning to the newest N per agent, persistence across a restart, the cache (reads
 * served from memory, coherent after forget, pruning and racing writes) and its failures.
 */
import { SqlClient } from "@effect/sql"
import { describe, expect, it } from "@effect/vitest"
import { Effect, Option } from "effect"
import { StorageError } from "../../../src/domain/Errors.js"
import {
  ConversationStore,
  maxConversationsPerAgent,
  touchResolutionMs
} from "../../../src/services/conversation/ConversationStore.js"
import { makeSqlConversationStore } from "../../../src/services/storage/SqlConversationStore.js"
import { makeTempDir } from "../../fakes/tempDir.js"
import { database, key, session } from "../conversation/harness.js"

const tempDir = makeTempDir("conversations")

const rowCount = Effect.flatMap(
  SqlClient.SqlClient,
  (sql) => sql<{ readonly n: number }>`SELECT count(*) AS n FROM conversations`
).pipe(Effect.map((rows) => rows[0]?.n ?? -1))

describe("SqlConversationStore", () => {
  it.scoped(`put prunes the agent's mappings to the newest ${maxConversationsPerAgent} by last use; other agents keep theirs`, () =>
    Effect.gen(function*() {
      const dir = yield* tempDir
      const result = yield* session(
        dir,
        Effect.gen(function*() {
          const store = yield* ConversationStore
          const sql = yield* SqlClient.SqlClient
          yield* store.put(key("other", "agent-2"), "conv-other", 0)
          // In one transaction to keep the test quick; the 1001st goes through `put` alone.
          yield* sql.withTransaction(Effect.forEach(
            Array.from({ length: maxConversationsPerAgent }, (_, i) => i),
            (i) => store.put(key(`c${i}`, "agent-1", i % 2 === 0 ? "guild:g1" : "dm"), `conv-${i}`, 1_000 + i),
            { discard: true }
          ))
          const full = yield* rowCount
          // The oldest is used again: it is no longer the one pruned.
          yield* store.touch(key("c0"), 1_000 + maxConversationsPerAgent + touchResolutionMs)
          yield* store.put(key("newest", "agent-1", "dm"), "conv-newest", 2_000_000)
          return {
            full,
            after: yield* rowCount,
            oldest: yield* store.get(key("c0")),
            pruned: yield* store.get(key("c1", "agent-1", "dm")),
            secondOldest: yield* store.get(key("c2")),
            newest: yield* store.get(key("newest", "agent-1", "dm")),
            other: yield* store.get(key("other", "agent-2")),
            g1: yield* store.forAgent("agent-1", "guild:g1", 1),
            dm: yield* store.forAgent("agent-1", "dm", 2)
          }
        })
      )
      expect(result.full).toBe(maxConversationsPerAgent + 1)
      expect(result.after).toBe(maxConversationsPerAgent + 1)
      expect(Option.isSome(result.oldest)).toBe(true)
      expect(result.pruned).toEqual(Option.none())
      expect(Option.isSome(result.secondOldest)).toBe(true)
      expect(result.newest).toEqual(Option.some({ conversationId: "conv-newest", createdAt: 2_000_000, lastUsedAt: 2_000_000 }))
      expect(result.other).toEqual(Option.some({ conversationId: "conv-other", createdAt: 0, lastUsedAt: 0 }))
      expect(result.g1.total).toBe(maxConversationsPerAgent / 2)
      expect(result.g1.newest.map((c) => c.channelId)).toEqual(["c0"])
      expect(result.dm.total).toBe(maxConversationsPerAgent / 2) // c1 went, "newest" came
      expect(result.dm.newest.map((c) => c.channelId)).toEqual(["newest", `c${maxConversationsPerAgent - 1}`])
    }))

  it.scoped("mappings and their times survive closing and reopening the database file", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir
      yield* session(
        dir,
        Effect.gen(function*() {
          const store = yield* ConversationStore
          yield* store.put(key("c1"), "conv-1", 1_000)
          yield* store.put(key("c2"), "conv-2", 2_000)
          yield* store.put(key("c1", "agent-1", "dm"), "conv-dm", 3_000)
          yield* store.touch(key("c1"), 1_000 + touchResolutionMs)
          yield* store.put(key("c2"), "conv-2b", 4_000) // replaces: created anew
          expect(yield* store.forget(key("c1", "agent-1", "dm"))).toBe(true)
        })
      )
      const reopened = yield* session(
        dir,
        Effect.gen(function*() {
          const store = yield* ConversationStore
          return {
            c1: yield* store.get(key("c1")),
            c2: yield* store.get(key("c2")),
            dm: yield* store.get(key("c1", "agent-1", "dm")),
            page: yield* store.forAgent("agent-1", "guild:g1", 10)
          }
        })
      )
      expect(reopened.c1).toEqual(Option.some({ conversationId: "conv-1", createdAt: 1_000, lastUsedAt: 61_000 }))
      expect(reopened.c2).toEqual(Option.some({ conversationId: "conv-2b", createdAt: 4_000, lastUsedAt: 4_000 }))
      expect(reopened.dm).toEqual(Option.none())
      expect(reopened.page).toEqual({
        total: 2,
        newest: [
          { channelId: "c1", conversationId: "conv-1", createdAt: 1_000, lastUsedAt: 61_000 },
          { channelId: "c2", conversationId: "conv-2b", createdAt: 4_000, lastUsedAt: 4_000 }
        ]
      })
    }))

  it.scoped("reads come from memory after the first; forget and pruning keep the cache and the table agreeing", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir
      const result = yield* database(
        dir,
        Effect.gen(function*() {
          const sql = yield* SqlClient.SqlClient
          const store = yield* makeSqlConversationStore(2)
          yield* store.put(key("c1"), "conv-1", 1_000)
          yield* store.put(key("c2"), "conv-2", 2_000)
          const warm = yield* store.get(key("c1"))
          // Behind the store's back: a read from the table would now find nothing.
          yield* sql`UPDATE conversations SET conversation_id = 'changed-behind' WHERE channel_id = 'c1'`
          const fromMemory = yield* store.get(key("c1"))
          const forgotten = yield* store.forget(key("c1"))
          const afterForget = yield* store.get(key("c1"))
          const again = yield* store.forget(key("c1"))
          yield* store.put(key("c1"), "conv-1b", 3_000)
          const replaced = yield* store.get(key("c1"))
          // A third mapping prunes the least recently used (c2), which was cached.
          yield* store.put(key("c3"), "conv-3", 4_000)
          const pruned = yield* store.get(key("c2"))
          const cold = yield* makeSqlConversationStore(2)
          return {
            warm,
            fromMemory,
            forgotten,
            afterForget,
            again,
            replaced,
            pruned,
            coldC1: yield* cold.get(key("c1")),
            coldC2: yield* cold.get(key("c2")),
            rows: yield* rowCount
          }
        })
      )
      expect(result.warm).toEqual(Option.some({ conversationId: "conv-1", createdAt: 1_000, lastUsedAt: 1_000 }))
      expect(result.fromMemory).toEqual(result.warm)
      expect(result.forgotten).toBe(true)
      expect(result.afterForget).toEqual(Option.none())
      expect(result.again).toBe(false)
      expect(result.replaced).toEqual(Option.some({ conversationId: "conv-1b", createdAt: 3_000, lastUsedAt: 3_000 }))
      expect(result.pruned).toEqual(Option.none())
      expect(result.coldC1).toEqual(result.replaced)
      expect(result.coldC2).toEqual(Option.none())
      expect(result.rows).toBe(2)
    }))

  it.scoped("concurrent reads and writes of one key leave the cache and the table agreeing", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir
      const result = yield* database(
        dir,
        Effect.gen(function*() {
          const store = yield* makeSqlConversationStore()
          const k = key("c1")
          yield* Effect.all(
            Array.from({ length: 60 }, (_, i) =>
              i % 3 === 0 ? store.put(k, `conv-${i}`, i) : i % 3 === 1 ? store.forget(k) : store.get(k)),
            { concurrency: "unbounded", discard: true }
          )
          return { cached: yield* store.get(k), table: yield* (yield* makeSqlConversationStore()).get(k) }
        })
      )
      expect(result.cached).toEqual(result.table)
    }))

  it.scoped("a failing statement is a StorageError naming the operation; a damaged row reads as no mapping", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir
      const result = yield* session(
        dir,
        Effect.gen(function*() {
          const store = yield* ConversationStore
          const sql = yield* SqlClient.SqlClient
          yield* sql`INSERT INTO conversations VALUES ('agent-1', 'guild:g1', 'bad', 'conv-bad', 'yesterday', 0)`
          const damaged = yield* store.get(key("bad"))
          yield* sql`DROP TABLE conversations`
          const failures = yield* Effect.all([
            Effect.flip(store.get(key("c1"))),
            Effect.flip(store.put(key("c1"), "conv-1", 0)),
            Effect.flip(store.forget(key("c1"))),
            Effect.flip(store.forAgent("agent-1", "guild:g1", 5))
          ])
          return { damaged, failures }
        })
      )
      expect(result.damaged).toEqual(Option.none())
      expect(result.failures.map((error) => error.operation)).toEqual([
        "ConversationStore.get",
        "ConversationStore.put",
        "ConversationStore.forget",
        "ConversationStore.forAgent"
      ])
      for (const error of result.failures) {
        expect(error).toBeInstanceOf(StorageError)
        expect(error.reason).toContain("no such table: conversations")
      }
    }))
})
