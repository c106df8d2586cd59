/**
 * A bot's `POST /channels/{c}/messages` as Discord handles it, so that a bug in what Aurora sends
 * fails here as it would on Discord:
 * - content over 2 000 characters (counted in code points, as Discord does) or a nonce over 25:
 *   400 Invalid Form Body (code 50035) with Discord's `errors` tree (`BASE_TYPE_MAX_LENGTH`);
 *   neither content nor embeds: 400 Cannot send an empty message (50006); embeds and components
 *   over Discord's limits: 400 (Components.ts);
 * - `message_reference` to a message that does not exist: 400 (50035, `REPLIES_UNKNOWN_MESSAGE`)
 *   unless `fail_if_not_exists: false`, which posts a plain message instead;
 * - mentions as `allowed_mentions` allows them: without it, every `<@user>`, `<@&role>`,
 *   `@everyone`/`@here` in the content and the replied user are mentioned; with it, only the
 *   `parse` types, the listed `users`/`roles`, and the replied user when `replied_user` is true;
 * - `nonce` with `enforce_nonce: true`: the same author's post with the same nonce within
 *   `nonceWindowMs` returns the message created first, and creates nothing.
 * Every created post is recorded with what the bot asked (reference, allowed mentions, nonce).
 */
import { field, type Json, stringField } from "./Payloads.js"
import { discordError, json, type Reply } from "./Http.js"
import { richContentProblem } from "./Components.js"
import { botMessage } from "./Messages.js"
import type { DiscordState } from "./State.js"

/** Discord keeps a nonce "for a few minutes"; the fake keeps it for 5. */
export const nonceWindowMs = 5 * 60_000

export interface BotPost {
  readonly channelId: string
  /** The message as Discord created it (and as REST and the gateway give it). */
  readonly message: Json
  readonly messageReference: unknown
  readonly allowedMentions: unknown
  readonly nonce: unknown
  readonly enforceNonce: boolean
  readonly at: number
}

const formError = (key: string, code: string, message: string): Reply =>
  json(400, { message: "Invalid Form Body", code: 50035, errors: { [key]: { _errors: [{ code, message }] } } })

const codePoints = (text: string) => [...text].length

/** Why Discord would refuse the body, or null. */
const invalid = (body: unknown): Reply | null => {
  const content = field(body, "content")
  if (typeof content === "string" && codePoints(content) > 2000) {
    return formError("content", "BASE_TYPE_MAX_LENGTH", "Must be 2000 or fewer in length.")
  }
  const nonce = field(body, "nonce")
  if (typeof nonce === "string" && nonce.length > 25) {
    return formError("nonce", "BASE_TYPE_MAX_LENGTH", "Must be 25 or fewer in length.")
  }
  const embeds = field(body, "embeds")
  if ((typeof content !== "string" || content.trim() === "") && (!Array.isArray(embeds) || embeds.length === 0)) {
    return discordError(400, 50006, "Cannot send an empty message")
  }
  return richContentProblem(body)
}

const ids = (value: unknown): ReadonlyArray<string> => (Array.isArray(value) ? value.filter((v) => typeof v === "string") : [])

/** The mention fields Discord derives from the content under `allowed_mentions` (see the module header). */
export const mentionsOf = (content: string, allowedMentions: unknown, repliedAuthor: string | undefined) => {
  const all = allowedMentions === undefined || allowedMentions === null
  const parse = all ? ["users", "roles", "everyone"] : ids(field(allowedMentions, "parse"))
  const users = ids(field(allowedMentions, "users"))
  const roles = ids(field(allowedMentions, "roles"))
  const mentioned = [...content.matchAll(/<@!?(\d{17,20})>/g)].map((m) => m[1]!)
    .filter((id) => parse.includes("users") || users.includes(id))
  const replied = repliedAuthor !== undefined && (all || field(allowedMentions, "replied_user") === true) ? [repliedAuthor] : []
  return {
    mentions: [...new Set([...mentioned, ...replied])],
    mentionRoles: [...new Set([...content.matchAll(/<@&(\d{17,20})>/g)].map((m) => m[1]!))]
      .filter((id) => parse.includes("roles") || roles.includes(id)),
    mentionEveryone: parse.includes("everyone") && /@(everyone|here)/.test(content)
  }
}

/** Handles the post in `channelId` (already checked to exist and be allowed). */
export const createChannelPost = (
  state: DiscordState,
  channelId: string,
  body: unknown,
  echo: (message: Json) => void
): Reply => {
  const refused = invalid(body)
  if (refused !== null) return refused
  const now = Date.now()
  const nonce = field(body, "nonce")
  const enforceNonce = field(body, "enforce_nonce") === true
  const nonceKey = enforceNonce && (typeof nonce === "string" || typeof nonce === "number") ? `${state.bot.id}:${nonce}` : null
  const earlier = nonceKey === null ? undefined : state.nonces.get(nonceKey)
  if (earlier !== undefined && now - earlier.at <= nonceWindowMs) return json(200, earlier.message)

  const reference = field(body, "message_reference")
  const replyTo = stringField(reference, "message_id")
  const referenced = replyTo === undefined
    ? undefined
    : state.store.get(stringField(reference, "channel_id") ?? channelId)?.get(replyTo)
  if (replyTo !== undefined && referenced === undefined && field(reference, "fail_if_not_exists") !== false) {
    return formError("message_reference", "REPLIES_UNKNOWN_MESSAGE", "Unknown message")
  }
  const content = stringField(body, "content") ?? ""
  const repliedAuthor = stringField(field(referenced, "author"), "id")
  const message = botMessage(
    state,
    channelId,
    // A reply to a message that is gone (fail_if_not_exists false) is a plain message.
    referenced === undefined ? { ...(body as Json), message_reference: undefined } : body,
    nonce === undefined ? {} : { nonce },
    mentionsOf(content, field(body, "allowed_mentions"), repliedAuthor)
  )
  state.storeJson(message)
  if (nonceKey !== null) state.nonces.set(nonceKey, { message, at: now })
  state.posts.push({
    channelId,
    message,
    messageReference: reference,
    allowedMentions: field(body, "allowed_mentions"),
    nonce,
    enforceNonce,
    at: now
  })
  if (state.heldPosts === null) return { ...json(200, message), after: () => echo(message) }
  // Held: Discord has created the message (stored, echoed on the gateway) but its answer is late.
  echo(message)
  return { ...json(200, message), heldUntil: state.heldPosts.released }
}
