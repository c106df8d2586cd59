/**
 * The tables of the event path, steps 2 to 4 of the schema (see ../migrations.ts): the queue's
 * journal and the dead letters, the channels' conversations, and what the agent's turn records
 * (the fallback's mark, the runs log).
 */
import { SqlClient } from "@effect/sql"
import { Effect } from "effect"

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
export const durableQueueTables = Effect.gen(function*() {
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
export const conversationTables = Effect.gen(function*() {
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
export const agentTurnTables = Effect.gen(function*() {
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
