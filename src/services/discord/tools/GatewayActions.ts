/**
 * DiscordActions on the gateway's discord.js client. Channels and guilds come from discord.js'
 * cache first (`channels.fetch` asks REST only for a channel it has not seen); posts and reactions
 * go to REST directly, with the payload written out here (`postBody`), so what reaches Discord is
 * exactly what is tested. Failures become Aurora's Discord failures (DiscordMapping); a channel
 * Discord does not know (404) is null, not a failure.
 */
import { type Client, DiscordAPIError, RESTJSONErrorCodes, Routes } from "discord.js"
import { Effect } from "effect"
import type { DiscordFailure } from "../../../domain/Errors.js"
import { type DiscordOperation, channelKind, toDiscordFailure, toMessageRecord } from "../DiscordMapping.js"
import type { DiscordActionsShape, GuildSummary, LocatedChannel, PostedMessage } from "./Actions.js"

/**
 * A post's body: user mentions only (never @everyone, @here or roles), and a reply that pings the
 * replied-to author (a user) and is dropped rather than failing when that message is gone.
 */
export const postBody = (content: string, replyTo: string | undefined) => ({
  content,
  allowed_mentions: { parse: ["users"], ...(replyTo === undefined ? {} : { replied_user: true }) },
  ...(replyTo === undefined ? {} : { message_reference: { message_id: replyTo, fail_if_not_exists: false } })
})

/**
 * The reaction's path segment: a custom emoji (`<:name:id>`, `<a:name:id>`, `name:id`) as
 * `name:id`, anything else (a unicode emoji) URL-encoded.
 */
export const reactionPath = (emoji: string): string => {
  const trimmed = emoji.trim()
  const custom = /^<a?:(\w{2,32}):(\d{17,20})>$/.exec(trimmed) ?? /^(\w{2,32}):(\d{17,20})$/.exec(trimmed)
  return custom === null ? encodeURIComponent(trimmed) : `${custom[1]}:${custom[2]}`
}

const field = (value: unknown, key: string): unknown =>
  typeof value === "object" && value !== null ? Reflect.get(value, key) : undefined

const isUnknownChannel = (error: unknown) =>
  error instanceof DiscordAPIError && (error.code === RESTJSONErrorCodes.UnknownChannel || error.status === 404)

const tryDiscord = <A>(run: () => Promise<A>, target: DiscordOperation): Effect.Effect<A, DiscordFailure> =>
  Effect.tryPromise({ try: run, catch: (error) => toDiscordFailure(error, target) })

export const makeGatewayActions = (client: Client<true>): DiscordActionsShape => {
  const fetchChannel = (channelId: string, operation: string) =>
    tryDiscord(
      () => client.channels.fetch(channelId).catch((error: unknown) => (isUnknownChannel(error) ? null : Promise.reject(error))),
      { operation, channelId }
    )

  const locateChannel = (channelId: string): Effect.Effect<LocatedChannel | null, DiscordFailure> =>
    Effect.map(fetchChannel(channelId, "locateChannel"), (channel) =>
      channel === null ? null : {
        channelId: channel.id,
        guildId: channel.isDMBased() ? null : channel.guildId,
        kind: channelKind(channel.type),
        textBased: channel.isTextBased()
      })

  const post = (channelId: string, content: string, replyTo: string | undefined) =>
    Effect.map(
      tryDiscord(() => client.rest.post(Routes.channelMessages(channelId), { body: postBody(content, replyTo) }), {
        operation: "post",
        channelId
      }),
      (message): PostedMessage => {
        const reference = field(field(message, "message_reference"), "message_id")
        return {
          channelId,
          messageId: String(field(message, "id")),
          replyTo: typeof reference === "string" ? reference : null
        }
      }
    )

  const recentMessages = (channelId: string, limit: number) =>
    Effect.gen(function*() {
      const channel = yield* fetchChannel(channelId, "recentMessages")
      if (channel === null || !channel.isTextBased()) return []
      const fetched = yield* tryDiscord(() => channel.messages.fetch({ limit, cache: false }), {
        operation: "recentMessages",
        channelId
      })
      return [...fetched.values()].map(toMessageRecord).sort((a, b) => b.createdAt - a.createdAt)
    })

  const react = (channelId: string, messageId: string, emoji: string) =>
    Effect.asVoid(
      tryDiscord(() => client.rest.put(Routes.channelMessageOwnReaction(channelId, messageId, reactionPath(emoji))), {
        operation: "react",
        channelId,
        messageId
      })
    )

  const guild = (guildId: string) =>
    Effect.sync((): GuildSummary | null => {
      const found = client.guilds.cache.get(guildId)
      if (found === undefined) return null
      const channels = [...found.channels.cache.values()]
        .map((channel) => ({
          id: channel.id,
          name: channel.name,
          kind: channelKind(channel.type),
          parentId: channel.parentId,
          position: "rawPosition" in channel ? channel.rawPosition : 0
        }))
        .sort((a, b) => a.position - b.position || a.id.localeCompare(b.id))
        .map(({ position: _position, ...channel }) => channel)
      return {
        id: found.id,
        name: found.name,
        memberCount: found.memberCount,
        ownerId: found.ownerId,
        createdAt: found.createdTimestamp,
        channels
      }
    })

  return { locateChannel, post, recentMessages, react, guild }
}
