/**
 * The one discord.js client of the process. discord.js callbacks enter Effect here and only here:
 * `messageCreate` and `interactionCreate` offer into queues that the rest of Aurora reads as
 * Streams, and REST reads go through this service so their failures become domain errors.
 * Messages pass the intake first (Intake.ts): every one is counted, and only those that may
 * concern Aurora (a mention of the bot, a reply to it or to an unknown author, a DM when DMs are
 * on) are mapped and queued; the rest is dropped in the callback, before any Effect runs.
 *
 * Every gateway shard runs in this client (discord.js' sharding, `shardCount` "auto" by default:
 * see Shards.ts). Start-up waits for every shard; as Discord paces IDENTIFYs (one per 5 s per
 * `max_concurrency` bucket), the ready timeout bounds each shard's turn, not the total. After
 * start-up, `shards` tells each shard's state, ping and how long it has been down.
 */
import {
  Client,
  DefaultRestOptions,
  Events,
  type Interaction,
  type Message,
  Routes,
  Team,
  TeamMemberMembershipState,
  TeamMemberRole
} from "discord.js"
import { Clock, Data, Deferred, Duration, Effect, Either, Exit, Option, Layer, Queue, Redacted, Runtime, Stream } from "effect"
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
import { clientOptions } from "./ClientOptions.js"
import { markStage } from "../health/LatencyTrace.js"
import { DirectMessageSwitch, makeIntake } from "./Intake.js"
import {
  closeCodeOfError,
  closedForGoodLine,
  failWhenStalled,
  makeShardTracker,
  type ShardCount,
  shardReadings
} from "./Shards.js"

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

/**
 * A discord.js call as an Effect. A `run` that takes the signal lets an interruption withdraw the
 * request, even from discord.js' rate-limit queue, where it would otherwise wait and go out later.
 */
const tryDiscord = <A>(run: (signal: AbortSignal) => Promise<A>, target: DiscordOperation): Effect.Effect<A, DiscordFailure> =>
  Effect.tryPromise({ try: run, catch: (error) => toDiscordFailure(error, target) })

export interface GatewayOptions {
  /** "auto": Discord's recommended count (`GET /gateway/bot`); a number pins it. */
  readonly shardCount: ShardCount
}

/** `options` override the configuration (AURORA_SHARD_COUNT); tests pin a count this way. */
const make = (options: Partial<GatewayOptions> = {}) =>
  Effect.gen(function*() {
    const config = (yield* AuroraConfig).discord
    const directMessages = yield* DirectMessageSwitch
    const shardCount = options.shardCount ?? config.shardCount
    const runtime = yield* Effect.runtime<never>()
    const runLog = Runtime.runFork(runtime)
    const apiUrl = Option.getOrElse(config.apiUrl, () => DefaultRestOptions.api)

    // Unbounded on purpose: this is the boundary with a callback API, where nothing may be lost
    // silently; the EventQueue bounds what Aurora accepts per guild right behind it.
    const messages = yield* Effect.acquireRelease(Queue.unbounded<ReceivedMessage>(), Queue.shutdown)
    const interactions = yield* Effect.acquireRelease(Queue.unbounded<Interaction>(), Queue.shutdown)
    const ready = yield* Deferred.make<void>()
    // A shard became ready: start-up's progress, which the ready timeout watches.
    const progress = yield* Effect.acquireRelease(Queue.sliding<number>(1), Queue.shutdown)
    const tracker = yield* makeShardTracker
    // Set on release, so that the close discord.js reports while shutting down is not logged as
    // a reconnect.
    let closing = false
    // Set once every shard is ready: before that, a failed login reports why the gateway closed.
    let started = false

    const client = yield* Effect.acquireRelease(
      Effect.sync(() => new Client(clientOptions({ shardCount, apiUrl: Option.getOrNull(config.apiUrl) }))),
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
    client.on(
      Events.MessageCreate,
      makeIntake<Message>({
        botUserId: () => client.user?.id ?? null,
        directMessages,
        cachedAuthor: (channelId, messageId) => {
          const channel = client.channels.cache.get(channelId)
          return channel?.isTextBased() ? channel.messages.cache.get(messageId)?.author.id : undefined
        },
        accept: (message) => {
          markStage(message.id, "intake")
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
        }
      })
    )
    client.on(Events.InteractionCreate, (interaction: Interaction) => {
      Queue.unsafeOffer(interactions, interaction)
    })
    client.on(Events.Warn, (warning) => runLog(Effect.logWarning(`discord.js: ${warning}`)))
    client.on(Events.Error, (error) => runLog(Effect.logError(`discord.js: ${describeError(error)}`)))
    const onShard = (shard: number, effect: Effect.Effect<void>) => runLog(Effect.annotateLogs(effect, { shard }))
    client.on(Events.ShardReady, (shard) => {
      Queue.unsafeOffer(progress, shard)
      onShard(shard, tracker.up(shard))
    })
    client.on(Events.ShardError, (error, shard) => {
      // An unrecoverable close also arrives as an error; its close line (below) explains it once.
      if (closeCodeOfError(error) === null) {
        onShard(shard, Effect.logWarning(`Discord gateway error: ${describeError(error)}`))
      }
    })
    client.on(Events.ShardReconnecting, (shard) => {
      if (!closing) onShard(shard, Effect.zipRight(tracker.down(shard), Effect.logInfo("Discord gateway reconnecting")))
    })
    client.on(Events.ShardResume, (shard, replayed) =>
      onShard(shard, Effect.zipRight(tracker.up(shard), Effect.logInfo(`Discord gateway resumed (${replayed} events replayed)`))))
    client.on(Events.ShardDisconnect, (event, shard) => {
      if (closing) {
        return
      }
      const line = closedForGoodLine(event.code, !started)
      onShard(shard, Effect.zipRight(tracker.down(shard), line === null ? Effect.void : Effect.logError(line)))
    })

    const token = Redacted.value(config.token)
    const startedAt = yield* Clock.currentTimeMillis
    const notReady = () => {
      const shards = shardReadings(client.ws.shards.values())
      const count = shards.length > 1
        ? ` of the last ready shard (${
          shards.filter((shard) => shard.status === "ready").length
        } of ${shards.length} ready)`
        : ""
      const within = Duration.format(config.readyTimeout)
      return new DiscordLoginFailed({ reason: `the Discord gateway was not ready within ${within}${count} (${apiUrl})` })
    }
    yield* Effect.tryPromise({
      try: () => client.login(token),
      catch: (error) => new DiscordLoginFailed({ reason: loginFailureMessage(error, { apiUrl, token }) })
    }).pipe(
      // login() resolves on every shard's READY; `clientReady` follows once every guild's
      // GUILD_CREATE arrived.
      Effect.zipRight(Deferred.await(ready)),
      Effect.raceFirst(failWhenStalled(progress, config.readyTimeout, notReady))
    )
    started = true
    if (!client.isReady()) {
      return yield* new DiscordLoginFailed({ reason: "the Discord gateway closed right after becoming ready" })
    }
    const readyClient = client
    const readyInMs = (yield* Clock.currentTimeMillis) - startedAt
    yield* Effect.logInfo("Discord gateway ready").pipe(
      Effect.annotateLogs({
        bot: readyClient.user.tag,
        guilds: readyClient.guilds.cache.size,
        shards: readyClient.ws.shards.size,
        readyInMs
      })
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
       * The messages that may concern Aurora (see Intake.ts), mapped to domain records.
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
      /** Every shard of this process, by id: its state, ping and how long it has been down. */
      shards: Effect.suspend(() => tracker.health(shardReadings(readyClient.ws.shards.values()))),
      /** Milliseconds from login to `clientReady` (for logs and benchmarks). */
      readyInMs
    } as const
  })

export class DiscordGateway extends Effect.Service<DiscordGateway>()("aurora/DiscordGateway", {
  scoped: make()
}) {
  /** The gateway with options other than the configuration's (tests pin a shard count). */
  static layer(options: Partial<GatewayOptions>) {
    return Layer.scoped(DiscordGateway, Effect.map(make(options), DiscordGateway.make))
  }
}
