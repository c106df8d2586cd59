/**
 * How the dispatch program turns an event into a dead letter: the record (its detail one line of
 * bounded length), the metric by reason, one log line saying what happened to the event, and ⚠️
 * on the user's message (Feedback, in the background). A store that fails is logged: the event is
 * lost then, and the line says so; the user still gets ⚠️, as the message will not be answered.
 */
import { Clock, Effect, LogLevel } from "effect"
import { truncate } from "../domain/AgentRun.js"
import type { DeadLetterReason } from "../domain/DeadLetter.js"
import type { QueuedEvent } from "../domain/Event.js"
import * as Metrics from "../services/health/Metrics.js"
import { DeadLetters } from "../services/queue/DeadLetters.js"
import { Feedback } from "../services/discord/Feedback.js"

const detailLength = 500

export interface DeadLetterInput {
  readonly reason: DeadLetterReason
  readonly errorType: string | null
  readonly detail: string
  /** The Letta conversation of the last attempt, when it ran in one. */
  readonly conversationId?: string
}

export interface DeadLetterLog {
  /** What happened to the event, e.g. "run failed permanently (AgentNotFound: 404)". */
  readonly said: string
  /** Dispatch attempts made; default: the event's, this one included. */
  readonly attempts?: number
  /** Default: error. */
  readonly level?: LogLevel.LogLevel
}

export const deadLetterRecorder = Effect.map(
  Effect.zip(DeadLetters, Feedback),
  ([deadLetters, feedback]) =>
  (
    event: QueuedEvent,
    letter: DeadLetterInput,
    { attempts = event.attempts + 1, level = LogLevel.Error, said }: DeadLetterLog
  ) =>
    Effect.gen(function*() {
      const failedAt = yield* Clock.currentTimeMillis
      yield* deadLetters.add({ ...letter, event, detail: truncate(letter.detail, detailLength), attempts, failedAt })
      yield* Metrics.deadLettered(letter.reason)
      yield* Effect.logWithLevel(level, `${said}; dead-lettered`)
    }).pipe(
      Effect.catchAll((storageError) =>
        Effect.logError(`${said}; the event could not be dead-lettered and is lost`, storageError)
      ),
      Effect.zipRight(feedback.tell("dead_letter", event))
    )
)
