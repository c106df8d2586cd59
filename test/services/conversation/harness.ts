/** Shared by the conversation store tests: one "run of the bot" on a database, the database alone, a key. */
import type { SqlClient } from "@effect/sql"
import { Effect, Layer } from "effect"
import { type ConversationKey, ConversationStore } from "../../../src/services/conversation/ConversationStore.js"
import { Database } from "../../../src/services/storage/Database.js"

/** One "run of the bot" on the database in `dir`, with the SQL conversation store. */
export const session = <A, E>(dir: string, use: Effect.Effect<A, E, ConversationStore | SqlClient.SqlClient>) =>
  use.pipe(Effect.provide(ConversationStore.layerSql.pipe(Layer.provideMerge(Database.layer(dir)))))

/** The database alone, for stores built by the test (a small bound, or several on one database). */
export const database = <A, E>(dir: string, use: Effect.Effect<A, E, SqlClient.SqlClient>) =>
  use.pipe(Effect.provide(Database.layer(dir)))

export const key = (channelId: string, agentId = "agent-1", partitionKey = "guild:g1"): ConversationKey => ({
  agentId,
  partitionKey,
  channelId
})
