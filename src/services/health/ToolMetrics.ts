/**
 * `aurora_tool_calls_total{tool, executor, status}`: every tool call, by who ran it.
 *
 * - `executor="agent"`: a call the agent's stream showed (a server-side tool, an mcp-discord tool),
 *   counted when the stream shows it, with `status="called"`: its return may come later, in
 *   another segment, or never (a failed run), and a call is counted once whatever follows; its
 *   return's status is in the logs (`tool return <name>: <status>`).
 * - `executor="aurora"`: a built-in Discord tool Aurora ran for the agent (client tools, `tools` =
 *   `builtin`), counted once per answer with how it came about: `success` or `error` (run now, or
 *   replayed from its record), `interrupted` (recorded as started before a crash: not run again),
 *   `unrecorded` (not run: it could not be recorded first).
 *
 * `tool` is the agent's tool name through `toolLabel` (anything unlike a tool name is `other`).
 * Kept beside Metrics.ts, in the same registry; the built-in tools' `aurora` series are put at zero
 * by `registerToolMetrics` so `/metrics` lists them from the start.
 */
import { Effect, Metric, MetricKey } from "effect"
import { toolLabel } from "./MetricLabels.js"

export type ToolExecutor = "agent" | "aurora"
export const auroraToolStatuses = ["success", "error", "interrupted", "unrecorded"] as const
export type AuroraToolStatus = (typeof auroraToolStatuses)[number]

const toolCallsTotal = MetricKey.counter("aurora_tool_calls_total", {
  description: "Tool calls, by tool, by who ran it (agent: streamed by the agent; aurora: a built-in tool) and status.",
  incremental: true
})

const seriesOf = (tool: string, executor: ToolExecutor, status: string) =>
  Metric.fromMetricKey(
    MetricKey.tagged(MetricKey.tagged(MetricKey.tagged(toolCallsTotal, "tool", tool), "executor", executor), "status", status)
  )

/** The agents' tool sets are small; past this many series one is built per call (still counted). */
const cacheSize = 512
const cache = new Map<string, Metric.Metric.Counter<number>>()
const series = (tool: string, executor: ToolExecutor, status: string): Metric.Metric.Counter<number> => {
  const key = `${tool}\u0000${executor}\u0000${status}`
  const cached = cache.get(key)
  if (cached !== undefined) return cached
  const made = seriesOf(tool, executor, status)
  if (cache.size < cacheSize) cache.set(key, made)
  return made
}

/** The agent's stream showed a call. */
export const agentToolCalled = (name: string): Effect.Effect<void> => Metric.increment(series(toolLabel(name), "agent", "called"))

/** Aurora answered a built-in tool call. */
export const auroraToolAnswered = (name: string, status: AuroraToolStatus): Effect.Effect<void> =>
  Metric.increment(series(toolLabel(name), "aurora", status))

/** The built-in tools' series at zero. */
export const registerToolMetrics = (builtinTools: ReadonlyArray<string>): Effect.Effect<void> =>
  Effect.forEach(
    builtinTools.flatMap((tool) => auroraToolStatuses.map((status) => series(tool, "aurora", status))),
    Metric.value,
    { discard: true }
  )
