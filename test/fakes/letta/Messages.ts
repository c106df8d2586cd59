/**
 * The `messages` of a send (both routes), read the way the server validates them, so a fake cannot
 * accept a body the real server would refuse. The shapes are the SDK's (@letta-ai/letta-client
 * 1.12 `MessageCreate | ApprovalCreate | ToolReturnCreate`); the server's request models are
 * unions discriminated on `type`, so a content part or an image source without its `type` is
 * refused as well, although the SDK's types mark it optional (Aurora always sends it).
 *
 * - a message without `type` (or `type: "message"`) is a `MessageCreate`: `role` one of user,
 *   system, assistant; `content` a string or an array of content parts; `otid` a string or null;
 * - content parts: `text` needs a string `text`; `image` needs a `source` that is `{type:"url",
 *   url}`, `{type:"base64", data, media_type}` or `{type:"letta", file_id}` (strings); the other
 *   part types of the union (tool_call, tool_return, reasoning, redacted_reasoning,
 *   omitted_reasoning, summarized_reasoning) pass as they are; any other `type` is refused;
 * - `type: "approval"`: `approvals` an array or null, `approve` a boolean or null, `otid` a
 *   string or null; `type: "tool_return"`: `tool_returns` an array;
 * - anything else is refused.
 * A refusal is the server's 422: `{"detail":[{"type","loc","msg","input"}]}` (FastAPI's form),
 * with `loc` from `["body","messages",i,...]`.
 */

export type Json = unknown

export interface ContentPart {
  readonly type: string
  readonly [key: string]: Json
}

/** One message of a send, as the client sent it. */
export interface SentMessage {
  readonly type: "message" | "approval" | "tool_return"
  /** `message` only. */
  readonly role?: string
  /** `message` only: the string, or the parts in order. */
  readonly content?: string | ReadonlyArray<ContentPart>
  /** null when absent. */
  readonly otid: string | null
  /** The message's JSON as received. */
  readonly raw: Json
}

export interface ValidationIssue {
  readonly type: string
  readonly loc: ReadonlyArray<string | number>
  readonly msg: string
  readonly input: Json
}

export type ReadMessages =
  | { readonly _tag: "Valid"; readonly messages: ReadonlyArray<SentMessage> }
  | { readonly _tag: "Invalid"; readonly issues: ReadonlyArray<ValidationIssue> }

const objectOf = (value: Json): Readonly<Record<string, Json>> | undefined =>
  typeof value === "object" && value !== null && !Array.isArray(value) ? (value as Readonly<Record<string, Json>>) : undefined

const roles = new Set(["user", "system", "assistant"])
const passingParts = new Set([
  "tool_call",
  "tool_return",
  "reasoning",
  "redacted_reasoning",
  "omitted_reasoning",
  "summarized_reasoning"
])

type Loc = ReadonlyArray<string | number>

const missing = (loc: Loc, input: Json): ValidationIssue => ({ type: "missing", loc, msg: "Field required", input })
const wrong = (loc: Loc, input: Json, expected: string): ValidationIssue => ({
  type: "value_error",
  loc,
  msg: `Input should be ${expected}`,
  input
})

/** Checks `key` of `obj`: required (or optional, null allowed) and of the given JS type. */
const checkField = (
  obj: Readonly<Record<string, Json>>,
  key: string,
  loc: Loc,
  kind: "string" | "boolean" | "array",
  required: boolean
): ReadonlyArray<ValidationIssue> => {
  const value = obj[key]
  if (value === undefined || (!required && value === null)) return required ? [missing([...loc, key], obj)] : []
  const ok = kind === "array" ? Array.isArray(value) : typeof value === kind
  return ok ? [] : [wrong([...loc, key], value, `a valid ${kind}`)]
}

const imageSourceIssues = (source: Json, loc: Loc): ReadonlyArray<ValidationIssue> => {
  const obj = objectOf(source)
  if (obj === undefined) return [source === undefined ? missing(loc, source) : wrong(loc, source, "an object")]
  switch (obj["type"]) {
    case "url":
      return checkField(obj, "url", loc, "string", true)
    case "base64":
      return [...checkField(obj, "data", loc, "string", true), ...checkField(obj, "media_type", loc, "string", true)]
    case "letta":
      return checkField(obj, "file_id", loc, "string", true)
    case undefined:
      return [{ type: "union_tag_not_found", loc, msg: "Unable to extract tag using discriminator 'type'", input: source }]
    default:
      return [{ type: "union_tag_invalid", loc, msg: "Input tag does not match 'url', 'base64', 'letta'", input: source }]
  }
}

const partIssues = (part: Json, loc: Loc): ReadonlyArray<ValidationIssue> => {
  const obj = objectOf(part)
  if (obj === undefined) return [wrong(loc, part, "an object")]
  const type = obj["type"]
  if (type === "text") return checkField(obj, "text", loc, "string", true)
  if (type === "image") return imageSourceIssues(obj["source"], [...loc, "source"])
  if (typeof type === "string" && passingParts.has(type)) return []
  return type === undefined
    ? [{ type: "union_tag_not_found", loc, msg: "Unable to extract tag using discriminator 'type'", input: part }]
    : [{ type: "union_tag_invalid", loc, msg: `Input tag '${String(type)}' does not match a content type`, input: part }]
}

const contentIssues = (content: Json, loc: Loc): ReadonlyArray<ValidationIssue> => {
  if (typeof content === "string") return []
  if (!Array.isArray(content)) return [content === undefined ? missing(loc, content) : wrong(loc, content, "a string or a list")]
  return content.flatMap((part, j) => partIssues(part, [...loc, j]))
}

const messageIssues = (message: Json, loc: Loc): ReadonlyArray<ValidationIssue> => {
  const obj = objectOf(message)
  if (obj === undefined) return [wrong(loc, message, "an object")]
  const otid = checkField(obj, "otid", loc, "string", false)
  switch (obj["type"]) {
    case undefined:
    case null:
    case "message": {
      const role = obj["role"]
      const roleIssues = role === undefined
        ? [missing([...loc, "role"], obj)]
        : typeof role === "string" && roles.has(role)
        ? []
        : [wrong([...loc, "role"], role, "'user', 'system' or 'assistant'")]
      return [...roleIssues, ...contentIssues(obj["content"], [...loc, "content"]), ...otid]
    }
    case "approval":
      return [...checkField(obj, "approvals", loc, "array", false), ...checkField(obj, "approve", loc, "boolean", false), ...otid]
    case "tool_return":
      return [...checkField(obj, "tool_returns", loc, "array", true), ...otid]
    default:
      return [wrong([...loc, "type"], obj["type"], "'message', 'approval' or 'tool_return'")]
  }
}

const sentMessage = (message: Json): SentMessage => {
  const obj = objectOf(message) ?? {}
  const otid = typeof obj["otid"] === "string" ? obj["otid"] : null
  const type = obj["type"] === "approval" || obj["type"] === "tool_return" ? obj["type"] : "message"
  if (type !== "message") return { type, otid, raw: message }
  const content = obj["content"]
  return {
    type,
    role: String(obj["role"]),
    content: typeof content === "string" ? content : (content as ReadonlyArray<ContentPart>),
    otid,
    raw: message
  }
}

/** The body's `messages`, validated (see the module header); a body without them has none. */
export const readMessages = (body: Json): ReadMessages => {
  const messages = objectOf(body)?.["messages"]
  if (messages === undefined || messages === null) return { _tag: "Valid", messages: [] }
  if (!Array.isArray(messages)) return { _tag: "Invalid", issues: [wrong(["body", "messages"], messages, "a valid list")] }
  const issues = messages.flatMap((message, i) => messageIssues(message, ["body", "messages", i]))
  return issues.length > 0 ? { _tag: "Invalid", issues } : { _tag: "Valid", messages: messages.map(sentMessage) }
}

/** The text of a sent user message: its string content, or its text parts joined. */
export const textOf = (message: SentMessage | undefined): string => {
  const content = message?.content
  if (content === undefined) return ""
  return typeof content === "string"
    ? content
    : content.flatMap((part) => (part.type === "text" && typeof part["text"] === "string" ? [part["text"]] : [])).join("\n")
}

/** The URLs of a sent message's image parts (url sources), in order. */
export const imageUrlsOf = (message: SentMessage | undefined): ReadonlyArray<string> => {
  const content = message?.content
  if (content === undefined || typeof content === "string") return []
  return content.flatMap((part) => {
    const source = part.type === "image" ? objectOf(part["source"]) : undefined
    return source?.["type"] === "url" && typeof source["url"] === "string" ? [source["url"]] : []
  })
}
