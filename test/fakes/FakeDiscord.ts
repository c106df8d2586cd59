/**
 * A loopback fake of Discord (REST v10 + gateway) good enough to drive the real discord.js 14
 * client: 127.0.0.1 on a free port, one HTTP server that also upgrades the gateway WebSocket,
 * in-memory guilds/channels/messages, and a record of every request and gateway event so tests
 * can assert what the bot did (and wait for it without sleeping).
 *
 * Scoped: `FakeDiscord.make(options)` closes every socket and the server when its scope closes.
 *
 * Parts, in test/fakes/discord/: State.ts (the default world, the options, the shared state),
 * Http.ts (matching, authenticating and recording requests) and Rest.ts (the routes), Posts.ts
 * (a bot's channel message posts: limits, replies, allowed mentions, nonces), Gateway.ts
 * (the WebSocket gateway) and Shards.ts (its sharding rules), Messages.ts (messages and
 * interactions as the fake builds them), Payloads.ts (Discord's JSON shapes), Records.ts (what
 * happened, with waiters). This file is what tests import: the fake's controls and accessors.
 */
import * as Http from "node:http"
import type { AddressInfo } from "node:net"
import { ConfigProvider, Duration, Effect, Layer, type Scope } from "effect"
import { serve } from "./discord/Http.js"
import { Gateway } from "./discord/Gateway.js"
import {
  buildInteraction,
  buildMessage,
  type InteractionInput,
  type InteractionPayload,
  type MessageInput
} from "./discord/Messages.js"
import type { FakeGuild, FakeUser, Json } from "./discord/Payloads.js"
import { type FakeTimeout, type GatewayEventKind, type GatewayRecord, Journal, type RecordedRequest } from "./discord/Records.js"
import type { BotPost } from "./discord/Posts.js"
import { makeRoutes } from "./discord/Rest.js"
import { DiscordState, type FakeDiscordOptions, type MessageEdit } from "./discord/State.js"

export { type FakeChannel, type FakeGuild, type FakeOwner, type FakeUser, snowflake, snowflakeTime } from "./discord/Payloads.js"
export { shardOf, type ShardPair } from "./discord/Shards.js"
export { FakeTimeout, type GatewayEventKind, type GatewayRecord, type RecordedRequest } from "./discord/Records.js"
export { type InteractionInput, type MessageInput } from "./discord/Messages.js"
export { type BotPost, nonceWindowMs } from "./discord/Posts.js"
export { defaultGuild, type FakeDiscordOptions, type MessageEdit, world } from "./discord/State.js"

export class FakeDiscord {
  /** Scoped: listening when it succeeds, every socket closed when the scope closes. */
  static make(options: FakeDiscordOptions = {}): Effect.Effect<FakeDiscord, never, Scope.Scope> {
    return Effect.acquireRelease(
      Effect.async<FakeDiscord>((resume) => {
        const fake = new FakeDiscord(options)
        fake.server.once("error", (error) => resume(Effect.die(error)))
        fake.server.listen(0, "127.0.0.1", () => resume(Effect.succeed(fake)))
      }),
      (fake) => fake.close
    )
  }

  readonly bot: FakeUser
  readonly applicationId: string
  readonly guilds: ReadonlyArray<FakeGuild>

  private readonly state: DiscordState
  private readonly gateway: Gateway
  private readonly server: Http.Server
  private readonly requestRecord = new Journal<RecordedRequest>()

  private constructor(options: FakeDiscordOptions) {
    this.state = new DiscordState(options)
    this.bot = this.state.bot
    this.applicationId = this.state.applicationId
    this.guilds = this.state.guilds
    this.gateway = new Gateway(this.state, () => this.gatewayUrl)
    const routes = makeRoutes(this.state, (t, d) => this.gateway.dispatch(t, d), () => this.gatewayUrl)
    this.server = Http.createServer(serve(routes, (token) => this.state.tokenAccepted(token), this.requestRecord))
    this.server.on("upgrade", (request, socket, head) => this.gateway.upgrade(request, socket, head))
  }

  // --- addresses and config ---------------------------------------------------------

  get port(): number {
    return (this.server.address() as AddressInfo).port
  }

  /** The REST base to give discord.js (`rest.api`) or DISCORD_API_URL. */
  get apiUrl(): string {
    return `http://127.0.0.1:${this.port}/api`
  }

  get gatewayUrl(): string {
    return `ws://127.0.0.1:${this.port}`
  }

  /** The token the fake expects (or a placeholder it accepts). */
  get token(): string {
    return this.state.options.token ?? "fake-discord-token"
  }

  /** DISCORD_TOKEN and DISCORD_API_URL pointing at this fake, plus `extra` settings. */
  configProvider(extra: Readonly<Record<string, string>> = {}): ConfigProvider.ConfigProvider {
    return ConfigProvider.fromMap(
      new Map(Object.entries({ DISCORD_TOKEN: this.token, DISCORD_API_URL: this.apiUrl, ...extra }))
    )
  }

  configLayer(extra: Readonly<Record<string, string>> = {}): Layer.Layer<never> {
    return Layer.setConfigProvider(this.configProvider(extra))
  }

  // --- what happened -----------------------------------------------------------------

  requests(): ReadonlyArray<RecordedRequest> {
    return this.requestRecord.all
  }

  gatewayEvents(): ReadonlyArray<GatewayRecord> {
    return this.gateway.record.all
  }

  identifyCount(): number {
    return this.gateway.identifyCount
  }

  resumeCount(): number {
    return this.gateway.resumeCount
  }

  /** Open gateway sockets right now. */
  openSockets(): number {
    return this.gateway.openSockets()
  }

  typingCalls(): ReadonlyArray<{ readonly channelId: string; readonly at: number; readonly status: number }> {
    return this.requestRecord.all.flatMap((request) => {
      const match = /^\/channels\/(\d+)\/typing$/.exec(request.path)
      return request.method === "POST" && match?.[1] !== undefined
        ? [{ channelId: match[1], at: request.at, status: request.status }]
        : []
    })
  }

  /**
   * The bot's reaction requests (`PUT .../reactions/{emoji}/@me`) in order, with what the fake
   * answered: Discord's PUT is idempotent, so counting requests is how a test sees a second one.
   */
  reactionCalls(): ReadonlyArray<
    { readonly channelId: string; readonly messageId: string; readonly emoji: string; readonly status: number }
  > {
    return this.requestRecord.all.flatMap((request) => {
      const match = /^\/channels\/(\d+)\/messages\/(\d+)\/reactions\/([^/]+)\/@me$/.exec(request.path)
      return request.method === "PUT" && match?.[1] !== undefined && match[2] !== undefined && match[3] !== undefined
        ? [{ channelId: match[1], messageId: match[2], emoji: match[3], status: request.status }]
        : []
    })
  }

  /** The emoji the bot's reactions show on a message now. */
  reactionsOn(channelId: string, messageId: string): ReadonlyArray<string> {
    return [...(this.state.reactions.get(channelId)?.get(messageId) ?? [])]
  }

  /** Bulk-overwritten application commands: global when `guildId` is omitted. */
  registeredCommands(guildId?: string): ReadonlyArray<Json> | undefined {
    return this.state.commands.get(guildId ?? "global")
  }

  /** A message as the REST store holds it (posted by the bot, sent or stored by the test). */
  storedMessage(channelId: string, messageId: string): Json | undefined {
    return this.state.store.get(channelId)?.get(messageId)
  }

  storedMessages(channelId: string): ReadonlyArray<Json> {
    return this.state.storedMessages(channelId)
  }

  /** Channel messages the bot created (a repeated nonce creates none), with the reference, allowed mentions and nonce it sent. */
  botPosts(): ReadonlyArray<BotPost> {
    return this.state.posts
  }

  /** The bot's messages that reply to `messageId` (their `message_reference`), oldest first. */
  botRepliesTo(messageId: string): ReadonlyArray<BotPost> {
    return this.state.posts.filter((post) => {
      const reference = post.message["message_reference"]
      return typeof reference === "object" && reference !== null && "message_id" in reference &&
        reference.message_id === messageId
    })
  }

  /** The interaction's current reply (callback message, or its later edit). */
  interactionReply(token: string): Json | undefined {
    return this.state.interactionReplies.get(token)
  }

  waitForRequest(
    predicate: (request: RecordedRequest) => boolean,
    timeout: Duration.DurationInput = Duration.seconds(10)
  ): Effect.Effect<RecordedRequest, FakeTimeout> {
    return this.requestRecord.waitFor(predicate, "a matching REST request", timeout)
  }

  waitForGateway(
    kind: GatewayEventKind,
    options: { readonly after?: number; readonly timeout?: Duration.DurationInput } = {}
  ): Effect.Effect<GatewayRecord, FakeTimeout> {
    const after = options.after ?? -1
    return this.gateway.record.waitFor(
      (event) => event.kind === kind && event.index > after,
      `gateway ${kind}`,
      options.timeout ?? Duration.seconds(10)
    )
  }

  /** READY and every GUILD_CREATE were sent (the first time, or after the mark `after`). */
  waitForReady(options: { readonly after?: number; readonly timeout?: Duration.DurationInput } = {}) {
    return this.waitForGateway("ready", options)
  }

  // --- test controls -------------------------------------------------------------------

  /** Posts a message as a user: stored for REST and dispatched as MESSAGE_CREATE. */
  sendMessage(input: MessageInput): Effect.Effect<Json> {
    return Effect.sync(() => {
      const message = buildMessage(this.state, input)
      this.state.storeJson(message)
      this.gateway.dispatch("MESSAGE_CREATE", message)
      return message
    })
  }

  /** Puts a message in the REST store only, as if it was sent before the bot connected. */
  storeMessage(input: MessageInput): Effect.Effect<Json> {
    return Effect.sync(() => {
      const message = buildMessage(this.state, input)
      this.state.storeJson(message)
      return message
    })
  }

  /** Deletes a message from the store and (by default) tells the gateway, as Discord does. */
  deleteMessage(channelId: string, messageId: string, options: { readonly dispatch?: boolean } = {}): Effect.Effect<void> {
    return Effect.sync(() => {
      this.state.store.get(channelId)?.delete(messageId)
      if (options.dispatch === false) return
      const guildId = this.state.channels.get(channelId)?.guild.id
      this.gateway.dispatch("MESSAGE_DELETE", {
        id: messageId,
        channel_id: channelId,
        ...(guildId ? { guild_id: guildId } : {})
      })
    })
  }

  /** Dispatches INTERACTION_CREATE; returns the payload (its id and token identify the reply). */
  sendInteraction(input: InteractionInput = {}): Effect.Effect<InteractionPayload> {
    return Effect.sync(() => {
      const interaction = buildInteraction(this.state, input)
      this.gateway.dispatch("INTERACTION_CREATE", interaction)
      return interaction
    })
  }

  /**
   * Clicks a button of `message` (as the store holds it): INTERACTION_CREATE of type 3
   * (MESSAGE_COMPONENT) with `data: { custom_id, component_type: 2 }` and the message, from `user`
   * with the member `permissions` (a guild channel) or as a DM user (a DM channel).
   */
  clickButton(
    input: {
      readonly message: Json
      readonly customId: string
      readonly user?: FakeUser
      readonly permissions?: string
    }
  ): Effect.Effect<InteractionPayload> {
    const channelId = String(input.message["channel_id"])
    const guildId = this.state.channels.get(channelId)?.guild.id ?? null
    return this.sendInteraction({
      type: 3,
      guildId,
      channelId,
      ...(input.user === undefined ? {} : { user: input.user }),
      ...(input.permissions === undefined ? {} : { permissions: input.permissions }),
      data: { custom_id: input.customId, component_type: 2 },
      message: input.message
    })
  }

  /** Edits of channel messages (REST PATCH, or a component interaction's UPDATE_MESSAGE), oldest first. */
  messageEdits(): ReadonlyArray<MessageEdit> {
    return this.state.edits
  }

  /** Makes (or returns) the DM channel between the bot and a user. */
  dmChannelFor(user: FakeUser): string {
    return this.state.dmChannelFor(user)
  }

  setForbidden(channelId: string, forbidden: boolean): void {
    if (forbidden) this.state.forbidden.add(channelId)
    else this.state.forbidden.delete(channelId)
  }

  /**
   * From now on, channel message posts are handled as usual (created, stored, echoed on the
   * gateway) but their HTTP answers are held until `releasePosts` (or the client goes away).
   */
  holdPosts(): Effect.Effect<void> {
    return Effect.sync(() => {
      if (this.state.heldPosts !== null) return
      let release = () => {}
      const released = new Promise<void>((resolve) => (release = resolve))
      this.state.heldPosts = { released, release }
    })
  }

  /** Answers the held posts and stops holding. */
  releasePosts(): Effect.Effect<void> {
    return Effect.sync(() => {
      this.state.heldPosts?.release()
      this.state.heldPosts = null
    })
  }

  /** From now on, reads of a channel's messages are handled but answered only at `releaseReads`, as posts above. */
  holdReads(): Effect.Effect<void> {
    return Effect.sync(() => {
      if (this.state.heldReads !== null) return
      let release = () => {}
      this.state.heldReads = { released: new Promise<void>((resolve) => (release = resolve)), release }
    })
  }

  /** Answers the held reads and stops holding. */
  releaseReads(): Effect.Effect<void> {
    return Effect.sync(() => {
      this.state.heldReads?.release()
      this.state.heldReads = null
    })
  }

  setTypingForbidden(channelId: string, forbidden: boolean): void {
    if (forbidden) this.state.typingForbidden.add(channelId)
    else this.state.typingForbidden.delete(channelId)
  }

  /** Without Add Reactions in the channel: the bot's reactions there answer 403 Missing Permissions (50013). */
  setReactionsForbidden(channelId: string, forbidden: boolean): void {
    if (forbidden) this.state.reactionsForbidden.add(channelId)
    else this.state.reactionsForbidden.delete(channelId)
  }

  /** Closes one shard's socket with a close code, as Discord does (e.g. 4011 once sharding is required). */
  closeShard(shardId: number, code: number, reason = ""): Effect.Effect<void> {
    return Effect.sync(() => this.gateway.closeShard(shardId, code, reason))
  }

  /** Kills the gateway socket without a close frame (close 1006): discord.js should resume. */
  dropConnection(): Effect.Effect<void> {
    return Effect.sync(() => this.gateway.terminateSockets())
  }

  private get close(): Effect.Effect<void> {
    return Effect.async<void>((resume) => {
      this.state.heldPosts?.release()
      this.state.heldReads?.release()
      this.gateway.close()
      this.server.closeAllConnections()
      this.server.close(() => resume(Effect.void))
    })
  }
}
