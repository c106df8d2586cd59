/**
 * The plain values the command handlers speak: an invocation decoded from a Discord interaction,
 * and the reply they want shown. Neither holds a discord.js object, so the handlers are tested
 * with literals and the discord.js adapter is the only code that converts.
 */
import { Data } from "effect"

/** An option value as Discord sends it (string, integer/number or boolean options). */
export type OptionValue = string | number | boolean

export interface Invocation {
  readonly interactionId: string
  readonly userId: string
  /** null when the interaction came from a DM (the commands are guild-only, but requests can be crafted). */
  readonly guildId: string | null
  readonly channelId: string | null
  /** The member's permissions in the channel, as Discord computed them; null outside a guild. */
  readonly memberPermissions: bigint | null
  /** A slash command or a message context-menu command. */
  readonly source: "slash" | "menu"
  /** The command's name as Discord sent it ("aurora", "Preview Aurora prompt"). */
  readonly name: string
  readonly group: string | null
  readonly subcommand: string | null
  readonly options: Readonly<Record<string, OptionValue>>
}

/** How the command is named in replies and logs: "config ratelimit", "Preview Aurora prompt". */
export const commandLabel = (invocation: Invocation): string =>
  invocation.source === "menu"
    ? invocation.name
    : [`/${invocation.name}`, invocation.group, invocation.subcommand].filter((part) => part !== null).join(" ")

export interface ReplyField {
  readonly name: string
  readonly value: string
  readonly inline?: boolean
}

export interface ReplyEmbed {
  readonly title: string
  readonly description?: string
  readonly color?: number
  readonly fields?: ReadonlyArray<ReplyField>
  readonly footer?: string
}

export interface ReplyFile {
  readonly name: string
  readonly content: string
}

export interface Reply {
  readonly content?: string
  readonly embed?: ReplyEmbed
  readonly file?: ReplyFile
  /** Every Aurora reply is ephemeral (only the admin sees it); kept explicit for the adapter. */
  readonly ephemeral: boolean
}

export const Reply = {
  text: (content: string): Reply => ({ content, ephemeral: true }),
  embed: (embed: ReplyEmbed, extra: { readonly content?: string; readonly file?: ReplyFile } = {}): Reply => ({
    ...extra,
    embed,
    ephemeral: true
  })
}

/** Embed colours: at-a-glance health of a status view. */
export const Colors = {
  ok: 0x2ecc71,
  warning: 0xf1c40f,
  error: 0xe74c3c,
  info: 0x5865f2
} as const

/**
 * A request the handler refuses without doing anything: a missing or out-of-range option, a
 * command outside a guild. `message` is shown to the user as it is.
 */
export class CommandRejected extends Data.TaggedError("CommandRejected")<{
  readonly message: string
}> {}

/** The user may not run this command; the router answers and logs it. */
export class AccessDenied extends Data.TaggedError("AccessDenied")<{
  readonly required: "manage" | "owner"
  readonly userId: string
  readonly command: string
}> {}
