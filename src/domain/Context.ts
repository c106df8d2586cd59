/** The immediate context of a triggering message: its metadata and its reply chain. */
import { Schema } from "effect"
import { Author, ChannelInfo, GuildInfo, MessageRecord } from "./Discord.js"

export const MessageMetadata = Schema.Struct({
  messageId: Schema.String,
  author: Author,
  channel: ChannelInfo,
  /** null for a direct message. */
  guild: Schema.NullOr(GuildInfo),
  /** Epoch milliseconds. */
  createdAt: Schema.Number
})
export type MessageMetadata = typeof MessageMetadata.Type

/** A parent message in the chain. */
export const ChainMessage = Schema.TaggedStruct("ChainMessage", {
  message: MessageRecord,
  /** The thread's starter message, reached from the thread's first message. */
  threadStarter: Schema.Boolean
})

/** A parent that could not be read: the chain ends here. */
export const ChainGap = Schema.TaggedStruct("ChainGap", {
  channelId: Schema.String,
  messageId: Schema.String,
  reason: Schema.Literal("deleted", "forbidden", "unavailable")
})

export const ChainEntry = Schema.Union(ChainMessage, ChainGap)
export type ChainEntry = typeof ChainEntry.Type

export const ReplyChain = Schema.Struct({
  /** Oldest first; a ChainGap, when present, is the first (oldest) entry. */
  entries: Schema.Array(ChainEntry),
  /** The depth limit cut the chain: older parents exist but were not read. */
  truncated: Schema.Boolean
})
export type ReplyChain = typeof ReplyChain.Type

export const MessageContext = Schema.Struct({
  metadata: MessageMetadata,
  message: MessageRecord,
  chain: ReplyChain
})
export type MessageContext = typeof MessageContext.Type

/** The words the prompt uses for a parent that could not be read. */
export const unavailableMarker = "[message deleted or unavailable]"
