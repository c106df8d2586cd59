import { describe, expect, it } from "@effect/vitest"
import type { ReceivedMessage } from "../../src/domain/Discord.js"
import { decideTrigger, needsReplyAuthor, type TriggerFacts } from "../../src/domain/Trigger.js"
import { ids, makeAuthor, makeDmChannel, makeMessage, makeReceived, referenceToId } from "../fakes/messages.js"

const facts = (overrides: Partial<TriggerFacts> = {}): TriggerFacts => ({
  botUserId: ids.bot,
  dmEnabled: false,
  repliedToAuthorId: null,
  ...overrides
})

const guildMessage = (overrides: Parameters<typeof makeMessage>[0] = {}): ReceivedMessage =>
  makeReceived({ message: makeMessage(overrides) })

const dm = (overrides: Parameters<typeof makeMessage>[0] = {}): ReceivedMessage =>
  makeReceived({ message: makeMessage({ guildId: null, ...overrides }), channel: makeDmChannel(), guild: null })

const noMentions = { users: [], roles: [], everyone: false }

describe("trigger rules", () => {
  it("a user mention of the bot triggers", () => {
    const received = guildMessage({ mentions: { users: [ids.bot], roles: [], everyone: false } })
    expect(decideTrigger(received, facts())).toEqual({ _tag: "Trigger", kind: "mention" })
  })

  it("@everyone, @here and role mentions do not count", () => {
    expect(decideTrigger(guildMessage({ mentions: { users: [], roles: [], everyone: true } }), facts())).toEqual({
      _tag: "Ignore",
      reason: "not-addressed"
    })
    // The bot's managed role is a role mention, not a user mention.
    expect(decideTrigger(guildMessage({ mentions: { users: [], roles: ["555"], everyone: false } }), facts())._tag).toBe(
      "Ignore"
    )
  })

  it("a mention of someone else does not trigger", () => {
    const received = guildMessage({ mentions: { users: [ids.author], roles: [], everyone: false } })
    expect(decideTrigger(received, facts())._tag).toBe("Ignore")
  })

  it("a reply to one of the bot's messages triggers, with or without a ping", () => {
    const reply = guildMessage({ reference: referenceToId("777"), mentions: noMentions })
    expect(decideTrigger(reply, facts({ repliedToAuthorId: ids.bot }))).toEqual({ _tag: "Trigger", kind: "reply" })
    expect(needsReplyAuthor(reply, ids.bot)).toBe(true)
    // With a ping the mention already decides; no lookup of the replied-to author is needed.
    const pinged = guildMessage({ reference: referenceToId("777"), mentions: { users: [ids.bot], roles: [], everyone: false } })
    expect(decideTrigger(pinged, facts())).toEqual({ _tag: "Trigger", kind: "mention" })
    expect(needsReplyAuthor(pinged, ids.bot)).toBe(false)
  })

  it("a reply to someone else, or to an unknown author, does not trigger", () => {
    const reply = guildMessage({ reference: referenceToId("777") })
    expect(decideTrigger(reply, facts({ repliedToAuthorId: ids.author }))._tag).toBe("Ignore")
    expect(decideTrigger(reply, facts({ repliedToAuthorId: null }))._tag).toBe("Ignore")
  })

  it("the bot itself, other bots and webhooks never trigger", () => {
    const mention = { users: [ids.bot], roles: [], everyone: false }
    expect(decideTrigger(guildMessage({ author: makeAuthor({ id: ids.bot, bot: true }), mentions: mention }), facts())).toEqual({
      _tag: "Ignore",
      reason: "own-message"
    })
    expect(decideTrigger(guildMessage({ author: makeAuthor({ bot: true }), mentions: mention }), facts())).toEqual({
      _tag: "Ignore",
      reason: "bot-author"
    })
    expect(decideTrigger(guildMessage({ webhookId: "42", mentions: mention }), facts())).toEqual({
      _tag: "Ignore",
      reason: "webhook"
    })
    const botReply = guildMessage({ author: makeAuthor({ bot: true }), reference: referenceToId("777") })
    expect(needsReplyAuthor(botReply, ids.bot)).toBe(false)
    expect(decideTrigger(botReply, facts({ repliedToAuthorId: ids.bot }))._tag).toBe("Ignore")
  })

  it("direct messages trigger only when DMs are enabled, never from bots", () => {
    expect(decideTrigger(dm(), facts({ dmEnabled: true }))).toEqual({ _tag: "Trigger", kind: "dm" })
    expect(decideTrigger(dm(), facts({ dmEnabled: false }))).toEqual({ _tag: "Ignore", reason: "dm-disabled" })
    expect(decideTrigger(dm({ author: makeAuthor({ bot: true }) }), facts({ dmEnabled: true }))._tag).toBe("Ignore")
    expect(needsReplyAuthor(dm({ reference: referenceToId("777") }), ids.bot)).toBe(false)
  })
})
