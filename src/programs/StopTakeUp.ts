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
 *    continues it: nothing is sent; the triggering message's journal entry is removed (4.), then
 *    the record.
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
 * 3. The answers go to `ApprovalContinuation.resume(origin, answers, actions)`
 *    (programs/ApprovalResume.ts carries the run to its end: more tool round-trips, the fallback, the runs log row of the
 *    triggering message, which replaces the `interrupted` row Recovery wrote). `actions`, what the
 *    run did before that counts as its answer (`actionsBefore`), so that the end of the run posts
 *    no fallback after an answer already made: the Discord actions stored with the stop (made
 *    before it), then each built-in Discord action of the stop answered "interrupted" (it started
 *    without a result, now or at an earlier take-up, or the stop is stale: it may have posted). A
 *    call of the stop replayed with success is read back by the continuation itself; a call not
 *    run, or replayed with an error, did not act.
 * 4. The triggering message's journal entry (Recovery left it as it was when the agent had not
 *    acted, dead-lettered it `interrupted-after-reply` without a cancel when it had: see
 *    ./recovery/Classify.ts) follows the outcome, and only then is the record deleted (so that a
 *    process stopped in between takes the stop up again, and finds the entry as it was left):
 *    - `answered` -> the entry, if still there, is removed: the run was carried on and answered
 *      (or ended, logged in the runs log); its event is never sent again;
 *    - `refused` (Letta has nothing pending for these calls any more, or rejects the answers;
 *      sending them again would not change that; logged) -> the entry, if still there, follows the
 *      restart rules as if no stop were open (./recovery/Settle.ts, as Recovery applies them: a
 *      run cut off before the agent acted is replayed once, with its interruption recorded; a
 *      second time, or too old, a dead letter; after it acted, `interrupted-after-reply`);
 *    - `unreachable` (Letta down after the continuation's retries) -> the entry and the record are
 *      both kept, logged: the next start tries again. Never retried in this process: each record
 *      is taken up once per start, so nothing loops.
 *    A stop the gate holds (1.) removes the entry too: the gate's own flow continues the run.
 *    A record or an entry that cannot be read, written or deleted is logged; nothing else stops
 *    (a journal entry left behind follows the restart rules at the next start, the stop gone).
 *
 * `StopTakeUpLive` reads the records once Recovery is done (so Recovery's conversation cancels
 * land before the continuations) and before the dispatch starts (so only what a previous process
 * left is read), and answers them in the background: the start does not wait for Letta. While a
 * record exists, a 409 "waiting for approval" in its conversation is a busy conversation
 * (./dispatch/Segments.ts), so a mention there waits for the take-up.
 */
import { Clock, Duration, Effect, Layer } from "effect"
import { type ApprovalAnswer, ApprovalAnswer as Answer } from "../domain/Approval.js"
import { isDiscordAction } from "../domain/AgentRun.js"
import { AuroraConfig } from "../domain/Config.js"
import { Partition } from "../domain/Event.js"
import { interruptedResult, toolCallRetentionMs, ToolResult } from "../domain/ToolCall.js"
import { PendingApprovals } from "../services/approvals/PendingApprovals.js"
import { type AuroraToolStatus, auroraToolAnswered } from "../services/health/ToolMetrics.js"
import { ApprovalContinuation } from "../services/approvals/Ports.js"
import { EventJournal } from "../services/queue/EventJournal.js"
import { EventQueue } from "../services/queue/EventQueue.js"
import { type OpenStop, OpenStops, type StopCall } from "../services/queue/OpenStops.js"
import { executeOnce, ToolCalls } from "../services/queue/ToolCalls.js"
import { classify } from "./recovery/Classify.js"
import { makeSettle } from "./recovery/Settle.js"

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

/**
 * The built-in Discord actions of the stop that may have acted (see the module header, 3.): those
 * answered "interrupted", in the stop's order.
 */
export const actedAtStop = (stop: OpenStop, answers: ReadonlyArray<ApprovalAnswer>): ReadonlyArray<string> =>
  stop.calls.flatMap((call) => {
    const answer = answers.find((a) => a.toolCallId === call.toolCallId)
    return call.aurora && isDiscordAction(call.name) && answer?._tag === "ToolReturn" &&
        answer.result.toolReturn === interruptedResult.toolReturn
      ? [call.name]
      : []
  })

export const makeStopTakeUp = Effect.gen(function*() {
  const stops = yield* OpenStops
  const toolCalls = yield* ToolCalls
  const approvals = yield* PendingApprovals
  const continuation = yield* ApprovalContinuation
  const journal = yield* EventJournal
  const queue = yield* EventQueue
  const { settle } = yield* makeSettle
  const maxAgeMs = Duration.toMillis((yield* AuroraConfig).maxEventAge)

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

  /** The continuation answered (or the gate continues): the event is done (see the module header, 4.). */
  const forgetEntry = (stop: OpenStop) =>
    journal.remove(stop.origin.messageId).pipe(
      Effect.catchAll((error) => Effect.logError(`open stop taken up, but its event could not be removed (${error.reason})`))
    )

  /** Letta refused the answers: the entry, if any, follows the restart rules (see the module header, 4.). */
  const settleEntry = (stop: OpenStop) =>
    Effect.gen(function*() {
      const entry = (yield* journal.load).find((e) => e.event.messageId === stop.origin.messageId)
      if (entry === undefined) return
      const recovery = classify(entry, yield* Clock.currentTimeMillis, maxAgeMs)
      const settled = yield* settle(entry, recovery)
      yield* Effect.logWarning(`open stop refused: its event follows the restart rules (${recovery._tag})`)
      if (settled.conversationCancel !== null) yield* settled.conversationCancel
      if (settled.runCancel !== null) yield* settled.runCancel
      if (settled.replay !== null) yield* queue.restore([settled.replay])
    }).pipe(
      Effect.catchAll((error) =>
        Effect.logError(
          `open stop refused, but its event could not be settled (${
            error._tag === "SettleFailed" ? `${error.operation}: ${error.error.reason}` : error.reason
          }); the next start does`
        )
      )
    )

  const takeUp = (stop: OpenStop): Effect.Effect<TakeUp> =>
    Effect.gen(function*() {
      if (yield* heldByGate(stop)) {
        yield* Effect.logInfo("open stop: the approval gate holds it; its event and its record are deleted")
        yield* forgetEntry(stop)
        yield* close(stop)
        return "gate"
      }
      const answers = yield* stopAnswers(stop)
      const actions = [...stop.actionsBefore, ...actedAtStop(stop, answers)]
      yield* Effect.logWarning(
        `open stop left by a previous process: answering its ${answers.length} call(s) without running them`
      )
      const outcome = yield* continuation.resume(stop.origin, answers, actions)
      if (outcome === "unreachable") {
        yield* Effect.logError("open stop: Letta could not be reached; the record and the event are kept for the next start")
        return "kept"
      }
      if (outcome === "refused") {
        yield* Effect.logWarning("open stop: Letta refused the answers; the record is deleted")
        yield* settleEntry(stop)
      } else {
        yield* forgetEntry(stop)
      }
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
