/**
 * Aurora's built-in Discord tools (`tools` = `builtin`): declared to Letta as client tools
 * (`definitions`), and executed here with Aurora's own bot account when a run stops for one of
 * them. `execute(call, scope)` never fails: whatever happens is a ToolResult for the agent, and
 * an error is one line it can read. In order:
 *
 * 1. Arguments: the model's JSON text, decoded by the tool's schema (tools/Definitions.ts): not
 *    JSON, not an object, a missing or malformed field -> error naming the field.
 * 2. Content (`discord_send`): empty -> error; over 2 000 characters (code points) -> error telling
 *    the agent to shorten or split it. Never cut silently.
 * 3. Where (tools/Confinement.ts): the channel is looked up first — unknown to Discord (or hidden
 *    from the bot) -> error; then it must be in the triggering server (or be the triggering DM
 *    channel) -> else error; then it must hold messages (not a forum itself, a category) -> else
 *    error. `discord_get_server_info` takes the triggering server only.
 * 4. The Discord call, through the DiscordActions port: a missing permission (403), a message not
 *    found (404), a rate limit or any other refusal -> error naming it. Nothing is posted unless
 *    every check above passed.
 * 5. Success: a send or a reaction says what was done (with the new message's id); a read returns
 *    bounded JSON data marked untrusted (tools/Results.ts).
 *
 * Posts never ping @everyone, @here or roles (the port parses user mentions only). An unknown
 * tool name, or a defect in a step, is an error result too; only interruption passes through (so
 * that ToolCalls.executeOnce leaves the call recorded as started, never run again).
 *
 * Parts, in tools/: Definitions.ts (names, JSON Schemas, argument schemas), Actions.ts (the
 * Discord port) and GatewayActions.ts (its discord.js implementation), Confinement.ts, Results.ts.
 */
import { Duration, Effect, Either } from "effect"
import type { DiscordFailure } from "../../domain/Errors.js"
import { type ToolCall, ToolResult, type ToolScope } from "../../domain/ToolCall.js"
import { type DiscordActionsShape, DiscordActions, type LocatedChannel } from "./tools/Actions.js"
import { confineChannel, confineGuild } from "./tools/Confinement.js"
import {
  decodeArguments,
  defaultReadLimit,
  definitions,
  isBuiltinTool,
  maxMessageLength,
  ReactionArguments,
  ReadArguments,
  SendArguments,
  ServerInfoArguments,
  ToolNames
} from "./tools/Definitions.js"
import { readMessagesResult, serverInfoResult } from "./tools/Results.js"

export { DiscordActions } from "./tools/Actions.js"
export type { DiscordActionsShape, GuildSummary, LocatedChannel, PostedMessage } from "./tools/Actions.js"
export { type ClientTool, definitions, isBuiltinTool, type ToolName, ToolNames } from "./tools/Definitions.js"

/** A step's failure is the agent's one-line error. */
type Step<A> = Effect.Effect<A, string>

const fromEither = <A>(either: Either.Either<A, string>): Step<A> =>
  Either.match(either, { onLeft: Effect.fail, onRight: Effect.succeed })

const oneLine = (text: string, max = 300) => {
  const line = text.replace(/\s+/g, " ").trim()
  return line.length <= max ? line : `${line.slice(0, max)}…`
}

/** A Discord failure as the agent reads it; `doing` completes "Aurora lacks the permission to ...". */
export const describeFailure = (failure: DiscordFailure, doing: string, channelId: string): string => {
  switch (failure._tag) {
    case "MissingAccess":
      return `Aurora lacks the permission to ${doing} in channel ${channelId}`
    case "MessageNotFound":
      return `message ${failure.messageId} not found in channel ${failure.channelId}`
    case "DiscordRateLimited":
      return `Discord is rate limiting Aurora: try again in ${Math.ceil(Duration.toMillis(failure.retryAfter) / 1000)} s`
    case "DiscordError":
      return `Discord refused to ${doing} in channel ${channelId}: ${oneLine(failure.reason)}`
  }
}

export const makeDiscordTools = (actions: DiscordActionsShape) => {
  /** The channel, when it exists, is where this call may act, and holds messages. */
  const usableChannel = (scope: ToolScope, channelId: string, doing: string): Step<LocatedChannel> =>
    actions.locateChannel(channelId).pipe(
      Effect.mapError((failure) => describeFailure(failure, doing, channelId)),
      Effect.flatMap((channel) =>
        channel === null
          ? Effect.fail(`channel ${channelId} not found (unknown, deleted, or not visible to Aurora)`)
          : Effect.as(fromEither(confineChannel(scope, channel)), channel)
      ),
      Effect.filterOrFail(
        (channel) => channel.textBased,
        (channel) =>
          `channel ${channelId} (${channel.kind}) holds no messages${
            channel.kind === "forum" || channel.kind === "media" ? ": use one of its posts (threads)" : ""
          }`
      )
    )

  const send = (text: string, scope: ToolScope): Step<string> =>
    Effect.gen(function*() {
      const args = yield* fromEither(decodeArguments(ToolNames.send, SendArguments, text))
      const length = [...args.message].length
      if (args.message.trim() === "") return yield* Effect.fail("message is empty: Discord posts no empty message")
      if (length > maxMessageLength) {
        return yield* Effect.fail(
          `message is ${length} characters: Discord allows at most ${maxMessageLength}; shorten it or send it in parts`
        )
      }
      yield* usableChannel(scope, args.channelId, "send messages")
      const posted = yield* actions.post(args.channelId, args.message, args.replyToMessageId).pipe(
        Effect.mapError((failure) => describeFailure(failure, "send messages", args.channelId))
      )
      const reply = posted.replyTo !== null
        ? ` as a reply to message ${posted.replyTo}`
        : args.replyToMessageId === undefined
        ? ""
        : ` (not as a reply: message ${args.replyToMessageId} was not found in that channel)`
      return `sent message ${posted.messageId} to channel ${posted.channelId}${reply}`
    })

  const read = (text: string, scope: ToolScope): Step<string> =>
    Effect.gen(function*() {
      const args = yield* fromEither(decodeArguments(ToolNames.readMessages, ReadArguments, text))
      yield* usableChannel(scope, args.channelId, "read messages")
      const messages = yield* actions.recentMessages(args.channelId, args.limit ?? defaultReadLimit).pipe(
        Effect.mapError((failure) => describeFailure(failure, "read message history", args.channelId))
      )
      return readMessagesResult(args.channelId, messages)
    })

  const react = (text: string, scope: ToolScope): Step<string> =>
    Effect.gen(function*() {
      const args = yield* fromEither(decodeArguments(ToolNames.addReaction, ReactionArguments, text))
      yield* usableChannel(scope, args.channelId, "add reactions")
      yield* actions.react(args.channelId, args.messageId, args.emoji).pipe(
        Effect.mapError((failure) => describeFailure(failure, "add reactions", args.channelId))
      )
      return `reacted to message ${args.messageId} in channel ${args.channelId}`
    })

  const serverInfo = (text: string, scope: ToolScope): Step<string> =>
    Effect.gen(function*() {
      const args = yield* fromEither(decodeArguments(ToolNames.serverInfo, ServerInfoArguments, text))
      yield* fromEither(confineGuild(scope, args.guildId))
      const guild = yield* actions.guild(args.guildId).pipe(
        Effect.mapError((failure) => describeFailure(failure, "read the server", "-"))
      )
      if (guild === null) return yield* Effect.fail(`server ${args.guildId} not found (Aurora is not in it)`)
      return serverInfoResult(guild)
    })

  const run = (call: ToolCall, scope: ToolScope): Step<string> => {
    switch (call.name) {
      case ToolNames.send:
        return send(call.arguments, scope)
      case ToolNames.readMessages:
        return read(call.arguments, scope)
      case ToolNames.addReaction:
        return react(call.arguments, scope)
      case ToolNames.serverInfo:
        return serverInfo(call.arguments, scope)
      default:
        return Effect.fail(`${oneLine(call.name, 100)} is not one of Aurora's Discord tools`)
    }
  }

  /** Runs one call where `scope` allows it (see the module header); never fails. */
  const execute = (call: ToolCall, scope: ToolScope): Effect.Effect<ToolResult> =>
    run(call, scope).pipe(
      Effect.match({ onFailure: ToolResult.error, onSuccess: ToolResult.success }),
      Effect.catchAllDefect((defect) =>
        Effect.as(
          Effect.logError("a built-in tool failed unexpectedly", defect),
          ToolResult.error("Aurora failed while running this tool (an internal error); it was not completed")
        )
      ),
      Effect.annotateLogs({ tool: call.name, toolCallId: call.toolCallId, channelId: scope.channelId }),
      Effect.withSpan("DiscordTools.execute", { attributes: { tool: call.name, toolCallId: call.toolCallId } })
    )

  return { definitions, isBuiltinTool, execute } as const
}

export class DiscordTools extends Effect.Service<DiscordTools>()("aurora/DiscordTools", {
  effect: Effect.map(DiscordActions, makeDiscordTools)
}) {}
