/**
 * The rules every conversation store follows, whatever backs it: the keys and records, the bound
 * per agent, when a use moves the recorded last use, and the pruning's order. Pure, so the memory
 * and SQL stores (and their model test) share one definition.
 */
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

/** The map key of a conversation key: unambiguous whatever the ids contain. */
export const cacheKeyOf = (key: ConversationKey): string => JSON.stringify([key.agentId, key.partitionKey, key.channelId])

/** Whether `touch` at `now` moves the recorded last use. */
export const touchMoves = (record: ConversationRecord, now: number): boolean => now - record.lastUsedAt >= touchResolutionMs

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
