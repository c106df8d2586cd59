/**
 * The operator's HTTP endpoint: `GET /healthz` for orchestrators and `GET /metrics` for
 * Prometheus, on `AURORA_HTTP_HOST:AURORA_HTTP_PORT` (off when the port is unset).
 *
 * Health is about whether restarting Aurora would help: it is unhealthy (503) when the Discord
 * gateway is not ready, a gateway shard has been down for more than 60 s (a reconnect or resume
 * takes a shard down briefly; see services/discord/Shards.ts), or the database does not answer.
 * An open circuit breaker means Letta is down, which a restart does not fix, so it is reported
 * but the status stays 200. Every shard is listed with its state, ping and time down.
 */
import { createServer } from "node:http"
// Module paths, not the packages' index: @effect/platform's index also loads the OpenAPI UI
// bundles (Swagger, Scalar), ~20 MB of heap an Aurora process never uses.
import * as HttpRouter from "@effect/platform/HttpRouter"
import * as HttpServer from "@effect/platform/HttpServer"
import type * as HttpServerError from "@effect/platform/HttpServerError"
import * as HttpServerResponse from "@effect/platform/HttpServerResponse"
import * as NodeHttpServer from "@effect/platform-node/NodeHttpServer"
import { Clock, Context, Duration, Effect, Layer, Option } from "effect"
import { AuroraConfig } from "../domain/Config.js"
import { type BreakerState, breakerLabel, CircuitBreaker } from "../services/health/CircuitBreaker.js"
import { Database } from "../services/storage/Database.js"
import { DiscordGateway } from "../services/discord/DiscordGateway.js"
import { isLongDown, type ShardHealth, type ShardStatus } from "../services/discord/Shards.js"
import { EventQueue, type QueueStats } from "../services/queue/EventQueue.js"
import { messagesReceivedReading } from "../services/health/MessagesReceived.js"
import * as Metrics from "../services/health/Metrics.js"
import { buildInfo, processMetrics, shardMetrics } from "../services/health/ProcessMetrics.js"
import { exposition, exposition004ContentType } from "../services/health/Prometheus.js"

/** What health and metrics read from the rest of Aurora; tests fake it. */
export interface HealthProbeShape {
  readonly gatewayReady: Effect.Effect<boolean>
  readonly shards: Effect.Effect<ReadonlyArray<ShardHealth>>
  readonly databaseOk: Effect.Effect<boolean>
  readonly breaker: Effect.Effect<BreakerState>
  readonly queue: Effect.Effect<QueueStats>
}

export class HealthProbe extends Context.Tag("aurora/HealthProbe")<HealthProbe, HealthProbeShape>() {
  /** The probe on the live services. */
  static readonly Default: Layer.Layer<HealthProbe, never, DiscordGateway | Database | CircuitBreaker | EventQueue> = Layer
    .effect(
      HealthProbe,
      Effect.gen(function*() {
        const gateway = yield* DiscordGateway
        const database = yield* Database
        const breaker = yield* CircuitBreaker
        const queue = yield* EventQueue
        return {
          gatewayReady: gateway.isReady,
          shards: gateway.shards,
          databaseOk: database.ping,
          breaker: breaker.state,
          queue: queue.stats
        }
      })
    )
}

export type HealthPart = "gateway" | "shards" | "db"

export interface HealthReport {
  readonly status: "ok" | "unhealthy"
  readonly gateway: "ready" | "not ready"
  readonly shards: ReadonlyArray<{
    readonly id: number
    readonly status: ShardStatus
    readonly pingMs: number | null
    readonly downForSeconds: number | null
  }>
  readonly db: "ok" | "down"
  readonly breaker: "closed" | "open" | "half-open"
  readonly queue: {
    readonly pending: number
    readonly inFlight: number
    readonly oldestPendingAgeSeconds: number | null
    readonly rejected: { readonly full: number; readonly duplicate: number }
    readonly globalPaused: boolean
  }
  /** The parts that make Aurora unhealthy; empty when it is healthy. */
  readonly failing: ReadonlyArray<HealthPart>
}

/** A database that takes longer than this to answer `SELECT 1` counts as down. */
const databaseTimeout = Duration.seconds(2)

/** The health report from what the probe saw at `now` (epoch ms). */
export const healthReport = (
  seen: {
    readonly gatewayReady: boolean
    readonly shards: ReadonlyArray<ShardHealth>
    readonly databaseOk: boolean
    readonly breaker: BreakerState
    readonly queue: QueueStats
  },
  now: number
): HealthReport => {
  const failing: Array<HealthPart> = []
  if (!seen.gatewayReady) failing.push("gateway")
  if (seen.shards.some(isLongDown)) failing.push("shards")
  if (!seen.databaseOk) failing.push("db")
  let pending = 0
  let oldest: number | null = null
  for (const partition of seen.queue.partitions) {
    pending += partition.pending
    const at = partition.oldestEnqueuedAt
    if (at !== null) oldest = oldest === null ? at : Math.min(oldest, at)
  }
  const word = breakerLabel(seen.breaker).word
  return {
    status: failing.length === 0 ? "ok" : "unhealthy",
    gateway: seen.gatewayReady ? "ready" : "not ready",
    shards: seen.shards.map((shard) => ({
      id: shard.id,
      status: shard.status,
      pingMs: shard.pingMs,
      downForSeconds: shard.downForMs === null ? null : shard.downForMs / 1000
    })),
    db: seen.databaseOk ? "ok" : "down",
    breaker: word === "CLOSED" ? "closed" : word === "OPEN" ? "open" : "half-open",
    queue: {
      pending,
      inFlight: seen.queue.inFlight.length,
      oldestPendingAgeSeconds: oldest === null ? null : Math.max(0, now - oldest) / 1000,
      rejected: seen.queue.rejected,
      globalPaused: seen.queue.globalPaused
    },
    failing
  }
}

const noStore = { "cache-control": "no-store" }

const healthz = Effect.gen(function*() {
  const probe = yield* HealthProbe
  const seen = yield* Effect.all({
    gatewayReady: probe.gatewayReady,
    shards: probe.shards,
    databaseOk: probe.databaseOk.pipe(
      Effect.timeoutTo({ duration: databaseTimeout, onTimeout: () => false, onSuccess: (ok) => ok })
    ),
    breaker: probe.breaker,
    queue: probe.queue
  }, { concurrency: "unbounded" })
  const report = healthReport(seen, yield* Clock.currentTimeMillis)
  if (report.status !== "ok") {
    // Debug only: orchestrators poll every few seconds, and the gateway and database log their
    // own failures once.
    yield* Effect.logDebug(`health check failing: ${report.failing.join(", ")}`)
  }
  return HttpServerResponse.unsafeJson(report, { status: report.status === "ok" ? 200 : 503, headers: noStore })
})

const metrics = Effect.gen(function*() {
  const probe = yield* HealthProbe
  // The gauges describe the present: set them right before the registry is read.
  yield* Metrics.sampleQueue(yield* probe.queue, yield* Clock.currentTimeMillis)
  yield* Metrics.sampleBreaker(yield* probe.breaker)
  const readings = [
    buildInfo,
    messagesReceivedReading(),
    ...(yield* processMetrics),
    ...shardMetrics(yield* probe.shards)
  ]
  return HttpServerResponse.text(yield* exposition(readings), { contentType: exposition004ContentType, headers: noStore })
})

const app = HttpRouter.empty.pipe(
  HttpRouter.get("/healthz", healthz),
  HttpRouter.get("/metrics", metrics),
  Effect.catchTag("RouteNotFound", () => Effect.succeed(HttpServerResponse.text("not found\n", { status: 404 })))
)

export interface HttpOptions {
  /** 0 picks a free port (tests). */
  readonly port: number
  readonly host: string
}

/**
 * The endpoint on `host:port`, serving until the layer's scope closes. Its output is the running
 * `HttpServer`, whose `address` tells the port actually bound.
 */
export const layer = (options: HttpOptions): Layer.Layer<HttpServer.HttpServer, HttpServerError.ServeError, HealthProbe> =>
  Layer.mergeAll(
    HttpServer.serve(app),
    Layer.effectDiscard(
      Effect.zipRight(
        Metrics.registerAll,
        HttpServer.addressFormattedWith((address) =>
          Effect.logInfo(`health and metrics endpoint listening on ${address} (GET /healthz, GET /metrics)`)
        )
      )
    )
  ).pipe(Layer.provideMerge(NodeHttpServer.layer(() => createServer(), { port: options.port, host: options.host })))

/** The endpoint as configured (AURORA_HTTP_PORT, AURORA_HTTP_HOST); `Layer.empty` when the port is unset. */
export const HttpLive: Layer.Layer<
  never,
  HttpServerError.ServeError,
  AuroraConfig | DiscordGateway | Database | CircuitBreaker | EventQueue
> = Layer.unwrapEffect(
  Effect.map(AuroraConfig, (config) =>
    Option.match(config.http, {
      onNone: () => Layer.empty,
      onSome: (options) => Layer.discard(layer(options)).pipe(Layer.provide(HealthProbe.Default))
    }))
)
