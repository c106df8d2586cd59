/**
 * How Aurora's discord.js client is built: the intents it needs, what it caches, and its shards.
 */
import { type CacheWithLimitsOptions, type ClientOptions, GatewayIntentBits, Options, Partials } from "discord.js"
import { type ShardCount, shardOptions } from "./Shards.js"

/**
 * Messages kept per channel for reply chains (discord.js' default is 200). The trigger decision
 * no longer needs the cache (a reply's payload names the replied-to author, Intake.ts); the
 * reply-chain reads do. Measured with the chatter benchmark's replies (BENCHMARKS.md, #17): 50 served
 * every chain parent from the cache, 20 or fewer sent about 30 % of them to REST.
 */
export const messageCacheSize = 50
/** Cached messages older than this (seconds) are swept, every `messageSweepInterval` seconds. */
const messageLifetime = 30 * 60
const messageSweepInterval = 5 * 60

/**
 * Members kept per guild, and users kept in all (discord.js keeps every one it has seen, forever:
 * in a busy server, every author). Aurora reads a member only for a cached reply-chain parent's
 * nickname (DiscordMapping; without it the global name is shown) and never reads a user from the
 * cache, so the most recently added ones are enough. The bot's own member and user are always kept
 * (discord.js reads them for its own permissions).
 */
export const memberCacheSize = 500
export const userCacheSize = 5000

interface Owned {
  readonly id: string
  readonly client: { readonly user: { readonly id: string } | null }
}
/** The bot's own entry stays over the limit. */
export const isOwn = (entry: Owned): boolean => entry.id === entry.client.user?.id

/** discord.js caches that nothing in Aurora reads. */
export const unreadCaches = [
  "AutoModerationRuleManager",
  "GuildBanManager",
  "GuildEmojiManager",
  "GuildInviteManager",
  "GuildScheduledEventManager",
  "GuildStickerManager",
  "PresenceManager",
  "ReactionManager",
  "ReactionUserManager",
  "StageInstanceManager",
  "VoiceStateManager"
] as const

/** discord.js' cache limits by manager (a manager not named here caches without a limit). */
export const cacheLimits: CacheWithLimitsOptions = {
  ...Options.DefaultMakeCacheSettings,
  MessageManager: messageCacheSize,
  GuildMemberManager: { maxSize: memberCacheSize, keepOverLimit: isOwn },
  UserManager: { maxSize: userCacheSize, keepOverLimit: isOwn },
  ...Object.fromEntries(unreadCaches.map((manager) => [manager, 0]))
}

export const clientOptions = (options: {
  readonly shardCount: ShardCount
  /** The REST base (DISCORD_API_URL); Discord's own when absent. */
  readonly apiUrl: string | null
}): ClientOptions => ({
  intents: [
    GatewayIntentBits.Guilds,
    GatewayIntentBits.GuildMessages,
    GatewayIntentBits.MessageContent,
    GatewayIntentBits.DirectMessages
  ],
  // DM channels are not cached before their first message: without this partial, discord.js
  // drops direct messages.
  partials: [Partials.Channel],
  // The message cache only serves reply-chain reads (cache before REST), which look at recent
  // messages; discord.js keeps 200 per channel forever by default, so a long-running bot's
  // memory would grow with every channel it has seen.
  // What Aurora never reads is not cached at all: a guild's emojis, stickers, voice states,
  // scheduled events and the rest would otherwise be kept from GUILD_CREATE on, for every guild.
  // Members and users are bounded (the most recent ones; the bot's own always stays). Guilds,
  // channels, roles (role mentions) and threads stay as discord.js keeps them.
  makeCache: Options.cacheWithLimits(cacheLimits),
  sweepers: {
    ...Options.DefaultSweeperSettings,
    messages: { interval: messageSweepInterval, lifetime: messageLifetime }
  },
  ...shardOptions(options.shardCount),
  ...(options.apiUrl === null ? {} : { rest: { api: options.apiUrl } })
})
