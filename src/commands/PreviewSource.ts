/**
 * Where the prompt preview reads the message to preview: the same discord.js client and mapping
 * (toReceivedMessage) the listener uses for a live message, cache first, then REST.
 */
import { Context, Effect, Layer } from "effect"
import type { ReceivedMessage } from "../domain/Discord.js"
import { DiscordError, type DiscordFailure, MessageNotFound } from "../domain/Errors.js"
import { DiscordGateway } from "../services/discord/DiscordGateway.js"
import { toDiscordFailure, toReceivedMessage } from "../services/discord/DiscordMapping.js"

export class PreviewSource extends Context.Tag("aurora/PreviewSource")<
  PreviewSource,
  {
    readonly botUserId: string
    /** The message with its channel and guild, as the listener would have received it. */
    readonly fetch: (channelId: string, messageId: string) => Effect.Effect<ReceivedMessage, DiscordFailure>
  }
>() {
  static readonly Default: Layer.Layer<PreviewSource, never, DiscordGateway> = Layer.effect(
    PreviewSource,
    Effect.map(DiscordGateway, (gateway) => {
      const client = gateway.client
      const fetch = (channelId: string, messageId: string): Effect.Effect<ReceivedMessage, DiscordFailure> =>
        Effect.gen(function*() {
          const target = { operation: "previewMessage", channelId, messageId }
          const channel = yield* Effect.tryPromise({
            try: () => client.channels.fetch(channelId),
            catch: (error) => toDiscordFailure(error, target)
          })
          if (channel === null) return yield* new MessageNotFound({ channelId, messageId })
          if (!channel.isTextBased()) {
            return yield* new DiscordError({ operation: "previewMessage", reason: `channel ${channelId} holds no messages` })
          }
          const cached = channel.messages.cache.get(messageId)
          const message = cached ?? (yield* Effect.tryPromise({
            try: () => channel.messages.fetch(messageId),
            catch: (error) => toDiscordFailure(error, target)
          }))
          return toReceivedMessage(message)
        }).pipe(Effect.withSpan("PreviewSource.fetch", { attributes: { channelId, messageId } }))
      return { botUserId: gateway.botUserId, fetch }
    })
  )
}
