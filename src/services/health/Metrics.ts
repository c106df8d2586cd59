/**
 * Aurora's Prometheus metrics, as Effect `Metric`s in the process-wide registry that `/metrics`
 * renders. Names start with `aurora_`, counters end in `_total`, durations are in seconds.
 *
 * Labels are closed sets (trigger kinds, rejection reasons, run outcomes, token kinds, queue
 * scope), except `tool`, which is the agent's tool name: bounded by the agents' tool sets, and
 * anything that does not look like a tool name is counted as `other`.
 *
 * The listen and dispatch programs call the small effects below; the gauges are set at scrape
 * time from the queue and the breaker (`sampleQueue`, `sampleBreaker`), so they are never stale.
 * `aurora_messages_received_total` is not here: it is a plain count (MessagesReceived.ts).
 * The label values live in MetricLabels.ts; this module re-exports them (`Metrics.runOutcomeOf`, ...).
 */
import { Effect, FiberRef, Metric, MetricBoundaries, MetricKey, type MetricLabel } from "effect"
import type { RunReport, RunUsage } from "../../domain/AgentRun.js"
import type { DeadLetterReason } from "../../domain/DeadLetter.js"
import type { TriggerKind } from "../../domain/Event.js"
import type { BreakerState } from "./CircuitBreaker.js"
import {
  breakerStateLabel,
  type BreakerStateLabel,
  breakerStates,
  deadLetterReasons,
  type QueueScope,
  queueScopes,
  type RejectionReason,
  rejectionReasons,
  type RunOutcome,
  runOutcomes,
  type SilentRunAction,
  silentRunActions,
  tokenKinds,
  triggerKinds
} from "./MetricLabels.js"
import type { QueueStats } from "../queue/EventQueue.js"
import { agentToolCalled } from "./ToolMetrics.js"

export {
  breakerStateLabel,
  type BreakerStateLabel,
  breakerStates,
  type QueueScope,
  queueScopes,
  type RejectionReason,
  rejectionReasons,
  type RunOutcome,
  runOutcomeOf,
  runOutcomes,
  toolLabel
} from "./MetricLabels.js"

// --- the metrics ----------------------------------------------------------------------------

type CounterKey = MetricKey.MetricKey.Counter<number>

const counter = (name: string, description: string): CounterKey => MetricKey.counter(name, { description, incremental: true })

/**
 * One labelled series, built from its full key. `Metric.tagged` would look the series up in the
 * registry on every update (it builds and hashes a new key each time); a metric made from the
 * tagged key finds its series once and keeps it.
 */
const series = (key: CounterKey, label: string, value: string): Metric.Metric.Counter<number> =>
  Metric.fromMetricKey(MetricKey.tagged(key, label, value))

const byLabel = <const K extends string>(
  key: CounterKey,
  label: string,
  values: ReadonlyArray<K>
): Record<K, Metric.Metric.Counter<number>> =>
  Object.fromEntries(values.map((value) => [value, series(key, label, value)])) as Record<K, Metric.Metric.Counter<number>>

const triggersTotal = counter("aurora_triggers_total", "Messages addressed to the bot, by trigger kind (mention, reply, dm).")
const eventsEnqueuedTotal = Metric.fromMetricKey(counter("aurora_events_enqueued_total", "Events accepted into the queue."))
const eventsRejectedTotal = counter(
  "aurora_events_rejected_total",
  "Events not accepted into the queue, by reason (full, duplicate, storage_error)."
)
const eventsDispatchedTotal = Metric.fromMetricKey(
  counter("aurora_events_dispatched_total", "Events handed to a Letta agent (retries not counted).")
)
const runsTotal = counter("aurora_runs_total", "Agent runs that ended, by outcome.")
const runRetriesTotal = Metric.fromMetricKey(
  counter("aurora_run_retries_total", "Agent run attempts re-sent after a transient failure.")
)
const lettaTokensTotal = counter("aurora_letta_tokens_total", "Letta tokens used by agent runs, by kind (prompt, completion).")
const deadLettersTotal = counter(
  "aurora_dead_letters_total",
  "Events dead-lettered, by reason (failed, expired, interrupted-after-reply, interrupted)."
)
const alertsTotal = Metric.fromMetricKey(
  counter("aurora_error_rate_alerts_total", "High error rate alerts raised (owners are sent a DM for each).")
)
const silentRunsTotal = counter("aurora_silent_runs_total", "Runs that ended without a Discord action, by what Aurora did.")
const conversationBusyTotal = Metric.fromMetricKey(counter(
  "aurora_conversation_busy_total",
  "409 busy answers of a Letta conversation: the event waited and was sent again (never a failure)."
))

const breakerState = Metric.gauge("aurora_circuit_breaker_state", {
  description: "The Letta circuit breaker: 1 for its current state (closed, half_open, open), 0 for the others."
})
const queuePending = Metric.gauge("aurora_queue_pending_events", {
  description: "Events waiting in the queue (in-flight runs not included), by scope (guild, dm)."
})
const queueOldestAge = Metric.gauge("aurora_queue_oldest_pending_age_seconds", {
  description: "Age of the oldest pending event, by scope (guild, dm); 0 when none is pending."
})
/**
 * Per agent: with conversations one agent runs in several channels at once, and the count per
 * agent shows it (and its `parallel` cap); the total is `sum(aurora_runs_in_flight)`. `agent` is a
 * Letta agent id, bounded by the agents bound to guilds and DMs. A series appears with its agent's
 * first run (ids are not known in advance, so the family is empty until then) and goes back to 0.
 */
const runsInFlight = Metric.gauge("aurora_runs_in_flight", {
  description: "Agent runs in progress, by agent (their sum is the total)."
})

// Runs are bounded by the guild's timeout (at most 300 s).
const runDuration = Metric.histogram(
  "aurora_run_duration_seconds",
  MetricBoundaries.fromIterable([0.1, 0.25, 0.5, 1, 2, 5, 10, 20, 30, 60, 120, 300]),
  "Wall time of agent runs, stream included."
)
const firstToolCall = Metric.histogram(
  "aurora_run_first_tool_call_seconds",
  MetricBoundaries.fromIterable([0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 20, 30, 60, 120]),
  "Time from the start of an agent run to its first streamed tool call."
)

const triggers = byLabel(triggersTotal, "kind", triggerKinds)
const rejections = byLabel(eventsRejectedTotal, "reason", rejectionReasons)
const outcomes = byLabel(runsTotal, "outcome", runOutcomes)
const tokens = byLabel(lettaTokensTotal, "kind", tokenKinds)
const deadLetterCounters = byLabel(deadLettersTotal, "reason", deadLetterReasons)
const silentRuns = byLabel(silentRunsTotal, "action", silentRunActions)
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

// --- what the programs call -----------------------------------------------------------------

/** A message triggered the bot. */
export const triggered = (kind: TriggerKind): Effect.Effect<void> => Metric.increment(triggers[kind])

/** An event was accepted into the queue. */
export const enqueued: Effect.Effect<void> = Metric.increment(eventsEnqueuedTotal)

/** An event was turned away by the queue. */
export const rejected = (reason: RejectionReason): Effect.Effect<void> => Metric.increment(rejections[reason])

/** An event was handed to its agent (once per event, not per attempt). */
export const dispatched: Effect.Effect<void> = Metric.increment(eventsDispatchedTotal)

/** A run attempt is being re-sent after a transient failure. */
export const retried: Effect.Effect<void> = Metric.increment(runRetriesTotal)

/** The agent called a tool: `aurora_tool_calls_total{executor="agent", status="called"}` (ToolMetrics.ts). */
export const toolCalled = (name: string): Effect.Effect<void> => agentToolCalled(name)

/**
 * Several metric updates as one effect: the fiber's metric labels are read once and each update
 * applied with them, as `Metric.update` / `Metric.increment` would one by one (a counter's
 * increment is an update by 1). A run's end updates up to five series: one step instead of five.
 */
const inOneStep = (apply: (labels: ReadonlyArray<MetricLabel.MetricLabel>) => void): Effect.Effect<void> =>
  FiberRef.getWith(FiberRef.currentMetricLabels, (labels) => Effect.sync(() => apply(labels)))

type Usage = Pick<RunUsage, "promptTokens" | "completionTokens">

const countTokens = (usage: Usage, labels: ReadonlyArray<MetricLabel.MetricLabel>) => {
  tokens.prompt.unsafeUpdate(Math.max(0, usage.promptTokens), labels)
  tokens.completion.unsafeUpdate(Math.max(0, usage.completionTokens), labels)
}

/** Tokens a run used, as its usage statistics report them. */
export const tokensUsed = (usage: Usage): Effect.Effect<void> => inOneStep((labels) => countTokens(usage, labels))

/**
 * A run ended: counts its outcome and observes its duration and, when the agent called a tool,
 * the time to its first tool call; with `usage`, the tokens it used too (`tokensUsed`).
 */
export const runFinished = (
  outcome: RunOutcome,
  durationMs: number,
  firstToolCallMs: number | null = null,
  usage: Usage | null = null
): Effect.Effect<void> =>
  inOneStep((labels) => {
    outcomes[outcome].unsafeUpdate(1, labels)
    runDuration.unsafeUpdate(durationMs / 1000, labels)
    if (firstToolCallMs !== null) firstToolCall.unsafeUpdate(firstToolCallMs / 1000, labels)
    if (usage !== null) countTokens(usage, labels)
  })

/**
 * A run succeeded: everything its report says — outcome, duration, time to first tool call, the
 * tool calls and the tokens. Do not also call `toolCalled` for the same run.
 */
export const runSucceeded = (report: RunReport): Effect.Effect<void> =>
  Effect.zipRight(
    runFinished("success", report.durationMs, report.firstToolCallMs, report.usage),
    Effect.forEach(report.toolCalls, (call) => toolCalled(call.name), { discard: true })
  )

/** An event became a dead letter. */
export const deadLettered = (reason: DeadLetterReason): Effect.Effect<void> => Metric.increment(deadLetterCounters[reason])

/** A run ended without a Discord action (see domain/AgentRun.ts); what Aurora did about it. */
export const silentRun = (action: SilentRunAction): Effect.Effect<void> => Metric.increment(silentRuns[action])

/** An error rate alert was raised. */
export const alertRaised: Effect.Effect<void> = Metric.increment(alertsTotal)

/** A conversation answered 409 busy (the event waits and is sent again). */
export const conversationBusy: Effect.Effect<void> = Metric.increment(conversationBusyTotal)

// --- scrape-time gauges ----------------------------------------------------------------------

/** Sets the breaker gauges, the current state to 1 (called by `/metrics` before rendering). */
export const sampleBreaker = (state: BreakerState): Effect.Effect<void> =>
  Effect.forEach(breakerStates, (label) => Metric.set(breakerByState[label], label === breakerStateLabel(state) ? 1 : 0), {
    discard: true
  })

/**
 * Agents whose series the last sample set above 0: the next sample sets them back to 0 once they
 * have no run. Bounded by the runs in flight (the global cap).
 */
let agentsInFlight: ReadonlySet<string> = new Set()

const sampleRunsInFlight = (agents: QueueStats["agents"]): Effect.Effect<void> =>
  Effect.suspend(() => {
    const counts = new Map(agents.map((agent): [string, number] => [agent.agentId, agent.inFlight]))
    const previous = agentsInFlight
    agentsInFlight = new Set(agents.filter((agent) => agent.inFlight > 0).map((agent) => agent.agentId))
    for (const agentId of previous) if (!counts.has(agentId)) counts.set(agentId, 0)
    return Effect.forEach(counts, ([agentId, n]) => Metric.set(Metric.tagged(runsInFlight, "agent", agentId), n), {
      discard: true
    })
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
    sampleRunsInFlight(stats.agents),
    Effect.forEach(queueScopes, (scope) => {
      const at = oldest[scope]
      return Effect.zipRight(
        Metric.set(pendingByScope[scope], pending[scope]),
        Metric.set(oldestByScope[scope], at === null ? 0 : Math.max(0, now - at) / 1000)
      )
    }, { discard: true })
  ], { discard: true })
}

/**
 * Puts every metric (and every label value known in advance) in the registry at zero, so that
 * `/metrics` lists them all from the start: a series that appears only after its first event
 * makes `rate()` and absent-series alerts unreliable.
 */
export const registerAll: Effect.Effect<void> = Effect.all([
  Metric.value(eventsEnqueuedTotal),
  Metric.value(eventsDispatchedTotal),
  Metric.value(runRetriesTotal),
  Metric.value(alertsTotal),
  ...breakerStates.map((state) => Metric.value(breakerByState[state])),
  Metric.value(conversationBusyTotal),
  Metric.value(runDuration),
  Metric.value(firstToolCall),
  ...[triggers, rejections, outcomes, tokens, deadLetterCounters, silentRuns].flatMap((labelled) =>
    Object.values<Metric.Metric.Counter<number>>(labelled).map(Metric.value)
  ),
  ...queueScopes.flatMap((scope) => [Metric.value(pendingByScope[scope]), Metric.value(oldestByScope[scope])])
], { discard: true })
