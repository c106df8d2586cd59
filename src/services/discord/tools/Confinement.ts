/**
 * Where a built-in tool call may act: only where the triggering message came from.
 *
 * - From a server: any channel of that server (threads included); a channel of another server, or
 *   a DM channel, is refused.
 * - From a direct message: that DM channel only.
 * - A server id (`discord_get_server_info`): the triggering server only; none from a DM.
 *
 * A refusal is one line for the agent, naming what was asked and what is allowed. Pure: the
 * executor looks the channel up first (an unknown channel is refused before this is asked).
 */
import { Either } from "effect"
import type { ToolScope } from "../../../domain/ToolCall.js"
import type { LocatedChannel } from "./Actions.js"

export const confineChannel = (scope: ToolScope, channel: LocatedChannel): Either.Either<void, string> => {
  if (scope.guildId === null) {
    return channel.channelId === scope.channelId
      ? Either.void
      : Either.left(
        `channel ${channel.channelId} is outside this conversation: from a direct message, tools act only in its channel ${scope.channelId}`
      )
  }
  if (channel.guildId === scope.guildId) return Either.void
  return Either.left(
    channel.guildId === null
      ? `channel ${channel.channelId} is a direct message channel: tools act only in this server's channels`
      : `channel ${channel.channelId} belongs to another server: tools act only in this server (${scope.guildId})`
  )
}

export const confineGuild = (scope: ToolScope, guildId: string): Either.Either<void, string> => {
  if (scope.guildId === null) return Either.left("this conversation is a direct message: there is no server to describe")
  return guildId === scope.guildId
    ? Either.void
    : Either.left(`server ${guildId} is not this conversation's server: tools act only in this server (${scope.guildId})`)
}
