/**
 * The listen program: received messages -> trigger rules -> context -> prompt -> EventQueue.
 * It sees only what the gateway's intake let through (src/services/discord/Intake.ts: mentions of
 * the bot, replies to it or to an unknown author, DMs when they are on); the gateway also counts
 * every received message, so nothing here does.
 *
 * Each event carries the conversation mode it runs in, decided here from the guild's `conversations`
 * setting (DMs: the global `dmConversations`): the queue's lanes and the dispatcher's route both
 * follow the event, so a setting changed later applies to mentions queued from then on.
 *
 * The image attachments of the message that go to the agent as image parts are chosen here
 * (domain/Images.ts, with the guild's `images` setting; DMs: on) and stored on the event, beside
 * the prompt that says what became of every attachment: both come from the same rule and inputs.
 *
 * Only a guild that is not enabled (or DMs without a DM agent) turns an addressed message away. A
 * paused guild, or a global pause, still queues it: a pause stops dispatch, never intake, so
 * `events resume` answers what was asked meanwhile (the queue's bound and dedup apply as ever).
 *
 * A mention the queue turns away because it is full gets ⏳ on the user's message (Feedback, in
 * the background: the guild's `feedback` setting decides, and intake never waits for Discord).
 *
 * Messages of one channel are handled one after another, in arrival order, so the queue sees them
 * FIFO; different channels are handled concurrently (bounded), so a slow reply-chain fetch in one
 * channel never holds up another guild's intake.
 */
import { Clock, Effect, FiberSet, Layer, Stream } from "effect"
import type { ReceivedMessage } from "../domain/Discord.js"
import type { ConversationMode, QueuedEvent, TriggerKind } from "../domain/Event.js"
import { chooseImages } from "../domain/Images.js"
import { defaultGuildSettings, type GlobalSettings, type GuildSettings, type GuildState } from "../domain/Settings.js"
import { decideTrigger, needsReplyAuthor } from "../domain/Trigger.js"
import { ContextService } from "../services/prompt/ContextService.js"
import { DiscordGateway } from "../services/discord/DiscordGateway.js"
import { EventQueue } from "../services/queue/EventQueue.js"
import { Feedback } from "../services/discord/Feedback.js"
import { MessageSource } from "../services/discord/MessageSource.js"
import { PromptService } from "../services/prompt/PromptService.js"
import { stage } from "../services/health/LatencyTrace.js"
import * as Metrics from "../services/health/Metrics.js"
import { SettingsStore } from "../services/storage/SettingsStore.js"

/** Channels whose messages are being turned into events at the same time. */
const intakeConcurrency = 32

/** Where an addressed message goes, or why it goes nowhere. */
type Route =
  | {
    readonly _tag: "Agent"
    readonly agentId: string
    readonly settings: GuildSettings
    readonly conversationMode: ConversationMode
  }
  | { readonly _tag: "Skip"; readonly reason: string }

const route = (
  received: ReceivedMessage,
  global: GlobalSettings,
  guild: GuildState | null
): Route => {
  if (received.guild === null) {
    return global.dmAgentId === null
      ? { _tag: "Skip", reason: "direct messages are off" }
      : {
        _tag: "Agent",
        agentId: global.dmAgentId,
        settings: defaultGuildSettings,
        conversationMode: global.dmConversations
      }
  }
  if (guild === null || !guild.enabled || guild.agentId === null) return { _tag: "Skip", reason: "guild not enabled" }
  return { _tag: "Agent", agentId: guild.agentId, settings: guild.settings, conversationMode: guild.settings.conversations }
}

export const makeListener = Effect.gen(function*() {
  const gateway = yield* DiscordGateway
  const source = yield* MessageSource
  const settings = yield* SettingsStore
  const contexts = yield* ContextService
  const prompts = yield* PromptService
  const queue = yield* EventQueue
  const feedback = yield* Feedback

  /** The replied-to message's author: from the cache (where the payload's copy lands) or REST. */
  const repliedToAuthor = (received: ReceivedMessage) => {
    const reference = received.message.reference
    if (reference === null) return Effect.succeed(null)
    return source.fetchMessage(reference.channelId, reference.messageId).pipe(
      Effect.map((parent) => parent.author.id),
      Effect.catchAll((error) =>
        Effect.logDebug(`replied-to message unreadable (${error._tag}); not treated as a reply to the bot`).pipe(
          Effect.as(null)
        )
      )
    )
  }

  const enqueue = (received: ReceivedMessage, trigger: TriggerKind, target: Extract<Route, { _tag: "Agent" }>) =>
    Effect.gen(function*() {
      const context = yield* contexts.build(received, target.settings.replydepth)
      yield* stage(received.message.id, "context")
      const images = target.settings.images
      const prompt = yield* prompts.render(context, { trigger, mcpGuidance: target.settings.mcpguidance, images })
      yield* stage(received.message.id, "prompt")
      const { urls } = chooseImages(received.message.attachments, { enabled: images })
      const event: QueuedEvent = {
        messageId: received.message.id,
        guildId: received.guild?.id ?? null,
        channelId: received.channel.id,
        authorId: received.message.author.id,
        agentId: target.agentId,
        trigger,
        prompt,
        enqueuedAt: yield* Clock.currentTimeMillis,
        attempts: 0,
        conversationMode: target.conversationMode,
        ...(urls.length === 0 ? {} : { images: urls })
      }
      yield* queue.offer(event).pipe(
        Effect.zipRight(Effect.zipRight(Metrics.enqueued, Effect.logInfo(`queued (${trigger})`))),
        Effect.catchTags({
          // The queue logs each overflow episode once with its count; per event, debug only.
          QueueFull: (full) =>
            Effect.all([
              Metrics.rejected("full"),
              Effect.logDebug(`rejected: queue full (${full.capacity})`),
              feedback.tell("queue_full", event)
            ], { discard: true }),
          DuplicateEvent: () => Effect.zipRight(Metrics.rejected("duplicate"), Effect.logDebug("rejected: duplicate message id")),
          StorageError: (error) =>
            Effect.zipRight(
              Metrics.rejected("storage_error"),
              Effect.logError(`rejected: could not store the event (${error.reason})`)
            )
        })
      )
    })

  const handle = (received: ReceivedMessage): Effect.Effect<void> =>
    Effect.gen(function*() {
      yield* stage(received.message.id, "listen")
      const botUserId = gateway.botUserId
      const global = yield* settings.global
      const repliedToAuthorId = needsReplyAuthor(received, botUserId) ? yield* repliedToAuthor(received) : null
      const decision = decideTrigger(received, { botUserId, dmEnabled: global.dmAgentId !== null, repliedToAuthorId })
      if (decision._tag === "Ignore") return
      const guild = received.guild === null ? null : yield* settings.guild(received.guild.id)
      const target = route(received, global, guild)
      if (target._tag === "Skip") return yield* Effect.logDebug(`addressed but ignored: ${target.reason}`)
      yield* Metrics.triggered(decision.kind)
      yield* enqueue(received, decision.kind, target)
    }).pipe(
      // Stack-trace capture costs more than the handling itself on the hot path.
      Effect.withSpan("listen", {
        attributes: { messageId: received.message.id, channelId: received.channel.id },
        captureStackTrace: false
      }),
      Effect.annotateLogs({
        messageId: received.message.id,
        channelId: received.channel.id,
        guildId: received.guild?.id ?? "dm"
      }),
      Effect.catchAllCause((cause) => Effect.logError("message handling failed", cause))
    )

  return { handle } as const
})

/**
 * Runs `handle` for each item, one at a time per key in arrival order, different keys concurrently
 * (at most `concurrency` keys at once). The lanes live in plain mutable structures touched only
 * inside synchronous steps, which JavaScript never interleaves. A worker fiber is started for a
 * key when a slot is free; otherwise the key waits its turn, and the worker that drains its own
 * lane moves on to the longest-waiting key instead of ending, so a busy intake forks no more
 * fibers than it has slots.
 */
export const sequentialPerKey = <A>(
  keyOf: (item: A) => string,
  handle: (item: A) => Effect.Effect<void>,
  concurrency: number
) =>
  Effect.gen(function*() {
    const lanes = new Map<string, Array<A>>()
    /** Keys with items and no worker, in the order they arrived. */
    const waiting: Array<string> = []
    let workers = 0
    const fibers = yield* FiberSet.make()
    // A lane must go on after any failure of `handle`, or its key (and a worker slot) would be stuck.
    const handled = (item: A) =>
      Effect.catchAllCause(handle(item), (cause) => Effect.logError("intake: handling an item failed", cause))
    const drain = (key: string): Effect.Effect<void> =>
      Effect.suspend(() => {
        const next = lanes.get(key)?.shift()
        if (next !== undefined) return Effect.zipRight(handled(next), drain(key))
        lanes.delete(key)
        const waitingKey = waiting.shift()
        if (waitingKey !== undefined) return drain(waitingKey)
        workers--
        return Effect.void
      })
    const submit = (item: A): Effect.Effect<void> =>
      Effect.suspend(() => {
        const key = keyOf(item)
        const lane = lanes.get(key)
        if (lane !== undefined) {
          lane.push(item)
          return Effect.void
        }
        lanes.set(key, [item])
        if (workers >= concurrency) {
          waiting.push(key)
          return Effect.void
        }
        workers++
        return FiberSet.run(fibers, drain(key)).pipe(Effect.asVoid)
      })
    return { submit, pending: Effect.sync(() => lanes.size) } as const
  })

export const ListenLive = Layer.scopedDiscard(
  Effect.gen(function*() {
    const gateway = yield* DiscordGateway
    const listener = yield* makeListener
    const intake = yield* sequentialPerKey(
      (received: ReceivedMessage) => received.channel.id,
      listener.handle,
      intakeConcurrency
    )
    yield* gateway.messages.pipe(Stream.runForEach(intake.submit), Effect.forkScoped)
    yield* Effect.logInfo("listening for mentions, replies and direct messages")
  })
)
