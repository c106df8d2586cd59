/**
 * Per-guild settings: the one definition of every setting's default and allowed range.
 * The slash commands, the settings store and the Discord option metadata all read these rules.
 */
import { Either, Schema } from "effect"
import { InvalidSetting } from "./Errors.js"
import { ConversationMode } from "./Event.js"

/**
 * What happens when a run ends normally without a Discord reply (a *silent* run): `post` posts
 * the agent's text as a reply to the triggering message, `off` only logs and counts it.
 */
export const FallbackMode = Schema.Literal("post", "off")
export type FallbackMode = typeof FallbackMode.Type

/**
 * Who runs the agent's Discord tools: `mcp`, an mcp-discord server attached to the agent (the
 * agent's own tools); `builtin`, Aurora itself, declared to Letta as client tools on every request.
 */
export const ToolsMode = Schema.Literal("mcp", "builtin")
export type ToolsMode = typeof ToolsMode.Type

export interface NumberRule {
  readonly kind: "number"
  readonly description: string
  readonly default: number
  readonly min: number
  readonly max: number
  /** Whole numbers only (replydepth, queuesize, timeout, parallel). */
  readonly integer: boolean
  readonly unit?: string
}

export interface BooleanRule {
  readonly kind: "boolean"
  readonly description: string
  readonly default: boolean
}

/** One of a few words (`conversations`: channel or shared). */
export interface ChoiceRule {
  readonly kind: "choice"
  readonly description: string
  readonly default: string
  readonly choices: ReadonlyArray<string>
}

export type SettingRule = NumberRule | BooleanRule | ChoiceRule

export const SettingRules = {
  replydepth: {
    kind: "number",
    description: "Reply-chain depth: how many parent messages are included",
    default: 5,
    min: 1,
    max: 10,
    integer: true
  },
  typing: { kind: "boolean", description: "Show a typing indicator while the agent runs", default: true },
  ratelimit: {
    kind: "number",
    description: "Minimum seconds between dispatches per channel",
    default: 2.0,
    min: 0.5,
    max: 10,
    integer: false,
    unit: "seconds"
  },
  queuesize: {
    kind: "number",
    description: "Maximum pending events for the guild",
    default: 50,
    min: 10,
    max: 200,
    integer: true
  },
  timeout: {
    kind: "number",
    description: "Maximum seconds for one agent run",
    default: 60,
    min: 10,
    max: 300,
    integer: true,
    unit: "seconds"
  },
  mcpguidance: { kind: "boolean", description: "Include MCP tool hints in prompts", default: true },
  conversations: {
    kind: "choice",
    description: "A Letta conversation per channel (runs in parallel) or the agent's shared one",
    default: "channel",
    choices: ConversationMode.literals
  },
  parallel: {
    kind: "number",
    description: "Maximum runs of the agent at once (different channels)",
    default: 8,
    min: 1,
    max: 32,
    integer: true
  },
  fallback: {
    kind: "choice",
    description: "A run with text but no Discord reply: post the text itself, or only log it",
    default: "post",
    choices: FallbackMode.literals
  },
  images: { kind: "boolean", description: "Pass image attachments to the agent as image content", default: true },
  feedback: {
    kind: "boolean",
    description: "React ⏳ / ⚠️ on mentions refused (queue full) or dead-lettered",
    default: true
  },
  tools: {
    kind: "choice",
    description: "Discord tools: an mcp-discord server on the agent, or built into Aurora",
    default: "mcp",
    choices: ToolsMode.literals
  },
  approvaltimeout: {
    kind: "number",
    description: "Minutes a tool approval waits for a decision before it is denied",
    default: 10,
    min: 1,
    max: 60,
    integer: true,
    unit: "minutes"
  }
} as const satisfies Record<string, SettingRule>

export type SettingKey = keyof typeof SettingRules
export const settingKeys = Object.keys(SettingRules) as ReadonlyArray<SettingKey>

const ranged = (rule: NumberRule) => {
  const base = rule.integer ? Schema.Int : Schema.Number.pipe(Schema.finite())
  return base.pipe(
    Schema.greaterThanOrEqualTo(rule.min),
    Schema.lessThanOrEqualTo(rule.max),
    Schema.annotations({ description: rule.description })
  )
}

export const ReplyDepth = ranged(SettingRules.replydepth)
export const RateLimit = ranged(SettingRules.ratelimit)
export const QueueSize = ranged(SettingRules.queuesize)
export const TimeoutSeconds = ranged(SettingRules.timeout)
export const Parallel = ranged(SettingRules.parallel)
export const ApprovalTimeout = ranged(SettingRules.approvaltimeout)

export const GuildSettings = Schema.Struct({
  replydepth: ReplyDepth,
  typing: Schema.Boolean,
  ratelimit: RateLimit,
  queuesize: QueueSize,
  timeout: TimeoutSeconds,
  mcpguidance: Schema.Boolean,
  conversations: ConversationMode,
  parallel: Parallel,
  fallback: FallbackMode,
  images: Schema.Boolean,
  feedback: Schema.Boolean,
  tools: ToolsMode,
  approvaltimeout: ApprovalTimeout
})
export type GuildSettings = typeof GuildSettings.Type

export const defaultGuildSettings: GuildSettings = {
  replydepth: SettingRules.replydepth.default,
  typing: SettingRules.typing.default,
  ratelimit: SettingRules.ratelimit.default,
  queuesize: SettingRules.queuesize.default,
  timeout: SettingRules.timeout.default,
  mcpguidance: SettingRules.mcpguidance.default,
  conversations: SettingRules.conversations.default,
  parallel: SettingRules.parallel.default,
  fallback: SettingRules.fallback.default,
  images: SettingRules.images.default,
  feedback: SettingRules.feedback.default,
  tools: SettingRules.tools.default,
  approvaltimeout: SettingRules.approvaltimeout.default
}

/** Human wording of a rule's allowed values, used in error replies ("between 0.5 and 10 seconds"). */
export const describeRule = (key: SettingKey): string => {
  const rule: SettingRule = SettingRules[key]
  if (rule.kind === "boolean") return "true or false"
  if (rule.kind === "choice") return `${rule.choices.slice(0, -1).join(", ")} or ${rule.choices.at(-1) ?? ""}`
  const unit = rule.unit ? ` ${rule.unit}` : ""
  return `${rule.integer ? "a whole number " : ""}between ${rule.min} and ${rule.max}${unit}`
}

/**
 * Validates one setting's value against its rule. Accepts the typed value or its text form
 * ("2.5", "true"), as a crafted interaction or a stored row may carry either.
 */
export const validateSetting = <K extends SettingKey>(
  key: K,
  value: unknown
): Either.Either<GuildSettings[K], InvalidSetting> => {
  const rule: SettingRule = SettingRules[key]
  const fail = () => Either.left(new InvalidSetting({ key, value: String(value), allowed: describeRule(key) }))
  if (rule.kind === "boolean") {
    if (typeof value === "boolean") return Either.right(value as GuildSettings[K])
    if (value === "true") return Either.right(true as GuildSettings[K])
    if (value === "false") return Either.right(false as GuildSettings[K])
    return fail()
  }
  if (rule.kind === "choice") {
    // Exact words only: a stored or crafted "Shared" is not silently read as "shared".
    return typeof value === "string" && rule.choices.includes(value) ? Either.right(value as GuildSettings[K]) : fail()
  }
  const n = typeof value === "number" ? value : typeof value === "string" && value.trim() !== "" ? Number(value) : NaN
  if (!Number.isFinite(n) || n < rule.min || n > rule.max || (rule.integer && !Number.isInteger(n))) return fail()
  return Either.right(n as GuildSettings[K])
}

/** Global settings: not per guild. */
export interface GlobalSettings {
  /** Letta base URL override set by `/aurora lettaurl`; wins over LETTA_BASE_URL. */
  readonly lettaBaseUrl: string | null
  /** The agent that answers direct messages; DMs are off while null. */
  readonly dmAgentId: string | null
  readonly globalPause: boolean
  /** The `conversations` mode of direct messages (set by owners with `config conversations scope:dm`). */
  readonly dmConversations: ConversationMode
}

export const defaultGlobalSettings: GlobalSettings = {
  lettaBaseUrl: null,
  dmAgentId: null,
  globalPause: false,
  dmConversations: SettingRules.conversations.default
}

/** A guild's binding to its agent and on/off state, beside its tunable settings. */
export interface GuildState {
  readonly guildId: string
  readonly enabled: boolean
  readonly agentId: string | null
  readonly paused: boolean
  readonly settings: GuildSettings
}
