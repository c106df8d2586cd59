/**
 * A loopback fake of Discord (REST v10 + gateway) good enough to drive the real discord.js 14
 * client: 127.0.0.1 on a free port, one HTTP server that also upgrades the gateway WebSocket,
 * in-memory guilds/channels/messages, and a record of every request and gateway event so tests
 * can assert what the bot did (and wait for it without sleeping).
 *
 * Scoped: `FakeDiscord.make(options)` closes every socket and the server when its scope closes.
 */
import * as Http from "node:http"
import { randomBytes } from "node:crypto"
import type { AddressInfo } from "node:net"
import { ChannelType } from "discord.js"
import { ConfigProvider, Data, Deferred, Duration, Effect, Exit, FiberId, Layer, type Scope } from "effect"
import { type RawData, WebSocket, WebSocketServer } from "ws"
import {
  applicationPayload,
  channelPayload,
  dmChannelPayload,
  type FakeChannel,
  type FakeGuild,
  type FakeOwner,
  type FakeUser,
  guildCreatePayload,
  type Json,
  memberPayload,
  snowflake,
  snowflakeTime,
  userPayload
} from "./discord/Payloads.js"
import {
  gatewayBotPayload,
  identifyVerdict,
  type Session,
  shardField,
  type ShardingOptions,
  type ShardPair,
  ShardSessions
} from "./discord/Shards.js"

export { type FakeChannel, type FakeGuild, type FakeOwner, type FakeUser, snowflake, snowflakeTime }
export { shardOf, type ShardPair } from "./discord/Shards.js"

// --- the default world -----------------------------------------------------------

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

// --- records --------------------------------------------------------------------

export class FakeTimeout extends Data.TaggedError("FakeTimeout")<{ readonly waitingFor: string }> {}

export interface RecordedRequest {
  /** Position in the record: tests take `requests().length` as a mark and wait for later ones. */
  readonly index: number
  readonly method: string
  /** The path after `/api/v10`, percent-decoded (`@original`), without the query string. */
  readonly path: string
  readonly query: string
  readonly body: unknown
  readonly at: number
  readonly status: number
  /** No route matched: the fake answered 404. An unexpected call the test may want to see. */
  readonly unknownRoute: boolean
}

export type GatewayEventKind =
  | "connect"
  | "identify"
  | "ready"
  | "resume"
  | "resumed"
  | "invalid-session"
  | "close"

export interface GatewayRecord {
  readonly index: number
  readonly kind: GatewayEventKind
  readonly at: number
  /** The close code, for "close". */
  readonly code?: number
  /** The sequence number the client resumed from, for "resume". */
  readonly seq?: number
  /** Dispatches the client had missed and were sent again, for "resumed". */
  readonly replayed?: number
  /** The shard, for "identify" (as asked) and "ready". */
  readonly shard?: ShardPair
}

/** An append-only record with waiters: a wait is answered by a past entry or the next match. */
class Journal<A extends { readonly index: number }> {
  private readonly entries: Array<A> = []
  private readonly waiters = new Set<{ predicate: (a: A) => boolean; deferred: Deferred.Deferred<A> }>()

  get all(): ReadonlyArray<A> {
    return this.entries
  }

  get size(): number {
    return this.entries.length
  }

  push(make: (index: number) => A): A {
    const entry = make(this.entries.length)
    this.entries.push(entry)
    for (const waiter of this.waiters) {
      if (waiter.predicate(entry)) {
        this.waiters.delete(waiter)
        Deferred.unsafeDone(waiter.deferred, Exit.succeed(entry))
      }
    }
    return entry
  }

  waitFor(predicate: (a: A) => boolean, label: string, timeout: Duration.DurationInput): Effect.Effect<A, FakeTimeout> {
    return Effect.suspend(() => {
      const found = this.entries.find(predicate)
      if (found !== undefined) return Effect.succeed(found)
      const waiter = { predicate, deferred: Deferred.unsafeMake<A>(FiberId.none) }
      this.waiters.add(waiter)
      return Deferred.await(waiter.deferred).pipe(
        Effect.timeoutFail({ duration: timeout, onTimeout: () => new FakeTimeout({ waitingFor: label }) }),
        Effect.ensuring(Effect.sync(() => this.waiters.delete(waiter)))
      )
    })
  }
}

// --- inputs ---------------------------------------------------------------------

export interface MessageInput {
  readonly channelId: string
  readonly content?: string
  /** Default: alice. */
  readonly author?: FakeUser
  readonly id?: string
  /** Creation time (epoch ms) encoded in the generated id; default now. */
  readonly at?: number
  /** User ids mentioned (`mentions`). */
  readonly mentions?: ReadonlyArray<string>
  readonly mentionRoles?: ReadonlyArray<string>
  readonly mentionEveryone?: boolean
  /** Makes it a reply (type 19) to this message id. */
  readonly replyTo?: string
  /** Channel of the replied-to message, default the same channel. */
  readonly replyToChannelId?: string
  /** Include `referenced_message` (from the store; null when absent). Default true for replies. */
  readonly includeReferenced?: boolean
  readonly webhookId?: string
  readonly embeds?: ReadonlyArray<Json>
  readonly attachments?: ReadonlyArray<Json>
  readonly editedAt?: number
}

export interface InteractionInput {
  readonly id?: string
  readonly token?: string
  /** 2 application command (default), 3 component, 4 autocomplete, 5 modal submit. */
  readonly type?: number
  /** Default: the default world's guild; null for an interaction in a DM. */
  readonly guildId?: string | null
  readonly channelId?: string
  /** Default: alice. */
  readonly user?: FakeUser
  /** The member's permission bitfield as a decimal string (Manage Server is 32). Default "0". */
  readonly permissions?: string
  /** The interaction's `data`, e.g. `{ name: "aurora", type: 1, options: [...] }`; an id is added. */
  readonly data?: Json
}

/** Sharding (see discord/Shards.ts): by default one shard, as the other tests expect. */
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

// --- the fake ---------------------------------------------------------------------

interface Reply {
  readonly status: number
  readonly body?: unknown
  /** Runs after the response is sent (e.g. the gateway echo of a posted message). */
  readonly after?: () => void
}

interface RouteContext {
  readonly params: ReadonlyArray<string>
  readonly query: URLSearchParams
  readonly body: unknown
}

interface Route {
  readonly method: string
  readonly pattern: RegExp
  /** Interaction callbacks and webhooks are authenticated by their token, not the bot token. */
  readonly auth: boolean
  readonly handle: (context: RouteContext) => Reply
}

const json = (status: number, body: unknown): Reply => ({ status, body })
const noContent: Reply = { status: 204 }
const discordError = (status: number, code: number, message: string): Reply => json(status, { message, code })
const unknownChannel = discordError(404, 10003, "Unknown Channel")
const unknownMessage = discordError(404, 10008, "Unknown Message")
const missingAccess = discordError(403, 50001, "Missing Access")

const isJson = (value: unknown): value is Readonly<Record<string, unknown>> =>
  typeof value === "object" && value !== null && !Array.isArray(value)

const field = (body: unknown, key: string): unknown => (isJson(body) ? body[key] : undefined)

const stringField = (body: unknown, key: string): string | undefined => {
  const value = field(body, key)
  return typeof value === "string" ? value : undefined
}

const compareIds = (a: string, b: string): number => {
  const x = BigInt(a)
  const y = BigInt(b)
  return x < y ? -1 : x > y ? 1 : 0
}

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

  private readonly options: FakeDiscordOptions
  private readonly server: Http.Server
  private readonly wss: WebSocketServer
  private readonly sockets = new Set<WebSocket>()
  private readonly requestRecord = new Journal<RecordedRequest>()
  private readonly gatewayRecord = new Journal<GatewayRecord>()
  private readonly users = new Map<string, FakeUser>()
  private readonly channels = new Map<string, { readonly channel: FakeChannel; readonly guild: FakeGuild }>()
  private readonly forbidden = new Set<string>()
  private readonly typingForbidden = new Set<string>()
  private readonly dmChannels = new Map<string, FakeUser>()
  private readonly dmByUser = new Map<string, string>()
  private readonly store = new Map<string, Map<string, Json>>()
  private readonly interactionReplies = new Map<string, Json>()
  private readonly interactionChannels = new Map<string, string>()
  private readonly commands = new Map<string, ReadonlyArray<Json>>()
  private readonly routes: ReadonlyArray<Route>
  private readonly sessions = new ShardSessions()
  private identifies = 0
  private resumes = 0

  private constructor(options: FakeDiscordOptions) {
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
    this.routes = this.makeRoutes()
    this.server = Http.createServer((request, response) => this.onRequest(request, response))
    this.wss = new WebSocketServer({ noServer: true })
    this.server.on("upgrade", (request, socket, head) => {
      this.wss.handleUpgrade(request, socket, head, (ws) => this.onSocket(ws))
    })
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
    return this.options.token ?? "fake-discord-token"
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
    return this.gatewayRecord.all
  }

  identifyCount(): number {
    return this.identifies
  }

  resumeCount(): number {
    return this.resumes
  }

  /** Open gateway sockets right now. */
  openSockets(): number {
    return [...this.sockets].filter((socket) => socket.readyState === WebSocket.OPEN).length
  }

  typingCalls(): ReadonlyArray<{ readonly channelId: string; readonly at: number; readonly status: number }> {
    return this.requestRecord.all.flatMap((request) => {
      const match = /^\/channels\/(\d+)\/typing$/.exec(request.path)
      return request.method === "POST" && match?.[1] !== undefined
        ? [{ channelId: match[1], at: request.at, status: request.status }]
        : []
    })
  }

  /** Bulk-overwritten application commands: global when `guildId` is omitted. */
  registeredCommands(guildId?: string): ReadonlyArray<Json> | undefined {
    return this.commands.get(guildId ?? "global")
  }

  /** A message as the REST store holds it (posted by the bot, sent or stored by the test). */
  storedMessage(channelId: string, messageId: string): Json | undefined {
    return this.store.get(channelId)?.get(messageId)
  }

  storedMessages(channelId: string): ReadonlyArray<Json> {
    return [...(this.store.get(channelId)?.values() ?? [])]
  }

  /** The interaction's current reply (callback message, or its later edit). */
  interactionReply(token: string): Json | undefined {
    return this.interactionReplies.get(token)
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
    return this.gatewayRecord.waitFor(
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
      const message = this.buildMessage(input)
      this.storeJson(message)
      this.dispatch("MESSAGE_CREATE", message)
      return message
    })
  }

  /** Puts a message in the REST store only, as if it was sent before the bot connected. */
  storeMessage(input: MessageInput): Effect.Effect<Json> {
    return Effect.sync(() => {
      const message = this.buildMessage(input)
      this.storeJson(message)
      return message
    })
  }

  /** Deletes a message from the store and (by default) tells the gateway, as Discord does. */
  deleteMessage(channelId: string, messageId: string, options: { readonly dispatch?: boolean } = {}): Effect.Effect<void> {
    return Effect.sync(() => {
      this.store.get(channelId)?.delete(messageId)
      if (options.dispatch === false) return
      const guildId = this.channels.get(channelId)?.guild.id
      this.dispatch("MESSAGE_DELETE", { id: messageId, channel_id: channelId, ...(guildId ? { guild_id: guildId } : {}) })
    })
  }

  /** Dispatches INTERACTION_CREATE; returns the payload (its id and token identify the reply). */
  sendInteraction(input: InteractionInput = {}): Effect.Effect<Json & { readonly id: string; readonly token: string }> {
    return Effect.sync(() => {
      const interaction = this.buildInteraction(input)
      this.dispatch("INTERACTION_CREATE", interaction)
      return interaction
    })
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

  setForbidden(channelId: string, forbidden: boolean): void {
    if (forbidden) this.forbidden.add(channelId)
    else this.forbidden.delete(channelId)
  }

  setTypingForbidden(channelId: string, forbidden: boolean): void {
    if (forbidden) this.typingForbidden.add(channelId)
    else this.typingForbidden.delete(channelId)
  }

  /** Closes one shard's socket with a close code, as Discord does (e.g. 4011 once sharding is required). */
  closeShard(shardId: number, code: number, reason = ""): Effect.Effect<void> {
    return Effect.sync(() => this.sessions.socketOf(shardId)?.close(code, reason))
  }

  /** Kills the gateway socket without a close frame (close 1006): discord.js should resume. */
  dropConnection(): Effect.Effect<void> {
    return Effect.sync(() => {
      for (const socket of this.sockets) socket.terminate()
    })
  }

  // --- gateway -----------------------------------------------------------------------

  private onSocket(socket: WebSocket): void {
    this.sockets.add(socket)
    this.gatewayRecord.push((index) => ({ index, kind: "connect", at: Date.now() }))
    socket.on("message", (data) => this.onFrame(socket, data))
    socket.on("error", () => undefined)
    socket.on("close", (code) => {
      this.sockets.delete(socket)
      this.sessions.detach(socket)
      this.gatewayRecord.push((index) => ({ index, kind: "close", at: Date.now(), code }))
    })
    this.sendFrame(socket, { op: 10, d: { heartbeat_interval: this.options.heartbeatIntervalMs ?? 41_250 } })
  }

  private onFrame(socket: WebSocket, data: RawData): void {
    let frame: unknown
    try {
      frame = JSON.parse(data.toString())
    } catch {
      socket.close(4002, "Decode error")
      return
    }
    const op = field(frame, "op")
    const d = field(frame, "d")
    switch (op) {
      case 1:
        return this.sendFrame(socket, { op: 11 })
      case 2:
        return this.identify(socket, d)
      case 6:
        return this.resume(socket, d)
      default:
        // Presence updates, guild member requests, voice: accepted and ignored.
        return
    }
  }

  private tokenAccepted(token: string | undefined): boolean {
    if (this.options.rejectToken === true) return false
    return this.options.token === undefined || token === this.options.token
  }

  private identify(socket: WebSocket, d: unknown): void {
    const asked = shardField(d)
    this.gatewayRecord.push((index) => ({ index, kind: "identify", at: Date.now(), ...(asked === null ? {} : { shard: asked }) }))
    if (!this.tokenAccepted(stringField(d, "token"))) {
      socket.close(4004, "Authentication failed")
      return
    }
    const verdict = identifyVerdict(d, this.guilds, this.options)
    if (verdict._tag === "Close") {
      socket.close(verdict.code, verdict.reason)
      return
    }
    this.identifies++
    const session = this.sessions.start(socket, verdict.shard)
    this.dispatchTo(session, "READY", {
      v: 10,
      user: { ...userPayload(this.bot), bot: true, verified: true, mfa_enabled: false, flags: 0 },
      guilds: verdict.guilds.map((guild) => ({ id: guild.id, unavailable: true })),
      session_id: session.id,
      resume_gateway_url: this.gatewayUrl,
      shard: verdict.shard,
      application: { id: this.applicationId, flags: 0 },
      private_channels: [],
      relationships: [],
      presences: [],
      guild_join_requests: []
    })
    for (const guild of verdict.guilds) this.dispatchTo(session, "GUILD_CREATE", guildCreatePayload(guild, this.bot.id))
    this.gatewayRecord.push((index) => ({ index, kind: "ready", at: Date.now(), shard: verdict.shard }))
  }

  private resume(socket: WebSocket, d: unknown): void {
    const session = this.sessions.find(stringField(d, "session_id"))
    const seq = field(d, "seq")
    this.gatewayRecord.push((index) => ({
      index,
      kind: "resume",
      at: Date.now(),
      ...(typeof seq === "number" ? { seq } : {})
    }))
    if (session === undefined || !this.tokenAccepted(stringField(d, "token"))) {
      this.gatewayRecord.push((index) => ({ index, kind: "invalid-session", at: Date.now() }))
      this.sendFrame(socket, { op: 9, d: false })
      return
    }
    this.resumes++
    session.socket = socket
    const from = typeof seq === "number" ? seq : 0
    const missed = session.log.filter((frame) => frame.s > from)
    for (const frame of missed) this.sendFrame(socket, frame)
    this.dispatchTo(session, "RESUMED", {})
    this.gatewayRecord.push((index) => ({ index, kind: "resumed", at: Date.now(), replayed: missed.length }))
  }

  /** To the session of the event's shard (see discord/Shards.ts); dropped before it identified. */
  private dispatch(t: string, d: Json): void {
    const session = this.sessions.route(t, d)
    if (session !== undefined) this.dispatchTo(session, t, d)
  }

  /** Sequenced and logged for RESUME; sent now only if the session has a live socket. */
  private dispatchTo(session: Session, t: string, d: Json): void {
    session.seq++
    const frame = { op: 0, t, s: session.seq, d }
    session.log.push(frame)
    if (session.socket !== null) this.sendFrame(session.socket, frame)
  }

  private sendFrame(socket: WebSocket, frame: Json): void {
    if (socket.readyState === WebSocket.OPEN) socket.send(JSON.stringify(frame))
  }

  // --- payloads -----------------------------------------------------------------------

  private userById(id: string): FakeUser {
    return this.users.get(id) ?? { id, username: `user${id.slice(-4)}` }
  }

  private buildMessage(input: MessageInput): Json {
    const author = input.author ?? world.alice
    this.users.set(author.id, author)
    const id = input.id ?? snowflake(input.at ?? Date.now())
    const location = this.channels.get(input.channelId)
    const guildId = location?.guild.id ?? null
    // A channel outside every guild is a DM between the bot and the (non-bot) author.
    if (location === undefined && !this.dmChannels.has(input.channelId) && author.id !== this.bot.id) {
      this.dmChannels.set(input.channelId, author)
      this.dmByUser.set(author.id, input.channelId)
    }
    const nick = location?.guild.nicknames?.[author.id] ?? null
    const reply = input.replyTo
    const referencedChannel = input.replyToChannelId ?? input.channelId
    const referenced = reply === undefined ? undefined : this.store.get(referencedChannel)?.get(reply)
    return {
      id,
      channel_id: input.channelId,
      ...(guildId === null ? { channel_type: ChannelType.DM } : { guild_id: guildId }),
      author: userPayload(author),
      ...(guildId !== null && input.webhookId === undefined
        ? { member: { ...memberPayload(author, nick), user: undefined } }
        : {}),
      content: input.content ?? "",
      timestamp: new Date(snowflakeTime(id)).toISOString(),
      edited_timestamp: input.editedAt === undefined ? null : new Date(input.editedAt).toISOString(),
      tts: false,
      mention_everyone: input.mentionEveryone ?? false,
      mentions: (input.mentions ?? []).map((userId) => userPayload(this.userById(userId))),
      mention_roles: input.mentionRoles ?? [],
      attachments: input.attachments ?? [],
      embeds: input.embeds ?? [],
      pinned: false,
      type: reply === undefined ? 0 : 19,
      flags: 0,
      ...(input.webhookId === undefined ? {} : { webhook_id: input.webhookId }),
      ...(reply === undefined
        ? {}
        : {
          message_reference: {
            type: 0,
            message_id: reply,
            channel_id: referencedChannel,
            ...(guildId === null ? {} : { guild_id: guildId })
          },
          ...(input.includeReferenced === false
            ? {}
            : { referenced_message: referenced === undefined ? null : { ...referenced, referenced_message: undefined } })
        })
    }
  }

  private storeJson(message: Json): void {
    const channelId = String(message["channel_id"])
    const channel = this.store.get(channelId) ?? new Map<string, Json>()
    channel.set(String(message["id"]), message)
    this.store.set(channelId, channel)
  }

  private buildInteraction(input: InteractionInput): Json & { readonly id: string; readonly token: string } {
    const id = input.id ?? snowflake()
    const token = input.token ?? `interaction-token-${randomBytes(8).toString("hex")}`
    const user = input.user ?? world.alice
    this.users.set(user.id, user)
    const guildId = input.guildId === undefined ? this.guilds[0]?.id ?? null : input.guildId
    const channelId = input.channelId ?? (guildId === null ? this.dmChannelFor(user) : world.general)
    const location = this.channels.get(channelId)
    this.interactionChannels.set(token, channelId)
    const channel = location === undefined
      ? dmChannelPayload(channelId, user)
      : channelPayload(location.channel, location.guild.id)
    const nick = location?.guild.nicknames?.[user.id] ?? null
    return {
      id,
      token,
      application_id: this.applicationId,
      type: input.type ?? 2,
      version: 1,
      channel_id: channelId,
      channel,
      ...(guildId === null
        ? { user: userPayload(user), context: 1 }
        : { guild_id: guildId, member: memberPayload(user, nick, input.permissions ?? "0"), context: 0 }),
      data: { id: snowflake(), name: "aurora", type: 1, ...input.data },
      locale: "en-US",
      guild_locale: "en-US",
      app_permissions: "2248473465835073",
      entitlements: [],
      authorizing_integration_owners: guildId === null ? { "1": user.id } : { "0": guildId },
      attachment_size_limit: 8_388_608
    }
  }

  /** A message the bot posts (channel message, DM, interaction reply). */
  private botMessage(channelId: string, body: unknown, extra: Json = {}): Json {
    const reference = field(body, "message_reference")
    const replyTo = stringField(reference, "message_id")
    const message = this.buildMessage({
      channelId,
      author: this.bot,
      content: stringField(body, "content") ?? "",
      ...(replyTo === undefined ? {} : { replyTo }),
      embeds: this.jsonArray(field(body, "embeds"))
    })
    return { ...message, ...extra, member: undefined }
  }

  private jsonArray(value: unknown): ReadonlyArray<Json> {
    return Array.isArray(value)
      ? value.filter((item): item is Json => typeof item === "object" && item !== null)
      : []
  }

  // --- REST ----------------------------------------------------------------------------

  private makeRoutes(): ReadonlyArray<Route> {
    const route = (method: string, pattern: RegExp, handle: Route["handle"], auth = true): Route => ({
      method,
      pattern,
      auth,
      handle
    })
    const param = (context: RouteContext, i: number): string => context.params[i] ?? ""
    const channelCheck = (channelId: string): Reply | null => {
      if (this.forbidden.has(channelId)) return missingAccess
      if (!this.channels.has(channelId) && !this.dmChannels.has(channelId)) return unknownChannel
      return null
    }
    const botPost = (message: Json): Reply => {
      this.storeJson(message)
      return {
        status: 200,
        body: message,
        after: () => {
          if (this.options.echoBotMessages !== false) this.dispatch("MESSAGE_CREATE", message)
        }
      }
    }
    const commandsReply = (key: string, guildId: string | undefined, body: unknown): Reply => {
      const commands = (Array.isArray(body) ? body : []).map((command: unknown): Json => ({
        id: snowflake(),
        application_id: this.applicationId,
        version: snowflake(),
        type: 1,
        default_member_permissions: null,
        nsfw: false,
        ...(typeof command === "object" && command !== null ? command : {}),
        ...(guildId === undefined ? {} : { guild_id: guildId })
      }))
      this.commands.set(key, commands)
      return json(200, commands)
    }
    const interactionMessage = (token: string, body: unknown): Json => {
      const previous = this.interactionReplies.get(token)
      const channelId = this.interactionChannels.get(token) ?? world.general
      const message = this.botMessage(channelId, body, {
        webhook_id: this.applicationId,
        flags: typeof field(body, "flags") === "number" ? field(body, "flags") : 0,
        ...(previous === undefined ? {} : { id: previous["id"] })
      })
      this.interactionReplies.set(token, message)
      return message
    }
    const appOwner: FakeOwner = this.options.owner ?? { _tag: "User", user: world.alice }
    const application = () => json(200, applicationPayload(this.applicationId, this.bot, appOwner))

    return [
      route("GET", /^\/gateway\/bot$/, () => json(200, gatewayBotPayload(this.gatewayUrl, this.options))),
      route("GET", /^\/gateway$/, () => json(200, { url: this.gatewayUrl }), false),
      route("GET", /^\/users\/@me$/, () => json(200, { ...userPayload(this.bot), bot: true, verified: true })),
      route("GET", /^\/oauth2\/applications\/@me$/, application),
      route("GET", /^\/applications\/@me$/, application),
      route("POST", /^\/users\/@me\/channels$/, ({ body }) => {
        const recipient = stringField(body, "recipient_id")
        if (recipient === undefined) return discordError(400, 50035, "Invalid Form Body")
        const user = this.userById(recipient)
        return json(200, dmChannelPayload(this.dmChannelFor(user), user))
      }),
      route("GET", /^\/channels\/(\d+)$/, (context) => {
        const channelId = param(context, 0)
        const failure = channelCheck(channelId)
        if (failure !== null) return failure
        const location = this.channels.get(channelId)
        if (location !== undefined) return json(200, channelPayload(location.channel, location.guild.id))
        return json(200, dmChannelPayload(channelId, this.dmChannels.get(channelId) ?? world.alice))
      }),
      route("GET", /^\/channels\/(\d+)\/messages\/(\d+)$/, (context) => {
        const failure = channelCheck(param(context, 0))
        if (failure !== null) return failure
        const message = this.store.get(param(context, 0))?.get(param(context, 1))
        return message === undefined ? unknownMessage : json(200, message)
      }),
      route("GET", /^\/channels\/(\d+)\/messages$/, (context) => {
        const failure = channelCheck(param(context, 0))
        if (failure !== null) return failure
        const before = context.query.get("before")
        const after = context.query.get("after")
        const limit = Number(context.query.get("limit") ?? "50")
        const list = this.storedMessages(param(context, 0))
          .filter((message) => before === null || compareIds(String(message["id"]), before) < 0)
          .filter((message) => after === null || compareIds(String(message["id"]), after) > 0)
          .sort((a, b) => compareIds(String(b["id"]), String(a["id"])))
          .slice(0, limit)
        return json(200, list)
      }),
      route("POST", /^\/channels\/(\d+)\/messages$/, (context) => {
        const channelId = param(context, 0)
        const failure = channelCheck(channelId)
        if (failure !== null) return failure
        return botPost(this.botMessage(channelId, context.body))
      }),
      route("POST", /^\/channels\/(\d+)\/typing$/, (context) => {
        const channelId = param(context, 0)
        const failure = channelCheck(channelId)
        if (failure !== null) return failure
        return this.typingForbidden.has(channelId) ? discordError(403, 50013, "Missing Permissions") : noContent
      }),
      route("GET", /^\/applications\/(\d+)\/commands$/, () => json(200, this.commands.get("global") ?? [])),
      route("PUT", /^\/applications\/(\d+)\/commands$/, ({ body }) => commandsReply("global", undefined, body)),
      route(
        "PUT",
        /^\/applications\/(\d+)\/guilds\/(\d+)\/commands$/,
        (context) => commandsReply(param(context, 1), param(context, 1), context.body)
      ),
      route("POST", /^\/interactions\/(\d+)\/([^/]+)\/callback$/, (context) => {
        const token = param(context, 1)
        const type = field(context.body, "type")
        const data = field(context.body, "data")
        // 4: reply with a message; 5: deferred (the reply comes as an edit of @original).
        const message = type === 4 ? interactionMessage(token, data) : undefined
        if (context.query.get("with_response") !== "true") return noContent
        return json(200, {
          interaction: {
            id: param(context, 0),
            type: 2,
            response_message_id: message?.["id"] ?? null,
            response_message_loading: type === 5,
            response_message_ephemeral: (Number(field(data, "flags") ?? 0) & 64) === 64
          },
          resource: { type, ...(message === undefined ? {} : { message }) }
        })
      }, false),
      route("GET", /^\/webhooks\/(\d+)\/([^/]+)\/messages\/@original$/, (context) => {
        const message = this.interactionReplies.get(param(context, 1))
        return message === undefined ? unknownMessage : json(200, message)
      }, false),
      route(
        "PATCH",
        /^\/webhooks\/(\d+)\/([^/]+)\/messages\/@original$/,
        (context) => json(200, interactionMessage(param(context, 1), context.body)),
        false
      ),
      route("DELETE", /^\/webhooks\/(\d+)\/([^/]+)\/messages\/@original$/, (context) => {
        this.interactionReplies.delete(param(context, 1))
        return noContent
      }, false),
      route("POST", /^\/webhooks\/(\d+)\/([^/]+)$/, (context) => {
        const channelId = this.interactionChannels.get(param(context, 1)) ?? world.general
        const message = this.botMessage(channelId, context.body, { webhook_id: this.applicationId })
        this.storeJson(message)
        return json(200, message)
      }, false)
    ]
  }

  private onRequest(request: Http.IncomingMessage, response: Http.ServerResponse): void {
    const chunks: Array<Buffer> = []
    request.on("data", (chunk: Buffer) => chunks.push(chunk))
    request.on("end", () => {
      const url = new URL(request.url ?? "/", "http://127.0.0.1")
      const method = request.method ?? "GET"
      const prefix = "/api/v10"
      const rawPath = url.pathname.startsWith(`${prefix}/`) ? url.pathname.slice(prefix.length) : url.pathname
      let path: string
      try {
        path = decodeURIComponent(rawPath)
      } catch {
        path = rawPath
      }
      const text = Buffer.concat(chunks).toString("utf8")
      let body: unknown = text.length === 0 ? null : text
      if (text.length > 0 && (request.headers["content-type"] ?? "").includes("application/json")) {
        try {
          body = JSON.parse(text)
        } catch {
          body = text
        }
      }
      const matched = url.pathname.startsWith(`${prefix}/`)
        ? this.routes.flatMap((route) => {
          const match = route.method === method ? route.pattern.exec(path) : null
          return match === null ? [] : [{ route, params: match.slice(1) }]
        })[0]
        : undefined
      const authorization = request.headers.authorization ?? ""
      const reply: Reply = matched === undefined
        ? discordError(404, 0, "404: Not Found")
        : matched.route.auth && !this.tokenAccepted(authorization.replace(/^Bot /, ""))
        ? discordError(401, 0, "401: Unauthorized")
        : matched.route.handle({ params: matched.params, query: url.searchParams, body })
      this.requestRecord.push((index) => ({
        index,
        method,
        path,
        query: url.search,
        body,
        at: Date.now(),
        status: reply.status,
        unknownRoute: matched === undefined
      }))
      if (reply.body === undefined) {
        response.writeHead(reply.status)
        response.end()
      } else {
        response.writeHead(reply.status, { "content-type": "application/json" })
        response.end(JSON.stringify(reply.body))
      }
      reply.after?.()
    })
  }

  private get close(): Effect.Effect<void> {
    return Effect.async<void>((resume) => {
      for (const socket of this.sockets) socket.terminate()
      this.wss.close()
      this.server.closeAllConnections()
      this.server.close(() => resume(Effect.void))
    })
  }
}
