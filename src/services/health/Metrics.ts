/**
 * Aurora's Prometheus metrics, as Effect `Metric`s in the process-wide registry that `/metrics`
 * renders. Names start with `aurora_`, counters end in `_total`, durations are in seconds.
 *
 * Labels are closed sets (trigger kinds, rejection reasons, run outcomes, token kinds, queue
 * scope), except `tool`, which is the agent's tool name: bounded by the agents' tool sets, and
 * anything that does not look like a tool name is counted as `other`.
 *
 * The listen and dispatch programs call the small effects below; the gauges are set at scrape
 * time from the queue and the breaker (`sampleQueue`, `sampleBreaker`, in MetricsGauges.ts,
 * re-exported here), so they are never stale.
 */
import { Effect, Metric, MetricBoundaries, MetricKey } from "effect"
import type { RunReport, RunUsage } from "../../domain/AgentRun.js"
import type { DeadLetterReason } from "../../domain/DeadLetter.js"
import type { TriggerKind } from "../../domain/Event.js"
import type { CircuitOpen, LettaRunError } from "../../domain/LettaErrors.js"
import { registerGauges } from "./MetricsGauges.js"

export * from "./MetricsGauges.js"

// --- label values -------------------------------------------------------------------------

const triggerKinds = ["mention", "reply", "dm"] as const satisfies ReadonlyArray<TriggerKind>

/** Why an event was not accepted into the queue. */
export const rejectionReasons = ["full", "duplicate", "storage_error"] as const
export type RejectionReason = (typeof rejectionReasons)[number]

/** How a dispatched run ended, one word per kind of ending (see `runOutcomeOf`). */
export const runOutcomes = [
  "success",
  "run_failed",
  "timeout",
  "connection_error",
  "rate_limited",
  "server_error",
  "agent_not_found",
  "unauthorized",
  "rejected",
  "agent_busy",
  "conversation_busy",
  "conversation_not_found",
  "circuit_open",
  "interrupted"
] as const
export type RunOutcome = (typeof runOutcomes)[number]

const tokenKinds = ["prompt", "completion"] as const

const deadLetterReasons = ["failed", "expired", "interrupted-after-reply", "interrupted"] as const satisfies ReadonlyArray<
  DeadLetterReason
>

/** The outcome label of a failed run. */
export const runOutcomeOf = (error: LettaRunError | CircuitOpen): RunOutcome => {
  switch (error._tag) {
    case "RunFailed":
      return "run_failed"
    case "LettaTimeout":
      return "timeout"
    case "LettaConnectionError":
      return "connection_error"
    case "LettaRateLimited":
      return "rate_limited"
    case "LettaServerError":
      return "server_error"
    case "AgentNotFound":
      return "agent_not_found"
    case "LettaUnauthorized":
      return "unauthorized"
    case "LettaRejected":
      return "rejected"
    case "AgentBusy":
      return "agent_busy"
    case "ConversationBusy":
      return "conversation_busy"
    case "ConversationNotFound":
      return "conversation_not_found"
    case "CircuitOpen":
      return "circuit_open"
  }
}

/** Tool names come from the agent: keep what looks like one, lump the rest as "other". */
export const toolLabel = (name: string): string => (/^[A-Za-z0-9_.:-]{1,64}$/.test(name) ? name : "other")

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

const messagesReceivedTotal = Metric.fromMetricKey(counter(
  "aurora_messages_received_total",
  "Messages received from the Discord gateway, before the trigger rules."
))
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
const toolCallsTotal = counter("aurora_tool_calls_total", "Tool calls streamed by the agents, by tool name.")
const lettaTokensTotal = counter("aurora_letta_tokens_total", "Letta tokens used by agent runs, by kind (prompt, completion).")
const deadLettersTotal = counter(
  "aurora_dead_letters_total",
  "Events dead-lettered, by reason (failed, expired, interrupted-after-reply, interrupted)."
)
const alertsTotal = Metric.fromMetricKey(
  counter("aurora_error_rate_alerts_total", "High error rate alerts raised (owners are sent a DM for each).")
)
const conversationBusyTotal = Metric.fromMetricKey(counter(
  "aurora_conversation_busy_total",
  "409 busy answers of a Letta conversation: the event waited and was sent again (never a failure)."
))

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

// --- what the programs call -----------------------------------------------------------------

/** A message arrived from the gateway. */
export const messageReceived: Effect.Effect<void> = Metric.increment(messagesReceivedTotal)

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

/** The agent called a tool. */
export const toolCalled = (name: string): Effect.Effect<void> => Metric.increment(toolSeries(toolLabel(name)))

/** The agents' tool sets are small; past this many names a series is built per call (still counted). */
const toolSeriesCacheSize = 256
const toolSeriesCache = new Map<string, Metric.Metric.Counter<number>>()
const toolSeries = (label: string): Metric.Metric.Counter<number> => {
  const cached = toolSeriesCache.get(label)
  if (cached !== undefined) return cached
  const made = series(toolCallsTotal, "tool", label)
  if (toolSeriesCache.size < toolSeriesCacheSize) toolSeriesCache.set(label, made)
  return made
}

/** Tokens a run used, as its usage statistics report them. */
export const tokensUsed = (usage: Pick<RunUsage, "promptTokens" | "completionTokens">): Effect.Effect<void> =>
  Effect.zipRight(
    Metric.incrementBy(tokens.prompt, Math.max(0, usage.promptTokens)),
    Metric.incrementBy(tokens.completion, Math.max(0, usage.completionTokens))
  )

/**
 * A run ended: counts its outcome and observes its duration and, when the agent called a tool,
 * the time to its first tool call.
 */
export const runFinished = (
  outcome: RunOutcome,
  durationMs: number,
  firstToolCallMs: number | null = null
): Effect.Effect<void> =>
  Effect.all([
    Metric.increment(outcomes[outcome]),
    Metric.update(runDuration, durationMs / 1000),
    firstToolCallMs === null ? Effect.void : Metric.update(firstToolCall, firstToolCallMs / 1000)
  ], { discard: true })

/**
 * A run succeeded: everything its report says — outcome, duration, time to first tool call, the
 * tool calls and the tokens. Do not also call `toolCalled` for the same run.
 */
export const runSucceeded = (report: RunReport): Effect.Effect<void> =>
  Effect.all([
    runFinished("success", report.durationMs, report.firstToolCallMs),
    Effect.forEach(report.toolCalls, (call) => toolCalled(call.name), { discard: true }),
    report.usage === null ? Effect.void : tokensUsed(report.usage)
  ], { discard: true })

/** An event became a dead letter. */
export const deadLettered = (reason: DeadLetterReason): Effect.Effect<void> => Metric.increment(deadLetterCounters[reason])

/** An error rate alert was raised. */
export const alertRaised: Effect.Effect<void> = Metric.increment(alertsTotal)

/** A conversation answered 409 busy (the event waits and is sent again). */
export const conversationBusy: Effect.Effect<void> = Metric.increment(conversationBusyTotal)

/**
 * Puts every metric (and every label value known in advance) in the registry at zero, so that
 * `/metrics` lists them all from the start: a series that appears only after its first event
 * makes `rate()` and absent-series alerts unreliable.
 */
export const registerAll: Effect.Effect<void> = Effect.all([
  Metric.value(messagesReceivedTotal),
  Metric.value(eventsEnqueuedTotal),
  Metric.value(eventsDispatchedTotal),
  Metric.value(runRetriesTotal),
  Metric.value(alertsTotal),
  Metric.value(conversationBusyTotal),
  registerGauges,
  Metric.value(runDuration),
  Metric.value(firstToolCall),
  ...[triggers, rejections, outcomes, tokens, deadLetterCounters].flatMap((labelled) =>
    Object.values<Metric.Metric.Counter<number>>(labelled).map(Metric.value)
  )
], { discard: true })
