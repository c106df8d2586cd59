/**
 * The settings tables' rows and the domain's values, both ways (see migrations.ts for the
 * tables): a guild is one row with a column per setting, the global settings are key/value rows.
 * Decoding is cell by cell: a value that does not decode (a hand-edited row) becomes the default
 * for that cell and a problem for the store to log.
 */
import { Either, Schema } from "effect"
import { ConversationMode } from "../../domain/Event.js"
import {
  defaultGlobalSettings,
  defaultGuildSettings,
  FallbackMode,
  type GlobalSettings,
  GuildSettings,
  type GuildState,
  type SettingKey,
  ToolsMode
} from "../../domain/Settings.js"

/** The Letta base URL override: an absolute http(s) URL. */
export const LettaBaseUrl = Schema.String.pipe(
  Schema.filter((text) => {
    if (!URL.canParse(text)) return false
    const protocol = new URL(text).protocol
    return protocol === "http:" || protocol === "https:"
  }, { description: "an http or https URL" })
)

/** SQLite has no boolean type: flags are stored as 0/1. */
const IntBoolean = Schema.transformLiterals([0, false], [1, true])
const AgentId = Schema.NonEmptyTrimmedString

export interface GuildRow {
  readonly guild_id: string
  readonly enabled: unknown
  readonly agent_id: unknown
  readonly paused: unknown
  readonly replydepth: unknown
  readonly typing: unknown
  readonly ratelimit: unknown
  readonly queuesize: unknown
  readonly timeout: unknown
  readonly mcpguidance: unknown
  readonly conversations: unknown
  readonly parallel: unknown
  readonly fallback: unknown
  readonly images: unknown
  readonly feedback: unknown
  readonly tools: unknown
  readonly approvaltimeout: unknown
}

/** The column value of a valid setting. */
export const toColumn = (value: number | boolean | string): number | string =>
  typeof value === "boolean" ? (value ? 1 : 0) : value

/**
 * Decodes one row field by field. A value that does not decode (a hand-edited row) becomes the
 * default for that field and a problem to log: one bad cell never takes a guild or the bot down.
 */
export const decodeGuildRow = (row: GuildRow): { readonly state: GuildState; readonly problems: ReadonlyArray<string> } => {
  const problems: Array<string> = []
  const field = <A, I>(column: string, raw: unknown, schema: Schema.Schema<A, I>, fallback: A): A =>
    Either.getOrElse(Schema.decodeUnknownEither(schema)(raw), () => {
      problems.push(`${column}=${JSON.stringify(raw)}`)
      return fallback
    })
  // NULL means never set: the current default, not a problem.
  const setting = <K extends SettingKey, I>(key: K, schema: Schema.Schema<GuildSettings[K], I>): GuildSettings[K] =>
    row[key] === null ? defaultGuildSettings[key] : field(key, row[key], schema, defaultGuildSettings[key])
  const state: GuildState = {
    guildId: row.guild_id,
    enabled: field("enabled", row.enabled, IntBoolean, false),
    agentId: field("agent_id", row.agent_id, Schema.NullOr(AgentId), null),
    paused: field("paused", row.paused, IntBoolean, false),
    settings: {
      replydepth: setting("replydepth", GuildSettings.fields.replydepth),
      typing: setting("typing", IntBoolean),
      ratelimit: setting("ratelimit", GuildSettings.fields.ratelimit),
      queuesize: setting("queuesize", GuildSettings.fields.queuesize),
      timeout: setting("timeout", GuildSettings.fields.timeout),
      mcpguidance: setting("mcpguidance", IntBoolean),
      conversations: setting("conversations", ConversationMode),
      parallel: setting("parallel", GuildSettings.fields.parallel),
      fallback: setting("fallback", FallbackMode),
      images: setting("images", IntBoolean),
      feedback: setting("feedback", IntBoolean),
      tools: setting("tools", ToolsMode),
      approvaltimeout: setting("approvaltimeout", GuildSettings.fields.approvaltimeout)
    }
  }
  return { state, problems }
}

export const globalKeys = {
  lettaBaseUrl: "lettaBaseUrl",
  dmAgentId: "dmAgentId",
  globalPause: "globalPause",
  dmConversations: "dmConversations"
} as const
const PauseText = Schema.transformLiterals(["true", true], ["false", false])

export const decodeGlobalRows = (
  rows: ReadonlyArray<{ readonly key: string; readonly value: unknown }>
): { readonly global: GlobalSettings; readonly problems: ReadonlyArray<string> } => {
  const problems: Array<string> = []
  const value = <A, I>(key: string, schema: Schema.Schema<A, I>, fallback: A): A => {
    const row = rows.find((r) => r.key === key)
    if (row === undefined) return fallback
    return Either.getOrElse(Schema.decodeUnknownEither(schema)(row.value), () => {
      problems.push(`${key}=${JSON.stringify(row.value)}`)
      return fallback
    })
  }
  const global: GlobalSettings = {
    lettaBaseUrl: value(globalKeys.lettaBaseUrl, Schema.NullOr(LettaBaseUrl), defaultGlobalSettings.lettaBaseUrl),
    dmAgentId: value(globalKeys.dmAgentId, Schema.NullOr(AgentId), defaultGlobalSettings.dmAgentId),
    globalPause: value(globalKeys.globalPause, PauseText, defaultGlobalSettings.globalPause),
    dmConversations: value(globalKeys.dmConversations, ConversationMode, defaultGlobalSettings.dmConversations)
  }
  return { global, problems }
}
