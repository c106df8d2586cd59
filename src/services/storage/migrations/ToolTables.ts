/**
 * The tables of tools and approvals, steps 5 to 10 of the schema (see ../migrations.ts): Aurora's
 * own tool calls, the tool settings, the approvals people decide, and the open stops.
 */
import { SqlClient } from "@effect/sql"
import { Effect } from "effect"

/**
 * tool_calls records Aurora's own tool executions (built-in Discord tools, ToolCalls): a call id is
 * inserted (started) before its side effect and its result written after, so a replayed id is
 * answered from here and never executed twice. tool_call_id is UNIQUE because it is the call's
 * identity; `seq` (AUTOINCREMENT, never reused) orders calls started in the same millisecond.
 * status and tool_return are NULL until the call finished. Rows are pruned when a call starts:
 * those started more than 7 days earlier, and a partition's beyond its newest 5 000; the indexes
 * serve both prunings.
 */
export const toolCallTables = Effect.gen(function*() {
  const sql = yield* SqlClient.SqlClient
  yield* sql`CREATE TABLE tool_calls (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    tool_call_id TEXT NOT NULL UNIQUE,
    partition TEXT NOT NULL,
    channel_id TEXT NOT NULL,
    message_id TEXT NOT NULL,
    tool TEXT NOT NULL,
    started_at INTEGER NOT NULL,
    finished_at INTEGER,
    status TEXT,
    tool_return TEXT
  )`
  yield* sql`CREATE INDEX tool_calls_newest ON tool_calls (partition, started_at DESC, seq DESC)`
  yield* sql`CREATE INDEX tool_calls_started ON tool_calls (started_at)`
})

/**
 * Aurora-side tools and approvals: the guild settings `tools` (mcp|builtin) and `approvaltimeout`
 * (minutes) are new columns, NULL (the default) for every existing guild.
 */
export const toolSettingsColumns = Effect.gen(function*() {
  const sql = yield* SqlClient.SqlClient
  yield* sql`ALTER TABLE guild_settings ADD COLUMN tools TEXT`
  yield* sql`ALTER TABLE guild_settings ADD COLUMN approvaltimeout INTEGER`
})

/**
 * approvals holds the tool approvals waiting for people (PendingApprovals): one row per request,
 * deleted once its continuation returned. `id` is the short number in the buttons' custom ids
 * (AUTOINCREMENT: never handed out twice, so an old button can never decide a newer approval).
 * guild_id is NULL for a DM, conversation_id NULL for the agent's default conversation.
 * message_id is the triggering message, approval_message_id the message with the buttons (NULL
 * until posted). calls (name, arguments, tool call id), answered (the stop's answers Aurora
 * already had) and decisions (one per call: approve, reason, who, when, or null) are JSON, read
 * and written whole; a decision is a compare-and-set of that column. Times are epoch ms.
 */
export const approvalTables = Effect.gen(function*() {
  const sql = yield* SqlClient.SqlClient
  yield* sql`CREATE TABLE approvals (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    guild_id TEXT,
    channel_id TEXT NOT NULL,
    message_id TEXT NOT NULL,
    agent_id TEXT NOT NULL,
    conversation_id TEXT,
    run_id TEXT,
    calls TEXT NOT NULL,
    answered TEXT NOT NULL,
    decisions TEXT NOT NULL,
    approval_message_id TEXT,
    requested_at INTEGER NOT NULL,
    deadline INTEGER NOT NULL
  )`
})

/**
 * open_stops holds the approval stops whose built-in tool calls Aurora is running (OpenStops): one
 * row per stop, keyed by its first tool call id, written before its first call runs and deleted once
 * the stop is answered or handed to the approval gate. A row left by a process that stopped is taken
 * up at the next start (programs/StopTakeUp.ts). guild_id is NULL for a DM, conversation_id NULL for
 * the agent's default conversation; calls (name, arguments, tool call id, run by Aurora or not) is
 * JSON, in the stop's order. Times are epoch ms.
 */
export const openStopTables = Effect.gen(function*() {
  const sql = yield* SqlClient.SqlClient
  yield* sql`CREATE TABLE open_stops (
    stop_key TEXT PRIMARY KEY NOT NULL,
    guild_id TEXT,
    channel_id TEXT NOT NULL,
    message_id TEXT NOT NULL,
    agent_id TEXT NOT NULL,
    conversation_id TEXT,
    run_id TEXT,
    calls TEXT NOT NULL,
    opened_at INTEGER NOT NULL
  )`
})

/**
 * approvals.actions_before: the Discord actions (a JSON array of tool names) the run made before
 * the stop it waits on, so that the continuation after a person's decision knows the run already
 * answered (no fallback post) even after a restart. Rows stored before it read `[]`: nothing sent,
 * as the continuation assumed until then. Numbered 9 so that it applies after 8_open_stops.
 */
export const approvalActionsColumn = Effect.gen(function*() {
  const sql = yield* SqlClient.SqlClient
  yield* sql`ALTER TABLE approvals ADD COLUMN actions_before TEXT NOT NULL DEFAULT '[]'`
})

/**
 * open_stops.actions_before: the Discord actions (a JSON array of tool names) the run made before
 * the stop, as the approvals keep them (9_approval_actions), so that the take-up's continuation
 * after a restart knows the run already answered (no fallback post). Rows stored before it read
 * `[]`: nothing sent, as the take-up assumed until then.
 */
export const openStopActionsColumn = Effect.gen(function*() {
  const sql = yield* SqlClient.SqlClient
  yield* sql`ALTER TABLE open_stops ADD COLUMN actions_before TEXT NOT NULL DEFAULT '[]'`
})
