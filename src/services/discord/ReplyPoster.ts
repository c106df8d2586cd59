/**
 * The narrow port through which Aurora posts a message of its own as a reply (the silent-run
 * fallback). The Discord gateway's discord.js REST client implements it; tests swap in a fake.
 *
 * Every post is `POST /channels/{channel}/messages` with:
 * - `message_reference: { message_id, fail_if_not_exists: false }`: a reply to the triggering
 *   message, posted as a plain message if that message was deleted meanwhile;
 * - `allowed_mentions: { parse: [], replied_user: true }`: whatever the text says (`@everyone`,
 *   `@here`, `<@&role>`, `<@user>`), Discord pings nobody but the author of the replied message;
 * - `nonce` with `enforce_nonce: true`: the same nonce from the same author within a few minutes
 *   makes Discord return the message it already created instead of creating another, so a
 *   request discord.js re-sends by itself (a 5xx or a network error after Discord received it)
 *   cannot post twice. The nonce is derived from what the post is (`replyNonce`).
 *
 * A failure is a DiscordFailure (403 Missing Permissions -> MissingAccess, a deleted channel ->
 * DiscordError, ...); the caller decides what to do with it. The request carries the fiber's
 * AbortSignal: an interruption withdraws it, even from discord.js' rate-limit queue.
 */
import { createHash } from "node:crypto"
import { Routes } from "discord.js"
import { Context, Effect, Layer } from "effect"
import type { DiscordFailure } from "../../domain/Errors.js"
import { DiscordGateway } from "./DiscordGateway.js"
import { toDiscordFailure } from "./DiscordMapping.js"

export interface ReplyPost {
  readonly channelId: string
  /** The message replied to. */
  readonly replyTo: string
  /** At most 2 000 characters (Discord answers 400 otherwise). */
  readonly content: string
  /** At most 25 characters (see `replyNonce`). */
  readonly nonce: string
}

/** Discord's limit for a nonce. */
const maxNonceLength = 25

/**
 * The nonce of part `part` (0-based) of Aurora's reply to `messageId`: the same for every attempt
 * at that post, different for every part and every message. A Discord id (at most 20 digits)
 * gives `<id>.<part>`; anything longer (not a Discord id) is replaced by a digest, to stay
 * within Discord's 25 characters.
 */
export const replyNonce = (messageId: string, part: number): string => {
  const plain = `${messageId}.${part}`
  if (plain.length <= maxNonceLength) return plain
  const suffix = `.${part}`
  return createHash("sha256").update(messageId).digest("base64url").slice(0, maxNonceLength - suffix.length) + suffix
}

/** The JSON body of a reply post (see the module header). */
export const replyBody = (reply: ReplyPost) => ({
  content: reply.content,
  message_reference: { message_id: reply.replyTo, fail_if_not_exists: false },
  allowed_mentions: { parse: [], replied_user: true },
  nonce: reply.nonce,
  enforce_nonce: true
})

const idOf = (created: unknown): string =>
  typeof created === "object" && created !== null && "id" in created && typeof created.id === "string" ? created.id : "?"

export class ReplyPoster extends Context.Tag("aurora/ReplyPoster")<
  ReplyPoster,
  {
    /** Posts one reply; succeeds with the created message's id. */
    readonly postReply: (reply: ReplyPost) => Effect.Effect<string, DiscordFailure>
  }
>() {
  /** Through the gateway's discord.js REST client (its rate limits, its retries of 5xx and network errors). */
  static readonly Default: Layer.Layer<ReplyPoster, never, DiscordGateway> = Layer.effect(
    ReplyPoster,
    Effect.map(DiscordGateway, (gateway) =>
      ReplyPoster.of({
        postReply: (reply) =>
          Effect.tryPromise({
            try: (signal) =>
              gateway.client.rest.post(Routes.channelMessages(reply.channelId), { body: replyBody(reply), signal }),
            catch: (error) => toDiscordFailure(error, { operation: "postReply", channelId: reply.channelId })
          }).pipe(
            Effect.map(idOf),
            Effect.withSpan("ReplyPoster.postReply", {
              attributes: { channelId: reply.channelId, replyTo: reply.replyTo },
              captureStackTrace: false
            })
          )
      }))
  )
}
