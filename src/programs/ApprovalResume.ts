/**
 * ApprovalContinuation (services/approvals/Ports.ts), the programs' side: the approval gate calls
 * `resume(origin, answers)` once a person decided every call of a stop (or its deadline denied
 * them), and this carries the stopped run to its end, as the dispatch would have:
 *
 * 1. the guild's settings (DMs: the defaults): timeout, `tools` (the `client_tools`), fallback;
 * 2. the continuation, on the run's route (its conversation, or the agent's default one), with
 *    the answers as given (the request's returns first, then the decisions) and the otid of the
 *    first answered call, through the circuit breaker, retried on transient failures by the retry
 *    schedule (./dispatch/Segments.ts);
 * 3. the tool loop (./dispatch/ToolLoop.ts): built-in tools run by Aurora, another approval stop
 *    (the gate is asked again), at most 20 round-trips from here;
 * 4. the end: Finished -> the silent-run fallback as a reply to the triggering message
 *    (./dispatch/Fallback.ts) and the runs log `answered`/`silent`/`silent-posted`; Awaiting ->
 *    `awaiting-approval`; the round-trip bound -> `failed` (`ToolLoopLimit`); a continuation that
 *    failed -> `failed` with its error. The runs log row replaces the message's earlier one
 *    (`awaiting-approval`). Counted in `aurora_runs_total` like a run.
 *
 * What the run did before the stop belongs to this run and counts as its answer:
 * - the Discord actions it made before the stop (`actionsBefore`, stored with the approval: the
 *   agent's own sends, e.g. an mcp-discord `discord_send` executed by Letta, and Aurora's
 *   successful ones at earlier stops): the runs log lists them first, by tool name;
 * - the built-in calls Aurora ran at the stop before it asked (the answers' tool returns): their
 *   names are read back from ToolCalls (the durable record of what ran) and listed
 *   (`discord_send✓`); a record that cannot be read is logged and left out.
 * Either way, a run that already posted or reacted before the approval has answered: its final
 * text is not posted by the fallback (a second answer), and the outcome is `answered`. Another
 * approval stop later in the run carries them on (the tool loop's `actionsBefore`).
 *
 * The resumed run's side effects go to the triggering message's journal entry, as the dispatch
 * records them (`sideEffectSeen`: a side-effecting tool call streamed, or a built-in post or
 * reaction about to run), so that a restart in the middle of it classifies the entry right
 * (programs/recovery/Classify.ts: acted -> never sent again). After a person's decision the entry
 * is gone (the dispatch ended `awaiting-approval`) and the write changes nothing; after a restart
 * at an open stop (StopTakeUp.ts) the entry is still there until the take-up settles it. A write
 * that fails is logged and the run goes on.
 *
 * It never fails: whatever happens is logged and written to the runs log. It answers whether Letta
 * took the answers (`ResumeOutcome`: a failed first continuation is `unreachable` for a service
 * failure, else `refused`; a defect is `refused`). The event is no longer
 * in the queue (it ended `awaiting-approval`), so a failure here is never retried by Aurora; no
 * built-in call is run twice whatever happens (ToolCalls). No typing indicator: nobody is waiting
 * on the triggering message any more.
 */
import { Cause, Clock, Duration, Effect, Layer, LogLevel, type Schedule } from "effect"
import type { ApprovalAnswer, ApprovalOrigin } from "../domain/Approval.js"
import { isSideEffectingTool, type ToolCallSummary } from "../domain/AgentRun.js"
import { Partition } from "../domain/Event.js"
import { isServiceFailure, type LettaRunError } from "../domain/LettaErrors.js"
import { defaultGuildSettings } from "../domain/Settings.js"
import { ApprovalContinuation, type ResumeOutcome } from "../services/approvals/Ports.js"
import { logAnnotated } from "../services/health/Log.js"
import * as Metrics from "../services/health/Metrics.js"
import { lettaRetrySchedule } from "../services/letta/RetryPolicy.js"
import { EventJournal } from "../services/queue/EventJournal.js"
import { ToolCalls } from "../services/queue/ToolCalls.js"
import { SettingsStore } from "../services/storage/SettingsStore.js"
import { makeFallback } from "./dispatch/Fallback.js"
import { finishedOutcome, makeRunTrace, type RunEntry, runRecorder } from "./dispatch/RunRecording.js"
import { clientToolsOf, makeSegments } from "./dispatch/Segments.js"
import { type LoopEnd, makeToolLoop } from "./dispatch/ToolLoop.js"
import {
  continuationOtid,
  type Executed,
  executedActions,
  executedLabel,
  loopLimitReason,
  withActionsBefore,
  withExecuted
} from "./dispatch/ToolStop.js"

export interface ApprovalResumeOptions {
  /** The retry schedule for transient failures (tests shorten it). */
  readonly retrySchedule?: Schedule.Schedule<unknown, LettaRunError> | undefined
}

export const makeApprovalResume = (options: ApprovalResumeOptions = {}) =>
  Effect.gen(function*() {
    const settings = yield* SettingsStore
    const segments = yield* makeSegments
    const loop = yield* makeToolLoop
    const fallback = yield* makeFallback
    const recordRun = yield* runRecorder
    const schedule = options.retrySchedule ?? lettaRetrySchedule
    const toolCalls = yield* ToolCalls
    const journal = yield* EventJournal

    /**
     * The run acted: recorded on the triggering message's journal entry, if it still has one (see
     * the module header), once per resumed run (as the dispatch does): the first record is all a
     * restart reads.
     */
    const actedOnce = (messageId: string) => {
      let recorded = false
      return Effect.suspend(() => {
        if (recorded) return Effect.void
        recorded = true
        return journal.sideEffectSeen(messageId).pipe(
          Effect.catchAll((error) => Effect.logError("journal: could not record the resumed run's side effect", error))
        )
      })
    }

    /** The built-in calls answered at the stop, as Aurora ran them (see the module header). */
    const executedBefore = (answers: ReadonlyArray<ApprovalAnswer>): Effect.Effect<ReadonlyArray<Executed>> =>
      Effect.map(
        Effect.forEach(answers, (answer) =>
          answer._tag !== "ToolReturn" ? Effect.succeed([]) : toolCalls.find(answer.toolCallId).pipe(
            Effect.map((record) =>
              record === null
                ? []
                : [{ call: { name: record.tool, toolCallId: answer.toolCallId, arguments: "" }, result: answer.result }]
            ),
            Effect.catchAll((error) =>
              Effect.as(Effect.logWarning(`could not read the tool call ${answer.toolCallId} back`, error), [])
            )
          )),
        (found) => found.flat()
      )

    const resume = (
      origin: ApprovalOrigin,
      answers: ReadonlyArray<ApprovalAnswer>,
      actionsBefore: ReadonlyArray<string>
    ): Effect.Effect<ResumeOutcome> =>
      Effect.gen(function*() {
        const startedAt = yield* Clock.currentTimeMillis
        const guild = origin.guildId === null ? defaultGuildSettings : (yield* settings.guild(origin.guildId)).settings
        const clientTools = clientToolsOf(guild)
        const conversationId = origin.conversationId ?? undefined
        const trace = yield* makeRunTrace
        const acted = actedOnce(origin.messageId)
        const observer = {
          onToolCall: (call: ToolCallSummary) =>
            Effect.zipRight(
              Effect.zipRight(Metrics.toolCalled(call.name), trace.toolCalled(call.name)),
              isSideEffectingTool(call.name) ? acted : Effect.void
            )
        }
        const continueWith = (given: ReadonlyArray<ApprovalAnswer>, otid: string) =>
          segments.continuation({
            agentId: origin.agentId,
            conversationId,
            otid,
            timeout: Duration.seconds(guild.timeout),
            observer,
            clientTools,
            answers: given
          }, schedule)

        const entry = (end: Omit<RunEntry, "toolCalls" | "conversationId" | "durationMs" | "queuedMs" | "finishedAt">) =>
          Effect.gen(function*() {
            const finishedAt = yield* Clock.currentTimeMillis
            return {
              ...end,
              toolCalls: yield* trace.toolCalls,
              conversationId,
              durationMs: finishedAt - startedAt,
              queuedMs: null,
              finishedAt
            }
          })

        yield* Effect.logInfo(
          `resuming the run with ${answers.length} answer(s)` +
            (actionsBefore.length === 0 ? "" : `; before its stop it made ${actionsBefore.join(", ")}`)
        )
        const before = yield* executedBefore(answers)
        yield* Effect.forEach(actionsBefore, trace.toolCalled, { discard: true })
        yield* Effect.forEach(before, (e) => trace.toolCalled(executedLabel(e)), { discard: true })
        const first = yield* Effect.either(continueWith(answers, continuationOtid(origin.messageId, answers)))
        if (first._tag === "Left") {
          const error = first.left
          yield* Effect.logError(`resumed run failed: ${error._tag}: ${error.reason}`)
          yield* Metrics.runFinished(Metrics.runOutcomeOf(error), (yield* Clock.currentTimeMillis) - startedAt)
          yield* recordRun(
            origin,
            yield* entry({ outcome: "failed", detail: `${error._tag}: ${error.reason}`, runId: error.runId })
          )
          return isServiceFailure(error) ? "unreachable" : "refused"
        }
        const end: LoopEnd = yield* loop.carry({
          origin: { ...origin },
          partition: origin.guildId === null ? Partition.dm : Partition.guild(origin.guildId),
          builtin: guild.tools === "builtin",
          beforeSideEffect: acted,
          actionsBefore: [...actionsBefore, ...executedActions(before)],
          continueWith
        }, first.right)
        yield* Effect.forEach(end.executed, (e) => trace.toolCalled(executedLabel(e)), { discard: true })
        const runId = end.report.runId
        switch (end._tag) {
          case "Finished": {
            const report = withActionsBefore(withExecuted(end.report, before), actionsBefore)
            const followed = yield* fallback.follow(origin, report, guild.fallback)
            yield* Metrics.runFinished("success", end.report.durationMs, end.report.firstToolCallMs)
            yield* logAnnotated(LogLevel.Info, `resumed run finished in ${end.report.durationMs} ms`, {})
            const detail = followed === "failed" ? "the fallback post failed (see the log)" : null
            yield* recordRun(origin, yield* entry({ outcome: finishedOutcome(report, followed === "posted"), detail, runId }))
            return "answered"
          }
          case "Awaiting": {
            const detail = `waiting for a person's approval of ${end.tools.join(", ")}`
            yield* recordRun(origin, yield* entry({ outcome: "awaiting-approval", detail, runId }))
            return "answered"
          }
          case "LimitReached":
            yield* Metrics.runFinished("run_failed", end.report.durationMs)
            yield* recordRun(origin, yield* entry({ outcome: "failed", detail: `ToolLoopLimit: ${loopLimitReason}`, runId }))
            return "answered"
          case "Failed": {
            const error = end.error
            yield* Effect.logError(`resumed run failed: ${error._tag}: ${error.reason}`)
            yield* Metrics.runFinished(Metrics.runOutcomeOf(error), end.report.durationMs)
            const detail = `${error._tag}: ${error.reason}; not sent again`
            yield* recordRun(origin, yield* entry({ outcome: "failed", detail, runId: error.runId ?? runId }))
            return "answered"
          }
        }
      }).pipe(
        Effect.catchAllCause((cause) =>
          Effect.as(
            Effect.zipRight(
              Effect.logError("resumed run failed unexpectedly", cause),
              Effect.flatMap(Clock.currentTimeMillis, (finishedAt) =>
                recordRun(origin, {
                  outcome: "failed",
                  detail: `Defect: ${Cause.pretty(cause).split("\n")[0] ?? "unexpected failure"}`,
                  toolCalls: [],
                  runId: origin.runId ?? undefined,
                  conversationId: origin.conversationId ?? undefined,
                  durationMs: null,
                  queuedMs: null,
                  finishedAt
                }))
            ),
            "refused" as const
          )
        ),
        Effect.annotateLogs({
          guildId: origin.guildId ?? "dm",
          channelId: origin.channelId,
          messageId: origin.messageId,
          agentId: origin.agentId,
          ...(origin.conversationId === null ? {} : { conversationId: origin.conversationId })
        }),
        Effect.withSpan("ApprovalResume.resume", { captureStackTrace: false })
      )

    return { resume } as const
  })

/** The ApprovalContinuation the approval gate calls; `layer(options)` for tests. */
export const ApprovalResume = {
  layer: (options: ApprovalResumeOptions = {}) => Layer.effect(ApprovalContinuation, makeApprovalResume(options)),
  Default: Layer.effect(ApprovalContinuation, makeApprovalResume())
}
