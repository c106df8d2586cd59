/**
 * The silent-run fallback: what the dispatcher does after a run that succeeded, by
 * `fallbackDecision` (domain/FallbackReply.ts), under the guild's `fallback` setting (DMs: the
 * default, `post`). Every line carries the run id.
 * - The agent made a Discord action (e.g. `discord_send`) -> nothing: it answered, and a fallback
 *   post would answer twice.
 * - Silent, no text, or `fallback` = `off` -> a warning line, counted
 *   `aurora_silent_runs_total{action="none"}`.
 * - Silent with text and `post` -> first the journal records it (`fallbackRecorded`), so that a
 *   restart finds the event finished and never posts again (Recovery.ts), then the messages are
 *   posted in order as replies to the triggering message (ReplyPoster: no mention parsed but the
 *   replied user, a nonce per message so discord.js' own re-send cannot post twice) ->
 *   counted `posted`, one info line.
 * - Discord refuses a post (403 missing permission, a deleted channel, a 400) -> one warning line
 *   saying how many messages went out, counted `failed`, the rest not posted; never retried by
 *   Aurora (a retry could post twice), and the event is done all the same.
 * - The journal cannot record it first -> nothing posted (without the record, a restart could
 *   post it again), an error line, counted `failed`.
 * It never fails: the event is done whatever happens here. Typing has stopped when the run ended.
 * A run resumed after an approval (ApprovalResume.ts) follows the same way, as a reply to its
 * triggering message; its journal record is gone by then, so the record first is a no-op there,
 * except after a restart at an open stop (StopTakeUp.ts), where the entry is kept until the
 * take-up settles it, and the record marks it finished as for a dispatch.
 */
import { Clock, Effect, Either } from "effect"
import type { RunReport } from "../../domain/AgentRun.js"
import type { DiscordFailure } from "../../domain/Errors.js"
import type { QueuedEvent } from "../../domain/Event.js"
import { fallbackDecision } from "../../domain/FallbackReply.js"
import type { FallbackMode } from "../../domain/Settings.js"
import { ReplyPoster, replyNonce } from "../../services/discord/ReplyPoster.js"
import * as Metrics from "../../services/health/Metrics.js"
import { EventJournal } from "../../services/queue/EventJournal.js"

const describeFailure = (failure: DiscordFailure): string => {
  switch (failure._tag) {
    case "DiscordError":
      return failure.reason
    case "MissingAccess":
      return "MissingAccess: the bot may not post in this channel"
    case "MessageNotFound":
      return "MessageNotFound"
    case "DiscordRateLimited":
      return "DiscordRateLimited"
  }
}

/** What the fallback needs of the run's trigger: a queued event, or an approval's origin (a resumed run). */
export type FallbackTarget = Pick<QueuedEvent, "channelId" | "messageId">

/** What the fallback came to, for the runs view. */
export type FallbackResult = "answered" | "posted" | "none" | "failed"

export const makeFallback = Effect.gen(function*() {
  const poster = yield* ReplyPoster
  const journal = yield* EventJournal

  const post = (event: FallbackTarget, messages: ReadonlyArray<string>, cut: boolean) =>
    Effect.gen(function*() {
      const at = yield* Clock.currentTimeMillis
      const recorded = yield* Effect.either(journal.fallbackRecorded(event.messageId, at))
      if (Either.isLeft(recorded)) {
        yield* Effect.logError(
          "silent run: the fallback reply could not be recorded first, so it is not posted (a restart could post it twice)",
          recorded.left
        )
        yield* Metrics.silentRun("failed")
        return "failed" as const
      }
      for (const [part, content] of messages.entries()) {
        const posted = yield* Effect.either(
          poster.postReply({
            channelId: event.channelId,
            replyTo: event.messageId,
            content,
            nonce: replyNonce(event.messageId, part)
          })
        )
        if (Either.isLeft(posted)) {
          yield* Effect.logWarning(
            `silent run: Discord refused the fallback reply (${describeFailure(posted.left)}); ` +
              `${part} of ${messages.length} message(s) posted, not retried`
          )
          yield* Metrics.silentRun("failed")
          return "failed" as const
        }
      }
      yield* Effect.logInfo(
        `silent run: the agent ended without a Discord reply; its text was posted as a reply (${messages.length} message(s)` +
          `${cut ? ", cut: it was longer than that" : ""})`
      )
      yield* Metrics.silentRun("posted")
      return "posted" as const
    })

  /**
   * What follows a run that succeeded (see the module header), and what came of it: `answered`
   * (not silent), `posted`, `none` or `failed`; never fails.
   */
  const follow = (event: FallbackTarget, report: RunReport, mode: FallbackMode): Effect.Effect<FallbackResult> => {
    const decision = fallbackDecision(report, mode)
    if (decision._tag === "NotSilent") return Effect.succeed("answered")
    const done = decision._tag === "Post"
      ? post(event, decision.messages, decision.cut)
      : Effect.zipRight(
        Effect.logWarning(
          decision.why === "off"
            ? "silent run: the agent ended without a Discord reply; fallback is off, so its text was not posted"
            : "silent run: the agent ended without a Discord reply and without text; nothing was posted"
        ),
        Effect.as(Metrics.silentRun("none"), "none" as const)
      )
    return done.pipe(Effect.annotateLogs({ runId: report.runId ?? "none" }))
  }

  return { follow } as const
})
