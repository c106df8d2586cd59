/**
 * The narrow port through which the built-in tools touch Discord: find a channel (with its guild),
 * post, read recent messages, react, and describe a guild. `Default` is served by the gateway's
 * discord.js client (GatewayActions.ts); tests swap in a fake.
 *
 * The port decides nothing about where a tool may act (that is Confinement.ts, checked before any
 * call), but it owns how a post is made: every post parses user mentions only, so no content can
 * ping @everyone, @here or a role, whoever wrote it.
 */
import { Context, Effect, Layer } from "effect"
import type { ChannelKind, MessageRecord } from "../../../domain/Discord.js"
import type { DiscordFailure } from "../../../domain/Errors.js"
import { DiscordGateway } from "../DiscordGateway.js"
import { makeGatewayActions } from "./GatewayActions.js"

export interface LocatedChannel {
  readonly channelId: string
  /** null for a DM channel. */
  readonly guildId: string | null
  readonly kind: ChannelKind
  /** It holds messages (send, read, react): not a category, a forum itself, a directory. */
  readonly textBased: boolean
}

export interface PostedMessage {
  readonly channelId: string
  readonly messageId: string
  /** The message it replies to, when Discord kept the reference (it drops one it cannot find). */
  readonly replyTo: string | null
}

export interface GuildSummary {
  readonly id: string
  readonly name: string
  readonly memberCount: number
  readonly ownerId: string
  /** Epoch milliseconds. */
  readonly createdAt: number
  readonly channels: ReadonlyArray<{
    readonly id: string
    readonly name: string
    readonly kind: ChannelKind
    readonly parentId: string | null
  }>
}

export interface DiscordActionsShape {
  /** null when Discord does not know the channel (or does not show it to the bot: 404). */
  readonly locateChannel: (channelId: string) => Effect.Effect<LocatedChannel | null, DiscordFailure>
  /** Posts with `allowed_mentions: { parse: ["users"] }` (a reply pings its author, a user). */
  readonly post: (
    channelId: string,
    content: string,
    replyTo: string | undefined
  ) => Effect.Effect<PostedMessage, DiscordFailure>
  /** The channel's newest messages, newest first. */
  readonly recentMessages: (channelId: string, limit: number) => Effect.Effect<ReadonlyArray<MessageRecord>, DiscordFailure>
  /** The bot's reaction; `emoji` as the agent wrote it (unicode, `<:name:id>`, `<a:name:id>` or `name:id`). */
  readonly react: (channelId: string, messageId: string, emoji: string) => Effect.Effect<void, DiscordFailure>
  /** null when the bot is not in that guild. */
  readonly guild: (guildId: string) => Effect.Effect<GuildSummary | null, DiscordFailure>
}

export class DiscordActions extends Context.Tag("aurora/DiscordActions")<DiscordActions, DiscordActionsShape>() {
  /** Through the gateway's discord.js client (its cache first, then REST). */
  static readonly Default: Layer.Layer<DiscordActions, never, DiscordGateway> = Layer.effect(
    DiscordActions,
    Effect.map(DiscordGateway, (gateway) => makeGatewayActions(gateway.client))
  )
}
