/**
 * The rules of feedback reactions (the service is Feedback.ts), pure: which emoji says what,
 * whether a reaction is sent, and the bounded record of what was already sent.
 */

/** Why a message gets a reaction: the queue turned it away (full), or its event became a dead letter. */
export const feedbackKinds = ["queue_full", "dead_letter"] as const
export type FeedbackKind = (typeof feedbackKinds)[number]

/** ⏳ for a full queue, ⚠️ (with its emoji presentation selector, as Discord names it) for a dead letter. */
export const feedbackEmoji: Record<FeedbackKind, string> = {
  queue_full: "\u23F3",
  dead_letter: "\u26A0\uFE0F"
}

/** What became of one reaction: the `result` label of `aurora_feedback_reactions_total`. */
export const feedbackResults = ["sent", "failed", "skipped", "dropped"] as const
export type FeedbackResult = (typeof feedbackResults)[number]

export type FeedbackDecision =
  | { readonly _tag: "Send" }
  | { readonly _tag: "Skip"; readonly reason: "feedback is off" | "already reacted" }

/**
 * Send unless the guild turned feedback off or this emoji was already sent on this message.
 * `firstTime`: the record did not hold the pair (and now does).
 */
export const decideFeedback = (enabled: boolean, firstTime: boolean): FeedbackDecision =>
  !enabled
    ? { _tag: "Skip", reason: "feedback is off" }
    : firstTime
    ? { _tag: "Send" }
    : { _tag: "Skip", reason: "already reacted" }

/** The record's key of one emoji on one message (message ids are unique across Discord). */
export const feedbackKey = (messageId: string, kind: FeedbackKind): string => `${messageId}:${kind}`

/**
 * The newest `capacity` keys, in insertion order; adding one more forgets the oldest. Mutable on
 * purpose (a JavaScript Set keeps insertion order, so eviction is O(1)); it is only touched inside
 * synchronous steps, which JavaScript never interleaves.
 */
export class RecentKeys {
  private readonly keys = new Set<string>()

  constructor(readonly capacity: number) {}

  get size(): number {
    return this.keys.size
  }

  has(key: string): boolean {
    return this.keys.has(key)
  }

  /** Remembers `key`; true when it was not remembered yet. */
  add(key: string): boolean {
    if (this.keys.has(key)) return false
    this.keys.add(key)
    if (this.keys.size > this.capacity) {
      const oldest = this.keys.values().next()
      if (oldest.done !== true) this.keys.delete(oldest.value)
    }
    return true
  }
}
