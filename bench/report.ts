/** The BENCHMARKS.md section for one `npm run bench`. */
import * as Os from "node:os"
import { auroraNodeFlags } from "./BotProcess.js"
import { type BurstResult, DrainWindowSeconds, LaterSeconds } from "./burst.js"
import { Channels, type ConversationsResult, Parallel, RunMs } from "./conversations.js"
import { DeliveryWindowSeconds, type OverheadResult } from "./overhead.js"
import type { ParallelismResult } from "./parallelism.js"
import type { MemorySample } from "./protocol.js"
import { type ChatterRound, renderChatter, renderLatency } from "./report-chatter.js"
import { fmt, max, mb, median } from "./stats.js"

export interface BenchResults {
  readonly startedAt: Date
  /** 1-minute load average when the run started: the machine is shared. */
  readonly loadAverage: number
  readonly wallSeconds: number
  readonly overhead: ReadonlyArray<{ readonly floor: OverheadResult; readonly aurora: OverheadResult }>
  /** Chatter with a mention per 100 messages, and the light-load latency amid chatter (bench/chatter.ts). */
  readonly chatter: ReadonlyArray<ChatterRound>
  readonly ordinary: ReadonlyArray<ChatterRound>
  readonly latency: ReadonlyArray<ChatterRound>
  readonly parallel: ParallelismResult
  readonly serial: ParallelismResult
  /** One agent, 20 channels: in `channel` mode and in `shared` mode. */
  readonly conversations: { readonly channel: ConversationsResult; readonly shared: ConversationsResult }
  readonly burst: BurstResult
}

const verdict = (ok: boolean) => (ok ? "met" : "**missed**")

export const machine = (): string => {
  const cpu = Os.cpus()[0]?.model ?? "unknown CPU"
  return `${Os.availableParallelism()} cores (nproc), ${cpu}, ${
    mb(Os.totalmem()).toFixed(0)
  } MB RAM, Node ${process.version}, ${Os.platform()} ${Os.release()}`
}

export const renderReport = (r: BenchResults): string => {
  const med = (bot: "floor" | "aurora", pick: (o: OverheadResult) => number) =>
    median(r.overhead.map((round) => pick(round[bot])))
  const ratio = (pick: (o: OverheadResult) => number) => median(r.overhead.map((round) => pick(round.aurora) / pick(round.floor)))
  const rows: Array<[string, (o: OverheadResult) => number, number]> = [
    [`delivered (of 2 000, within ${DeliveryWindowSeconds} s of the last offer)`, (o) => o.delivered, 0],
    ["offered rate (mentions/s)", (o) => o.offeredRate, 0],
    ["p50 (ms)", (o) => o.p50, 2],
    ["p90 (ms)", (o) => o.p90, 2],
    ["p99 (ms)", (o) => o.p99, 2],
    ["max (ms)", (o) => o.max, 1],
    ["throughput (mentions/s)", (o) => o.throughput, 0],
    ["CPU per mention (ms)", (o) => o.cpuPerMentionMs, 3]
  ]
  const perRound = r.overhead.map((round, i) =>
    `| ${i + 1} | ${round.floor.delivered} / ${round.aurora.delivered} | ${fmt(round.floor.p50, 2)} / ${
      fmt(round.aurora.p50, 2)
    } | ${fmt(round.floor.p99, 2)} / ${fmt(round.aurora.p99, 2)} | ${fmt(round.floor.max, 1)} / ${fmt(round.aurora.max, 1)} | ${
      fmt(round.floor.cpuPerMentionMs, 3)
    } / ${fmt(round.aurora.cpuPerMentionMs, 3)} |`
  )
  const p50Ratio = ratio((o) => o.p50)
  const p99Ratio = ratio((o) => o.p99)
  const cpuRatio = ratio((o) => o.cpuPerMentionMs)
  const allDelivered = r.overhead.every((round) => round.aurora.delivered === round.aurora.offered)
  const parallelMakespan = median(r.parallel.makespansMs)
  const serialMakespan = median(r.serial.makespansMs)
  const idle = (bot: "floor" | "aurora") => ({
    ready: med(bot, (o) => o.startToReadyMs),
    spawn: med(bot, (o) => o.spawnToReadyMs),
    rss: med(bot, (o) => o.idleRss)
  })
  const ia = idle("aurora")
  const iflo = idle("floor")
  return [
    `## ${r.startedAt.toISOString()}`,
    "",
    `- Command: \`npm run bench\` (\`node --import tsx bench/run.ts\`), ${fmt(r.wallSeconds, 0)} s wall`,
    `- Machine: ${machine()}; load average at start ${fmt(r.loadAverage, 2)} (shared machine: other work may run alongside)`,
    `- Setup: fakes and load generator in the parent process; each bot (Aurora's live layer graph, or the floor bot) in its own child process (\`node --import tsx\`; Aurora's with its production node flags: ${
      flagList(auroraNodeFlags())
    }), so CPU and RSS are the bot's alone. Logs at Error.`,
    "",
    `### Overhead (2 000 mentions, 200 channels, 20 guilds/agents, rate limit 0.5 s, ~333/s, instant Letta; ${r.overhead.length} rounds, floor then Aurora each round)`,
    "",
    "| metric | floor (median) | Aurora (median) | Aurora / floor (median of per-round ratios) |",
    "|---|---|---|---|",
    ...rows.map(([label, pick, digits]) =>
      `| ${label} | ${fmt(med("floor", pick), digits)} | ${fmt(med("aurora", pick), digits)} | ${fmt(ratio(pick), 2)} |`
    ),
    "",
    "Per round (floor / Aurora):",
    "",
    "| round | delivered | p50 ms | p99 ms | max ms | CPU ms/mention |",
    "|---|---|---|---|---|---|",
    ...perRound,
    "",
    `Targets: all 2 000 delivered at the offered rate: ${verdict(allDelivered)}; p50 ≤ 2× floor: ${fmt(p50Ratio, 2)}× ${
      verdict(p50Ratio <= 2)
    }; p99 ≤ 1.5× floor: ${fmt(p99Ratio, 2)}× ${verdict(p99Ratio <= 1.5)}; CPU/mention ≤ 2× floor: ${fmt(cpuRatio, 2)}× ${
      verdict(cpuRatio <= 2)
    }.`,
    "",
    ...renderChatter(r.chatter, r.ordinary),
    ...renderLatency(r.latency),
    "### Parallelism (50 guilds, one mention each, makespan = first mention sent → last run finished)",
    "",
    "| case | run length | makespans (ms) | median (ms) | most runs in flight (all / one agent) | target |",
    "|---|---|---|---|---|---|",
    `| 50 agents (${r.parallel.mode} mode) | ${r.parallel.runMs} ms | ${
      r.parallel.makespansMs.map((m) => fmt(m, 0)).join(", ")
    } | ${fmt(parallelMakespan, 0)} | ${r.parallel.maxInFlight} / ${r.parallel.maxInFlightPerAgent} | ≤ 1 300 ms: ${
      verdict(parallelMakespan <= 1300)
    } |`,
    `| 1 agent (${r.serial.mode} mode: one run per agent) | ${r.serial.runMs} ms | ${
      r.serial.makespansMs.map((m) => fmt(m, 0)).join(", ")
    } | ${fmt(serialMakespan, 0)} | ${r.serial.maxInFlight} / ${r.serial.maxInFlightPerAgent} | ≈ 50 × ${r.serial.runMs} ms = ${
      50 * r.serial.runMs
    } ms, one at a time: ${verdict(r.serial.maxInFlightPerAgent === 1 && serialMakespan >= 50 * r.serial.runMs)} |`,
    "",
    ...renderConversations(r.conversations.channel, r.conversations.shared),
    ...renderBurst(r.burst),
    `### Idle (median of the ${r.overhead.length} overhead children, 20 guilds, before any traffic)`,
    "",
    "| | start → ready (bot construction → gateway ready) | spawn → ready (node + module loading included) | idle RSS |",
    "|---|---|---|---|",
    `| Aurora | ${fmt(ia.ready, 0)} ms | ${fmt(ia.spawn, 0)} ms | ${fmt(mb(ia.rss))} MB |`,
    `| floor | ${fmt(iflo.ready, 0)} ms | ${fmt(iflo.spawn, 0)} ms | ${fmt(mb(iflo.rss))} MB |`,
    "",
    `Worst overhead max latency over all rounds: floor ${fmt(max(r.overhead.map((o) => o.floor.max)), 1)} ms, Aurora ${
      fmt(max(r.overhead.map((o) => o.aurora.max)), 1)
    } ms.`,
    ""
  ].join("\n")
}

const flagList = (flags: ReadonlyArray<string>): string =>
  flags.length === 0 ? "none" : flags.map((flag) => `\`${flag}\``).join(" ")

/** The conversations section (also printed alone by `BENCH_ONLY=conversations`). */
export const renderConversations = (channel: ConversationsResult, shared: ConversationsResult): ReadonlyArray<string> => {
  const serialMs = Channels * RunMs
  const row = (c: ConversationsResult, target: string) =>
    `| ${c.mode} | ${
      fmt(c.makespanMs, 0)
    } | ${c.finished} | ${c.maxInFlight} | ${c.conversationsCreated} / ${c.conversationsUsed} | ${c.maxConcurrentSends} | ${c.busyAnswers} | ${target} |`
  const channelTarget = `≤ 1 300 ms: ${
    verdict(channel.makespanMs <= 1300)
  }; never two runs on one conversation (≤ 1) and ${Channels} created: ${
    verdict(
      channel.maxConcurrentSends <= 1 && channel.conversationsCreated === Channels && channel.conversationsUsed === Channels
    )
  }`
  const sharedTarget = `≈ ${Channels} × ${RunMs} ms = ${serialMs} ms, one at a time: ${
    verdict(shared.maxInFlight === 1 && shared.makespanMs >= serialMs)
  }`
  return [
    `### Conversations (one agent, ${Channels} channels of one guild, one mention each, ${RunMs} ms runs, parallel ${Parallel}; after a warm-up mention per channel; makespan = first mention sent → last run finished)`,
    "",
    "| mode | makespan (ms) | runs finished | most runs of the agent at once | conversations created / used | most sends on one conversation at once | 409 busy answers | target |",
    "|---|---|---|---|---|---|---|---|",
    row(channel, channelTarget),
    row(shared, sharedTarget),
    "",
    `\`shared\` / \`channel\` makespan: ${fmt(shared.makespanMs / channel.makespanMs, 1)}×.`,
    ""
  ]
}

/** V8's heap spaces that hold more than 1 MB, committed / used. */
const spaces = (sample: MemorySample): string =>
  sample.spaces
    .filter((space) => space.size >= 1024 * 1024)
    .map((space) => `${space.name.replace(/_space$/, "")} ${fmt(mb(space.size), 0)} / ${fmt(mb(space.used), 0)}`)
    .join(", ")

/** The burst section (also printed alone by `BENCH_ONLY=burst`). */
export const renderBurst = (b: BurstResult): ReadonlyArray<string> => {
  const growth = mb(b.peakRss - b.idleRss)
  const backWithin = (b.afterRss - b.idleRss) / b.idleRss
  const backWithinGc = (b.afterRssGc - b.idleRssAfterGc) / b.idleRssAfterGc
  const backWithinLater = (b.laterRss - b.idleRss) / b.idleRss
  return [
    `### Burst and memory (10 000 mentions, 500 channels, 50 guilds, queuesize 200, rate limit 0.5 s, instant Letta; Aurora's node flags: ${
      flagList(b.nodeFlags)
    })`,
    "",
    "| metric | value |",
    "|---|---|",
    `| written by the fake gateway in | ${fmt(b.sendMs, 0)} ms |`,
    `| received / accepted / rejected | ${b.received} / ${b.accepted} / ${b.rejected} |`,
    `| delivered to Letta (runs finished, waited at most ${DrainWindowSeconds} s) | ${b.delivered}${
      b.delivered < b.accepted ? " (**drain not finished**)" : ""
    } |`,
    `| time to drain (first sent → last run finished) | ${
      fmt(b.drainMs / 1000, 2)
    } s (the rate limit alone needs ≥ 9.5 s: 20 mentions per channel, 0.5 s apart) |`,
    `| CPU per mention over the burst | ${fmt(b.cpuPerMentionMs, 3)} ms |`,
    `| idle RSS (after a forced GC) | ${fmt(mb(b.idleRss))} MB (${fmt(mb(b.idleRssAfterGc))} MB) |`,
    `| peak RSS, growth over idle | ${fmt(mb(b.peakRss))} MB, +${fmt(growth)} MB: ≤ 100 MB ${verdict(growth <= 100)} |`,
    `| at the peak: V8 heap committed / used | ${fmt(mb(b.atPeak.heapTotal))} MB / ${
      fmt(mb(b.atPeak.heapUsed))
    } MB (idle after GC: ${fmt(mb(b.idleHeapTotalGc))} MB / ${fmt(mb(b.idleHeapGc))} MB) |`,
    `| at the peak: outside the V8 heap (RSS − heap committed; of it external / array buffers / V8 malloc) | ${
      fmt(mb(b.atPeak.rss - b.atPeak.heapTotal))
    } MB (${fmt(mb(b.atPeak.external))} / ${fmt(mb(b.atPeak.arrayBuffers))} / ${fmt(mb(b.atPeak.mallocedMemory))} MB; idle ${
      fmt(mb(b.idleRssAfterGc - b.idleHeapTotalGc))
    } MB) |`,
    `| at the peak: V8 spaces, committed / used (MB) | ${spaces(b.atPeak)} |`,
    `| RSS 2 s after drain (after a forced GC) | ${fmt(mb(b.afterRss))} MB, ${fmt(backWithin * 100, 0)} % over idle (${
      fmt(mb(b.afterRssGc))
    } MB, ${fmt(backWithinGc * 100, 0)} % over idle after GC): within 20 % ${verdict(backWithin <= 0.2)} |`,
    `| RSS ${LaterSeconds} s after drain (no forced GC) | ${fmt(mb(b.laterRss))} MB, ${
      fmt(backWithinLater * 100, 0)
    } % over idle: within 20 % ${verdict(backWithinLater <= 0.2)} |`,
    `| V8 heap used after a forced GC, idle → after drain | ${fmt(mb(b.idleHeapGc))} MB → ${fmt(mb(b.afterHeapGc))} MB |`,
    `| V8 heap committed, 2 s after drain (after GC) → ${LaterSeconds} s after | ${fmt(mb(b.afterHeapTotalGc))} MB → ${
      fmt(mb(b.laterHeapTotal))
    } MB |`,
    ""
  ]
}
