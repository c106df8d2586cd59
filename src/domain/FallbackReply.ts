/**
 * The silent-run fallback, as pure rules: what Aurora does after a run that ended normally
 * (`fallbackDecision`), and how the agent's text becomes Discord messages (`splitReply`).
 *
 * Decision (see AgentRun.ts for "silent"):
 * - the agent made a Discord action -> nothing: it answered (or may have), and a fallback would
 *   answer twice; a run that did not end normally is not silent either (it failed);
 * - silent without text -> nothing to post (logged and counted by the dispatcher);
 * - silent with text and the setting `fallback` = `off` -> nothing posted (logged and counted);
 * - silent with text and `post` -> the text, split into messages, posted as replies.
 *
 * Split: each message is at most `maxMessageLength` (2 000, Discord's limit; counted in UTF-16
 * code units, which is never less than Discord's count in characters). A message ends at the
 * last line break that keeps it within the limit, else at the last space or tab, else (one word
 * longer than the limit) it is cut at the limit, never inside a surrogate pair. The whitespace at
 * a cut is dropped (line breaks, blank lines, the next line's indentation), so no message starts
 * or ends with whitespace and none is empty. At most `maxMessages` (3): when the text needs more,
 * the third message is cut so that a last line, `cutMarker`, still fits within the limit, and the
 * rest of the text is not posted.
 */
import type { FallbackMode } from "./Settings.js"
import { isSilentRun, type RunReport, runText } from "./AgentRun.js"

/** Discord's limit for a message's content. */
export const maxMessageLength = 2000

/** At most this many messages per fallback reply: an answer longer than that is cut. */
export const maxMessages = 3

/** The last line of a reply that was cut, so that readers know there was more. */
export const cutMarker = `… (cut: the answer was longer than ${maxMessages} messages)`

const isHighSurrogate = (code: number) => code >= 0xd800 && code <= 0xdbff

/**
 * Where the first message taken from `text` ends: `text` is longer than `limit` and starts with
 * something other than whitespace, so the message is never empty.
 */
const cutPoint = (text: string, limit: number): number => {
  const window = text.slice(0, limit + 1)
  const line = window.lastIndexOf("\n")
  if (line > 0) return line
  const space = Math.max(window.lastIndexOf(" "), window.lastIndexOf("\t"))
  if (space > 0) return space
  return isHighSurrogate(text.charCodeAt(limit - 1)) ? limit - 1 : limit
}

/** The first message (at most `limit` long) of `text`, and what is left after it; both trimmed. */
const takeMessage = (text: string, limit: number): readonly [string, string] => {
  const end = cutPoint(text, limit)
  return [text.slice(0, end).trimEnd(), text.slice(end).trimStart()]
}

export interface SplitReply {
  /** None for a blank text, else 1 to `maxMessages`, each at most `maxMessageLength` long. */
  readonly messages: ReadonlyArray<string>
  /** The text needed more than `maxMessages`: the last message ends with `cutMarker`. */
  readonly cut: boolean
}

/** The messages Aurora posts for `text` (see the module header). */
export const splitReply = (text: string): SplitReply => {
  const messages: Array<string> = []
  let rest = text.trim()
  while (rest.length > maxMessageLength) {
    if (messages.length === maxMessages - 1) {
      // The last message allowed: what fits beside the marker line, then the marker.
      const [last] = takeMessage(rest, maxMessageLength - cutMarker.length - 1)
      return { messages: [...messages, `${last}\n${cutMarker}`], cut: true }
    }
    const [message, more] = takeMessage(rest, maxMessageLength)
    messages.push(message)
    rest = more
  }
  return { messages: rest.length === 0 ? messages : [...messages, rest], cut: false }
}

/** What follows a run. */
export type FallbackDecision =
  /** Not a silent run: the agent made a Discord action (or the run did not end normally). */
  | { readonly _tag: "NotSilent" }
  /** Silent, and nothing is posted: the agent wrote no text, or the setting is `off`. */
  | { readonly _tag: "Quiet"; readonly why: "no-text" | "off" }
  /** Silent with text and `post`: these messages, in order, as replies to the triggering message. */
  | { readonly _tag: "Post"; readonly messages: ReadonlyArray<string>; readonly cut: boolean }

/** The fallback's decision for a run under the guild's `fallback` setting (see the module header). */
export const fallbackDecision = (
  report: Pick<RunReport, "stopReason" | "toolCalls" | "assistantMessages">,
  mode: FallbackMode
): FallbackDecision => {
  if (!isSilentRun(report)) return { _tag: "NotSilent" }
  const text = runText(report)
  if (text.length === 0) return { _tag: "Quiet", why: "no-text" }
  if (mode === "off") return { _tag: "Quiet", why: "off" }
  return { _tag: "Post", ...splitReply(text) }
}
