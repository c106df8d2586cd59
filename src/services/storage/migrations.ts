/**
 * The database schema, as migrations defined in code: the compiled dist/ carries them, so a
 * deployment needs no extra files. Later features append entries to the record; an applied
 * migration is never edited, since the Migrator only runs ids above the highest one recorded in
 * the database.
 *
 * This file is the record of the steps, by id and in order; each step, with the reasons for its
 * tables, is defined by topic in ./migrations/ (SettingsTables, EventTables for the event path,
 * ToolTables for tools, approvals and open stops).
 */
import { Migrator } from "@effect/sql"
import { agentTurnTables, conversationTables, durableQueueTables } from "./migrations/EventTables.js"
import { settingsTables } from "./migrations/SettingsTables.js"
import {
  approvalActionsColumn,
  approvalTables,
  openStopActionsColumn,
  openStopTables,
  toolCallTables,
  toolSettingsColumns
} from "./migrations/ToolTables.js"

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
  "9_approval_actions": approvalActionsColumn,
  "10_open_stop_actions": openStopActionsColumn
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
