/**
 * The `otid` (offline threading id) on every message Aurora sends to Letta: a name-based UUID
 * (the standard version 5 of RFC 9562: SHA-1 of Aurora's namespace and the UTF-8 name
 * `aurora:<messageId>:<step>`, as any uuid5 library computes it), so the same
 * event step always gets the same id, whoever computes it and whenever: every retry, a restart's
 * replay and an admin's `queue retry` of the event send the same otid, and two events, or two steps
 * of one event, never share one.
 *
 * Steps: `prompt` for the message that opens an event's run (`promptOtid`); a continuation of the
 * run (a tool return, an approval) names its own step from the tool call id it answers.
 *
 * What it buys: Letta can recognise a duplicate of a message it already has (in background mode
 * it drops it), and one id follows an event through Aurora's logs and Letta's. What it does not:
 * Aurora streams in the foreground, where a retried request may still run on the server a second
 * time; that is why Aurora never re-sends a run in which the agent acted.
 */
import { createHash } from "node:crypto"

/**
 * Aurora's namespace for its name-based UUIDs: 6f0b3a52-c1d4-4e8f-9a7e-2d5b8c41f0a3, a fixed random
 * UUID. Never change it: a journalled event replayed by a newer build must keep its otid.
 */
const namespace = Buffer.from("6f0b3a52c1d44e8f9a7e2d5b8c41f0a3", "hex")

const hex = (bytes: Uint8Array): string => Buffer.from(bytes).toString("hex")

/** The otid of one step of the event of this Discord message. */
export const otidFor = (messageId: string, step: string): string => {
  const digest = createHash("sha1").update(namespace).update(`aurora:${messageId}:${step}`, "utf8").digest()
  const bytes = Uint8Array.from(digest.subarray(0, 16))
  bytes[6] = ((bytes[6] ?? 0) & 0x0f) | 0x50 // version 5
  bytes[8] = ((bytes[8] ?? 0) & 0x3f) | 0x80 // RFC 4122 variant
  const h = hex(bytes)
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`
}

/** The otid of the message that opens the event's run. */
export const promptOtid = (messageId: string): string => otidFor(messageId, "prompt")
