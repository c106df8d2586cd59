/**
 * Builds the immediate context of a triggering message: its metadata and its reply chain.
 * Nothing here fails: an unreadable parent becomes a ChainGap, so a mention is never lost because
 * Discord could not serve an older message.
 */
import { Effect, Either, LogLevel } from "effect"
import type { ChainEntry, MessageContext } from "../../domain/Context.js"
import { isThread, type MessageRecord, type ReceivedMessage } from "../../domain/Discord.js"
import type { DiscordFailure } from "../../domain/Errors.js"
import { annotateLogsUnlessSet, logAnnotated } from "../health/Log.js"
import { MessageSource } from "../discord/MessageSource.js"

type GapReason = "deleted" | "forbidden" | "unavailable"

const gapReason = (error: DiscordFailure): GapReason => {
  switch (error._tag) {
    case "MessageNotFound":
      return "deleted"
    case "MissingAccess":
      return "forbidden"
    default:
      return "unavailable"
  }
}

export class ContextService extends Effect.Service<ContextService>()("aurora/ContextService", {
  effect: Effect.gen(function*() {
    const source = yield* MessageSource

    /**
     * Reads one message. A failure is classified; a defect in the adapter is logged and treated
     * as "unavailable", because a bug in fetching a parent must not drop the mention itself.
     */
    const read = (channelId: string, messageId: string): Effect.Effect<Either.Either<MessageRecord, GapReason>> =>
      source.fetchMessage(channelId, messageId).pipe(
        Effect.map(Either.right),
        Effect.catchAll((error) => Effect.succeed(Either.left(gapReason(error)))),
        Effect.catchAllDefect((defect) =>
          Effect.logWarning("reading a reply-chain parent failed unexpectedly", defect).pipe(
            Effect.annotateLogs({ channelId, parentId: messageId }),
            Effect.as(Either.left<GapReason>("unavailable"))
          )
        )
      )

    // Untraced: a span per mention costs more than building most contexts (BENCHMARKS.md, session 9).
    const build = Effect.fnUntraced(
      function*(received: ReceivedMessage, replyDepth: number) {
        const { channel, message } = received
        const depth = Number.isFinite(replyDepth) ? Math.max(0, Math.floor(replyDepth)) : 0
        // The thread starter lives in the parent channel under the thread's own id. Forum and media
        // posts have none there (their first message is inside the thread), so it is not fetched.
        const starterChannelId = isThread(channel) &&
            channel.parentId !== null &&
            channel.parentKind !== "forum" &&
            channel.parentKind !== "media" &&
            message.id !== channel.id
          ? channel.parentId
          : null

        // Collected newest first while walking up; reversed at the end.
        const parents: Array<ChainEntry> = []
        let truncated = false
        let reachedStarter = false
        let current = message
        let endedByGap = false

        while (current.reference !== null) {
          const ref = current.reference
          if (parents.length >= depth) {
            // A reference exists beyond the limit: the chain was cut, whether or not it is readable.
            truncated = true
            break
          }
          const result = yield* read(ref.channelId, ref.messageId)
          if (Either.isLeft(result)) {
            parents.push({ _tag: "ChainGap", channelId: ref.channelId, messageId: ref.messageId, reason: result.left })
            endedByGap = true
            break
          }
          const parent = result.right
          const isStarter = starterChannelId !== null && parent.id === channel.id
          reachedStarter = reachedStarter || isStarter
          parents.push({ _tag: "ChainMessage", message: parent, threadStarter: isStarter })
          current = parent
        }

        // The chain ran out of references inside a thread: its starter is the oldest parent, when
        // the depth still allows one. Whether a starter exists is unknown without a fetch, so the
        // limit alone does not mark the chain truncated here.
        if (starterChannelId !== null && !truncated && !endedByGap && !reachedStarter && parents.length < depth) {
          const starter = yield* read(starterChannelId, channel.id)
          if (Either.isRight(starter)) {
            parents.push({ _tag: "ChainMessage", message: starter.right, threadStarter: true })
          } else if (starter.left === "unavailable") {
            // 404/403 are normal (threads without a starter, or an unreadable parent channel);
            // anything else means a message we expected may be missing, so say so.
            parents.push({ _tag: "ChainGap", channelId: starterChannelId, messageId: channel.id, reason: "unavailable" })
          }
        }

        const context: MessageContext = {
          metadata: {
            messageId: message.id,
            author: message.author,
            channel,
            guild: received.guild,
            createdAt: message.createdAt
          },
          message,
          chain: { entries: parents.reverse(), truncated }
        }
        yield* logAnnotated(LogLevel.Debug, "reply chain built", { chainLength: context.chain.entries.length, truncated })
        return context
      },
      // The listener has annotated the message id already; a context preview (a command) has not.
      (effect, received) => annotateLogsUnlessSet(effect, { messageId: received.message.id })
    )

    return { build } as const
  })
}) {}
