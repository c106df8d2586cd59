/**
 * Chatter (#17): a busy server where most messages address nobody in particular, as the bot
 * receives them with the message-content intent. Two shapes, each run for the floor bot and for
 * Aurora with the same traffic (bench/traffic.ts, fixed seed):
 *
 * - `chatter`: 20 000 ordinary messages (20–300 characters, some mentioning or replying to other
 *   users) at 1 000/s over 200 channels in 20 guilds, plus one mention of the bot per 100 (≈ 10/s).
 *   Measured: the child's CPU per received message and its peak RSS; and, for Aurora, how the
 *   mentions' reply-chain parents were read (discord.js' cache or REST).
 * - `ordinary`: 20 000 ordinary messages of the same kind without the mentions, so that the cost
 *   of ignoring messages is seen apart from the cost of answering mentions.
 * - `latency`: 10 000 ordinary messages at 1 000/s with one mention per 20 (≈ 48 mentions/s; see
 *   `latencyShape` for BENCH_LATENCY_EVERY):
 *   p50 and p99 from the MESSAGE_CREATE frame written by the fake gateway to the messages request
 *   recorded by the fake Letta, both stamped in this (the parent) process.
 *
 * Before the measured traffic, one mention per channel warms the bot up (JIT, connection pools,
 * and in Aurora the Letta conversation of each channel). Letta answers at once; rate limit 0.5 s
 * (never reached: a channel sees a mention every 4 s at most).
 */
import * as Fs from "node:fs"
import { Duration, Effect } from "effect"
import { FakeDiscord } from "../test/fakes/FakeDiscord.js"
import { makeFakeLetta } from "../test/fakes/FakeLetta.js"
import { trackArrivals } from "./arrivals.js"
import { spawnBot } from "./BotProcess.js"
import { offerPaced, offerTraffic } from "./load.js"
import type { BotKind } from "./protocol.js"
import { percentile } from "./stats.js"
import { makeTraffic, type TrafficOptions } from "./traffic.js"
import { makeWorld } from "./world.js"

export type ChatterShape = "chatter" | "ordinary" | "latency"

/**
 * The latency shape: one mention per `mentionEvery` ordinary messages at 1 000/s. The default (20:
 * ≈ 48 mentions/s) is what `npm run bench` measures; BENCH_LATENCY_EVERY=100 (≈ 10 mentions/s, as
 * in the chatter shape) is the lighter load of #17's first measurement, over 20 000 messages so
 * that it still has ≈ 200 mentions.
 */
function latencyShape(mentionEvery: number) {
  const every = Number.isFinite(mentionEvery) && mentionEvery >= 1 ? Math.floor(mentionEvery) : 20
  return { chatter: Math.max(10_000, every * 200), mentionEvery: every, perSecond: 1000, seed: 1717 }
}

export const Shapes: Record<ChatterShape, Omit<TrafficOptions, "firstMention"> & { readonly perSecond: number }> = {
  chatter: { chatter: 20_000, mentionEvery: 100, perSecond: 1000, seed: 17 },
  /** Ordinary messages only: what ignoring them costs, apart from answering mentions. */
  ordinary: { chatter: 20_000, mentionEvery: Number.POSITIVE_INFINITY, perSecond: 1000, seed: 17 },
  latency: latencyShape(Number(process.env["BENCH_LATENCY_EVERY"] ?? "20"))
}

const Guilds = 20
const ChannelsPerGuild = 10
/** Aurora's default `replydepth`: the parents its context reads for each mention. */
export const ReplyDepth = 5
/** How long after the last message the bot may still deliver its mentions. */
const DeliveryWindowSeconds = 15

export interface ChatterResult {
  readonly bot: BotKind
  readonly shape: ChatterShape
  /** Messages offered in the measured phase (ordinary and mentions). */
  readonly messages: number
  readonly mentions: number
  readonly delivered: number
  /** Messages per second, first to last written. */
  readonly offeredRate: number
  /** Child user+system CPU from the first measured message to the last mention's run (+300 ms), per message, ms. */
  readonly cpuPerMessageMs: number
  /** Highest RSS sampled over the measured phase, and the RSS before it. */
  readonly peakRss: number
  readonly startRss: number
  readonly p50: number
  readonly p99: number
  /** Aurora's `aurora_messages_received_total` over the measured phase (NaN for the floor). */
  readonly received: number
  /** Reply-chain parents the mentions' contexts read (computed from the traffic), and REST message reads seen by the fake. */
  readonly chainReads: number
  readonly restMessageReads: number
}

const isMessageRead = (request: { readonly method: string; readonly path: string }) =>
  request.method === "GET" && /^\/channels\/\d+\/messages\/\d+$/.test(request.path)

export const runChatter = (bot: BotKind, shape: ChatterShape) =>
  Effect.scoped(Effect.gen(function*() {
    const world = makeWorld(Guilds, ChannelsPerGuild)
    const channels = world.channels.length
    const discord = yield* FakeDiscord.make({ guilds: world.guilds })
    const letta = yield* makeFakeLetta({ agents: Object.fromEntries(Object.values(world.agents).map((a) => [a, a])) })
    const arrivals = yield* trackArrivals(letta)
    const { perSecond, ...options } = Shapes[shape]
    const traffic = makeTraffic(world, discord.bot.id, { ...options, firstMention: channels })
    const child = yield* spawnBot({
      bot,
      discordApiUrl: discord.apiUrl,
      discordToken: discord.token,
      lettaUrl: letta.url,
      agents: world.agents,
      ratelimit: 0.5
    })
    yield* Effect.sleep(Duration.seconds(1))

    // Warm-up: one mention per channel, not measured.
    yield* offerPaced(discord, world, 0, channels, 600 / channels)
    yield* arrivals.awaitCount(channels).pipe(Effect.timeout(Duration.seconds(30)), Effect.ignore)
    yield* letta.awaitRunsFinished(channels).pipe(Effect.timeout(Duration.seconds(10)), Effect.ignore)
    yield* Effect.sleep(Duration.millis(700))

    yield* child.resetPeak
    const countersBefore = yield* child.counters
    const readsBefore = discord.requests().filter(isMessageRead).length
    const before = yield* child.mark
    const offer = yield* offerTraffic(discord, traffic, perSecond)
    const expected = channels + traffic.mentions
    yield* arrivals.awaitCount(expected).pipe(Effect.timeout(Duration.seconds(DeliveryWindowSeconds)), Effect.ignore)
    yield* letta.awaitRunsFinished(expected).pipe(Effect.timeout(Duration.seconds(5)), Effect.ignore)
    yield* Effect.sleep(Duration.millis(300))
    const after = yield* child.mark
    const countersAfter = yield* child.counters

    const latencies: Array<number> = []
    const traceLines: Array<string> = []
    for (const [n, sentAt] of offer.sentAt) {
      const arrivedAt = arrivals.at.get(n)
      if (arrivedAt !== undefined) latencies.push(arrivedAt - sentAt)
      const id = offer.ids?.get(n)
      if (id !== undefined) {
        traceLines.push(`${(performance.timeOrigin + sentAt).toFixed(3)} ${id} sent`)
        if (arrivedAt !== undefined) traceLines.push(`${(performance.timeOrigin + arrivedAt).toFixed(3)} ${id} arrived`)
      }
    }
    // AURORA_TRACE_LATENCY=<prefix> (inherited by the child, which stamps its stages; see
    // src/services/health/LatencyTrace.ts): the send and arrival of each measured mention, for
    // bench/trace-latency.ts.
    const tracePrefix = process.env["AURORA_TRACE_LATENCY"]
    if (tracePrefix !== undefined && tracePrefix !== "") {
      yield* Effect.sync(() => Fs.writeFileSync(`${tracePrefix}-${bot}-${child.pid}.sent`, `${traceLines.join("\n")}\n`))
    }
    const messages = traffic.messages.length
    const cpuUs = after.userUs + after.systemUs - before.userUs - before.systemUs
    const result: ChatterResult = {
      bot,
      shape,
      messages,
      mentions: traffic.mentions,
      delivered: latencies.length,
      offeredRate: messages / ((offer.lastSentAt - offer.firstSentAt) / 1000),
      cpuPerMessageMs: cpuUs / 1000 / messages,
      peakRss: after.peakRss,
      startRss: before.rss,
      p50: percentile(latencies, 50),
      p99: percentile(latencies, 99),
      received: bot === "aurora" ? countersAfter.received - countersBefore.received : NaN,
      chainReads: traffic.chainReads(ReplyDepth),
      restMessageReads: discord.requests().filter(isMessageRead).length - readsBefore
    }
    return result
  }))
