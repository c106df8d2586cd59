/**
 * `npm run bench`: overhead against the floor bot, chatter and light-load latency against the
 * floor bot, parallelism, the first request of a burst against the floor bot, conversations (one agent, 20 channels, `channel` vs `shared` mode),
 * burst and memory, idle. Every
 * scenario is bounded, every child and server stops with its scope, and a watchdog ends the run
 * if it ever outlives its budget. Results are printed and appended to BENCHMARKS.md.
 */
import * as Fs from "node:fs"
import * as Os from "node:os"
import * as Path from "node:path"
import { fileURLToPath } from "node:url"
import { Console, Duration, Effect, Logger, LogLevel } from "effect"
import { runBurst } from "./burst.js"
import { type ChatterShape, runChatter } from "./chatter.js"
import { runConversations } from "./conversations.js"
import { type FirstBurstResult, renderFirstBurst, runFirstBurst } from "./firstburst.js"
import { runOverhead } from "./overhead.js"
import { runParallelism } from "./parallelism.js"
import { type BenchResults, renderBurst, renderConversations, renderReport } from "./report.js"
import { type ChatterRound, renderChatter, renderLatency } from "./report-chatter.js"

const OverheadRounds = Number(process.env["BENCH_ROUNDS"] ?? "3")
/**
 * BENCH_ONLY=overhead runs only the overhead rounds and prints them (nothing is appended to
 * BENCHMARKS.md): the quick loop for comparing two versions of the code.
 */
const OnlyOverhead = process.env["BENCH_ONLY"] === "overhead"
/** BENCH_ONLY=burst runs only the burst scenario and prints its section (nothing is appended). */
const OnlyBurst = process.env["BENCH_ONLY"] === "burst"
/** BENCH_ONLY=conversations runs only the conversations scenario, both modes, and prints its section. */
const OnlyConversations = process.env["BENCH_ONLY"] === "conversations"
/**
 * BENCH_ONLY=chatter or BENCH_ONLY=latency runs only that scenario, BENCH_ROUNDS rounds (default 3)
 * of floor then Aurora (for chatter: without, then with mentions), and prints its section (nothing
 * is appended). The full run does one round of each.
 */
const OnlyChatter: ChatterShape | undefined = process.env["BENCH_ONLY"] === "chatter"
  ? "chatter"
  : process.env["BENCH_ONLY"] === "latency"
  ? "latency"
  : undefined
/**
 * BENCH_ONLY=firstburst runs only the first-request-of-a-burst scenario, BENCH_ROUNDS rounds
 * (default 3) of floor then Aurora, and prints its section (nothing is appended).
 */
const OnlyFirstBurst = process.env["BENCH_ONLY"] === "firstburst"
const Budget = Duration.seconds(OnlyChatter === undefined && !OnlyFirstBurst ? 600 : 60 + 150 * OverheadRounds)
const reportPath = Path.join(Path.dirname(fileURLToPath(import.meta.url)), "..", "BENCHMARKS.md")

const program = Effect.gen(function*() {
  const startedAt = new Date()
  const loadAverage = Os.loadavg()[0] ?? NaN
  const t0 = performance.now()
  if (OnlyChatter === "latency") {
    return yield* Console.log(renderLatency(yield* chatterRounds("latency", OverheadRounds)).join("\n"))
  }
  if (OnlyChatter === "chatter") {
    const ordinary: Array<ChatterRound> = []
    const chatter: Array<ChatterRound> = []
    for (let round = 1; round <= OverheadRounds; round++) {
      ordinary.push(...(yield* chatterRounds("ordinary", 1, round)))
      chatter.push(...(yield* chatterRounds("chatter", 1, round)))
    }
    return yield* Console.log(renderChatter(chatter, ordinary).join("\n"))
  }
  if (OnlyFirstBurst) return yield* Console.log(renderFirstBurst(yield* firstBurstRounds(OverheadRounds)).join("\n"))
  if (OnlyBurst) {
    const burst = yield* runBurst
    return yield* Console.log(renderBurst(burst).join("\n"))
  }
  const conversations = Effect.gen(function*() {
    const channel = yield* runConversations("channel")
    yield* Console.log(`conversations, 1 agent x 20 channels x 1 s, channel mode: makespan ${channel.makespanMs} ms`)
    const shared = yield* runConversations("shared")
    yield* Console.log(`conversations, 1 agent x 20 channels x 1 s, shared mode: makespan ${shared.makespanMs} ms`)
    return { channel, shared }
  })
  if (OnlyConversations) {
    const both = yield* conversations
    return yield* Console.log(renderConversations(both.channel, both.shared).join("\n"))
  }
  const overhead: Array<BenchResults["overhead"][number]> = []
  for (let round = 1; round <= OverheadRounds; round++) {
    const floor = yield* runOverhead("floor")
    yield* Console.log(
      `overhead round ${round} floor: p50 ${floor.p50.toFixed(2)} ms, p99 ${
        floor.p99.toFixed(2)
      } ms, ${floor.delivered} delivered, ${floor.cpuPerMentionMs.toFixed(3)} ms CPU/mention`
    )
    const aurora = yield* runOverhead("aurora")
    yield* Console.log(
      `overhead round ${round} aurora: p50 ${aurora.p50.toFixed(2)} ms, p99 ${
        aurora.p99.toFixed(2)
      } ms, ${aurora.delivered} delivered, ${aurora.cpuPerMentionMs.toFixed(3)} ms CPU/mention`
    )
    overhead.push({ floor, aurora })
  }
  if (OnlyOverhead) return
  const ordinary = yield* chatterRounds("ordinary", 1)
  const chatter = yield* chatterRounds("chatter", 1)
  const latency = yield* chatterRounds("latency", 1)
  const parallel = yield* runParallelism({ oneAgent: false, mode: "channel", runMs: 1000, rounds: 3 })
  yield* Console.log(`parallelism, 50 agents x 1 s: makespans ${parallel.makespansMs.join(", ")} ms`)
  const serial = yield* runParallelism({ oneAgent: true, mode: "shared", runMs: 100, rounds: 1 })
  yield* Console.log(`parallelism, 1 agent (shared mode) x 0.1 s: makespans ${serial.makespansMs.join(", ")} ms`)
  const firstBurst = yield* firstBurstRounds(1)
  const byMode = yield* conversations
  const burst = yield* runBurst
  yield* Console.log(`burst: ${burst.accepted} accepted, ${burst.rejected} rejected, drained in ${burst.drainMs} ms`)
  const report = renderReport({
    startedAt,
    loadAverage,
    wallSeconds: (performance.now() - t0) / 1000,
    overhead,
    chatter,
    ordinary,
    latency,
    parallel,
    serial,
    conversations: byMode,
    burst
  })
  const withFirstBurst = `${report}\n${renderFirstBurst(firstBurst).join("\n")}`
  yield* Console.log(`\n${withFirstBurst}`)
  yield* Effect.sync(() => {
    const header = Fs.existsSync(reportPath)
      ? ""
      : "# Aurora benchmarks\n\nAppended by `npm run bench` (see bench/run.ts); newest last.\n\n"
    Fs.appendFileSync(reportPath, `${header}${withFirstBurst}\n`)
  })
})

/** `rounds` rounds of the first-request-of-a-burst scenario, floor then Aurora each round, printed as they end. */
const firstBurstRounds = (rounds: number) =>
  Effect.gen(function*() {
    const results: Array<{ floor: FirstBurstResult; aurora: FirstBurstResult }> = []
    for (let round = 1; round <= rounds; round++) {
      const floor = yield* runFirstBurst("floor")
      const aurora = yield* runFirstBurst("aurora")
      for (const r of [floor, aurora]) {
        yield* Console.log(
          `firstburst round ${round} ${r.bot}: first request ${r.bursts.map((b) => b.firstMs.toFixed(1)).join(", ")} ms; last ${
            r.bursts.map((b) => b.lastMs.toFixed(1)).join(", ")
          } ms; delivered ${r.bursts.map((b) => b.delivered).join(", ")}`
        )
      }
      results.push({ floor, aurora })
    }
    return results
  })

/** `rounds` rounds of one chatter shape, floor then Aurora each round, printed as they end. */
const chatterRounds = (shape: ChatterShape, rounds: number, firstRound = 1) =>
  Effect.gen(function*() {
    const results: Array<ChatterRound> = []
    for (let round = firstRound; round < firstRound + rounds; round++) {
      const floor = yield* runChatter("floor", shape)
      const aurora = yield* runChatter("aurora", shape)
      for (const r of [floor, aurora]) {
        yield* Console.log(
          `${shape} round ${round} ${r.bot}: ${r.messages} messages at ${r.offeredRate.toFixed(0)}/s, ${
            (r.cpuPerMessageMs * 1000).toFixed(1)
          } µs CPU/message, peak RSS ${(r.peakRss / 1048576).toFixed(1)} MB, ${r.delivered}/${r.mentions} mentions, p50 ${
            r.p50.toFixed(2)
          } ms, p99 ${r.p99.toFixed(2)} ms${
            r.bot === "aurora" ? `, received ${r.received}, REST message reads ${r.restMessageReads}/${r.chainReads}` : ""
          }`
        )
      }
      results.push({ floor, aurora })
    }
    return results
  })

// A last resort: the scoped program should always finish first (children are stopped by their scopes).
const watchdog = setTimeout(() => {
  process.stderr.write("bench: over its time budget, exiting\n")
  process.exit(1)
}, Duration.toMillis(Budget) + 5000)
watchdog.unref()

Effect.runPromiseExit(
  program.pipe(
    Effect.timeoutFail({
      duration: Budget,
      onTimeout: () => new Error(`bench over its ${Duration.format(Budget)} budget`)
    }),
    Logger.withMinimumLogLevel(LogLevel.Error)
  )
).then((exit) => {
  if (exit._tag === "Failure") {
    process.stderr.write(`bench failed: ${String(exit.cause)}\n`)
    process.exitCode = 1
  }
})
