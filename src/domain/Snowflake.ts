/**
 * Discord ids (snowflakes) and message references as people type them: the one place that says
 * what an id looks like.
 *
 * A snowflake is an unsigned 64-bit integer written in decimal: (ms since 2015-01-01) << 22, plus
 * worker, process and counter bits. 2^64 - 1 has 20 digits, so nothing longer is an id; an id
 * below 10^16 (16 digits or fewer) would date from before 28 January 2015, months before Discord's
 * first objects (its oldest guilds, April 2015, already have 17 digits). Ids have 18–19 digits
 * today and reach 20 in 2090. So an id is 17 to 20 digits, and anything else is not printed as an
 * id, not put into a link and not sent to Discord.
 *
 * `parseMessageRef` takes what a user pastes into a `message_id` option, trimmed:
 * - a bare message id: `810000000000000002`;
 * - a message link (Copy Message Link), from discord.com, ptb./canary.discord.com or the old
 *   discordapp.com, over https (or http): `https://discord.com/channels/<guild>/<channel>/<message>`,
 *   `@me` in place of the guild for a DM, a trailing `/` allowed, and wrapped in `<…>` (the form
 *   Discord uses to suppress an embed) as a pair only.
 * Anything else (other hosts, ids of another width, extra text) is none.
 */
import { Option, Schema } from "effect"

const digits = "\\d{17,20}"
const idPattern = new RegExp(`^${digits}$`)

export const Snowflake = Schema.String.pipe(Schema.pattern(idPattern), Schema.brand("Snowflake"))
export type Snowflake = typeof Snowflake.Type

/** `Schema.is(Snowflake)` as a plain regex test, about 5x cheaper: the prompt checks every id it prints. */
export const isSnowflake = (input: unknown): input is Snowflake => typeof input === "string" && idPattern.test(input)

/** A message named by id alone (somewhere the caller knows) or by a link (which says where). */
export type MessageRef =
  | { readonly _tag: "MessageId"; readonly messageId: Snowflake }
  | {
    readonly _tag: "MessageLink"
    /** null for a DM link (`@me`). */
    readonly guildId: Snowflake | null
    readonly channelId: Snowflake
    readonly messageId: Snowflake
  }

const linkPattern = new RegExp(
  `^https?://(?:(?:ptb|canary)\\.)?discord(?:app)?\\.com/channels/(${digits}|@me)/(${digits})/(${digits})/?$`
)

export const parseMessageRef = (input: string): Option.Option<MessageRef> => {
  const text = input.trim()
  if (isSnowflake(text)) return Option.some({ _tag: "MessageId", messageId: text })
  const unwrapped = text.startsWith("<") && text.endsWith(">") ? text.slice(1, -1) : text
  const [, guild, channelId, messageId] = linkPattern.exec(unwrapped) ?? []
  if (guild === undefined || !isSnowflake(channelId) || !isSnowflake(messageId)) return Option.none()
  return Option.some({ _tag: "MessageLink", guildId: isSnowflake(guild) ? guild : null, channelId, messageId })
}
