/**
 * How Aurora's discord.js client is built: the intents it needs, what it caches, and its shards.
 */
import { type ClientOptions, GatewayIntentBits, Options, Partials } from "discord.js"
import { type ShardCount, shardOptions } from "./Shards.js"

/** Messages kept per channel for reply chains (discord.js' default is 200). */
const messageCacheSize = 50
/** Cached messages older than this (seconds) are swept, every `messageSweepInterval` seconds. */
const messageLifetime = 30 * 60
const messageSweepInterval = 5 * 60

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
  makeCache: Options.cacheWithLimits({ ...Options.DefaultMakeCacheSettings, MessageManager: messageCacheSize }),
  sweepers: {
    ...Options.DefaultSweeperSettings,
    messages: { interval: messageSweepInterval, lifetime: messageLifetime }
  },
  ...shardOptions(options.shardCount),
  ...(options.apiUrl === null ? {} : { rest: { api: options.apiUrl } })
})
