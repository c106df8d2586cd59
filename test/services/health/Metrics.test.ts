import { readFileSync } from "node:fs"
import { describe, expect, it } from "@effect/vitest"
import { Duration, Effect, Metric, MetricBoundaries, MetricKey, MetricPair, MetricState, Option } from "effect"
import type { RunReport } from "../../../src/domain/AgentRun.js"
import { Partition } from "../../../src/domain/Event.js"
import { LettaTimeout, RunFailed } from "../../../src/domain/LettaErrors.js"
import { BreakerState } from "../../../src/services/health/CircuitBreaker.js"
import type { QueueStats } from "../../../src/services/queue/EventQueue.js"
import * as Metrics from "../../../src/services/health/Metrics.js"
import { buildInfo, processMetrics, shardMetrics } from "../../../src/services/health/ProcessMetrics.js"
import { escapeLabelValue, formatValue, renderPrometheus } from "../../../src/services/health/Prometheus.js"

/** The current value of a counter or gauge series in the process registry (0 when absent). */
const valueOf = (name: string, tags: Record<string, string> = {}) =>
  Effect.map(Metric.snapshot, (pairs) => {
    const pair = pairs.find((p) =>
      p.metricKey.name === name &&
      p.metricKey.tags.length === Object.keys(tags).length &&
      p.metricKey.tags.every((t) => tags[t.key] === t.value)
    )
    if (pair === undefined) return 0
    const state = pair.metricState
    if (MetricState.isCounterState(state)) return Number(state.count)
    if (MetricState.isGaugeState(state)) return Number(state.value)
    if (MetricState.isHistogramState(state)) return state.count
    throw new Error(`unexpected state for ${name}`)
  })

const durationSum = Effect.map(Metric.snapshot, (pairs) => {
  const state = pairs.find((p) => p.metricKey.name === "aurora_run_duration_seconds")?.metricState
  return state !== undefined && MetricState.isHistogramState(state) ? state.sum : 0
})

describe("Prometheus rendering", () => {
  it("renders counters with labels, gauges and histograms exactly", () => {
    const requests = MetricKey.counter("aurora_test_requests_total", { description: "Requests served." })
    const histogramKey = MetricKey.histogram(
      "aurora_test_latency_seconds",
      MetricBoundaries.fromIterable([0.5, 1]),
      "Latency."
    )
    const text = renderPrometheus([
      MetricPair.unsafeMake(MetricKey.tagged(requests, "kind", "reply"), MetricState.counter(2)),
      MetricPair.unsafeMake(MetricKey.tagged(requests, "kind", "mention"), MetricState.counter(5)),
      MetricPair.unsafeMake(MetricKey.gauge("aurora_test_depth"), MetricState.gauge(1.5)),
      MetricPair.unsafeMake(
        MetricKey.tagged(histogramKey, "agent", "a1"),
        MetricState.histogram({
          buckets: [[0.5, 1], [1, 3], [Number.POSITIVE_INFINITY, 4]],
          count: 4,
          min: 0.2,
          max: 7,
          sum: 9.25
        })
      )
    ])
    expect(text).toBe(
      [
        "# TYPE aurora_test_depth gauge",
        "aurora_test_depth 1.5",
        "# HELP aurora_test_latency_seconds Latency.",
        "# TYPE aurora_test_latency_seconds histogram",
        "aurora_test_latency_seconds_bucket{agent=\"a1\",le=\"0.5\"} 1",
        "aurora_test_latency_seconds_bucket{agent=\"a1\",le=\"1\"} 3",
        "aurora_test_latency_seconds_bucket{agent=\"a1\",le=\"+Inf\"} 4",
        "aurora_test_latency_seconds_sum{agent=\"a1\"} 9.25",
        "aurora_test_latency_seconds_count{agent=\"a1\"} 4",
        "# HELP aurora_test_requests_total Requests served.",
        "# TYPE aurora_test_requests_total counter",
        "aurora_test_requests_total{kind=\"mention\"} 5",
        "aurora_test_requests_total{kind=\"reply\"} 2",
        ""
      ].join("\n")
    )
  })

  it("escapes label values and help text, sanitizes names, adds a missing +Inf bucket", () => {
    const key = MetricKey.tagged(
      MetricKey.counter("aurora.odd-name_total", { description: "Line one\nback\\slash \"quoted\"" }),
      "path",
      "C:\\dir \"x\"\nnext"
    )
    const histogram = MetricKey.histogram("aurora_test_h_seconds", MetricBoundaries.fromIterable([1]))
    const text = renderPrometheus([
      MetricPair.unsafeMake(key, MetricState.counter(1)),
      MetricPair.unsafeMake(histogram, MetricState.histogram({ buckets: [[1, 2]], count: 3, min: 0, max: 5, sum: 6 }))
    ])
    expect(text).toBe(
      [
        "# HELP aurora_odd_name_total Line one\\nback\\\\slash \"quoted\"",
        "# TYPE aurora_odd_name_total counter",
        "aurora_odd_name_total{path=\"C:\\\\dir \\\"x\\\"\\nnext\"} 1",
        "# TYPE aurora_test_h_seconds histogram",
        "aurora_test_h_seconds_bucket{le=\"1\"} 2",
        "aurora_test_h_seconds_bucket{le=\"+Inf\"} 3",
        "aurora_test_h_seconds_sum 6",
        "aurora_test_h_seconds_count 3",
        ""
      ].join("\n")
    )
    expect(escapeLabelValue("a\\b\"c\nd")).toBe("a\\\\b\\\"c\\nd")
    expect([formatValue(Number.NaN), formatValue(Infinity), formatValue(-Infinity), formatValue(10n), formatValue(0.25)])
      .toEqual(["NaN", "+Inf", "-Inf", "10", "0.25"])
    expect(renderPrometheus([])).toBe("")
  })

  it.effect("renders Effect's own registry: a real histogram's buckets are cumulative", () =>
    Effect.gen(function*() {
      const histogram = Metric.histogram("aurora_test_real_seconds", MetricBoundaries.fromIterable([1, 2]), "Real.")
      yield* Effect.forEach([0.5, 1.5, 1.7, 9], (v) => Metric.update(histogram, v), { discard: true })
      const pairs = yield* Metric.snapshot
      const text = renderPrometheus(pairs.filter((p) => p.metricKey.name === "aurora_test_real_seconds"))
      expect(text).toBe(
        [
          "# HELP aurora_test_real_seconds Real.",
          "# TYPE aurora_test_real_seconds histogram",
          "aurora_test_real_seconds_bucket{le=\"1\"} 1",
          "aurora_test_real_seconds_bucket{le=\"2\"} 3",
          "aurora_test_real_seconds_bucket{le=\"+Inf\"} 4",
          "aurora_test_real_seconds_sum 12.7",
          "aurora_test_real_seconds_count 4",
          ""
        ].join("\n")
      )
    }))
})

describe("Aurora metrics", () => {
  it.effect("registers every family with aurora_ names, _total counters and _seconds histograms", () =>
    Effect.gen(function*() {
      yield* Metrics.registerAll
      const pairs = (yield* Metric.snapshot).filter((p) =>
        p.metricKey.name.startsWith("aurora_") && !p.metricKey.name.startsWith("aurora_test_")
      )
      const types = new Map<string, string>()
      for (const p of pairs) {
        const s = p.metricState
        types.set(
          p.metricKey.name,
          MetricState.isCounterState(s)
            ? "counter"
            : MetricState.isGaugeState(s)
            ? "gauge"
            : MetricState.isHistogramState(s)
            ? "histogram"
            : "other"
        )
        expect(Option.isSome(p.metricKey.description)).toBe(true)
      }
      expect(Object.fromEntries([...types].sort(([a], [b]) => a.localeCompare(b)))).toEqual({
        aurora_circuit_breaker_state: "gauge",
        aurora_conversation_busy_total: "counter",
        aurora_dead_letters_total: "counter",
        aurora_error_rate_alerts_total: "counter",
        aurora_events_dispatched_total: "counter",
        aurora_events_enqueued_total: "counter",
        aurora_events_rejected_total: "counter",
        aurora_letta_tokens_total: "counter",
        aurora_queue_oldest_pending_age_seconds: "gauge",
        aurora_queue_pending_events: "gauge",
        aurora_run_duration_seconds: "histogram",
        aurora_run_first_tool_call_seconds: "histogram",
        aurora_run_retries_total: "counter",
        aurora_runs_total: "counter",
        aurora_silent_runs_total: "counter",
        aurora_triggers_total: "counter"
      })
      for (const [name, type] of types) {
        expect(name.endsWith("_total"), name).toBe(type === "counter")
      }
      // Label values known in advance are there at zero from the start.
      expect(pairs.filter((p) => p.metricKey.name === "aurora_runs_total")).toHaveLength(Metrics.runOutcomes.length)
      const text = renderPrometheus(pairs)
      expect(text).toContain("aurora_triggers_total{kind=\"reply\"} 0")
      expect(text).toContain("aurora_events_rejected_total{reason=\"full\"} 0")
      expect(text).toContain("aurora_dead_letters_total{reason=\"interrupted-after-reply\"} 0")
      for (const action of ["posted", "none", "failed"]) {
        expect(text).toContain(`aurora_silent_runs_total{action="${action}"} 0`)
      }
      expect(text).toContain("# TYPE aurora_run_duration_seconds histogram")
    }))

  it.effect("the program helpers move their series", () =>
    Effect.gen(function*() {
      const before = {
        dm: yield* valueOf("aurora_triggers_total", { kind: "dm" }),
        full: yield* valueOf("aurora_events_rejected_total", { reason: "full" }),
        enqueued: yield* valueOf("aurora_events_enqueued_total"),
        dispatched: yield* valueOf("aurora_events_dispatched_total"),
        retries: yield* valueOf("aurora_run_retries_total"),
        timeouts: yield* valueOf("aurora_runs_total", { outcome: "timeout" }),
        expired: yield* valueOf("aurora_dead_letters_total", { reason: "expired" }),
        busy: yield* valueOf("aurora_conversation_busy_total")
      }
      yield* Metrics.conversationBusy
      yield* Metrics.triggered("dm")
      yield* Metrics.rejected("full")
      yield* Metrics.enqueued
      yield* Metrics.dispatched
      yield* Metrics.retried
      yield* Metrics.deadLettered("expired")
      yield* Metrics.runFinished(
        Metrics.runOutcomeOf(
          new LettaTimeout({ agentId: "a", sideEffect: false, reason: "slow", timeout: Duration.minutes(1), phase: "stream" })
        ),
        60_000
      )
      expect({
        dm: yield* valueOf("aurora_triggers_total", { kind: "dm" }),
        full: yield* valueOf("aurora_events_rejected_total", { reason: "full" }),
        enqueued: yield* valueOf("aurora_events_enqueued_total"),
        dispatched: yield* valueOf("aurora_events_dispatched_total"),
        retries: yield* valueOf("aurora_run_retries_total"),
        timeouts: yield* valueOf("aurora_runs_total", { outcome: "timeout" }),
        expired: yield* valueOf("aurora_dead_letters_total", { reason: "expired" }),
        busy: yield* valueOf("aurora_conversation_busy_total")
      }).toEqual({
        dm: before.dm + 1,
        full: before.full + 1,
        enqueued: before.enqueued + 1,
        dispatched: before.dispatched + 1,
        retries: before.retries + 1,
        timeouts: before.timeouts + 1,
        expired: before.expired + 1,
        busy: before.busy + 1
      })
      expect(Metrics.runOutcomeOf(new RunFailed({ agentId: "a", sideEffect: false, reason: "boom" }))).toBe("run_failed")
    }))

  it.effect("a successful run counts its outcome, duration, first tool call, tools and tokens", () =>
    Effect.gen(function*() {
      const report: RunReport = {
        agentId: "agent-1",
        runId: "run-1",
        toolCalls: [
          { name: "discord_read_messages", toolCallId: "t1", argumentsSummary: "{}" },
          { name: "discord_send", toolCallId: "t2", argumentsSummary: "{}" },
          { name: "discord_send", toolCallId: "t3", argumentsSummary: "{}" },
          { name: "bad name with spaces", toolCallId: "t4", argumentsSummary: "{}" }
        ],
        toolReturns: [],
        assistantMessages: [],
        stopReason: "end_turn",
        usage: { promptTokens: 1200, completionTokens: 80, totalTokens: 1280, stepCount: 2 },
        durationMs: 2500,
        sideEffect: true,
        firstToolCallMs: 400
      }
      const read = Effect.all({
        success: valueOf("aurora_runs_total", { outcome: "success" }),
        durations: valueOf("aurora_run_duration_seconds"),
        firstTool: valueOf("aurora_run_first_tool_call_seconds"),
        send: valueOf("aurora_tool_calls_total", { tool: "discord_send", executor: "agent", status: "called" }),
        readTool: valueOf("aurora_tool_calls_total", { tool: "discord_read_messages", executor: "agent", status: "called" }),
        other: valueOf("aurora_tool_calls_total", { tool: "other", executor: "agent", status: "called" }),
        prompt: valueOf("aurora_letta_tokens_total", { kind: "prompt" }),
        completion: valueOf("aurora_letta_tokens_total", { kind: "completion" }),
        durationSum
      })
      const before = yield* read
      yield* Metrics.runSucceeded(report)
      const after = yield* read
      expect({
        success: after.success - before.success,
        durations: after.durations - before.durations,
        firstTool: after.firstTool - before.firstTool,
        send: after.send - before.send,
        readTool: after.readTool - before.readTool,
        other: after.other - before.other,
        prompt: after.prompt - before.prompt,
        completion: after.completion - before.completion,
        durationSum: after.durationSum - before.durationSum
      }).toEqual({
        success: 1,
        durations: 1,
        firstTool: 1,
        send: 2,
        readTool: 1,
        other: 1,
        prompt: 1200,
        completion: 80,
        durationSum: 2.5
      })

      // A run without tool calls does not observe the first-tool-call histogram.
      yield* Metrics.runFinished("run_failed", 100, null)
      expect(yield* valueOf("aurora_run_first_tool_call_seconds")).toBe(after.firstTool)
      expect(yield* valueOf("aurora_run_duration_seconds")).toBe(after.durations + 1)

      // 2.5 s and 0.1 s: seconds, not milliseconds.
      expect((yield* durationSum) - before.durationSum).toBeCloseTo(2.6, 6)
    }))

  it.effect("a run's end updates its series in one step with the fiber's metric labels, as one update each would", () =>
    Effect.gen(function*() {
      const tagged = { outcome: "success", test_case: "one-step" }
      const read = Effect.all({
        success: valueOf("aurora_runs_total", tagged),
        prompt: valueOf("aurora_letta_tokens_total", { kind: "prompt", test_case: "one-step" }),
        completion: valueOf("aurora_letta_tokens_total", { kind: "completion", test_case: "one-step" }),
        firstTool: valueOf("aurora_run_first_tool_call_seconds", { test_case: "one-step" }),
        untagged: valueOf("aurora_runs_total", { outcome: "success" })
      })
      const before = yield* read
      const usage = { promptTokens: 30, completionTokens: -5 }
      yield* Effect.tagMetrics(Metrics.runFinished("success", 1_000, 250, usage), "test_case", "one-step")
      yield* Effect.tagMetrics(Metrics.tokensUsed({ promptTokens: 7, completionTokens: 2 }), "test_case", "one-step")
      const after = yield* read
      expect({
        success: after.success - before.success,
        prompt: after.prompt - before.prompt,
        completion: after.completion - before.completion,
        firstTool: after.firstTool - before.firstTool,
        untagged: after.untagged - before.untagged
      }).toEqual({ success: 1, prompt: 37, completion: 2, firstTool: 1, untagged: 0 })
    }))

  it.effect("scrape-time gauges: queue depth and oldest age per scope, runs in flight per agent, breaker state", () =>
    Effect.gen(function*() {
      const now = 1_000_000
      const partition = (p: Partition, pending: number, oldestEnqueuedAt: number | null) => ({
        partition: p,
        key: Partition.key(p),
        pending,
        inFlight: 0,
        capacity: 50,
        paused: false,
        oldestEnqueuedAt,
        channels: []
      })
      const run = { startedAt: now - 100, conversationMode: "channel" as const }
      const stats: QueueStats = {
        partitions: [
          partition(Partition.guild("1"), 3, now - 4_000),
          partition(Partition.guild("2"), 2, now - 10_000),
          partition(Partition.guild("3"), 0, null),
          partition(Partition.dm, 1, now - 500)
        ],
        inFlight: [
          { ...run, messageId: "m1", agentId: "a1", channelId: "c1", partition: "guild:1", lane: "guild:1/c1" },
          { ...run, messageId: "m2", agentId: "a2", channelId: "c2", partition: "guild:2", lane: "guild:2/c2" },
          // One agent in two channels at once (two conversations).
          { ...run, messageId: "m3", agentId: "a2", channelId: "c3", partition: "guild:2", lane: "guild:2/c3" }
        ],
        agents: [{ agentId: "a1", inFlight: 1 }, { agentId: "a2", inFlight: 2 }],
        rejected: { full: 0, duplicate: 0 },
        globalPaused: false,
        dispatchStopped: false,
        dedup: { size: 0, maxSize: 10_000 }
      }
      yield* Metrics.sampleQueue(stats, now)
      expect(yield* valueOf("aurora_queue_pending_events", { scope: "guild" })).toBe(5)
      expect(yield* valueOf("aurora_queue_pending_events", { scope: "dm" })).toBe(1)
      expect(yield* valueOf("aurora_queue_oldest_pending_age_seconds", { scope: "guild" })).toBe(10)
      expect(yield* valueOf("aurora_queue_oldest_pending_age_seconds", { scope: "dm" })).toBe(0.5)
      expect(yield* valueOf("aurora_runs_in_flight", { agent: "a1" })).toBe(1)
      expect(yield* valueOf("aurora_runs_in_flight", { agent: "a2" })).toBe(2)
      // No unlabelled series: the total is the sum over agents.
      expect((yield* Metric.snapshot).some((p) => p.metricKey.name === "aurora_runs_in_flight" && p.metricKey.tags.length === 0))
        .toBe(false)

      // An agent without runs any more is set back to 0.
      yield* Metrics.sampleQueue({ ...stats, inFlight: stats.inFlight.slice(1), agents: stats.agents.slice(1) }, now)
      expect(yield* valueOf("aurora_runs_in_flight", { agent: "a1" })).toBe(0)
      expect(yield* valueOf("aurora_runs_in_flight", { agent: "a2" })).toBe(2)

      // An empty queue resets the gauges instead of leaving the last values behind.
      yield* Metrics.sampleQueue({ ...stats, partitions: [], inFlight: [], agents: [] }, now)
      expect(yield* valueOf("aurora_queue_pending_events", { scope: "guild" })).toBe(0)
      expect(yield* valueOf("aurora_queue_oldest_pending_age_seconds", { scope: "guild" })).toBe(0)
      expect(yield* valueOf("aurora_runs_in_flight", { agent: "a1" })).toBe(0)
      expect(yield* valueOf("aurora_runs_in_flight", { agent: "a2" })).toBe(0)

      // One series per breaker state, the current one at 1 and the others at 0.
      const breakerValues: Array<Record<string, number>> = []
      for (
        const state of [
          BreakerState.Closed({ failures: 2 }),
          BreakerState.HalfOpen({ trialsInFlight: 1 }),
          BreakerState.Open({ since: 0 })
        ]
      ) {
        yield* Metrics.sampleBreaker(state)
        breakerValues.push({
          closed: yield* valueOf("aurora_circuit_breaker_state", { state: "closed" }),
          half_open: yield* valueOf("aurora_circuit_breaker_state", { state: "half_open" }),
          open: yield* valueOf("aurora_circuit_breaker_state", { state: "open" })
        })
      }
      expect(breakerValues).toEqual([
        { closed: 1, half_open: 0, open: 0 },
        { closed: 0, half_open: 1, open: 0 },
        { closed: 0, half_open: 0, open: 1 }
      ])
      const breakerSeries = (yield* Metric.snapshot).filter((p) => p.metricKey.name === "aurora_circuit_breaker_state")
      expect(breakerSeries.map((p) => p.metricKey.tags.map((t) => `${t.key}=${t.value}`).join(",")).sort()).toEqual([
        "state=closed",
        "state=half_open",
        "state=open"
      ])
    }))

  it("keeps tool labels bounded", () => {
    expect(Metrics.toolLabel("discord_send")).toBe("discord_send")
    expect(Metrics.toolLabel("mcp:server.tool-name")).toBe("mcp:server.tool-name")
    expect(Metrics.toolLabel("with space")).toBe("other")
    expect(Metrics.toolLabel("x".repeat(65))).toBe("other")
    expect(Metrics.toolLabel("")).toBe("other")
  })
})

describe("readings taken at scrape time", () => {
  /** The sample lines of one family in an exposition, and its TYPE. */
  const family = (text: string, name: string) => ({
    type: text.split("\n").find((line) => line.startsWith(`# TYPE ${name} `))?.slice(`# TYPE ${name} `.length),
    samples: text.split("\n").filter((line) => line.startsWith(`${name} `) || line.startsWith(`${name}{`))
  })
  const valueIn = (text: string, name: string): number => {
    const line = family(text, name).samples[0]
    if (line === undefined) throw new Error(`no ${name} in\n${text}`)
    return Number(line.slice(line.lastIndexOf(" ") + 1))
  }

  it.effect("process and Node.js metrics: Prometheus' names, types and units", () =>
    Effect.gen(function*() {
      const before = process.cpuUsage()
      const text = renderPrometheus(yield* processMetrics)
      const after = process.cpuUsage()
      for (const name of ["process_cpu_user_seconds_total", "process_cpu_system_seconds_total", "process_cpu_seconds_total"]) {
        expect(family(text, name).type, name).toBe("counter")
      }
      for (
        const name of [
          "process_resident_memory_bytes",
          "process_start_time_seconds",
          "nodejs_heap_size_total_bytes",
          "nodejs_heap_size_used_bytes",
          "nodejs_external_memory_bytes",
          "nodejs_version_info"
        ]
      ) {
        expect(family(text, name).type, name).toBe("gauge")
      }
      // Seconds, not microseconds: between two readings of process.cpuUsage() taken around it.
      const cpu = valueIn(text, "process_cpu_seconds_total")
      expect(cpu).toBeGreaterThanOrEqual((before.user + before.system) / 1e6)
      expect(cpu).toBeLessThanOrEqual((after.user + after.system) / 1e6)
      expect(cpu).toBeCloseTo(
        valueIn(text, "process_cpu_user_seconds_total") + valueIn(text, "process_cpu_system_seconds_total"),
        9
      )
      // Unix seconds: this process started within its uptime of now.
      const started = valueIn(text, "process_start_time_seconds")
      expect(Math.abs(started - (Date.now() / 1000 - process.uptime()))).toBeLessThan(2)
      expect(valueIn(text, "process_resident_memory_bytes")).toBeGreaterThan(10 * 1024 * 1024)
      expect(valueIn(text, "nodejs_heap_size_used_bytes")).toBeLessThanOrEqual(valueIn(text, "nodejs_heap_size_total_bytes"))
      const [major, minor, patch] = process.versions.node.split(".")
      expect(family(text, "nodejs_version_info").samples).toEqual([
        `nodejs_version_info{major="${major}",minor="${minor}",patch="${patch}",version="${process.version}"} 1`
      ])
    }))

  it("aurora_build_info carries package.json's version", () => {
    const pkg: unknown = JSON.parse(readFileSync(new URL("../../../package.json", import.meta.url), "utf8"))
    const version = typeof pkg === "object" && pkg !== null && "version" in pkg ? String(pkg.version) : "missing"
    expect(renderPrometheus([buildInfo])).toBe(
      [
        "# HELP aurora_build_info Aurora's version (always 1).",
        "# TYPE aurora_build_info gauge",
        `aurora_build_info{version="${version}"} 1`,
        ""
      ]
        .join("\n")
    )
  })

  it("gateway shards: up 1/0 and the ping in seconds, NaN before the first heartbeat", () => {
    const text = renderPrometheus(shardMetrics([
      { id: 0, status: "ready", pingMs: 250, downForMs: null },
      { id: 1, status: "reconnecting", pingMs: null, downForMs: 3_000 }
    ]))
    expect(family(text, "aurora_gateway_shard_up")).toEqual({
      type: "gauge",
      samples: ["aurora_gateway_shard_up{shard=\"0\"} 1", "aurora_gateway_shard_up{shard=\"1\"} 0"]
    })
    expect(family(text, "aurora_gateway_ping_seconds")).toEqual({
      type: "gauge",
      samples: ["aurora_gateway_ping_seconds{shard=\"0\"} 0.25", "aurora_gateway_ping_seconds{shard=\"1\"} NaN"]
    })
  })
})
