/**
 * "Told, not ignored" end to end: the live layer graph (real discord.js and Letta clients, SQLite)
 * against the loopback fakes, driven through `/aurora` as an admin would. The fake Discord serves
 * the bot's reaction route as Discord does (204; 404 Unknown Message, 403 Missing Permissions) and
 * records every request, so a second PUT of the same reaction would show even though Discord
 * would not show two.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect, Layer } from "effect"
import { Partition, type QueuedEvent } from "../../src/domain/Event.js"
import { Database } from "../../src/services/storage/Database.js"
import { EventJournal } from "../../src/services/queue/EventJournal.js"
import { Behaviours } from "../fakes/FakeLetta.js"
import { bounded, tempDir, type Running, startApp, eventually, world } from "./harness.js"

const agentA = "agent-aaaa"
const lettaAgents = { letta: { agents: { [agentA]: "Agent A" } } }
const hourglass = "\u23F3"
const warning = "\u26A0\uFE0F"

const aurora = (group: string, subcommand: string, options: ReadonlyArray<Record<string, unknown>> = []) => ({
  name: "aurora",
  type: 1,
  options: [{ type: 2, name: group, options: [{ type: 1, name: subcommand, options }] }]
})

/** Runs `/aurora <group> <subcommand>` as alice with Manage Server in #general; the reply as text. */
const command = (app: Running, group: string, subcommand: string, options: ReadonlyArray<Record<string, unknown>> = []) =>
  Effect.gen(function*() {
    const interaction = yield* app.discord.sendInteraction({
      guildId: world.guildId,
      channelId: world.general,
      permissions: "32",
      data: aurora(group, subcommand, options)
    })
    yield* bounded(
      `the /aurora ${group} ${subcommand} reply`,
      app.discord.waitForRequest(() => app.discord.interactionReply(interaction.token) !== undefined)
    )
    return JSON.stringify(app.discord.interactionReply(interaction.token))
  })

/** `n` mentions of the bot in `channelId`; their message ids in the order sent. */
const mentions = (app: Running, n: number, label: string, channelId: string = world.general) =>
  Effect.forEach(Array.from({ length: n }, (_, i) => i), (i) =>
    Effect.map(
      app.discord.sendMessage({ channelId, content: `<@${world.bot.id}> ${label} ${i}`, mentions: [world.bot.id] }),
      (message) => String(message["id"])
    ))

/** Waits until `n` reaction requests reached the fake, then until no reaction is in flight. */
const reactionsSettled = (app: Running, n: number) =>
  bounded(
    `${n} reaction request(s)`,
    Effect.zipRight(
      app.discord.waitForRequest(() => app.discord.reactionCalls().length >= n),
      app.feedback.idle
    )
  )

const deadLetterOf = (app: Running, messageId: string) => app.deadLetters.find(Partition.guild(world.guildId), messageId)

const deadLettered = (app: Running, messageId: string) =>
  bounded(`the dead letter of ${messageId}`, eventually(deadLetterOf(app, messageId), (letter) => letter !== null))

describe("feedback reactions, end to end", () => {
  it.scopedLive("queue full: ⏳ on exactly the mentions turned away, once each; none on those queued", () =>
    Effect.gen(function*() {
      const app = yield* startApp(lettaAgents)
      yield* app.settings.enable(world.guildId, agentA)
      expect(yield* command(app, "events", "pause")).toContain("Paused in this server")
      expect(yield* command(app, "config", "queuesize", [{ type: 4, name: "value", value: 10 }])).toContain("queuesize")

      const sent = yield* mentions(app, 13, "while paused")
      yield* reactionsSettled(app, 3)
      expect((yield* app.queue.stats).rejected.full).toBe(3)
      expect(app.discord.reactionCalls()).toEqual(
        sent.slice(10).map((messageId) => ({ channelId: world.general, messageId, emoji: hourglass, status: 204 }))
      )
      for (const id of sent.slice(10)) expect(app.discord.reactionsOn(world.general, id)).toEqual([hourglass])
      for (const id of sent.slice(0, 10)) expect(app.discord.reactionsOn(world.general, id)).toEqual([])
    }))

  it.scopedLive("an agent that fails for good (404, then 400 on retry): ⚠️ once, though dead-lettered twice", () =>
    Effect.gen(function*() {
      const app = yield* startApp(lettaAgents)
      // An agent the Letta server does not know: every run is a 404.
      yield* app.settings.enable(world.guildId, "agent-gone")
      const [failed] = yield* mentions(app, 1, "to a missing agent")
      yield* deadLettered(app, failed!)
      yield* reactionsSettled(app, 1)
      expect(app.discord.reactionsOn(world.general, failed!)).toEqual([warning])

      // The admin points the guild at an agent that rejects the request (400) and retries it.
      yield* app.settings.enable(world.guildId, agentA)
      yield* app.letta.script(agentA, Behaviours.status(400, { detail: "invalid request" }))
      expect(yield* command(app, "queue", "retry", [{ type: 3, name: "message_id", value: failed! }])).toContain(
        `Re-queued message \`${failed!}\``
      )
      yield* bounded("the retried run", app.letta.awaitMessages(1, agentA))
      yield* bounded(
        "the second dead letter",
        eventually(deadLetterOf(app, failed!), (letter) => letter?.errorType === "LettaRejected")
      )
      yield* bounded("feedback to settle", app.feedback.idle)
      expect(app.discord.reactionCalls()).toEqual([
        { channelId: world.general, messageId: failed!, emoji: warning, status: 204 }
      ])
    }))

  it.scopedLive("a DM whose agent fails for good: ⚠️ in the DM channel", () =>
    Effect.gen(function*() {
      const app = yield* startApp(lettaAgents)
      yield* app.settings.setDmAgent("agent-gone")
      const dmChannel = app.discord.dmChannelFor(world.bob)
      const message = yield* app.discord.sendMessage({ channelId: dmChannel, content: "are you there?", author: world.bob })
      const messageId = String(message["id"])
      yield* bounded("the DM's dead letter", eventually(app.deadLetters.find(Partition.dm, messageId), (l) => l !== null))
      yield* reactionsSettled(app, 1)
      expect(app.discord.reactionCalls()).toEqual([{ channelId: dmChannel, messageId, emoji: warning, status: 204 }])
    }))

  it.scopedLive("`config feedback value:false`: a full queue and a dead letter, and no reaction at all", () =>
    Effect.gen(function*() {
      const app = yield* startApp(lettaAgents)
      yield* app.settings.enable(world.guildId, "agent-gone")
      expect(yield* command(app, "config", "feedback", [{ type: 5, name: "value", value: false }])).toContain("feedback")
      yield* command(app, "config", "queuesize", [{ type: 4, name: "value", value: 10 }])
      yield* command(app, "events", "pause")
      yield* mentions(app, 11, "feedback off")
      yield* bounded("the rejection", eventually(app.queue.stats, (stats) => stats.rejected.full === 1))
      // The ten queued ones are dropped; one more mention then fails for good.
      yield* command(app, "queue", "clear")
      yield* command(app, "events", "resume")
      const [failed] = yield* mentions(app, 1, "to a missing agent")
      yield* deadLettered(app, failed!)
      // Dispatch tells Feedback before it ends: once nothing is in flight, no reaction can still come.
      yield* bounded(
        "the queue to drain",
        eventually(app.queue.stats, (stats) => stats.inFlight.length === 0 && stats.partitions.every((p) => p.pending === 0))
      )
      yield* bounded("feedback to settle", app.feedback.idle)
      expect(app.discord.reactionCalls()).toEqual([])
    }))

  it.scopedLive("a reaction refused (403 Missing Permissions) or on a deleted message (404) is tried once; the bot goes on", () =>
    Effect.gen(function*() {
      const app = yield* startApp(lettaAgents)
      yield* app.settings.enable(world.guildId, "agent-gone")
      app.discord.setReactionsForbidden(world.general, true)
      const [denied] = yield* mentions(app, 1, "no reactions here")
      yield* deadLettered(app, denied!)
      yield* reactionsSettled(app, 1)

      const [deleted] = yield* mentions(app, 1, "deleted at once", world.thread)
      // Deleted before Aurora's reaction can reach it (Discord would then answer 10008).
      yield* app.discord.deleteMessage(world.thread, deleted!, { dispatch: false })
      yield* deadLettered(app, deleted!)
      yield* reactionsSettled(app, 2)

      // Reactions still work where they are allowed, and dispatch goes on.
      const [later] = yield* mentions(app, 1, "after the failures", world.thread)
      yield* deadLettered(app, later!)
      yield* reactionsSettled(app, 3)
      expect(app.discord.reactionCalls()).toEqual([
        { channelId: world.general, messageId: denied!, emoji: warning, status: 403 },
        { channelId: world.thread, messageId: deleted!, emoji: warning, status: 404 },
        { channelId: world.thread, messageId: later!, emoji: warning, status: 204 }
      ])
    }))

  it.scopedLive("an event expired at start-up: ⚠️ goes out once Discord is ready (here on a message Discord no longer has)", () =>
    Effect.gen(function*() {
      const dataDir = yield* tempDir
      const expired: QueuedEvent = {
        messageId: "1600000000000000031",
        guildId: world.guildId,
        channelId: world.general,
        authorId: world.alice.id,
        agentId: agentA,
        trigger: "mention",
        prompt: "prompt expired",
        enqueuedAt: Date.now() - 2 * 3_600_000,
        attempts: 0
      }
      yield* Effect.flatMap(EventJournal, (journal) => journal.append(expired)).pipe(
        Effect.provide(EventJournal.layerSql.pipe(Layer.provide(Database.layer(dataDir))))
      )
      const app = yield* startApp({ ...lettaAgents, dataDir })
      yield* reactionsSettled(app, 1)
      expect(app.discord.reactionCalls()).toEqual([
        { channelId: world.general, messageId: expired.messageId, emoji: warning, status: 404 }
      ])
      expect(yield* app.deadLetters.find(Partition.guild(world.guildId), expired.messageId)).toMatchObject({ reason: "expired" })
    }))
})
