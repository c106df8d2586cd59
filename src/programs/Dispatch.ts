/**
 * The dispatch program: the EventQueue's consumer. For each event: circuit breaker -> LettaExecutor
 * (retry schedule, the guild's timeout) -> ErrorStats, with a typing indicator while the agent works.
 *
 * What happens to an event:
 * - pending for longer than AURORA_MAX_EVENT_AGE when its turn comes (a long pause, a long outage)
 *   -> a dead letter `expired`, never sent: an answer that late would be out of place;
 * - the run succeeded -> done;
 * - the breaker turned it away -> back to the front of its channel, held until the breaker admits
 *   traffic again (its release signal, see BreakerRelease.ts), or until the end of the cool-down;
 * - transient failure (connection, timeout before acting, 408, 429, 5xx) after the retries -> back to
 *   the front of its channel, held for 5 s or until the breaker's next release, whichever comes
 *   first: nothing is dropped while Letta is down;
 * - the agent had already acted (e.g. posted) when the run failed -> done (never re-sent: that
 *   would post twice), logged and counted;
 * - a permanent failure (agent not found, 400/401/403/422, pending approval, failed run) -> a dead
 *   letter `failed` with the error's tag and reason, which an admin can list and retry.
 *
 * The run's progress goes to the EventJournal as it happens (started, run id, first side effect),
 * so that start-up recovery can tell a run that may be re-sent from one whose agent had acted.
 * An event replayed after a crash carries the run that crash cut off: it is cancelled on the
 * server before the event is sent again. A run cut off by shutdown before the agent acted is
 * cancelled by the executor and its progress cleared, so the restart sends the event as new.
 */
import { Cause, Clock, Deferred, Duration, Effect, Either, Fiber, Layer, LogLevel, Ref, type Schedule } from "effect"
import type { RunObserver, RunReport, ToolCallSummary } from "../domain/AgentRun.js"
import { AuroraConfig } from "../domain/Config.js"
import { isSideEffectingTool } from "../domain/AgentRun.js"
import type { StorageError } from "../domain/Errors.js"
import { Partition, type QueuedEvent } from "../domain/Event.js"
import { isServiceFailure, isTransient, type LettaRunError } from "../domain/LettaErrors.js"
import { defaultGuildSettings } from "../domain/Settings.js"
import { logAnnotated } from "../services/health/Log.js"
import { CircuitBreaker } from "../services/health/CircuitBreaker.js"
import { ErrorStats } from "../services/health/ErrorStats.js"
import { EventJournal } from "../services/queue/EventJournal.js"
import { DispatchOutcome, EventQueue } from "../services/queue/EventQueue.js"
import { LettaExecutor } from "../services/letta/LettaExecutor.js"
import * as Metrics from "../services/health/Metrics.js"
import { lettaRetrySchedule, retryOnFailure } from "../services/letta/RetryPolicy.js"
import { SettingsStore } from "../services/storage/SettingsStore.js"
import { TypingIndicator } from "../services/discord/TypingIndicator.js"
import { releaseHeldEvents } from "./BreakerRelease.js"
import { deadLetterRecorder } from "./DeadLettering.js"

/** How long an event that failed transiently waits before its channel tries it again (a breaker release ends it sooner). */
export const transientHold = Duration.seconds(5)


export interface DispatchOptions {
  /** The retry schedule for transient failures (tests shorten it). */
  readonly retrySchedule?: Schedule.Schedule<unknown, LettaRunError> | undefined
  /** Default: AURORA_MAX_EVENT_AGE. */
  readonly maxEventAge?: Duration.DurationInput | undefined
}

export const makeDispatcher = (options: DispatchOptions = {}) =>
  Effect.gen(function* () {
    const settings = yield* SettingsStore
    const breaker = yield* CircuitBreaker
    const executor = yield* LettaExecutor
    const stats = yield* ErrorStats
    const typing = yield* TypingIndicator
    const journal = yield* EventJournal
    const deadLetter = yield* deadLetterRecorder
    const schedule = options.retrySchedule ?? lettaRetrySchedule
    const maxAgeMs = Duration.toMillis(options.maxEventAge ?? (yield* AuroraConfig).maxEventAge)

    /**
     * Progress records are for crash recovery: a failed write is logged and the run goes on (the
     * run itself matters more than its record).
     */
    const recorded = (what: string, write: Effect.Effect<void, StorageError>) =>
      Effect.catchAll(write, (error) => Effect.logError(`journal: could not record ${what}`, error))

    /** One HTTP attempt through the breaker; an open breaker is a value, not an error, so it is never retried. */
    const attempt = (event: QueuedEvent, timeout: Duration.Duration, observer: RunObserver) =>
      breaker
        .protect(
          executor.run({ agentId: event.agentId, prompt: event.prompt, timeout, observer }),
          isServiceFailure
        )
        .pipe(
          Effect.tap(() => stats.record({ kind: "agent_run", outcome: "success" })),
          Effect.tapError((error) =>
            error._tag === "CircuitOpen"
              ? Effect.void
              : stats.record({ kind: "agent_run", outcome: { errorType: error._tag }, detail: error.reason })
          ),
          Effect.map(Either.right),
          Effect.catchTag("CircuitOpen", (open) => Effect.succeed(Either.left(open)))
        )

    const dispatch = (event: QueuedEvent): Effect.Effect<DispatchOutcome> =>
      Effect.gen(function* () {
        const startedAt = yield* Clock.currentTimeMillis
        const age = startedAt - event.enqueuedAt
        if (age > maxAgeMs) {
          const limit = `${Duration.format(Duration.millis(age))} (limit ${Duration.format(Duration.millis(maxAgeMs))})`
          yield* deadLetter(event, { reason: "expired", errorType: null, detail: `pending for ${limit} when its turn came` }, {
            said: `expired after ${limit} in the queue`,
            attempts: event.attempts,
            level: LogLevel.Warning
          })
          return DispatchOutcome.done
        }
        const guildSettings =
          event.guildId === null ? defaultGuildSettings : (yield* settings.guild(event.guildId)).settings
        const timeout = Duration.seconds(guildSettings.timeout)
        // Completed by the agent's first side-effecting call: its reply is out, or may be.
        const replied = yield* Deferred.make<void>()
        const observer: RunObserver = {
          onRunId: (runId) => recorded("the run id", journal.runIdSeen(event.messageId, runId)),
          onToolCall: (call: ToolCallSummary) =>
            Effect.zipRight(
              Metrics.toolCalled(call.name),
              isSideEffectingTool(call.name)
                ? Effect.flatMap(Deferred.succeed(replied, undefined), (first) =>
                  first ? recorded("the side effect", journal.sideEffectSeen(event.messageId)) : Effect.void)
                : Effect.void
            )
        }
        // From the recorded start until the run ends, a shutdown leaves the journal consistent.
        const whenCutOff = Effect.onInterrupt(() => forgetInterruptedRun(event, replied))
        yield* recorded("the run start", journal.runStarted(event.messageId, startedAt))
        yield* Metrics.dispatched
        yield* Effect.logDebug(`dispatching after ${startedAt - event.enqueuedAt} ms in queue`)
        if (event.interruptedRunId !== undefined) {
          yield* whenCutOff(cancelInterrupted(event.agentId, event.interruptedRunId))
        }

        // Typing runs while the agent works: it stops at the agent's first side-effecting call
        // (its reply) or when the run ends, whichever comes first. A plain fork rather than a
        // scope for it (a scope per dispatch costs more than the rest of the typing): `ensuring`
        // stops it however the run ends, and a fork is interrupted with its parent fiber anyway.
        const typingFiber = guildSettings.typing
          ? yield* Effect.fork(typing.showUntil(event.channelId, Deferred.await(replied)))
          : null
        const attempts = yield* Ref.make(0)
        const counted = Effect.zipRight(
          Ref.getAndUpdate(attempts, (n) => n + 1).pipe(Effect.flatMap((n) => (n > 0 ? Metrics.retried : Effect.void))),
          attempt(event, timeout, observer)
        )
        const result = yield* retryOnFailure(counted, schedule).pipe(
          Effect.either,
          whenCutOff,
          Effect.ensuring(typingFiber === null ? Effect.void : Fiber.interrupt(typingFiber))
        )

        const finishedAt = yield* Clock.currentTimeMillis
        const timing = { queuedMs: startedAt - event.enqueuedAt, runMs: finishedAt - startedAt }
        return yield* outcomeOf(event, result, timing)
      }).pipe(
        Effect.withSpan("dispatch", {
          attributes: { messageId: event.messageId, agentId: event.agentId },
          captureStackTrace: false
        }),
        Effect.annotateLogs({
          guildId: event.guildId ?? "dm",
          channelId: event.channelId,
          messageId: event.messageId,
          agentId: event.agentId
        }),
        Effect.catchAllCause((cause) =>
          // A defect here is a bug: the event is not retried forever because of it, but it is not
          // lost either; an admin sees it in `queue failed` and can retry it once the bug is fixed.
          Effect.logError("dispatch failed unexpectedly", cause).pipe(
            Effect.zipRight(deadLetter(event, {
              reason: "failed",
              errorType: "Defect",
              detail: Cause.pretty(cause).split("\n")[0] ?? "unexpected failure"
            }, { said: "run failed permanently (unexpected failure in the dispatcher)" })),
            Effect.as(DispatchOutcome.done)
          )
        )
      )

    /**
     * A crash cut this event's run off before the agent acted: that run may still be going on the
     * server (a client disconnect does not stop it), so it is cancelled before the re-send.
     */
    const cancelInterrupted = (agentId: string, runId: string) =>
      Effect.gen(function* () {
        const cancelled = yield* executor.cancelRun(agentId, runId)
        yield* cancelled
          ? Effect.logInfo("the run cut off by the restart was cancelled; sending the event again")
          : Effect.logWarning("the run cut off by the restart could not be cancelled; sending the event again anyway")
      }).pipe(Effect.annotateLogs({ interruptedRunId: runId }))

    /**
     * Shutdown interrupted the run (the executor has cancelled it on the server). Before the agent
     * acted, the event goes back to a plain pending one, so the restart sends it again; after, the
     * progress stays, and the restart dead-letters it (interrupted-after-reply).
     */
    const forgetInterruptedRun = (event: QueuedEvent, replied: Deferred.Deferred<void>) =>
      Effect.flatMap(Deferred.isDone(replied), (acted) =>
        acted
          ? Effect.logWarning("run interrupted by shutdown after the agent acted; it will not be sent again")
          : recorded("the interrupted run's reset", journal.update(event)))

    /** Outcome, duration, first tool call and tokens of a successful run (tool calls were counted live). */
    const recordSuccess = (report: RunReport) =>
      Effect.all([
        Metrics.runFinished("success", report.durationMs, report.firstToolCallMs),
        report.usage === null ? Effect.void : Metrics.tokensUsed(report.usage)
      ], { discard: true })

    const outcomeOf = (
      event: QueuedEvent,
      result: Either.Either<Either.Either<RunReport, { readonly retryIn: Duration.Duration }>, LettaRunError>,
      timing: { readonly queuedMs: number; readonly runMs: number }
    ): Effect.Effect<DispatchOutcome> => {
      const timings = { queuedMs: timing.queuedMs, runMs: timing.runMs, attempts: event.attempts + 1 }
      if (Either.isRight(result)) {
        const inner = result.right
        if (Either.isLeft(inner)) {
          return Effect.logDebug(`circuit open: held until released (at most ${Duration.format(inner.left.retryIn)})`).pipe(
            Effect.as(DispatchOutcome.held(inner.left.retryIn))
          )
        }
        return logAnnotated(LogLevel.Info, `run finished in ${timing.runMs} ms after ${timing.queuedMs} ms in queue`, timings)
          .pipe(
            Effect.zipRight(recordSuccess(inner.right)),
            Effect.as(DispatchOutcome.done)
          )
      }
      const error = result.left
      const described = `${error._tag}: ${error.reason}`
      const counted = Metrics.runFinished(Metrics.runOutcomeOf(error), timing.runMs)
      if (isTransient(error)) {
        return logAnnotated(LogLevel.Warning, `run failed transiently (${described}); kept at the front of its channel`, timings)
          .pipe(
            Effect.zipRight(counted),
            Effect.as(DispatchOutcome.held(transientHold))
          )
      }
      if (error.sideEffect) {
        return logAnnotated(LogLevel.Error, `run failed after the agent acted (${described}); not sent again`, timings).pipe(
          Effect.zipRight(counted),
          Effect.as(DispatchOutcome.done)
        )
      }
      return deadLetter(event, { reason: "failed", errorType: error._tag, detail: error.reason }, {
        said: `run failed permanently (${described})`
      }).pipe(
        Effect.zipLeft(counted),
        Effect.annotateLogs(timings),
        Effect.as(DispatchOutcome.done)
      )
    }

    return { dispatch } as const
  })

export const DispatchLive = Layer.scopedDiscard(
  Effect.gen(function* () {
    const queue = yield* EventQueue
    const settings = yield* SettingsStore
    // AURORA_SHUTDOWN_GRACE: how long runs in flight may finish on SIGTERM.
    const grace = (yield* AuroraConfig).shutdownGrace
    const dispatcher = yield* makeDispatcher()

    // Persisted pauses hold dispatch from the start (the events replayed by recovery included).
    const global = yield* settings.global
    if (global.globalPause) yield* queue.pause("global")
    for (const guild of yield* settings.enabledGuilds) {
      if (guild.paused) yield* queue.pause(Partition.guild(guild.guildId))
    }

    // Listening for the breaker's releases before the first dispatch, so none is missed.
    yield* releaseHeldEvents
    yield* Effect.forkScoped(queue.consume(dispatcher.dispatch))
    // Runs before the loop above is interrupted (finalizers run in reverse): stop starting runs,
    // then let the ones in flight finish, for at most the grace period.
    yield* Effect.addFinalizer(() =>
      Effect.gen(function* () {
        yield* queue.stopDispatch
        const { inFlight } = yield* queue.stats
        if (inFlight.length === 0) return
        yield* Effect.logInfo(`shutting down: waiting up to ${Duration.format(grace)} for ${inFlight.length} run(s)`)
        // Finalizers run uninterruptibly, and a timeout cannot interrupt an uninterruptible wait:
        // without `interruptible` the grace period would last until the last run ended.
        const finished = yield* queue.awaitIdle.pipe(Effect.interruptible, Effect.timeout(grace), Effect.isSuccess)
        if (!finished) yield* Effect.logWarning("shutdown grace period over: cancelling the runs still in flight")
      })
    )
  })
)
