/**
 * Runs one prompt on a Letta agent: a streamed `POST /v1/conversations/{id}/messages` when the
 * request names a conversation (`channel` mode), else a streamed `POST /v1/agents/{id}/messages`
 * (the agent's default conversation), with one user message (./UserMessage.ts: the prompt, its
 * image parts, its `otid`, which is logged at debug only); every item logged at its level, the
 * whole run bounded by the request's timeout, the run cancelled on the server when Aurora gives up
 * on it, and the outcome reported as a RunReport or a typed LettaRunError. Both routes stream the
 * same items.
 *
 * `continueRun` answers a run that stopped for approval: the same route, with the answers as the
 * first message (./ApprovalMessage.ts: `{ type: "approval", approvals, otid }`), and everything
 * else (stream, timeout, cancel, outcomes) exactly as `run`. Both declare the request's
 * `clientTools` as `client_tools` when there are any (every request of a `builtin` guild).
 *
 * Cancelling (timeout, shutdown): a conversation's runs are cancelled through the conversation
 * (`conversations.cancel`, no run id needed: the conversation is Aurora's own, and a run may be
 * going there before its id was streamed); the agents route cancels only the run whose id was
 * seen, never the agent's other runs (another client's included).
 *
 * Failures on the conversations route are classified with the conversation: 409 (not about an
 * approval) is `ConversationBusy`, 404 `ConversationNotFound` (see ClientErrors.ts).
 *
 * Outcomes (where the contract leaves a choice):
 * - success: a stop reason of `end_turn` or `tool_rule` (see `successfulStopReasons`), or an
 *   approval stop (`requires_approval` after an `approval_request_message`): a report with
 *   `approvalStop`, the calls to answer (see ./stream/RunState.ts `approvalStopOf`);
 * - any other stop reason, an `error_message` item or an `event: error` frame: RunFailed;
 * - a stream that ends without a stop reason: LettaConnectionError ("stream ended before a stop
 *   reason"): the server or the connection gave up mid-run, which is a service failure;
 * - the timeout: LettaTimeout (phase "headers" or "stream"), after a best-effort server-side cancel
 *   when a run id was seen — unless the stop reason had already arrived, in which case the run is
 *   over and is judged on what was streamed.
 *
 * What each streamed item means, and the verdict on a finished stream, are plain functions in
 * ./stream/RunState.ts; this module does what they ask (log lines, observer hooks, the failure)
 * and owns the request, the timeout and the cancel.
 */
import type { Letta } from "@letta-ai/letta-client"
import type { LettaStreamingResponse } from "@letta-ai/letta-client/resources/agents/messages"
import { type Clock, Duration, Effect, Exit, LogLevel } from "effect"
import type { ContinuationRequest, RunReport, RunRequest } from "../../domain/AgentRun.js"
import { type LettaRunError, LettaTimeout, RunFailed } from "../../domain/LettaErrors.js"
import { markStage, stage } from "../health/LatencyTrace.js"
import { logAnnotated } from "../health/Log.js"
import { batchReader, ClientFailure, forEachItem } from "./stream/BatchReader.js"
import { applyItem, claimRunId, conclude, type Emission, makeRunState, type RunState } from "./stream/RunState.js"
import { classifyClientError, LettaClient } from "./LettaClient.js"
import { approvalMessage, clientToolsField } from "./ApprovalMessage.js"
import { userMessage } from "./UserMessage.js"

/** What a request sends: a run's or a continuation's, through the same steps. */
type Segment = Omit<RunRequest, "prompt" | "images"> & {
  readonly message: ReturnType<typeof userMessage> | ReturnType<typeof approvalMessage>
  readonly images: number
}

/** The client's own header timeout is a backstop: the Effect timeout should always fire first. */
const clientTimeoutMargin = Duration.seconds(5)

/** Observer hooks never break a run. */
const notify = (hook: Effect.Effect<void> | undefined): Effect.Effect<void> =>
  hook === undefined
    ? Effect.void
    : Effect.catchAllCause(hook, (cause) => Effect.logWarning("run observer failed", cause))

export class LettaExecutor extends Effect.Service<LettaExecutor>()("aurora/LettaExecutor", {
  effect: Effect.gen(function*() {
    const letta = yield* LettaClient

    /** The run id is known (and on every log line from here on). */
    const runStarted = (request: Segment) => (runId: string): Effect.Effect<void> =>
      Effect.zipRight(Effect.logInfo("run started"), notify(request.observer?.onRunId?.(runId)))

    /** Does what handling an item asked for (see ./stream/RunState.ts). */
    const emit = (request: Segment, state: RunState) => (emission: Emission): Effect.Effect<void, RunFailed> => {
      switch (emission._tag) {
        case "Log":
          return emission.annotations === undefined
            ? Effect.logWithLevel(emission.level, emission.message)
            : logAnnotated(emission.level, emission.message, emission.annotations)
        case "ToolCall":
          return notify(request.observer?.onToolCall?.(emission.call))
        case "Fail":
          return new RunFailed({
            agentId: request.agentId,
            runId: emission.runId,
            sideEffect: state.sideEffect,
            reason: letta.redact(emission.reason),
            errorType: emission.errorType
          })
      }
    }

    /**
     * Applies one streamed item to the state and does what it asks, in order: its log lines (the
     * run id annotation, once known, is set around the whole rest of the stream), the observer's
     * tool calls, and the run's failure on an `error_message`. The clock is read without an
     * effect: this runs for every item.
     */
    const handleItem = (request: Segment, state: RunState, clock: Clock.Clock) => {
      const emitOne = emit(request, state)
      return (item: LettaStreamingResponse): Effect.Effect<void, RunFailed> => {
        const emissions = applyItem(state, item, clock.unsafeCurrentTimeMillis())
        const first = emissions[0]
        if (first === undefined) return Effect.void
        return emissions.length === 1 ? emitOne(first) : Effect.forEach(emissions, emitOne, { discard: true })
      }
    }

    /** The request, on the conversation's route or the agent's; the stream's items are the same. */
    const send = (client: Letta, request: Segment, signal: AbortSignal) => {
      const options = { signal, timeout: Math.ceil(Duration.toMillis(Duration.sum(request.timeout, clientTimeoutMargin))) }
      const body = {
        messages: [request.message],
        stream_tokens: false,
        include_pings: true,
        ...clientToolsField(request.clientTools)
      }
      markStage(request.otid, "request")
      return request.conversationId === undefined
        ? client.agents.messages.create(request.agentId, { ...body, streaming: true }, options)
        : client.conversations.messages.create(request.conversationId, body, options)
    }

    /**
     * Headers and stream; no timeout here. When the attempt ends any other way than by reading the
     * stream to its end (a failure, a timeout, a shutdown), the HTTP request is aborted, never
     * closed through the iterator's `return()`: a generator blocked in `next()` on a silent server
     * would make that wait forever. A stream read to its end has released its connection already,
     * and aborting it anyway would only build an AbortError nobody reads.
     */
    const attempt = (client: Letta, request: Segment, state: RunState, clock: Clock.Clock) =>
      Effect.suspend(() => {
        const controller = new AbortController()
        return Effect.gen(function*() {
          const stream = yield* Effect.tryPromise({
            try: () => send(client, request, controller.signal),
            catch: (cause) => new ClientFailure({ cause })
          })
          state.phase = "stream"
          const reader = batchReader(stream[Symbol.asyncIterator]())
          yield* forEachItem(
            reader,
            (item) => claimRunId(state, item),
            runStarted(request),
            handleItem(request, state, clock)
          ).pipe(Effect.ensuring(Effect.sync(reader.stop)))
          return yield* conclude(state, request.agentId, clock.unsafeCurrentTimeMillis())
        }).pipe(
          Effect.onExit((exit) => (Exit.isSuccess(exit) ? Effect.void : Effect.sync(() => controller.abort())))
        )
      })

    const cancelRun = letta.cancelRun
    const cancelConversation = letta.cancelConversation

    /**
     * Gives up on a run: cancel it on the server, through its conversation, or (agents route)
     * when we know which run it is.
     */
    const abandon = (request: Segment, state: RunState, why: string) => {
      if (request.conversationId !== undefined) return Effect.asVoid(cancelConversation(request.conversationId))
      return state.runId === undefined
        ? Effect.logWarning(`${why} before a run id was seen: not cancellable`)
        : Effect.asVoid(cancelRun(request.agentId, state.runId))
    }

    const stream = (request: Segment): Effect.Effect<RunReport, LettaRunError> =>
      Effect.gen(function*() {
        yield* stage(request.otid, "executor")
        const { client, shownUrl } = yield* letta.current
        const clock = yield* Effect.clock
        const state = makeRunState(clock.unsafeCurrentTimeMillis())
        yield* logAnnotated(LogLevel.Debug, "run requested", {
          lettaUrl: shownUrl,
          otid: request.otid,
          images: request.images,
          clientTools: request.clientTools?.length ?? 0,
          ...(request.message.type === "approval" ? { approvals: request.message.approvals?.length ?? 0 } : {})
        })

        const onTimeout = Effect.gen(function*() {
          const s = state
          // The run finished on the server; only the tail of the stream was late.
          if (s.stopReason !== undefined) return yield* conclude(s, request.agentId, clock.unsafeCurrentTimeMillis())
          yield* Effect.logWarning(`run timed out after ${Duration.format(request.timeout)} (${s.phase})`).pipe(
            Effect.annotateLogs(s.runId === undefined ? {} : { runId: s.runId })
          )
          yield* abandon(request, s, "timed out")
          return yield* new LettaTimeout({
            agentId: request.agentId,
            runId: s.runId,
            sideEffect: s.sideEffect,
            reason: `no complete answer within ${Duration.format(request.timeout)}`,
            timeout: request.timeout,
            phase: s.phase
          })
        })

        return yield* attempt(client, request, state, clock).pipe(
          Effect.catchTag("ClientFailure", ({ cause }) =>
            Effect.flip(classifyClientError(cause, {
              agentId: request.agentId,
              conversationId: request.conversationId,
              runId: state.runId,
              sideEffect: state.sideEffect,
              timeout: request.timeout,
              redact: letta.redact,
              phase: state.phase
            }))),
          Effect.timeout(request.timeout),
          Effect.catchTag("TimeoutException", () => onTimeout),
          Effect.tapError((error) =>
            Effect.logWarning(`run failed: ${error._tag}: ${error.reason}`).pipe(
              Effect.annotateLogs({ sideEffect: error.sideEffect, ...(error.runId ? { runId: error.runId } : {}) })
            )
          ),
          // Shutdown: a client disconnect does not stop a Letta run, so cancel it explicitly.
          Effect.onInterrupt(() =>
            Effect.suspend(() => state.stopReason === undefined ? abandon(request, state, "interrupted") : Effect.void)
          )
        )
      }).pipe(
        Effect.annotateLogs(
          request.conversationId === undefined
            ? { agentId: request.agentId }
            : { agentId: request.agentId, conversationId: request.conversationId }
        ),
        // Stack-trace capture costs more than the span itself on the hot path.
        Effect.withSpan(request.message.type === "approval" ? "LettaExecutor.continueRun" : "LettaExecutor.run", {
          attributes: { agentId: request.agentId },
          captureStackTrace: false
        })
      )

    const run = (request: RunRequest): Effect.Effect<RunReport, LettaRunError> =>
      stream({ ...request, message: userMessage(request), images: request.images?.length ?? 0 })

    /** Answers a run stopped for approval (see the module header). */
    const continueRun = (request: ContinuationRequest): Effect.Effect<RunReport, LettaRunError> =>
      stream({ ...request, message: approvalMessage(request.answers, request.otid), images: 0 })

    return {
      run,
      continueRun,
      cancelRun,
      cancelConversation,
      /** A new conversation on the agent (`channel` mode), its id; see LettaClient.createConversation. */
      createConversation: letta.createConversation
    } as const
  })
}) {}
