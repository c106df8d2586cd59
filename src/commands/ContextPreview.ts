/**
 * `/aurora context message_id:` and the "Preview Aurora prompt" message command: the exact prompt
 * a message would produce, built by the listener's own path (ContextService.build, then
 * PromptService.render, with the guild's settings), and the image URLs that would go with it
 * (domain/Images.ts, as the listener chooses them), shown and never sent.
 */
import { channelMention, messageLink } from "discord.js"
import { Effect, Either, Option } from "effect"
import type { ReceivedMessage } from "../domain/Discord.js"
import type { DiscordFailure } from "../domain/Errors.js"
import type { TriggerKind } from "../domain/Event.js"
import { chooseImages } from "../domain/Images.js"
import { decideTrigger, type IgnoreReason } from "../domain/Trigger.js"
import type { MessageContext } from "../domain/Context.js"
import { parseMessageRef } from "../domain/Snowflake.js"
import { ContextService } from "../services/prompt/ContextService.js"
import { PromptService } from "../services/prompt/PromptService.js"
import { SettingsStore } from "../services/storage/SettingsStore.js"
import { clip, code, plural } from "./Format.js"
import { Colors, CommandRejected, type Invocation, Reply, type ReplyFile } from "./Invocation.js"
import { guildOf, requiredValue } from "./Options.js"
import { PreviewSource } from "./PreviewSource.js"

/** The message to preview: where it is, once the user's reference is resolved. */
export interface PreviewTarget {
  readonly channelId: string
  readonly messageId: string
}

const refRule = "a message id from this channel, or a message link (Copy Message Link) from this server"

/** A message id (in the current channel) or a message link, which must point into this guild. */
export const previewTargetOf = (
  input: string,
  here: { readonly guildId: string; readonly channelId: string | null }
): Either.Either<PreviewTarget, string> => {
  const ref = parseMessageRef(input)
  if (Option.isNone(ref)) return Either.left(`❌ \`message_id\` must be ${refRule}.`)
  if (ref.value._tag === "MessageId") {
    return here.channelId === null
      ? Either.left("❌ This channel is unknown; use a message link instead.")
      : Either.right({ channelId: here.channelId, messageId: ref.value.messageId })
  }
  const { channelId, guildId, messageId } = ref.value
  if (guildId !== here.guildId) {
    return Either.left("❌ That link points outside this server: only this server's messages can be previewed.")
  }
  return Either.right({ channelId, messageId })
}

const fetchFailure = (ref: PreviewTarget, error: DiscordFailure): string => {
  switch (error._tag) {
    case "MessageNotFound":
      return `❌ No message ${ref.messageId} in ${channelMention(ref.channelId)} (deleted, or the id is from another channel).`
    case "MissingAccess":
      return `❌ Aurora cannot read ${channelMention(ref.channelId)} (missing access).`
    case "DiscordRateLimited":
      return "❌ Discord is rate-limiting Aurora right now; try again in a moment."
    case "DiscordError":
      return "❌ Discord did not return the message; try again in a moment."
  }
}

const ignoreText: Record<IgnoreReason, string> = {
  "own-message": "it is Aurora's own message",
  "bot-author": "its author is a bot",
  webhook: "a webhook posted it",
  "not-addressed": "it neither mentions Aurora nor replies to one of its messages",
  "dm-disabled": "direct messages are off"
}

/**
 * The trigger the listener would decide. The replied-to author is the newest parent of the chain
 * just built (the listener reads it from the payload, cache or REST: the same message).
 */
const triggerOf = (received: ReceivedMessage, context: MessageContext, botUserId: string) => {
  const reference = received.message.reference
  const newest = context.chain.entries[context.chain.entries.length - 1]
  const repliedToAuthorId = reference !== null && newest?._tag === "ChainMessage" &&
      newest.message.id === reference.messageId
    ? newest.message.author.id
    : null
  return decideTrigger(received, { botUserId, dmEnabled: false, repliedToAuthorId })
}

/**
 * The image URLs that would go with the prompt as image parts (at most 4, each shown up to 240
 * characters: the field holds 1 024).
 */
export const imagesText = (urls: ReadonlyArray<string>, enabled: boolean): string =>
  urls.length === 0
    ? enabled ? "none" : "none (images are off in this server)"
    : `${plural(urls.length, "image")}:\n${urls.map((url) => code(url, 240)).join("\n")}`

/** Room for the prompt in an embed description (4096) inside a code block. */
const embedRoom = 4096 - "```\n\n```".length

/** The prompt as an embed code block; a prompt that does not fit unchanged also goes in a file. */
export const promptDisplay = (
  prompt: string,
  fileName: string
): { readonly block: string; readonly file: ReplyFile | undefined } => {
  // A ``` in user content would end the code block early: broken with a zero-width space for display.
  const safe = prompt.replace(/```/g, "`\u200b``")
  const shown = clip(safe, embedRoom)
  return {
    block: `\`\`\`\n${shown}\n\`\`\``,
    file: shown === prompt ? undefined : { name: fileName, content: prompt }
  }
}

export const previewContext = (invocation: Invocation) =>
  Effect.gen(function*() {
    const guildId = yield* guildOf(invocation)
    const raw = yield* requiredValue(invocation, "message_id")
    const ref = yield* Either.mapLeft(
      previewTargetOf(typeof raw === "string" ? raw : String(raw), { guildId, channelId: invocation.channelId }),
      (message) => new CommandRejected({ message })
    )
    const source = yield* PreviewSource
    const received = yield* source.fetch(ref.channelId, ref.messageId).pipe(
      Effect.mapError((error) => new CommandRejected({ message: fetchFailure(ref, error) }))
    )
    if (received.guild?.id !== guildId) {
      return yield* new CommandRejected({
        message: "❌ That message is not in this server: only this server's messages can be previewed."
      })
    }
    const state = yield* Effect.flatMap(SettingsStore, (store) => store.guild(guildId))
    const context = yield* Effect.flatMap(ContextService, (service) => service.build(received, state.settings.replydepth))
    const decision = triggerOf(received, context, source.botUserId)
    const trigger: TriggerKind = decision._tag === "Trigger" ? decision.kind : "mention"
    const prompt = yield* Effect.flatMap(
      PromptService,
      (service) => service.render(context, { trigger, mcpGuidance: state.settings.mcpguidance, images: state.settings.images })
    )
    const images = chooseImages(received.message.attachments, { enabled: state.settings.images })
    const display = promptDisplay(prompt, `aurora-prompt-${ref.messageId}.txt`)
    const notes = [
      ...(decision._tag === "Ignore"
        ? [`⚠️ This message would not trigger Aurora: ${ignoreText[decision.reason]}. Shown as if it mentioned Aurora.`]
        : []),
      ...(state.enabled ? [] : ["⚠️ Aurora is not enabled in this server."]),
      ...(display.file === undefined ? [] : ["The exact prompt is attached as a file."])
    ]
    const parents = context.chain.entries.length
    return Reply.embed(
      {
        title: "Prompt preview (not sent)",
        description: display.block,
        color: decision._tag === "Trigger" ? Colors.info : Colors.warning,
        fields: [
          {
            name: "Message",
            value: messageLink(ref.channelId, ref.messageId, guildId),
            inline: false
          },
          { name: "Trigger", value: decision._tag === "Trigger" ? decision.kind : "none", inline: true },
          {
            name: "Reply chain",
            value: `${plural(parents, "parent")} (replydepth ${state.settings.replydepth}${
              context.chain.truncated ? ", cut at the limit" : ""
            })`,
            inline: true
          },
          { name: "Length", value: plural(prompt.length, "character"), inline: true },
          { name: "Images sent with it", value: imagesText(images.urls, state.settings.images), inline: false }
        ]
      },
      {
        ...(notes.length > 0 ? { content: notes.join("\n") } : {}),
        ...(display.file === undefined ? {} : { file: display.file })
      }
    )
  })
