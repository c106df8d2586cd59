/** The unit of work: one triggering message, queued for its agent. */
import { Schema } from "effect"

/**
 * A queue partition: each guild has its own bounded queue; direct messages share the DM queue.
 * Encoded as a string key ("guild:<id>" or "dm") for maps and storage.
 */
export type Partition = { readonly _tag: "Guild"; readonly guildId: string } | { readonly _tag: "Dm" }

export const Partition = {
  guild: (guildId: string): Partition => ({ _tag: "Guild", guildId }),
  dm: { _tag: "Dm" } as Partition,
  key: (p: Partition): string => (p._tag === "Guild" ? `guild:${p.guildId}` : "dm"),
  ofEvent: (e: QueuedEvent): Partition => (e.guildId === null ? Partition.dm : Partition.guild(e.guildId))
}

/**
 * How an event's run reaches its agent: `channel` sends it to the Letta conversation of its
 * channel (thread, DM channel), so channels of one agent run in parallel; `shared` sends it to the
 * agent's default conversation, one run per agent at a time. Decided at intake and stored on the
 * event, so the queue's exclusion and the dispatcher's route can never disagree.
 */
export const ConversationMode = Schema.Literal("channel", "shared")
export type ConversationMode = typeof ConversationMode.Type

export const TriggerKind = Schema.Literal("mention", "reply", "dm")
export type TriggerKind = typeof TriggerKind.Type

export const QueuedEvent = Schema.Struct({
  /** The triggering Discord message id: also the event's identity (dedup key). */
  messageId: Schema.String,
  /** null for a direct message. */
  guildId: Schema.NullOr(Schema.String),
  /** The lane: FIFO and rate limit apply per channel (for DMs the DM channel, i.e. per user). */
  channelId: Schema.String,
  authorId: Schema.String,
  agentId: Schema.String,
  trigger: TriggerKind,
  prompt: Schema.String,
  /** Epoch milliseconds, by the Effect Clock. */
  enqueuedAt: Schema.Number,
  /** Dispatch attempts already made (0 when new). */
  attempts: Schema.Number,
  /**
   * Set on an event replayed after a crash cut its run off before the agent acted: that run is
   * cancelled on the server before the event is sent again.
   */
  interruptedRunId: Schema.optional(Schema.String),
  /** How many times a crash or shutdown cut this event's run off before the agent acted. */
  interruptions: Schema.optional(Schema.Number),
  /** The mode the event was queued under; absent on events journalled before modes existed (see `conversationModeOf`). */
  conversationMode: Schema.optional(ConversationMode),
  /**
   * Set on a replayed event whose cut-off run went to this Letta conversation: the run is
   * cancelled through the conversation before the event is sent again.
   */
  interruptedConversationId: Schema.optional(Schema.String),
  /**
   * The image attachments sent to the agent as image parts after the prompt (see Images.ts),
   * decided at intake; absent when there are none (images off, or no attachment qualifies).
   */
  images: Schema.optional(Schema.Array(Schema.String))
})
export type QueuedEvent = typeof QueuedEvent.Type

/**
 * The mode an event runs in. An event without one was queued by a version that only knew the
 * agent's default conversation, and its interrupted run (if any) ran there: it stays `shared`.
 */
export const conversationModeOf = (event: Pick<QueuedEvent, "conversationMode">): ConversationMode =>
  event.conversationMode ?? "shared"
