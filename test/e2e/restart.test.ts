/**
 * Restarts end to end: the live layer graph on a data directory that an earlier app (or a seeded
 * journal standing for a crashed one) left behind, against fresh loopback fakes of Discord and Letta.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect, Layer } from "effect"
import { Partition, type QueuedEvent } from "../../src/domain/Event.js"
import { Database } from "../../src/services/storage/Database.js"
import { EventJournal, type JournalEntry } from "../../src/services/queue/EventJournal.js"
import { Behaviours, Items, type ReceivedRequest } from "../fakes/FakeLetta.js"
import { bounded, tempDir, startApp, eventually, world } from "./harness.js"

const agentA = "agent-aaaa"
const lettaAgents = { letta: { agents: { [agentA]: "Agent A" } } }

const mention = (text: string) => `<@${world.bot.id}> ${text}`

const promptOf = (request: ReceivedRequest): string =>
  (request.body as { messages: Array<{ content: string }> }).messages[0]!.content

/** An event as the listener would have queued it in #general. */
const queued = (messageId: string, prompt: string, over: Partial<QueuedEvent> = {}): QueuedEvent => ({
  messageId,
  guildId: world.guildId,
  channelId: world.general,
  authorId: world.alice.id,
  agentId: agentA,
  trigger: "mention",
  prompt,
  enqueuedAt: Date.now(),
  attempts: 0,
  ...over
})

/** Writes entries through the SQL journal, as a crashed Aurora would have left them. */
const seedJournal = (dataDir: string, entries: ReadonlyArray<JournalEntry>) =>
  Effect.gen(function*() {
    const journal = yield* EventJournal
    for (const { event, run } of entries) {
      yield* journal.append(event)
      if (run === null) continue
      yield* journal.runStarted(event.messageId, run.startedAt)
      if (run.runId !== null) yield* journal.runIdSeen(event.messageId, run.runId)
      if (run.sideEffect) yield* journal.sideEffectSeen(event.messageId)
    }
  }).pipe(Effect.provide(EventJournal.layerSql.pipe(Layer.provide(Database.layer(dataDir)))))

const isCancel = (r: ReceivedRequest) => r.kind === "cancel"

describe("restarts, end to end", () => {
  it.scopedLive("events pending at shutdown are each sent exactly once after the restart, in channel order", () =>
    Effect.gen(function*() {
      const dataDir = yield* tempDir
      const plan = [
        ["general", world.general, 1],
        ["thread", world.thread, 1],
        ["general", world.general, 2],
        ["general", world.general, 3],
        ["thread", world.thread, 2],
        ["thread", world.thread, 3]
      ] as const

      yield* Effect.scoped(
        Effect.gen(function*() {
          const app = yield* startApp({ ...lettaAgents, dataDir })
          yield* app.settings.enable(world.guildId, agentA)
          yield* app.settings.setSetting(world.guildId, "ratelimit", 0.5)
          // Dispatch is held (intake goes on), so every mention is still pending when the app stops.
          yield* app.queue.pause("global")
          for (const [name, channelId, n] of plan) {
            yield* app.discord.sendMessage({ channelId, content: mention(`restart ${name} ${n}`), mentions: [world.bot.id] })
          }
          yield* bounded(
            "the mentions to be queued",
            eventually(app.queue.stats, (stats) => stats.partitions.reduce((sum, p) => sum + p.pending, 0) === plan.length)
          )
          expect(yield* app.letta.messageRequests()).toEqual([])
        })
      )

      const app = yield* startApp({ ...lettaAgents, dataDir })
      yield* bounded("the replayed runs", app.letta.awaitMessages(plan.length, agentA))
      // One more mention per channel: once both have run, every replay (and any duplicate) is in.
      yield* app.discord.sendMessage({ channelId: world.general, content: mention("marker general"), mentions: [world.bot.id] })
      yield* app.discord.sendMessage({ channelId: world.thread, content: mention("marker thread"), mentions: [world.bot.id] })
      yield* bounded("the markers' runs", app.letta.awaitMessages(plan.length + 2, agentA))

      const texts = (yield* app.letta.messageRequests(agentA)).map((r) =>
        promptOf(r).match(/(restart|marker) (general|thread)( \d)?/)?.[0]
      )
      expect(texts.filter((t) => t?.includes("general"))).toEqual([
        "restart general 1",
        "restart general 2",
        "restart general 3",
        "marker general"
      ])
      expect(texts.filter((t) => t?.includes("thread"))).toEqual([
        "restart thread 1",
        "restart thread 2",
        "restart thread 3",
        "marker thread"
      ])
      expect(yield* app.letta.cancels).toEqual([])
    }))

  it.scopedLive("a run cut off by shutdown before the agent acted is cancelled, and sent again once after the restart", () =>
    Effect.gen(function*() {
      const dataDir = yield* tempDir
      const firstLetta = yield* Effect.scoped(
        Effect.gen(function*() {
          const app = yield* startApp({ ...lettaAgents, dataDir, env: { AURORA_SHUTDOWN_GRACE: "200 millis" } })
          yield* app.settings.enable(world.guildId, agentA)
          // The agents route, cancelled by run id (conversations.test.ts has the channel-mode case).
          yield* app.settings.setSetting(world.guildId, "conversations", "shared")
          yield* app.letta.script(agentA, Behaviours.hangAfter([Items.reasoning("thinking it over")]))
          yield* app.discord.sendMessage({ channelId: world.general, content: mention("slow one"), mentions: [world.bot.id] })
          yield* bounded("the run id to be journalled", eventually(app.journal.load, (entries) => entries[0]?.run?.runId != null))
          return app.letta
        })
      )
      // The shutdown gave up on the run after the grace period and cancelled it on the server.
      expect(yield* firstLetta.cancels).toEqual([{ agentId: agentA, runIds: ["run-1"] }])

      const app = yield* startApp({ ...lettaAgents, dataDir })
      yield* bounded("the re-sent run", app.letta.awaitMessages(1, agentA))
      yield* app.discord.sendMessage({ channelId: world.general, content: mention("marker"), mentions: [world.bot.id] })
      yield* bounded("the marker's run", app.letta.awaitMessages(2, agentA))
      expect((yield* app.letta.messageRequests()).map(promptOf)).toEqual([
        expect.stringContaining("slow one"),
        expect.stringContaining("marker")
      ])
      // A plain pending event again: nothing to cancel before the re-send, no dead letter.
      expect(yield* app.letta.cancels).toEqual([])
      expect((yield* app.deadLetters.list(Partition.guild(world.guildId))).total).toBe(0)
    }))

  it.scopedLive("a run cut off after the agent acted is dead-lettered, never re-sent, and its run is cancelled", () =>
    Effect.gen(function*() {
      const dataDir = yield* tempDir
      const acted = queued("1600000000000000001", "prompt acted")
      yield* seedJournal(dataDir, [
        { event: acted, run: { startedAt: Date.now() - 1_000, runId: "run-before-crash", sideEffect: true } },
        { event: queued("1600000000000000002", "prompt marker"), run: null }
      ])

      const app = yield* startApp({ ...lettaAgents, dataDir })
      yield* bounded("the cancel", app.letta.awaitRequest(1, isCancel))
      yield* bounded("the marker's run", app.letta.awaitMessages(1, agentA))
      expect((yield* app.letta.messageRequests()).map(promptOf)).toEqual([expect.stringContaining("prompt marker")])
      expect(yield* app.letta.cancels).toEqual([{ agentId: agentA, runIds: ["run-before-crash"] }])
      const letter = yield* app.deadLetters.find(Partition.guild(world.guildId), acted.messageId)
      expect(letter).toMatchObject({
        reason: "interrupted-after-reply",
        errorType: null,
        detail: expect.stringContaining("run-before-crash"),
        attempts: 1,
        event: { messageId: acted.messageId, prompt: "prompt acted" }
      })
    }))

  it.scopedLive("a run cut off before the agent acted is cancelled, then sent again exactly once", () =>
    Effect.gen(function*() {
      const dataDir = yield* tempDir
      const cut = queued("1600000000000000011", "prompt cut off")
      yield* seedJournal(dataDir, [
        { event: cut, run: { startedAt: Date.now() - 1_000, runId: "run-cut-off", sideEffect: false } },
        { event: queued("1600000000000000012", "prompt marker"), run: null }
      ])

      const app = yield* startApp({ ...lettaAgents, dataDir })
      yield* bounded("both runs", app.letta.awaitMessages(2, agentA))
      const messages = yield* app.letta.messageRequests()
      expect(messages.map(promptOf)).toEqual([
        expect.stringContaining("prompt cut off"),
        expect.stringContaining("prompt marker")
      ])
      expect(yield* app.letta.cancels).toEqual([{ agentId: agentA, runIds: ["run-cut-off"] }])
      const cancel = (yield* app.letta.requests).find(isCancel)
      expect(cancel!.seq).toBeLessThan(messages[0]!.seq)
      // Both done: nothing is left pending, nothing was dead-lettered.
      yield* bounded("the journal to empty", eventually(app.journal.load, (entries) => entries.length === 0))
      expect((yield* app.deadLetters.list(Partition.guild(world.guildId))).total).toBe(0)
    }))

  it.scopedLive("an event older than AURORA_MAX_EVENT_AGE is dead-lettered expired and never sent", () =>
    Effect.gen(function*() {
      const dataDir = yield* tempDir
      const old = queued("1600000000000000021", "prompt old", { enqueuedAt: Date.now() - 2 * 3_600_000 })
      yield* seedJournal(dataDir, [
        { event: old, run: null },
        { event: queued("1600000000000000022", "prompt marker"), run: null }
      ])

      const app = yield* startApp({ ...lettaAgents, dataDir })
      yield* bounded("the marker's run", app.letta.awaitMessages(1, agentA))
      expect((yield* app.letta.messageRequests()).map(promptOf)).toEqual([expect.stringContaining("prompt marker")])
      const letter = yield* app.deadLetters.find(Partition.guild(world.guildId), old.messageId)
      expect(letter).toMatchObject({ reason: "expired", errorType: null, attempts: 0 })
      expect(yield* app.letta.cancels).toEqual([])
    }))
})
