/**
 * A dead letter: an accepted event that will not be handed to its agent again without an admin's
 * `/aurora queue retry`. Kept with why, how it failed, how often it was tried and when.
 */
import { Schema } from "effect"
import { QueuedEvent } from "./Event.js"

/**
 * - `failed`: a permanent failure (agent not found, 400/401/403/422, pending approval, a failed run);
 * - `expired`: pending for longer than AURORA_MAX_EVENT_AGE when Aurora restarted, or when its
 *   turn came (e.g. a guild resumed after a long pause);
 * - `interrupted-after-reply`: a crash or shutdown cut the run off after the agent had acted;
 * - `interrupted`: a run cut off before acting, for the second time (it was already re-sent once).
 */
export const DeadLetterReason = Schema.Literal("failed", "expired", "interrupted-after-reply", "interrupted")
export type DeadLetterReason = typeof DeadLetterReason.Type

export const DeadLetter = Schema.Struct({
  /** The event as it was last queued (its prompt is what a retry sends). */
  event: QueuedEvent,
  reason: DeadLetterReason,
  /** The error's tag (e.g. `AgentNotFound`), null for expired/interrupted. */
  errorType: Schema.NullOr(Schema.String),
  /** One line saying what went wrong; never contains a secret. */
  detail: Schema.NullOr(Schema.String),
  /** Dispatch attempts made, this one included. */
  attempts: Schema.Number,
  /** Epoch milliseconds. */
  failedAt: Schema.Number,
  /** The Letta conversation of the last attempt (`channel` mode); absent for the agent's default one. */
  conversationId: Schema.optional(Schema.String)
})
export type DeadLetter = typeof DeadLetter.Type

/** Dead letters kept per partition (guild or DM): the newest ones. */
export const maxDeadLettersPerPartition = 1_000

/**
 * The same record, not a newer dead letter of the same message: a re-queued copy that failed
 * again has a later failure time and a later enqueue time (the copy is enqueued when retried).
 */
export const sameDeadLetter = (a: DeadLetter, b: DeadLetter): boolean =>
  a.event.messageId === b.event.messageId && a.failedAt === b.failedAt && a.reason === b.reason &&
  a.attempts === b.attempts && a.event.enqueuedAt === b.event.enqueuedAt
