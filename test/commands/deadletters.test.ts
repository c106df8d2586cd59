/**
 * `/aurora queue failed` and `/aurora queue retry`: the dead letters of a guild (or, for owners,
 * of the DM queue) listed newest first, and re-queued as fresh events for the current agent,
 * against the in-memory dead-letter store and the real EventQueue.
 */
import { describe, expect, it } from "@effect/vitest"
import { Duration, Effect, Queue, TestClock } from "effect"
import type { DeadLetter } from "../../src/domain/DeadLetter.js"
import { StorageError } from "../../src/domain/Errors.js"
import { Partition, type QueuedEvent } from "../../src/domain/Event.js"
import { DeadLetters } from "../../src/services/queue/DeadLetters.js"
import { DispatchOutcome, EventQueue, type OfferOptions } from "../../src/services/queue/EventQueue.js"
import { SettingsStore } from "../../src/services/storage/SettingsStore.js"
import { ids, replyText, withHarness } from "./harness.js"

const otherChannel = "200000000000000009"
const dmChannel = "200000000000000077"
/** 2023-11-14T22:13:20Z: a clock reading whose `<t:…>` is easy to check. */
const now = 1_700_000_000_000

let serial = 0
const nextId = () => `92000000000000${String(++serial).padStart(4, "0")}`

const event = (over: Partial<QueuedEvent> = {}): QueuedEvent => ({
  messageId: nextId(),
  guildId: ids.guild,
  channelId: ids.channel,
  authorId: ids.member,
  agentId: "agent-old",
  trigger: "mention",
  prompt: "the prompt as it was built",
  enqueuedAt: now - 60_000,
  attempts: 0,
  ...over
})

const letter = (over: Partial<DeadLetter> = {}, eventOver: Partial<QueuedEvent> = {}): DeadLetter => ({
  event: event(eventOver),
  reason: "failed",
  errorType: "AgentNotFound",
  detail: "404 Agent not found",
  attempts: 3,
  failedAt: now - 30_000,
  ...over
})

const addAll = (letters: ReadonlyArray<DeadLetter>) =>
  Effect.flatMap(DeadLetters, (store) => Effect.forEach(letters, store.add, { discard: true }))

const stored = (partition: Partition = Partition.guild(ids.guild)) =>
  Effect.flatMap(DeadLetters, (store) => store.list(partition))

const pendingOf = (key: string) =>
  Effect.map(
    Effect.flatMap(EventQueue, (queue) => queue.stats),
    (stats) => stats.partitions.find((p) => p.key === key)?.pending ?? 0
  )

const enableGuild = (agentId: string) => Effect.flatMap(SettingsStore, (store) => store.enable(ids.guild, agentId))

/**
 * Runs the real dispatcher with a consumer that records each event and finishes it at once; the
 * clock is moved past the channels' rate limits until `count` events came out (or 2 minutes passed).
 */
const dispatched = (count: number) =>
  Effect.gen(function*() {
    const queue = yield* EventQueue
    const seen = yield* Queue.unbounded<QueuedEvent>()
    yield* Effect.forkScoped(queue.consume((e) => Queue.offer(seen, e).pipe(Effect.as(DispatchOutcome.done))))
    for (let second = 0; second < 120 && (yield* Queue.size(seen)) < count; second++) {
      yield* TestClock.adjust(Duration.seconds(1))
    }
    return yield* Queue.takeAll(seen).pipe(Effect.map((chunk) => [...chunk]))
  })

describe("/aurora queue failed", () => {
  it.scoped("no dead letters: a clear message (another guild's do not count)", () =>
    withHarness((h) =>
      Effect.gen(function*() {
        yield* addAll([letter({}, { guildId: ids.otherGuild })])
        expect(replyText(yield* h.run("admin", "queue failed"))).toBe(
          "✅ No dead letters in this server."
        )
      })
    ))

  it.scoped("newest first, with a jump link, channel, reason, error type, attempts, time and detail", () =>
    withHarness((h) =>
      Effect.gen(function*() {
        const oldest = letter({ reason: "expired", errorType: null, detail: null, attempts: 0, failedAt: now - 7_200_000 })
        const middle = letter({ failedAt: now - 60_000 }, { channelId: otherChannel })
        const newest = letter({
          reason: "interrupted-after-reply",
          errorType: null,
          detail: null,
          attempts: 1,
          failedAt: now - 5_000
        })
        yield* addAll([middle, newest, oldest])
        const reply = yield* h.run("admin", "queue failed")
        expect(reply.embed?.title).toBe("Dead letters in this server: 3")
        const link = (l: DeadLetter) =>
          `[${l.event.messageId}](https://discord.com/channels/${ids.guild}/${l.event.channelId}/${l.event.messageId})`
        const at = (l: DeadLetter) => `<t:${Math.floor(l.failedAt / 1000)}:R>`
        expect(reply.embed?.description?.split("\n")).toEqual([
          `${link(newest)} in <#${ids.channel}> · ${at(newest)}`,
          "↳ **interrupted after the agent acted** after 1 attempt",
          `${link(middle)} in <#${otherChannel}> · ${at(middle)}`,
          "↳ **failed** `AgentNotFound` after 3 attempts: `404 Agent not found`",
          `${link(oldest)} in <#${ids.channel}> · ${at(oldest)}`,
          "↳ **expired (too old after a restart)** after 0 attempts"
        ])
        expect(reply.embed?.footer).toContain("/aurora queue retry message_id:<id>")
        expect(reply.ephemeral).toBe(true)
      })
    ))

  it.scoped("more than fit: the newest 10, then how many more; the title has the total", () =>
    withHarness((h) =>
      Effect.gen(function*() {
        const letters = Array.from({ length: 13 }, (_, i) => letter({ failedAt: now - 1_000_000 + i * 1000 }))
        yield* addAll(letters)
        const reply = yield* h.run("admin", "queue failed")
        expect(reply.embed?.title).toBe("Dead letters in this server: 13")
        const lines = reply.embed?.description?.split("\n") ?? []
        expect(lines).toHaveLength(10 * 2 + 1)
        expect(lines[0]).toContain(letters[12]!.event.messageId)
        expect(lines[18]).toContain(letters[3]!.event.messageId)
        expect(lines[20]).toBe("… and 3 older dead letters")
        expect(reply.embed?.description?.length).toBeLessThan(4096)
      })
    ))

  it.scoped("a hostile error detail stays inside one inline-code span, on one line, cut short", () =>
    withHarness((h) =>
      Effect.gen(function*() {
        const hostile = "`@everyone` **bold** <@123> [click](http://evil.example)\n# heading ||spoiler|| " + "x".repeat(400)
        yield* addAll([letter({ errorType: "Run`Failed", detail: hostile })])
        const lines = (yield* h.run("admin", "queue failed")).embed?.description?.split("\n") ?? []
        expect(lines).toHaveLength(2)
        const why = lines[1]!
        // Exactly two code spans (error type, detail): nothing of the detail is outside backticks.
        expect(why).toMatch(/^↳ \*\*failed\*\* `[^`]*` after 3 attempts: `[^`]*`$/)
        expect(why).toContain("@everyone")
        expect(why).toContain("# heading")
        expect(why.length).toBeLessThan(250)
        expect(why.endsWith("…`")).toBe(true)
      })
    ))

  it.scoped("scope:dm is owner-only and lists the DM queue's dead letters by author, without a link", () =>
    withHarness((h) =>
      Effect.gen(function*() {
        const dm = letter({}, { guildId: null, channelId: dmChannel, authorId: ids.member, trigger: "dm" })
        yield* addAll([dm, letter()])
        expect(replyText(yield* h.run("admin", "queue failed", { scope: "dm" }))).toBe(
          "⛔ Only Aurora's owners can use `/aurora queue failed scope:dm`."
        )
        const reply = yield* h.run("owner", "queue failed", { scope: "dm" })
        expect(reply.embed?.title).toBe("Dead letters in the direct-message queue: 1")
        expect(reply.embed?.description?.split("\n")[0]).toBe(
          `\`${dm.event.messageId}\` DM from <@${ids.member}> · <t:${Math.floor(dm.failedAt / 1000)}:R>`
        )
        // The guild's own list does not show DMs.
        expect((yield* h.run("owner", "queue failed")).embed?.title).toBe("Dead letters in this server: 1")
      })
    ))
})

describe("/aurora queue retry message_id", () => {
  it.scoped("re-queues a fresh copy for the guild's current agent and removes the dead letter", () =>
    withHarness((h) =>
      Effect.gen(function*() {
        yield* TestClock.setTime(now)
        yield* enableGuild("agent-new")
        const dead = letter({ reason: "interrupted", attempts: 2 }, { attempts: 2, interruptedRunId: "run-1", interruptions: 2 })
        const other = letter()
        yield* addAll([dead, other])
        const reply = yield* h.run("admin", "queue retry", { message_id: ` ${dead.event.messageId} ` })
        expect(replyText(reply)).toBe(
          `🔁 Re-queued message \`${dead.event.messageId}\` for agent \`agent-new\`; its dead letter was removed.`
        )
        expect((yield* stored()).letters.map((l) => l.event.messageId)).toEqual([other.event.messageId])
        const [sent, ...more] = yield* dispatched(1)
        expect(more).toEqual([])
        expect(sent).toEqual({
          messageId: dead.event.messageId,
          guildId: ids.guild,
          channelId: ids.channel,
          authorId: ids.member,
          agentId: "agent-new",
          trigger: "mention",
          prompt: "the prompt as it was built",
          enqueuedAt: now,
          attempts: 0,
          conversationMode: "channel"
        })
        const log = (yield* h.logLines).find((line) => line.message === "dead letter retried")
        expect(log?.level).toBe("INFO")
        expect(log?.annotations).toMatchObject({ messageId: dead.event.messageId, outcome: "Requeued", agentId: "agent-new" })
      })
    ))

  it.scoped("a message link names the dead letter too; anything else is refused", () =>
    withHarness((h) =>
      Effect.gen(function*() {
        yield* enableGuild("agent-1")
        const dead = letter()
        yield* addAll([dead])
        const link = `https://discord.com/channels/${ids.guild}/${ids.channel}/${dead.event.messageId}`
        expect(replyText(yield* h.run("admin", "queue retry", { message_id: link }))).toContain("🔁 Re-queued message")
        for (const bad of ["abc", "123 456", "x".repeat(300), "https://example.com/1/2/x"]) {
          expect(replyText(yield* h.run("admin", "queue retry", { message_id: bad }))).toBe(
            "❌ `message_id` must be a message id (digits) or a message link, as `/aurora queue failed` lists them."
          )
        }
      })
    ))

  it.scoped("an unknown id (or one of another guild) is named; nothing is queued", () =>
    withHarness((h) =>
      Effect.gen(function*() {
        yield* enableGuild("agent-1")
        const elsewhere = letter({}, { guildId: ids.otherGuild })
        yield* addAll([elsewhere])
        expect(replyText(yield* h.run("admin", "queue retry", { message_id: "999999999999999999" }))).toBe(
          "❌ No dead letter for message `999999999999999999` in this server. `/aurora queue failed` lists them."
        )
        expect(replyText(yield* h.run("admin", "queue retry", { message_id: elsewhere.event.messageId }))).toContain(
          "❌ No dead letter for message"
        )
        expect(yield* pendingOf(`guild:${ids.guild}`)).toBe(0)
        expect((yield* stored(Partition.guild(ids.otherGuild))).total).toBe(1)
      })
    ))

  it.scoped("a full queue keeps the dead letter and says so", () =>
    withHarness((h) =>
      Effect.gen(function*() {
        const store = yield* SettingsStore
        const queue = yield* EventQueue
        yield* enableGuild("agent-1")
        yield* store.setSetting(ids.guild, "queuesize", 10)
        yield* Effect.forEach(Array.from({ length: 10 }, () => event()), (e) => queue.offer(e), { discard: true })
        const dead = letter()
        yield* addAll([dead])
        expect(replyText(yield* h.run("admin", "queue retry", { message_id: dead.event.messageId }))).toBe(
          `❌ The queue in this server is full (10 pending events): message \`${dead.event.messageId}\` was not ` +
            "re-queued and its dead letter was kept. Retry once the queue has drained."
        )
        expect((yield* stored()).total).toBe(1)
        expect(yield* pendingOf(`guild:${ids.guild}`)).toBe(10)
      })
    ))

  it.scoped("an event already queued is not queued twice; the dead letter is kept", () =>
    withHarness((h) =>
      Effect.gen(function*() {
        const queue = yield* EventQueue
        yield* enableGuild("agent-1")
        const dead = letter()
        yield* queue.offer(dead.event)
        yield* addAll([dead])
        expect(replyText(yield* h.run("admin", "queue retry", { message_id: dead.event.messageId }))).toBe(
          `ℹ️ Message \`${dead.event.messageId}\` is already queued or running; its dead letter was kept.`
        )
        expect((yield* stored()).total).toBe(1)
        expect(yield* pendingOf(`guild:${ids.guild}`)).toBe(1)
      })
    ))

  it.scoped("a journal failure keeps the dead letter", () =>
    withHarness((h) =>
      Effect.gen(function*() {
        const queue = yield* EventQueue
        yield* enableGuild("agent-1")
        const dead = letter()
        yield* addAll([dead])
        const failing = { ...queue, offer: () => Effect.fail(new StorageError({ operation: "append", reason: "disk full" })) }
        const reply = yield* h.run("admin", "queue retry", { message_id: dead.event.messageId }).pipe(
          Effect.provideService(EventQueue, failing)
        )
        expect(replyText(reply)).toContain("could not save the re-queued event (database error)")
        expect((yield* stored()).total).toBe(1)
      })
    ))

  it.scoped("a copy that failed again before the old record was removed leaves its new dead letter", () =>
    withHarness((h) =>
      Effect.gen(function*() {
        const queue = yield* EventQueue
        const deadLetters = yield* DeadLetters
        yield* enableGuild("agent-1")
        const dead = letter({ failedAt: now - 60_000 })
        yield* addAll([dead])
        const again: DeadLetter = { ...dead, errorType: "RunFailed", detail: "again", attempts: 1, failedAt: now }
        // The dispatcher picks the copy up and dead-letters it again at once.
        const racing = {
          ...queue,
          offer: (e: QueuedEvent, options?: OfferOptions) => Effect.zipRight(queue.offer(e, options), deadLetters.add(again))
        }
        yield* h.run("admin", "queue retry", { message_id: dead.event.messageId }).pipe(
          Effect.provideService(EventQueue, racing)
        )
        expect((yield* stored()).letters).toEqual([again])
      })
    ))

  it.scoped("a guild that is not enabled (or was disabled) has no agent: refused, nothing re-queued", () =>
    withHarness((h) =>
      Effect.gen(function*() {
        const dead = letter()
        yield* addAll([dead])
        const refusal =
          "❌ Aurora is not enabled in this server, so there is no agent to send dead letters to. `/aurora enable` first; nothing was re-queued."
        expect(replyText(yield* h.run("admin", "queue retry", { message_id: dead.event.messageId }))).toBe(refusal)
        yield* enableGuild("agent-1")
        yield* Effect.flatMap(SettingsStore, (store) => store.disable(ids.guild))
        expect(replyText(yield* h.run("admin", "queue retry"))).toBe(refusal)
        expect((yield* stored()).total).toBe(1)
        expect(yield* pendingOf(`guild:${ids.guild}`)).toBe(0)
      })
    ))
})

describe("/aurora queue retry (all)", () => {
  it.scoped("oldest message first, stopping at a full queue; counts in the reply and the log", () =>
    withHarness((h) =>
      Effect.gen(function*() {
        yield* TestClock.setTime(now)
        const store = yield* SettingsStore
        const queue = yield* EventQueue
        yield* enableGuild("agent-1")
        yield* store.setSetting(ids.guild, "queuesize", 10)
        // 7 pending elsewhere: room for 3 of the 5 dead letters.
        yield* Effect.forEach(
          Array.from({ length: 7 }, () => event({ channelId: otherChannel, agentId: "agent-other" })),
          (e) => queue.offer(e),
          { discard: true }
        )
        // Posted in this order; they failed in another order (the last two at the same moment).
        const posted = Array.from({ length: 5 }, (_, i) => event({ enqueuedAt: now - 100_000 + i * 1000 }))
        const failedAt = [now - 10_000, now - 30_000, now - 20_000, now - 5_000, now - 5_000]
        yield* addAll(posted.map((e, i) => letter({ failedAt: failedAt[i]! }, e)))

        expect(replyText(yield* h.run("admin", "queue retry"))).toBe(
          "🔁 Re-queued 3 of 5 dead letters in this server, oldest first.\n" +
            "Kept 2: the queue is full (10 pending events); run `/aurora queue retry` again once it has drained."
        )
        expect((yield* stored()).letters.map((l) => l.event.messageId).sort()).toEqual(
          [posted[3]!.messageId, posted[4]!.messageId].sort()
        )
        const log = (yield* h.logLines).find((line) => line.message === "dead letters retried")
        expect(log?.annotations).toMatchObject({ requeued: 3, keptFull: 2, duplicates: 0, total: 5 })
        // It stopped at the first refusal instead of trying the rest.
        expect((yield* queue.stats).rejected.full).toBe(1)

        const events = yield* dispatched(10)
        expect(events.filter((e) => e.channelId === ids.channel).map((e) => e.messageId)).toEqual(
          posted.slice(0, 3).map((e) => e.messageId)
        )
      })
    ))

  it.scoped("an already queued one is counted and skipped, the rest go on", () =>
    withHarness((h) =>
      Effect.gen(function*() {
        const queue = yield* EventQueue
        yield* enableGuild("agent-1")
        const letters = [letter(), letter(), letter()]
        yield* queue.offer(letters[1]!.event)
        yield* addAll(letters)
        expect(replyText(yield* h.run("admin", "queue retry"))).toBe(
          "🔁 Re-queued 2 of 3 dead letters in this server, oldest first.\nKept 1: already queued or running."
        )
        expect((yield* stored()).letters.map((l) => l.event.messageId)).toEqual([letters[1]!.event.messageId])
      })
    ))

  it.scoped("nothing to retry is said so", () =>
    withHarness((h) =>
      Effect.gen(function*() {
        yield* enableGuild("agent-1")
        expect(replyText(yield* h.run("admin", "queue retry"))).toBe("✅ No dead letters to retry in this server.")
      })
    ))

  it.scoped("scope:dm: owner-only, refused while DMs are off, else sent to the DM agent", () =>
    withHarness((h) =>
      Effect.gen(function*() {
        yield* enableGuild("agent-1")
        const dms = [
          letter({}, { guildId: null, channelId: dmChannel, trigger: "dm", enqueuedAt: now - 2000 }),
          letter({}, { guildId: null, channelId: dmChannel, trigger: "dm", enqueuedAt: now - 1000 })
        ]
        const guildLetter = letter()
        yield* addAll([...dms, guildLetter])
        expect(replyText(yield* h.run("admin", "queue retry", { scope: "dm" }))).toBe(
          "⛔ Only Aurora's owners can use `/aurora queue retry scope:dm`."
        )
        expect(replyText(yield* h.run("owner", "queue retry", { scope: "dm" }))).toContain("Direct messages are off")
        expect((yield* stored(Partition.dm)).total).toBe(2)

        yield* Effect.flatMap(SettingsStore, (store) => store.setDmAgent("agent-dm"))
        // A guild dead letter's id is not found in the DM scope.
        expect(replyText(yield* h.run("owner", "queue retry", { scope: "dm", message_id: guildLetter.event.messageId })))
          .toContain("in the direct-message queue")
        expect(replyText(yield* h.run("owner", "queue retry", { scope: "dm" }))).toBe(
          "🔁 Re-queued 2 of 2 dead letters in the direct-message queue, oldest first."
        )
        expect((yield* stored(Partition.dm)).total).toBe(0)
        expect((yield* stored()).total).toBe(1)
        const sent = yield* dispatched(2)
        expect(sent.map((e) => [e.messageId, e.agentId, e.guildId])).toEqual(
          dms.map((l) => [l.event.messageId, "agent-dm", null])
        )
      })
    ))
})

describe("dead letters and conversations", () => {
  it.scoped("queue failed shows a letter's conversation id after its time, and nothing for the default conversation", () =>
    withHarness((h) =>
      Effect.gen(function*() {
        const inConversation = letter({ conversationId: "conv-`7`", failedAt: now - 1_000 })
        const shared = letter({ failedAt: now - 2_000 })
        yield* addAll([inConversation, shared])
        const lines = (yield* h.run("admin", "queue failed")).embed?.description?.split("\n") ?? []
        const at = (l: DeadLetter) => `<t:${Math.floor(l.failedAt / 1000)}:R>`
        // The id comes from Letta: inline code, its backticks replaced.
        expect(lines[0]).toMatch(new RegExp(`· ${at(inConversation)} · conversation \`conv-ˋ7ˋ\`$`))
        expect(lines[2]?.endsWith(`· ${at(shared)}`)).toBe(true)
      })
    ))

  it.scoped("a retried event takes the partition's current conversation mode, not the letter's", () =>
    withHarness((h) =>
      Effect.gen(function*() {
        yield* TestClock.setTime(now)
        yield* enableGuild("agent-1")
        const store = yield* SettingsStore
        yield* store.setSetting(ids.guild, "conversations", "shared")
        yield* store.setDmAgent("agent-dm")
        const guildLetter = letter({}, { conversationMode: "channel", interruptedConversationId: "conv-1" })
        const dmLetter = letter({}, { guildId: null, channelId: dmChannel, trigger: "dm" })
        yield* addAll([guildLetter, dmLetter])
        expect(replyText(yield* h.run("admin", "queue retry"))).toContain("Re-queued 1 of 1")
        expect(replyText(yield* h.run("owner", "queue retry", { scope: "dm" }))).toContain("Re-queued 1 of 1")
        const sent = yield* dispatched(2)
        const byId = [...sent].sort((a, b) => a.messageId.localeCompare(b.messageId))
        expect(byId.map((e) => [e.messageId, e.conversationMode, "interruptedConversationId" in e])).toEqual([
          [guildLetter.event.messageId, "shared", false],
          [dmLetter.event.messageId, "channel", false]
        ])
      })
    ))
})
