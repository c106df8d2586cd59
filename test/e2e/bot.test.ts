import { describe, expect, it } from "@effect/vitest"
import { Duration, Effect } from "effect"
import { typingGrace } from "../../src/services/discord/TypingIndicator.js"
import { Behaviours } from "../fakes/FakeLetta.js"
import { bounded, otherGuild, startApp, world } from "./harness.js"

const agentA = "agent-aaaa"
const agentB = "agent-bbbb"
const lettaAgents = { letta: { agents: { [agentA]: "Agent A", [agentB]: "Agent B" } } }

const graceMs = Duration.toMillis(typingGrace)

const mention = (text: string) => `<@${world.bot.id}> ${text}`

describe("the running bot, end to end", () => {
  it.scopedLive("a mention reaches the agent with channel id, message id, author id and text; typing once the grace is over", () =>
    Effect.gen(function*() {
      const app = yield* startApp(lettaAgents)
      yield* app.settings.enable(world.guildId, agentA)
      // A run that outlasts the typing grace, so that typing shows.
      yield* app.letta.script(agentA, Behaviours.run({ delayMs: 3 * graceMs }))
      const sentAt = Date.now()
      const sent = yield* app.discord.sendMessage({
        channelId: world.general,
        content: mention("what is the weather?"),
        mentions: [world.bot.id]
      })
      const request = yield* bounded("the Letta request", app.letta.awaitMessages(1, agentA))
      const body = request.body as { messages: Array<{ role: string; content: string }>; streaming?: boolean }
      // Channel mode: the channel's conversation (always a stream); shared: the agent's, asked to stream.
      if (request.conversationId === undefined) {
        expect([request.path, body.streaming]).toEqual([`/v1/agents/${agentA}/messages`, true])
      } else {
        expect(request.path).toBe(`/v1/conversations/${request.conversationId}/messages`)
      }
      const prompt = body.messages[0]!.content
      expect(prompt).toContain(world.general)
      expect(prompt).toContain(String(sent["id"]))
      expect(prompt).toContain(world.alice.id)
      expect(prompt).toContain("what is the weather?")
      const typing = yield* bounded(
        "typing",
        app.discord.waitForRequest((r) => r.method === "POST" && r.path === `/channels/${world.general}/typing`)
      )
      // Not before the grace: a run that answers within it shows none (TypingIndicator.test.ts).
      expect(typing.at - sentAt).toBeGreaterThanOrEqual(graceMs)
    }))

  it.scopedLive("messages that do not address the bot, or come from a disabled guild, never reach Letta", () =>
    Effect.gen(function*() {
      const app = yield* startApp(lettaAgents)
      yield* app.settings.enable(world.guildId, agentA)
      yield* app.discord.sendMessage({ channelId: world.general, content: "hello everyone", mentionEveryone: true })
      yield* app.discord.sendMessage({ channelId: world.general, content: "just chatting" })
      yield* app.discord.sendMessage({
        channelId: world.general,
        content: "from a bot",
        author: { id: "1200000000000000077", username: "otherbot", bot: true },
        mentions: [world.bot.id]
      })
      // Guild two is not enabled.
      yield* app.discord.sendMessage({ channelId: otherGuild.channels[0]!.id, content: mention("hi"), mentions: [world.bot.id] })
      // A final addressed message: once it arrives, everything sent before it has been handled.
      yield* app.discord.sendMessage({ channelId: world.general, content: mention("marker"), mentions: [world.bot.id] })
      const request = yield* bounded("the marker", app.letta.awaitMessages(1))
      expect(JSON.stringify(request.body)).toContain("marker")
      const all = yield* app.letta.messageRequests()
      expect(all).toHaveLength(1)
    }))

  it.scopedLive("a reply to the bot triggers, and a reply chain kept only in REST is fetched oldest first", () =>
    Effect.gen(function*() {
      const app = yield* startApp(lettaAgents)
      yield* app.settings.enable(world.guildId, agentA)
      const root = yield* app.discord.storeMessage({ channelId: world.general, content: "root question", author: world.bob })
      const botAnswer = yield* app.discord.storeMessage({
        channelId: world.general,
        content: "bot answer",
        author: world.bot,
        replyTo: String(root["id"]),
        // No embedded copy of the parent: the chain must come from REST, one message at a time.
        includeReferenced: false
      })
      yield* app.discord.sendMessage({
        channelId: world.general,
        content: "follow-up without a ping",
        replyTo: String(botAnswer["id"]),
        includeReferenced: false
      })
      const request = yield* bounded("the reply's run", app.letta.awaitMessages(1, agentA))
      const prompt = (request.body as { messages: Array<{ content: string }> }).messages[0]!.content
      const rootAt = prompt.indexOf("root question")
      const answerAt = prompt.indexOf("bot answer")
      const currentAt = prompt.indexOf("follow-up without a ping")
      expect(rootAt).toBeGreaterThan(-1)
      expect(answerAt).toBeGreaterThan(rootAt)
      expect(currentAt).toBeGreaterThan(answerAt)
      const fetched = app.discord
        .requests()
        .filter((r) => r.method === "GET" && r.path.startsWith(`/channels/${world.general}/messages/`))
      expect(fetched.map((r) => r.path)).toEqual(
        expect.arrayContaining([
          `/channels/${world.general}/messages/${String(botAnswer["id"])}`,
          `/channels/${world.general}/messages/${String(root["id"])}`
        ])
      )
    }))

  it.scopedLive("a duplicate MESSAGE_CREATE is dropped even when discord.js no longer has it cached", () =>
    Effect.gen(function*() {
      const app = yield* startApp(lettaAgents)
      yield* app.settings.enable(world.guildId, agentA)
      const first = yield* app.discord.sendMessage({
        channelId: world.general,
        content: mention("once"),
        mentions: [world.bot.id]
      })
      yield* bounded("the first run", app.letta.awaitMessages(1, agentA))
      // Evict it from discord.js' cache so the duplicate reaches Aurora's own dedup.
      const channel = app.gateway.client.channels.cache.get(world.general)
      if (channel !== undefined && "messages" in channel) channel.messages.cache.delete(String(first["id"]))
      yield* app.discord.sendMessage({
        channelId: world.general,
        id: String(first["id"]),
        content: mention("once"),
        mentions: [world.bot.id]
      })
      yield* app.discord.sendMessage({ channelId: world.general, content: mention("marker"), mentions: [world.bot.id] })
      yield* bounded("the marker's run", app.letta.awaitMessages(2, agentA))
      const requests = yield* app.letta.messageRequests(agentA)
      expect(requests).toHaveLength(2)
      expect(JSON.stringify(requests[1]!.body)).toContain("marker")
      const stats = yield* app.queue.stats
      expect(stats.rejected.duplicate).toBe(1)
    }))

  it.scopedLive("three mentions in one channel are spaced by the rate limit (start to start)", () =>
    Effect.gen(function*() {
      const app = yield* startApp(lettaAgents)
      yield* app.settings.enable(world.guildId, agentA)
      yield* app.settings.setSetting(world.guildId, "ratelimit", 0.5)
      for (const n of [1, 2, 3]) {
        yield* app.discord.sendMessage({ channelId: world.general, content: mention(`burst ${n}`), mentions: [world.bot.id] })
      }
      yield* bounded("three runs", app.letta.awaitMessages(3, agentA))
      const requests = yield* app.letta.messageRequests(agentA)
      expect(requests.map((r) => JSON.stringify(r.body).match(/burst (\d)/)?.[1])).toEqual(["1", "2", "3"])
      const gaps = requests.slice(1).map((r, i) => r.at - requests[i]!.at)
      // Dispatch starts are >= 500 ms apart (exactly so under TestClock in the queue's unit tests);
      // here each request's arrival at the fake also carries its own latency, which on a loaded
      // 2-core machine varies by up to ~100 ms (one run's cold path, GC). Without the rate limit
      // the three would arrive within a few ms of each other.
      for (const gap of gaps) expect(gap).toBeGreaterThanOrEqual(380)
      expect(requests[2]!.at - requests[0]!.at).toBeGreaterThanOrEqual(880)
    }))

  it.scopedLive("two guilds with their own agents run in parallel; in shared mode one agent's runs never overlap", () =>
    Effect.gen(function*() {
      const app = yield* startApp({
        letta: { agents: { [agentA]: "Agent A", [agentB]: "Agent B" }, defaultBehaviour: Behaviours.run({ delayMs: 400 }) }
      })
      yield* app.settings.enable(world.guildId, agentA)
      yield* app.settings.enable(otherGuild.id, agentB)
      // Shared mode: one run per agent across its channels (channel mode would run them in parallel).
      yield* app.settings.setSetting(world.guildId, "conversations", "shared")
      yield* app.settings.setSetting(otherGuild.id, "conversations", "shared")
      const [lobby, random] = otherGuild.channels
      // Two channels per guild, so only the one-run-per-agent rule can serialise a guild's runs.
      yield* app.discord.sendMessage({ channelId: world.general, content: mention("a1"), mentions: [world.bot.id] })
      yield* app.discord.sendMessage({ channelId: world.thread, content: mention("a2"), mentions: [world.bot.id] })
      yield* app.discord.sendMessage({ channelId: lobby!.id, content: mention("b1"), mentions: [world.bot.id] })
      yield* app.discord.sendMessage({ channelId: random!.id, content: mention("b2"), mentions: [world.bot.id] })
      yield* bounded("four runs", app.letta.awaitRunsFinished(4))
      expect(yield* app.letta.maxInFlight(agentA)).toBe(1)
      expect(yield* app.letta.maxInFlight(agentB)).toBe(1)
      const runs = yield* app.letta.runs
      const a = runs.filter((r) => r.agentId === agentA)
      const b = runs.filter((r) => r.agentId === agentB)
      // Parallel across agents: some run of A overlaps some run of B in time.
      const overlaps = a.some((x) =>
        b.some((y) => x.startedAt < (y.finishedAt ?? Infinity) && y.startedAt < (x.finishedAt ?? Infinity))
      )
      expect(overlaps).toBe(true)
    }))

  it.scopedLive("a 503 is retried and the event is delivered", () =>
    Effect.gen(function*() {
      const app = yield* startApp(lettaAgents)
      yield* app.settings.enable(world.guildId, agentA)
      yield* app.letta.script(agentA, Behaviours.status(503), Behaviours.run())
      yield* app.discord.sendMessage({ channelId: world.general, content: mention("retry me"), mentions: [world.bot.id] })
      yield* bounded("the retried run", app.letta.awaitMessages(2, agentA))
      const runs = yield* bounded("the run to finish", app.letta.awaitRunsFinished(1))
      expect(runs.some((r) => r.outcome === "completed")).toBe(true)
      const requests = yield* app.letta.messageRequests(agentA)
      expect(requests).toHaveLength(2)
      expect(requests[0]!.body).toEqual(requests[1]!.body)
    }))
})
