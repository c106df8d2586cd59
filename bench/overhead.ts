/**
 * Overhead: 2 000 mentions round-robin over 200 channels in 20 guilds (one agent each), each
 * channel offered one mention per 0.6 s (~333/s) under a 0.5 s rate limit, Letta answering at
 * once. Latency is MESSAGE_CREATE frame written by the fake gateway -> messages request recorded
 * by the fake Letta, both stamped in this (the parent) process; CPU is the bot child's own.
 *
 * Aurora runs in the default `channel` conversations mode (a conversation per channel, created by
 * the warm-up). BENCH_OVERHEAD_CONVERSATIONS=shared runs it in `shared` mode (the agents route),
 * for telling the conversations' own cost apart from the machine's load.
 *
 * BENCH_WINDOW_PROFILE=<dir> writes a V8 CPU profile of each bot's measured window (after the
 * warm-up, until the last delivery) to <dir>/<bot>-<pid>.cpuprofile; bench/profile-summary.ts
 * summarises it. The profiler's sampling costs CPU, so the CPU figures of such a run are not comparable.
 */
import { Duration, Effect } from "effect"
import { FakeDiscord } from "../test/fakes/FakeDiscord.js"
import { makeFakeLetta } from "../test/fakes/FakeLetta.js"
import { trackArrivals } from "./arrivals.js"
import { spawnBot } from "./BotProcess.js"
import { offerPaced } from "./load.js"
import type { BotKind } from "./protocol.js"
import { max, percentile } from "./stats.js"
import { makeWorld } from "./world.js"

export interface OverheadResult {
  readonly bot: BotKind
  readonly offered: number
  readonly delivered: number
  readonly offeredRate: number
  readonly p50: number
  readonly p90: number
  readonly p99: number
  readonly max: number
  /** Delivered mentions per second, first send to last arrival. */
  readonly throughput: number
  /** Child user+system CPU over the measured run, per delivered mention, ms. */
  readonly cpuPerMentionMs: number
  /** Idle, for the Idle section: the same child before any traffic. */
  readonly startToReadyMs: number
  readonly spawnToReadyMs: number
  readonly idleRss: number
}

const Guilds = 20
const ChannelsPerGuild = 10
const Mentions = 2000
const PerChannelIntervalMs = 600
/** How long after the last offer the bot may still deliver (the offer itself takes ~6 s). */
export const DeliveryWindowSeconds = 20

export const runOverhead = (bot: BotKind) =>
  Effect.scoped(Effect.gen(function*() {
    const world = makeWorld(Guilds, ChannelsPerGuild)
    const channels = world.channels.length
    const interval = PerChannelIntervalMs / channels
    const discord = yield* FakeDiscord.make({ guilds: world.guilds })
    const letta = yield* makeFakeLetta({ agents: Object.fromEntries(Object.values(world.agents).map((a) => [a, a])) })
    const arrivals = yield* trackArrivals(letta)
    const child = yield* spawnBot({
      bot,
      discordApiUrl: discord.apiUrl,
      discordToken: discord.token,
      lettaUrl: letta.url,
      agents: world.agents,
      ratelimit: 0.5,
      ...(bot === "aurora" && process.env["BENCH_OVERHEAD_CONVERSATIONS"] === "shared"
        ? { conversations: "shared" as const }
        : {})
    })
    yield* Effect.sleep(Duration.seconds(1))
    const idle = yield* child.mark

    // Warm-up: one mention per channel, not measured (JIT, connection pools, first-use caches).
    yield* offerPaced(discord, world, 0, channels, interval)
    yield* arrivals.awaitCount(channels).pipe(Effect.timeout(Duration.seconds(30)), Effect.ignore)
    yield* letta.awaitRunsFinished(channels).pipe(Effect.timeout(Duration.seconds(10)), Effect.ignore)
    yield* Effect.sleep(Duration.millis(PerChannelIntervalMs + 100))

    const profileDir = process.env["BENCH_WINDOW_PROFILE"]
    if (profileDir !== undefined) yield* child.profileStart
    const before = yield* child.mark
    const offer = yield* offerPaced(discord, world, channels, Mentions, interval)
    // Bounded: a bot that cannot keep up is reported with what it delivered by then.
    yield* arrivals.awaitCount(channels + Mentions).pipe(Effect.timeout(Duration.seconds(DeliveryWindowSeconds)), Effect.ignore)
    yield* letta.awaitRunsFinished(channels + Mentions).pipe(Effect.timeout(Duration.seconds(5)), Effect.ignore)
    // Let the bot finish its bookkeeping after the last run (logs, metrics, typing stop).
    yield* Effect.sleep(Duration.millis(300))
    const after = yield* child.mark
    if (profileDir !== undefined) yield* child.profileStop(`${profileDir}/${bot}-${child.pid}.cpuprofile`)

    const latencies: Array<number> = []
    let lastArrival = offer.firstSentAt
    for (const [n, sentAt] of offer.sentAt) {
      const arrivedAt = arrivals.at.get(n)
      if (arrivedAt === undefined) continue
      latencies.push(arrivedAt - sentAt)
      lastArrival = Math.max(lastArrival, arrivedAt)
    }
    const delivered = latencies.length
    const cpuUs = after.userUs + after.systemUs - before.userUs - before.systemUs
    const result: OverheadResult = {
      bot,
      offered: Mentions,
      delivered,
      offeredRate: Mentions / ((offer.lastSentAt - offer.firstSentAt) / 1000),
      p50: percentile(latencies, 50),
      p90: percentile(latencies, 90),
      p99: percentile(latencies, 99),
      max: max(latencies),
      throughput: delivered / ((lastArrival - offer.firstSentAt) / 1000),
      cpuPerMentionMs: delivered === 0 ? NaN : cpuUs / 1000 / delivered,
      startToReadyMs: child.startToReadyMs,
      spawnToReadyMs: child.spawnToReadyMs,
      idleRss: idle.rss
    }
    return result
  }))
