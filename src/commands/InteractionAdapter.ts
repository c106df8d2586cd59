/**
 * The only command code that touches discord.js: decodes an interaction into an Invocation, and
 * shows a Reply through the interaction (reply, or deferral then edit). Commands known to be slow
 * (an agent or health check, reading a reply chain) are deferred at once; any other command that
 * has not answered within `replyBudget` is deferred too, so Discord's 3-second window is never missed.
 */
import {
  type APIEmbed,
  ApplicationCommandOptionType,
  AttachmentBuilder,
  type CommandInteractionOption,
  type Interaction,
  MessageFlags,
  type RepliableInteraction
} from "discord.js"
import { Duration, Effect, Fiber, Option } from "effect"
import { describeError } from "../services/discord/DiscordMapping.js"
import { clip } from "./Format.js"
import { commandLabel, type Invocation, type OptionValue, Reply, type ReplyEmbed } from "./Invocation.js"
import { type CommandEnv, handleInvocation, specOf } from "./Router.js"

/** Discord allows 3 s before the first answer; this leaves room for the request itself. */
export const replyBudget = Duration.millis(2_000)
/** A handler still running after this is stopped and answered; the token lives 15 minutes. */
export const handlerTimeout = Duration.seconds(60)

// --- decoding -----------------------------------------------------------------------------------

const leafValues = (options: ReadonlyArray<CommandInteractionOption>): Record<string, OptionValue> => {
  const values: Record<string, OptionValue> = {}
  for (const option of options) {
    const value = option.value
    if (typeof value === "string" || typeof value === "number" || typeof value === "boolean") values[option.name] = value
  }
  return values
}

/** The plain invocation of a command interaction; null for anything else (components, autocomplete). */
export const decodeInteraction = (interaction: Interaction): Invocation | null => {
  if (!interaction.isCommand()) return null
  const base = {
    interactionId: interaction.id,
    userId: interaction.user.id,
    guildId: interaction.guildId,
    channelId: interaction.channelId,
    memberPermissions: interaction.memberPermissions?.bitfield ?? null,
    name: interaction.commandName
  }
  if (interaction.isMessageContextMenuCommand()) {
    return { ...base, source: "menu", group: null, subcommand: null, options: { message_id: interaction.targetId } }
  }
  if (!interaction.isChatInputCommand()) {
    return { ...base, source: "menu", group: null, subcommand: null, options: {} }
  }
  // Read from the raw option tree, not discord.js' typed getters: a crafted request may send
  // types the registration does not declare, and the handlers check every value themselves.
  const first = interaction.options.data[0]
  if (first?.type === ApplicationCommandOptionType.SubcommandGroup) {
    const sub = first.options?.[0]
    return {
      ...base,
      source: "slash",
      group: first.name,
      subcommand: sub?.name ?? null,
      options: leafValues(sub?.options ?? [])
    }
  }
  if (first?.type === ApplicationCommandOptionType.Subcommand) {
    return { ...base, source: "slash", group: null, subcommand: first.name, options: leafValues(first.options ?? []) }
  }
  return { ...base, source: "slash", group: null, subcommand: null, options: leafValues(interaction.options.data) }
}

// --- rendering ------------------------------------------------------------------------------------

/** Discord's embed limits: the reply is cut to fit rather than rejected by the API. */
const embedLimits = { title: 256, description: 4096, fields: 25, fieldName: 256, fieldValue: 1024, footer: 2048, total: 6000 }

export const toApiEmbed = (embed: ReplyEmbed): APIEmbed => {
  const title = clip(embed.title, embedLimits.title)
  const footer = embed.footer === undefined ? undefined : clip(embed.footer, embedLimits.footer)
  const description = embed.description === undefined ? "" : clip(embed.description, embedLimits.description)
  // The whole embed shares 6000 characters: title, footer and description first, then the fields
  // that still fit (the last one cut short when that keeps it readable).
  let budget = embedLimits.total - title.length - (footer?.length ?? 0) - description.length
  const fields: Array<{ name: string; value: string; inline: boolean }> = []
  for (const field of (embed.fields ?? []).slice(0, embedLimits.fields)) {
    const name = clip(field.name, embedLimits.fieldName) || "\u200b"
    const room = Math.min(embedLimits.fieldValue, budget - name.length)
    if (room < Math.min(20, field.value.length || 1)) break
    const value = clip(field.value, room) || "\u200b"
    fields.push({ name, value, inline: field.inline ?? false })
    budget -= name.length + value.length
  }
  return {
    title,
    ...(description === "" ? {} : { description }),
    ...(embed.color === undefined ? {} : { color: embed.color }),
    ...(fields.length === 0 ? {} : { fields }),
    ...(footer === undefined ? {} : { footer: { text: footer } })
  }
}

const messageOf = (reply: Reply) => ({
  ...(reply.content === undefined ? {} : { content: clip(reply.content, 2000) }),
  embeds: reply.embed === undefined ? [] : [toApiEmbed(reply.embed)],
  files: reply.file === undefined
    ? []
    : [new AttachmentBuilder(Buffer.from(reply.file.content, "utf8"), { name: reply.file.name })],
  // Replies name channels and users; none of them should be pinged.
  allowedMentions: { parse: [] }
})

const call = (operation: string, run: () => Promise<unknown>) =>
  Effect.tryPromise({ try: run, catch: (error) => new Error(`${operation}: ${describeError(error)}`) })

const flagsOf = (reply: { readonly ephemeral: boolean }) => (reply.ephemeral ? MessageFlags.Ephemeral : undefined)

const send = (interaction: RepliableInteraction, reply: Reply) =>
  call("reply", () => {
    const flags = flagsOf(reply)
    return interaction.reply({ ...messageOf(reply), ...(flags === undefined ? {} : { flags }) })
  })

// Every Aurora reply is ephemeral, so a deferral is too (its flags cannot change at the edit).
const defer = (interaction: RepliableInteraction) =>
  call("deferReply", () => interaction.deferReply({ flags: MessageFlags.Ephemeral }))

const edit = (interaction: RepliableInteraction, reply: Reply) => call("editReply", () => interaction.editReply(messageOf(reply)))

const timedOut = (invocation: Invocation) =>
  Reply.text(`❌ \`${commandLabel(invocation)}\` took too long and was stopped. Try again in a moment.`)

/** Answers one interaction. Never fails: a reply Discord refuses is logged. */
export const respond = (interaction: Interaction): Effect.Effect<void, never, CommandEnv> => {
  const invocation = decodeInteraction(interaction)
  if (invocation === null || !interaction.isRepliable()) {
    return Effect.logDebug("ignored an interaction that is not a command").pipe(
      Effect.annotateLogs({ interactionId: interaction.id, interactionType: interaction.type })
    )
  }
  const handled = handleInvocation(invocation).pipe(
    Effect.timeoutTo({ duration: handlerTimeout, onSuccess: (reply) => reply, onTimeout: () => timedOut(invocation) })
  )
  return Effect.gen(function*() {
    if (specOf(invocation)?.slow === true) {
      // Deferred before any work: if Discord no longer knows the interaction, nothing is changed.
      yield* defer(interaction)
      return yield* edit(interaction, yield* handled)
    }
    const fiber = yield* Effect.fork(handled)
    const early = yield* Effect.timeoutOption(Fiber.join(fiber), replyBudget)
    if (Option.isSome(early)) return yield* send(interaction, early.value)
    yield* defer(interaction)
    yield* edit(interaction, yield* Fiber.join(fiber))
  }).pipe(
    Effect.catchAllCause((cause) => Effect.logWarning("could not answer the interaction", cause)),
    Effect.annotateLogs({
      interactionId: invocation.interactionId,
      command: commandLabel(invocation),
      userId: invocation.userId
    })
  )
}
