/**
 * The commands program: registers `/aurora` and the "Preview Aurora prompt" menu command at
 * start-up, then answers every interaction from the gateway: approval button clicks go to
 * ApprovalButtons, everything else to the command adapter. Interactions are handled
 * concurrently (a slow agent check does not hold up a status view), and `respond` never fails,
 * so one bad interaction never ends the loop.
 */
import type { Interaction } from "discord.js"
import { Effect, Layer, Option, Stream } from "effect"
import { AuroraConfig } from "../domain/Config.js"
import type { DiscordFailure } from "../domain/Errors.js"
import { commandDefinitions } from "../commands/Definitions.js"
import { answerApprovalClick, isApprovalClick } from "../commands/ApprovalButtons.js"
import { respond } from "../commands/InteractionAdapter.js"
import { CommandOwners } from "../commands/Owners.js"
import type { CommandEnv } from "../commands/Router.js"
import type { Approvals } from "../services/approvals/Gate.js"
import { PreviewSource } from "../commands/PreviewSource.js"
import { DiscordGateway } from "../services/discord/DiscordGateway.js"
import { toDiscordFailure } from "../services/discord/DiscordMapping.js"

/** Interactions answered at once; more wait their turn in the gateway's queue. */
const concurrency = 8

/**
 * Bulk-overwrites the application's global commands (PUT /applications/{app}/commands) and, when
 * AURORA_COMMAND_GUILD_ID is set, the commands of that guild (guild commands update at once, which
 * helps while developing).
 */
export const registerCommands: Effect.Effect<void, DiscordFailure, DiscordGateway | AuroraConfig> = Effect.gen(function*() {
  const gateway = yield* DiscordGateway
  const commands = gateway.client.application.commands
  // A guild id, checked at start-up.
  const guildId = (yield* AuroraConfig).commandGuildId
  yield* Effect.tryPromise({
    try: () => commands.set([...commandDefinitions]),
    catch: (error) => toDiscordFailure(error, { operation: "registerCommands", channelId: "-" })
  })
  yield* Effect.logInfo("slash commands registered").pipe(Effect.annotateLogs({ commands: commandDefinitions.length }))
  if (Option.isNone(guildId)) return
  const id = guildId.value
  yield* Effect.tryPromise({
    try: () => commands.set([...commandDefinitions], id),
    catch: (error) => toDiscordFailure(error, { operation: "registerGuildCommands", channelId: "-" })
  })
  yield* Effect.logInfo("slash commands registered on the development guild").pipe(Effect.annotateLogs({ guildId: id }))
}).pipe(Effect.withSpan("Commands.register"))

/** One interaction: an approval button click, or a command. Never fails. */
const answer = (interaction: Interaction): Effect.Effect<void, never, CommandEnv | Approvals | CommandOwners> =>
  isApprovalClick(interaction) ? answerApprovalClick(interaction) : respond(interaction)

const make = Effect.gen(function*() {
  // Without registration the commands Discord already knows still work: log and carry on.
  yield* registerCommands.pipe(
    Effect.catchAll((error) => Effect.logError("could not register the slash commands", error))
  )
  const gateway = yield* DiscordGateway
  yield* gateway.interactions.pipe(
    Stream.mapEffect(answer, { concurrency, unordered: true }),
    Stream.runDrain,
    Effect.forkScoped
  )
  yield* Effect.logInfo("listening for commands")
})

/**
 * Needs the gateway, the services the handlers use (`CommandEnv`, ../commands/Router.ts) and Approvals;
 * provides its own owner check and message reader from the gateway.
 */
export const CommandsLive = Layer.scopedDiscard(make).pipe(
  Layer.provide(Layer.merge(CommandOwners.layerGateway, PreviewSource.Default))
)
