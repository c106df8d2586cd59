/**
 * Told, not ignored: a reaction on the user's message when Aurora will not answer it. ⏳ when the
 * queue turned the mention away because it was full (the listener), ⚠️ when its event became a
 * dead letter for any reason — failed, interrupted, interrupted-after-reply, expired — at dispatch
 * (a Defect included) or at start-up recovery. In guilds and in DMs.
 *
 * For each `tell(kind, message)`:
 * - more than `maxInFlight` reactions (32) in flight -> dropped: counted (`dropped`) and logged at
 *   debug, nothing sent;
 * - otherwise forked into the service's FiberSet, and `tell` returns at once: a reaction never
 *   delays intake or dispatch, and never fails them. In the fork:
 *   - the guild's `feedback` setting is false (DMs: the default, on) -> nothing sent (`skipped`);
 *   - this emoji was already sent on this message (a retried event dead-lettered again) ->
 *     nothing sent (`skipped`). The record holds the newest `remembered` (10 000) pairs of message
 *     id and emoji, in memory; a pair it has forgotten (evicted, or before a restart) costs one
 *     more request, never a second reaction: Discord's PUT of the bot's own reaction is idempotent;
 *   - otherwise the reaction is sent once, bounded by `timeout` (10 s: a rate-limited request waits
 *     in discord.js' queue, and the timeout withdraws it): `sent`, or `failed` — missing permission
 *     (403, 50013), a deleted message (404, 10008), a rate limit, a timeout — logged on one line
 *     with the reason, at warning for the first failure in a guild (or in DMs) since start-up and at
 *     debug afterwards, so a server that denies Add Reactions does not fill the log. Never retried
 *     by Aurora.
 * The pair is recorded when the reaction is attempted, sent or not: a failed one is not tried again
 * for that message. Shutdown interrupts the reactions still in flight.
 *
 * Start-up recovery tells too: in the live graph the Discord gateway (ready) is built before it.
 */
import { Duration, Effect, FiberSet, Layer, LogLevel } from "effect"
import type { QueuedEvent } from "../../domain/Event.js"
import { DiscordError, type DiscordFailure } from "../../domain/Errors.js"
import { defaultGuildSettings } from "../../domain/Settings.js"
import { feedbackReaction, registerFeedbackMetrics } from "../health/FeedbackMetrics.js"
import { SettingsStore } from "../storage/SettingsStore.js"
import { decideFeedback, feedbackEmoji, feedbackKey, type FeedbackKind, RecentKeys } from "./FeedbackRules.js"
import { Reactions } from "./Reactions.js"

export type { FeedbackKind } from "./FeedbackRules.js"

/** The message to react to: an event, or what the listener knows of a mention it turned away. */
export type FeedbackTarget = Pick<QueuedEvent, "guildId" | "channelId" | "messageId">

export interface FeedbackOptions {
  /** Reactions forked and not finished; beyond this many, a reaction is dropped. */
  readonly maxInFlight: number
  /** How long one reaction may take (rate-limit waits included). */
  readonly timeout: Duration.DurationInput
  /** Pairs (message id, emoji) remembered as sent; also the bound on guilds remembered as warned. */
  readonly remembered: number
}

export const defaultFeedbackOptions: FeedbackOptions = {
  maxInFlight: 32,
  timeout: Duration.seconds(10),
  remembered: 10_000
}

/** Why a reaction failed, for the log line. */
const failureReason = (error: DiscordFailure): string => {
  switch (error._tag) {
    case "MissingAccess":
      return "missing permission (403: the bot needs Add Reactions and Read Message History there)"
    case "MessageNotFound":
      return "the message is gone (404 Unknown Message)"
    case "DiscordRateLimited":
      return `rate limited (retry after ${Duration.format(error.retryAfter)})`
    case "DiscordError":
      return error.reason
  }
}

const make = (options: FeedbackOptions) =>
  Effect.gen(function*() {
    const reactions = yield* Reactions
    const settings = yield* SettingsStore
    const fibers = yield* FiberSet.make<void, never>()
    const sent = new RecentKeys(options.remembered)
    const warned = new RecentKeys(options.remembered)
    let inFlight = 0
    yield* registerFeedbackMetrics

    const enabled = (guildId: string | null): Effect.Effect<boolean> =>
      guildId === null
        ? Effect.succeed(defaultGuildSettings.feedback)
        : Effect.map(settings.guild(guildId), (guild) => guild.settings.feedback)

    const failed = (kind: FeedbackKind, target: FeedbackTarget, error: DiscordFailure) =>
      Effect.suspend(() => {
        const first = warned.add(target.guildId ?? "dm")
        const where = target.guildId === null ? "DMs" : "this server"
        return Effect.zipRight(
          feedbackReaction(kind, "failed"),
          Effect.logWithLevel(
            first ? LogLevel.Warning : LogLevel.Debug,
            `feedback reaction ${feedbackEmoji[kind]} not added: ${failureReason(error)}; not retried` +
              (first ? ` (further failures in ${where} are logged at debug)` : "")
          )
        )
      })

    const react = (kind: FeedbackKind, target: FeedbackTarget): Effect.Effect<void> =>
      Effect.gen(function*() {
        const on = yield* enabled(target.guildId)
        const decision = decideFeedback(on, on && sent.add(feedbackKey(target.messageId, kind)))
        if (decision._tag === "Skip") {
          yield* feedbackReaction(kind, "skipped")
          return yield* Effect.logDebug(`feedback reaction ${feedbackEmoji[kind]} not sent: ${decision.reason}`)
        }
        yield* reactions.addReaction(target.channelId, target.messageId, feedbackEmoji[kind]).pipe(
          Effect.timeoutFail({
            duration: options.timeout,
            onTimeout: () =>
              new DiscordError({
                operation: "addReaction",
                reason: `no answer within ${Duration.format(Duration.decode(options.timeout))}`
              })
          }),
          Effect.matchEffect({
            onSuccess: () =>
              Effect.zipRight(feedbackReaction(kind, "sent"), Effect.logDebug(`feedback reaction ${feedbackEmoji[kind]} added`)),
            onFailure: (error) => failed(kind, target, error)
          })
        )
      }).pipe(
        Effect.annotateLogs({ messageId: target.messageId, channelId: target.channelId, guildId: target.guildId ?? "dm" }),
        Effect.withSpan("Feedback.react", {
          attributes: { kind, messageId: target.messageId },
          captureStackTrace: false
        }),
        Effect.catchAllCause((cause) => Effect.logError("feedback reaction failed unexpectedly", cause))
      )

    /** Reacts `kind` on the message in the background (see the module header); never fails, never waits for Discord. */
    const tell = (kind: FeedbackKind, target: FeedbackTarget): Effect.Effect<void> =>
      Effect.suspend(() => {
        if (inFlight >= options.maxInFlight) {
          return Effect.zipRight(
            feedbackReaction(kind, "dropped"),
            Effect.logDebug(`feedback reaction ${feedbackEmoji[kind]} dropped: ${inFlight} already in flight`).pipe(
              Effect.annotateLogs({ messageId: target.messageId })
            )
          )
        }
        inFlight++
        const done = Effect.sync(() => {
          inFlight--
        })
        return FiberSet.run(fibers, Effect.ensuring(react(kind, target), done)).pipe(Effect.asVoid)
      })

    return {
      tell,
      /** Reactions forked and not finished. */
      inFlight: Effect.sync(() => inFlight),
      /** Completes once no reaction is in flight (tests wait on it; nothing else needs to). */
      idle: FiberSet.awaitEmpty(fibers)
    } as const
  })

export class Feedback extends Effect.Service<Feedback>()("aurora/Feedback", {
  scoped: make(defaultFeedbackOptions)
}) {
  /** The same service with other bounds (tests shrink them). */
  static layer(options: Partial<FeedbackOptions>) {
    return Layer.scoped(Feedback, Effect.map(make({ ...defaultFeedbackOptions, ...options }), Feedback.make))
  }
}
