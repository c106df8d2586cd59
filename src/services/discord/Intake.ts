/**
 * The gateway's intake: which of the messages discord.js delivers can concern Aurora at all,
 * decided in discord.js' `messageCreate` callback, synchronously, before any Effect, queue, fiber,
 * log annotation or span exists for the message. With the message-content intent the bot receives
 * every message of its servers, and most address nobody in particular: each is counted
 * (`aurora_messages_received_total`, MessagesReceived.ts) and the rest of Aurora never sees it.
 *
 * The trigger rules (src/domain/Trigger.ts) stay the one definition of what triggers: this is a
 * pre-filter that lets through everything `decideTrigger` could accept, and the listener applies
 * the rules to what passes. Case by case:
 * - the bot's own messages, other bots' messages and webhook messages never pass;
 * - a direct message passes when DMs are on (a DM agent is set), as the setting is at that message;
 * - a guild message passes when the bot's user id is among its user mentions (a role, @everyone or
 *   @here is not a mention of the bot);
 * - a reply passes when the replied-to author is the bot, or is not known here; the author comes
 *   from the payload's referenced message, else from discord.js' message cache. Only a reply whose
 *   author is unknown (no referenced message in the payload, nothing cached) is resolved further,
 *   by the listener (REST);
 * - everything else is dropped: a guild message that mentions others or nobody, a reply to someone
 *   else, a notice with a reference but no message id, a forward (its reference names the forwarded
 *   message: forwarding the bot's answer is not a reply to the bot).
 * Before the bot's user is known (discord.js delivers messages only after READY) everything passes.
 */
import { Context, Effect, Layer } from "effect"
import { countMessageReceived } from "../health/MessagesReceived.js"
import { SettingsStore } from "../storage/SettingsStore.js"

/** What the intake reads of a discord.js `Message` (which satisfies it). */
export interface ArrivingMessage {
  readonly author: { readonly id: string; readonly bot: boolean }
  readonly webhookId: string | null
  /** null for a direct message (the same field the gateway's mapping reads). */
  readonly guild: object | null
  readonly mentions: {
    readonly users: ReadonlyMap<string, unknown>
    /** The author of the referenced message, when the payload carried it. */
    readonly repliedUser: { readonly id: string } | null
  }
  /** `type` 1 is a forward (Discord's MessageReferenceType.Forward); absent or 0, a reply. */
  readonly reference: {
    readonly channelId: string
    readonly messageId?: string | undefined
    readonly type?: number | undefined
  } | null
}

export interface IntakeFacts {
  readonly botUserId: string
  readonly dmEnabled: boolean
}

/** The author of a message in discord.js' cache, if it is there. */
export type CachedAuthor = (channelId: string, messageId: string) => string | undefined

/** Discord's MessageReferenceType.Forward: the reference names the forwarded message, not a parent. */
const forwardReferenceType = 1

/** A forward points at the message it copies: it is not a reply to that message's author. */
export const isForward = (reference: { readonly type?: number | undefined }): boolean => reference.type === forwardReferenceType

/** Whether `message` can concern Aurora; false only when `decideTrigger` would ignore it whatever the reply lookup says. */
export const mayConcernAurora = (message: ArrivingMessage, facts: IntakeFacts, cachedAuthor: CachedAuthor): boolean => {
  const { author } = message
  if (author.id === facts.botUserId || author.bot || message.webhookId !== null) return false
  if (message.guild === null) return facts.dmEnabled
  if (message.mentions.users.has(facts.botUserId)) return true
  const reference = message.reference
  if (reference === null || reference.messageId === undefined || isForward(reference)) return false
  const repliedTo = message.mentions.repliedUser?.id ?? cachedAuthor(reference.channelId, reference.messageId)
  return repliedTo === undefined || repliedTo === facts.botUserId
}

/** Whether direct messages are on right now, read synchronously in discord.js' callback. */
export class DirectMessageSwitch extends Context.Tag("aurora/DirectMessageSwitch")<
  DirectMessageSwitch,
  { readonly isOn: () => boolean }
>() {
  /** The global setting as SettingsStore holds it: `dm enable`/`dm disable` apply from the next message. */
  static readonly layerSettings: Layer.Layer<DirectMessageSwitch, never, SettingsStore> = Layer.effect(
    DirectMessageSwitch,
    Effect.map(SettingsStore, (settings) => DirectMessageSwitch.of({ isOn: () => settings.currentGlobal().dmAgentId !== null }))
  )

  static layerFixed(on: boolean): Layer.Layer<DirectMessageSwitch> {
    return Layer.succeed(DirectMessageSwitch, { isOn: () => on })
  }
}

export interface IntakeOptions<M extends ArrivingMessage> {
  /** null until discord.js knows the bot's user. */
  readonly botUserId: () => string | null
  readonly directMessages: Context.Tag.Service<DirectMessageSwitch>
  readonly cachedAuthor: CachedAuthor
  /** A message that may concern Aurora: the one way from here into Effect. */
  readonly accept: (message: M) => void
}

/** The `messageCreate` listener: counts every message, passes on those that may concern Aurora. */
export const makeIntake = <M extends ArrivingMessage>(options: IntakeOptions<M>) => (message: M): void => {
  countMessageReceived()
  const botUserId = options.botUserId()
  if (
    botUserId === null ||
    mayConcernAurora(message, { botUserId, dmEnabled: options.directMessages.isOn() }, options.cachedAuthor)
  ) {
    options.accept(message)
  }
}
