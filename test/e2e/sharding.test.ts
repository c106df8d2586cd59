/**
 * Gateway sharding end to end: the real discord.js client runs every shard against the loopback
 * FakeDiscord, which routes each guild's events to its shard ((guild_id >> 22) % count, DMs on
 * shard 0) and refuses IDENTIFYs the way Discord does (4011, 4014). Waits are bounded and
 * event-driven; the identify pacing test takes ~11 s because discord.js waits 5 s between
 * IDENTIFYs of one `max_concurrency` bucket, which is the point of the test.
 */
import { describe, expect, it } from "@effect/vitest"
import { ChannelType, GatewayIntentBits } from "discord.js"
import { Cause, Context, Effect, Exit, Layer, Option, Schedule } from "effect"
import { AuroraConfig } from "../../src/domain/Config.js"
import { DiscordGateway, type GatewayOptions } from "../../src/services/discord/DiscordGateway.js"
import { DirectMessageSwitch } from "../../src/services/discord/Intake.js"
import { closeCodeExplanation } from "../../src/services/discord/Shards.js"
import { defaultGuild, FakeDiscord, type FakeDiscordOptions, type FakeGuild, shardOf } from "../fakes/FakeDiscord.js"
import { captureLogs, type LogLine } from "../fakes/logs.js"
import { bounded, freePort, startApp, world } from "./harness.js"

/** A guild on shard 1 of 2 ((id >> 22) is odd); the default guild is on shard 0. */
const shardOneGuild: FakeGuild = {
  id: "1300000000004194305",
  name: "Shard One Guild",
  channels: [{ id: "1400000000000000201", name: "hall", type: ChannelType.GuildText }]
}
const hall = "1400000000000000201"

const agentA = "agent-shard-a"
const agentB = "agent-shard-b"
const agentDm = "agent-shard-dm"

const mention = (text: string) => `<@${world.bot.id}> ${text}`

const identifiedShards = (fake: FakeDiscord) =>
  fake.gatewayEvents().filter((event) => event.kind === "identify").map((event) => event.shard)

/** Polls until `check` gives a value (Some), for at most the e2e bound. */
const until = <A>(label: string, check: Effect.Effect<Option.Option<A>>) =>
  bounded(
    label,
    check.pipe(
      Effect.flatMap((found) => Option.match(found, { onNone: () => Effect.fail("not yet"), onSome: Effect.succeed })),
      Effect.retry(Schedule.spaced("50 millis"))
    )
  )

const getText = (url: string) =>
  Effect.promise(async () => {
    const response = await fetch(url)
    return { status: response.status, text: await response.text() }
  })

/** The gateway layer alone against a fake, with log lines captured. */
const buildGateway = (
  fakeOptions: FakeDiscordOptions,
  options: GatewayOptions,
  env: Readonly<Record<string, string>> = {}
) =>
  Effect.gen(function*() {
    const fake = yield* FakeDiscord.make(fakeOptions)
    const lines: Array<LogLine> = []
    const layer = DiscordGateway.layer(options).pipe(
      Layer.provide(AuroraConfig.Default),
      Layer.provide(DirectMessageSwitch.layerFixed(false)),
      Layer.provide(Layer.merge(fake.configLayer(env), captureLogs(lines)))
    )
    const exit = yield* Effect.exit(Layer.build(layer))
    return { fake, lines, exit: Exit.map(exit, (context) => Context.get(context, DiscordGateway)) }
  })

const failureReason = (exit: Exit.Exit<unknown, unknown>): string => {
  if (Exit.isSuccess(exit)) return "(it started)"
  const failure = Option.getOrNull(Cause.failureOption(exit.cause))
  return failure instanceof Error ? failure.message : String(failure)
}

describe("gateway sharding, end to end", () => {
  it.scopedLive("two shards: an IDENTIFY each, mentions on both shards and DMs answered, /healthz and /metrics name both", () =>
    Effect.gen(function*() {
      expect([shardOf(world.guildId, 2), shardOf(shardOneGuild.id, 2)]).toEqual([0, 1])
      const port = yield* freePort
      const app = yield* startApp({
        guilds: [defaultGuild, shardOneGuild],
        discord: { shards: 2, maxConcurrency: 2, heartbeatIntervalMs: 250 },
        letta: { agents: { [agentA]: "Agent A", [agentB]: "Agent B", [agentDm]: "DM Agent" } },
        env: { AURORA_HTTP_PORT: String(port) }
      })
      expect(identifiedShards(app.discord).sort()).toEqual([[0, 2], [1, 2]])
      // Each shard's READY listed its own guild only: discord.js files each guild under its shard.
      const guilds = app.gateway.client.guilds.cache
      expect([guilds.get(world.guildId)?.shardId, guilds.get(shardOneGuild.id)?.shardId]).toEqual([0, 1])

      yield* app.settings.enable(world.guildId, agentA)
      yield* app.settings.enable(shardOneGuild.id, agentB)
      yield* app.settings.setDmAgent(agentDm)
      yield* app.discord.sendMessage({ channelId: world.general, content: mention("from shard 0"), mentions: [world.bot.id] })
      yield* app.discord.sendMessage({ channelId: hall, content: mention("from shard 1"), mentions: [world.bot.id] })
      yield* app.discord.sendMessage({ channelId: app.discord.dmChannelFor(world.bob), content: "a DM", author: world.bob })
      const [onZero, onOne, dm] = yield* bounded(
        "a run per shard and the DM",
        Effect.all([app.letta.awaitMessages(1, agentA), app.letta.awaitMessages(1, agentB), app.letta.awaitMessages(1, agentDm)])
      )
      expect(JSON.stringify(onZero.body)).toContain("from shard 0")
      expect(JSON.stringify(onOne.body)).toContain("from shard 1")
      expect(JSON.stringify(dm.body)).toContain("a DM")

      const base = `http://127.0.0.1:${port}`
      // Both shards listed, each with a ping once its first heartbeat was acknowledged.
      const health = yield* until(
        "both shards' pings in /healthz",
        Effect.map(getText(`${base}/healthz`), (response) => {
          const body: { shards?: Array<{ pingMs: number | null }> } = JSON.parse(response.text)
          return body.shards?.length === 2 && body.shards.every((shard) => shard.pingMs !== null)
            ? Option.some(response)
            : Option.none()
        })
      )
      expect(health.status).toBe(200)
      expect(JSON.parse(health.text)).toMatchObject({
        status: "ok",
        gateway: "ready",
        shards: [
          { id: 0, status: "ready", pingMs: expect.any(Number), downForSeconds: null },
          { id: 1, status: "ready", pingMs: expect.any(Number), downForSeconds: null }
        ],
        failing: []
      })
      const metrics = (yield* getText(`${base}/metrics`)).text
      for (const shard of ["0", "1"]) {
        expect(metrics).toContain(`aurora_gateway_shard_up{shard="${shard}"} 1`)
        const ping = /^aurora_gateway_ping_seconds\{shard="\d"\} (\S+)$/m.exec(
          metrics.split("\n").filter((line) => line.includes(`shard="${shard}"`)).join("\n")
        )
        expect(Number(ping?.[1])).toBeGreaterThanOrEqual(0)
        expect(Number(ping?.[1])).toBeLessThan(5)
      }
    }))

  it.scopedLive("max_concurrency 1: discord.js paces IDENTIFYs 5 s apart; the ready timeout bounds each shard, not the total", () =>
    Effect.gen(function*() {
      // Three shards take over 10 s to start; a 9 s timeout for the whole start-up would fail.
      const { exit, fake } = yield* buildGateway({ shards: 3, maxConcurrency: 1 }, { shardCount: "auto" }, {
        AURORA_DISCORD_READY_TIMEOUT: "9 seconds"
      })
      expect(failureReason(exit)).toBe("(it started)")
      const identifies = fake.gatewayEvents().filter((event) => event.kind === "identify")
      expect(identifies.map((event) => event.shard)).toEqual([[0, 3], [1, 3], [2, 3]])
      const gaps = identifies.slice(1).map((event, i) => event.at - identifies[i]!.at)
      for (const gap of gaps) expect(gap).toBeGreaterThanOrEqual(4_900)
      if (Exit.isSuccess(exit)) {
        expect((yield* exit.value.shards).map((shard) => [shard.id, shard.status])).toEqual([[0, "ready"], [1, "ready"], [
          2,
          "ready"
        ]])
      }
    }))

  it.scopedLive("a pinned count is used as is: two shards where Discord recommends one, and 4011 when one is too few", () =>
    Effect.gen(function*() {
      const pinned = yield* buildGateway({ shards: 1, maxConcurrency: 2 }, { shardCount: 2 })
      expect(failureReason(pinned.exit)).toBe("(it started)")
      expect(identifiedShards(pinned.fake).sort()).toEqual([[0, 2], [1, 2]])

      // Discord wants two shards for these guilds (at most one per shard here): one shard is refused.
      const guilds = [defaultGuild, shardOneGuild]
      const tooFew = yield* buildGateway({ guilds, shards: 2, maxGuildsPerShard: 1 }, { shardCount: 1 })
      expect(failureReason(tooFew.exit)).toBe(closeCodeExplanation(4011))
      // The fake records the close once the close handshake is over, which may be after login failed.
      expect((yield* bounded("the close", tooFew.fake.waitForGateway("close"))).code).toBe(4011)
      // Said once, by the failed start-up, not again as a disconnect or a shard error.
      expect(tooFew.lines.filter((line) => line.level === "ERROR" || line.level === "WARN")).toEqual([])

      const auto = yield* buildGateway({ guilds, shards: 2, maxGuildsPerShard: 1, maxConcurrency: 2 }, { shardCount: "auto" })
      expect(failureReason(auto.exit)).toBe("(it started)")
    }))

  it.scopedLive("disallowed intents (4014) fail start-up with one line naming the Message Content intent", () =>
    Effect.gen(function*() {
      const { exit, lines } = yield* buildGateway({ disallowedIntents: GatewayIntentBits.MessageContent }, { shardCount: "auto" })
      const reason = failureReason(exit)
      expect(reason).toContain("4014")
      expect(reason).toContain("enable the Message Content intent for the bot in the Developer Portal")
      expect(lines.filter((line) => line.level === "ERROR" || line.level === "WARN")).toEqual([])
    }))

  it.scopedLive("too few sessions left for every shard: start-up fails saying so", () =>
    Effect.gen(function*() {
      const { exit, fake } = yield* buildGateway({ shards: 2, sessionsRemaining: 1 }, { shardCount: "auto" })
      expect(failureReason(exit)).toContain("Not enough sessions remaining to spawn 2 shards; only 1 remaining")
      expect(fake.identifyCount()).toBe(0)
    }))

  it.scopedLive("a shard Discord closes with 4011 after start-up: one explained line, reported down, the other shard serves on", () =>
    Effect.gen(function*() {
      const { exit, fake, lines } = yield* buildGateway(
        { guilds: [defaultGuild, shardOneGuild], shards: 2, maxConcurrency: 2 },
        { shardCount: "auto" }
      )
      if (Exit.isFailure(exit)) throw new Error(failureReason(exit))
      const gateway = exit.value
      yield* fake.closeShard(1, 4011, "Sharding required")
      yield* until(
        "the close line",
        Effect.sync(() => Option.liftPredicate(lines, (all) => all.some((l) => l.level === "ERROR")))
      )
      expect(lines.filter((line) => line.level === "ERROR" || line.level === "WARN")).toEqual([
        { level: "ERROR", message: closeCodeExplanation(4011) }
      ])
      const shards = yield* gateway.shards
      expect(shards.map((shard) => [shard.id, shard.status])).toEqual([[0, "ready"], [1, "disconnected"]])
      expect(shards[1]?.downForMs).not.toBeNull()
      // discord.js does not reconnect after 4011: a single IDENTIFY per shard.
      expect(fake.identifyCount()).toBe(2)
    }))
})
