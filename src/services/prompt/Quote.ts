/**
 * How user content enters the prompt (see PromptService.ts, "Safety"): as a JSON string literal
 * that cannot span lines or reorder text on screen, capped in characters and, escaped, at twice
 * the cap; ids only when they are snowflakes.
 */
import { isSnowflake } from "../../domain/Snowflake.js"

/**
 * Characters JSON.stringify leaves as they are but a reader may take as a line break (NEL and the
 * other C1 controls, DEL, U+2028, U+2029) or that reorder text on screen (bidi controls).
 */
const unsafeInLiteral = /[\u007f-\u009f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]/g

/** A JSON string literal that cannot span lines; JSON.parse gives the original text back. */
export const quote = (text: string): string =>
  JSON.stringify(text).replace(unsafeInLiteral, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`)

const isHighSurrogate = (code: number): boolean => code >= 0xd800 && code <= 0xdbff

/**
 * Quotes `text` after capping it at `max` code units, noting how much was cut. Escapes lengthen a
 * literal (a line break becomes two characters, U+2028 six), so the escaped text is also held to
 * twice the cap: ordinary text with line breaks fits, a wall of control characters does not.
 */
export const quoteCapped = (text: string, max: number): string => {
  let end = Math.min(text.length, max)
  // Do not split a surrogate pair at the cut.
  if (end < text.length && isHighSurrogate(text.charCodeAt(end - 1))) end--
  let literal = quote(text.slice(0, end))
  const budget = 2 * max
  if (literal.length - 2 > budget) {
    let used = 0
    end = 0
    while (end < text.length) {
      const width = isHighSurrogate(text.charCodeAt(end)) && end + 1 < text.length ? 2 : 1
      const cost = quote(text.slice(end, end + width)).length - 2
      if (used + cost > budget) break
      used += cost
      end += width
    }
    literal = quote(text.slice(0, end))
  }
  return end < text.length ? `${literal} [truncated ${text.length - end} chars]` : literal
}

export const quoteOrNone = (text: string | null, max: number): string => (text === null ? "none" : quoteCapped(text, max))

/** Ids are printed raw, so only snowflake-shaped ones are printed at all. */
export const safeId = (id: string): string => (isSnowflake(id) ? id : "(invalid id)")
