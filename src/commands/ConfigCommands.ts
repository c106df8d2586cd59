/**
 * `/aurora config <setting> value:` and `/aurora config show`. Values are checked with the domain's
 * one rule (validateSetting) before anything is stored; the queue reads its limits through its
 * policy port on every decision, so a stored change applies at once (the wake-up below only makes
 * a waiting dispatcher re-read the rate limit now instead of at its next wake).
 */
import { Effect } from "effect"
import { type SettingKey, type SettingRule, SettingRules, settingKeys, validateSetting } from "../domain/Settings.js"
import { EventQueue } from "../services/queue/EventQueue.js"
import { SettingsStore } from "../services/storage/SettingsStore.js"
import { code } from "./Format.js"
import { Colors, type Invocation, Reply } from "./Invocation.js"
import { guildOf, requiredValue } from "./Options.js"

export const formatSetting = (key: SettingKey, value: number | boolean | string): string => {
  const rule: SettingRule = SettingRules[key]
  if (typeof value === "boolean") return value ? "on" : "off"
  return rule.kind === "number" && rule.unit ? `${value} ${rule.unit}` : `${value}`
}

const effectNote: Record<SettingKey, string> = {
  replydepth: "Prompts include up to this many parent messages from now on.",
  typing: "Applies to the next agent run.",
  ratelimit: "Applies now: each channel is dispatched at most once per this interval.",
  queuesize: "Applies now: the queue accepts at most this many pending events for this server.",
  timeout: "Applies to the next agent run.",
  mcpguidance: "Applies to the next prompt.",
  conversations: "Applies to mentions queued from now on (queued ones keep their mode). In `channel` mode each " +
    "channel and thread starts its own conversation at its next mention.",
  parallel: "Applies now: at most this many runs of the agent at once, each in its own channel (`channel` mode).",
  fallback: "Applies to runs that end from now on.",
  images: "Applies to mentions queued from now on.",
  feedback: "Applies from now on.",
  tools: "Applies to runs started from now on. With `builtin`, detach mcp-discord's tools from the agent " +
    "(see the README) so that the names do not collide.",
  approvaltimeout: "Applies to approvals asked from now on."
}

export const setConfig = (key: SettingKey) => (invocation: Invocation) =>
  Effect.gen(function*() {
    const guildId = yield* guildOf(invocation)
    const raw = yield* requiredValue(invocation, "value")
    // Checked here against the rule first: an invalid value never reaches the store.
    const value = yield* validateSetting(key, raw)
    const store = yield* SettingsStore
    const settings = yield* store.setSetting(guildId, key, value)
    const queue = yield* EventQueue
    yield* queue.limitsChanged
    yield* Effect.logInfo("setting changed").pipe(Effect.annotateLogs({ setting: key, value: String(settings[key]) }))
    return Reply.text(`✅ **${key}** is now **${formatSetting(key, settings[key])}**. ${effectNote[key]}`)
  })

const ruleText = (key: SettingKey): string => {
  const rule: SettingRule = SettingRules[key]
  const range = rule.kind === "number"
    ? `${rule.min}–${rule.max}, `
    : rule.kind === "choice"
    ? `${rule.choices.join(" or ")}, `
    : ""
  return `${range}default ${formatSetting(key, rule.default)}`
}

export const showConfig = (invocation: Invocation) =>
  Effect.gen(function*() {
    const guildId = yield* guildOf(invocation)
    const store = yield* SettingsStore
    const state = yield* store.guild(guildId)
    return Reply.embed({
      title: "Aurora settings for this server",
      color: Colors.info,
      fields: [
        {
          name: "Agent",
          value: state.agentId === null
            ? "none (use `/aurora enable`)"
            : `${code(state.agentId)} — ${state.enabled ? "enabled" : "disabled"}`,
          inline: false
        },
        ...settingKeys.map((key) => ({
          name: key,
          value: `**${formatSetting(key, state.settings[key])}**\n${ruleText(key)}`,
          inline: true
        }))
      ],
      footer: "Change one with /aurora config <setting> value:<value>"
    })
  })
