/**
 * Pause and release end to end: the live layer graph (real discord.js, real Letta client, SQLite)
 * against the loopback fakes, driven through `/aurora` as an admin would. A paused guild keeps
 * queueing what people ask (bounded by queuesize), across a restart too, and `events resume`
 * answers it; events held by an open breaker go the moment an owner resets it.
 */
import { ChannelType } from "discord.js"
import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import { Partition } from "../../src/domain/Event.js"
import type { FakeGuild } from "../fakes/FakeDiscord.js"
import type { ReceivedRequest } from "../fakes/FakeLetta.js"
import { bounded, tempDir, type Running, startApp, eventually, world } from "./harness.js"

const agentA = "agent-aaaa"
const lettaAgents = { letta: { agents: { [agentA]: "Agent A" } } }

/** A guild of plain text channels, so that every mention heads its own channel. */
const textGuild: FakeGuild = {
  id: "1300000000000000012",
  name: "Release Guild",
  channels: Array.from(
    { length: 6 },
    (_, i) => ({ id: `140000000000000020${i}`, name: `room-${i}`, type: ChannelType.GuildText })
  )
}

const aurora = (group: string, subcommand: string) => ({
  name: "aurora",
  type: 1,
  options: [{ type: 2, name: group, options: [{ type: 1, name: subcommand, options: [] }] }]
})

/** Runs `/aurora <group> <subcommand>` as alice (the application's owner, Manage Server too); the reply as text. */
const command = (
  app: Running,
  group: string,
  subcommand: string,
  where: { readonly guildId: string; readonly channelId: string } = { guildId: world.guildId, channelId: world.general }
) =>
  Effect.gen(function*() {
    const interaction = yield* app.discord.sendInteraction({ ...where, permissions: "32", data: aurora(group, subcommand) })
    yield* bounded(
      `the /aurora ${group} ${subcommand} reply`,
      app.discord.waitForRequest(() => app.discord.interactionReply(interaction.token) !== undefined)
    )
    return JSON.stringify(app.discord.interactionReply(interaction.token))
  })

/** `n` mentions of the bot in `channelIds` (round robin); their message ids in the order sent. */
const mentions = (app: Running, n: number, channelIds: ReadonlyArray<string>, label: string) =>
  Effect.forEach(Array.from({ length: n }, (_, i) => i), (i) =>
    Effect.map(
      app.discord.sendMessage({
        channelId: channelIds[i % channelIds.length]!,
        content: `<@${world.bot.id}> ${label} ${i}`,
        mentions: [world.bot.id]
      }),
      (message) => String(message["id"])
    ))

const messageIdOf = (request: ReceivedRequest): string | undefined =>
  /- Message ID: (\d+)/.exec(JSON.stringify(request.body))?.[1]

const pendingIn = (app: Running, guildId: string) =>
  Effect.map(app.queue.stats, (stats) => stats.partitions.find((p) => p.key === Partition.key(Partition.guild(guildId))))

/** Nothing pending or in flight: the app will not send anything more by itself. */
const idle = (app: Running) =>
  bounded(
    "the queue to drain",
    eventually(app.queue.stats, (stats) => stats.inFlight.length === 0 && stats.partitions.every((p) => p.pending === 0))
  )

const requestedIds = (app: Running) => Effect.map(app.letta.messageRequests(agentA), (requests) => requests.map(messageIdOf))

describe("pause and release, end to end", () => {
  it.scopedLive("paused: 15 mentions at queuesize 10 leave Pending: 10; resume sends exactly the first 10, once each", () =>
    Effect.gen(function*() {
      const app = yield* startApp(lettaAgents)
      yield* app.settings.enable(world.guildId, agentA)
      yield* app.settings.setSetting(world.guildId, "queuesize", 10)
      yield* app.settings.setSetting(world.guildId, "ratelimit", 0.5)
      expect(yield* command(app, "events", "pause")).toContain("Paused in this server. Mentions are still queued (up to 10)")

      const sent = yield* mentions(app, 15, [world.general], "while paused")
      const queued = yield* bounded(
        "the mentions to be queued or rejected",
        eventually(app.queue.stats, (stats) => stats.rejected.full === 5)
      )
      expect(queued.partitions.map((p) => [p.pending, p.paused])).toEqual([[10, true]])
      expect(yield* command(app, "queue", "status")).toContain("Pending: 10")
      expect(yield* app.letta.messageRequests()).toEqual([])

      expect(yield* command(app, "events", "resume")).toContain(
        "Resumed in this server: 10 queued message(s) go to the agent now"
      )
      yield* bounded("the 10 runs", app.letta.awaitRunsFinished(10))
      yield* idle(app)
      expect(yield* requestedIds(app)).toEqual(sent.slice(0, 10))
    }))

  it.scopedLive("paused, 5 mentions, shutdown, start again (still paused), resume: all 5 answered exactly once", () =>
    Effect.gen(function*() {
      const dataDir = yield* tempDir
      const sent = yield* Effect.scoped(
        Effect.gen(function*() {
          const app = yield* startApp({ ...lettaAgents, dataDir })
          yield* app.settings.enable(world.guildId, agentA)
          yield* app.settings.setSetting(world.guildId, "ratelimit", 0.5)
          yield* command(app, "events", "pause")
          const sent = yield* mentions(app, 5, [world.general, world.thread], "before the restart")
          yield* bounded("the 5 mentions to be queued", eventually(pendingIn(app, world.guildId), (p) => p?.pending === 5))
          expect(yield* app.letta.messageRequests()).toEqual([])
          return sent
        })
      )

      const app = yield* startApp({ ...lettaAgents, dataDir })
      // The pause outlived the restart: the replayed events wait for the resume.
      expect(yield* app.queue.isPaused(Partition.guild(world.guildId))).toBe(true)
      expect((yield* pendingIn(app, world.guildId))?.pending).toBe(5)
      expect(yield* app.letta.messageRequests()).toEqual([])
      yield* command(app, "events", "resume")
      yield* bounded("the 5 runs", app.letta.awaitRunsFinished(5))
      yield* idle(app)
      const requested = yield* requestedIds(app)
      expect([...requested].sort()).toEqual([...sent].sort())
      expect((yield* app.deadLetters.list(Partition.guild(world.guildId))).total).toBe(0)
    }))

  it.scopedLive("Letta down until the breaker opens, back, resetcircuit: every held mention reaches Letta at once, none twice", () =>
    Effect.gen(function*() {
      const app = yield* startApp({ ...lettaAgents, guilds: [textGuild] })
      yield* app.settings.enable(textGuild.id, agentA)
      yield* app.settings.setSetting(textGuild.id, "ratelimit", 0.5)
      yield* app.letta.goOffline
      const channels = textGuild.channels.map((c) => c.id)
      const sent = yield* mentions(app, 6, channels, "during the outage")
      // Five failed attempts open the breaker; then every mention is held, none in flight.
      yield* bounded("the breaker to open", eventually(app.breaker.state, (state) => state._tag === "Open"))
      yield* bounded(
        "every mention to be held",
        eventually(pendingIn(app, textGuild.id), (p) => p?.pending === 6 && p.inFlight === 0)
      )
      yield* app.letta.goOnline

      const resetAt = Date.now()
      const reply = yield* command(app, "events", "resetcircuit", { guildId: textGuild.id, channelId: channels[0]! })
      expect(reply).toContain("Circuit breaker reset: 🔴 OPEN → 🟢 CLOSED. Held events are dispatched now.")
      yield* bounded("the 6 runs", app.letta.awaitRunsFinished(6))
      const requests = yield* app.letta.messageRequests(agentA)
      const releaseMs = Math.max(...requests.map((r) => r.at)) - resetAt
      yield* idle(app)
      // Within a couple of seconds of the reset, not at the end of the cool-down (60 s).
      expect(releaseMs).toBeLessThan(2_000)
      const requested = yield* requestedIds(app)
      expect([...requested].sort()).toEqual([...sent].sort())
      expect((yield* app.deadLetters.list(Partition.guild(textGuild.id))).total).toBe(0)
    }))
})
