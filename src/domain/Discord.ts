/**
 * What Aurora knows of Discord: plain data decoded from discord.js objects at the gateway boundary,
 * so that context and prompt building never touch discord.js.
 */
import { Schema } from "effect"

export const Author = Schema.Struct({
  id: Schema.String,
  username: Schema.String,
  /** Server nickname, else global name, else username. */
  displayName: Schema.String,
  /** The user's global display name; null when they never set one. */
  globalName: Schema.NullOr(Schema.String),
  bot: Schema.Boolean
})
export type Author = typeof Author.Type

export const ChannelKind = Schema.Literal(
  "text",
  "dm",
  "group-dm",
  "voice",
  "announcement",
  "announcement-thread",
  "public-thread",
  "private-thread",
  "stage",
  "forum",
  "media",
  "unknown"
)
export type ChannelKind = typeof ChannelKind.Type

export const ChannelInfo = Schema.Struct({
  id: Schema.String,
  /** null for DMs. */
  name: Schema.NullOr(Schema.String),
  kind: ChannelKind,
  /** For threads: the channel the thread belongs to (a text, announcement or forum channel). */
  parentId: Schema.NullOr(Schema.String),
  /** For threads: the parent channel's kind ("forum" threads have no starter in the parent). */
  parentKind: Schema.NullOr(ChannelKind)
})
export type ChannelInfo = typeof ChannelInfo.Type

export const isThread = (channel: ChannelInfo): boolean =>
  channel.kind === "public-thread" || channel.kind === "private-thread" || channel.kind === "announcement-thread"

export const GuildInfo = Schema.Struct({
  id: Schema.String,
  name: Schema.String
})
export type GuildInfo = typeof GuildInfo.Type

export const Embed = Schema.Struct({
  title: Schema.NullOr(Schema.String),
  description: Schema.NullOr(Schema.String),
  url: Schema.NullOr(Schema.String),
  fields: Schema.Array(Schema.Struct({ name: Schema.String, value: Schema.String }))
})
export type Embed = typeof Embed.Type

export const Attachment = Schema.Struct({
  name: Schema.String,
  url: Schema.String,
  contentType: Schema.NullOr(Schema.String),
  size: Schema.Number
})
export type Attachment = typeof Attachment.Type

export const MessageReference = Schema.Struct({
  messageId: Schema.String,
  channelId: Schema.String,
  guildId: Schema.NullOr(Schema.String)
})
export type MessageReference = typeof MessageReference.Type

export const Mentions = Schema.Struct({
  /** User ids in `message.mentions.users` (never roles, never @everyone). */
  users: Schema.Array(Schema.String),
  roles: Schema.Array(Schema.String),
  everyone: Schema.Boolean
})
export type Mentions = typeof Mentions.Type

/** One Discord message, as received or as fetched for the reply chain. */
export const MessageRecord = Schema.Struct({
  id: Schema.String,
  channelId: Schema.String,
  /** null for DMs. */
  guildId: Schema.NullOr(Schema.String),
  author: Author,
  /** Set when a webhook posted it. */
  webhookId: Schema.NullOr(Schema.String),
  content: Schema.String,
  /** Epoch milliseconds. */
  createdAt: Schema.Number,
  editedAt: Schema.NullOr(Schema.Number),
  embeds: Schema.Array(Embed),
  attachments: Schema.Array(Attachment),
  reference: Schema.NullOr(MessageReference),
  mentions: Mentions
})
export type MessageRecord = typeof MessageRecord.Type

/** A message as it arrives from the gateway, with where it was posted. */
export const ReceivedMessage = Schema.Struct({
  message: MessageRecord,
  channel: ChannelInfo,
  /** null for DMs. */
  guild: Schema.NullOr(GuildInfo)
})
export type ReceivedMessage = typeof ReceivedMessage.Type
