/**
 * Start-up recovery: puts the events the journal kept back into the queue, or dead-letters them,
 * before the listener and the dispatcher start (so replayed events come before any new one).
 *
 * Per journal entry, in journal order (see `classify`):
 * - its run had ended silently and Aurora had recorded that it would post the agent's text itself
 *   (the fallback, see dispatch/Fallback.ts) -> finished: removed from the journal, never replayed,
 *   never dead-lettered, never posted again (the post may have gone out before the restart; a
 *   second one would answer twice); logged at warning;
 * - its run had started and the agent had acted -> dead letter `interrupted-after-reply`: sending
 *   it again would make the agent act (post) twice;
 * - pending for longer than AURORA_MAX_EVENT_AGE -> dead letter `expired`: an answer that late
 *   would be out of place;
 * - its run had started before the agent acted -> replayed once (the recorded run is cancelled on
 *   the server before the re-send, through its conversation when it ran in one, see Dispatch); cut
 *   off a second time -> dead letter `interrupted`;
 * - never started -> replayed as it was.
 *
 * A dead-lettered event's recorded run, if any, is cancelled on the server: a client disconnect
 * does not stop a Letta run, and nothing will send the event again. On the agents route the run
 * (by its id) is cancelled in the background. A run in a conversation is cancelled through the
 * conversation before the replayed events are queued (all such cancels at once, each bounded by
 * the client's cancel timeout): a conversation's cancel stops whatever runs there, so it must land
 * before a replayed event of the same channel is sent there, or it would stop that run instead.
 * Every dead-lettered event gets ⚠️ on the user's message (Feedback, in the background, bounded;
 * the Discord gateway is built, and ready, before recovery runs: see src/layers/Live.ts).
 * A journal that cannot be read or written here stops the start: starting with an empty queue
 * would lose the pending events silently.
 *
 * A dead-lettered event whose run had started was dispatched, but its run never reached an outcome:
 * it is written to the runs log (`/aurora runs`, see `recoveredRun`) as `interrupted` (or
 * `dead-lettered` when it expired), with its run and conversation; a write that fails is logged
 * and does not stop the start. An event that never started was not dispatched: it is not a run.
 */
import { Clock, Data, Duration, Effect, Layer } from "effect"
import { AuroraConfig } from "../domain/Config.js"
import type { DeadLetter, DeadLetterReason } from "../domain/DeadLetter.js"
import type { StorageError } from "../domain/Errors.js"
import type { QueuedEvent } from "../domain/Event.js"
import { DeadLetters } from "../services/queue/DeadLetters.js"
import { EventJournal, type JournalEntry, type RunProgress } from "../services/queue/EventJournal.js"
import { EventQueue } from "../services/queue/EventQueue.js"
import { Feedback } from "../services/discord/Feedback.js"
import { LettaExecutor } from "../services/letta/LettaExecutor.js"
import { cancelTimeout } from "../services/letta/LettaClient.js"
import * as Metrics from "../services/health/Metrics.js"
import { type RunEntry, runRecorder } from "./dispatch/RunRecording.js"

/** The journal could not be read or written at start-up; Aurora does not start without it. */
export class RecoveryFailed extends Data.TaggedError("RecoveryFailed")<{
  readonly operation: string
  readonly reason: string
}> {
  override get message() {
    return `cannot recover the pending events: could not ${this.operation} (${this.reason}); not starting, so that no pending event is lost`
  }
}

/** What becomes of one journal entry at start-up. */
export type Recovery =
  | {
    readonly _tag: "Replay"
    readonly event: QueuedEvent
    /** The event changed (an interruption was recorded): its journal row must be rewritten. */
    readonly rewrite: boolean
  }
  | {
    readonly _tag: "DeadLetter"
    readonly letter: DeadLetter
    /** The recorded run, to cancel on the server; null when none was seen. */
    readonly cancelRunId: string | null
  }
  | {
    /** The run had ended and its fallback reply was recorded: nothing more to do but forget it. */
    readonly _tag: "Finished"
    readonly event: QueuedEvent
    readonly runId: string | null
  }

/**
 * The event with one more interruption recorded, and the run to cancel before re-sending it (with
 * the conversation it ran in, when it ran in one).
 */
const interrupted = (event: QueuedEvent, run: RunProgress): QueuedEvent => {
  const { interruptedConversationId: _conversation, interruptedRunId: _earlier, ...rest } = event
  const interruptions = (event.interruptions ?? 0) + 1
  return {
    ...rest,
    interruptions,
    ...(run.runId === null ? {} : { interruptedRunId: run.runId }),
    ...(run.conversationId === undefined ? {} : { interruptedConversationId: run.conversationId })
  }
}

/** Decides the fate of one journal entry at `now` (epoch ms); pure. */
export const classify = (entry: JournalEntry, now: number, maxAgeMs: number): Recovery => {
  const { event, run } = entry
  const deadLetter = (reason: DeadLetterReason, detail: string): Recovery => ({
    _tag: "DeadLetter",
    letter: {
      event,
      reason,
      errorType: null,
      detail,
      // The cut-off run was a dispatch attempt too.
      attempts: event.attempts + (run === null ? 0 : 1),
      failedAt: now,
      ...(run?.conversationId === undefined ? {} : { conversationId: run.conversationId })
    },
    cancelRunId: run?.runId ?? null
  })
  const runName = run === null || run.runId === null ? "a run (no run id seen)" : `run ${run.runId}`
  // First: a recorded fallback may have been posted, whatever else is true of the entry.
  if (run?.fallbackAt !== undefined) return { _tag: "Finished", event, runId: run.runId }
  if (run !== null && run.sideEffect) {
    return deadLetter("interrupted-after-reply", `${runName} was cut off by a restart after the agent acted`)
  }
  const age = now - event.enqueuedAt
  if (age > maxAgeMs) {
    return deadLetter(
      "expired",
      `pending for ${Duration.format(Duration.millis(age))} at restart (limit ${Duration.format(Duration.millis(maxAgeMs))})`
    )
  }
  if (run !== null) {
    if ((event.interruptions ?? 0) >= 1) {
      return deadLetter("interrupted", `${runName} was cut off by a restart before the agent acted, for the second time`)
    }
    return { _tag: "Replay", event: interrupted(event, run), rewrite: true }
  }
  return { _tag: "Replay", event, rewrite: false }
}

/**
 * What the runs log keeps of a dead-lettered entry: nothing when its run never started; else the
 * run cut off by the restart, with the run id and conversation the journal kept. Its tool calls
 * are not known here (the journal keeps only whether the agent acted, which the detail says).
 */
export const recoveredRun = (entry: JournalEntry, letter: DeadLetter): RunEntry | null => {
  const { run } = entry
  if (run === null) return null
  const interrupted = letter.reason === "interrupted" || letter.reason === "interrupted-after-reply"
  return {
    outcome: interrupted ? "interrupted" : "dead-lettered",
    detail: `${letter.reason}: ${letter.detail ?? "dead-lettered at restart"}`,
    toolCalls: [],
    runId: run.runId ?? undefined,
    conversationId: run.conversationId,
    durationMs: null,
    queuedMs: run.startedAt - entry.event.enqueuedAt,
    finishedAt: letter.failedAt
  }
}

export interface RecoverySummary {
  readonly replayed: number
  readonly expired: number
  readonly interrupted: number
  readonly interruptedAfterReply: number
  /** Entries whose fallback reply was recorded before the restart: removed, not posted again. */
  readonly fallbackRecorded: number
}

const fatal = (operation: string) => (error: StorageError) =>
  new RecoveryFailed({ operation, reason: `${error.operation}: ${error.reason}` })

/**
 * Reads the journal and applies `classify` to every entry: journal writes and dead letters first,
 * then one `restore` of the replayed events in journal order. Cancels are forked into the scope.
 */
export const recover = Effect.gen(function*() {
  const journal = yield* EventJournal
  const deadLetters = yield* DeadLetters
  const queue = yield* EventQueue
  const executor = yield* LettaExecutor
  const recordRun = yield* runRecorder
  const feedback = yield* Feedback
  // AURORA_MAX_EVENT_AGE: pending events older than this are not replayed.
  const maxAgeMs = Duration.toMillis((yield* AuroraConfig).maxEventAge)

  const entries = yield* journal.load.pipe(Effect.mapError(fatal("read the event journal")))
  const now = yield* Clock.currentTimeMillis
  const replayed: Array<QueuedEvent> = []
  const conversationCancels: Array<Effect.Effect<void>> = []
  const counts: Record<Exclude<DeadLetterReason, "failed">, number> = {
    expired: 0,
    interrupted: 0,
    "interrupted-after-reply": 0
  }

  let fallbackRecorded = 0
  for (const entry of entries) {
    const recovery = classify(entry, now, maxAgeMs)
    if (recovery._tag === "Finished") {
      const { agentId, messageId } = recovery.event
      yield* journal.remove(messageId).pipe(Effect.mapError(fatal("remove a finished event")))
      fallbackRecorded += 1
      yield* Effect.logWarning("recovery: the fallback reply was recorded before the restart; not posted again").pipe(
        Effect.annotateLogs({ messageId, agentId, runId: recovery.runId ?? "none" })
      )
      continue
    }
    if (recovery._tag === "Replay") {
      if (recovery.rewrite) yield* journal.update(recovery.event).pipe(Effect.mapError(fatal("record an interruption")))
      replayed.push(recovery.event)
      continue
    }
    const { letter, cancelRunId } = recovery
    const { messageId, agentId } = letter.event
    yield* deadLetters.add(letter).pipe(Effect.mapError(fatal("record a dead letter")))
    yield* journal.remove(messageId).pipe(Effect.mapError(fatal("remove a dead-lettered event")))
    yield* Metrics.deadLettered(letter.reason)
    const cutOff = recoveredRun(entry, letter)
    if (cutOff !== null) yield* recordRun(letter.event, cutOff)
    yield* feedback.tell("dead_letter", letter.event)
    if (letter.reason !== "failed") counts[letter.reason] += 1
    yield* Effect.logDebug(`recovery: dead-lettered (${letter.reason}): ${letter.detail ?? ""}`).pipe(
      Effect.annotateLogs({ messageId, agentId })
    )
    if (letter.conversationId !== undefined) {
      // Bounded here too: a cancel that never answers must not hold up the start.
      conversationCancels.push(
        executor.cancelConversation(letter.conversationId).pipe(
          Effect.timeoutOption(cancelTimeout),
          Effect.asVoid,
          Effect.annotateLogs({ messageId, agentId, conversationId: letter.conversationId })
        )
      )
    } else if (cancelRunId !== null) {
      // Best effort and in the background: an unreachable Letta must not hold up the start.
      yield* executor.cancelRun(agentId, cancelRunId).pipe(
        Effect.annotateLogs({ messageId, agentId, runId: cancelRunId }),
        Effect.forkScoped
      )
    }
  }

  yield* Effect.all(conversationCancels, { concurrency: "unbounded", discard: true })
  yield* queue.restore(replayed)
  const summary: RecoverySummary = {
    replayed: replayed.length,
    expired: counts.expired,
    interrupted: counts.interrupted,
    interruptedAfterReply: counts["interrupted-after-reply"],
    fallbackRecorded
  }
  yield* Effect.logInfo(
    `recovery: ${summary.replayed} pending event(s) replayed; dead-lettered ${summary.expired} expired, ` +
      `${summary.interrupted} interrupted, ${summary.interruptedAfterReply} interrupted after reply; ` +
      `${summary.fallbackRecorded} finished with a recorded fallback reply`
  ).pipe(Effect.annotateLogs({ ...summary }))
  return summary
})

/** Runs `recover` once while the app starts; build it after the queue and before the programs. */
export const RecoveryLive = Layer.scopedDiscard(recover)
