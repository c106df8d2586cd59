/**
 * The pure rules of start-up recovery (../Recovery.ts): what becomes of one journal entry, and
 * what the runs log keeps of a dead-lettered one. In this order (`classify`):
 *
 * 1. its run had ended silently and Aurora had recorded that it would post the agent's text itself
 *    (the fallback) -> `Finished`: forgotten, never replayed, dead-lettered or posted again (the
 *    post may have gone out before the restart);
 * 2. its run had reached a stop of Aurora's built-in tools that is still open (an OpenStops record
 *    whose origin is this entry's message, `stopOpen`): the run is the start-up take-up's
 *    (../StopTakeUp.ts), which continues it where it stopped:
 *    - the agent had not acted -> `LeftToTakeUp`: not replayed, nothing cancelled, the entry kept
 *      as it is (the take-up settles it once it knows how the continuation went);
 *    - the agent had acted -> dead letter `interrupted-after-reply` (never re-sent), `leftRunning`:
 *      its run and conversation are not cancelled (the take-up continues them);
 * 3. its run had started and the agent had acted -> dead letter `interrupted-after-reply`: sending
 *    it again would make the agent act (post) twice; its run is to be cancelled;
 * 4. pending for longer than the maximum age -> dead letter `expired`;
 * 5. its run had started before the agent acted -> replayed once, with the interruption recorded
 *    (the run to cancel before the re-send, and its conversation); cut off a second time -> dead
 *    letter `interrupted`;
 * 6. never started -> replayed as it was.
 */
import { Duration } from "effect"
import type { DeadLetter, DeadLetterReason } from "../../domain/DeadLetter.js"
import type { QueuedEvent } from "../../domain/Event.js"
import type { JournalEntry, RunProgress } from "../../services/queue/EventJournal.js"
import type { RunEntry } from "../dispatch/RunRecording.js"

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
    /** The recorded run, to cancel on the server; null when none was seen (or `leftRunning`). */
    readonly cancelRunId: string | null
    /** The run goes on (the take-up continues its open stop): neither it nor its conversation is cancelled. */
    readonly leftRunning?: true
  }
  | {
    /** The run had ended and its fallback reply was recorded: nothing more to do but forget it. */
    readonly _tag: "Finished"
    readonly event: QueuedEvent
    readonly runId: string | null
  }
  | {
    /** Its run waits at an open stop the take-up continues; the entry is the take-up's to settle. */
    readonly _tag: "LeftToTakeUp"
    readonly event: QueuedEvent
  }

type DeadLettered = Extract<Recovery, { readonly _tag: "DeadLetter" }>

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

/** Decides the fate of one journal entry at `now` (epoch ms); `stopOpen`: see the module header, 2. */
export const classify = (entry: JournalEntry, now: number, maxAgeMs: number, stopOpen = false): Recovery => {
  const { event, run } = entry
  const deadLetter = (reason: DeadLetterReason, detail: string): DeadLettered => ({
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
  if (stopOpen) {
    if (run === null || !run.sideEffect) return { _tag: "LeftToTakeUp", event }
    const detail = `${runName} was cut off by a restart after the agent acted; its open stop is continued, not cancelled`
    return { ...deadLetter("interrupted-after-reply", detail), cancelRunId: null, leftRunning: true }
  }
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

/** The detail of the runs log line of an entry left to the take-up (`waitingRun`). */
export const waitingDetail = "cut off by a restart at a tool stop; Aurora carries the run on from there"

/**
 * What the runs log shows of an entry left to the take-up of its open stop, at `now` (epoch ms):
 * the run cut off, with the run id and conversation the journal kept, until the take-up's
 * continuation writes its outcome over it (or, if Letta refuses it, the replay's run). Nothing
 * when no run was recorded.
 */
export const waitingRun = (entry: JournalEntry, now: number): RunEntry | null => {
  const { run } = entry
  if (run === null) return null
  return {
    outcome: "interrupted",
    detail: waitingDetail,
    toolCalls: [],
    runId: run.runId ?? undefined,
    conversationId: run.conversationId,
    durationMs: null,
    queuedMs: run.startedAt - entry.event.enqueuedAt,
    finishedAt: now
  }
}
