/**
 * Which Letta conversation a `channel`-mode event runs in, for the dispatcher.
 *
 * - The key is (agent id, partition, channel id): a thread or a DM channel is a channel of its own,
 *   and binding another agent starts new conversations.
 * - The conversation is the stored one (ConversationStore); without one, a new conversation is
 *   created on the agent (its description names the channel and guild by id: the event carries no
 *   names, and ids are never untrusted text) and stored. The queue runs one event of a channel at
 *   a time, so two dispatches never race to create a channel's conversation.
 * - A 404 (`ConversationNotFound`, e.g. deleted on the server) forgets the mapping. A stored
 *   conversation is then replaced once per dispatch: a new one is created and the event is sent
 *   there at once (logged at warning). A second 404 in the same dispatch, or one for a
 *   conversation this dispatch just created, fails the run (a permanent failure).
 * - A failed create is the run's failure, classified like any other (a 5xx is retried and then
 *   held, a 404 for the agent is permanent).
 * - A use is recorded (`touch`) after a successful run.
 * - The store failing is logged and does not stop the run: an unreadable mapping means a new
 *   conversation for this run, an unwritable one a conversation used for this run only.
 */
import { Clock, Effect, Option } from "effect"
import type { StorageError } from "../../domain/Errors.js"
import { Partition, type QueuedEvent } from "../../domain/Event.js"
import type { LettaRunError } from "../../domain/LettaErrors.js"
import { cacheKeyOf, type ConversationKey, ConversationStore } from "../../services/conversation/ConversationStore.js"
import { LettaExecutor } from "../../services/letta/LettaExecutor.js"

export const conversationKeyOf = (event: QueuedEvent): ConversationKey => ({
  agentId: event.agentId,
  partitionKey: Partition.key(Partition.ofEvent(event)),
  channelId: event.channelId
})

/** What the Letta server shows for the conversation: ids only (Discord ids are digits). */
export const conversationDescription = (event: QueuedEvent): string =>
  event.guildId === null
    ? `Discord DM channel ${event.channelId}`
    : `Discord channel ${event.channelId} in guild ${event.guildId}`

/** One dispatch's conversation: where its sends go, and which conversation the last one used. */
export interface DispatchConversation {
  /** The conversation key's map key (names its busy streak). */
  readonly key: string
  /**
   * Runs `run` in the channel's conversation (stored, else created); a stored conversation that is
   * gone is replaced once per dispatch (see the module header).
   */
  readonly send: <A>(run: (conversationId: string) => Effect.Effect<A, LettaRunError>) => Effect.Effect<A, LettaRunError>
  /** The conversation of the last send; undefined until one was resolved. */
  readonly current: () => string | undefined
  /** Records a use of the conversation (after a successful run). */
  readonly touch: Effect.Effect<void>
}

export const makeConversations = Effect.gen(function*() {
  const store = yield* ConversationStore
  const executor = yield* LettaExecutor

  const logged = (what: string) => (error: StorageError) => Effect.logError(`conversations: could not ${what}`, error)

  /** A new conversation on the agent, stored for the channel. */
  const create = (key: ConversationKey, event: QueuedEvent) =>
    Effect.gen(function*() {
      const conversationId = yield* executor.createConversation(key.agentId, conversationDescription(event))
      const now = yield* Clock.currentTimeMillis
      yield* store.put(key, conversationId, now).pipe(
        Effect.catchAll(logged("record the channel's new conversation; it is used for this run only"))
      )
      return conversationId
    })

  /** The conversations of one dispatch of `event` (one replacement at most, across its retries). */
  const forEvent = (event: QueuedEvent): DispatchConversation => {
    const key = conversationKeyOf(event)
    let current: string | undefined = undefined
    let replaced = false

    const resolve = Effect.gen(function*() {
      const stored = yield* store.get(key).pipe(
        Effect.catchAll((error) => Effect.as(logged("read the channel's conversation; creating a new one")(error), Option.none()))
      )
      if (Option.isSome(stored)) return { conversationId: stored.value.conversationId, created: false }
      return { conversationId: yield* create(key, event), created: true }
    })

    const send = <A>(run: (conversationId: string) => Effect.Effect<A, LettaRunError>) => {
      const sendIn = (conversationId: string, created: boolean): Effect.Effect<A, LettaRunError> => {
        current = conversationId
        return run(conversationId).pipe(
          Effect.catchTag("ConversationNotFound", (lost) =>
            Effect.gen(function*() {
              yield* store.forget(key).pipe(Effect.catchAll(logged("forget the channel's lost conversation")))
              if (created || replaced) return yield* Effect.fail(lost)
              replaced = true
              yield* Effect.logWarning(
                "the channel's conversation is gone on the Letta server (404): forgotten, sending in a new one"
              ).pipe(Effect.annotateLogs({ lostConversationId: lost.conversationId }))
              return yield* sendIn(yield* create(key, event), true)
            }))
        )
      }
      return Effect.flatMap(resolve, ({ conversationId, created }) => sendIn(conversationId, created))
    }

    const touch = Effect.flatMap(
      Clock.currentTimeMillis,
      (now) => store.touch(key, now).pipe(Effect.catchAll(logged("record the conversation's use")))
    )

    return { key: cacheKeyOf(key), send, current: () => current, touch }
  }

  return { forEvent } as const
})
