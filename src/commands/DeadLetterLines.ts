/**
 * How one dead letter reads in `/aurora queue failed`: what and where (a jump link, the channel or
 * the DM's author, when, the conversation), then why. Everything from Letta or Discord is untrusted:
 * ids only become links or mentions when they are plain ids, the rest is inline code, cut short.
 */
import { channelMention, messageLink, time, TimestampStyles, userMention } from "discord.js"
import type { DeadLetter, DeadLetterReason } from "../domain/DeadLetter.js"
import type { QueuedEvent } from "../domain/Event.js"
import { isSnowflake } from "../domain/Snowflake.js"
import { code, plural } from "./Format.js"

/** Error details come from Letta or Discord: shown cut to this length, inside inline code. */
const maxDetailLength = 160

const reasonText: Record<DeadLetterReason, string> = {
  failed: "failed",
  expired: "expired (too old after a restart)",
  "interrupted-after-reply": "interrupted after the agent acted",
  interrupted: "interrupted twice"
}

/** The message id, as a jump link when every part is a plain id (anything else could carry markup). */
const messageRef = (event: QueuedEvent): string => {
  const { channelId, guildId, messageId } = event
  return guildId !== null && isSnowflake(guildId) && isSnowflake(channelId) && isSnowflake(messageId)
    ? `[${messageId}](${messageLink(channelId, messageId, guildId)})`
    : code(messageId, 40)
}

/** Where it was posted: the channel for a guild, the author for a DM (a DM channel renders as nothing). */
const placeOf = (event: QueuedEvent): string => {
  if (event.guildId === null) {
    return isSnowflake(event.authorId)
      ? `DM from ${userMention(event.authorId)}`
      : `DM ${code(event.authorId, 40)}`
  }
  return isSnowflake(event.channelId) ? `in ${channelMention(event.channelId)}` : `in ${code(event.channelId, 40)}`
}

/** Two lines: what and where, then why (the error detail is untrusted: inline code, cut short). */
export const deadLetterLines = (letter: DeadLetter): ReadonlyArray<string> => {
  const errorType = letter.errorType === null ? "" : ` ${code(letter.errorType, 60)}`
  const conversation = letter.conversationId === undefined ? "" : ` · conversation ${code(letter.conversationId, 80)}`
  const head = `${messageRef(letter.event)} ${placeOf(letter.event)} · ${
    time(new Date(letter.failedAt), TimestampStyles.RelativeTime)
  }${conversation}`
  const why = `↳ **${reasonText[letter.reason]}**${errorType} after ${plural(letter.attempts, "attempt")}`
  return letter.detail === null ? [head, why] : [head, `${why}: ${code(letter.detail, maxDetailLength)}`]
}
