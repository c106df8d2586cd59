/**
 * The dispatch's side of the tool loop: a first segment that ended in an approval stop is carried
 * on (./ToolLoop.ts) in the same conversation (or the agent's default one), with the guild's
 * `client_tools`, timeout and the dispatch's retry schedule, and the loop's end becomes the
 * dispatch's AttemptResult (./Outcome.ts):
 *
 * - Finished -> Finished with the run's whole report (the fallback and the runs view read it);
 * - Awaiting -> AwaitingApproval (the event is done; the decision continues the run);
 * - LimitReached -> LoopLimit (a dead letter `failed`, `ToolLoopLimit`);
 * - Failed -> Failed with `acted`: the run has moved past its prompt, so the event is never sent
 *   again (that would start the turn over, and post twice what was posted).
 *
 * Aurora's executions go to the runs view's tool list as `name✓` / `name✗`. Any other first
 * result passes through unchanged. A shutdown in the middle of the loop marks the event as having
 * acted (journal side effect), for the same reason: a restart dead-letters it
 * (interrupted-after-reply) rather than sending its prompt again.
 */
import { type Duration, Effect, type Schedule } from "effect"
import type { RunObserver } from "../../domain/AgentRun.js"
import { Partition, type QueuedEvent } from "../../domain/Event.js"
import type { LettaRunError } from "../../domain/LettaErrors.js"
import type { GuildSettings } from "../../domain/Settings.js"
import { AttemptResult } from "./Outcome.js"
import type { RunTrace } from "./RunRecording.js"
import { clientToolsOf, makeSegments } from "./Segments.js"
import { makeToolLoop } from "./ToolLoop.js"
import { executedLabel } from "./ToolStop.js"

export interface DispatchRun {
  readonly event: QueuedEvent
  readonly settings: GuildSettings
  /** The conversation the first segment ran in; undefined: the agent's default conversation. */
  readonly conversationId: string | undefined
  readonly timeout: Duration.Duration
  readonly observer: RunObserver
  readonly schedule: Schedule.Schedule<unknown, LettaRunError>
  /** Marks the run as having acted (journal, typing): before a built-in post or reaction runs. */
  readonly acted: Effect.Effect<void>
  readonly trace: RunTrace
}

export const makeDispatchLoop = Effect.gen(function*() {
  const loop = yield* makeToolLoop
  const segments = yield* makeSegments

  const carry = (run: DispatchRun, first: AttemptResult): Effect.Effect<AttemptResult> => {
    if (first._tag !== "Finished" || first.report.approvalStop === undefined) return Effect.succeed(first)
    const { event, settings, conversationId } = run
    const clientTools = clientToolsOf(settings)
    return loop.carry({
      origin: {
        guildId: event.guildId,
        channelId: event.channelId,
        messageId: event.messageId,
        agentId: event.agentId,
        conversationId: conversationId ?? null
      },
      partition: Partition.ofEvent(event),
      builtin: settings.tools === "builtin",
      beforeSideEffect: run.acted,
      // The prompt's run starts here: the report holds everything it did.
      actionsBefore: [],
      continueWith: (answers, otid) =>
        segments.continuation({
          agentId: event.agentId,
          conversationId,
          otid,
          timeout: run.timeout,
          observer: run.observer,
          clientTools,
          answers
        }, run.schedule)
    }, first.report).pipe(
      Effect.tap((end) => Effect.forEach(end.executed, (e) => run.trace.toolCalled(executedLabel(e)), { discard: true })),
      Effect.map((end): AttemptResult => {
        switch (end._tag) {
          case "Finished":
            return AttemptResult.Finished({ report: end.report })
          case "Awaiting":
            return AttemptResult.AwaitingApproval({ report: end.report, tools: end.tools })
          case "LimitReached":
            return AttemptResult.LoopLimit({ report: end.report })
          case "Failed":
            return AttemptResult.Failed({ error: end.error, acted: true })
        }
      }),
      Effect.onInterrupt(() => run.acted)
    )
  }

  return { carry, busyWhileAwaiting: segments.busyWhileAwaiting } as const
})
