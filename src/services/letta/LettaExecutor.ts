/**
 * Runs one prompt on a Letta agent: a streamed `POST /v1/agents/{id}/messages`, every item logged
 * at its level, the whole run bounded by the request's timeout, the run cancelled on the server
 * when Aurora gives up on it, and the outcome reported as a RunReport or a typed LettaRunError.
 *
 * Outcomes (where the contract leaves a choice):
 * - success: a stop reason of `end_turn` or `tool_rule` (see `successfulStopReasons`);
 * - any other stop reason, an `error_message` item or an `event: error` frame: RunFailed;
 * - a stream that ends without a stop reason: LettaConnectionError ("stream ended before a stop
 *   reason"): the server or the connection gave up mid-run, which is a service failure;
 * - the timeout: LettaTimeout (phase "headers" or "stream"), after a best-effort server-side cancel
 *   when a run id was seen — unless the stop reason had already arrived, in which case the run is
 *   over and is judged on what was streamed.
 */
import type { Letta } from "@letta-ai/letta-client"
import type { LettaStreamingResponse } from "@letta-ai/letta-client/resources/agents/messages"
import { Clock, Duration, Effect, Exit, LogLevel } from "effect"
import {
  isSideEffectingTool,
  isSuccessfulStopReason,
  type RunReport,
  type RunRequest,
  type RunUsage,
  type ToolCallSummary,
  type ToolReturnSummary,
  truncate
} from "../../domain/AgentRun.js"
import { LettaConnectionError, type LettaRunError, LettaTimeout, RunFailed } from "../../domain/LettaErrors.js"
import { logAnnotated } from "../health/Log.js"
import { batchReader, ClientFailure, forEachItem } from "./stream/BatchReader.js"
import { assistantText, runIdOf, toolCallsOf, toolReturnsOf } from "./stream/StreamItems.js"
import { classifyClientError, LettaClient } from "./LettaClient.js"

/**
 * What the stream has shown so far; errors and timeouts report from it.
 *
 * One record per run, owned by that run: it is written only by the synchronous steps that handle
 * a streamed item (JavaScript never interleaves them) and read by the run's own timeout and
 * interruption handlers. A plain record rather than a Ref: a run updates it several times per
 * item, and a Ref operation per update cost more than handling the item.
 */
interface RunState {
  phase: "headers" | "stream"
  runId: string | undefined
  sideEffect: boolean
  readonly toolCalls: Array<ToolCallSummary>
  readonly toolReturns: Array<ToolReturnSummary>
  readonly assistantMessages: Array<string>
  stopReason: string | undefined
  usage: RunUsage | null
  firstToolCallMs: number | null
}

const makeRunState = (): RunState => ({
  phase: "headers",
  runId: undefined,
  sideEffect: false,
  toolCalls: [],
  toolReturns: [],
  assistantMessages: [],
  stopReason: undefined,
  usage: null,
  firstToolCallMs: null
})

/** The client's own header timeout is a backstop: the Effect timeout should always fire first. */
const clientTimeoutMargin = Duration.seconds(5)
const assistantLogLength = 300
const reasoningLogLength = 500

/** Observer hooks never break a run. */
const notify = (hook: Effect.Effect<void> | undefined): Effect.Effect<void> =>
  hook === undefined
    ? Effect.void
    : Effect.catchAllCause(hook, (cause) => Effect.logWarning("run observer failed", cause))

export class LettaExecutor extends Effect.Service<LettaExecutor>()("aurora/LettaExecutor", {
  effect: Effect.gen(function* () {
    const letta = yield* LettaClient

    /**
     * Records the run id if `item` is the first to show it, and answers it then: the caller logs
     * everything from this item on with the run id.
     */
    const claimRunId = (state: RunState) => (item: LettaStreamingResponse): string | undefined => {
      const itemRunId = runIdOf(item)
      if (itemRunId === undefined || state.runId !== undefined) return undefined
      state.runId = itemRunId
      return itemRunId
    }

    /** The run id is known (and on every log line from here on). */
    const runStarted = (request: RunRequest) => (runId: string): Effect.Effect<void> =>
      Effect.zipRight(Effect.logInfo("run started"), notify(request.observer?.onRunId?.(runId)))

    /**
     * Applies one streamed item to the state and logs it at its level (the run id annotation, once
     * known, is set around the whole rest of the stream). Fails the run on an `error_message`.
     */
    const handleItem = (request: RunRequest, state: RunState, startedAt: number) =>
    (item: LettaStreamingResponse): Effect.Effect<void, RunFailed> => {
      switch (item.message_type) {
        case "reasoning_message":
          return Effect.logDebug(`agent reasoning: ${truncate(item.reasoning, reasoningLogLength)}`)
        case "hidden_reasoning_message":
          return Effect.logDebug("agent reasoning (hidden)")
        case "tool_call_message":
          return Effect.forEach(toolCallsOf(item), (call) => toolCall(request, state, startedAt, call), { discard: true })
        case "tool_return_message": {
          const returns = toolReturnsOf(item, state.toolCalls)
          state.toolReturns.push(...returns)
          return Effect.forEach(
            returns,
            (ret) =>
              logAnnotated(LogLevel.Info, `tool return ${ret.name ?? ret.toolCallId}: ${ret.status}`, {
                tool: ret.name ?? "",
                toolCallId: ret.toolCallId,
                status: ret.status
              }),
            { discard: true }
          )
        }
        case "assistant_message": {
          const text = assistantText(item)
          state.assistantMessages.push(text)
          return Effect.logInfo(`assistant message: ${truncate(text, assistantLogLength)}`)
        }
        case "approval_request_message":
          return Effect.logInfo("agent requests a tool approval")
        case "ping":
          return Effect.void
        case "error_message":
          return logAnnotated(LogLevel.Warning, `run error: ${item.message}`, {
            errorType: item.error_type,
            detail: item.detail ?? ""
          }).pipe(
            Effect.zipRight(Effect.suspend(() =>
              new RunFailed({
                agentId: request.agentId,
                runId: state.runId ?? item.run_id,
                sideEffect: state.sideEffect,
                reason: letta.redact(item.detail ? `${item.message}: ${item.detail}` : item.message),
                errorType: item.error_type
              })
            ))
          )
        case "stop_reason":
          state.stopReason = item.stop_reason
          return Effect.logInfo(`stop reason: ${item.stop_reason}`)
        case "usage_statistics": {
          const usage: RunUsage = {
            promptTokens: item.prompt_tokens ?? 0,
            completionTokens: item.completion_tokens ?? 0,
            totalTokens: item.total_tokens ?? 0,
            stepCount: item.step_count ?? 0
          }
          state.usage = usage
          return logAnnotated(LogLevel.Debug, "usage", usage)
        }
        default:
          return Effect.logDebug(`stream item ignored: ${item.message_type ?? "untyped"}`)
      }
    }

    /** Records a streamed tool call (once per id), logs it and tells the observer. */
    const toolCall = (request: RunRequest, state: RunState, startedAt: number, call: ToolCallSummary) =>
      Effect.gen(function* () {
        const now = yield* Clock.currentTimeMillis
        if (call.toolCallId !== "" && state.toolCalls.some((c) => c.toolCallId === call.toolCallId)) return
        state.toolCalls.push(call)
        // The tool may run even if its return never arrives: the agent has acted.
        state.sideEffect = state.sideEffect || isSideEffectingTool(call.name)
        state.firstToolCallMs = state.firstToolCallMs ?? now - startedAt
        yield* logAnnotated(LogLevel.Info, `tool call ${call.name}`, {
          tool: call.name,
          toolCallId: call.toolCallId,
          arguments: call.argumentsSummary,
          sideEffecting: isSideEffectingTool(call.name)
        })
        yield* notify(request.observer?.onToolCall?.(call))
      })

    /** Judges a finished stream. */
    const conclude = (request: RunRequest, state: RunState, startedAt: number) =>
      Effect.gen(function* () {
        const base = { agentId: request.agentId, runId: state.runId, sideEffect: state.sideEffect }
        if (state.stopReason === undefined) {
          return yield* new LettaConnectionError({ ...base, reason: "stream ended before a stop reason" })
        }
        if (!isSuccessfulStopReason(state.stopReason)) {
          return yield* new RunFailed({ ...base, reason: `stop reason ${state.stopReason}`, stopReason: state.stopReason })
        }
        const now = yield* Clock.currentTimeMillis
        const report: RunReport = {
          agentId: request.agentId,
          ...(state.runId === undefined ? {} : { runId: state.runId }),
          toolCalls: [...state.toolCalls],
          toolReturns: [...state.toolReturns],
          assistantMessages: [...state.assistantMessages],
          stopReason: state.stopReason,
          usage: state.usage,
          durationMs: now - startedAt,
          sideEffect: state.sideEffect,
          firstToolCallMs: state.firstToolCallMs
        }
        return report
      })

    /**
     * Headers and stream; no timeout here. When the attempt ends any other way than by reading the
     * stream to its end (a failure, a timeout, a shutdown), the HTTP request is aborted, never
     * closed through the iterator's `return()`: a generator blocked in `next()` on a silent server
     * would make that wait forever. A stream read to its end has released its connection already,
     * and aborting it anyway would only build an AbortError nobody reads.
     */
    const attempt = (client: Letta, request: RunRequest, state: RunState, startedAt: number) =>
      Effect.suspend(() => {
        const controller = new AbortController()
        return Effect.gen(function* () {
          const stream = yield* Effect.tryPromise({
            try: () =>
              client.agents.messages.create(
                request.agentId,
                {
                  messages: [{ role: "user", content: request.prompt }],
                  streaming: true,
                  stream_tokens: false,
                  include_pings: true
                },
                {
                  signal: controller.signal,
                  timeout: Math.ceil(Duration.toMillis(Duration.sum(request.timeout, clientTimeoutMargin)))
                }
              ),
            catch: (cause) => new ClientFailure({ cause })
          })
          state.phase = "stream"
          const reader = batchReader(stream[Symbol.asyncIterator]())
          yield* forEachItem(reader, claimRunId(state), runStarted(request), handleItem(request, state, startedAt)).pipe(
            Effect.ensuring(Effect.sync(reader.stop))
          )
          return yield* conclude(request, state, startedAt)
        }).pipe(
          Effect.onExit((exit) => (Exit.isSuccess(exit) ? Effect.void : Effect.sync(() => controller.abort())))
        )
      })

    const cancelRun = letta.cancelRun

    /** Gives up on a run: cancel it on the server when we know which run it is. */
    const abandon = (agentId: string, state: RunState, why: string) =>
      state.runId === undefined
        ? Effect.logWarning(`${why} before a run id was seen: not cancellable`)
        : Effect.asVoid(cancelRun(agentId, state.runId))

    const run = (request: RunRequest): Effect.Effect<RunReport, LettaRunError> =>
      Effect.gen(function* () {
        const { client, url } = yield* letta.current
        const state = makeRunState()
        const startedAt = yield* Clock.currentTimeMillis
        yield* logAnnotated(LogLevel.Debug, "run requested", { lettaUrl: url })

        const onTimeout = Effect.gen(function* () {
          const s = state
          // The run finished on the server; only the tail of the stream was late.
          if (s.stopReason !== undefined) return yield* conclude(request, s, startedAt)
          yield* Effect.logWarning(`run timed out after ${Duration.format(request.timeout)} (${s.phase})`).pipe(
            Effect.annotateLogs(s.runId === undefined ? {} : { runId: s.runId })
          )
          yield* abandon(request.agentId, s, "timed out")
          return yield* new LettaTimeout({
            agentId: request.agentId,
            runId: s.runId,
            sideEffect: s.sideEffect,
            reason: `no complete answer within ${Duration.format(request.timeout)}`,
            timeout: request.timeout,
            phase: s.phase
          })
        })

        return yield* attempt(client, request, state, startedAt).pipe(
          Effect.catchTag("ClientFailure", ({ cause }) =>
            Effect.flip(classifyClientError(cause, {
              agentId: request.agentId,
              runId: state.runId,
              sideEffect: state.sideEffect,
              timeout: request.timeout,
              redact: letta.redact,
              phase: state.phase
            }))
          ),
          Effect.timeout(request.timeout),
          Effect.catchTag("TimeoutException", () => onTimeout),
          Effect.tapError((error) =>
            Effect.logWarning(`run failed: ${error._tag}: ${error.reason}`).pipe(
              Effect.annotateLogs({ sideEffect: error.sideEffect, ...(error.runId ? { runId: error.runId } : {}) })
            )
          ),
          // Shutdown: a client disconnect does not stop a Letta run, so cancel it explicitly.
          Effect.onInterrupt(() =>
            Effect.suspend(() => state.stopReason === undefined ? abandon(request.agentId, state, "interrupted") : Effect.void)
          )
        )
      }).pipe(
        Effect.annotateLogs({ agentId: request.agentId }),
        // Stack-trace capture costs more than the span itself on the hot path.
        Effect.withSpan("LettaExecutor.run", { attributes: { agentId: request.agentId }, captureStackTrace: false })
      )

    return { run, cancelRun } as const
  })
}) {}
