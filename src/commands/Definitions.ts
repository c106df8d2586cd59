/**
 * What Aurora registers with Discord: one `/aurora` command with subcommand groups, and the
 * message context-menu command "Preview Aurora prompt". Option limits come from SettingRules, the
 * same rules the handlers check again at run time (Discord's limits are only a first filter: an
 * admin can change who sees a command, and a crafted request can carry anything).
 */
import {
  ApplicationCommandOptionType,
  ApplicationCommandType,
  ApplicationIntegrationType,
  type APIApplicationCommandBasicOption,
  type APIApplicationCommandOption,
  type APIApplicationCommandSubcommandOption,
  InteractionContextType,
  PermissionFlagsBits,
  type RESTPostAPIChatInputApplicationCommandsJSONBody,
  type RESTPostAPIContextMenuApplicationCommandsJSONBody
} from "discord.js"
import { type SettingKey, type SettingRule, SettingRules, settingKeys } from "../domain/Settings.js"

export const commandName = "aurora"
export const previewMenuName = "Preview Aurora prompt"

/** Manage Server, as Discord's decimal bitfield string. */
export const manageGuildPermission = PermissionFlagsBits.ManageGuild.toString()

export const agentIdMaxLength = 128
export const urlMaxLength = 500
export const messageRefMaxLength = 200

/** Who may run a command: Manage Server (owners too) or Aurora's owners only. */
export type Access = "manage" | "owner"

/** The registered commands, each with who may run it. `slow` commands are deferred at once. */
export interface CommandSpec {
  readonly group: string | null
  readonly subcommand: string
  readonly access: Access
  readonly slow: boolean
}

const spec = (group: string | null, subcommand: string, access: Access, slow = false): CommandSpec => ({
  group,
  subcommand,
  access,
  slow
})

/** The design's `/aurora` table. The handlers are looked up by the same keys. */
export const commandSpecs: ReadonlyArray<CommandSpec> = [
  spec(null, "enable", "manage", true),
  spec(null, "disable", "manage"),
  spec(null, "lettaurl", "owner", true),
  spec(null, "context", "manage", true),
  ...settingKeys.map((key) => spec("config", key, "manage")),
  spec("config", "show", "manage"),
  spec("queue", "status", "manage"),
  spec("queue", "clear", "manage"),
  spec("queue", "failed", "manage"),
  spec("queue", "retry", "manage"),
  spec("events", "status", "manage"),
  spec("events", "pause", "manage"),
  spec("events", "resume", "manage"),
  spec("events", "errors", "manage"),
  spec("events", "resetcircuit", "owner"),
  spec("dm", "enable", "owner", true),
  spec("dm", "disable", "owner"),
  spec("conversation", "show", "manage"),
  spec("conversation", "reset", "manage"),
  spec(null, "runs", "manage")
]

export const specKey = (group: string | null, subcommand: string | null): string =>
  group === null ? `${subcommand ?? ""}` : `${group} ${subcommand ?? ""}`

// --- option builders ------------------------------------------------------------------------

const settingDescription = (key: SettingKey): string => {
  const rule: SettingRule = SettingRules[key]
  const range = rule.kind === "number" ? `${rule.min}-${rule.max}, ` : ""
  return `${rule.description} (${range}default ${String(rule.default)})`
}

const settingValueOption = (key: SettingKey): APIApplicationCommandBasicOption => {
  const rule: SettingRule = SettingRules[key]
  if (rule.kind === "boolean") {
    return { type: ApplicationCommandOptionType.Boolean, name: "value", description: "true or false", required: true }
  }
  if (rule.kind === "choice") {
    return {
      type: ApplicationCommandOptionType.String,
      name: "value",
      description: rule.choices.join(" or "),
      required: true,
      choices: rule.choices.map((choice) => ({ name: choice, value: choice }))
    }
  }
  const numeric = {
    name: "value",
    description: `${rule.min} to ${rule.max}${rule.unit ? ` ${rule.unit}` : ""}`,
    required: true,
    min_value: rule.min,
    max_value: rule.max
  }
  return rule.integer
    ? { type: ApplicationCommandOptionType.Integer, ...numeric }
    : { type: ApplicationCommandOptionType.Number, ...numeric }
}

const subcommand = (
  name: string,
  description: string,
  options: ReadonlyArray<APIApplicationCommandBasicOption> = []
): APIApplicationCommandSubcommandOption => ({
  type: ApplicationCommandOptionType.Subcommand,
  name,
  description,
  ...(options.length > 0 ? { options: [...options] } : {})
})

const group = (
  name: string,
  description: string,
  subcommands: ReadonlyArray<APIApplicationCommandSubcommandOption>
): APIApplicationCommandOption => ({
  type: ApplicationCommandOptionType.SubcommandGroup,
  name,
  description,
  options: [...subcommands]
})

const agentIdOption: APIApplicationCommandBasicOption = {
  type: ApplicationCommandOptionType.String,
  name: "agent_id",
  description: "The Letta agent id, e.g. agent-1234...",
  required: true,
  min_length: 1,
  max_length: agentIdMaxLength
}

const scopeOption = (description: string, other: "global" | "dm"): APIApplicationCommandBasicOption => ({
  type: ApplicationCommandOptionType.String,
  name: "scope",
  description,
  required: false,
  choices: [
    { name: "this server", value: "guild" },
    { name: other === "global" ? "all servers (owner only)" : "direct messages (owner only)", value: other }
  ]
})

/** `config conversations` also sets the DMs' mode, for owners. */
const settingScopeOptions = (key: SettingKey): ReadonlyArray<APIApplicationCommandBasicOption> =>
  key === "conversations" ? [scopeOption("Which mode to set", "dm")] : []

export const channelIdMaxLength = 25

const conversationGroup = group("conversation", "The Letta conversation of this channel", [
  subcommand("show", "This channel's conversation: id, agent, created, last used", [
    scopeOption("Which conversations to show", "dm")
  ]),
  subcommand("reset", "Forget this channel's conversation: the next mention starts a new one", [
    scopeOption("Whose conversation to forget", "dm"),
    {
      type: ApplicationCommandOptionType.String,
      name: "channel_id",
      description: "A channel or thread id (default this channel); with scope:dm, a DM channel id as show lists them",
      required: false,
      min_length: 1,
      max_length: channelIdMaxLength
    }
  ])
])

// --- the commands -----------------------------------------------------------------------------

/** Guild-only and hidden from members without Manage Server (the bot checks again at run time). */
const guildOnly = {
  default_member_permissions: manageGuildPermission,
  dm_permission: false,
  contexts: [InteractionContextType.Guild],
  integration_types: [ApplicationIntegrationType.GuildInstall]
} as const

export const auroraCommand: RESTPostAPIChatInputApplicationCommandsJSONBody = {
  type: ApplicationCommandType.ChatInput,
  name: commandName,
  description: "Set up and run Aurora, the Letta agent of this server",
  ...guildOnly,
  contexts: [...guildOnly.contexts],
  integration_types: [...guildOnly.integration_types],
  options: [
    subcommand("enable", "Bind a Letta agent to this server and start answering", [agentIdOption]),
    subcommand("disable", "Stop answering in this server (drops its pending events)"),
    subcommand("lettaurl", "Show or set the Letta server URL (owner only)", [
      {
        type: ApplicationCommandOptionType.String,
        name: "url",
        description: "http(s) URL of the Letta server, or \"reset\" to drop the override",
        required: false,
        min_length: 1,
        max_length: urlMaxLength
      }
    ]),
    subcommand("context", "Show the exact prompt a message would produce, without sending it", [
      {
        type: ApplicationCommandOptionType.String,
        name: "message_id",
        description: "A message id from this channel, or a message link from this server",
        required: true,
        min_length: 1,
        max_length: messageRefMaxLength
      }
    ]),
    group("config", "Tune Aurora in this server", [
      ...settingKeys.map((key) =>
        subcommand(key, settingDescription(key), [settingValueOption(key), ...settingScopeOptions(key)])
      ),
      subcommand("show", "Show all of this server's settings")
    ]),
    group("queue", "Pending events and dead letters of this server", [
      subcommand("status", "Pending events per channel, in flight, oldest age", [
        scopeOption("Which queue to show", "dm")
      ]),
      subcommand("clear", "Drop this server's pending events"),
      subcommand("failed", "Events that failed for good (dead letters), newest first", [
        scopeOption("Whose dead letters to show", "dm")
      ]),
      subcommand("retry", "Re-queue one dead letter, or all of them (oldest first)", [
        {
          type: ApplicationCommandOptionType.String,
          name: "message_id",
          description: "The dead letter's message id or message link; leave empty to retry all",
          required: false,
          min_length: 1,
          max_length: messageRefMaxLength
        },
        scopeOption("Whose dead letters to retry", "dm")
      ])
    ]),
    group("events", "Dispatch state, pause and errors", [
      subcommand("status", "Enabled, agent, paused, circuit breaker, queue and error rate"),
      subcommand("pause", "Stop dispatching (mentions are still queued)", [scopeOption("What to pause", "global")]),
      subcommand("resume", "Resume dispatching", [scopeOption("What to resume", "global")]),
      subcommand("errors", "Error totals, rates, types and recent operations"),
      subcommand("resetcircuit", "Force the circuit breaker to CLOSED (owner only)")
    ]),
    group("dm", "The agent that answers direct messages (owner only)", [
      subcommand("enable", "Answer direct messages with this Letta agent", [agentIdOption]),
      subcommand("disable", "Stop answering direct messages (drops pending DMs)")
    ]),
    conversationGroup,
    subcommand("runs", "The last 10 runs: message, outcome, tool calls, duration", [scopeOption("Whose runs to show", "dm")])
  ]
}

export const previewMenuCommand: RESTPostAPIContextMenuApplicationCommandsJSONBody = {
  type: ApplicationCommandType.Message,
  name: previewMenuName,
  ...guildOnly,
  contexts: [...guildOnly.contexts],
  integration_types: [...guildOnly.integration_types]
}

/** Everything registered, in one bulk overwrite. */
export const commandDefinitions = [auroraCommand, previewMenuCommand] as const
