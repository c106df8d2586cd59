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
  interruptions: Schema.optional(Schema.Number)
})
export type QueuedEvent = typeof QueuedEvent.Type
