/**
 * The settings tables (1_settings), one step of the schema (see ../migrations.ts).
 */
import { SqlClient } from "@effect/sql"
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
export const settingsTables = Effect.gen(function*() {
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
