/**
 * The approval message as Discord's API takes it (one embed, buttons, no pings), rendered from the
 * stored approval alone, so that the first post, every click's update and the deadline's edit
 * (before or after a restart) show the same thing:
 *
 * - the embed names each call (`#n tool`) with its arguments (pretty JSON when they parse, else the
 *   text) in a code block, and its state: waiting, approved/denied with the reason (who decided),
 *   or denied by the deadline. Everything shown is untrusted: backticks cannot close the code
 *   block (each is followed by a zero-width space), `@everyone`/`@here` are broken the same way,
 *   names and reasons are markdown-escaped; `allowed_mentions: { parse: [] }` besides.
 * - Discord's embed limits hold: title 256, field name 256, field value 1 024, 25 fields, 6 000
 *   in all. Arguments are cut (ending in "…") to share what is left evenly between the calls;
 *   past 24 calls the 25th field says how many more there are.
 * - Buttons: up to `maxCallRows` calls, one row per call with "Approve #n" (success) and "Deny #n"
 *   (danger); with more calls, one row "Approve all" / "Deny all" deciding every call at once
 *   (Discord allows 5 rows; one decision for a long batch keeps every button unambiguous). A
 *   decided call's buttons are disabled; when every call is decided, all are.
 */
import {
  type APIActionRowComponent,
  type APIButtonComponent,
  type APIEmbed,
  ButtonStyle,
  ComponentType,
  escapeMarkdown
} from "discord.js"
import { type CallDecision, customIdOf, isComplete, maxCallRows, type PendingApproval } from "../../domain/PendingApproval.js"

export const embedLimits = { title: 256, fieldName: 256, fieldValue: 1024, fields: 25, total: 6000 } as const

export interface ApprovalMessageBody {
  readonly embeds: ReadonlyArray<APIEmbed>
  readonly components: ReadonlyArray<APIActionRowComponent<APIButtonComponent>>
  readonly allowed_mentions: { readonly parse: ReadonlyArray<never> }
}

/** At most `max` characters (UTF-16 units, never splitting a character), "…" marking a cut. */
export const clip = (text: string, max: number): string => {
  if (text.length <= max) return text
  let out = ""
  for (const char of text) {
    if (out.length + char.length > max - 1) break
    out += char
  }
  return `${out}…`
}

/** Nothing in it can close a code block or read as @everyone/@here. */
export const neutralize = (text: string): string => text.replace(/`/g, "`\u200b").replace(/@(everyone|here)/g, "@\u200b$1")

const plain = (text: string): string => neutralize(escapeMarkdown(text))

const argumentsText = (raw: string): string => {
  try {
    return JSON.stringify(JSON.parse(raw), null, 2)
  } catch {
    return raw
  }
}

const stateLine = (decision: CallDecision | null): string => {
  if (decision === null) return "⏳ Waiting for a decision"
  if (decision.decidedBy === null) return `⌛ Denied: ${plain(decision.reason)}`
  return decision.approve ? `✅ Approved: ${plain(decision.reason)}` : `❌ Denied: ${plain(decision.reason)}`
}

const fence = (body: string): string => `\`\`\`json\n${body}\n\`\`\``

const titleOf = (approval: PendingApproval): string =>
  clip(
    approval.calls.length === 1
      ? `Approval needed: ${approval.calls[0]?.name ?? "tool"}`
      : `Approval needed: ${approval.calls.length} tool calls`,
    embedLimits.title
  )

const descriptionOf = (approval: PendingApproval): string => {
  if (approval.decisions.some((decision) => decision?.decidedBy === null)) {
    return "⌛ Timed out: the calls nobody decided were denied."
  }
  if (isComplete(approval)) return "Decided."
  const deadline = Math.floor(approval.deadline / 1000)
  return `The agent wants to run ${
    approval.calls.length === 1 ? "this tool" : "these tools"
  }. A member with Manage Server decides. Denied <t:${deadline}:R> without a decision.`
}

const embedOf = (approval: PendingApproval): APIEmbed => {
  const title = titleOf(approval)
  const description = descriptionOf(approval)
  const shown = approval.calls.length > embedLimits.fields ? embedLimits.fields - 1 : approval.calls.length
  const rest = approval.calls.length - shown
  const restField = rest > 0 ? [{ name: "More calls", value: `… and ${rest} more tool calls (see the log).` }] : []
  const names = approval.calls.slice(0, shown).map((call, index) =>
    clip(`#${index + 1} ${plain(call.name)}`, embedLimits.fieldName)
  )
  const fixed = title.length + description.length + names.reduce((sum, name) => sum + name.length, 0) +
    restField.reduce((sum, field) => sum + field.name.length + field.value.length, 0)
  const room = Math.min(embedLimits.fieldValue, Math.floor((embedLimits.total - fixed) / Math.max(1, shown)))
  const fields = approval.calls.slice(0, shown).map((call, index) => {
    const state = clip(stateLine(approval.decisions[index] ?? null), 300)
    // The fence and the line break around the state take 13 characters.
    const body = clip(neutralize(argumentsText(call.arguments)), Math.max(1, room - state.length - 13))
    return { name: names[index] ?? "#", value: clip(`${fence(body)}\n${state}`, room) }
  })
  return { title, description, color: isComplete(approval) ? 0x808080 : 0xf1c40f, fields: [...fields, ...restField] }
}

const button = (
  approval: PendingApproval,
  target: number | "all",
  approve: boolean,
  label: string,
  disabled: boolean
): APIButtonComponent => ({
  type: ComponentType.Button,
  style: approve ? ButtonStyle.Success : ButtonStyle.Danger,
  label: clip(label, 80),
  custom_id: customIdOf({ approvalId: approval.id, target, approve }),
  disabled
})

const rowsOf = (approval: PendingApproval): Array<APIActionRowComponent<APIButtonComponent>> => {
  if (approval.calls.length > maxCallRows) {
    const done = isComplete(approval)
    return [{
      type: ComponentType.ActionRow,
      components: [
        button(approval, "all", true, `Approve all ${approval.calls.length}`, done),
        button(approval, "all", false, `Deny all ${approval.calls.length}`, done)
      ]
    }]
  }
  return approval.calls.map((call, index) => {
    const decided = approval.decisions[index] !== null
    return {
      type: ComponentType.ActionRow,
      components: [
        button(approval, index, true, `Approve #${index + 1} ${call.name}`, decided),
        button(approval, index, false, `Deny #${index + 1} ${call.name}`, decided)
      ]
    }
  })
}

/** The message for the approval as it stands. */
export const approvalMessage = (approval: PendingApproval): ApprovalMessageBody => ({
  embeds: [embedOf(approval)],
  components: rowsOf(approval),
  allowed_mentions: { parse: [] }
})
