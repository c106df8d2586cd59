/**
 * The database schema, as migrations defined in code: the compiled dist/ carries them, so a
 * deployment needs no extra files. Later features append entries to the record; an applied
 * migration is never edited, since the Migrator only runs ids above the highest one recorded in
 * the database.
 */
import { Migrator, SqlClient } from "@effect/sql"
import { Effect } from "effect"

/**
 * guild_settings holds one row per guild with one column per setting, rather than key/value
 * rows: a guild's state is read and cached as a whole, each column has its own SQL type, and an
 * operator can read the table with one SELECT. A NULL setting column means "never set": the
 * current default applies, so a changed default reaches every guild that did not choose a value.
 * Ranges are deliberately not CHECK constraints: the rules live once, in src/domain/Settings.ts,
 * and a row edited by hand out of range is read back as the default with a warning.
 *
 * global_settings is key/value (lettaBaseUrl, dmAgentId, globalPause): a handful of unrelated
 * values where an absent key means "not set".
 */
const settingsTables = Effect.gen(function*() {
  const sql = yield* SqlClient.SqlClient
  yield* sql`CREATE TABLE guild_settings (
    guild_id TEXT PRIMARY KEY NOT NULL,
    enabled INTEGER NOT NULL DEFAULT 0,
    agent_id TEXT,
    paused INTEGER NOT NULL DEFAULT 0,
    replydepth INTEGER,
    typing INTEGER,
    ratelimit REAL,
    queuesize INTEGER,
    timeout INTEGER,
    mcpguidance INTEGER,
    updated_at INTEGER NOT NULL
  )`
  yield* sql`CREATE TABLE global_settings (
    key TEXT PRIMARY KEY NOT NULL,
    value TEXT NOT NULL,
    updated_at INTEGER NOT NULL
  )`
})

/**
 * pending_events is the queue's journal (SqlEventJournal): one row per accepted event that is not
 * yet done. `seq` is the order the events were first accepted in, which a restart replays; it is
 * AUTOINCREMENT so that a number is never handed out twice, even after the newest row was removed,
 * and an id seen in a log always means one event. message_id is UNIQUE because it is the event's
 * identity: every write after the append addresses the row by it. The event is one JSON column
 * (encoded with the QueuedEvent schema) rather than a column per field: it is only ever written
 * and read whole, and a field added to the event needs no migration. `partition` is kept beside it
 * ("guild:<id>" or "dm") so that an operator can count a guild's backlog with one SELECT. The run
 * columns record what the current dispatch has done: NULL run_started_at means none is under way.
 *
 * dead_letters keeps the events that will not run again without an admin's retry, per partition:
 * the key is (partition, message_id), as every query is scoped to one guild or to the DMs, and a
 * retried-then-failed-again event replaces its earlier letter. `seq` breaks ties between letters
 * that failed in the same millisecond (newest first means by failed_at, then by insertion); it is
 * an explicit column because SQLite may renumber the implicit rowid on VACUUM. The index serves
 * both the listing (newest first, per partition) and the pruning to the newest 1000. The columns
 * an operator reads (channel, reason, error type, detail, attempts, times) are plain columns; the
 * event as it was last queued is JSON, as above, since a retry sends it again.
 */
const durableQueueTables = Effect.gen(function*() {
  const sql = yield* SqlClient.SqlClient
  yield* sql`CREATE TABLE pending_events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    message_id TEXT NOT NULL UNIQUE,
    partition TEXT NOT NULL,
    event TEXT NOT NULL,
    run_started_at INTEGER,
    run_id TEXT,
    side_effect INTEGER NOT NULL DEFAULT 0
  )`
  yield* sql`CREATE TABLE dead_letters (
    partition TEXT NOT NULL,
    message_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    channel_id TEXT NOT NULL,
    reason TEXT NOT NULL,
    error_type TEXT,
    detail TEXT,
    attempts INTEGER NOT NULL,
    enqueued_at INTEGER NOT NULL,
    failed_at INTEGER NOT NULL,
    event TEXT NOT NULL,
    PRIMARY KEY (partition, message_id)
  )`
  yield* sql`CREATE INDEX dead_letters_newest ON dead_letters (partition, failed_at DESC, seq DESC)`
})

/**
 * conversations maps a channel (a thread, a DM channel) to the Letta conversation its events go to
 * in `channel` mode (SqlConversationStore). The key holds the agent id, so binding another agent
 * starts new conversations while the old rows wait to be pruned; the partition ("guild:<id>" or
 * "dm") keeps a guild's rows apart from the DM ones for `conversation show`. The index serves the
 * pruning of an agent's rows to its newest `maxConversationsPerAgent` (by last use, ties by key)
 * and the listing of an agent's newest conversations.
 *
 * The run's conversation is recorded beside its run id (pending_events.conversation_id), so that
 * the recovery cancels a cut-off run through the conversation it ran in, and kept with a dead
 * letter (dead_letters.conversation_id) for `queue failed`. Both are NULL for runs of the agent's
 * default conversation (`shared` mode) and for rows written before this migration.
 *
 * The guild settings `conversations` and `parallel` are new columns, NULL (the default) for every
 * existing guild; the DM mode is the global key `dmConversations`, which needs no schema change.
 */
const conversationTables = Effect.gen(function*() {
  const sql = yield* SqlClient.SqlClient
  yield* sql`CREATE TABLE conversations (
    agent_id TEXT NOT NULL,
    partition_key TEXT NOT NULL,
    channel_id TEXT NOT NULL,
    conversation_id TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    last_used_at INTEGER NOT NULL,
    PRIMARY KEY (agent_id, partition_key, channel_id)
  )`
  yield* sql`CREATE INDEX conversations_newest
    ON conversations (agent_id, last_used_at, partition_key, channel_id)`
  yield* sql`ALTER TABLE pending_events ADD COLUMN conversation_id TEXT`
  yield* sql`ALTER TABLE dead_letters ADD COLUMN conversation_id TEXT`
  yield* sql`ALTER TABLE guild_settings ADD COLUMN conversations TEXT`
  yield* sql`ALTER TABLE guild_settings ADD COLUMN parallel INTEGER`
})

/**
 * What the agent sees and what the user gets (images, the silent-run fallback, feedback, the runs
 * view). The guild settings `fallback`, `images` and `feedback` are new columns, NULL (the default)
 * for every existing guild.
 *
 * pending_events.fallback_at records that Aurora is about to post a silent run's text itself
 * (before the post): a restart finds it and never posts it again.
 *
 * runs keeps the guild's (or the DMs') latest dispatched events for `/aurora runs`: one row per
 * message with its latest outcome (a retried event replaces its row), pruned to the newest 100 per
 * partition. `tool_calls` is a JSON array of the tool names the run called, in order.
 */
const agentTurnTables = Effect.gen(function*() {
  const sql = yield* SqlClient.SqlClient
  yield* sql`ALTER TABLE guild_settings ADD COLUMN fallback TEXT`
  yield* sql`ALTER TABLE guild_settings ADD COLUMN images INTEGER`
  yield* sql`ALTER TABLE guild_settings ADD COLUMN feedback INTEGER`
  yield* sql`ALTER TABLE pending_events ADD COLUMN fallback_at INTEGER`
  yield* sql`CREATE TABLE runs (
    partition TEXT NOT NULL,
    message_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    channel_id TEXT NOT NULL,
    conversation_id TEXT,
    run_id TEXT,
    outcome TEXT NOT NULL,
    detail TEXT,
    tool_calls TEXT NOT NULL,
    duration_ms INTEGER,
    queued_ms INTEGER,
    finished_at INTEGER NOT NULL,
    PRIMARY KEY (partition, message_id)
  )`
  yield* sql`CREATE INDEX runs_newest ON runs (partition, finished_at DESC, seq DESC)`
})

/**
 * tool_calls records Aurora's own tool executions (built-in Discord tools, ToolCalls): a call id is
 * inserted (started) before its side effect and its result written after, so a replayed id is
 * answered from here and never executed twice. tool_call_id is UNIQUE because it is the call's
 * identity; `seq` (AUTOINCREMENT, never reused) orders calls started in the same millisecond.
 * status and tool_return are NULL until the call finished. Rows are pruned when a call starts:
 * those started more than 7 days earlier, and a partition's beyond its newest 5 000; the indexes
 * serve both prunings.
 */
const toolCallTables = Effect.gen(function*() {
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
const toolSettingsColumns = Effect.gen(function*() {
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
const approvalTables = Effect.gen(function*() {
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
const openStopTables = Effect.gen(function*() {
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
const approvalActionsColumn = Effect.gen(function*() {
  const sql = yield* SqlClient.SqlClient
  yield* sql`ALTER TABLE approvals ADD COLUMN actions_before TEXT NOT NULL DEFAULT '[]'`
})

/** Every migration by id, in order (exported so a test can build a database of an earlier version). */
export const migrationSteps = {
  "1_settings": settingsTables,
  "2_durable_queue": durableQueueTables,
  "3_conversations": conversationTables,
  "4_agent_turn": agentTurnTables,
  "5_tool_calls": toolCallTables,
  "6_tool_settings": toolSettingsColumns,
  "7_approvals": approvalTables,
  "8_open_stops": openStopTables,
  "9_approval_actions": approvalActionsColumn
} as const

export const migrations: Migrator.Loader = Migrator.fromRecord(migrationSteps)

/** Tables every applied schema must have; checked after migrating (see Database). */
export const requiredTables: ReadonlyArray<string> = [
  "guild_settings",
  "global_settings",
  "pending_events",
  "dead_letters",
  "conversations",
  "runs",
  "tool_calls",
  "approvals",
  "open_stops"
]

/**
 * Runs the pending migrations in one transaction. The generic Migrator is used rather than the
 * sqlite-node one, whose only addition is dumping the schema with the sqlite3 CLI (unused here)
 * at the price of requiring FileSystem, Path and CommandExecutor.
 */
export const runMigrations = Migrator.make({})({ loader: migrations })
