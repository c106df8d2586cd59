/**
 * The six columns that place a stopped run (domain/Approval.ts `ApprovalOrigin`), shared by the
 * tables that keep one (`approvals`, `open_stops`): their schema fields, and the mapping both ways.
 * guild_id is NULL for a direct message, conversation_id NULL for the agent's default conversation,
 * run_id NULL when the run's id was not streamed.
 */
import { Schema } from "effect"
import type { ApprovalOrigin } from "../../domain/Approval.js"

export const originColumns = {
  guild_id: Schema.NullOr(Schema.String),
  channel_id: Schema.String,
  message_id: Schema.String,
  agent_id: Schema.String,
  conversation_id: Schema.NullOr(Schema.String),
  run_id: Schema.NullOr(Schema.String)
}

type OriginRow = Schema.Struct.Type<typeof originColumns>

export const originOfRow = (row: OriginRow): ApprovalOrigin => ({
  guildId: row.guild_id,
  channelId: row.channel_id,
  messageId: row.message_id,
  agentId: row.agent_id,
  conversationId: row.conversation_id,
  runId: row.run_id
})

export const rowOfOrigin = (origin: ApprovalOrigin): OriginRow => ({
  guild_id: origin.guildId,
  channel_id: origin.channelId,
  message_id: origin.messageId,
  agent_id: origin.agentId,
  conversation_id: origin.conversationId,
  run_id: origin.runId
})
