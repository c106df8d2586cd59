/**
 * The bot under test, in its own process (spawned by bench/BotProcess.ts): Aurora's live layer
 * graph or the floor bot, configured from BENCH_CHILD, answering the parent's requests for CPU,
 * memory and counter snapshots over the IPC channel. Exits when told to stop or when the parent
 * goes away.
 */
import * as Fs from "node:fs"
import * as Inspector from "node:inspector"
import * as V8 from "node:v8"
import {
  ConfigProvider,
  Context,
  Deferred,
  Effect,
  Exit,
  Layer,
  Logger,
  LogLevel,
  Metric,
  MetricState,
  RuntimeFlags,
  Supervisor
} from "effect"
import { AppLive } from "../src/layers/Live.js"
import { messagesReceived } from "../src/services/health/MessagesReceived.js"
import { SettingsStore } from "../src/services/storage/SettingsStore.js"
import { startFloor } from "./floor.js"
import { OpCounter } from "./OpCounter.js"
import type { ChildConfig, ChildMessage, Counters, Mark, MemorySample, ParentRequest } from "./protocol.js"

const send = (message: ChildMessage) => process.send?.(message)

// BENCH_V8_RUNTIME_FLAGS="--flag ..." applies V8 flags from inside the process (v8.setFlagsFromString),
// for checking whether a flag still works when a program sets it itself rather than on the command line.
const runtimeFlags = process.env["BENCH_V8_RUNTIME_FLAGS"]
if (runtimeFlags !== undefined) V8.setFlagsFromString(runtimeFlags)

const config: ChildConfig = JSON.parse(process.env["BENCH_CHILD"] ?? "{}")

/** The process' memory now, V8 heap spaces included (a few microseconds). */
const sample = (): MemorySample => {
  const memory = process.memoryUsage()
  return {
    at: performance.now(),
    rss: memory.rss,
    heapUsed: memory.heapUsed,
    heapTotal: memory.heapTotal,
    external: memory.external,
    arrayBuffers: memory.arrayBuffers,
    mallocedMemory: V8.getHeapStatistics().malloced_memory,
    spaces: V8.getHeapSpaceStatistics().map((space) => ({
      name: space.space_name,
      size: space.space_size,
      used: space.space_used_size
    }))
  }
}

// RSS sampled often enough to see the peak of a burst, cheaply (one read of the process' RSS);
// a full sample only when the peak rises, so that the report can say what the peak was made of.
let atPeak = sample()
let peakRss = atPeak.rss
const samplePeak = (rss: number) => {
  if (rss <= peakRss) return
  atPeak = sample()
  peakRss = Math.max(rss, atPeak.rss)
}
const sampler = setInterval(() => samplePeak(process.memoryUsage.rss()), 20)
/** A coarser timeline (every 250 ms) for diagnostics, bounded. */
let timeline: Array<MemorySample> = []
const timelineSampler = setInterval(() => {
  if (timeline.length < 4000) timeline.push(sample())
}, 250)
const resetPeak = () => {
  atPeak = sample()
  peakRss = atPeak.rss
  timeline = []
}

const mark = (): Mark => {
  const cpu = process.cpuUsage()
  const memory = process.memoryUsage()
  samplePeak(memory.rss)
  return {
    userUs: cpu.user,
    systemUs: cpu.system,
    rss: memory.rss,
    peakRss,
    heapUsed: memory.heapUsed,
    heapTotal: memory.heapTotal,
    external: memory.external,
    arrayBuffers: memory.arrayBuffers,
    atPeak
  }
}

/** Aurora's counters, read from Effect's process-wide metric registry (and the received count beside it). */
const counters: Effect.Effect<Counters> = Effect.map(Metric.snapshot, (pairs) => {
  const sum = (name: string, tag?: readonly [string, string]) =>
    pairs
      .filter((pair) => pair.metricKey.name === name)
      .filter((pair) => tag === undefined || pair.metricKey.tags.some((t) => t.key === tag[0] && t.value === tag[1]))
      .reduce((total, pair) => total + (MetricState.isCounterState(pair.metricState) ? Number(pair.metricState.count) : 0), 0)
  return {
    // A plain count rendered beside the registry (src/services/health/MessagesReceived.ts).
    received: messagesReceived(),
    enqueued: sum("aurora_events_enqueued_total"),
    rejected: sum("aurora_events_rejected_total"),
    dispatched: sum("aurora_events_dispatched_total"),
    succeeded: sum("aurora_runs_total", ["outcome", "success"])
  }
})

// BENCH_OPS=1: the Effect runtime's operations and fibers, counted (see ./OpCounter.ts).
const opCounter = process.env["BENCH_OPS"] === "1" ? new OpCounter() : undefined

const startAurora = Effect.gen(function*() {
  const startedAt = performance.now()
  const provider = ConfigProvider.fromMap(
    new Map(Object.entries({
      DISCORD_TOKEN: config.discordToken,
      DISCORD_API_URL: config.discordApiUrl,
      LETTA_BASE_URL: config.lettaUrl,
      AURORA_DATA_DIR: config.dataDir,
      AURORA_SHUTDOWN_GRACE: "2 seconds"
    }))
  )
  const live = AppLive.pipe(
    Layer.provide(Layer.setConfigProvider(provider)),
    Layer.provide(Logger.minimumLogLevel(LogLevel.Error))
  )
  const context = yield* Layer.build(
    opCounter === undefined
      ? live
      : live.pipe(Layer.provide(Layer.merge(Supervisor.addSupervisor(opCounter), RuntimeFlags.enableOpSupervision)))
  )
  const startToReadyMs = performance.now() - startedAt
  const settings = Context.get(context, SettingsStore)
  for (const [guildId, agentId] of Object.entries(config.agents)) {
    yield* settings.enable(guildId, agentId)
    if (config.ratelimit !== undefined) yield* settings.setSetting(guildId, "ratelimit", config.ratelimit)
    if (process.env["BENCH_NO_TYPING"] === "1") yield* settings.setSetting(guildId, "typing", false)
    if (config.queuesize !== undefined) yield* settings.setSetting(guildId, "queuesize", config.queuesize)
    if (config.conversations !== undefined) yield* settings.setSetting(guildId, "conversations", config.conversations)
    if (config.parallel !== undefined) yield* settings.setSetting(guildId, "parallel", config.parallel)
  }
  return startToReadyMs
})

const startBot = config.bot === "aurora"
  ? startAurora
  : Effect.map(startFloor(config), (floor) => floor.startToReadyMs)

/**
 * The window profiler (profileStart/profileStop, bench/overhead.ts under BENCH_WINDOW_PROFILE):
 * connected only then (an inspector session is not free), sampling only between the two.
 */
const profiler = new Inspector.Session()
if (process.env["BENCH_WINDOW_PROFILE"] !== undefined) profiler.connect()

const program = Effect.gen(function*() {
  const stop = yield* Deferred.make<void>()
  const startToReadyMs = yield* startBot
  process.on("message", (raw: ParentRequest) => {
    switch (raw.cmd) {
      case "mark":
        return send({ type: "reply", id: raw.id, mark: mark() })
      case "resetPeak":
        resetPeak()
        return send({ type: "reply", id: raw.id })
      case "gc":
        globalThis.gc?.()
        return send({ type: "reply", id: raw.id, mark: mark() })
      case "counters":
        return void Effect.runPromise(counters).then((c) => send({ type: "reply", id: raw.id, counters: c }))
      case "heapSnapshot":
        V8.writeHeapSnapshot(raw.path)
        return send({ type: "reply", id: raw.id, mark: mark() })
      case "timeline":
        return send({ type: "reply", id: raw.id, timeline })
      case "profileStart":
        return profiler.post(
          "Profiler.enable",
          () => profiler.post("Profiler.start", () => send({ type: "reply", id: raw.id, mark: mark() }))
        )
      case "profileStop":
        return profiler.post("Profiler.stop", (error, result) => {
          if (error === null) Fs.writeFileSync(raw.path, JSON.stringify(result.profile))
          send({ type: "reply", id: raw.id, mark: mark() })
        })
      case "stop":
        send({ type: "reply", id: raw.id })
        return Deferred.unsafeDone(stop, Exit.void)
    }
  })
  // The parent died or closed the channel: nothing is left to measure.
  process.on("disconnect", () => Deferred.unsafeDone(stop, Exit.void))
  send({ type: "ready", startToReadyMs, sinceProcessStartMs: performance.now() })
  yield* Deferred.await(stop)
})

/**
 * BENCH_ALLOC_PROFILE=<dir>: a sampling profile of everything the Aurora child allocates (objects
 * collected since included), written to <dir> when it stops: where allocation, hence GC, comes from.
 */
const allocationProfileDir = config.bot === "aurora" ? process.env["BENCH_ALLOC_PROFILE"] : undefined
const inspector = allocationProfileDir === undefined ? undefined : new Inspector.Session()
if (inspector !== undefined) {
  inspector.connect()
  inspector.post("HeapProfiler.startSampling", {
    samplingInterval: 16384,
    includeObjectsCollectedByMajorGC: true,
    includeObjectsCollectedByMinorGC: true
  })
}
const writeAllocationProfile = () =>
  new Promise<void>((resolve) => {
    if (inspector === undefined || allocationProfileDir === undefined) return resolve()
    inspector.post("HeapProfiler.stopSampling", (error, result) => {
      if (error === null) {
        Fs.writeFileSync(`${allocationProfileDir}/aurora-${process.pid}.heapprofile`, JSON.stringify(result.profile))
      }
      resolve()
    })
  })

Effect.runPromiseExit(Effect.scoped(program)).then(async (exit) => {
  await writeAllocationProfile()
  if (process.env["BENCH_DEBUG"]) {
    process.stderr.write(`child ${config.bot}: scope closed at ${performance.now().toFixed(0)} ms\n`)
  }
  clearInterval(sampler)
  clearInterval(timelineSampler)
  if (opCounter !== undefined) process.stderr.write(opCounter.report())
  if (Exit.isFailure(exit)) {
    send({ type: "failed", reason: String(exit.cause) })
    process.exitCode = 1
  }
  // Like NodeRuntime.runMain: once the scope is closed the process is done, even if a keep-alive
  // socket of an HTTP pool is still referenced.
  process.exit()
})
