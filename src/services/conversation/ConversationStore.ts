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
import { Context, Effect, HashMap, Layer, Option, Ref } from "effect"
import type { StorageError } from "../../domain/Errors.js"

/**
 * Mappings kept per agent, across its guilds and DMs: far more channels than one agent is active
 * in, and small (a row and its index entry are a few hundred bytes: well under 1 MB per agent, and
 * the same bound for the SQL store's cache). A pruned channel
 * just gets a new conversation at its next event, losing its message history, not the agent's
 * memory blocks.
 */
export const maxConversationsPerAgent = 1_000

/** How old the recorded last use must be before `touch` moves it. */
export const touchResolutionMs = 60_000

export interface ConversationKey {
  readonly agentId: string
  /** `Partition.key(...)`: "guild:<id>" or "dm". */
  readonly partitionKey: string
  /** The channel, thread or DM channel. */
  readonly channelId: string
}

export interface ConversationRecord {
  readonly conversationId: string
  /** Epoch ms. */
  readonly createdAt: number
  /** Epoch ms, to `touchResolutionMs`. */
  readonly lastUsedAt: number
}

export interface ChannelConversation extends ConversationRecord {
  readonly channelId: string
}

export interface AgentConversations {
  /** All of the agent's mappings in the partition. */
  readonly total: number
  /** The most recently used first (the pruning's order), at most the limit asked for. */
  readonly newest: ReadonlyArray<ChannelConversation>
}

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
  /** In memory, with the durable store's semantics (for tests and runs without persistence). */
  static readonly memory: Layer.Layer<ConversationStore> = Layer.effect(
    ConversationStore,
    Effect.suspend(() => makeMemoryConversationStore())
  )
}

/** The map key of a conversation key: unambiguous whatever the ids contain. */
export const cacheKeyOf = (key: ConversationKey): string => JSON.stringify([key.agentId, key.partitionKey, key.channelId])

/** Whether `touch` at `now` moves the recorded last use. */
export const touchMoves = (record: ConversationRecord, now: number): boolean =>
  now - record.lastUsedAt >= touchResolutionMs

export interface StoredConversation {
  readonly key: ConversationKey
  readonly record: ConversationRecord
}

/** The pruning's order, newest first: last use, then partition key, then channel id, descending. */
export const newestFirst = (a: StoredConversation, b: StoredConversation): number =>
  b.record.lastUsedAt - a.record.lastUsedAt ||
  compareText(b.key.partitionKey, a.key.partitionKey) ||
  compareText(b.key.channelId, a.key.channelId)

const compareText = (a: string, b: string): number => (a < b ? -1 : a > b ? 1 : 0)

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
        Ref.update(state, (rows) =>
          HashMap.modify(rows, cacheKeyOf(key), (row) =>
            touchMoves(row.record, now) ? { ...row, record: { ...row.record, lastUsedAt: now } } : row)),
      forget: (key) =>
        Ref.modify(state, (rows) =>
          HashMap.has(rows, cacheKeyOf(key)) ? [true, HashMap.remove(rows, cacheKeyOf(key))] : [false, rows]),
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
