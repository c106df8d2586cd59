/**
 * Burst and memory: 10 000 mentions over 500 channels in 50 guilds (queuesize 200, rate limit
 * 0.5 s), written by the fake gateway as fast as it can, Letta answering at once. Counts come
 * from Aurora's own metrics; RSS is the child's (sampled every 20 ms for the peak).
 */
import * as Fs from "node:fs"
import * as Path from "node:path"
import { Console, Duration, Effect, Schedule } from "effect"
import { FakeDiscord } from "../test/fakes/FakeDiscord.js"
import { makeFakeLetta } from "../test/fakes/FakeLetta.js"
import { auroraNodeFlags, type BotProcess, spawnBot } from "./BotProcess.js"
import type { MemorySample } from "./protocol.js"
import { offerBurst } from "./load.js"
import { mb } from "./stats.js"
import { makeWorld } from "./world.js"

export interface BurstResult {
  readonly offered: number
  readonly sendMs: number
  readonly received: number
  readonly accepted: number
  readonly rejected: number
  readonly delivered: number
  /** First mention sent -> last run finished. */
  readonly drainMs: number
  readonly cpuPerMentionMs: number
  readonly idleRss: number
  readonly idleRssAfterGc: number
  readonly peakRss: number
  /** 2 s after the drain, without and with a forced full GC. */
  readonly afterRss: number
  readonly afterRssGc: number
  /** V8 heap committed 2 s after the drain (after the forced GC). */
  readonly afterHeapTotalGc: number
  /**
   * `LaterSeconds` after the drain, without forcing anything: V8 gives committed heap back only
   * when its memory reducer runs, some seconds after allocation calms down.
   */
  readonly laterRss: number
  readonly laterHeapTotal: number
  /** V8 heap in use after a forced GC, idle and after the drain: live objects, not allocator slack. */
  readonly idleHeapGc: number
  readonly idleHeapTotalGc: number
  readonly afterHeapGc: number
  /** The child's memory when its RSS peaked: V8 heap committed and used, and memory outside it. */
  readonly atPeak: MemorySample
  /** The V8 flags the Aurora child ran with (AuroraNodeFlags, or BENCH_NODE_FLAGS). */
  readonly nodeFlags: ReadonlyArray<string>
}

const Guilds = 50
const ChannelsPerGuild = 10
const Mentions = 10_000
/** Bounded to keep `npm run bench` under 5 minutes (the burst drains in ~45–60 s on this machine). */
export const DrainWindowSeconds = 75
export const LaterSeconds = 15

const heapSnapshot = (child: BotProcess, moment: string) => {
  const dir = process.env["BENCH_HEAP_SNAPSHOT"]
  if (dir === undefined) return Effect.void
  const path = Path.join(dir, `burst-${moment}-${Date.now()}.heapsnapshot`)
  return Effect.flatMap(
    child.heapSnapshot(path),
    (mark) => Console.error(`burst: heap snapshot ${path}; heap used after it ${mb(mark.heapUsed).toFixed(1)} MB`)
  )
}

export const runBurst = Effect.scoped(Effect.gen(function*() {
  const world = makeWorld(Guilds, ChannelsPerGuild)
  const discord = yield* FakeDiscord.make({ guilds: world.guilds })
  const letta = yield* makeFakeLetta({ agents: Object.fromEntries(Object.values(world.agents).map((a) => [a, a])) })
  const child = yield* spawnBot({
    bot: "aurora",
    discordApiUrl: discord.apiUrl,
    discordToken: discord.token,
    lettaUrl: letta.url,
    agents: world.agents,
    ratelimit: 0.5,
    queuesize: 200
  })
  yield* Effect.sleep(Duration.seconds(1))
  const idle = yield* child.mark
  const idleGc = yield* child.gcMark
  yield* heapSnapshot(child, "idle")
  yield* child.resetPeak

  const startedAt = Date.now()
  const offer = yield* offerBurst(discord, world, 0, Mentions)
  // Intake is done when Aurora has accepted or rejected every mention (bounded poll of its metrics).
  // Not `received`: that counts messages as discord.js delivers them, before the listener's turn.
  yield* child.counters.pipe(
    Effect.repeat({
      until: (c) => c.enqueued + c.rejected >= Mentions,
      schedule: Schedule.spaced(Duration.millis(100)).pipe(Schedule.upTo(Duration.seconds(30)))
    })
  )
  const intake = yield* child.counters
  // Diagnostics, off by default (they stall the child): BENCH_HEAP_SNAPSHOT=<dir> writes heap
  // snapshots of the child at idle, once intake is done (when the most mentions are pending), and
  // after the drain.
  yield* heapSnapshot(child, "intake")
  // Bounded to keep `npm run bench` under 5 minutes; an unfinished drain is reported as such.
  yield* letta.awaitRunsFinished(intake.enqueued).pipe(Effect.timeout(Duration.seconds(DrainWindowSeconds)), Effect.ignore)
  const runs = (yield* letta.runs).filter((run) => run.finishedAt !== undefined)
  const drainedAt = runs.reduce((m, run) => Math.max(m, run.finishedAt ?? 0), startedAt)
  const peak = yield* child.mark
  const counters = yield* child.counters
  yield* Effect.sleep(Duration.seconds(2))
  const after = yield* child.mark
  const afterGc = yield* child.gcMark
  yield* heapSnapshot(child, "drained")
  yield* Effect.sleep(Duration.seconds(LaterSeconds - 2))
  const later = yield* child.mark
  // BENCH_TIMELINE=<file> writes the child's memory every 250 ms (JSON) from the burst's start.
  const timelinePath = process.env["BENCH_TIMELINE"]
  if (timelinePath !== undefined) {
    const timeline = yield* child.timeline
    yield* Effect.sync(() => Fs.writeFileSync(timelinePath, JSON.stringify({ startedAt, drainedAt, timeline })))
  }

  const result: BurstResult = {
    offered: Mentions,
    sendMs: offer.lastSentAt - offer.firstSentAt,
    received: counters.received,
    accepted: counters.enqueued,
    rejected: counters.rejected,
    delivered: runs.length,
    drainMs: drainedAt - startedAt,
    cpuPerMentionMs: (peak.userUs + peak.systemUs - idleGc.userUs - idleGc.systemUs) / 1000 / Mentions,
    idleRss: idle.rss,
    idleRssAfterGc: idleGc.rss,
    peakRss: peak.peakRss,
    afterRss: after.rss,
    afterRssGc: afterGc.rss,
    afterHeapTotalGc: afterGc.heapTotal,
    laterRss: later.rss,
    laterHeapTotal: later.heapTotal,
    idleHeapGc: idleGc.heapUsed,
    idleHeapTotalGc: idleGc.heapTotal,
    afterHeapGc: afterGc.heapUsed,
    atPeak: peak.atPeak,
    nodeFlags: auroraNodeFlags()
  }
  return result
}))
