/**
 * The gateway's intake: the pre-filter against the trigger rules (a table of named cases, and
 * generated messages compared with `decideTrigger` as the listener applies it), the listener that
 * counts every message and passes on only what may concern Aurora, and the DM switch read from the
 * settings at each message.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect, FastCheck as fc, Layer } from "effect"
import type { ReceivedMessage } from "../../../src/domain/Discord.js"
import { decideTrigger, needsReplyAuthor } from "../../../src/domain/Trigger.js"
import {
  type ArrivingMessage,
  type CachedAuthor,
  DirectMessageSwitch,
  makeIntake,
  mayConcernAurora
} from "../../../src/services/discord/Intake.js"
import { messagesReceived, messagesReceivedReading } from "../../../src/services/health/MessagesReceived.js"
import { renderPrometheus } from "../../../src/services/health/Prometheus.js"
import { Database } from "../../../src/services/storage/Database.js"
import { SettingsStore } from "../../../src/services/storage/SettingsStore.js"
import {
  ids,
  makeAuthor,
  makeChannel,
  makeDmChannel,
  makeGuild,
  makeMessage,
  makeReceived,
  referenceToId
} from "../../fakes/messages.js"
import { makeTempDir } from "../../fakes/tempDir.js"

const bot = ids.bot
const alice = ids.author
const bob = "300000000000000002"

/** One message, described once, seen both as discord.js delivers it and as the listener receives it. */
interface Shape {
  readonly authorId: string
  readonly authorBot: boolean
  readonly webhook: boolean
  readonly dm: boolean
  readonly mentions: ReadonlyArray<string>
  readonly roles: ReadonlyArray<string>
  readonly everyone: boolean
  /** "none", a reply (a reference with a message id), or a notice (a reference without one). */
  readonly reference: "none" | "reply" | "notice" | "forward"
  /** The replied-to author as the payload's referenced message tells it (replies only). */
  readonly payloadAuthor: string | null
  /** The replied-to author as discord.js' message cache tells it. */
  readonly cachedAuthor: string | null
}

const parentId = "400000000000000001"

const shape = (overrides: Partial<Shape> = {}): Shape => ({
  authorId: alice,
  authorBot: false,
  webhook: false,
  dm: false,
  mentions: [],
  roles: [],
  everyone: false,
  reference: "none",
  payloadAuthor: null,
  cachedAuthor: null,
  ...overrides
})

const arriving = (s: Shape): ArrivingMessage => ({
  author: { id: s.authorId, bot: s.authorBot },
  webhookId: s.webhook ? "600000000000000001" : null,
  guild: s.dm ? null : { id: ids.guild },
  mentions: {
    users: new Map(s.mentions.map((id) => [id, { id }])),
    repliedUser: s.reference === "reply" && s.payloadAuthor !== null ? { id: s.payloadAuthor } : null
  },
  reference: s.reference === "none"
    ? null
    : s.reference === "reply"
    ? { channelId: ids.channel, messageId: parentId }
    : s.reference === "forward"
    ? { channelId: ids.channel, messageId: parentId, type: 1 }
    : { channelId: ids.channel }
})

const cache = (s: Shape): CachedAuthor => (channelId, messageId) =>
  channelId === ids.channel && messageId === parentId && s.cachedAuthor !== null ? s.cachedAuthor : undefined

/** As DiscordMapping.toReceivedMessage maps it (a notice's reference has no message id: no reference). */
const received = (s: Shape): ReceivedMessage =>
  makeReceived({
    guild: s.dm ? null : makeGuild(),
    channel: s.dm ? makeDmChannel() : makeChannel(),
    message: makeMessage({
      author: makeAuthor({ id: s.authorId, bot: s.authorBot }),
      webhookId: s.webhook ? "600000000000000001" : null,
      guildId: s.dm ? null : ids.guild,
      mentions: { users: [...s.mentions], roles: [...s.roles], everyone: s.everyone },
      reference: s.reference === "reply" ? referenceToId(parentId) : null
    })
  })

/**
 * Whether the listener could trigger on it: it resolves the replied-to author (only when
 * `needsReplyAuthor`) from the payload's copy in the cache, else the cache, else REST, where it may
 * find anyone, or nobody (deleted).
 */
const listenerMayTrigger = (s: Shape, dmEnabled: boolean): boolean => {
  const message = received(s)
  const known = s.payloadAuthor ?? s.cachedAuthor
  const resolutions = needsReplyAuthor(message, bot) ? (known !== null ? [known] : [null, bot, alice]) : [null]
  return resolutions.some((repliedToAuthorId) =>
    decideTrigger(message, { botUserId: bot, dmEnabled, repliedToAuthorId })._tag === "Trigger"
  )
}

const passes = (s: Shape, dmEnabled = false) => mayConcernAurora(arriving(s), { botUserId: bot, dmEnabled }, cache(s))

describe("mayConcernAurora", () => {
  it.each<[string, Shape, boolean]>([
    ["a mention of the bot", shape({ mentions: [bot] }), true],
    ["a mention of the bot among others", shape({ mentions: [bob, bot] }), true],
    ["a mention of someone else", shape({ mentions: [bob] }), false],
    ["an ordinary message", shape(), false],
    ["@everyone / @here", shape({ everyone: true }), false],
    ["a role mention (the bot's managed role included)", shape({ roles: ["500000000000000001"] }), false],
    ["a reply to the bot, from the payload", shape({ reference: "reply", payloadAuthor: bot }), true],
    ["a reply to the bot, from the cache", shape({ reference: "reply", cachedAuthor: bot }), true],
    ["a reply to someone else, from the payload", shape({ reference: "reply", payloadAuthor: bob }), false],
    ["a reply to someone else, from the cache", shape({ reference: "reply", cachedAuthor: bob }), false],
    ["a reply to an unknown author (resolved by the listener)", shape({ reference: "reply" }), true],
    ["a notice with a reference but no message id", shape({ reference: "notice" }), false],
    ["a forward of the bot's message (cached)", shape({ reference: "forward", cachedAuthor: bot }), false],
    ["a forward of a message by an unknown author", shape({ reference: "forward" }), false],
    ["a forward that mentions the bot", shape({ reference: "forward", mentions: [bot] }), true],
    ["the bot's own message, mentioning itself", shape({ authorId: bot, authorBot: true, mentions: [bot] }), false],
    ["another bot mentioning the bot", shape({ authorId: bob, authorBot: true, mentions: [bot] }), false],
    ["a webhook mentioning the bot", shape({ webhook: true, mentions: [bot] }), false],
    ["a webhook replying to the bot", shape({ webhook: true, reference: "reply", payloadAuthor: bot }), false],
    ["a DM with DMs off", shape({ dm: true }), false]
  ])("%s", (_, message, expected) => {
    expect(passes(message)).toBe(expected)
  })

  it("a DM passes when DMs are on, unless a bot or a webhook sent it", () => {
    expect(passes(shape({ dm: true }), true)).toBe(true)
    expect(passes(shape({ dm: true, authorId: bob, authorBot: true }), true)).toBe(false)
    expect(passes(shape({ dm: true, authorId: bot, authorBot: true }), true)).toBe(false)
  })

  it("over generated messages, passes exactly what the listener's trigger rules could accept", () => {
    const someone = fc.constantFrom(bot, alice, bob)
    const generated = fc.record({
      authorId: someone,
      authorBot: fc.boolean(),
      webhook: fc.boolean(),
      dm: fc.boolean(),
      mentions: fc.subarray([bot, alice, bob]),
      roles: fc.subarray(["500000000000000001", "500000000000000002"]),
      everyone: fc.boolean(),
      reference: fc.constantFrom<Shape["reference"]>("none", "reply", "notice", "forward"),
      payloadAuthor: fc.option(someone, { nil: null }),
      cachedAuthor: fc.option(someone, { nil: null })
    }).map((s): Shape => ({ ...s, authorBot: s.authorBot || s.authorId === bot }))
    fc.assert(
      fc.property(generated, fc.boolean(), (s, dmEnabled) => {
        // Never drops what could trigger, and never passes what could not.
        expect(passes(s, dmEnabled)).toBe(listenerMayTrigger(s, dmEnabled))
      }),
      { numRuns: 3000 }
    )
  })
})

describe("makeIntake", () => {
  it("counts every message, passes on only those that may concern Aurora, and reads the DM switch at each message", () => {
    const accepted: Array<ArrivingMessage> = []
    let dmsOn = false
    let botUserId: string | null = bot
    const intake = makeIntake({
      botUserId: () => botUserId,
      directMessages: { isOn: () => dmsOn },
      cachedAuthor: () => undefined,
      accept: (message) => void accepted.push(message)
    })
    const before = messagesReceived()
    const chatter = Array.from({ length: 250 }, (_, n) =>
      arriving(
        n % 5 === 0
          ? shape({ mentions: [bob] })
          : n % 5 === 1
          ? shape({ reference: "reply", payloadAuthor: bob })
          : n % 5 === 2
          ? shape({ authorId: bob, authorBot: true, mentions: [bot] })
          : n % 5 === 3
          ? shape({ webhook: true, mentions: [bot] })
          : shape({ everyone: true })
      ))
    const mentions = Array.from({ length: 7 }, () => arriving(shape({ mentions: [bot] })))
    for (const [n, message] of chatter.entries()) {
      intake(message)
      if (n % 40 === 0) intake(mentions[n / 40]!)
    }
    expect(accepted).toEqual(mentions)
    expect(messagesReceived() - before).toBe(257)

    // The exposition reads the same count.
    expect(renderPrometheus([messagesReceivedReading()])).toContain(`aurora_messages_received_total ${messagesReceived()}\n`)

    // DMs: off, on, off again, each seen by the very next message.
    const dm = arriving(shape({ dm: true }))
    intake(dm)
    dmsOn = true
    intake(dm)
    dmsOn = false
    intake(dm)
    expect(accepted.filter((message) => message === dm)).toHaveLength(1)

    // Before the bot's user is known, nothing is dropped (and still counted).
    botUserId = null
    intake(chatter[0]!)
    expect(accepted.at(-1)).toBe(chatter[0])
    expect(messagesReceived() - before).toBe(261)
  })
})

describe("DirectMessageSwitch.layerSettings", () => {
  const tempDir = makeTempDir("intake")

  it.scoped("follows `dm enable` / `dm disable` as soon as the setting is written", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir
      const layer = DirectMessageSwitch.layerSettings.pipe(
        Layer.provideMerge(SettingsStore.Default),
        Layer.provide(Database.layer(dir))
      )
      yield* Effect.gen(function*() {
        const settings = yield* SettingsStore
        const dms = yield* DirectMessageSwitch
        expect(dms.isOn()).toBe(false)
        yield* settings.setDmAgent("agent-dm")
        expect(dms.isOn()).toBe(true)
        yield* settings.setDmAgent(null)
        expect(dms.isOn()).toBe(false)
      }).pipe(Effect.provide(layer))
    }))
})
