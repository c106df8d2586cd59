/**
 * Which Letta conversation a channel's events go to in `channel` mode: (agent id, partition,
 * channel id) -> conversation id, with when it was created and last used.
 *
 * - `get` is on the dispatcher's path for every event: the durable store (SqlConversationStore)
 *   reads a key from the database once and from memory afterwards.
 * - `put` maps a key to a newly created conversation (created = last used = now), replacing any
 *   earlier mapping, and prunes that agent's mappings to its newest `maxConversationsPerAgent` by
 *   last use (ties: the greater partition key, then channel id, is the newer) in the same step,
 *   so the table stays bounded however many channels an agent ever saw.
 * - `touch` records a use. The recorded time moves only once it is `touchResolutionMs` old:
 *   last use orders the pruning and is shown to admins, neither needs it to the second, and so a
 *   busy channel costs one database write a minute instead of one per run.
 * - `forget` drops a mapping (`conversation reset`, or a conversation deleted on the server); the
 *   next event of the channel creates a new conversation.
 * - `forAgent` counts an agent's mappings in a partition and lists the most recently used ones.
 *
 * Keys hold the agent id, so binding another agent uses new conversations; the old agent's rows
 * stay until pruned. Ids are compared as plain strings (Discord and Letta ids are ASCII).
 */
import type { SqlClient } from "@effect/sql"
import { Context, Effect, HashMap, Layer, Option, Ref } from "effect"
import type { StorageError } from "../../domain/Errors.js"
import { makeSqlConversationStore } from "../storage/SqlConversationStore.js"
import {
  type AgentConversations,
  cacheKeyOf,
  type ConversationKey,
  type ConversationRecord,
  maxConversationsPerAgent,
  newestFirst,
  type StoredConversation,
  touchMoves
} from "./ConversationRules.js"

export * from "./ConversationRules.js"

export interface ConversationStoreService {
  readonly get: (key: ConversationKey) => Effect.Effect<Option.Option<ConversationRecord>, StorageError>
  /** Maps the key to a new conversation, then prunes the agent's mappings (see the module header). */
  readonly put: (key: ConversationKey, conversationId: string, now: number) => Effect.Effect<void, StorageError>
  /** Records a use at `now` (epoch ms); an unmapped key is ignored. */
  readonly touch: (key: ConversationKey, now: number) => Effect.Effect<void, StorageError>
  /** Drops the mapping; true when there was one. */
  readonly forget: (key: ConversationKey) => Effect.Effect<boolean, StorageError>
  readonly forAgent: (
    agentId: string,
    partitionKey: string,
    limit: number
  ) => Effect.Effect<AgentConversations, StorageError>
}

export class ConversationStore extends Context.Tag("aurora/ConversationStore")<
  ConversationStore,
  ConversationStoreService
>() {
  /** In the SQLite database, read through an in-memory cache (storage/SqlConversationStore.ts). */
  static readonly layerSql: Layer.Layer<ConversationStore, never, SqlClient.SqlClient> = Layer.effect(
    ConversationStore,
    Effect.suspend(() => makeSqlConversationStore())
  )

  /** In memory, with the durable store's semantics (for tests and runs without persistence). */
  static readonly layerMemory: Layer.Layer<ConversationStore> = Layer.effect(
    ConversationStore,
    Effect.suspend(() => makeMemoryConversationStore())
  )
}

/** `maxPerAgent` is a parameter so that tests can reach the bound with a few rows. */
export const makeMemoryConversationStore = (
  maxPerAgent: number = maxConversationsPerAgent
): Effect.Effect<ConversationStoreService> =>
  Effect.map(Ref.make(HashMap.empty<string, StoredConversation>()), (state): ConversationStoreService => {
    const ofAgent = (rows: HashMap.HashMap<string, StoredConversation>, agentId: string) =>
      Array.from(HashMap.values(rows)).filter((row) => row.key.agentId === agentId).sort(newestFirst)
    return {
      get: (key) => Effect.map(Ref.get(state), (rows) => Option.map(HashMap.get(rows, cacheKeyOf(key)), (row) => row.record)),
      put: (key, conversationId, now) =>
        Ref.update(state, (rows) => {
          const record = { conversationId, createdAt: now, lastUsedAt: now }
          const next = HashMap.set(rows, cacheKeyOf(key), { key, record })
          const pruned = ofAgent(next, key.agentId).slice(maxPerAgent)
          return pruned.reduce((kept, row) => HashMap.remove(kept, cacheKeyOf(row.key)), next)
        }),
      touch: (key, now) =>
        Ref.update(
          state,
          (rows) =>
            HashMap.modify(rows, cacheKeyOf(key), (row) =>
              touchMoves(row.record, now) ? { ...row, record: { ...row.record, lastUsedAt: now } } : row)
        ),
      forget: (key) =>
        Ref.modify(
          state,
          (rows) => HashMap.has(rows, cacheKeyOf(key)) ? [true, HashMap.remove(rows, cacheKeyOf(key))] : [false, rows]
        ),
      forAgent: (agentId, partitionKey, limit) =>
        Effect.map(Ref.get(state), (rows) => {
          const all = ofAgent(rows, agentId).filter((row) => row.key.partitionKey === partitionKey)
          return {
            total: all.length,
            newest: all.slice(0, Math.max(0, limit)).map((row) => ({ channelId: row.key.channelId, ...row.record }))
          }
        })
    }
  })
