/**
 * The listen program against fakes: an in-memory MessageSource, the real SettingsStore over a
 * temporary SQLite database, the real Context/Prompt services, a real EventQueue (the tests read
 * its stats and its in-memory journal; the pause tests also consume it) and Feedback over recording
 * reactions. Also sequentialPerKey's ordering.
 */
import { describe, expect, it } from "@effect/vitest"
import { Client } from "discord.js"
import { Deferred, Effect, Exit, FiberId, Layer, Logger, LogLevel, Stream, TestClock } from "effect"
import type { ReceivedMessage } from "../../src/domain/Discord.js"
import { MissingAccess } from "../../src/domain/Errors.js"
import { Partition, type QueuedEvent } from "../../src/domain/Event.js"
import { makeListener, sequentialPerKey } from "../../src/programs/Listen.js"
import { ContextService } from "../../src/services/prompt/ContextService.js"
import { Database } from "../../src/services/storage/Database.js"
import { DiscordGateway } from "../../src/services/discord/DiscordGateway.js"
import { EventJournal, makeMemoryJournal } from "../../src/services/queue/EventJournal.js"
import { DispatchOutcome, EventQueue, type EventQueueService } from "../../src/services/queue/EventQueue.js"
import { QueuePolicy } from "../../src/services/queue/QueuePolicy.js"
import { PromptService } from "../../src/services/prompt/PromptService.js"
import { SettingsStore } from "../../src/services/storage/SettingsStore.js"
import {
  type FakeMessageStore,
  fakeMessageSource,
  ids,
  makeAuthor,
  makeDmChannel,
  makeMessage,
  makeReceived,
  referenceTo,
  referenceToId
} from "../fakes/messages.js"
import { makeTempDir } from "../fakes/tempDir.js"
import { type ReactionCall, recordingFeedback, type RecordingOptions } from "../fakes/reactions.js"
import { Feedback } from "../../src/services/discord/Feedback.js"

const agentId = "agent-guild"
const dmAgentId = "agent-dm"

/**
 * The listener reads only `botUserId` from the gateway. The gateway's shape also holds the ready
 * discord.js client; an unconnected one (no login, destroyed at the end) stands in for it.
 */
const fakeGateway = Layer.scoped(
  DiscordGateway,
  Effect.map(
    Effect.acquireRelease(
      Effect.sync(() => new Client<true>({ intents: [] })),
      (client) => Effect.promise(() => client.destroy())
    ),
    (client) =>
      new DiscordGateway({
        client,
        botUserId: ids.bot,
        messages: Stream.empty,
        interactions: Stream.empty,
        fetchMessage: () => Effect.die("not used by the listener"),
        sendTyping: () => Effect.void,
        sendDirectMessage: () => Effect.void,
        applicationOwnerIds: Effect.succeed([]),
        isReady: Effect.succeed(true),
        shards: Effect.succeed([]),
        readyInMs: 0
      })
  )
)

const tempDir = makeTempDir("listen")

interface Harness {
  readonly handle: (received: ReceivedMessage) => Effect.Effect<void>
  readonly settings: SettingsStore
  readonly queue: EventQueueService
  /** What the queue accepted, in order. */
  readonly entries: Effect.Effect<ReadonlyArray<QueuedEvent>>
  readonly errors: ReadonlyArray<string>
  /** Feedback reactions sent (read after `feedbackIdle`). */
  readonly reactions: ReadonlyArray<ReactionCall>
  /** Completes once no feedback reaction is in flight. */
  readonly feedbackIdle: Effect.Effect<void>
}

/** Runs `use` against a fresh harness; `configure` sets the settings first. */
const withListener = <A, E>(
  store: FakeMessageStore,
  configure: (settings: SettingsStore) => Effect.Effect<unknown, unknown>,
  use: (h: Harness) => Effect.Effect<A, E>,
  capacity = 50,
  reactions: RecordingOptions = {}
) =>
  Effect.gen(function*() {
    const dir = yield* tempDir
    const source = fakeMessageSource(store)
    const errors: Array<string> = []
    const capture = Logger.make(({ logLevel, message }) => {
      if (LogLevel.greaterThanEqual(logLevel, LogLevel.Error)) errors.push(String(message))
    })
    const memory = yield* makeMemoryJournal
    const queue = yield* EventQueue.make().pipe(
      Effect.provide(QueuePolicy.layerFixed({ capacity, spacing: 0 })),
      Effect.provideService(EventJournal, memory.journal)
    )
    const feedback = recordingFeedback(reactions)
    const services = Layer.mergeAll(
      fakeGateway,
      ContextService.Default,
      PromptService.Default,
      feedback.layer,
      Logger.replace(Logger.defaultLogger, capture)
    ).pipe(
      Layer.provideMerge(SettingsStore.Default.pipe(Layer.provide(Database.layer(dir)))),
      Layer.provide(source.layer),
      Layer.provideMerge(source.layer)
    )
    return yield* Effect.gen(function*() {
      const settings = yield* SettingsStore
      yield* Effect.orDie(configure(settings))
      const { handle } = yield* makeListener
      const feedbackIdle = (yield* Feedback).idle
      return yield* use({ handle, settings, queue, entries: memory.entries, errors, reactions: feedback.calls, feedbackIdle })
    }).pipe(Effect.provideService(EventQueue, queue), Effect.provide(services))
  })

const enableGuild = (settings: SettingsStore) => settings.enable(ids.guild, agentId)

const mention = (content = "what is the weather like?") =>
  makeReceived({
    message: makeMessage({
      content: `<@${ids.bot}> ${content}`,
      mentions: { users: [ids.bot], roles: [], everyone: false }
    })
  })

const directMessage = () => {
  const channel = makeDmChannel()
  return makeReceived({
    guild: null,
    channel,
    message: makeMessage({ guildId: null, channelId: channel.id, content: "hi from a DM" })
  })
}

/** Consumes the queue, recording each dispatched message id in order (every dispatch is Done at once). */
const recordDispatches = (queue: EventQueueService) =>
  Effect.gen(function*() {
    const dispatched: Array<string> = []
    yield* Effect.forkScoped(
      queue.consume((event) => Effect.sync(() => dispatched.push(event.messageId)).pipe(Effect.as(DispatchOutcome.done)))
    )
    return dispatched
  })

/** Lets the dispatch loop run until `n` events were dispatched (bounded: it may also stay short). */
const drained = (dispatched: ReadonlyArray<string>, n: number) =>
  Effect.gen(function*() {
    for (let i = 0; i < 2_000 && dispatched.length < n; i++) yield* Effect.yieldNow()
    // A few more turns, so that one too many would show.
    yield* Effect.repeatN(Effect.yieldNow(), 50)
  })

/** `n` mentions in the guild's channel, one second apart; their message ids in order. */
const mentions = (h: Harness, n: number) =>
  Effect.gen(function*() {
    const sent: Array<string> = []
    for (let i = 0; i < n; i++) {
      const received = mention(`question ${i}`)
      sent.push(received.message.id)
      yield* h.handle(received)
      yield* TestClock.adjust("1 second")
    }
    return sent
  })

describe("listen: handle", () => {
  it.scoped("a mention in an enabled guild queues one event for the guild's agent", () =>
    withListener({}, enableGuild, (h) =>
      Effect.gen(function*() {
        const received = mention("what is the weather like?")
        yield* h.handle(received)
        const entries = yield* h.entries
        expect(entries).toHaveLength(1)
        const queued = entries[0]!
        expect(queued).toMatchObject({
          messageId: received.message.id,
          guildId: ids.guild,
          channelId: ids.channel,
          authorId: ids.author,
          agentId,
          trigger: "mention",
          attempts: 0
        })
        expect(queued.prompt).toContain("what is the weather like?")
        const stats = yield* h.queue.stats
        expect(stats.partitions.map((p) => [p.key, p.pending])).toEqual([[`guild:${ids.guild}`, 1]])
        expect(h.errors).toEqual([])
      })))

  it.scoped("a guild that is not enabled queues nothing", () =>
    withListener({}, () => Effect.void, (h) =>
      Effect.gen(function*() {
        yield* h.handle(mention())
        expect(yield* h.entries).toEqual([])
      })))

  it.scoped("a paused guild keeps queueing up to queuesize, rejects beyond, and resume drains it in order", () =>
    withListener(
      {},
      (s) => Effect.zipRight(enableGuild(s), s.setPaused(ids.guild, true)),
      (h) =>
        Effect.scoped(Effect.gen(function*() {
          const guild = Partition.guild(ids.guild)
          // As the dispatch program applies the persisted pause before it consumes.
          yield* h.queue.pause(guild)
          const dispatched = yield* recordDispatches(h.queue)
          const sent = yield* mentions(h, 12)
          expect((yield* h.entries).map((e) => e.messageId)).toEqual(sent.slice(0, 10))
          const stats = yield* h.queue.stats
          expect(stats.partitions.map((p) => [p.key, p.pending, p.paused])).toEqual([[Partition.key(guild), 10, true]])
          expect(stats.rejected).toEqual({ full: 2, duplicate: 0 })
          yield* TestClock.adjust("10 minutes")
          yield* drained(dispatched, 0)
          expect(dispatched).toEqual([])
          yield* h.queue.resume(guild)
          yield* drained(dispatched, 10)
          expect(dispatched).toEqual(sent.slice(0, 10))
          expect(h.errors).toEqual([])
        })),
      10
    ))

  it.scoped("a global pause keeps queueing too, DMs included; resume drains every partition in order", () =>
    withListener(
      {},
      (s) => Effect.all([enableGuild(s), s.setDmAgent(dmAgentId), s.setGlobalPause(true)]),
      (h) =>
        Effect.scoped(Effect.gen(function*() {
          yield* h.queue.pause("global")
          const dispatched = yield* recordDispatches(h.queue)
          const sent = yield* mentions(h, 11)
          const dm = directMessage()
          yield* h.handle(dm)
          expect((yield* h.entries).map((e) => e.messageId)).toEqual([...sent.slice(0, 10), dm.message.id])
          expect((yield* h.queue.stats).rejected).toEqual({ full: 1, duplicate: 0 })
          yield* TestClock.adjust("10 minutes")
          yield* drained(dispatched, 0)
          expect(dispatched).toEqual([])
          yield* h.queue.resume("global")
          yield* drained(dispatched, 11)
          expect(dispatched.filter((id) => id !== dm.message.id)).toEqual(sent.slice(0, 10))
          expect(dispatched).toContain(dm.message.id)
        })),
      10
    ))

  it.scoped("a DM with a DM agent set is queued for that agent, with no guild", () =>
    withListener({}, (s) => s.setDmAgent(dmAgentId), (h) =>
      Effect.gen(function*() {
        const received = directMessage()
        yield* h.handle(received)
        const entries = yield* h.entries
        expect(entries).toHaveLength(1)
        expect(entries[0]).toMatchObject({
          messageId: received.message.id,
          guildId: null,
          channelId: received.channel.id,
          agentId: dmAgentId,
          trigger: "dm"
        })
        expect(entries[0]?.prompt).toContain("hi from a DM")
      })))

  it.scoped("each event carries the conversation mode of its guild (DMs: dmConversations), read at intake", () =>
    withListener({}, (s) => Effect.zipRight(enableGuild(s), s.setDmAgent(dmAgentId)), (h) =>
      Effect.gen(function*() {
        // The defaults: a conversation per channel, in guilds and DMs alike.
        yield* h.handle(mention("first"))
        yield* h.handle(directMessage())
        yield* h.settings.setSetting(ids.guild, "conversations", "shared")
        yield* h.settings.setDmConversations("shared")
        // Already queued events keep their mode; the next ones take the new one.
        yield* h.handle(mention("second"))
        yield* h.handle(directMessage())
        yield* h.settings.setSetting(ids.guild, "conversations", "channel")
        yield* h.handle(mention("third"))
        const entries = yield* h.entries
        expect(entries.map((e) => [e.guildId === null ? "dm" : "guild", e.conversationMode])).toEqual([
          ["guild", "channel"],
          ["dm", "channel"],
          ["guild", "shared"],
          ["dm", "shared"],
          ["guild", "channel"]
        ])
        expect(h.errors).toEqual([])
      })))

  it.scoped("image attachments chosen at intake ride on the event; images off: none; DMs: on", () =>
    withListener({}, (s) => Effect.zipRight(enableGuild(s), s.setDmAgent(dmAgentId)), (h) =>
      Effect.gen(function*() {
        const cdn = (name: string) => `https://cdn.discordapp.com/attachments/${ids.channel}/1500000000000000001/${name}`
        const attachments = [
          { name: "cat.png", url: cdn("cat.png"), contentType: "image/png", size: 2048 },
          { name: "doc.pdf", url: cdn("doc.pdf"), contentType: "application/pdf", size: 4096 }
        ]
        const withFiles = (received: ReceivedMessage): ReceivedMessage => ({
          ...received,
          message: { ...received.message, attachments }
        })
        yield* h.handle(withFiles(mention("look")))
        yield* h.settings.setSetting(ids.guild, "images", false)
        yield* h.handle(withFiles(mention("look again")))
        yield* h.handle(withFiles(directMessage()))
        const [on, off, dm] = yield* h.entries
        expect(on?.images).toEqual([cdn("cat.png")])
        expect(on?.prompt).toContain(`URL "${cdn("cat.png")}"): sent to you as an image`)
        expect(on?.prompt).toContain(`URL "${cdn("doc.pdf")}"): not sent: not an image type`)
        expect(off !== undefined && "images" in off).toBe(false)
        expect(off?.prompt).toContain(`URL "${cdn("cat.png")}"): not sent: images are off`)
        expect(dm?.images).toEqual([cdn("cat.png")])
        expect(h.errors).toEqual([])
      })))

  it.scoped("a DM without a DM agent queues nothing", () =>
    withListener({}, enableGuild, (h) =>
      Effect.gen(function*() {
        yield* h.handle(directMessage())
        expect(yield* h.entries).toEqual([])
      })))

  it.scoped("a reply (no ping) to the bot's message is a 'reply' trigger", () => {
    const botMessage = makeMessage({
      author: makeAuthor({ id: ids.bot, username: "aurora", displayName: "Aurora", bot: true }),
      content: "I am the bot"
    })
    const reply = makeReceived({ message: makeMessage({ content: "thanks, and also...", reference: referenceTo(botMessage) }) })
    return withListener({ messages: [botMessage] }, enableGuild, (h) =>
      Effect.gen(function*() {
        yield* h.handle(reply)
        const entries = yield* h.entries
        expect(entries.map((e) => [e.messageId, e.trigger, e.agentId])).toEqual([[reply.message.id, "reply", agentId]])
        expect(entries[0]?.prompt).toContain("thanks, and also...")
      }))
  })

  it.scoped("a reply to someone else's message queues nothing", () => {
    const other = makeMessage({ content: "a human said this" })
    const reply = makeReceived({ message: makeMessage({ reference: referenceTo(other) }) })
    return withListener({ messages: [other] }, enableGuild, (h) =>
      Effect.gen(function*() {
        yield* h.handle(reply)
        expect(yield* h.entries).toEqual([])
      }))
  })

  it.scoped("a reply to a deleted message queues nothing and does not fail", () => {
    const reply = makeReceived({ message: makeMessage({ reference: referenceToId("999999999999999999") }) })
    return withListener({ deleted: ["999999999999999999"] }, enableGuild, (h) =>
      Effect.gen(function*() {
        const exit = yield* Effect.exit(h.handle(reply))
        expect(Exit.isSuccess(exit)).toBe(true)
        expect(yield* h.entries).toEqual([])
        expect(h.errors).toEqual([])
      }))
  })

  it.scoped("@everyone is not a mention of the bot", () =>
    withListener({}, enableGuild, (h) =>
      Effect.gen(function*() {
        yield* h.handle(
          makeReceived({
            message: makeMessage({ content: "@everyone meeting now", mentions: { users: [], roles: [], everyone: true } })
          })
        )
        expect(yield* h.entries).toEqual([])
      })))

  it.scoped("a full queue counts the rejection and no failure escapes", () =>
    withListener(
      {},
      enableGuild,
      (h) =>
        Effect.gen(function*() {
          const first = mention("first")
          yield* h.handle(first)
          const exit = yield* Effect.exit(h.handle(mention("second")))
          expect(Exit.isSuccess(exit)).toBe(true)
          expect((yield* h.entries).map((e) => e.messageId)).toEqual([first.message.id])
          expect((yield* h.queue.stats).rejected).toEqual({ full: 1, duplicate: 0 })
          expect(h.errors).toEqual([])
        }),
      1
    ))

  it.scoped("the same message handled twice is queued once", () =>
    withListener({}, enableGuild, (h) =>
      Effect.gen(function*() {
        const received = mention()
        yield* h.handle(received)
        yield* h.handle(received)
        expect(yield* h.entries).toHaveLength(1)
        expect((yield* h.queue.stats).rejected).toEqual({ full: 0, duplicate: 1 })
        // A duplicate is not refused for want of room: no reaction.
        yield* h.feedbackIdle
        expect(h.reactions).toEqual([])
      })))
})

describe("listen: feedback on a full queue", () => {
  const hourglass = "\u23F3"

  it.scoped("⏳ on exactly the mentions the full queue turned away, once each, in their channel", () =>
    withListener(
      {},
      enableGuild,
      (h) =>
        Effect.gen(function*() {
          const sent = yield* mentions(h, 5)
          yield* h.feedbackIdle
          expect(h.reactions.map((r) => [r.channelId, r.messageId, r.emoji])).toEqual(
            sent.slice(2).map((id) => [ids.channel, id, hourglass])
          )
          expect((yield* h.entries).map((e) => e.messageId)).toEqual(sent.slice(0, 2))
        }),
      2
    ))

  it.scoped("a DM turned away gets ⏳ too", () =>
    withListener(
      {},
      (s) => s.setDmAgent(dmAgentId),
      (h) =>
        Effect.gen(function*() {
          yield* h.handle(directMessage())
          const refused = directMessage()
          yield* h.handle(refused)
          yield* h.feedbackIdle
          expect(h.reactions.map((r) => [r.channelId, r.messageId, r.emoji])).toEqual([
            [refused.channel.id, refused.message.id, hourglass]
          ])
        }),
      1
    ))

  it.scoped("`feedback` false: the rejection is counted, no reaction", () =>
    withListener(
      {},
      (s) => Effect.zipRight(enableGuild(s), s.setSetting(ids.guild, "feedback", false)),
      (h) =>
        Effect.gen(function*() {
          yield* mentions(h, 3)
          yield* h.feedbackIdle
          expect((yield* h.queue.stats).rejected).toEqual({ full: 2, duplicate: 0 })
          expect(h.reactions).toEqual([])
        }),
      1
    ))

  it.scoped("a reaction Discord refuses (403) or never answers leaves intake as it was", () => {
    let calls = 0
    return withListener(
      {},
      enableGuild,
      (h) =>
        Effect.gen(function*() {
          // Under TestClock, a `handle` that waited for a hanging reaction would never return.
          const sent = yield* mentions(h, 3)
          const later = mention("while a reaction hangs")
          const exit = yield* Effect.exit(h.handle(later))
          expect(Exit.isSuccess(exit)).toBe(true)
          expect((yield* h.queue.stats).rejected).toEqual({ full: 3, duplicate: 0 })
          yield* TestClock.adjust("10 seconds")
          yield* h.feedbackIdle
          // Each tried once, none again.
          expect(h.reactions.map((r) => r.messageId)).toEqual([...sent.slice(1), later.message.id])
          expect((yield* h.entries).map((e) => e.messageId)).toEqual(sent.slice(0, 1))
          expect(h.errors).toEqual([])
        }),
      1,
      {
        answer: (call) =>
          ++calls === 1 ? Effect.fail(new MissingAccess({ channelId: call.channelId, operation: "addReaction" })) : Effect.never
      }
    )
  })
})

describe("sequentialPerKey", () => {
  /** Lets forked fibers run until they block. */
  const settle = Effect.repeatN(Effect.yieldNow(), 40)

  /** A handler that records starts and ends and holds each item until the test releases it. */
  const held = Effect.sync(() => {
    const log: Array<string> = []
    const gates = new Map<string, Deferred.Deferred<void>>()
    const gate = (item: string) => {
      const existing = gates.get(item)
      if (existing !== undefined) return existing
      const made = Deferred.unsafeMake<void>(FiberId.none)
      gates.set(item, made)
      return made
    }
    const handle = (item: string) =>
      Effect.gen(function*() {
        log.push(`start ${item}`)
        yield* Deferred.await(gate(item))
        log.push(`end ${item}`)
      })
    const release = (item: string) => Effect.zipRight(Deferred.succeed(gate(item), undefined), settle)
    return { log, handle, release }
  })

  it.scoped("one key's items run one at a time in order; different keys run concurrently", () =>
    Effect.gen(function*() {
      const h = yield* held
      const intake = yield* sequentialPerKey((item: string) => item.slice(0, 1), h.handle, 8)
      for (const item of ["a1", "a2", "b1", "a3", "b2"]) yield* intake.submit(item)
      yield* settle
      expect(h.log).toEqual(["start a1", "start b1"])
      expect(yield* intake.pending).toBe(2)
      yield* h.release("a2") // not started yet: releasing it early must not let it overtake a1
      expect(h.log).toEqual(["start a1", "start b1"])
      yield* h.release("a1")
      expect(h.log).toEqual(["start a1", "start b1", "end a1", "start a2", "end a2", "start a3"])
      yield* h.release("b1")
      expect(h.log.slice(6)).toEqual(["end b1", "start b2"])
      yield* h.release("a3")
      yield* h.release("b2")
      expect(yield* intake.pending).toBe(0)
      // A key that drained starts a new lane for a later item.
      yield* intake.submit("a4")
      yield* settle
      expect(h.log.at(-1)).toBe("start a4")
      yield* h.release("a4")
      expect(yield* intake.pending).toBe(0)
    }))

  it.scoped("at most `concurrency` keys are handled at once", () =>
    Effect.gen(function*() {
      const h = yield* held
      const intake = yield* sequentialPerKey((item: string) => item.slice(0, 1), h.handle, 1)
      for (const item of ["a1", "b1", "a2"]) yield* intake.submit(item)
      yield* settle
      expect(h.log).toEqual(["start a1"])
      yield* h.release("a1")
      yield* h.release("a2")
      // The permit is held for a whole lane, so b waits until lane a has drained.
      expect(h.log).toEqual(["start a1", "end a1", "start a2", "end a2", "start b1"])
      yield* h.release("b1")
      expect(yield* intake.pending).toBe(0)
    }))

  it.scoped("a handler that dies does not stop its lane or hold a worker slot", () =>
    Effect.gen(function*() {
      const handled: Array<string> = []
      const handle = (item: string) => item === "a1" ? Effect.die(new Error("bug")) : Effect.sync(() => void handled.push(item))
      const intake = yield* sequentialPerKey((item: string) => item.slice(0, 1), handle, 1)
      for (const item of ["a1", "a2", "b1"]) yield* intake.submit(item)
      yield* settle
      expect(handled).toEqual(["a2", "b1"])
      expect(yield* intake.pending).toBe(0)
    }))
})
