/**
 * What the dispatcher writes to the runs log (`/aurora runs`) for an event it dispatched: one
 * record per message with its latest outcome (see RunLog).
 *
 * - `RunTrace` keeps the names of the tools the agent called in the dispatch's current attempt, in
 *   order, from the run observer's `onToolCall` rather than from the report, so that a failed run,
 *   which has no report, shows them too. Each attempt starts a new trace: the record shows the last
 *   attempt, the run whose id it names (the report's, or the error's).
 * - `finishedOutcome`: a run that ended normally is `answered` when the agent called a Discord
 *   tool that acts (`discord_send`, a reaction, ...), else `silent`. (Whether Aurora then posted
 *   the agent's text itself, `silent-posted`, is decided where the run's end is handled.)
 * - `runRecorder` writes a record. A write that fails (or dies) is logged and forgotten: the runs
 *   view is a report, and no dispatch fails or changes because it could not be written.
 */
import { Cause, Effect, Ref } from "effect"
import { isDiscordAction, type RunReport } from "../../domain/AgentRun.js"
import type { QueuedEvent } from "../../domain/Event.js"
import { maxRecordedToolCalls, type RunOutcome } from "../../domain/RunRecord.js"
import { RunLog } from "../../services/queue/RunLog.js"

export interface RunTrace {
  /** A new attempt begins: the tools an earlier one called are dropped. */
  readonly attemptStarted: Effect.Effect<void>
  readonly toolCalled: (name: string) => Effect.Effect<void>
  /** The current attempt's tool names, in the order the stream showed them. */
  readonly toolCalls: Effect.Effect<ReadonlyArray<string>>
}

export const makeRunTrace: Effect.Effect<RunTrace> = Effect.map(Ref.make<ReadonlyArray<string>>([]), (names) => ({
  attemptStarted: Ref.set(names, []),
  // Only the first ones are kept in the log: a longer list would be cut there anyway.
  toolCalled: (name) => Ref.update(names, (all) => all.length >= maxRecordedToolCalls ? all : [...all, name]),
  toolCalls: Ref.get(names)
}))

/**
 * How a run that ended normally counts in the runs view: `answered` when the agent made a Discord
 * action, else `silent-posted` when Aurora posted its text (the fallback said `posted`), else
 * `silent`.
 */
export const finishedOutcome = (report: RunReport, fallbackPosted = false): RunOutcome =>
  report.toolCalls.some((call) => isDiscordAction(call.name)) ? "answered" : fallbackPosted ? "silent-posted" : "silent"

/** One dispatch's record, the event aside. */
export interface RunEntry {
  readonly outcome: RunOutcome
  /** Why it failed and what becomes of it; null for a normal end. */
  readonly detail: string | null
  readonly toolCalls: ReadonlyArray<string>
  /** The run id the report or the error names (the stream showed it). */
  readonly runId: string | undefined
  readonly conversationId: string | undefined
  readonly durationMs: number | null
  readonly queuedMs: number | null
  readonly finishedAt: number
}

/** A dispatch dead-lettered before any run (too old when its turn came, a fault in the dispatcher). */
export const endedBeforeRun = (detail: string, queuedMs: number | null, finishedAt: number): RunEntry => ({
  outcome: "dead-lettered",
  detail,
  toolCalls: [],
  runId: undefined,
  conversationId: undefined,
  durationMs: null,
  queuedMs,
  finishedAt
})

/** A fault in the dispatcher: its first line says what. */
export const endedByDefect = (cause: Cause.Cause<unknown>, finishedAt: number): RunEntry =>
  endedBeforeRun(`Defect: ${Cause.pretty(cause).split("\n")[0] ?? "unexpected failure"}`, null, finishedAt)

export const runRecorder = Effect.map(
  RunLog,
  (runs) => (event: Pick<QueuedEvent, "messageId" | "guildId" | "channelId">, entry: RunEntry): Effect.Effect<void> =>
    runs.record({
      messageId: event.messageId,
      guildId: event.guildId,
      channelId: event.channelId,
      conversationId: entry.conversationId ?? null,
      runId: entry.runId ?? null,
      outcome: entry.outcome,
      toolCalls: entry.toolCalls,
      durationMs: entry.durationMs,
      queuedMs: entry.queuedMs,
      finishedAt: entry.finishedAt,
      detail: entry.detail
    }).pipe(
      // Only the failure's line is annotated: around the write, annotating costs more than it.
      Effect.catchAllCause((cause) =>
        Effect.annotateLogs(Effect.logError("runs: could not record the run's outcome", cause), { outcome: entry.outcome })
      )
    )
)
