/**
 * The first request of a burst (#17 item 3): 50 guilds of one channel, an agent each; after a
 * warm-up mention per channel (JIT, connection pools, each channel's Letta conversation) and a
 * pause that leaves every agent idle, 50 mentions, one per agent, written by the fake gateway as
 * fast as it can (`offerBurst`). Measured in the parent, on one clock: from the first mention's
 * MESSAGE_CREATE to the first Letta request of the burst (and to the median and last one).
 * `Bursts` bursts per bot, `PauseMs` apart (every agent idle again: Letta answers at once). Run for
 * the floor bot and for Aurora, the same way.
 */
import * as Fs from "node:fs"
import { Duration, Effect } from "effect"
import { FakeDiscord } from "../test/fakes/FakeDiscord.js"
import { makeFakeLetta } from "../test/fakes/FakeLetta.js"
import { trackArrivals } from "./arrivals.js"
import { spawnBot } from "./BotProcess.js"
import { offerBurst } from "./load.js"
import type { BotKind } from "./protocol.js"
import { percentile } from "./stats.js"
import { makeWorld } from "./world.js"

export const Agents = 50
const Bursts = 5
const PauseMs = 1000

export interface FirstBurst {
  /** First mention written -> first Letta request of the burst, ms. */
  readonly firstMs: number
  /** ... -> the median (25th) and the last request of the burst. */
  readonly medianMs: number
  readonly lastMs: number
  readonly delivered: number
}

export interface FirstBurstResult {
  readonly bot: BotKind
  readonly bursts: ReadonlyArray<FirstBurst>
}

export const runFirstBurst = (bot: BotKind) =>
  Effect.scoped(Effect.gen(function*() {
    const world = makeWorld(Agents, 1)
    const discord = yield* FakeDiscord.make({ guilds: world.guilds })
    const letta = yield* makeFakeLetta({ agents: Object.fromEntries(Object.values(world.agents).map((a) => [a, a])) })
    const arrivals = yield* trackArrivals(letta)
    const child = yield* spawnBot({
      bot,
      discordApiUrl: discord.apiUrl,
      discordToken: discord.token,
      lettaUrl: letta.url,
      agents: world.agents,
      ratelimit: 0.5
    })
    yield* Effect.sleep(Duration.seconds(1))

    // Warm-up, not measured: a mention per channel, then every agent idle.
    yield* offerBurst(discord, world, 0, Agents)
    yield* arrivals.awaitCount(Agents).pipe(Effect.timeout(Duration.seconds(30)), Effect.ignore)
    yield* letta.awaitRunsFinished(Agents).pipe(Effect.timeout(Duration.seconds(10)), Effect.ignore)
    yield* Effect.sleep(Duration.millis(PauseMs))

    const bursts: Array<FirstBurst> = []
    const traceLines: Array<string> = []
    for (let burst = 1; burst <= Bursts; burst++) {
      const from = burst * Agents
      const offer = yield* offerBurst(discord, world, from, Agents)
      yield* arrivals.awaitCount((burst + 1) * Agents).pipe(Effect.timeout(Duration.seconds(10)), Effect.ignore)
      yield* letta.awaitRunsFinished((burst + 1) * Agents).pipe(Effect.timeout(Duration.seconds(10)), Effect.ignore)
      const delays: Array<number> = []
      for (let n = from; n < from + Agents; n++) {
        const at = arrivals.at.get(n)
        if (at !== undefined) delays.push(at - offer.firstSentAt)
        const id = offer.ids?.get(n)
        const sent = offer.sentAt.get(n)
        if (id !== undefined && sent !== undefined) {
          traceLines.push(`${(performance.timeOrigin + sent).toFixed(3)} ${id} sent`)
          if (at !== undefined) traceLines.push(`${(performance.timeOrigin + at).toFixed(3)} ${id} arrived`)
        }
      }
      bursts.push({
        firstMs: delays.length === 0 ? NaN : Math.min(...delays),
        medianMs: percentile(delays, 50),
        lastMs: delays.length === 0 ? NaN : Math.max(...delays),
        delivered: delays.length
      })
      yield* Effect.sleep(Duration.millis(PauseMs))
    }
    // AURORA_TRACE_LATENCY=<prefix>: as in bench/chatter.ts, for bench/trace-latency.ts.
    const tracePrefix = process.env["AURORA_TRACE_LATENCY"]
    if (tracePrefix !== undefined && tracePrefix !== "") {
      yield* Effect.sync(() => Fs.writeFileSync(`${tracePrefix}-${bot}-${child.pid}.sent`, `${traceLines.join("\n")}\n`))
    }
    return { bot, bursts } satisfies FirstBurstResult
  }))

const fmt = (n: number) => (Number.isFinite(n) ? n.toFixed(1) : "n/a")
const median = (values: ReadonlyArray<number>) => percentile(values, 50)

/** One round per line pair, then the medians and the target (Aurora's first request ≤ 30 ms). */
export const renderFirstBurst = (
  rounds: ReadonlyArray<{ readonly floor: FirstBurstResult; readonly aurora: FirstBurstResult }>
): ReadonlyArray<string> => {
  const firsts = (bot: "floor" | "aurora") => rounds.flatMap((r) => r[bot].bursts.map((b) => b.firstMs))
  const auroraFirst = median(firsts("aurora"))
  return [
    `### First request of a burst (${Agents} mentions on ${Agents} idle agents, one channel each, written as fast as the fake gateway can; first MESSAGE_CREATE → first / median / last Letta request; ${Bursts} bursts per bot, ${rounds.length} round${
      rounds.length === 1 ? "" : "s"
    }, floor then Aurora each round)`,
    "",
    "| round | bot | first request (ms), each burst | median request (ms), each burst | last request (ms), each burst | delivered |",
    "|---|---|---|---|---|---|",
    ...rounds.flatMap((r, i) =>
      [r.floor, r.aurora].map((result) =>
        `| ${i + 1} | ${result.bot} | ${result.bursts.map((b) => fmt(b.firstMs)).join(", ")} | ${
          result.bursts.map((b) => fmt(b.medianMs)).join(", ")
        } | ${result.bursts.map((b) => fmt(b.lastMs)).join(", ")} | ${result.bursts.map((b) => b.delivered).join(", ")} |`
      )
    ),
    "",
    `Medians over all bursts: first request floor ${fmt(median(firsts("floor")))} ms, Aurora ${fmt(auroraFirst)} ms ` +
    `(max ${fmt(Math.max(...firsts("aurora")))} ms). Target: Aurora's first request ≤ 30 ms: ${
      auroraFirst <= 30 ? "met" : "**missed**"
    }.`,
    ""
  ]
}
