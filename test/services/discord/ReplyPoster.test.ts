/** The reply post's payload and nonce (the post itself is exercised end to end, test/e2e/fallback.test.ts). */
import { describe, expect, it } from "@effect/vitest"
import { replyBody, replyNonce } from "../../../src/services/discord/ReplyPoster.js"

describe("ReplyPoster", () => {
  it("a nonce per message and part, stable, within Discord's 25 characters", () => {
    const id = "18446744073709551615" // the widest Discord id: 20 digits
    expect(replyNonce(id, 0)).toBe(`${id}.0`)
    expect(replyNonce(id, 2)).toBe(`${id}.2`)
    expect(replyNonce(id, 1)).toBe(replyNonce(id, 1))
    expect(new Set([0, 1, 2].map((part) => replyNonce(id, part))).size).toBe(3)
    expect(replyNonce("1300000000000000001", 0)).not.toBe(replyNonce("1300000000000000002", 0))
    // Not a Discord id, and too long for a nonce: a digest, still distinct per part and within the limit.
    const long = "not-a-discord-id-but-a-very-long-one"
    for (const part of [0, 1, 2]) expect(replyNonce(long, part).length).toBeLessThanOrEqual(25)
    expect(replyNonce(long, 0)).not.toBe(replyNonce(long, 1))
    expect(replyNonce(long, 0)).not.toBe(replyNonce(`${long}x`, 0))
  })

  it("the body replies to the message, parses no mention but the replied user, and enforces its nonce", () => {
    expect(replyBody({ channelId: "c1", replyTo: "m1", content: "@everyone hi <@&123>", nonce: "m1.0" })).toEqual({
      content: "@everyone hi <@&123>",
      message_reference: { message_id: "m1", fail_if_not_exists: false },
      allowed_mentions: { parse: [], replied_user: true },
      nonce: "m1.0",
      enforce_nonce: true
    })
  })
})
