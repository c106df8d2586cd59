/**
 * What `/aurora runs` shows of one dispatched event: where it came from, where it ran (the Letta
 * conversation and run), how it ended, the tool calls the agent made, how long it ran and waited.
 * One record per message: a later outcome of the same message (a retry, a re-queued dead letter)
 * replaces the earlier one.
 *
 * Everything here that came from the agent or Letta (tool names, run and conversation ids, the
 * error detail) is untrusted: bounded here, escaped where it is shown.
 */
import { Schema } from "effect"
import { truncate } from "./AgentRun.js"
import { Partition } from "./Event.js"

/**
 * - `answered`: the run ended normally and the agent called a side-effecting Discord tool
 *   (`discord_send`, a reaction, ...);
 * - `silent-posted`: it ended normally without one, and Aurora posted the agent's text itself;
 * - `silent`: it ended normally without one, and nothing was posted;
 * - `failed`: the run failed but the event is not a dead letter: a transient failure kept for
 *   another try, or a failure after the agent acted (never sent again); the detail says which;
 * - `dead-lettered`: a permanent failure, too old when its turn came, or a fault in the dispatcher;
 * - `interrupted`: a restart cut the run off and start-up recovery dead-lettered the event;
 * - `awaiting-approval`: the run stopped for a tool a person must approve (Discord buttons); the
 *   decision continues it and replaces this outcome.
 *
 * Tool names: Aurora's own executions of built-in tools are recorded with their status as a
 * suffix (`discord_send✓`, `discord_send✗`), the agent's server-side calls as plain names.
 */
export const RunOutcome = Schema.Literal(
  "answered",
  "silent-posted",
  "silent",
  "failed",
  "dead-lettered",
  "interrupted",
  "awaiting-approval"
)
export type RunOutcome = typeof RunOutcome.Type

export const RunRecord = Schema.Struct({
  /** The triggering Discord message. */
  messageId: Schema.String,
  /** null for a direct message. */
  guildId: Schema.NullOr(Schema.String),
  channelId: Schema.String,
  /** The Letta conversation it ran in (`channel` mode); null for the agent's default conversation. */
  conversationId: Schema.NullOr(Schema.String),
  /** The Letta run id, when the stream showed one. */
  runId: Schema.NullOr(Schema.String),
  outcome: RunOutcome,
  /** The names of the tools the agent called, in order: the first `maxRecordedToolCalls`. */
  toolCalls: Schema.Array(Schema.String),
  /** From the start of the dispatch to its end; null when nothing ran (too old, a fault). */
  durationMs: Schema.NullOr(Schema.Number),
  /** From being queued to the start of the dispatch; null when unknown. */
  queuedMs: Schema.NullOr(Schema.Number),
  /** Epoch milliseconds, by the Effect Clock. */
  finishedAt: Schema.Number,
  /** Why it failed (the error's tag and reason) and what becomes of it; null for a normal end. */
  detail: Schema.NullOr(Schema.String)
})
export type RunRecord = typeof RunRecord.Type

/** Records kept per partition (a guild, or the DMs): the newest ones. */
export const maxRunsPerPartition = 100

/** Tool calls kept per record: the first ones, in order. */
export const maxRecordedToolCalls = 20

/** A tool name is the agent's word: kept to this length. */
export const maxToolNameLength = 64

export const maxRunDetailLength = 300

/**
 * The record as it is stored: the tool calls cut to the first `maxRecordedToolCalls`, each name
 * and the detail to their length (whitespace collapsed, so nothing can span lines).
 */
export const boundedRunRecord = (record: RunRecord): RunRecord => ({
  ...record,
  toolCalls: record.toolCalls.slice(0, maxRecordedToolCalls).map((name) => truncate(name, maxToolNameLength)),
  detail: record.detail === null ? null : truncate(record.detail, maxRunDetailLength)
})

/** The partition a record belongs to: its guild, or the DMs. */
export const partitionOfRun = (record: Pick<RunRecord, "guildId">): Partition =>
  record.guildId === null ? Partition.dm : Partition.guild(record.guildId)

/** How many records a listing may be asked for: a whole count, never negative. */
export const rowLimit = (limit: number): number => Number.isFinite(limit) ? Math.max(0, Math.floor(limit)) : 0
