/**
 * Metrics that are readings, not counts: taken when `/metrics` is scraped and rendered beside
 * Effect's registry, never stored in it (so nothing here can go stale or leave a series behind).
 *
 * - The process metrics Prometheus' client libraries export by default, as far as Node's own
 *   `process` API tells them: `process_cpu_user_seconds_total`, `process_cpu_system_seconds_total`,
 *   `process_cpu_seconds_total` (counters, seconds of CPU), `process_resident_memory_bytes`,
 *   `process_start_time_seconds` (Unix time), `nodejs_heap_size_total_bytes`,
 *   `nodejs_heap_size_used_bytes`, `nodejs_external_memory_bytes` (gauges) and
 *   `nodejs_version_info{version,major,minor,patch}` (1). Open file descriptors and virtual memory
 *   need /proc and are left out.
 * - `aurora_build_info{version}` (1), the version from package.json.
 * - Each gateway shard: `aurora_gateway_shard_up{shard}` (1 ready, 0 not) and
 *   `aurora_gateway_ping_seconds{shard}` (the last heartbeat's round trip; NaN before the first).
 */
import { readFileSync } from "node:fs"
import { Effect, Either, MetricKey, MetricPair, MetricState, Schema } from "effect"
import type { ShardHealth } from "../discord/Shards.js"

type Pair = MetricPair.MetricPair.Untyped

const counter = (name: string, description: string, value: number): Pair =>
  MetricPair.unsafeMake(MetricKey.counter(name, { description }), MetricState.counter(value))

const gauge = (
  name: string,
  description: string,
  value: number,
  labels: Readonly<Record<string, string>> = {}
): Pair =>
  MetricPair.unsafeMake(
    Object.entries(labels).reduce<MetricKey.MetricKey.Gauge<number>>(
      (key, [label, labelValue]) => MetricKey.tagged(key, label, labelValue),
      MetricKey.gauge(name, { description })
    ),
    MetricState.gauge(value)
  )

/** Microseconds, as `process.cpuUsage()` counts them, in seconds. */
const seconds = (micros: number): number => micros / 1e6

/** The process metrics, read now. */
export const processMetrics: Effect.Effect<ReadonlyArray<Pair>> = Effect.sync(() => {
  const cpu = process.cpuUsage()
  const memory = process.memoryUsage()
  const [major = "", minor = "", patch = ""] = process.versions.node.split(".")
  return [
    counter("process_cpu_user_seconds_total", "User CPU time spent by the process, in seconds.", seconds(cpu.user)),
    counter("process_cpu_system_seconds_total", "System CPU time spent by the process, in seconds.", seconds(cpu.system)),
    counter(
      "process_cpu_seconds_total",
      "User and system CPU time spent by the process, in seconds.",
      seconds(cpu.user + cpu.system)
    ),
    gauge("process_resident_memory_bytes", "Resident memory size, in bytes.", memory.rss),
    gauge(
      "process_start_time_seconds",
      "Start time of the process since the Unix epoch, in seconds.",
      performance.timeOrigin / 1000
    ),
    gauge("nodejs_heap_size_total_bytes", "V8 heap size, in bytes.", memory.heapTotal),
    gauge("nodejs_heap_size_used_bytes", "V8 heap in use, in bytes.", memory.heapUsed),
    gauge("nodejs_external_memory_bytes", "Memory of C++ objects bound to JavaScript objects, in bytes.", memory.external),
    gauge("nodejs_version_info", "The Node.js version (always 1).", 1, {
      version: process.version,
      major,
      minor,
      patch
    })
  ]
})

const PackageVersion = Schema.parseJson(Schema.Struct({ version: Schema.String }))

/**
 * package.json's version, read once. Read from disk rather than imported: the build compiles
 * only `src/` (its `rootDir`), and package.json sits beside `src/` and `dist/` alike, three
 * directories above this module in both.
 */
const version: string = Either.match(
  Either.try(() => readFileSync(new URL("../../../package.json", import.meta.url), "utf8")).pipe(
    Either.flatMap((text) => Schema.decodeUnknownEither(PackageVersion)(text))
  ),
  { onLeft: () => "unknown", onRight: (pkg) => pkg.version }
)

/** `aurora_build_info{version}`. */
export const buildInfo: Pair = gauge("aurora_build_info", "Aurora's version (always 1).", 1, { version })

/** The gateway shards' gauges. */
export const shardMetrics = (shards: ReadonlyArray<ShardHealth>): ReadonlyArray<Pair> =>
  shards.flatMap((shard) => [
    gauge(
      "aurora_gateway_shard_up",
      "1 when the Discord gateway shard is ready, 0 when it is not.",
      shard.status === "ready" ? 1 : 0,
      {
        shard: String(shard.id)
      }
    ),
    gauge(
      "aurora_gateway_ping_seconds",
      "Round trip of the gateway shard's last heartbeat, in seconds (NaN before the first).",
      shard.pingMs === null ? Number.NaN : shard.pingMs / 1000,
      { shard: String(shard.id) }
    )
  ])
