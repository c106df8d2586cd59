/**
 * Run-time readers for command options. Discord enforces the registered option types and limits
 * only for its own clients; a crafted request can carry anything, so each reader checks again and
 * answers with a message that says what is allowed.
 */
import { Effect } from "effect"
import { agentIdMaxLength } from "./Definitions.js"
import { CommandRejected, type Invocation, type OptionValue } from "./Invocation.js"

const reject = (message: string) => new CommandRejected({ message })

export const optionValue = (invocation: Invocation, name: string): OptionValue | undefined =>
  Object.prototype.hasOwnProperty.call(invocation.options, name) ? invocation.options[name] : undefined

export const optionalString = (invocation: Invocation, name: string): Effect.Effect<string | null, CommandRejected> => {
  const value = optionValue(invocation, name)
  if (value === undefined) return Effect.succeed(null)
  return typeof value === "string" ? Effect.succeed(value) : Effect.fail(reject(`❌ \`${name}\` must be text.`))
}

export const requiredValue = (invocation: Invocation, name: string): Effect.Effect<OptionValue, CommandRejected> => {
  const value = optionValue(invocation, name)
  return value === undefined ? Effect.fail(reject(`❌ \`${name}\` is required.`)) : Effect.succeed(value)
}

/** The guild the command runs in; every `/aurora` command is guild-only. */
export const guildOf = (invocation: Invocation): Effect.Effect<string, CommandRejected> =>
  invocation.guildId === null
    ? Effect.fail(reject("❌ Aurora's commands work in a server, not in direct messages."))
    : Effect.succeed(invocation.guildId)

/** Letta ids look like `agent-<uuid>`; anything with spaces, slashes or odd characters is a typo. */
const agentIdPattern = /^[A-Za-z0-9][A-Za-z0-9._:-]*$/

export const agentIdRule = `1 to ${agentIdMaxLength} characters: letters, digits, "-", "_", "." or ":"`

export const agentIdOf = (invocation: Invocation): Effect.Effect<string, CommandRejected> =>
  Effect.flatMap(requiredValue(invocation, "agent_id"), (value) => {
    const id = typeof value === "string" ? value.trim() : ""
    return id.length > 0 && id.length <= agentIdMaxLength && agentIdPattern.test(id)
      ? Effect.succeed(id)
      : Effect.fail(reject(`❌ \`agent_id\` must be a Letta agent id (${agentIdRule}).`))
  })

/** The optional `scope` option: "guild" (the default) or the one wider scope the command allows. */
export const scopeOf = <S extends "global" | "dm">(
  invocation: Invocation,
  wider: S
): Effect.Effect<"guild" | S, CommandRejected> =>
  Effect.flatMap(optionalString(invocation, "scope"), (scope): Effect.Effect<"guild" | S, CommandRejected> => {
    if (scope === null || scope === "guild") return Effect.succeed("guild")
    if (scope === wider) return Effect.succeed(wider)
    return Effect.fail(reject(`❌ \`scope\` must be \`guild\` or \`${wider}\`.`))
  })
