/**
 * A recording fake of the Reactions port, and the Feedback service over it (it still needs a
 * SettingsStore). Every call is recorded with its Clock time; `answer` decides what Discord says
 * (default: added).
 */
import { Clock, Effect, Layer } from "effect"
import type { DiscordFailure } from "../../src/domain/Errors.js"
import { Feedback, type FeedbackOptions } from "../../src/services/discord/Feedback.js"
import { Reactions } from "../../src/services/discord/Reactions.js"

export interface ReactionCall {
  readonly channelId: string
  readonly messageId: string
  readonly emoji: string
  readonly at: number
}

export interface RecordingOptions extends Partial<FeedbackOptions> {
  readonly answer?: (call: ReactionCall) => Effect.Effect<void, DiscordFailure>
}

export const recordingReactions = (answer: RecordingOptions["answer"] = () => Effect.void) => {
  const calls: Array<ReactionCall> = []
  const layer = Layer.succeed(
    Reactions,
    Reactions.of({
      addReaction: (channelId, messageId, emoji) =>
        Effect.flatMap(Clock.currentTimeMillis, (at) => {
          const call = { channelId, messageId, emoji, at }
          calls.push(call)
          return answer(call)
        })
    })
  )
  return { calls, layer }
}

/** Feedback (with `options`' bounds) over recording reactions; `calls` is what it sent. */
export const recordingFeedback = (options: RecordingOptions = {}) => {
  const { answer, ...bounds } = options
  const reactions = recordingReactions(answer)
  return { calls: reactions.calls, layer: Feedback.layer(bounds).pipe(Layer.provide(reactions.layer)) }
}

/** The emoji sent, as "message:emoji", in order. */
export const sentPairs = (calls: ReadonlyArray<ReactionCall>): ReadonlyArray<string> =>
  calls.map((call) => `${call.messageId}:${call.emoji}`)
