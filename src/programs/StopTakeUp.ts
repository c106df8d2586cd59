/**
 * Start-up take-up of the open stops (#16): a previous process stopped (SIGKILL, crash, SIGTERM)
 * while its tool loop answered an approval stop, so Letta keeps that conversation waiting (409
 * "waiting for approval" to every new message) until the stop's calls are answered. OpenStops
 * (services/queue/OpenStops.ts) kept the stop; this answers it, without running anything.
 *
 * For each record (`OpenStops.all`), oldest first, one after the other (`takeUpStops`):
 *
 * 1. A stop the approval gate holds (a stored approval names one of its calls: the process stopped
 *    between the gate's record and the deletion of this one) is the gate's, whose own take-up
 *    continues it: the record is deleted, nothing is sent.
 * 2. Else every call is answered, in the stop's order (`stopAnswers`):
 *    - a call Aurora runs (a built-in tool), through `executeOnce` with nothing to execute, so a
 *      call is never run here: recorded with a result -> that result (replayed); recorded as
 *      started without a result -> error "interrupted" (recorded as such); never recorded ->
 *      error `notRunResult` (recorded too, so that a later take-up says the same): the moment
 *      that asked for it is gone. A stop opened longer ago than the tool call record's retention
 *      (7 days) may have lost its records: each such call is "interrupted", without looking.
 *      Each answer that was not replayed is one warning line and one count
 *      (`aurora_tool_calls_total{executor="aurora"}`: `interrupted`, or `error` for not run);
 *    - a call a person decides (the process stopped before the gate asked) -> denied, with
 *      `restartedBeforeAsking`.
 * 3. The answers go to `ApprovalContinuation.resume(origin, answers)` (programs/ApprovalResume.ts
 *    carries the run to its end: more tool round-trips, the fallback, the runs log row of the
 *    triggering message, which replaces the `interrupted` row Recovery wrote). Then:
 *    - `answered`, `refused` -> the record is deleted (refused: Letta has nothing pending for these
 *      calls any more, or rejects the answers; sending them again would not change that; logged);
 *    - `unreachable` (Letta down after the continuation's retries) -> the record is kept, logged:
 *      the next start tries again. Never retried in this process: each record is taken up once
 *      per start, so nothing loops.
 *    A record that cannot be read or deleted is logged; nothing else stops.
 *
 * The triggering event is Recovery's alone (programs/Recovery.ts: dead letter
 * `interrupted-after-reply` when the agent had acted, never re-sent): the journal and the dead
 * letters are not touched here. `StopTakeUpLive` reads the records once Recovery is done (so
 * Recovery's conversation cancels land before the continuations) and before the dispatch starts
 * (so only what a previous process left is read), and answers them in the background: the start
 * does not wait for Letta. While a record exists, a 409 "waiting for approval" in its conversation is a busy
 * conversation (./dispatch/Segments.ts), so a mention there waits for the take-up.
 */
import { Clock, Effect, Layer } from "effect"
import { type ApprovalAnswer, ApprovalAnswer as Answer } from "../domain/Approval.js"
import { Partition } from "../domain/Event.js"
import { interruptedResult, toolCallRetentionMs, ToolResult } from "../domain/ToolCall.js"
import { PendingApprovals } from "../services/approvals/PendingApprovals.js"
import { type AuroraToolStatus, auroraToolAnswered } from "../services/health/ToolMetrics.js"
import { ApprovalContinuation } from "../services/approvals/Ports.js"
import { type OpenStop, OpenStops, type StopCall } from "../services/queue/OpenStops.js"
import { executeOnce, ToolCalls } from "../services/queue/ToolCalls.js"

/** A built-in call of a cut-off stop that had not started: it is not run after the restart. */
export const notRunResult: ToolResult = ToolResult.error(
  "not run: Aurora restarted before running this tool call; it was not run and will not be"
)

/** The deny of a call a person would have decided, when the stop was cut off before they were asked. */
export const restartedBeforeAsking = "denied: Aurora restarted before asking a person to approve this call"

/** How one record was taken up. */
export type TakeUp = "answered" | "refused" | "kept" | "gate"

/** The stop is too old for the tool call record to still know its calls (see the module header, 2.). */
export const isStale = (stop: OpenStop, now: number): boolean => now - stop.openedAt > toolCallRetentionMs

export const makeStopTakeUp = Effect.gen(function*() {
  const stops = yield* OpenStops
  const toolCalls = yield* ToolCalls
  const approvals = yield* PendingApprovals
  const continuation = yield* ApprovalContinuation

  /** One log line and one count per built-in call answered without running (as the tool loop does). */
  const answered = (call: StopCall, status: AuroraToolStatus, how: string) =>
    Effect.zipRight(
      Effect.logWarning(`built-in tool ${call.name}: ${status} (${how}, after a restart)`).pipe(
        Effect.annotateLogs({ tool: call.name, toolCallId: call.toolCallId, status, execution: how })
      ),
      auroraToolAnswered(call.name, status)
    )

  const answerOf = (stop: OpenStop, call: StopCall, stale: boolean): Effect.Effect<ApprovalAnswer> => {
    if (!call.aurora) return Effect.succeed(Answer.decision(call.toolCallId, false, restartedBeforeAsking))
    if (stale) return Effect.as(answered(call, "interrupted", "stale"), Answer.toolReturn(call.toolCallId, interruptedResult))
    return Effect.flatMap(Clock.currentTimeMillis, (at) =>
      executeOnce(
        toolCalls,
        {
          toolCallId: call.toolCallId,
          tool: call.name,
          partition: stop.origin.guildId === null ? Partition.dm : Partition.guild(stop.origin.guildId),
          channelId: stop.origin.channelId,
          messageId: stop.origin.messageId,
          at
        },
        // Never run after a restart: the "execution" of a call never started is its not-run answer.
        Effect.succeed(notRunResult),
        Clock.currentTimeMillis
      )).pipe(
        Effect.tap(({ execution }) =>
          // A replayed result was counted when it ran; the others are answered here for the first time.
          execution === "replayed"
            ? Effect.void
            : answered(call, execution === "executed" ? "error" : execution, execution === "executed" ? "not run" : execution)
        ),
        Effect.map(({ result }) => Answer.toolReturn(call.toolCallId, result))
      )
  }

  /** Every call of the stop answered, in its order (see the module header, 2.). */
  const stopAnswers = (stop: OpenStop): Effect.Effect<ReadonlyArray<ApprovalAnswer>> =>
    Effect.flatMap(
      Clock.currentTimeMillis,
      (now) => Effect.forEach(stop.calls, (call) => answerOf(stop, call, isStale(stop, now)))
    )

  const close = (stop: OpenStop) =>
    stops.close(stop.key).pipe(
      Effect.catchAll((error) => Effect.logError(`open stop taken up, but its record could not be deleted (${error.reason})`))
    )

  const heldByGate = (stop: OpenStop) =>
    approvals.all.pipe(
      Effect.map((stored) => {
        const ids = new Set(stop.calls.map((call) => call.toolCallId))
        return stored.some((approval) => approval.calls.some((call) => ids.has(call.toolCallId)))
      }),
      Effect.catchAll((error) =>
        Effect.as(Effect.logWarning(`could not read the pending approvals (${error.reason}); the stop is answered`), false)
      )
    )

  const takeUp = (stop: OpenStop): Effect.Effect<TakeUp> =>
    Effect.gen(function*() {
      if (yield* heldByGate(stop)) {
        yield* Effect.logInfo("open stop: the approval gate holds it; its record is deleted")
        yield* close(stop)
        return "gate"
      }
      const answers = yield* stopAnswers(stop)
      yield* Effect.logWarning(
        `open stop left by a previous process: answering its ${answers.length} call(s) without running them`
      )
      // What the run did before this stop is not recorded with it (only the stop's own calls, which
      // the continuation reads back from ToolCalls): nothing earlier is counted as its answer.
      const outcome = yield* continuation.resume(stop.origin, answers, [])
      if (outcome === "unreachable") {
        yield* Effect.logError("open stop: Letta could not be reached; the record is kept for the next start")
        return "kept"
      }
      if (outcome === "refused") yield* Effect.logWarning("open stop: Letta refused the answers; the record is deleted")
      yield* close(stop)
      return outcome
    }).pipe(
      Effect.annotateLogs({
        stopKey: stop.key,
        guildId: stop.origin.guildId ?? "dm",
        channelId: stop.origin.channelId,
        messageId: stop.origin.messageId,
        agentId: stop.origin.agentId,
        ...(stop.origin.conversationId === null ? {} : { conversationId: stop.origin.conversationId })
      }),
      Effect.withSpan("StopTakeUp.takeUp", { attributes: { stopKey: stop.key } })
    )

  /** The records a previous process left: read before this process's dispatch can open any. */
  const leftOpen: Effect.Effect<ReadonlyArray<OpenStop>> = stops.all.pipe(
    Effect.catchAll((error) =>
      Effect.as(Effect.logError(`could not read the open stops at start-up (${error.reason})`), [] as ReadonlyArray<OpenStop>)
    )
  )

  /** Each record, in order, once (see the module header). */
  const takeUpAll = (records: ReadonlyArray<OpenStop>): Effect.Effect<ReadonlyArray<TakeUp>> => Effect.forEach(records, takeUp)

  return { leftOpen, takeUpAll, takeUpStops: Effect.flatMap(leftOpen, takeUpAll) } as const
})

/**
 * Reads the records while the app is built (after Recovery, before the dispatch starts, so that a
 * stop this process opens is never taken for a left one), then answers them in the background.
 */
export const StopTakeUpLive = Layer.scopedDiscard(
  Effect.gen(function*() {
    const { leftOpen, takeUpAll } = yield* makeStopTakeUp
    const records = yield* leftOpen
    if (records.length > 0) yield* Effect.forkScoped(takeUpAll(records))
  })
)
