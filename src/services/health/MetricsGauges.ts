/**
 * Aurora's gauges, set at scrape time (`/metrics` calls `sampleQueue` and `sampleBreaker` before
 * rendering), so they are never stale. Conventions as in Metrics.ts, which re-exports this module.
 *
 * - `aurora_circuit_breaker_state{state}`: 1 for the breaker's current state, 0 for the others.
 * - `aurora_queue_pending_events{scope}` and `aurora_queue_oldest_pending_age_seconds{scope}`: per
 *   scope (guild, dm), not per guild, so the label set stays at two series.
 * - `aurora_runs_in_flight{agent}`: runs in progress per agent. With conversations one agent runs
 *   in several channels at once, so the count per agent is what shows it (and its `parallel` cap);
 *   the total is `sum(aurora_runs_in_flight)`. An agent's series appears with its first run and is
 *   set back to 0 once it has none; before the first run the family has no series (agent ids are
 *   not known in advance). `agent` is a Letta agent id: bounded by the agents bound to guilds and DMs.
 */
import { Effect, Metric } from "effect"
import type { BreakerState } from "./CircuitBreaker.js"
import type { QueueStats } from "../queue/EventQueue.js"

/** The queue gauges are per scope, not per guild, so the label set stays at two series. */
export const queueScopes = ["guild", "dm"] as const
export type QueueScope = (typeof queueScopes)[number]

/** The `state` label of `aurora_circuit_breaker_state`: one series per state, the current one at 1. */
export const breakerStates = ["closed", "half_open", "open"] as const
export type BreakerStateLabel = (typeof breakerStates)[number]

export const breakerStateLabel = (state: BreakerState): BreakerStateLabel =>
  state._tag === "Closed" ? "closed" : state._tag === "HalfOpen" ? "half_open" : "open"

const breakerState = Metric.gauge("aurora_circuit_breaker_state", {
  description: "The Letta circuit breaker: 1 for its current state (closed, half_open, open), 0 for the others."
})
const queuePending = Metric.gauge("aurora_queue_pending_events", {
  description: "Events waiting in the queue (in-flight runs not included), by scope (guild, dm)."
})
const queueOldestAge = Metric.gauge("aurora_queue_oldest_pending_age_seconds", {
  description: "Age of the oldest pending event, by scope (guild, dm); 0 when none is pending."
})
const runsInFlight = Metric.gauge("aurora_runs_in_flight", {
  description: "Agent runs in progress, by agent (their sum is the total)."
})

const pendingByScope: Record<QueueScope, Metric.Metric.Gauge<number>> = {
  guild: Metric.tagged(queuePending, "scope", "guild"),
  dm: Metric.tagged(queuePending, "scope", "dm")
}
const breakerByState = Object.fromEntries(
  breakerStates.map((state) => [state, Metric.tagged(breakerState, "state", state)])
) as Record<BreakerStateLabel, Metric.Metric.Gauge<number>>
const oldestByScope: Record<QueueScope, Metric.Metric.Gauge<number>> = {
  guild: Metric.tagged(queueOldestAge, "scope", "guild"),
  dm: Metric.tagged(queueOldestAge, "scope", "dm")
}

/**
 * Agents whose series the last sample set above 0: the next sample sets them back to 0 if they
 * have no run any more. Bounded by the runs in flight (the global cap).
 */
let agentsInFlight: ReadonlySet<string> = new Set()

/** Sets the per-agent gauge from the runs in flight (one entry per run). */
const sampleRunsInFlight = (runs: ReadonlyArray<{ readonly agentId: string }>): Effect.Effect<void> =>
  Effect.suspend(() => {
    const counts = new Map<string, number>()
    for (const run of runs) counts.set(run.agentId, (counts.get(run.agentId) ?? 0) + 1)
    const previous = agentsInFlight
    agentsInFlight = new Set(counts.keys())
    for (const agentId of previous) if (!counts.has(agentId)) counts.set(agentId, 0)
    return Effect.forEach(counts, ([agentId, n]) => Metric.set(Metric.tagged(runsInFlight, "agent", agentId), n), {
      discard: true
    })
  })

/** Sets the breaker gauges, the current state to 1 (called by `/metrics` before rendering). */
export const sampleBreaker = (state: BreakerState): Effect.Effect<void> =>
  Effect.forEach(breakerStates, (label) => Metric.set(breakerByState[label], label === breakerStateLabel(state) ? 1 : 0), {
    discard: true
  })

/** Sets the queue gauges from the queue's statistics at `now` (epoch ms). */
export const sampleQueue = (stats: QueueStats, now: number): Effect.Effect<void> => {
  const pending: Record<QueueScope, number> = { guild: 0, dm: 0 }
  const oldest: Record<QueueScope, number | null> = { guild: null, dm: null }
  for (const partition of stats.partitions) {
    const scope: QueueScope = partition.partition._tag === "Dm" ? "dm" : "guild"
    pending[scope] += partition.pending
    const at = partition.oldestEnqueuedAt
    if (at !== null) oldest[scope] = Math.min(oldest[scope] ?? at, at)
  }
  return Effect.all([
    sampleRunsInFlight(stats.inFlight),
    Effect.forEach(queueScopes, (scope) => {
      const at = oldest[scope]
      return Effect.zipRight(
        Metric.set(pendingByScope[scope], pending[scope]),
        Metric.set(oldestByScope[scope], at === null ? 0 : Math.max(0, now - at) / 1000)
      )
    }, { discard: true })
  ], { discard: true })
}

/** The gauges' series known in advance, at zero (see Metrics.registerAll). */
export const registerGauges: Effect.Effect<void> = Effect.all([
  ...breakerStates.map((state) => Metric.value(breakerByState[state])),
  ...queueScopes.flatMap((scope) => [Metric.value(pendingByScope[scope]), Metric.value(oldestByScope[scope])])
], { discard: true })
