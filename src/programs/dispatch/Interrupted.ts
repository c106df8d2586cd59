/**
 * A crash cut this event's run off before the agent acted: that run may still be going on the
 * server (a client disconnect does not stop it), so it is cancelled before the re-send, through
 * its conversation when it ran in one (which frees the conversation for the re-send). Whether the
 * cancel worked or not, the event is sent again: it is logged either way.
 */
import { Effect } from "effect"
import type { QueuedEvent } from "../../domain/Event.js"
import type { LettaExecutor } from "../../services/letta/LettaExecutor.js"

/** The event carries a run a crash cut off (then `cancelInterrupted` has something to cancel). */
export const hasInterruptedRun = (event: QueuedEvent): boolean =>
  event.interruptedConversationId !== undefined || event.interruptedRunId !== undefined

export const cancelInterrupted = (
  executor: Pick<LettaExecutor, "cancelConversation" | "cancelRun">,
  event: QueuedEvent
): Effect.Effect<void> => {
  const { interruptedConversationId: conversationId, interruptedRunId: runId } = event
  const cancel = conversationId !== undefined
    ? executor.cancelConversation(conversationId)
    : runId !== undefined
    ? executor.cancelRun(event.agentId, runId)
    : undefined
  if (cancel === undefined) return Effect.void
  return Effect.flatMap(cancel, (cancelled) =>
    cancelled
      ? Effect.logInfo("the run cut off by the restart was cancelled; sending the event again")
      : Effect.logWarning("the run cut off by the restart could not be cancelled; sending the event again anyway")).pipe(
      Effect.annotateLogs({
        ...(runId === undefined ? {} : { interruptedRunId: runId }),
        ...(conversationId === undefined ? {} : { interruptedConversationId: conversationId })
      })
    )
}
