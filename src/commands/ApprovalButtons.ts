/**
 * Clicks on approval buttons (custom id `aurora:approval:<id>:<call|all>:<approve|deny>`, see
 * domain/PendingApproval.ts). Who may decide follows the slash commands' `manage` rule exactly
 * (Access.mayManage: Manage Server or Administrator in the channel, or one of Aurora's owners; in
 * a DM only owners). What each click gets:
 *
 * - anyone else: an ephemeral "Only members with Manage Server can decide this approval.", and
 *   nothing changes;
 * - an unknown approval (finished, or never Aurora's), one of another channel, or a call decided
 *   already: an ephemeral "This approval was already decided", and nothing changes;
 * - a decision that could not be stored: an ephemeral apology, and nothing changes;
 * - a recorded decision: the message is updated in place (interaction response UPDATE_MESSAGE) to
 *   the approval as it now stands; the gate continues the run once every call is decided.
 *
 * `clickReply` is the decision (tested with plain values); `answerApprovalClick` is the discord.js
 * adapter and never fails.
 */
import { type ButtonInteraction, type Interaction, MessageFlags } from "discord.js"
import { Effect } from "effect"
import { isApprovalCustomId, parseCustomId } from "../domain/PendingApproval.js"
import type { ApprovalMessageBody } from "../services/approvals/ApprovalMessage.js"
import { Approvals } from "../services/approvals/Gate.js"
import { describeError } from "../services/discord/DiscordMapping.js"
import { mayManage } from "./Access.js"
import type { CommandOwners } from "./Owners.js"

export const refusalText = "⛔ Only members with Manage Server can decide this approval."
export const alreadyDecidedText = "This approval was already decided."
export const failedText = "❌ Aurora could not record this decision (database error); nothing was changed. Try again in a moment."

/** A button click as plain values. */
export interface ButtonClick {
  readonly customId: string
  readonly userId: string
  readonly username: string
  readonly guildId: string | null
  readonly channelId: string | null
  /** The member's permissions in the channel; null in a DM. */
  readonly memberPermissions: bigint | null
}

export type ClickReply =
  | { readonly _tag: "Ephemeral"; readonly text: string }
  | { readonly _tag: "Update"; readonly message: ApprovalMessageBody }

const ephemeral = (text: string): ClickReply => ({ _tag: "Ephemeral", text })

export const isApprovalClick = (interaction: Interaction): interaction is ButtonInteraction =>
  interaction.isButton() && isApprovalCustomId(interaction.customId)

export const clickReply = (click: ButtonClick): Effect.Effect<ClickReply, never, Approvals | CommandOwners> =>
  Effect.gen(function*() {
    const button = parseCustomId(click.customId)
    if (button === null) return ephemeral(alreadyDecidedText)
    if (!(yield* mayManage(click.userId, click.memberPermissions))) {
      yield* Effect.logWarning("approval click refused: not allowed to decide")
      return ephemeral(refusalText)
    }
    const approvals = yield* Approvals
    const result = yield* approvals.decide({
      approvalId: button.approvalId,
      target: button.target,
      approve: button.approve,
      userId: click.userId,
      username: click.username,
      channelId: click.channelId
    })
    switch (result._tag) {
      case "Recorded":
        return { _tag: "Update", message: result.message } satisfies ClickReply
      case "AlreadyDecided":
        return ephemeral(alreadyDecidedText)
      case "Failed":
        return ephemeral(failedText)
    }
  }).pipe(Effect.annotateLogs({ userId: click.userId, customId: click.customId }))

const decodeClick = (interaction: ButtonInteraction): ButtonClick => ({
  customId: interaction.customId,
  userId: interaction.user.id,
  username: interaction.user.username,
  guildId: interaction.guildId,
  channelId: interaction.channelId,
  memberPermissions: interaction.inGuild() ? interaction.memberPermissions?.bitfield ?? null : null
})

/** Answers the click (see the module header); a reply Discord refuses is logged. */
export const answerApprovalClick = (interaction: ButtonInteraction): Effect.Effect<void, never, Approvals | CommandOwners> =>
  Effect.gen(function*() {
    const reply = yield* clickReply(decodeClick(interaction))
    yield* Effect.tryPromise({
      try: () =>
        reply._tag === "Ephemeral"
          ? interaction.reply({ content: reply.text, flags: MessageFlags.Ephemeral, allowedMentions: { parse: [] } })
          : interaction.update({
            embeds: [...reply.message.embeds],
            components: [...reply.message.components],
            allowedMentions: { parse: [] }
          }),
      catch: (error) => new Error(`approval click: ${describeError(error)}`)
    })
  }).pipe(
    Effect.catchAllCause((cause) => Effect.logWarning("could not answer the approval click", cause)),
    Effect.annotateLogs({ interactionId: interaction.id })
  )
