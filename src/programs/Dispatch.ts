/**
 * The dispatch program: the EventQueue's consumer. For each event: circuit breaker -> LettaExecutor
 * (retry schedule, the guild's timeout) -> ErrorStats (one attempt: ./dispatch/Attempt.ts), with a
 * typing indicator while the agent works.
 *
 * Where it runs: an event queued in `channel` mode runs in its channel's Letta conversation
 * (./dispatch/Conversation.ts: the stored one, else a new one created on the agent; a conversation
 * lost on the server is replaced once); in `shared` mode (and an event without a mode, queued
 * before modes existed) in the agent's default conversation.
 *
 * Every attempt sends the same message: the event's prompt, its image URLs (chosen at intake) and
 * the `otid` derived from its message id (see Otid.ts), so the server sees retries as one message.
 *
 * What happens to an event (./dispatch/Outcome.ts decides, from the attempts' `AttemptResult`):
 * - pending for longer than AURORA_MAX_EVENT_AGE when its turn comes (a long pause, a long outage)
 *   -> a dead letter `expired`, never sent: an answer that late would be out of place;
 * - the run succeeded -> done; a silent run (no Discord action) is then followed by the fallback
 *   (./dispatch/Fallback.ts: the agent's text posted as a reply, recorded first, or a warning);
 *   a run stopped for approval is first carried on by the tool loop (./dispatch/DispatchLoop.ts,
 *   with `client_tools` for `builtin`); a 409 "waiting for approval" where a person is asked is busy;
 * - the breaker turned it away -> back to the front of its channel, held until the breaker admits
 *   traffic again (its release signal, see BreakerRelease.ts), or until the end of the cool-down;
 * - its conversation is busy (409) -> back to the front of its channel after a backoff of 1 s
 *   doubling to 30 s per conversation (./dispatch/BusyBackoff.ts); not a failure: the breaker does
 *   not count it, ErrorStats does not record it, it is never retried within the dispatch and
 *   never dead-lettered;
 * - transient failure (connection, timeout before acting, 408, 429, 5xx) after the retries -> back to
 *   the front of its channel, held for 5 s or until the breaker's next release, whichever comes
 *   first: nothing is dropped while Letta is down;
 * - the agent had already acted (e.g. posted) when the run failed -> done (never re-sent: that
 *   would post twice), logged and counted;
 * - a permanent failure (agent not found, 400/401/403/422, pending approval, failed run, a
 *   conversation lost twice) -> a dead letter `failed` with the error's tag and reason (and the
 *   conversation), which an admin can list and retry.
 *
 * Every dispatch that reaches an end (all but a held or busy one) is written to the runs log for
 * `/aurora runs` (./dispatch/RunRecording.ts), with the tool calls the run observer saw:
 * see ./dispatch/Outcome.ts; here, too old -> `dead-lettered` with no run, a fault in the
 * dispatcher -> `dead-lettered`. A write to the runs log that fails is logged, never more.
 *
 * The run's progress goes to the EventJournal as it happens (started, run id with its
 * conversation, first side effect), so that start-up recovery can tell a run that may be re-sent
 * from one whose agent had acted. An event replayed after a crash carries the run that crash cut
 * off: it is cancelled on the server before the event is sent again, through its conversation when
 * it ran in one. A run cut off by shutdown before the agent acted is cancelled by the executor and
 * its progress cleared, so the restart sends the event as new.
 */
import { Cause, Clock, Duration, Effect, Fiber, Layer, LogLevel, type Schedule } from "effect"
import { isSideEffectingTool, type RunObserver, type RunRequest, type ToolCallSummary } from "../domain/AgentRun.js"
import { AuroraConfig } from "../domain/Config.js"
import type { StorageError } from "../domain/Errors.js"
import { conversationModeOf, Partition, type QueuedEvent } from "../domain/Event.js"
import type { LettaRunError } from "../domain/LettaErrors.js"
import { promptOtid } from "../domain/Otid.js"
import { defaultGuildSettings } from "../domain/Settings.js"
import { EventJournal } from "../services/queue/EventJournal.js"
import { DispatchOutcome, EventQueue } from "../services/queue/EventQueue.js"
import { LettaExecutor } from "../services/letta/LettaExecutor.js"
import { stage } from "../services/health/LatencyTrace.js"
import * as Metrics from "../services/health/Metrics.js"
import { lettaRetrySchedule, retryOnFailure } from "../services/letta/RetryPolicy.js"
import { SettingsStore } from "../services/storage/SettingsStore.js"
import { TypingIndicator } from "../services/discord/TypingIndicator.js"
import { releaseHeldEvents } from "./BreakerRelease.js"
import { deadLetterRecorder } from "./DeadLettering.js"
import { makeAttempt } from "./dispatch/Attempt.js"
import { makeConversations } from "./dispatch/Conversation.js"
import { cancelInterrupted, hasInterruptedRun } from "./dispatch/Interrupted.js"
import { makeDispatchLoop } from "./dispatch/DispatchLoop.js"
import { makeFallback } from "./dispatch/Fallback.js"
import { clientToolsOf } from "./dispatch/Segments.js"
import { AttemptResult, makeOutcomes } from "./dispatch/Outcome.js"
import { endedBeforeRun, endedByDefect, makeRunTrace, runRecorder } from "./dispatch/RunRecording.js"

export { transientHold } from "./dispatch/Outcome.js"

export interface DispatchOptions {
  /** The retry schedule for transient failures (tests shorten it). */
  readonly retrySchedule?: Schedule.Schedule<unknown, LettaRunError> | undefined
  /** Default: AURORA_MAX_EVENT_AGE. */
  readonly maxEventAge?: Duration.DurationInput | undefined
}

export const makeDispatcher = (options: DispatchOptions = {}) =>
  Effect.gen(function*() {
    const settings = yield* SettingsStore
    const executor = yield* LettaExecutor
    const typing = yield* TypingIndicator
    const journal = yield* EventJournal
    const deadLetter = yield* deadLetterRecorder
    const conversations = yield* makeConversations
    const { outcomeOf } = yield* makeOutcomes
    const recordRun = yield* runRecorder
    const fallback = yield* makeFallback
    const toolLoop = yield* makeDispatchLoop
    const attempt = yield* makeAttempt
    const schedule = options.retrySchedule ?? lettaRetrySchedule
    const maxAgeMs = Duration.toMillis(options.maxEventAge ?? (yield* AuroraConfig).maxEventAge)

    /**
     * Progress records are for crash recovery: a failed write is logged and the run goes on (the
     * run itself matters more than its record).
     */
    const recorded = (what: string, write: Effect.Effect<void, StorageError>) =>
      Effect.catchAll(write, (error) => Effect.logError(`journal: could not record ${what}`, error))

    const dispatch = (event: QueuedEvent): Effect.Effect<DispatchOutcome> =>
      Effect.gen(function*() {
        const startedAt = yield* Clock.currentTimeMillis
        const age = startedAt - event.enqueuedAt
        if (age > maxAgeMs) {
          const limit = `${Duration.format(Duration.millis(age))} (limit ${Duration.format(Duration.millis(maxAgeMs))})`
          const detail = `pending for ${limit} when its turn came`
          yield* deadLetter(event, { reason: "expired", errorType: null, detail }, {
            said: `expired after ${limit} in the queue`,
            attempts: event.attempts,
            level: LogLevel.Warning
          })
          yield* recordRun(event, endedBeforeRun(`expired: ${detail}`, age, startedAt))
          return DispatchOutcome.done
        }
        const guildSettings = event.guildId === null
          ? defaultGuildSettings
          : (yield* settings.guild(event.guildId)).settings
        const timeout = Duration.seconds(guildSettings.timeout)
        // Set by the agent's first side-effecting call (its reply is out, or may be); the typing
        // fiber, once forked. Plain variables: only synchronous steps read and set them.
        let replied = false
        let typingFiber: Fiber.RuntimeFiber<never> | undefined = undefined
        // The tools the attempt called, for the runs log: failed runs have no report to read them from.
        const trace = yield* makeRunTrace
        const sideEffect = recorded("the side effect", journal.sideEffectSeen(event.messageId))
        // The first side effect stops typing at once, without waiting (the run's end waits).
        const stopTypingNow = Effect.fiberIdWith((id) => typingFiber ? Fiber.interruptAsFork(typingFiber, id) : Effect.void)
        const acted = Effect.suspend(() => {
          if (replied) return Effect.void
          replied = true
          return Effect.zipRight(stopTypingNow, sideEffect)
        })
        const onToolCall = (call: ToolCallSummary) =>
          Effect.zipRight(
            Effect.zipRight(Metrics.toolCalled(call.name), trace.toolCalled(call.name)),
            isSideEffectingTool(call.name) ? acted : Effect.void
          )
        // The run id is recorded with the conversation it runs in, so a recovery cancels it there.
        const observer = (conversationId: string | undefined): RunObserver => ({
          onRunId: (runId) => recorded("the run id", journal.runIdSeen(event.messageId, runId, conversationId)),
          onToolCall
        })
        const request = (conversationId: string | undefined): RunRequest => ({
          agentId: event.agentId,
          prompt: event.prompt,
          otid: promptOtid(event.messageId),
          images: event.images,
          timeout,
          observer: observer(conversationId),
          conversationId,
          clientTools: clientToolsOf(guildSettings)
        })
        // A 409 "waiting for approval" where a person is being asked is a busy conversation.
        const runIn = (id: string | undefined) => toolLoop.busyWhileAwaiting(event.agentId, id)(executor.run(request(id)))
        const conversation = conversationModeOf(event) === "channel" ? conversations.forEvent(event) : undefined
        const send = conversation === undefined ? runIn(undefined) : conversation.send(runIn)
        // Past an approval stop, the run goes on in the conversation it ran in (./dispatch/DispatchLoop.ts).
        const carried = (first: AttemptResult) =>
          Effect.suspend(() => {
            const conversationId = conversation?.current()
            const run = { event, settings: guildSettings, conversationId, timeout, schedule, acted, trace }
            return toolLoop.carry({ ...run, observer: observer(conversationId) }, first)
          })

        // From the recorded start until the run ends, a shutdown leaves the journal consistent.
        const whenCutOff = Effect.onInterrupt(() => forgetInterruptedRun(event, replied))
        yield* recorded("the run start", journal.runStarted(event.messageId, startedAt))
        yield* stage(event.messageId, "runStarted")
        yield* Metrics.dispatched
        yield* Effect.logDebug(`dispatching after ${startedAt - event.enqueuedAt} ms in queue`)
        // Only an event replayed after a crash has a run to cancel first (most have none).
        if (hasInterruptedRun(event)) yield* whenCutOff(cancelInterrupted(executor, event))

        // Typing runs while the agent works, until its first side-effecting call (`acted`) or the
        // run's end. One plain fork, not a scope (a scope per dispatch costs more than the typing):
        // `ensuring` stops it however the run ends, and a fork ends with its parent fiber anyway.
        if (guildSettings.typing) typingFiber = yield* Effect.fork(typing.show(event.channelId))
        const stopTyping = typingFiber === undefined ? Effect.void : Fiber.interrupt(typingFiber)
        // Attempts of one dispatch run one after another in this fiber: a plain count will do.
        let attempts = 0
        const retriedAttempt = Effect.zipRight(Metrics.retried, trace.attemptStarted)
        const once = attempt(send)
        const counted = Effect.suspend(() => Effect.zipRight(attempts++ === 0 ? trace.attemptStarted : retriedAttempt, once))
        // A busy conversation is not retried here: it waits in the queue (see the module header).
        const result = yield* retryOnFailure(counted, schedule).pipe(
          Effect.catchAll((error) =>
            Effect.succeed(
              error._tag === "ConversationBusy" ? AttemptResult.Busy({ error }) : AttemptResult.Failed({ error })
            )
          ),
          Effect.flatMap(carried),
          whenCutOff,
          Effect.ensuring(stopTyping)
        )
        if (conversation !== undefined && (result._tag === "Finished" || result._tag === "AwaitingApproval")) {
          yield* conversation.touch
        }

        const finishedAt = yield* Clock.currentTimeMillis
        const timing = { queuedMs: startedAt - event.enqueuedAt, runMs: finishedAt - startedAt, finishedAt }
        const ranIn = conversation === undefined ? undefined : { key: conversation.key, conversationId: conversation.current() }
        const followed = result._tag === "Finished"
          ? yield* fallback.follow(event, result.report, guildSettings.fallback)
          : undefined
        return yield* outcomeOf(event, result, timing, ranIn, yield* trace.toolCalls, followed)
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
            Effect.zipRight(Effect.flatMap(Clock.currentTimeMillis, (now) => recordRun(event, endedByDefect(cause, now)))),
            Effect.as(DispatchOutcome.done)
          )
        )
      )

    /**
     * Shutdown interrupted the run (the executor has cancelled it on the server). Before the agent
     * acted, the event goes back to a plain pending one, so the restart sends it again; after, the
     * progress stays, and the restart dead-letters it (interrupted-after-reply).
     */
    const forgetInterruptedRun = (event: QueuedEvent, acted: boolean) =>
      acted
        ? Effect.logWarning("run interrupted by shutdown after the agent acted; it will not be sent again")
        : recorded("the interrupted run's reset", journal.update(event))

    return { dispatch } as const
  })

export const DispatchLive = Layer.scopedDiscard(
  Effect.gen(function*() {
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
      Effect.gen(function*() {
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
