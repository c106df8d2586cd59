/**
 * The narrow port through which context building reads parent messages. The Discord gateway
 * implements it with discord.js' cache first, then REST; tests swap in a fake.
 */
import { Context, Effect, Layer } from "effect"
import type { MessageRecord } from "../../domain/Discord.js"
import type { DiscordFailure } from "../../domain/Errors.js"
import { DiscordGateway } from "./DiscordGateway.js"

export class MessageSource extends Context.Tag("aurora/MessageSource")<
  MessageSource,
  {
    /** Fails with MessageNotFound (deleted, 404) or MissingAccess (403) when it cannot be read. */
    readonly fetchMessage: (channelId: string, messageId: string) => Effect.Effect<MessageRecord, DiscordFailure>
  }
>() {
  /** Served by the gateway: discord.js' cache first, then REST. */
  static readonly Default: Layer.Layer<MessageSource, never, DiscordGateway> = Layer.effect(
    MessageSource,
    Effect.map(DiscordGateway, (gateway) => MessageSource.of({ fetchMessage: gateway.fetchMessage }))
  )
}
