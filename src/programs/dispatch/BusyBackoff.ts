/**
 * Waiting out a busy conversation. A 409 "another request is being processed" (ConversationBusy)
 * is not a failure: the event goes back to the front of its channel and waits 1 s after the first
 * busy answer of a streak, doubling with every busy answer in a row of that conversation, capped
 * at 30 s. Any other outcome of a dispatch in that conversation ends the streak.
 *
 * Every busy answer is counted (`aurora_conversation_busy_total`); the log has one line when a
 * streak starts and one when it ends, with its count, so a long wait is two lines, not thirty.
 * Streaks are in memory, per conversation key: after a restart a busy conversation starts again
 * at 1 s. A key is dropped when its streak ends.
 */
import { Duration, Effect, HashMap, Option, Ref } from "effect"
import type { ConversationBusy } from "../../domain/LettaErrors.js"
import * as Metrics from "../../services/health/Metrics.js"

export const busyBackoffBase = Duration.seconds(1)
export const busyBackoffCap = Duration.seconds(30)

/** The wait after the `n`-th busy answer in a row (n from 1): 1, 2, 4, 8, 16, 30, 30, ... seconds. */
export const busyBackoff = (n: number): Duration.Duration =>
  Duration.min(Duration.times(busyBackoffBase, 2 ** Math.min(Math.max(0, n - 1), 16)), busyBackoffCap)

export const makeBusyStreaks = Effect.map(Ref.make(HashMap.empty<string, number>()), (streaks) => {
  /** The conversation answered busy: counted, logged at the start of a streak; how long to wait. */
  const busy = (key: string, error: ConversationBusy): Effect.Effect<Duration.Duration> =>
    Effect.gen(function*() {
      const n = yield* Ref.modify(streaks, (all): [number, HashMap.HashMap<string, number>] => {
        const next = Option.getOrElse(HashMap.get(all, key), () => 0) + 1
        return [next, HashMap.set(all, key, next)]
      })
      const wait = busyBackoff(n)
      yield* Metrics.conversationBusy
      const line = `conversation busy (another request is being processed there); trying again in ${Duration.format(wait)}`
      yield* (n === 1 ? Effect.logInfo(line) : Effect.logDebug(line)).pipe(
        Effect.annotateLogs({
          conversationId: error.conversationId,
          busyAnswers: n,
          ...(error.blockingRunId === undefined ? {} : { blockingRunId: error.blockingRunId })
        })
      )
      return wait
    })

  /**
   * Another outcome in the conversation: its streak, if any, ends (logged with its count and
   * `annotations`, which only that line carries).
   */
  const settled = (key: string, annotations: Readonly<Record<string, unknown>> = {}): Effect.Effect<void> =>
    Effect.flatMap(
      Ref.modify(streaks, (all): [number, HashMap.HashMap<string, number>] => {
        const n = Option.getOrElse(HashMap.get(all, key), () => 0)
        return n === 0 ? [0, all] : [n, HashMap.remove(all, key)]
      }),
      (n) =>
        n === 0
          ? Effect.void
          : Effect.annotateLogs(Effect.logInfo(`conversation free again after ${n} busy answer(s)`), annotations)
    )

  return { busy, settled } as const
})
