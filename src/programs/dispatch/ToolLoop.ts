/**
 * The tool loop (#16): carries a run that stopped for approval (`RunReport.approvalStop`) to its
 * end. Used by the dispatch (after the prompt's run) and by the approval continuation (after a
 * person's decision). For each stop, in order (the pure decisions are in ./ToolStop.ts):
 *
 * 1. Past `maxRoundTrips` (20) continuations in this loop: every call of the stop is answered
 *    without running it (built-in: error return; other: deny), with "Aurora stopped this run:
 *    more than 20 tool round-trips", in one last continuation so that the conversation is not
 *    left waiting (its failure is logged), and the loop ends `LimitReached`.
 * 2. The calls Aurora runs (its built-in Discord tools, when the guild's `tools` is `builtin`) are
 *    run one after the other through `executeOnce` (ToolCalls: recorded before, result after; a
 *    call id seen before is replayed or answered "interrupted", never run again), in the
 *    triggering guild or DM channel only (DiscordTools' confinement). Before one that posts or
 *    reacts runs, `beforeSideEffect` marks the run as having acted (journal, typing). Each answer
 *    is one info line (tool, toolCallId, status, execution) and is counted
 *    (`aurora_tool_calls_total{executor="aurora"}`).
 * 3. No other call: the continuation carries their returns. Other calls: the approval gate is
 *    asked (`open`, with the returns already made, and the Discord actions the run made before
 *    this stop: the caller's `actionsBefore`, then those of the report so far, which holds the
 *    agent's streamed calls and Aurora's successful executions at earlier stops of this loop; the
 *    continuation after the decision counts them as the run's answer): `Waiting` -> the loop
 *    ends `Awaiting` (a person's decision continues it later, through ApprovalContinuation);
 *    `Unavailable` -> each other call is denied with the gate's reason, in the same continuation
 *    as the returns.
 * 4. The continuation (`continueWith`: the caller's breaker, retries and timeout) -> its report
 *    is the next stop, or the end (`Finished`). A continuation that fails (after its retries)
 *    ends the loop `Failed`: the run has moved past its prompt, so the event is never re-sent.
 *
 * 5. The durable record of the stop (OpenStops), so that a process that stops in the middle leaves
 *    the conversation answerable (programs/StopTakeUp.ts answers it at the next start): a stop with
 *    a call Aurora runs is recorded, with all its calls and the Discord actions the run made
 *    before it (as the gate is given them, 3.), before the first one runs (as is a later
 *    stop of a loop that recorded one, so that the chain has no unrecorded gap). The previous
 *    stop's record is deleted once the next one is recorded, and the last one when the loop ends
 *    (Finished, LimitReached, Failed) or hands the stop to the gate (Awaiting: the gate's own
 *    record covers it). An interrupted loop (shutdown) deletes nothing. A record that cannot be
 *    written or deleted is logged and the run goes on (it is a safety net, not a precondition).
 *    Runs that never stop at one of Aurora's tools write nothing.
 *
 * Every end carries the run's report so far (./ToolStop.ts `mergeSegments`: the executed Discord
 * actions that succeeded count as the agent's answer) and Aurora's executions, in order.
 */
import { Clock, Data, Effect, LogLevel } from "effect"
import type { ApprovalAnswer, ApprovalOrigin } from "../../domain/Approval.js"
import { ApprovalAnswer as Answer } from "../../domain/Approval.js"
import { isDiscordAction, type RunReport } from "../../domain/AgentRun.js"
import type { ToolCall } from "../../domain/ToolCall.js"
import type { Partition } from "../../domain/Event.js"
import type { StorageError } from "../../domain/Errors.js"
import type { LettaRunError } from "../../domain/LettaErrors.js"
import { ApprovalGate } from "../../services/approvals/Ports.js"
import { DiscordTools } from "../../services/discord/Tools.js"
import { logAnnotated } from "../../services/health/Log.js"
import { type AuroraToolStatus, auroraToolAnswered } from "../../services/health/ToolMetrics.js"
import { OpenStops, stopKeyOf } from "../../services/queue/OpenStops.js"
import { executeOnce, type Execution, ToolCalls } from "../../services/queue/ToolCalls.js"
import {
  continuationOtid,
  deniedAnswers,
  discordActionsOf,
  type Executed,
  limitAnswers,
  maxRoundTrips,
  mergeSegments,
  splitStop,
  withExecuted
} from "./ToolStop.js"

/** What the loop needs from its caller (the dispatch, or the approval continuation). */
export interface LoopRun {
  /** The stopped run's place and its triggering message (the stop's run id comes from each report). */
  readonly origin: Omit<ApprovalOrigin, "runId">
  readonly partition: Partition
  /** The guild's `tools` is `builtin`. */
  readonly builtin: boolean
  /** One continuation with these answers, through the caller's breaker, retries and timeout. */
  readonly continueWith: (answers: ReadonlyArray<ApprovalAnswer>, otid: string) => Effect.Effect<RunReport, LettaRunError>
  /** Before a built-in call that posts or reacts runs (journal side effect, typing stopped). */
  readonly beforeSideEffect: Effect.Effect<void>
  /**
   * The Discord actions the run made before `first` (tool names): none for the dispatch; for a
   * resumed run, those before its approval stop and Aurora's successful ones at that stop.
   */
  readonly actionsBefore: ReadonlyArray<string>
}

export type LoopEnd = Data.TaggedEnum<{
  Finished: { readonly report: RunReport; readonly executed: ReadonlyArray<Executed> }
  Awaiting: {
    readonly report: RunReport
    readonly executed: ReadonlyArray<Executed>
    /** The tools a person must decide. */
    readonly tools: ReadonlyArray<string>
    readonly approvalId: string
  }
  Failed: { readonly report: RunReport; readonly executed: ReadonlyArray<Executed>; readonly error: LettaRunError }
  LimitReached: { readonly report: RunReport; readonly executed: ReadonlyArray<Executed> }
}>
export const LoopEnd = Data.taggedEnum<LoopEnd>()

const statusOf = (execution: Execution, status: "success" | "error"): AuroraToolStatus =>
  execution === "interrupted" || execution === "unrecorded" ? execution : status

export const makeToolLoop = Effect.gen(function*() {
  const tools = yield* DiscordTools
  const toolCalls = yield* ToolCalls
  const gate = yield* ApprovalGate
  const stops = yield* OpenStops

  /** The record's writes never stop the run: logged (see the module header, 5.). */
  const bestEffort = (what: string) => (effect: Effect.Effect<void, StorageError>) =>
    Effect.catchAll(effect, (error) => Effect.logError(`tool loop: could not ${what} the open stop (${error.reason})`))

  /** One built-in call, at most once (see the module header, 2.). */
  const runBuiltin = (run: LoopRun, call: ToolCall): Effect.Effect<Executed> =>
    Effect.gen(function*() {
      const at = yield* Clock.currentTimeMillis
      const execute = Effect.zipRight(
        isDiscordAction(call.name) ? run.beforeSideEffect : Effect.void,
        tools.execute(call, { guildId: run.origin.guildId, channelId: run.origin.channelId })
      )
      const { execution, result } = yield* executeOnce(
        toolCalls,
        {
          toolCallId: call.toolCallId,
          tool: call.name,
          partition: run.partition,
          channelId: run.origin.channelId,
          messageId: run.origin.messageId,
          at
        },
        execute,
        Clock.currentTimeMillis
      )
      const status = statusOf(execution, result.status)
      yield* logAnnotated(
        result.status === "success" ? LogLevel.Info : LogLevel.Warning,
        `built-in tool ${call.name}: ${status} (${execution})`,
        { tool: call.name, toolCallId: call.toolCallId, status, execution, detail: result.toolReturn.slice(0, 200) }
      )
      yield* auroraToolAnswered(call.name, status)
      return { call, result }
    })

  /** Carries `first` (a report, maybe an approval stop) to the loop's end. */
  const carry = (run: LoopRun, first: RunReport): Effect.Effect<LoopEnd> =>
    Effect.gen(function*() {
      let report = first
      const executed: Array<Executed> = []
      let trips = 0
      /** The key of this loop's stop recorded in OpenStops, not yet deleted. */
      let recorded: string | null = null
      const closeRecorded = Effect.suspend(() => {
        const key = recorded
        recorded = null
        return key === null ? Effect.void : bestEffort("delete")(stops.close(key))
      })
      while (report.approvalStop !== undefined) {
        const stop = report.approvalStop
        const split = splitStop(stop.calls, run.builtin, tools.isBuiltinTool)
        if (trips >= maxRoundTrips) {
          const answers = limitAnswers(split)
          yield* Effect.logError(`tool loop: more than ${maxRoundTrips} round-trips; every pending call is refused`)
          yield* run.continueWith(answers, continuationOtid(run.origin.messageId, answers)).pipe(
            Effect.catchAll((error) =>
              Effect.logError(`tool loop: the last continuation failed (${error._tag}: ${error.reason})`)
            )
          )
          yield* closeRecorded
          return LoopEnd.LimitReached({ report, executed })
        }
        // The Discord actions of the run before this stop (see LoopRun `actionsBefore`).
        const actionsBefore = [...run.actionsBefore, ...discordActionsOf(report)]
        if (split.aurora.length > 0 || recorded !== null) {
          const key = stopKeyOf(stop.calls)
          const aurora = new Set(split.aurora.map((call) => call.toolCallId))
          const opened = yield* stops.open({
            key,
            origin: { ...run.origin, runId: stop.runId ?? null },
            calls: stop.calls.map((call) => ({ ...call, aurora: aurora.has(call.toolCallId) })),
            actionsBefore,
            openedAt: yield* Clock.currentTimeMillis
          }).pipe(Effect.as(true), Effect.catchAll((error) => Effect.as(bestEffort("record")(Effect.fail(error)), false)))
          if (recorded !== key) yield* closeRecorded
          recorded = opened ? key : null
        }
        const stopExecuted: Array<Executed> = []
        for (const call of split.aurora) stopExecuted.push(yield* runBuiltin(run, call))
        executed.push(...stopExecuted)
        const returns = stopExecuted.map((e) => Answer.toolReturn(e.call.toolCallId, e.result))
        let answers: ReadonlyArray<ApprovalAnswer> = returns
        if (split.others.length > 0) {
          const opened = yield* gate.open({
            ...run.origin,
            runId: stop.runId ?? null,
            calls: split.others,
            answered: returns,
            actionsBefore,
            requestedAt: yield* Clock.currentTimeMillis
          })
          if (opened._tag === "Waiting") {
            yield* closeRecorded
            yield* Effect.logInfo(`tool loop: awaiting a person's approval of ${split.others.map((c) => c.name).join(", ")}`)
            return LoopEnd.Awaiting({
              report: withExecuted(report, stopExecuted),
              executed,
              tools: split.others.map((call) => call.name),
              approvalId: opened.approvalId
            })
          }
          yield* Effect.logWarning(`tool loop: approval could not be asked (${opened.reason}); denied`)
          answers = [...returns, ...deniedAnswers(split.others, opened.reason)]
        }
        trips += 1
        const next = yield* Effect.either(run.continueWith(answers, continuationOtid(run.origin.messageId, answers)))
        if (next._tag === "Left") {
          yield* closeRecorded
          return LoopEnd.Failed({ report: withExecuted(report, stopExecuted), executed, error: next.left })
        }
        report = mergeSegments(report, stopExecuted, next.right)
      }
      yield* closeRecorded
      return LoopEnd.Finished({ report, executed })
    }).pipe(Effect.withSpan("ToolLoop.carry", { captureStackTrace: false }))

  return { carry } as const
})

export type ToolLoop = Effect.Effect.Success<typeof makeToolLoop>
