/**
 * The narrow port through which Aurora reacts to a message with an emoji of its own (feedback
 * reactions, see Feedback.ts). The Discord gateway's discord.js REST client implements it; tests
 * swap in a fake.
 *
 * Discord's `PUT /channels/{channel}/messages/{message}/reactions/{emoji}/@me` is idempotent: the
 * bot's reaction is either there or not, so sending it twice never shows two. A Unicode emoji goes
 * into the path URL-encoded (as discord.js' own `react` does). A 429 is waited out inside
 * discord.js' rate-limit queue; interrupting the call withdraws the request through its signal,
 * even while it waits there.
 */
import { Routes } from "discord.js"
import { Context, Effect, Layer } from "effect"
import type { DiscordFailure } from "../../domain/Errors.js"
import { DiscordGateway } from "./DiscordGateway.js"
import { toDiscordFailure } from "./DiscordMapping.js"

export class Reactions extends Context.Tag("aurora/Reactions")<
  Reactions,
  {
    /**
     * Adds the bot's reaction `emoji` (Unicode) to the message. Fails with MissingAccess (403,
     * e.g. 50013 Missing Permissions), MessageNotFound (404, 10008 Unknown Message: deleted),
     * DiscordRateLimited or DiscordError.
     */
    readonly addReaction: (channelId: string, messageId: string, emoji: string) => Effect.Effect<void, DiscordFailure>
  }
>() {
  /** Through the gateway's REST client. */
  static readonly Default: Layer.Layer<Reactions, never, DiscordGateway> = Layer.effect(
    Reactions,
    Effect.map(DiscordGateway, (gateway) =>
      Reactions.of({
        addReaction: (channelId, messageId, emoji) =>
          Effect.tryPromise({
            try: (signal) =>
              gateway.client.rest.put(
                Routes.channelMessageOwnReaction(channelId, messageId, encodeURIComponent(emoji)),
                { signal }
              ),
            catch: (error) => toDiscordFailure(error, { operation: "addReaction", channelId, messageId })
          }).pipe(
            Effect.asVoid,
            Effect.withSpan("Reactions.addReaction", { attributes: { channelId, messageId }, captureStackTrace: false })
          )
      }))
  )
}
