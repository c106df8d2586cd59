/**
 * Per-guild settings: the one definition of every setting's default and allowed range.
 * The slash commands, the settings store and the Discord option metadata all read these rules.
 */
import { Either, Schema } from "effect"
import { InvalidSetting } from "./Errors.js"

export interface NumberRule {
  readonly kind: "number"
  readonly description: string
  readonly default: number
  readonly min: number
  readonly max: number
  /** Whole numbers only (replydepth, queuesize, timeout). */
  readonly integer: boolean
  readonly unit?: string
}

export interface BooleanRule {
  readonly kind: "boolean"
  readonly description: string
  readonly default: boolean
}

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
  mcpguidance: { kind: "boolean", description: "Include MCP tool hints in prompts", default: true }
} as const satisfies Record<string, NumberRule | BooleanRule>

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

export const GuildSettings = Schema.Struct({
  replydepth: ReplyDepth,
  typing: Schema.Boolean,
  ratelimit: RateLimit,
  queuesize: QueueSize,
  timeout: TimeoutSeconds,
  mcpguidance: Schema.Boolean
})
export type GuildSettings = typeof GuildSettings.Type

export const defaultGuildSettings: GuildSettings = {
  replydepth: SettingRules.replydepth.default,
  typing: SettingRules.typing.default,
  ratelimit: SettingRules.ratelimit.default,
  queuesize: SettingRules.queuesize.default,
  timeout: SettingRules.timeout.default,
  mcpguidance: SettingRules.mcpguidance.default
}

/** Human wording of a rule's allowed values, used in error replies ("between 0.5 and 10 seconds"). */
export const describeRule = (key: SettingKey): string => {
  const rule: NumberRule | BooleanRule = SettingRules[key]
  if (rule.kind === "boolean") return "true or false"
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
  const rule: NumberRule | BooleanRule = SettingRules[key]
  const fail = () => Either.left(new InvalidSetting({ key, value: String(value), allowed: describeRule(key) }))
  if (rule.kind === "boolean") {
    if (typeof value === "boolean") return Either.right(value as GuildSettings[K])
    if (value === "true") return Either.right(true as GuildSettings[K])
    if (value === "false") return Either.right(false as GuildSettings[K])
    return fail()
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
}

export const defaultGlobalSettings: GlobalSettings = { lettaBaseUrl: null, dmAgentId: null, globalPause: false }

/** A guild's binding to its agent and on/off state, beside its tunable settings. */
export interface GuildState {
  readonly guildId: string
  readonly enabled: boolean
  readonly agentId: string | null
  readonly paused: boolean
  readonly settings: GuildSettings
}
