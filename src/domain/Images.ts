/**
 * Which attachments of the triggering message go to the agent as image content parts (after the
 * prompt's text part), and why each other one does not. Pure: the listener stores the chosen URLs
 * on the event, the prompt says per attachment what happened, and `/aurora context` shows both.
 *
 * An attachment is sent when all of these hold, checked in this order (the first that fails is
 * its reason):
 * 1. its content type, lower-cased and without parameters (`image/PNG; charset=x` is
 *    `image/png`), is image/png, image/jpeg, image/gif or image/webp. No content type (or an empty
 *    one): `unknown-type`; any other: `not-an-image`. The content type decides, never the file
 *    name: `cat.png` declared `application/pdf` is not sent, `notes.pdf` declared `image/png` is.
 *    The name is the uploader's choice; the content type is Discord's record of the upload, and
 *    whatever it says, the image is fetched by the Letta server (never by Aurora) and checked by the
 *    model provider, which refuses what is not an image (a failed run, dead-lettered like any);
 * 2. images are on for the guild (`images` setting; DMs: on): else `images-off`;
 * 3. its declared size is 1 byte to 10 MB (10 × 1024 × 1024 bytes): 0 is `empty`, more (2 GB,
 *    Infinity) is `too-large`, a size that is not a number or is negative is `unknown-size`;
 * 4. its URL is https on cdn.discordapp.com or media.discordapp.net, on the default port and
 *    without credentials: else `not-discord-cdn` (an unparsable URL included). The URL sent is
 *    the parsed one (`URL.href`): what was checked is what the Letta server gets;
 * 5. fewer than 4 attachments before it passed 1–4 (message order): else `too-many`.
 * So 50 png attachments send the first 4 and give the other 46 `too-many`.
 */

/** The image types models take by URL (Letta passes them on to the provider). */
export const imageContentTypes: ReadonlySet<string> = new Set(["image/png", "image/jpeg", "image/gif", "image/webp"])

export const imageLimits = {
  /** Image parts per message. */
  count: 4,
  /** Declared size, in bytes. */
  maxBytes: 10 * 1024 * 1024
} as const

/** Discord's attachment hosts: the CDN and its media proxy. */
export const discordCdnHosts: ReadonlySet<string> = new Set(["cdn.discordapp.com", "media.discordapp.net"])

export type NotSentReason =
  | "unknown-type"
  | "not-an-image"
  | "images-off"
  | "empty"
  | "too-large"
  | "unknown-size"
  | "not-discord-cdn"
  | "too-many"

export type ImageVerdict =
  | { readonly _tag: "Sent"; readonly url: string }
  | { readonly _tag: "NotSent"; readonly reason: NotSentReason }

export interface ImageChoice {
  /** One per attachment, in message order. */
  readonly verdicts: ReadonlyArray<ImageVerdict>
  /** The URLs sent as image parts, in message order (at most `imageLimits.count`). */
  readonly urls: ReadonlyArray<string>
}

/** What the rule reads of an attachment (the domain's `Attachment` fits). */
export interface AttachmentFacts {
  readonly url: string
  readonly contentType: string | null
  readonly size: number
}

/** Words for the prompt and `/aurora context`, after "not sent: ". */
export const notSentWording: Record<NotSentReason, string> = {
  "unknown-type": "unknown type",
  "not-an-image": "not an image type",
  "images-off": "images are off",
  empty: "empty",
  "too-large": "over 10 MB",
  "unknown-size": "unknown size",
  "not-discord-cdn": "not a Discord CDN URL",
  "too-many": `more than ${imageLimits.count} images`
}

/** `image/PNG; charset=binary` -> `image/png`; null when there is none. */
export const mediaTypeOf = (contentType: string | null): string | null => {
  const type = (contentType ?? "").split(";")[0]?.trim().toLowerCase() ?? ""
  return type === "" ? null : type
}

/** The URL as sent, when it is an https URL on Discord's CDN; else null. */
export const discordCdnUrl = (url: string): string | null => {
  let parsed: URL
  try {
    parsed = new URL(url)
  } catch {
    return null
  }
  const plain = parsed.protocol === "https:" && parsed.port === "" && parsed.username === "" && parsed.password === ""
  return plain && discordCdnHosts.has(parsed.hostname) ? parsed.href : null
}

/** Checks 1–4 of the module header: the URL to send, or why not. */
const verdictOf = (attachment: AttachmentFacts, enabled: boolean): ImageVerdict => {
  const notSent = (reason: NotSentReason): ImageVerdict => ({ _tag: "NotSent", reason })
  const type = mediaTypeOf(attachment.contentType)
  if (type === null) return notSent("unknown-type")
  if (!imageContentTypes.has(type)) return notSent("not-an-image")
  if (!enabled) return notSent("images-off")
  const { size } = attachment
  if (Number.isNaN(size) || size < 0) return notSent("unknown-size")
  if (size === 0) return notSent("empty")
  if (size > imageLimits.maxBytes) return notSent("too-large")
  const url = discordCdnUrl(attachment.url)
  return url === null ? notSent("not-discord-cdn") : { _tag: "Sent", url }
}

/** The module header's rule over the triggering message's attachments. */
export const chooseImages = (
  attachments: ReadonlyArray<AttachmentFacts>,
  options: { readonly enabled: boolean }
): ImageChoice => {
  const urls: Array<string> = []
  const verdicts = attachments.map((attachment): ImageVerdict => {
    const verdict = verdictOf(attachment, options.enabled)
    if (verdict._tag === "NotSent") return verdict
    if (urls.length >= imageLimits.count) return { _tag: "NotSent", reason: "too-many" }
    urls.push(verdict.url)
    return verdict
  })
  return { verdicts, urls }
}
