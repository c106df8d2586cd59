/**
 * Conversations end to end (`conversations` = channel, the default): the live layer graph with the
 * real discord.js and Letta clients against the loopback fakes. Each channel, thread and DM channel
 * runs in its own Letta conversation, created once with the agent's id and kept across restarts;
 * `/aurora conversation reset` and `/aurora config conversations` change that; a busy conversation
 * is waited out, never a failure.
 */
import { describe, expect, it } from "@effect/vitest"
import { ChannelType } from "discord.js"
import { Duration, Effect } from "effect"
import { Partition } from "../../src/domain/Event.js"
import { BreakerState } from "../../src/services/health/CircuitBreaker.js"
import type { FakeGuild } from "../fakes/FakeDiscord.js"
import { Behaviours, type FakeLetta, Items, makeFakeLetta, type ReceivedRequest } from "../fakes/FakeLetta.js"
import { bounded, type Running, startApp, tempDir, world } from "./harness.js"

const agentA = "agent-aaaa"
const agentDm = "agent-dddd"
const agents = { [agentA]: "Agent A", [agentDm]: "DM Agent" }

const mention = (text: string) => `<@${world.bot.id}> ${text}`

/** Alice mentions the bot in `channelId`. */
const say = (app: Running, channelId: string, text: string) =>
  app.discord.sendMessage({ channelId, content: mention(text), mentions: [world.bot.id] })

/** A guild of three text channels. */
const threeChannels: FakeGuild = {
  id: "1300000000000000003",
  name: "Three Channels",
  channels: ["1400000000000000301", "1400000000000000302", "1400000000000000303"].map((id, i) => ({
    id,
    name: `channel-${i}`,
    type: ChannelType.GuildText
  }))
}

const promptOf = (request: ReceivedRequest): string =>
  (request.body as { messages: Array<{ content: string }> }).messages[0]!.content

/** `/aurora <group> <subcommand>` with options, as Discord sends it. */
const aurora = (group: string, subcommand: string, options: ReadonlyArray<Record<string, unknown>> = []) => ({
  name: "aurora",
  type: 1,
  options: [{ type: 2, name: group, options: [{ type: 1, name: subcommand, options }] }]
})

/** Runs of the fake Letta whose time spans overlap pairwise, by conversation. */
const overlapping = (letta: FakeLetta) =>
  Effect.map(
    letta.runs,
    (runs) =>
      runs.filter((a) =>
        runs.some((b) => a !== b && a.startedAt < (b.finishedAt ?? Infinity) && b.startedAt < (a.finishedAt ?? Infinity))
      )
  )

describe("conversations, end to end", () => {
  it.scopedLive("a mention creates a conversation on the guild's agent and runs there; a second one reuses it, never overlapping", () =>
    Effect.gen(function*() {
      const app = yield* startApp({ letta: { agents, defaultBehaviour: Behaviours.run({ delayMs: 300 }) } })
      yield* app.settings.enable(world.guildId, agentA)
      yield* say(app, world.general, "first")
      yield* say(app, world.general, "second")
      yield* bounded("two runs", app.letta.awaitRunsFinished(2))
      const [conversation, ...more] = yield* app.letta.conversations
      expect(more).toEqual([])
      expect(conversation).toMatchObject({
        agentId: agentA,
        description: `Discord channel ${world.general} in guild ${world.guildId}`
      })
      const sends = yield* app.letta.messageRequests()
      expect(sends.map((r) => [r.path, r.rejected, promptOf(r).match(/(first|second)/)?.[0]])).toEqual([
        [`/v1/conversations/${conversation!.id}/messages`, undefined, "first"],
        [`/v1/conversations/${conversation!.id}/messages`, undefined, "second"]
      ])
      expect(yield* app.letta.maxConcurrentSends(conversation!.id)).toBe(1)
    }))

  it.scopedLive("a thread gets its own conversation; a DM gets one on the DM agent", () =>
    Effect.gen(function*() {
      const app = yield* startApp({ letta: { agents } })
      yield* app.settings.enable(world.guildId, agentA)
      yield* app.settings.setDmAgent(agentDm)
      yield* say(app, world.general, "in the channel")
      yield* say(app, world.thread, "in the thread")
      const dmChannel = app.discord.dmChannelFor(world.bob)
      yield* app.discord.sendMessage({ channelId: dmChannel, content: "a DM", author: world.bob })
      yield* bounded("three runs", app.letta.awaitRunsFinished(3))
      const conversations = yield* app.letta.conversations
      expect(conversations.map((c) => [c.agentId, c.description]).sort()).toEqual([
        [agentA, `Discord channel ${world.general} in guild ${world.guildId}`],
        [agentA, `Discord channel ${world.thread} in guild ${world.guildId}`],
        [agentDm, `Discord DM channel ${dmChannel}`]
      ].sort())
      const sends = yield* app.letta.messageRequests()
      expect(new Set(sends.map((r) => r.conversationId)).size).toBe(3)
      expect(sends.every((r) => r.path.startsWith("/v1/conversations/"))).toBe(true)
    }))

  it.scopedLive("the mapping survives a restart: no new conversation for a known channel", () =>
    Effect.gen(function*() {
      const dataDir = yield* tempDir
      const letta = yield* makeFakeLetta({ agents })
      yield* Effect.scoped(
        Effect.gen(function*() {
          const app = yield* startApp({ dataDir, lettaServer: letta })
          yield* app.settings.enable(world.guildId, agentA)
          yield* say(app, world.general, "before the restart")
          yield* bounded("the first run", letta.awaitRunsFinished(1))
        })
      )
      const app = yield* startApp({ dataDir, lettaServer: letta })
      yield* say(app, world.general, "after the restart")
      yield* bounded("the second run", letta.awaitRunsFinished(2))
      const creates = (yield* letta.requests).filter((r) => r.kind === "conversation-create")
      expect(creates).toHaveLength(1)
      const sends = yield* letta.messageRequests()
      expect(sends.map((r) => r.conversationId)).toEqual(["conv-1", "conv-1"])
    }))

  it.scopedLive("a run cut off by shutdown is cancelled through its conversation, which takes the re-send after the restart", () =>
    Effect.gen(function*() {
      const dataDir = yield* tempDir
      const letta = yield* makeFakeLetta({ agents })
      yield* Effect.scoped(
        Effect.gen(function*() {
          const app = yield* startApp({ dataDir, lettaServer: letta, env: { AURORA_SHUTDOWN_GRACE: "200 millis" } })
          yield* app.settings.enable(world.guildId, agentA)
          yield* letta.script(agentA, Behaviours.hangAfter([Items.reasoning("thinking it over")]))
          yield* say(app, world.general, "slow one")
          yield* bounded("the run to start", letta.awaitConversationMessages(1))
        })
      )
      // A client disconnect does not stop a conversation's run: the shutdown cancelled it there.
      expect(yield* letta.cancels).toEqual([
        { agentId: agentA, runIds: undefined, conversationId: "conv-1", cancelledRunIds: ["run-1"] }
      ])
      yield* startApp({ dataDir, lettaServer: letta })
      yield* bounded("the re-sent run", letta.awaitRunsFinished(2))
      const sends = yield* letta.messageRequests()
      expect(sends.map((r) => [r.conversationId, r.rejected, promptOf(r).includes("slow one")])).toEqual([
        ["conv-1", undefined, true],
        ["conv-1", undefined, true]
      ])
      expect(yield* letta.conversations).toHaveLength(1)
    }))

  it.scopedLive("`conversation reset` starts a new conversation; `config conversations value:shared` goes back to the agents route", () =>
    Effect.gen(function*() {
      const app = yield* startApp({ letta: { agents } })
      yield* app.settings.enable(world.guildId, agentA)
      yield* say(app, world.general, "one")
      yield* bounded("the first run", app.letta.awaitRunsFinished(1))

      const command = (data: ReturnType<typeof aurora>) =>
        Effect.gen(function*() {
          const interaction = yield* app.discord.sendInteraction({ channelId: world.general, permissions: "32", data })
          yield* bounded(
            "the command's answer",
            app.discord.waitForRequest((r) =>
              r.method === "POST" && r.path === `/interactions/${interaction.id}/${interaction.token}/callback`
            )
          )
        })
      yield* command(aurora("conversation", "reset"))
      yield* say(app, world.general, "two")
      yield* bounded("the second run", app.letta.awaitRunsFinished(2))
      expect((yield* app.letta.conversations).map((c) => c.id)).toEqual(["conv-1", "conv-2"])

      yield* command(aurora("config", "conversations", [{ type: 3, name: "value", value: "shared" }]))
      yield* say(app, world.general, "three")
      yield* bounded("the third run", app.letta.awaitRunsFinished(3))
      const sends = yield* app.letta.messageRequests()
      expect(sends.map((r) => r.path)).toEqual([
        "/v1/conversations/conv-1/messages",
        "/v1/conversations/conv-2/messages",
        `/v1/agents/${agentA}/messages`
      ])
      expect(yield* app.letta.conversations).toHaveLength(2)
    }))

  it.scopedLive(
    "a 409 storm (busy 3 times) is waited out: delivered once, breaker closed, no dead letter",
    () =>
      Effect.gen(function*() {
        const app = yield* startApp({ letta: { agents } })
        yield* app.settings.enable(world.guildId, agentA)
        yield* app.letta.scriptBusyForAgent(agentA, 3)
        yield* say(app, world.general, "busy storm")
        // The backoff waits 1 + 2 + 4 s between the four sends (the fault suite's row waits out 5).
        const [run] = yield* app.letta.awaitRunsFinished(1).pipe(
          Effect.timeoutFail({ duration: Duration.seconds(45), onTimeout: () => new Error("no run within 45 s") })
        )
        expect(run?.toolCallsWritten).toContain("discord_send")
        const sends = yield* app.letta.messageRequests()
        expect(sends.map((r) => r.rejected ?? "accepted")).toEqual(["busy", "busy", "busy", "accepted"])
        const gaps = sends.slice(1).map((r, i) => r.at - sends[i]!.at)
        gaps.forEach((gap, i) => expect(gap).toBeGreaterThanOrEqual(1000 * 2 ** i - 100))
        expect(yield* app.breaker.state).toEqual(BreakerState.Closed({ failures: 0 }))
        expect((yield* app.deadLetters.list(Partition.guild(world.guildId))).total).toBe(0)
      }),
    60_000
  )

  // Needs the queue's lanes (branch convqueue): before it, one agent's runs never overlap.
  it.scopedLive("3 channels of one guild with 2 s runs overlap on 3 distinct conversations of its agent", () =>
    Effect.gen(function*() {
      const app = yield* startApp({
        guilds: [threeChannels],
        letta: { agents, defaultBehaviour: Behaviours.run({ delayMs: 2000 }) }
      })
      yield* app.settings.enable(threeChannels.id, agentA)
      for (const [i, channel] of threeChannels.channels.entries()) yield* say(app, channel.id, `channel ${i}`)
      yield* bounded("three runs", app.letta.awaitRunsFinished(3))
      const runs = yield* app.letta.runs
      expect(new Set(runs.map((r) => r.conversationId)).size).toBe(3)
      const conversations = yield* app.letta.conversations
      expect(conversations.map((c) => c.agentId)).toEqual([agentA, agentA, agentA])
      expect(yield* app.letta.maxInFlight(agentA)).toBe(3)
      expect(yield* overlapping(app.letta)).toHaveLength(3)
      // Never two runs on one conversation.
      expect(yield* app.letta.maxConcurrentSends()).toBe(1)
    }))
})
