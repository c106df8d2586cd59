/**
 * Where approval messages reach Discord: `post` creates the message in the channel as a reply to
 * the triggering message (a plain message when that one is gone: `fail_if_not_exists: false`),
 * `edit` rewrites it (the deadline's outcome; a click's outcome goes through the interaction
 * instead). Bodies go to REST exactly as ApprovalMessage rendered them; failures are Aurora's
 * Discord failures (DiscordMapping).
 */
import { Routes } from "discord.js"
import { Context, Effect, Layer } from "effect"
import type { DiscordFailure } from "../../domain/Errors.js"
import { DiscordGateway } from "../discord/DiscordGateway.js"
import { toDiscordFailure } from "../discord/DiscordMapping.js"
import type { ApprovalMessageBody } from "./ApprovalMessage.js"

export interface ApprovalPosterShape {
  /** The new message's id. */
  readonly post: (channelId: string, replyTo: string, body: ApprovalMessageBody) => Effect.Effect<string, DiscordFailure>
  readonly edit: (channelId: string, messageId: string, body: ApprovalMessageBody) => Effect.Effect<void, DiscordFailure>
}

/** The body of the first post: the message, as a reply that pings nobody. */
export const postBody = (replyTo: string, body: ApprovalMessageBody) => ({
  ...body,
  message_reference: { message_id: replyTo, fail_if_not_exists: false }
})

export class ApprovalPoster extends Context.Tag("aurora/ApprovalPoster")<ApprovalPoster, ApprovalPosterShape>() {
  /** Through the gateway's REST client. */
  static readonly Default: Layer.Layer<ApprovalPoster, never, DiscordGateway> = Layer.effect(
    ApprovalPoster,
    Effect.map(DiscordGateway, ({ client }): ApprovalPosterShape => ({
      post: (channelId, replyTo, body) =>
        Effect.tryPromise({
          try: () => client.rest.post(Routes.channelMessages(channelId), { body: postBody(replyTo, body) }),
          catch: (error) => toDiscordFailure(error, { operation: "postApproval", channelId })
        }).pipe(Effect.map((message) => String(Reflect.get(Object(message), "id")))),
      edit: (channelId, messageId, body) =>
        Effect.tryPromise({
          try: () => client.rest.patch(Routes.channelMessage(channelId, messageId), { body }),
          catch: (error) => toDiscordFailure(error, { operation: "editApproval", channelId, messageId })
        }).pipe(Effect.asVoid)
    }))
  )
}
