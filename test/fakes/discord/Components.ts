/**
 * Embeds, buttons and message edits as Discord checks and applies them, so that an approval
 * message that would not fit, or an answer of the wrong kind, fails here as it would on Discord:
 *
 * - embeds (https://discord.com/developers/docs/resources/message#embed-object-embed-limits): at
 *   most 10, title 256, description 4 096, 25 fields, field name 256 and value 1 024, footer
 *   2 048, all of them together 6 000: else 400 Invalid Form Body (50035, `BASE_TYPE_MAX_LENGTH`);
 * - components: at most 5 action rows (type 1) of at most 5 buttons (type 2); a button with a
 *   `custom_id` (1-100 characters) has a style 1-4, a label of at most 80: else 400 (50035);
 * - `PATCH /channels/{c}/messages/{m}` edits what the body names (content, embeds, components,
 *   flags, allowed_mentions) of the bot's own message: another author's answers 403 (50005
 *   "Cannot edit a message authored by another user"), an unknown message 404 (10008);
 * - an interaction callback of type 7 (UPDATE_MESSAGE) or 6 (DEFERRED_UPDATE_MESSAGE) is only for
 *   a component interaction (else 400, 50035) and edits the message the component is on;
 * - each interaction is answered once: a second callback is 400 (40060 "Interaction has already
 *   been acknowledged").
 */
import { field, type Json, jsonArray } from "./Payloads.js"
import { discordError, json, type Reply } from "./Http.js"

const formError = (key: string, code: string, message: string): Reply =>
  json(400, { message: "Invalid Form Body", code: 50035, errors: { [key]: { _errors: [{ code, message }] } } })

const tooLong = (key: string, max: number) => formError(key, "BASE_TYPE_MAX_LENGTH", `Must be ${max} or fewer in length.`)

const length = (value: unknown): number => (typeof value === "string" ? [...value].length : 0)

const embedProblem = (embed: Json, index: number): Reply | null => {
  const key = `embeds.${index}`
  if (length(embed["title"]) > 256) return tooLong(`${key}.title`, 256)
  if (length(embed["description"]) > 4096) return tooLong(`${key}.description`, 4096)
  const fields = jsonArray(embed["fields"])
  if (fields.length > 25) return tooLong(`${key}.fields`, 25)
  for (const [i, f] of fields.entries()) {
    if (length(f["name"]) > 256) return tooLong(`${key}.fields.${i}.name`, 256)
    if (length(f["value"]) > 1024) return tooLong(`${key}.fields.${i}.value`, 1024)
    if (length(f["name"]) === 0 || length(f["value"]) === 0) {
      return formError(`${key}.fields.${i}`, "BASE_TYPE_REQUIRED", "This field is required")
    }
  }
  const footer = length(field(embed["footer"], "text"))
  if (footer > 2048) return tooLong(`${key}.footer.text`, 2048)
  const total = length(embed["title"]) + length(embed["description"]) + footer + length(field(embed["author"], "name")) +
    fields.reduce((sum, f) => sum + length(f["name"]) + length(f["value"]), 0)
  return total > 6000 ? formError("embeds", "MAX_EMBED_SIZE_EXCEEDED", "Embed size exceeds maximum size of 6000") : null
}

const componentsProblem = (components: unknown): Reply | null => {
  if (components === undefined) return null
  const rows = jsonArray(components)
  if (rows.length > 5) return tooLong("components", 5)
  for (const [r, row] of rows.entries()) {
    if (row["type"] !== 1) return formError(`components.${r}.type`, "BASE_TYPE_CHOICES", "Value must be one of (1,).")
    const buttons = jsonArray(row["components"])
    if (buttons.length === 0 || buttons.length > 5) return tooLong(`components.${r}.components`, 5)
    for (const [b, button] of buttons.entries()) {
      const key = `components.${r}.components.${b}`
      if (button["type"] !== 2) return formError(`${key}.type`, "BASE_TYPE_CHOICES", "Value must be one of (2,).")
      const style = button["style"]
      if (typeof style !== "number" || style < 1 || style > 5) {
        return formError(`${key}.style`, "BASE_TYPE_CHOICES", "Value must be one of (1, 2, 3, 4, 5).")
      }
      const customId = length(button["custom_id"])
      if (style !== 5 && (customId === 0 || customId > 100)) return tooLong(`${key}.custom_id`, 100)
      if (length(button["label"]) > 80) return tooLong(`${key}.label`, 80)
    }
  }
  return null
}

/** Why Discord would refuse the embeds and components of a message body, or null. */
export const richContentProblem = (body: unknown): Reply | null => {
  const embeds = jsonArray(field(body, "embeds"))
  if (embeds.length > 10) return tooLong("embeds", 10)
  for (const [i, embed] of embeds.entries()) {
    const problem = embedProblem(embed, i)
    if (problem !== null) return problem
  }
  return componentsProblem(field(body, "components"))
}

/** The message after an edit: the fields the body names replace the stored ones. */
export const editedMessage = (message: Json, body: unknown): Json => {
  const edited: Json = { ...message, edited_timestamp: new Date().toISOString() }
  for (const key of ["content", "embeds", "components", "flags"]) {
    const value = field(body, key)
    if (value !== undefined) edited[key] = value ?? (key === "content" ? "" : [])
  }
  return edited
}

export const notAuthor = discordError(403, 50005, "Cannot edit a message authored by another user")
export const alreadyAcknowledged = discordError(400, 40060, "Interaction has already been acknowledged.")
export const notAComponentInteraction = formError("type", "INTERACTION_CALLBACK_TYPE_INVALID", "Invalid callback type")
