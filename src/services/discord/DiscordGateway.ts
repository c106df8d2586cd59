/**
 * The one discord.js client of the process. discord.js callbacks enter Effect here and only here:
 * `messageCreate` and `interactionCreate` offer into queues that the rest of Aurora reads as
 * Streams, and REST reads go through this service so their failures become domain errors.
 */
import {
  Client,
  DefaultRestOptions,
  Events,
  GatewayIntentBits,
  type Interaction,
  type Message,
  Options,
  Partials,
  Routes,
  Team,
  TeamMemberMembershipState,
  TeamMemberRole
} from "discord.js"
import {
  Clock,
  Data,
  Deferred,
  Duration,
  Effect,
  Either,
  Exit,
  Option,
  Queue,
  Redacted,
  Runtime,
  Stream
} from "effect"
import { AuroraConfig } from "../../domain/Config.js"
import type { MessageRecord, ReceivedMessage } from "../../domain/Discord.js"
import { DiscordError, type DiscordFailure, MessageNotFound } from "../../domain/Errors.js"
import {
  describeError,
  type DiscordOperation,
  loginFailureMessage,
  toDiscordFailure,
  toMessageRecord,
  toReceivedMessage
} from "./DiscordMapping.js"

/** The bot could not connect: its `reason` is one line for the operator, never with the token. */
export class DiscordLoginFailed extends Data.TaggedError("DiscordLoginFailed")<{
  readonly reason: string
}> {
  override get message() {
    return this.reason
  }
}

/** Discord's own limit for one message. */
const MaxMessageLength = 2000

/** Messages kept per channel for reply chains (discord.js' default is 200). */
const messageCacheSize = 50
/** Cached messages older than this (seconds) are swept, every `messageSweepInterval` seconds. */
const messageLifetime = 30 * 60
const messageSweepInterval = 5 * 60

/**
 * A discord.js call as an Effect. A `run` that takes the signal lets an interruption withdraw the
 * request, even from discord.js' rate-limit queue, where it would otherwise wait and go out later.
 */
const tryDiscord = <A>(run: (signal: AbortSignal) => Promise<A>, target: DiscordOperation): Effect.Effect<A, DiscordFailure> =>
  Effect.tryPromise({ try: run, catch: (error) => toDiscordFailure(error, target) })

const make = Effect.gen(function*() {
  // The ready timeout bounds the whole login, READY and every GUILD_CREATE included.
  const config = (yield* AuroraConfig).discord
  const runtime = yield* Effect.runtime<never>()
  const runLog = Runtime.runFork(runtime)
  const apiUrl = Option.getOrElse(config.apiUrl, () => DefaultRestOptions.api)

  // Unbounded on purpose: this is the boundary with a callback API, where nothing may be lost
  // silently; the EventQueue bounds what Aurora accepts per guild right behind it.
  const messages = yield* Effect.acquireRelease(Queue.unbounded<ReceivedMessage>(), Queue.shutdown)
  const interactions = yield* Effect.acquireRelease(Queue.unbounded<Interaction>(), Queue.shutdown)
  const ready = yield* Deferred.make<void>()
  // Set on release, so that the close discord.js reports while shutting down is not logged as
  // a reconnect.
  let closing = false

  const client = yield* Effect.acquireRelease(
    Effect.sync(() =>
      new Client({
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
        ...(Option.isSome(config.apiUrl) ? { rest: { api: config.apiUrl.value } } : {})
      })
    ),
    (client) =>
      Effect.sync(() => {
        closing = true
      }).pipe(
        Effect.zipRight(Effect.tryPromise(() => client.destroy())),
        Effect.timeout(Duration.seconds(5)),
        Effect.catchAllCause((cause) => Effect.logWarning("discord.js client did not close cleanly", cause)),
        Effect.zipRight(Effect.logInfo("Discord gateway closed"))
      )
  )

  client.once(Events.ClientReady, () => Deferred.unsafeDone(ready, Exit.void))
  client.on(Events.MessageCreate, (message: Message) => {
    // Mapped at once: discord.js mutates its cached objects on later events.
    const mapped = Either.try(() => toReceivedMessage(message))
    if (Either.isRight(mapped)) Queue.unsafeOffer(messages, mapped.right)
    else {
      runLog(
        Effect.logError(`dropped a message Aurora could not read: ${describeError(mapped.left)}`).pipe(
          Effect.annotateLogs({ messageId: message.id, channelId: message.channelId })
        )
      )
    }
  })
  client.on(Events.InteractionCreate, (interaction: Interaction) => {
    Queue.unsafeOffer(interactions, interaction)
  })
  client.on(Events.Warn, (warning) => runLog(Effect.logWarning(`discord.js: ${warning}`)))
  client.on(Events.Error, (error) => runLog(Effect.logError(`discord.js: ${describeError(error)}`)))
  client.on(Events.ShardError, (error) => runLog(Effect.logWarning(`Discord gateway error: ${describeError(error)}`)))
  client.on(Events.ShardReconnecting, () => {
    if (!closing) runLog(Effect.logInfo("Discord gateway reconnecting"))
  })
  client.on(
    Events.ShardResume,
    (_shard, replayed) => runLog(Effect.logInfo(`Discord gateway resumed (${replayed} events replayed)`))
  )
  client.on(
    Events.ShardDisconnect,
    (event) => {
      if (!closing) runLog(Effect.logError(`Discord gateway closed for good (close code ${event.code})`))
    }
  )

  const token = Redacted.value(config.token)
  const startedAt = yield* Clock.currentTimeMillis
  yield* Effect.tryPromise({
    try: () => client.login(token),
    catch: (error) => new DiscordLoginFailed({ reason: loginFailureMessage(error, { apiUrl, token }) })
  }).pipe(
    // login() resolves on READY; `clientReady` follows once every guild's GUILD_CREATE arrived.
    Effect.zipRight(Deferred.await(ready)),
    Effect.timeoutFail({
      duration: config.readyTimeout,
      onTimeout: () =>
        new DiscordLoginFailed({
          reason: `the Discord gateway was not ready within ${Duration.format(config.readyTimeout)} (${apiUrl})`
        })
    })
  )
  if (!client.isReady()) {
    return yield* new DiscordLoginFailed({ reason: "the Discord gateway closed right after becoming ready" })
  }
  const readyClient = client
  const readyInMs = (yield* Clock.currentTimeMillis) - startedAt
  yield* Effect.logInfo("Discord gateway ready").pipe(
    Effect.annotateLogs({ bot: readyClient.user.tag, guilds: readyClient.guilds.cache.size, readyInMs })
  )

  const fetchMessage = Effect.fn("DiscordGateway.fetchMessage", { captureStackTrace: false })(
    function*(channelId: string, messageId: string) {
      const target = { operation: "fetchMessage", channelId, messageId }
      // channels.fetch serves the cache first; REST only for channels discord.js has not seen.
      const channel = yield* tryDiscord(() => readyClient.channels.fetch(channelId), target)
      if (channel === null) return yield* new MessageNotFound({ channelId, messageId })
      if (!channel.isTextBased()) {
        return yield* new DiscordError({ operation: "fetchMessage", reason: `channel ${channelId} holds no messages` })
      }
      const cached = channel.messages.cache.get(messageId)
      if (cached !== undefined) return toMessageRecord(cached)
      const fetched = yield* tryDiscord(() => channel.messages.fetch(messageId), target)
      return toMessageRecord(fetched)
    },
    (effect, channelId, messageId) => Effect.annotateLogs(effect, { channelId, messageId })
  ) satisfies (channelId: string, messageId: string) => Effect.Effect<MessageRecord, DiscordFailure>

  const sendTyping = (channelId: string): Effect.Effect<void, DiscordFailure> =>
    // The REST route directly: the same call channel.sendTyping() makes, without needing the
    // channel in the cache (a DM channel may not be). Typing is stopped by interruption, often
    // while the request still waits for discord.js' global rate limit (50 requests/s, fewer than
    // the runs a busy bot starts): the signal withdraws it instead of sending it late.
    tryDiscord((signal) => readyClient.rest.post(Routes.channelTyping(channelId), { signal }), {
      operation: "sendTyping",
      channelId
    }).pipe(
      Effect.asVoid,
      // Every dispatch shows typing, and its call is often cut short when the run ends: a captured
      // stack trace would be rendered then, for a span nobody reads.
      Effect.withSpan("DiscordGateway.sendTyping", { attributes: { channelId }, captureStackTrace: false })
    )

  const sendDirectMessage = (userId: string, text: string): Effect.Effect<void, DiscordFailure> =>
    Effect.gen(function*() {
      const channel = yield* tryDiscord(() => readyClient.users.createDM(userId), {
        operation: "createDM",
        channelId: `@${userId}`
      })
      yield* tryDiscord(
        () => channel.send({ content: text.slice(0, MaxMessageLength), allowedMentions: { parse: [] } }),
        { operation: "sendDirectMessage", channelId: channel.id }
      )
    }).pipe(Effect.withSpan("DiscordGateway.sendDirectMessage", { attributes: { userId } }))

  /** The application's owner, or the team's owner and its accepted non-read-only members. */
  const applicationOwnerIds: Effect.Effect<ReadonlyArray<string>, DiscordFailure> = Effect.gen(function*() {
    const application = yield* tryDiscord(() => readyClient.application.fetch(), {
      operation: "fetchApplication",
      channelId: "-"
    })
    const owner = application.owner
    if (owner === null) return []
    if (!(owner instanceof Team)) return [owner.id]
    const members = owner.members
      .filter((member) =>
        member.membershipState === TeamMemberMembershipState.Accepted && member.role !== TeamMemberRole.ReadOnly
      )
      .map((member) => member.id)
    return [...new Set([...(owner.ownerId === null ? [] : [owner.ownerId]), ...members])]
  })

  return {
    /** The discord.js client, ready; for the slash-command feature. */
    client: readyClient,
    botUserId: readyClient.user.id,
    /**
     * Every message discord.js delivers (the bot's own included), mapped to domain records.
     * Meant for one consumer; elements are pulled one at a time, so a consumer that stops early
     * leaves the rest queued for the next.
     */
    messages: Stream.fromQueue(messages, { maxChunkSize: 1 }),
    /** Raw discord.js interactions, for the slash-command feature; one consumer, as above. */
    interactions: Stream.fromQueue(interactions, { maxChunkSize: 1 }),
    fetchMessage,
    sendTyping,
    sendDirectMessage,
    applicationOwnerIds,
    isReady: Effect.sync(() => client.isReady()),
    /** Milliseconds from login to `clientReady` (for logs and benchmarks). */
    readyInMs
  } as const
})

export class DiscordGateway extends Effect.Service<DiscordGateway>()("aurora/DiscordGateway", {
  scoped: make
}) {}
