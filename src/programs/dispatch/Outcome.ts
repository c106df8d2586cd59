/**
 * What one dispatch's attempts came to (`AttemptResult`), and what then becomes of the event
 * (`outcomeOf`), logged once with its timings and counted:
 * - Finished: the run succeeded -> done;
 * - CircuitOpen: the breaker turned it away -> held until the breaker admits traffic again, at
 *   most `retryIn`;
 * - Busy: its conversation answered 409 busy -> back to the front of its channel after the busy
 *   backoff (./BusyBackoff.ts): not a failure, so no dead letter and no run outcome counted;
 * - Failed, transient (after the retries) -> held for `transientHold` or until the breaker's next
 *   release;
 * - Failed after the agent acted (or `acted`: a continuation failed, the run had moved past its
 *   prompt) -> done (never re-sent: that would post twice);
 * - AwaitingApproval: the tool loop stopped for a person's decision (./ToolLoop.ts) -> done: the
 *   decision continues the run (ApprovalContinuation); runs log `awaiting-approval` with the tools;
 * - LoopLimit: more than 20 tool round-trips -> a dead letter `failed` (`ToolLoopLimit`);
 * - Failed otherwise (permanent) -> a dead letter `failed` with the error's tag and reason, and the
 *   conversation when it ran in one.
 * Any result but Busy and CircuitOpen (which never reached the conversation) ends the
 * conversation's busy streak, and is written to the runs log (./RunRecording.ts) with the tools
 * the run observer saw the agent call and the run id of the report or the error: Finished ->
 * `answered` or `silent` (`finishedOutcome`), a transient failure or one after the agent acted ->
 * `failed` (the detail says whether it will be tried again), a permanent failure -> `dead-lettered`.
 */
import { Data, Duration, Effect, LogLevel } from "effect"
import type { RunReport } from "../../domain/AgentRun.js"
import type { QueuedEvent } from "../../domain/Event.js"
import type { RunOutcome } from "../../domain/RunRecord.js"
import { type ConversationBusy, isTransient, type LettaRunError } from "../../domain/LettaErrors.js"
import { logAnnotated } from "../../services/health/Log.js"
import * as Metrics from "../../services/health/Metrics.js"
import { DispatchOutcome } from "../../services/queue/EventQueue.js"
import { deadLetterRecorder } from "../DeadLettering.js"
import { makeBusyStreaks } from "./BusyBackoff.js"
import type { FallbackResult } from "./Fallback.js"
import { finishedOutcome, runRecorder } from "./RunRecording.js"
import { loopLimitReason } from "./ToolStop.js"

/** How long an event that failed transiently waits before its channel tries it again (a breaker release ends it sooner). */
export const transientHold = Duration.seconds(5)

export type AttemptResult = Data.TaggedEnum<{
  Finished: { readonly report: RunReport }
  CircuitOpen: { readonly retryIn: Duration.Duration }
  Busy: { readonly error: ConversationBusy }
  Failed: { readonly error: LettaRunError; readonly acted?: boolean }
  AwaitingApproval: { readonly report: RunReport; readonly tools: ReadonlyArray<string> }
  LoopLimit: { readonly report: RunReport }
}>
export const AttemptResult = Data.taggedEnum<AttemptResult>()

export interface DispatchTiming {
  readonly queuedMs: number
  readonly runMs: number
  /** Epoch ms when the attempts ended. */
  readonly finishedAt: number
}

/** The conversation the dispatch ran in (`channel` mode): its id once resolved, and its key's cache key. */
export interface RanIn {
  readonly conversationId: string | undefined
  readonly key: string
}

/** Outcome, duration, first tool call and tokens of a successful run (tool calls were counted live), in one step. */
const recordSuccess = (report: RunReport) =>
  Metrics.runFinished("success", report.durationMs, report.firstToolCallMs, report.usage)

export const makeOutcomes = Effect.gen(function*() {
  const deadLetter = yield* deadLetterRecorder
  const streaks = yield* makeBusyStreaks
  const recordRun = yield* runRecorder

  /** Any result but Busy. */
  const decide = (
    event: QueuedEvent,
    result: Exclude<AttemptResult, { readonly _tag: "Busy" }>,
    timing: DispatchTiming,
    conversationId: string | undefined,
    toolCalls: ReadonlyArray<string>,
    followed: FallbackResult | undefined
  ): Effect.Effect<DispatchOutcome> => {
    const ran = (outcome: RunOutcome, detail: string | null, runId: string | undefined) =>
      recordRun(event, {
        outcome,
        detail,
        toolCalls,
        runId,
        conversationId,
        durationMs: timing.runMs,
        queuedMs: timing.queuedMs,
        finishedAt: timing.finishedAt
      })
    const timings = {
      queuedMs: timing.queuedMs,
      runMs: timing.runMs,
      attempts: event.attempts + 1,
      ...(conversationId === undefined ? {} : { conversationId })
    }
    if (result._tag === "CircuitOpen") {
      return Effect.logDebug(`circuit open: held until released (at most ${Duration.format(result.retryIn)})`).pipe(
        Effect.as(DispatchOutcome.held(result.retryIn))
      )
    }
    if (result._tag === "Finished") {
      return logAnnotated(LogLevel.Info, `run finished in ${timing.runMs} ms after ${timing.queuedMs} ms in queue`, timings)
        .pipe(
          Effect.zipRight(recordSuccess(result.report)),
          Effect.zipRight(ran(
            finishedOutcome(result.report, followed === "posted"),
            followed === "failed" ? "the fallback post failed (see the log)" : null,
            result.report.runId
          )),
          Effect.as(DispatchOutcome.done)
        )
    }
    if (result._tag === "AwaitingApproval") {
      const detail = `waiting for a person's approval of ${result.tools.join(", ")}`
      return logAnnotated(LogLevel.Info, `run stopped after ${timing.runMs} ms: ${detail}`, timings).pipe(
        Effect.zipRight(ran("awaiting-approval", detail, result.report.approvalStop?.runId ?? result.report.runId)),
        Effect.as(DispatchOutcome.done)
      )
    }
    if (result._tag === "LoopLimit") {
      return deadLetter(event, {
        reason: "failed",
        errorType: "ToolLoopLimit",
        detail: loopLimitReason,
        ...(conversationId === undefined ? {} : { conversationId })
      }, { said: `run stopped permanently (${loopLimitReason})` }).pipe(
        Effect.zipLeft(Metrics.runFinished("run_failed", timing.runMs)),
        Effect.zipLeft(ran("dead-lettered", `ToolLoopLimit: ${loopLimitReason}`, result.report.runId)),
        Effect.annotateLogs(timings),
        Effect.as(DispatchOutcome.done)
      )
    }
    const error = result.error
    const acted = error.sideEffect || result.acted === true
    const described = `${error._tag}: ${error.reason}`
    const counted = Metrics.runFinished(Metrics.runOutcomeOf(error), timing.runMs)
    if (!acted && isTransient(error)) {
      return logAnnotated(LogLevel.Warning, `run failed transiently (${described}); kept at the front of its channel`, timings)
        .pipe(
          Effect.zipRight(counted),
          Effect.zipRight(ran("failed", `${described}; kept: it will be tried again`, error.runId)),
          Effect.as(DispatchOutcome.held(transientHold))
        )
    }
    if (acted) {
      return logAnnotated(LogLevel.Error, `run failed after the agent acted (${described}); not sent again`, timings).pipe(
        Effect.zipRight(counted),
        Effect.zipRight(ran("failed", `${described}; the agent had acted: not sent again`, error.runId)),
        Effect.as(DispatchOutcome.done)
      )
    }
    return deadLetter(event, {
      reason: "failed",
      errorType: error._tag,
      detail: error.reason,
      ...(conversationId === undefined ? {} : { conversationId })
    }, {
      said: `run failed permanently (${described})`
    }).pipe(
      Effect.zipLeft(counted),
      Effect.zipLeft(ran("dead-lettered", described, error.runId)),
      Effect.annotateLogs(timings),
      Effect.as(DispatchOutcome.done)
    )
  }

  /**
   * What becomes of the event after its attempts. `ranIn`: the conversation it was sent to
   * (`key` names its busy streak; a run on the agents route is never answered busy).
   */
  const outcomeOf = (
    event: QueuedEvent,
    result: AttemptResult,
    timing: DispatchTiming,
    ranIn: RanIn | undefined,
    toolCalls: ReadonlyArray<string>,
    /** What the silent-run fallback came to (./Fallback.ts), for a Finished result. */
    followed?: FallbackResult
  ): Effect.Effect<DispatchOutcome> => {
    if (result._tag === "Busy") {
      return Effect.map(streaks.busy(ranIn?.key ?? `agent:${event.agentId}`, result.error), DispatchOutcome.retry)
    }
    const decided = decide(event, result, timing, ranIn?.conversationId, toolCalls, followed)
    if (ranIn === undefined || result._tag === "CircuitOpen") return decided
    const annotations = ranIn.conversationId === undefined ? {} : { conversationId: ranIn.conversationId }
    return Effect.zipRight(streaks.settled(ranIn.key, annotations), decided)
  }

  return { outcomeOf } as const
})
