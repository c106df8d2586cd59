/**
 * From an invocation to a reply: finds the command, checks who may run it, runs its handler, and
 * turns every failure into a readable reply. `handleInvocation` never fails, so one bad
 * interaction cannot end the interaction loop.
 */
import { Effect } from "effect"
import type { InvalidSetting, StorageError } from "../domain/Errors.js"
import { settingKeys } from "../domain/Settings.js"
import type { CircuitBreaker } from "../services/health/CircuitBreaker.js"
import type { ConversationStore } from "../services/conversation/ConversationStore.js"
import type { DeadLetters } from "../services/queue/DeadLetters.js"
import type { RunLog } from "../services/queue/RunLog.js"
import type { ContextService } from "../services/prompt/ContextService.js"
import type { ErrorStats } from "../services/health/ErrorStats.js"
import type { EventQueue } from "../services/queue/EventQueue.js"
import type { LettaClient, LettaEndpoint } from "../services/letta/LettaClient.js"
import type { PromptService } from "../services/prompt/PromptService.js"
import type { SettingsStore } from "../services/storage/SettingsStore.js"
import { denialText, requireAccess } from "./Access.js"
import { disable, dmDisable, dmEnable, enable } from "./AgentCommands.js"
import { setConfig, showConfig } from "./ConfigCommands.js"
import { previewContext } from "./ContextPreview.js"
import { conversationReset, conversationShow, setConversations } from "./ConversationCommands.js"
import { queueFailed, queueRetry } from "./DeadLetterCommands.js"
import { commandName, type CommandSpec, commandSpecs, previewMenuName, specKey } from "./Definitions.js"
import { eventsErrors, eventsPause, eventsResetCircuit, eventsResume, eventsStatus } from "./EventsCommands.js"
import { code } from "./Format.js"
import { type AccessDenied, type CommandRejected, commandLabel, type Invocation, Reply } from "./Invocation.js"
import { lettaUrl } from "./LettaUrlCommand.js"
import type { CommandOwners } from "./Owners.js"
import type { PreviewSource } from "./PreviewSource.js"
import { queueClear, queueStatus } from "./QueueCommands.js"
import { runs } from "./RunsCommand.js"

/** Everything the handlers read or change. */
export type CommandEnv =
  | SettingsStore
  | EventQueue
  | DeadLetters
  | CircuitBreaker
  | ErrorStats
  | LettaClient
  | LettaEndpoint
  | ContextService
  | PromptService
  | CommandOwners
  | PreviewSource
  | ConversationStore
  | RunLog

type CommandError = CommandRejected | AccessDenied | InvalidSetting | StorageError

type Handler = (invocation: Invocation) => Effect.Effect<Reply, CommandError, CommandEnv>

const handlers: Readonly<Record<string, Handler>> = {
  enable,
  disable,
  lettaurl: lettaUrl,
  context: previewContext,
  ...Object.fromEntries(settingKeys.map((key) => [specKey("config", key), setConfig(key)])),
  "config show": showConfig,
  "queue status": queueStatus,
  "queue clear": queueClear,
  "queue failed": queueFailed,
  "queue retry": queueRetry,
  "events status": eventsStatus,
  "events pause": eventsPause,
  "events resume": eventsResume,
  "events errors": eventsErrors,
  "events resetcircuit": eventsResetCircuit,
  "dm enable": dmEnable,
  "dm disable": dmDisable,
  // Replaces the generic handler: this setting also has a DM scope.
  "config conversations": setConversations,
  "conversation show": conversationShow,
  "conversation reset": conversationReset,
  runs
}

const menuSpec: CommandSpec = { group: null, subcommand: "context", access: "manage", slow: true }

/** The registered command an invocation names, if any (the menu command previews like `context`). */
export const specOf = (invocation: Invocation): CommandSpec | undefined => {
  if (invocation.source === "menu") return invocation.name === previewMenuName ? menuSpec : undefined
  if (invocation.name !== commandName) return undefined
  return commandSpecs.find((spec) => spec.group === invocation.group && spec.subcommand === invocation.subcommand)
}

const run = (invocation: Invocation): Effect.Effect<Reply, CommandError, CommandEnv> =>
  Effect.gen(function*() {
    const spec = specOf(invocation)
    const handler = spec === undefined ? undefined : handlers[specKey(spec.group, spec.subcommand)]
    if (spec === undefined || handler === undefined) {
      yield* Effect.logWarning("unknown command")
      return Reply.text(
        `❌ Unknown command \`${commandLabel(invocation)}\`. Discord may still show an older version of Aurora's commands.`
      )
    }
    yield* requireAccess(invocation, spec.access)
    return yield* handler(invocation)
  })

export const handleInvocation = (invocation: Invocation): Effect.Effect<Reply, never, CommandEnv> => {
  const label = commandLabel(invocation)
  return run(invocation).pipe(
    Effect.catchTags({
      CommandRejected: (rejected) => Effect.succeed(Reply.text(rejected.message)),
      AccessDenied: (denied) =>
        Effect.logWarning("permission denied").pipe(
          Effect.annotateLogs({ required: denied.required, deniedCommand: denied.command }),
          Effect.as(Reply.text(denialText(denied)))
        ),
      InvalidSetting: (invalid) =>
        Effect.succeed(
          Reply.text(`❌ **${invalid.key}** must be ${invalid.allowed} (got ${code(invalid.value, 60)}). Nothing was changed.`)
        ),
      StorageError: (error) =>
        Effect.logError("command could not save its change", error).pipe(
          Effect.as(
            Reply.text(
              "❌ Aurora could not save this change (database error); nothing was changed. The details are in Aurora's log."
            )
          )
        )
    }),
    Effect.catchAllCause((cause) =>
      Effect.logError("command failed", cause).pipe(
        Effect.as(Reply.text(`❌ Something went wrong running \`${label}\`. The details are in Aurora's log.`))
      )
    ),
    Effect.annotateLogs({
      command: label,
      userId: invocation.userId,
      guildId: invocation.guildId ?? "-",
      interactionId: invocation.interactionId
    }),
    Effect.withSpan("Commands.handle", { attributes: { command: label, userId: invocation.userId } })
  )
}
