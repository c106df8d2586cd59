/**
 * The Discord fake's world and its mutable state: the default world's ids, the options a test
 * starts the fake with, and what the REST routes and the gateway share — users, channels (guild
 * and DM), the message store, the bot's reactions, interaction replies, registered commands,
 * forbidden channels.
 * Node callbacks mutate it; tests read it through FakeDiscord's accessors.
 */
import { ChannelType } from "discord.js"
import { type FakeChannel, type FakeGuild, type FakeOwner, type FakeUser, type Json, snowflake } from "./Payloads.js"
import type { BotPost } from "./Posts.js"
import type { ShardingOptions } from "./Shards.js"

/** Ids of the default world, so tests can name things without configuring anything. */
export const world = {
  bot: { id: "1100000000000000001", username: "aurora", bot: true },
  alice: { id: "1200000000000000001", username: "alice", globalName: "Alice" },
  bob: { id: "1200000000000000002", username: "bob" },
  guildId: "1300000000000000001",
  guildName: "Aurora Test Guild",
  general: "1400000000000000001",
  /** Every REST call on it answers 403. */
  secret: "1400000000000000002",
  forum: "1400000000000000003",
  /** A public thread of #general. */
  thread: "1400000000000000004",
  /** A post (thread) in the forum. */
  forumPost: "1400000000000000005",
  botRole: "1500000000000000001"
} as const satisfies Record<string, FakeUser | string>

export const defaultGuild: FakeGuild = {
  id: world.guildId,
  name: world.guildName,
  channels: [
    { id: world.general, name: "general", type: ChannelType.GuildText },
    { id: world.secret, name: "secret", type: ChannelType.GuildText, forbidden: true },
    { id: world.forum, name: "help", type: ChannelType.GuildForum },
    { id: world.thread, name: "a thread", type: ChannelType.PublicThread, parentId: world.general },
    { id: world.forumPost, name: "a question", type: ChannelType.PublicThread, parentId: world.forum }
  ],
  roles: [{ id: world.botRole, name: "aurora", managed: true }],
  nicknames: { [world.alice.id]: "Ally" }
}

/** Sharding (see Shards.ts): by default one shard, as the other tests expect. */
export interface FakeDiscordOptions extends ShardingOptions {
  readonly bot?: FakeUser
  /** Default: the bot's id (as for real applications). */
  readonly applicationId?: string
  /** Default: alice owns the application. */
  readonly owner?: FakeOwner
  /** Default: [defaultGuild]. */
  readonly guilds?: ReadonlyArray<FakeGuild>
  /** Users that may be mentioned by id (the bot, alice and bob are always known). */
  readonly users?: ReadonlyArray<FakeUser>
  /** Require this token (REST 401 / gateway close 4004 otherwise). Default: any token. */
  readonly token?: string
  /** Reject every token: REST answers 401, IDENTIFY is closed with 4004. */
  readonly rejectToken?: boolean
  readonly heartbeatIntervalMs?: number
  /** Dispatch MESSAGE_CREATE for messages the bot posts, as Discord does. Default true. */
  readonly echoBotMessages?: boolean
}

export interface MessageEdit {
  readonly channelId: string
  readonly messageId: string
  readonly via: "rest" | "interaction"
  /** What was asked. */
  readonly body: unknown
  /** The message after the edit. */
  readonly message: Json
  readonly at: number
}

export class DiscordState {
  readonly options: FakeDiscordOptions
  readonly bot: FakeUser
  readonly applicationId: string
  readonly guilds: ReadonlyArray<FakeGuild>
  readonly users = new Map<string, FakeUser>()
  readonly channels = new Map<string, { readonly channel: FakeChannel; readonly guild: FakeGuild }>()
  readonly forbidden = new Set<string>()
  readonly typingForbidden = new Set<string>()
  /** Channels where the bot lacks Add Reactions: a reaction answers 403 Missing Permissions. */
  readonly reactionsForbidden = new Set<string>()
  /** The bot's own reactions by channel id, then message id: the emoji (Discord keeps one per emoji). */
  readonly reactions = new Map<string, Map<string, Set<string>>>()
  /** DM channel id -> the user on the other side, and back. */
  readonly dmChannels = new Map<string, FakeUser>()
  readonly dmByUser = new Map<string, string>()
  /** Messages by channel id, then message id. */
  readonly store = new Map<string, Map<string, Json>>()
  /** By interaction token: the current reply, and the channel the interaction came from. */
  readonly interactionReplies = new Map<string, Json>()
  readonly interactionChannels = new Map<string, string>()
  /** By token: the interaction's type, and (component interactions) the message its component is on. */
  readonly interactionTypes = new Map<string, number>()
  readonly componentMessages = new Map<string, { readonly channelId: string; readonly messageId: string }>()
  /** Tokens of the interactions already answered with a callback. */
  readonly acknowledged = new Set<string>()
  /** Edits of channel messages (REST PATCH, or an interaction's UPDATE_MESSAGE), oldest first. */
  readonly edits: Array<MessageEdit> = []
  /** Bulk-overwritten commands by guild id, or "global". */
  readonly commands = new Map<string, ReadonlyArray<Json>>()
  /** Channel messages the bot created, with what it asked (see Posts.ts). */
  readonly posts: Array<BotPost> = []
  /** `<author id>:<nonce>` of enforced nonces -> the message created and when. */
  readonly nonces = new Map<string, { readonly message: Json; readonly at: number }>()
  /** While set, channel message posts are handled but answered only once `released` resolves. */
  heldPosts: { readonly released: Promise<void>; readonly release: () => void } | null = null
  /** While set, reads of a channel's messages are handled but answered only once `released` resolves. */
  heldReads: { readonly released: Promise<void>; readonly release: () => void } | null = null

  constructor(options: FakeDiscordOptions) {
    this.options = options
    this.bot = options.bot ?? world.bot
    this.applicationId = options.applicationId ?? this.bot.id
    this.guilds = options.guilds ?? [defaultGuild]
    for (const user of [this.bot, world.alice, world.bob, ...(options.users ?? [])]) this.users.set(user.id, user)
    for (const guild of this.guilds) {
      for (const channel of guild.channels) {
        this.channels.set(channel.id, { channel, guild })
        if (channel.forbidden === true) this.forbidden.add(channel.id)
        if (channel.typingForbidden === true) this.typingForbidden.add(channel.id)
      }
    }
  }

  tokenAccepted(token: string | undefined): boolean {
    if (this.options.rejectToken === true) return false
    return this.options.token === undefined || token === this.options.token
  }

  userById(id: string): FakeUser {
    return this.users.get(id) ?? { id, username: `user${id.slice(-4)}` }
  }

  /** Makes (or returns) the DM channel between the bot and a user. */
  dmChannelFor(user: FakeUser): string {
    this.users.set(user.id, user)
    const existing = this.dmByUser.get(user.id)
    if (existing !== undefined) return existing
    const channelId = snowflake()
    this.dmChannels.set(channelId, user)
    this.dmByUser.set(user.id, channelId)
    return channelId
  }

  storeJson(message: Json): void {
    const channelId = String(message["channel_id"])
    const channel = this.store.get(channelId) ?? new Map<string, Json>()
    channel.set(String(message["id"]), message)
    this.store.set(channelId, channel)
  }

  storedMessages(channelId: string): ReadonlyArray<Json> {
    return [...(this.store.get(channelId)?.values() ?? [])]
  }
}
