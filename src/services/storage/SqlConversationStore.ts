/**
 * The durable ConversationStore: the `conversations` table (see migrations.ts), with the memory
 * store's semantics and a read-through cache in front of it.
 *
 * The cache holds, for every key it has, exactly what the table holds: a key is read from the
 * database once (a miss is not cached, so the cache never outgrows the table), every write goes
 * to the database first and then to the cache, and every row a write removes (forget, pruning) is
 * evicted. That is sound because this process owns the database (Database holds its exclusive
 * lock). Filling the cache and writing are serialised by one lock, so a read that started before
 * a write cannot put a stale row back afterwards; a hit and a `touch` that moves nothing take no
 * lock and no statement, which is the dispatcher's path for every event after a channel's first.
 *
 * `put` is one transaction: the mapping is written and the agent's rows beyond its newest
 * `maxConversationsPerAgent` are deleted together, so the table never holds more.
 */
import { SqlClient } from "@effect/sql"
import { Effect, Either, Option, ParseResult, Schema } from "effect"
import {
  type AgentConversations,
  cacheKeyOf,
  type ChannelConversation,
  type ConversationKey,
  type ConversationRecord,
  maxConversationsPerAgent,
  touchMoves
} from "../conversation/ConversationRules.js"
import type { ConversationStoreService } from "../conversation/ConversationStore.js"
import { storageErrorOf } from "./Database.js"

const ConversationRow = Schema.Struct({
  channel_id: Schema.String,
  conversation_id: Schema.String,
  created_at: Schema.Number,
  last_used_at: Schema.Number
})

const decodeRow = Schema.decodeUnknownEither(ConversationRow)

const conversationOf = (row: unknown): Either.Either<ChannelConversation, string> =>
  Either.map(
    Either.mapLeft(decodeRow(row), (error) => ParseResult.TreeFormatter.formatErrorSync(error)),
    (decoded) => ({
      channelId: decoded.channel_id,
      conversationId: decoded.conversation_id,
      createdAt: decoded.created_at,
      lastUsedAt: decoded.last_used_at
    })
  )

/** `maxPerAgent` is a parameter so that tests can reach the bound with a few rows. */
export const makeSqlConversationStore = (
  maxPerAgent: number = maxConversationsPerAgent
): Effect.Effect<ConversationStoreService, never, SqlClient.SqlClient> =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const cache = new Map<string, ConversationRecord>()
    const lock = yield* Effect.makeSemaphore(1)
    const serialised = lock.withPermits(1)
    // A write and its cache update are never separated by an interruption (a timed-out run):
    // a committed row with a stale cache entry would send events to a forgotten conversation.
    const writing = <A, E>(write: Effect.Effect<A, E>) => serialised(Effect.uninterruptible(write))

    /**
     * A row that does not decode (edited by hand) is logged and read as no mapping: the channel
     * then gets a new conversation, whose `put` replaces the row.
     */
    const readable = (rows: ReadonlyArray<unknown>, key: ConversationKey) =>
      Effect.gen(function*() {
        const found: Array<ChannelConversation> = []
        for (const row of rows) {
          const conversation = conversationOf(row)
          if (Either.isRight(conversation)) {
            found.push(conversation.right)
          } else {
            yield* Effect.logError("conversations: a stored mapping cannot be read; it is ignored").pipe(
              Effect.annotateLogs({ agentId: key.agentId, partition: key.partitionKey, problem: conversation.left })
            )
          }
        }
        return found
      })

    const cached = (key: ConversationKey) => Effect.sync(() => Option.fromNullable(cache.get(cacheKeyOf(key))))

    const load = (key: ConversationKey) =>
      Effect.gen(function*() {
        const hit = cache.get(cacheKeyOf(key))
        if (hit !== undefined) return Option.some(hit) // filled while this read waited for the lock
        const rows = yield* sql`
          SELECT channel_id, conversation_id, created_at, last_used_at FROM conversations
          WHERE agent_id = ${key.agentId} AND partition_key = ${key.partitionKey} AND channel_id = ${key.channelId}`.pipe(
          Effect.mapError(storageErrorOf("ConversationStore.get"))
        )
        const [row] = yield* readable(rows, key)
        if (row === undefined) return Option.none()
        const record: ConversationRecord = {
          conversationId: row.conversationId,
          createdAt: row.createdAt,
          lastUsedAt: row.lastUsedAt
        }
        cache.set(cacheKeyOf(key), record)
        return Option.some(record)
      }).pipe(serialised)

    const get = (key: ConversationKey) =>
      Effect.flatMap(cached(key), (hit) => (Option.isSome(hit) ? Effect.succeed(hit) : load(key)))

    const put = (key: ConversationKey, conversationId: string, now: number) =>
      Effect.gen(function*() {
        const pruned = yield* sql.withTransaction(Effect.gen(function*() {
          yield* sql`INSERT OR REPLACE INTO conversations
            (agent_id, partition_key, channel_id, conversation_id, created_at, last_used_at)
            VALUES (${key.agentId}, ${key.partitionKey}, ${key.channelId}, ${conversationId}, ${now}, ${now})`
          return yield* sql<{ readonly partition_key: string; readonly channel_id: string }>`
            DELETE FROM conversations WHERE rowid IN (
              SELECT rowid FROM conversations WHERE agent_id = ${key.agentId}
              ORDER BY last_used_at DESC, partition_key DESC, channel_id DESC LIMIT -1 OFFSET ${maxPerAgent})
            RETURNING partition_key, channel_id`
        })).pipe(Effect.mapError(storageErrorOf("ConversationStore.put")))
        cache.set(cacheKeyOf(key), { conversationId, createdAt: now, lastUsedAt: now })
        for (const row of pruned) {
          cache.delete(cacheKeyOf({ agentId: key.agentId, partitionKey: row.partition_key, channelId: row.channel_id }))
        }
      }).pipe(writing)

    const touch = (key: ConversationKey, now: number) =>
      Effect.gen(function*() {
        const current = yield* get(key)
        if (Option.isNone(current) || !touchMoves(current.value, now)) return
        yield* Effect.gen(function*() {
          // Read again under the lock: a put or forget may have run since.
          const latest = cache.get(cacheKeyOf(key))
          if (latest === undefined || !touchMoves(latest, now)) return
          yield* sql`UPDATE conversations SET last_used_at = ${now}
            WHERE agent_id = ${key.agentId} AND partition_key = ${key.partitionKey} AND channel_id = ${key.channelId}`.pipe(
            Effect.mapError(storageErrorOf("ConversationStore.touch"))
          )
          cache.set(cacheKeyOf(key), { ...latest, lastUsedAt: now })
        }).pipe(writing)
      })

    const forget = (key: ConversationKey) =>
      Effect.gen(function*() {
        const rows = yield* sql<{ readonly channel_id: string }>`
          DELETE FROM conversations
          WHERE agent_id = ${key.agentId} AND partition_key = ${key.partitionKey} AND channel_id = ${key.channelId}
          RETURNING channel_id`.pipe(Effect.mapError(storageErrorOf("ConversationStore.forget")))
        cache.delete(cacheKeyOf(key))
        return rows.length > 0
      }).pipe(writing)

    // Read from the table (an admin's view, not the hot path), in one transaction so that the
    // list and the total agree.
    const forAgent = (agentId: string, partitionKey: string, limit: number) =>
      Effect.gen(function*() {
        const [rows, count] = yield* sql.withTransaction(Effect.all([
          sql`SELECT channel_id, conversation_id, created_at, last_used_at FROM conversations
            WHERE agent_id = ${agentId} AND partition_key = ${partitionKey}
            ORDER BY last_used_at DESC, partition_key DESC, channel_id DESC LIMIT ${Math.max(0, Math.floor(limit))}`,
          sql<{ readonly total: number }>`SELECT count(*) AS total FROM conversations
            WHERE agent_id = ${agentId} AND partition_key = ${partitionKey}`
        ])).pipe(Effect.mapError(storageErrorOf("ConversationStore.forAgent")))
        const newest = yield* readable(rows, { agentId, partitionKey, channelId: "-" })
        return { total: count[0]?.total ?? 0, newest } satisfies AgentConversations
      })

    return { get, put, touch, forget, forAgent }
  })
