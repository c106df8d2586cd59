/**
 * The trigger rules: which received messages are addressed to the bot.
 * A guild message triggers when the bot's user id is in the message's user mentions (role,
 * @everyone and @here mentions do not count) or when it replies to one of the bot's messages.
 * Bots (the bot itself included) and webhooks never trigger. Direct messages trigger when a DM
 * agent is set. Guild enablement and pause are checked by the listener against the settings.
 */
import type { ReceivedMessage } from "./Discord.js"
import type { TriggerKind } from "./Event.js"

export type TriggerDecision =
  | { readonly _tag: "Trigger"; readonly kind: TriggerKind }
  | { readonly _tag: "Ignore"; readonly reason: IgnoreReason }

export type IgnoreReason = "own-message" | "bot-author" | "webhook" | "not-addressed" | "dm-disabled"

export interface TriggerFacts {
  readonly botUserId: string
  /** Whether direct messages are on (a DM agent is set). */
  readonly dmEnabled: boolean
  /** The author of the message this one replies to, when it is a reply and the author is known. */
  readonly repliedToAuthorId: string | null
}

const ignore = (reason: IgnoreReason): TriggerDecision => ({ _tag: "Ignore", reason })
const trigger = (kind: TriggerKind): TriggerDecision => ({ _tag: "Trigger", kind })

export const decideTrigger = (received: ReceivedMessage, facts: TriggerFacts): TriggerDecision => {
  const { message } = received
  if (message.author.id === facts.botUserId) return ignore("own-message")
  if (message.webhookId !== null) return ignore("webhook")
  if (message.author.bot) return ignore("bot-author")
  if (received.guild === null) return facts.dmEnabled ? trigger("dm") : ignore("dm-disabled")
  if (message.mentions.users.includes(facts.botUserId)) return trigger("mention")
  if (message.reference !== null && facts.repliedToAuthorId === facts.botUserId) return trigger("reply")
  return ignore("not-addressed")
}

/** Whether resolving the replied-to author is worth a lookup: only for guild replies without a mention. */
export const needsReplyAuthor = (received: ReceivedMessage, botUserId: string): boolean =>
  received.guild !== null &&
  received.message.reference !== null &&
  received.message.author.id !== botUserId &&
  !received.message.author.bot &&
  received.message.webhookId === null &&
  !received.message.mentions.users.includes(botUserId)
