/**
 * The boundary between discord.js and Aurora's domain: discord.js objects become plain records
 * (src/domain/Discord.ts) and discord.js failures become Aurora's tagged errors. Pure functions,
 * called by the gateway as soon as an object arrives, so nothing downstream touches discord.js
 * (and later mutations of discord.js' cached objects cannot change what was received).
 */
import { ChannelType, DiscordAPIError, DiscordjsErrorCodes, HTTPError, RateLimitError, RESTJSONErrorCodes } from "discord.js"
import type { Channel, Message } from "discord.js"
import { Duration } from "effect"
import type {
  Attachment,
  Author,
  ChannelInfo,
  ChannelKind,
  Embed,
  GuildInfo,
  MessageRecord,
  MessageReference,
  ReceivedMessage
} from "../../domain/Discord.js"
import { type DiscordFailure, DiscordError, DiscordRateLimited, MessageNotFound, MissingAccess } from "../../domain/Errors.js"
import { closeCodeExplanation, closeCodeOfError } from "./Shards.js"
import { isForward } from "./Intake.js"

// --- records ------------------------------------------------------------------

export const channelKind = (type: ChannelType): ChannelKind => {
  switch (type) {
    case ChannelType.GuildText:
      return "text"
    case ChannelType.DM:
      return "dm"
    case ChannelType.GroupDM:
      return "group-dm"
    case ChannelType.GuildVoice:
      return "voice"
    case ChannelType.GuildAnnouncement:
      return "announcement"
    case ChannelType.AnnouncementThread:
      return "announcement-thread"
    case ChannelType.PublicThread:
      return "public-thread"
    case ChannelType.PrivateThread:
      return "private-thread"
    case ChannelType.GuildStageVoice:
      return "stage"
    case ChannelType.GuildForum:
      return "forum"
    case ChannelType.GuildMedia:
      return "media"
    default:
      // Categories, directories and types newer than this code: nothing Aurora answers in.
      return "unknown"
  }
}

export const channelInfo = (channel: Channel): ChannelInfo => {
  // DM channels have no name; group DMs may have none.
  const name = "name" in channel && typeof channel.name === "string" ? channel.name : null
  if (channel.isThread()) {
    const parent = channel.parent
    return {
      id: channel.id,
      name,
      kind: channelKind(channel.type),
      parentId: channel.parentId,
      parentKind: parent === null ? null : channelKind(parent.type)
    }
  }
  return { id: channel.id, name, kind: channelKind(channel.type), parentId: null, parentKind: null }
}

export const authorOf = (message: Message): Author => {
  const globalName = message.author.globalName ?? null
  return {
    id: message.author.id,
    username: message.author.username,
    displayName: message.member?.nickname ?? globalName ?? message.author.username,
    globalName,
    bot: message.author.bot
  }
}

const referenceOf = (message: Message): MessageReference | null => {
  const reference = message.reference
  // Channel-follow and pin notices carry a reference without a message id, and a forward names the
  // message it copies: neither is a reply (nor a parent for the reply chain).
  if (reference === null || reference.messageId === undefined || isForward(reference)) return null
  return { messageId: reference.messageId, channelId: reference.channelId, guildId: reference.guildId ?? null }
}

export const toMessageRecord = (message: Message): MessageRecord => ({
  id: message.id,
  channelId: message.channelId,
  guildId: message.guildId,
  author: authorOf(message),
  webhookId: message.webhookId,
  content: message.content,
  createdAt: message.createdTimestamp,
  editedAt: message.editedTimestamp,
  embeds: message.embeds.map(
    (embed): Embed => ({
      title: embed.title,
      description: embed.description,
      url: embed.url,
      fields: embed.fields.map((field) => ({ name: field.name, value: field.value }))
    })
  ),
  attachments: message.attachments.map(
    (attachment): Attachment => ({
      name: attachment.name,
      url: attachment.url,
      contentType: attachment.contentType,
      size: attachment.size
    })
  ),
  reference: referenceOf(message),
  mentions: {
    // The users actually mentioned: never derived from mentions.has(), which is also true for
    // @everyone/@here and for the bot's managed role.
    users: [...message.mentions.users.keys()],
    roles: [...message.mentions.roles.keys()],
    everyone: message.mentions.everyone
  }
})

export const toReceivedMessage = (message: Message): ReceivedMessage => {
  const guild: GuildInfo | null = message.guild === null ? null : { id: message.guild.id, name: message.guild.name }
  return { message: toMessageRecord(message), channel: channelInfo(message.channel), guild }
}

// --- errors -------------------------------------------------------------------

/** What was being done when Discord failed: enough to build the domain error. */
export interface DiscordOperation {
  readonly operation: string
  readonly channelId: string
  /** Set when the operation reads one message: a 404 then means that message is gone. */
  readonly messageId?: string
}

// Discord's JSON error codes for "no such message or channel" and "not allowed to".
const notFoundCodes = new Set<number | string>([RESTJSONErrorCodes.UnknownMessage, RESTJSONErrorCodes.UnknownChannel])
const forbiddenCodes = new Set<number | string>([RESTJSONErrorCodes.MissingAccess, RESTJSONErrorCodes.MissingPermissions])

const isRecord = (u: unknown): u is Readonly<Record<string, unknown>> => typeof u === "object" && u !== null

const retryAfterOf = (raw: unknown): Duration.Duration =>
  // Discord sends retry_after in seconds (fractional).
  isRecord(raw) && typeof raw["retry_after"] === "number"
    ? Duration.millis(Math.ceil(raw["retry_after"] * 1000))
    : Duration.seconds(1)

/** A one-line description of any thrown value, including the network code hidden in `cause`. */
export const describeError = (error: unknown): string => {
  if (!(error instanceof Error)) return String(error)
  const code = networkCodeOf(error)
  const base = `${error.name}: ${error.message}`
  return code !== null && !base.includes(code) ? `${base} (${code})` : base
}

const NetworkCodes = new Set([
  "ECONNREFUSED",
  "ECONNRESET",
  "ENOTFOUND",
  "EAI_AGAIN",
  "ETIMEDOUT",
  "EHOSTUNREACH",
  "ENETUNREACH",
  "EPIPE",
  "UND_ERR_CONNECT_TIMEOUT",
  "UND_ERR_SOCKET",
  "UND_ERR_HEADERS_TIMEOUT",
  "UND_ERR_BODY_TIMEOUT"
])

/** The network error code of a failed connection (undici hides it in `cause`), else null. */
export const networkCodeOf = (error: unknown): string | null => {
  let current: unknown = error
  for (let depth = 0; depth < 5 && isRecord(current); depth++) {
    const code = current["code"]
    if (typeof code === "string" && NetworkCodes.has(code)) return code
    current = current["cause"]
  }
  return null
}

/** Maps anything discord.js throws during a REST call to Aurora's Discord failures. */
export const toDiscordFailure = (error: unknown, target: DiscordOperation): DiscordFailure => {
  const { channelId, messageId, operation } = target
  if (error instanceof RateLimitError) {
    return new DiscordRateLimited({ operation, retryAfter: Duration.millis(error.retryAfter) })
  }
  if (error instanceof DiscordAPIError) {
    if (error.status === 429) return new DiscordRateLimited({ operation, retryAfter: retryAfterOf(error.rawError) })
    const notFound = notFoundCodes.has(error.code) || error.status === 404
    if (notFound && messageId !== undefined) return new MessageNotFound({ channelId, messageId })
    if (forbiddenCodes.has(error.code) || error.status === 403) {
      return new MissingAccess({ channelId, operation })
    }
    return new DiscordError({
      operation,
      reason: `Discord answered ${error.status} (code ${error.code}) to ${error.method.toUpperCase()}: ${error.message}`
    })
  }
  if (error instanceof HTTPError) {
    if (error.status === 429) return new DiscordRateLimited({ operation, retryAfter: Duration.seconds(1) })
    return new DiscordError({ operation, reason: `Discord answered ${error.status} to ${error.method.toUpperCase()}` })
  }
  return new DiscordError({ operation, reason: describeError(error) })
}

/**
 * The one-line reason a login failed, for an operator. It never contains the token: known
 * failures get fixed wording, and any other error text is scrubbed of it.
 */
export const loginFailureMessage = (error: unknown, context: { readonly apiUrl: string; readonly token: string }): string => {
  if (isRecord(error) && error["code"] === DiscordjsErrorCodes.TokenInvalid) {
    return "Discord rejected DISCORD_TOKEN (401 Unauthorized)"
  }
  if (error instanceof DiscordAPIError && error.status === 401) {
    return "Discord rejected DISCORD_TOKEN (401 Unauthorized)"
  }
  // Gateway close codes surface as plain errors from @discordjs/ws.
  if (error instanceof Error && error.message === "Authentication failed") {
    return "Discord rejected DISCORD_TOKEN (gateway close 4004 Authentication failed)"
  }
  const explained = closeCodeOfError(error)
  const explanation = explained === null ? null : closeCodeExplanation(explained)
  if (explanation !== null) return explanation
  const code = networkCodeOf(error)
  if (code !== null) return `cannot reach Discord at ${context.apiUrl} (${code})`
  if (error instanceof Error && error.name === "AbortError") return `cannot reach Discord at ${context.apiUrl} (timed out)`
  const text = `Discord login failed: ${describeError(error)}`
  return context.token.length > 0 ? text.split(context.token).join("[redacted]") : text
}
