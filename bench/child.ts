/**
 * The bot under test, in its own process (spawned by bench/BotProcess.ts): Aurora's live layer
 * graph or the floor bot, configured from BENCH_CHILD, answering the parent's requests for CPU,
 * memory and counter snapshots over the IPC channel. Exits when told to stop or when the parent
 * goes away.
 */
import { ConfigProvider, Context, Deferred, Effect, Exit, Layer, Logger, LogLevel, Metric, MetricState } from "effect"
import { AppLive } from "../src/layers/Live.js"
import { SettingsStore } from "../src/services/SettingsStore.js"
import { startFloor } from "./floor.js"
import type { ChildConfig, ChildMessage, Counters, Mark, ParentRequest } from "./protocol.js"

const send = (message: ChildMessage) => process.send?.(message)

const config: ChildConfig = JSON.parse(process.env["BENCH_CHILD"] ?? "{}")

// RSS sampled often enough to see the peak of a burst, cheaply (one read of the process' RSS).
let peakRss = process.memoryUsage.rss()
const sampler = setInterval(() => {
  peakRss = Math.max(peakRss, process.memoryUsage.rss())
}, 20)

const mark = (): Mark => {
  const cpu = process.cpuUsage()
  const memory = process.memoryUsage()
  peakRss = Math.max(peakRss, memory.rss)
  return {
    userUs: cpu.user,
    systemUs: cpu.system,
    rss: memory.rss,
    peakRss,
    heapUsed: memory.heapUsed,
    heapTotal: memory.heapTotal
  }
}

/** Aurora's counters, read from Effect's process-wide metric registry. */
const counters: Effect.Effect<Counters> = Effect.map(Metric.snapshot, (pairs) => {
  const sum = (name: string, tag?: readonly [string, string]) =>
    pairs
      .filter((pair) => pair.metricKey.name === name)
      .filter((pair) => tag === undefined || pair.metricKey.tags.some((t) => t.key === tag[0] && t.value === tag[1]))
      .reduce((total, pair) => total + (MetricState.isCounterState(pair.metricState) ? Number(pair.metricState.count) : 0), 0)
  return {
    received: sum("aurora_messages_received_total"),
    enqueued: sum("aurora_events_enqueued_total"),
    rejected: sum("aurora_events_rejected_total"),
    dispatched: sum("aurora_events_dispatched_total"),
    succeeded: sum("aurora_runs_total", ["outcome", "success"])
  }
})

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
  const context = yield* Layer.build(
    AppLive.pipe(Layer.provide(Layer.setConfigProvider(provider)), Layer.provide(Logger.minimumLogLevel(LogLevel.Error)))
  )
  const startToReadyMs = performance.now() - startedAt
  const settings = Context.get(context, SettingsStore)
  for (const [guildId, agentId] of Object.entries(config.agents)) {
    yield* settings.enable(guildId, agentId)
    if (config.ratelimit !== undefined) yield* settings.setSetting(guildId, "ratelimit", config.ratelimit)
    if (config.queuesize !== undefined) yield* settings.setSetting(guildId, "queuesize", config.queuesize)
  }
  return startToReadyMs
})

const startBot = config.bot === "aurora"
  ? startAurora
  : Effect.map(startFloor(config), (floor) => floor.startToReadyMs)

const program = Effect.gen(function*() {
  const stop = yield* Deferred.make<void>()
  const startToReadyMs = yield* startBot
  process.on("message", (raw: ParentRequest) => {
    switch (raw.cmd) {
      case "mark":
        return send({ type: "reply", id: raw.id, mark: mark() })
      case "resetPeak":
        peakRss = process.memoryUsage.rss()
        return send({ type: "reply", id: raw.id })
      case "gc":
        globalThis.gc?.()
        return send({ type: "reply", id: raw.id, mark: mark() })
      case "counters":
        return void Effect.runPromise(counters).then((c) => send({ type: "reply", id: raw.id, counters: c }))
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

Effect.runPromiseExit(Effect.scoped(program)).then((exit) => {
  if (process.env["BENCH_DEBUG"]) process.stderr.write(`child ${config.bot}: scope closed at ${performance.now().toFixed(0)} ms\n`)
  clearInterval(sampler)
  if (Exit.isFailure(exit)) {
    send({ type: "failed", reason: String(exit.cause) })
    process.exitCode = 1
  }
  // Like NodeRuntime.runMain: once the scope is closed the process is done, even if a keep-alive
  // socket of an HTTP pool is still referenced.
  process.exit()
})
