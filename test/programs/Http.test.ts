import { HttpServer } from "@effect/platform"
import { describe, expect, it } from "@effect/vitest"
import { ConfigProvider, Context, Effect, Layer, Option, Ref } from "effect"
import { Partition } from "../../src/domain/Event.js"
import { httpEndpoint } from "../../src/domain/Config.js"
import { HealthProbe, healthReport, layer as httpLayer } from "../../src/programs/Http.js"
import type { ShardHealth } from "../../src/services/discord/Shards.js"
import { type BreakerState as Breaker, BreakerState } from "../../src/services/health/CircuitBreaker.js"
import type { QueueStats } from "../../src/services/queue/EventQueue.js"
import { countMessageReceived } from "../../src/services/health/MessagesReceived.js"
import * as Metrics from "../../src/services/health/Metrics.js"

interface ProbeState {
  readonly gatewayReady: boolean
  readonly shards: ReadonlyArray<ShardHealth>
  readonly databaseOk: boolean
  readonly breaker: Breaker
}

const queueStats = (now: number): QueueStats => ({
  partitions: [
    {
      partition: Partition.guild("100"),
      key: "guild:100",
      pending: 3,
      inFlight: 1,
      capacity: 50,
      paused: false,
      oldestEnqueuedAt: now - 30_000,
      channels: [{ channelId: "200", pending: 3 }]
    }
  ],
  inFlight: [{
    messageId: "1",
    agentId: "agent-1",
    channelId: "201",
    partition: "guild:100",
    startedAt: now - 1_000,
    conversationMode: "channel",
    lane: "guild:100/201"
  }],
  agents: [{ agentId: "agent-1", inFlight: 1 }],
  rejected: { full: 4, duplicate: 1 },
  globalPaused: false,
  dispatchStopped: false,
  dedup: { size: 5, maxSize: 10_000 }
})

const twoShards: ReadonlyArray<ShardHealth> = [
  { id: 0, status: "ready", pingMs: 42, downForMs: null },
  { id: 1, status: "ready", pingMs: null, downForMs: null }
]

/** Starts the endpoint on a free loopback port with a probe the test controls. */
const startServer = Effect.gen(function*() {
  const probeState = yield* Ref.make<ProbeState>({
    gatewayReady: true,
    shards: twoShards,
    databaseOk: true,
    breaker: BreakerState.Closed({ failures: 0 })
  })
  const probe = Layer.succeed(HealthProbe, {
    gatewayReady: Effect.map(Ref.get(probeState), (s) => s.gatewayReady),
    shards: Effect.map(Ref.get(probeState), (s) => s.shards),
    databaseOk: Effect.map(Ref.get(probeState), (s) => s.databaseOk),
    breaker: Effect.map(Ref.get(probeState), (s) => s.breaker),
    queue: Effect.sync(() => queueStats(Date.now()))
  })
  const context = yield* Layer.build(httpLayer({ port: 0, host: "127.0.0.1" }).pipe(Layer.provide(probe)))
  const address = Context.get(context, HttpServer.HttpServer).address
  if (address._tag !== "TcpAddress") throw new Error("expected a TCP address")
  expect(address.hostname).toBe("127.0.0.1")
  const get = (path: string, init?: RequestInit) =>
    Effect.promise(async () => {
      const response = await fetch(`http://127.0.0.1:${address.port}${path}`, init)
      return { status: response.status, contentType: response.headers.get("content-type"), body: await response.text() }
    })
  const set = (patch: Partial<ProbeState>) => Ref.update(probeState, (s) => ({ ...s, ...patch }))
  return { get, set } as const
})

/** The value of one sample line, e.g. `aurora_messages_received_total 3`. */
const sampleValue = (exposition: string, series: string): number => {
  const line = exposition.split("\n").find((l) => l.startsWith(`${series} `))
  if (line === undefined) throw new Error(`no sample ${series} in\n${exposition}`)
  return Number(line.slice(series.length + 1))
}

describe("HTTP endpoint", () => {
  it.scopedLive("GET /healthz is 200 with every part when the gateway is ready and the database answers", () =>
    Effect.gen(function*() {
      const server = yield* startServer
      const response = yield* server.get("/healthz")
      expect(response.status).toBe(200)
      expect(response.contentType).toContain("application/json")
      const body: unknown = JSON.parse(response.body)
      expect(body).toMatchObject({
        status: "ok",
        gateway: "ready",
        db: "ok",
        breaker: "closed",
        shards: [
          { id: 0, status: "ready", pingMs: 42, downForSeconds: null },
          { id: 1, status: "ready", pingMs: null, downForSeconds: null }
        ],
        queue: { pending: 3, inFlight: 1, rejected: { full: 4, duplicate: 1 }, globalPaused: false },
        failing: []
      })
      expect(body).toHaveProperty("queue.oldestPendingAgeSeconds")
    }))

  it.scopedLive("GET /healthz is 503 naming the failing part; an open breaker is reported but stays 200", () =>
    Effect.gen(function*() {
      const server = yield* startServer

      yield* server.set({ gatewayReady: false })
      const gatewayDown = yield* server.get("/healthz")
      expect(gatewayDown.status).toBe(503)
      expect(JSON.parse(gatewayDown.body)).toMatchObject({
        status: "unhealthy",
        gateway: "not ready",
        db: "ok",
        failing: ["gateway"]
      })

      yield* server.set({ gatewayReady: true, databaseOk: false })
      const dbDown = yield* server.get("/healthz")
      expect(dbDown.status).toBe(503)
      expect(JSON.parse(dbDown.body)).toMatchObject({ status: "unhealthy", gateway: "ready", db: "down", failing: ["db"] })

      yield* server.set({ gatewayReady: false, databaseOk: false })
      expect(JSON.parse((yield* server.get("/healthz")).body)).toMatchObject({ failing: ["gateway", "db"] })

      yield* server.set({ gatewayReady: true, databaseOk: true, breaker: BreakerState.Open({ since: Date.now() }) })
      const breakerOpen = yield* server.get("/healthz")
      expect(breakerOpen.status).toBe(200)
      expect(JSON.parse(breakerOpen.body)).toMatchObject({ status: "ok", breaker: "open", failing: [] })

      yield* server.set({ breaker: BreakerState.HalfOpen({ trialsInFlight: 1 }) })
      expect(JSON.parse((yield* server.get("/healthz")).body)).toMatchObject({ status: "ok", breaker: "half-open" })

      // A shard down for more than 60 s: 503, with the shard's state and time down.
      yield* server.set({
        breaker: BreakerState.Closed({ failures: 0 }),
        shards: [twoShards[0]!, { id: 1, status: "reconnecting", pingMs: null, downForMs: 61_000 }]
      })
      const shardDown = yield* server.get("/healthz")
      expect(shardDown.status).toBe(503)
      expect(JSON.parse(shardDown.body)).toMatchObject({
        status: "unhealthy",
        gateway: "ready",
        shards: [{ id: 0, status: "ready" }, { id: 1, status: "reconnecting", pingMs: null, downForSeconds: 61 }],
        failing: ["shards"]
      })
    }))

  it("a shard down for up to 60 s is a reconnect, not a failure; past 60 s it is", () => {
    const seen = (downForMs: number | null) => ({
      gatewayReady: true,
      shards: [
        { id: 0, status: "ready" as const, pingMs: 40, downForMs: null },
        { id: 1, status: downForMs === null ? "ready" as const : "resuming" as const, pingMs: null, downForMs }
      ],
      databaseOk: true,
      breaker: BreakerState.Closed({ failures: 0 }),
      queue: queueStats(0)
    })
    expect(healthReport(seen(null), 0)).toMatchObject({ status: "ok", failing: [] })
    expect(healthReport(seen(0), 0)).toMatchObject({ status: "ok", failing: [] })
    expect(healthReport(seen(60_000), 0)).toMatchObject({ status: "ok", failing: [] })
    expect(healthReport(seen(60_001), 0)).toMatchObject({ status: "unhealthy", failing: ["shards"] })
  })

  it.scopedLive("GET /metrics serves the Prometheus exposition, and it follows the counters", () =>
    Effect.gen(function*() {
      const server = yield* startServer
      const first = yield* server.get("/metrics")
      expect(first.status).toBe(200)
      expect(first.contentType).toContain("text/plain")
      expect(first.contentType).toContain("version=0.0.4")
      expect(first.body).toContain("# TYPE aurora_messages_received_total counter")
      expect(first.body).toContain("# TYPE aurora_run_duration_seconds histogram")
      expect(first.body).toContain("aurora_run_duration_seconds_bucket{le=\"+Inf\"}")
      expect(sampleValue(first.body, "aurora_queue_pending_events{scope=\"guild\"}")).toBe(3)
      expect(sampleValue(first.body, "aurora_runs_in_flight{agent=\"agent-1\"}")).toBe(1)
      expect(sampleValue(first.body, "aurora_queue_oldest_pending_age_seconds{scope=\"guild\"}")).toBeGreaterThanOrEqual(30)
      const breakerStates = (body: string) =>
        ["closed", "half_open", "open"].map((state) => sampleValue(body, `aurora_circuit_breaker_state{state="${state}"}`))
      expect(breakerStates(first.body)).toEqual([1, 0, 0])
      expect(first.body).toContain("# TYPE aurora_circuit_breaker_state gauge")
      expect(first.body).not.toMatch(/^aurora_circuit_breaker_state /m)
      expect(sampleValue(first.body, "aurora_gateway_shard_up{shard=\"0\"}")).toBe(1)
      expect(sampleValue(first.body, "aurora_gateway_shard_up{shard=\"1\"}")).toBe(1)
      expect(sampleValue(first.body, "aurora_gateway_ping_seconds{shard=\"0\"}")).toBe(0.042)
      expect(sampleValue(first.body, "aurora_gateway_ping_seconds{shard=\"1\"}")).toBeNaN()
      // Readings taken at scrape time, beside the registry: the process and the build.
      expect(first.body).toContain("# TYPE process_cpu_seconds_total counter")
      expect(sampleValue(first.body, "process_resident_memory_bytes")).toBeGreaterThan(0)
      expect(first.body).toMatch(/^aurora_build_info\{version="\d+\.\d+\.\d+[^"]*"\} 1$/m)
      const received = sampleValue(first.body, "aurora_messages_received_total")
      const mentions = sampleValue(first.body, "aurora_triggers_total{kind=\"mention\"}")

      countMessageReceived()
      yield* Metrics.triggered("mention")
      yield* server.set({
        breaker: BreakerState.Open({ since: Date.now() }),
        shards: [twoShards[0]!, { id: 1, status: "resuming", pingMs: null, downForMs: 1_000 }]
      })
      const second = yield* server.get("/metrics")
      expect(sampleValue(second.body, "aurora_messages_received_total")).toBe(received + 1)
      expect(sampleValue(second.body, "aurora_triggers_total{kind=\"mention\"}")).toBe(mentions + 1)
      expect(breakerStates(second.body)).toEqual([0, 0, 1])
      expect(sampleValue(second.body, "aurora_gateway_shard_up{shard=\"1\"}")).toBe(0)
      yield* server.set({ breaker: BreakerState.HalfOpen({ trialsInFlight: 1 }) })
      expect(breakerStates((yield* server.get("/metrics")).body)).toEqual([0, 1, 0])
    }))

  it.scopedLive("anything else is 404", () =>
    Effect.gen(function*() {
      const server = yield* startServer
      expect((yield* server.get("/")).status).toBe(404)
      expect((yield* server.get("/health")).status).toBe(404)
      expect((yield* server.get("/healthz", { method: "POST" })).status).toBe(404)
    }))

  it.effect("AURORA_HTTP_PORT unset means no endpoint; AURORA_HTTP_HOST defaults to loopback", () =>
    Effect.gen(function*() {
      const read = (env: Record<string, string>) =>
        Effect.withConfigProvider(httpEndpoint, ConfigProvider.fromMap(new Map(Object.entries(env))))
      expect(yield* read({})).toEqual(Option.none())
      expect(yield* read({ AURORA_HTTP_PORT: "9464" })).toEqual(Option.some({ port: 9464, host: "127.0.0.1" }))
      expect(yield* read({ AURORA_HTTP_PORT: "9464", AURORA_HTTP_HOST: "0.0.0.0" })).toEqual(
        Option.some({ port: 9464, host: "0.0.0.0" })
      )
      const invalid = yield* Effect.either(read({ AURORA_HTTP_PORT: "http" }))
      expect(invalid._tag).toBe("Left")
    }))
})
