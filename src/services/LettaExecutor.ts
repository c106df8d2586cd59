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
import { Clock, Data, Duration, Effect, Exit, LogLevel, Ref } from "effect"
import {
  isSideEffectingTool,
  isSuccessfulStopReason,
  type RunReport,
  type RunRequest,
  type RunUsage,
  summarizeArguments,
  type ToolCallSummary,
  type ToolReturnSummary,
  truncate
} from "../domain/AgentRun.js"
import { LettaConnectionError, type LettaRunError, LettaTimeout, RunFailed } from "../domain/LettaErrors.js"
import { logAnnotated } from "../layers/Logging.js"
import { classifyClientError, LettaClient } from "./LettaClient.js"

/** What the stream has shown so far; errors and timeouts report from it. */
interface RunState {
  readonly phase: "headers" | "stream"
  readonly runId: string | undefined
  readonly sideEffect: boolean
  readonly toolCalls: ReadonlyArray<ToolCallSummary>
  readonly toolReturns: ReadonlyArray<ToolReturnSummary>
  readonly assistantMessages: ReadonlyArray<string>
  readonly stopReason: string | undefined
  readonly usage: RunUsage | null
  readonly firstToolCallMs: number | null
}

const initialState: RunState = {
  phase: "headers",
  runId: undefined,
  sideEffect: false,
  toolCalls: [],
  toolReturns: [],
  assistantMessages: [],
  stopReason: undefined,
  usage: null,
  firstToolCallMs: null
}

/** Something the client threw; classified once, against the state at that moment. */
class ClientFailure extends Data.TaggedError("ClientFailure")<{ readonly cause: unknown }> {}

/** The client's own header timeout is a backstop: the Effect timeout should always fire first. */
const clientTimeoutMargin = Duration.seconds(5)
const assistantLogLength = 300
const reasoningLogLength = 500

type ToolCallMessage = Extract<LettaStreamingResponse, { message_type?: "tool_call_message" }>
type ToolReturnMessage = Extract<LettaStreamingResponse, { message_type?: "tool_return_message" }>
type AssistantMessage = Extract<LettaStreamingResponse, { message_type?: "assistant_message" }>

interface RawToolCall {
  readonly name?: string | null | undefined
  readonly arguments?: string | null | undefined
  readonly tool_call_id?: string | null | undefined
}

/** Servers send `tool_call` (deprecated), `tool_calls` (a list, newer) or both for the same calls. */
const toolCallsOf = (item: ToolCallMessage): ReadonlyArray<ToolCallSummary> => {
  const raw: ReadonlyArray<RawToolCall> = Array.isArray(item.tool_calls) && item.tool_calls.length > 0
    ? item.tool_calls
    : item.tool_calls && !Array.isArray(item.tool_calls)
    ? [item.tool_calls]
    : item.tool_call
    ? [item.tool_call]
    : []
  return raw.flatMap((call) =>
    call.name
      ? [{ name: call.name, toolCallId: call.tool_call_id ?? "", argumentsSummary: summarizeArguments(call.arguments ?? "") }]
      : []
  )
}

const toolReturnsOf = (
  item: ToolReturnMessage,
  calls: ReadonlyArray<ToolCallSummary>
): ReadonlyArray<ToolReturnSummary> => {
  const nameOf = (toolCallId: string) =>
    calls.find((call) => call.toolCallId === toolCallId)?.name ?? item.name ?? undefined
  const summary = (toolCallId: string, status: string): ToolReturnSummary => {
    const name = nameOf(toolCallId)
    return name === undefined ? { toolCallId, status } : { toolCallId, name, status }
  }
  if (Array.isArray(item.tool_returns) && item.tool_returns.length > 0) {
    return item.tool_returns.map((ret) => summary(ret.tool_call_id, ret.status))
  }
  return [summary(item.tool_call_id, item.status)]
}

const assistantText = (item: AssistantMessage): string =>
  typeof item.content === "string"
    ? item.content
    : item.content.map((part) => ("text" in part && typeof part.text === "string" ? part.text : "")).join("")

const runIdOf = (item: LettaStreamingResponse): string | undefined =>
  "run_id" in item && typeof item.run_id === "string" && item.run_id !== "" ? item.run_id : undefined

/**
 * Pulls the stream's items one at a time and hands each to `handle`, until the stream ends or
 * `handle` fails. A plain loop over the iterator rather than an Effect Stream: a run streams a
 * handful of items, and Stream's per-element machinery cost more than handling them.
 *
 * `claimRunId` tells whether an item is the first to show the run id. From that item on, the
 * stream is read with the run id as a log annotation, set once for the rest of the stream rather
 * than around each line; `onRunId` runs first, inside it.
 */
const forEachItem = <A, E>(
  iterator: AsyncIterator<A>,
  claimRunId: (item: A) => Effect.Effect<string | undefined>,
  onRunId: (runId: string) => Effect.Effect<void>,
  handle: (item: A) => Effect.Effect<void, E>
): Effect.Effect<void, E | ClientFailure> => {
  const next = Effect.tryPromise({ try: () => iterator.next(), catch: (cause) => new ClientFailure({ cause }) })
  const loop = (annotated: boolean): Effect.Effect<void, E | ClientFailure> =>
    Effect.gen(function* () {
      for (;;) {
        const step = yield* next
        if (step.done === true) return
        const runId = annotated ? undefined : yield* claimRunId(step.value)
        if (runId !== undefined) {
          const rest = Effect.zipRight(Effect.zipRight(onRunId(runId), handle(step.value)), loop(true))
          return yield* Effect.annotateLogs(rest, { runId })
        }
        yield* handle(step.value)
      }
    })
  return loop(false)
}

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
    const claimRunId = (state: Ref.Ref<RunState>) => (item: LettaStreamingResponse): Effect.Effect<string | undefined> => {
      const itemRunId = runIdOf(item)
      if (itemRunId === undefined) return Effect.succeed(undefined)
      return Ref.modify(state, (s): [string | undefined, RunState] =>
        s.runId === undefined ? [itemRunId, { ...s, runId: itemRunId }] : [undefined, s])
    }

    /** The run id is known (and on every log line from here on). */
    const runStarted = (request: RunRequest) => (runId: string): Effect.Effect<void> =>
      Effect.zipRight(Effect.logInfo("run started"), notify(request.observer?.onRunId?.(runId)))

    /**
     * Applies one streamed item to the state and logs it at its level (the run id annotation, once
     * known, is set around the whole rest of the stream). Fails the run on an `error_message`.
     */
    const handleItem = (request: RunRequest, state: Ref.Ref<RunState>, startedAt: number) =>
    (item: LettaStreamingResponse): Effect.Effect<void, RunFailed> => {
      switch (item.message_type) {
        case "reasoning_message":
          return Effect.logDebug(`agent reasoning: ${truncate(item.reasoning, reasoningLogLength)}`)
        case "hidden_reasoning_message":
          return Effect.logDebug("agent reasoning (hidden)")
        case "tool_call_message":
          return Effect.forEach(toolCallsOf(item), (call) => toolCall(request, state, startedAt, call), { discard: true })
        case "tool_return_message":
          return Effect.flatMap(
            Ref.modify(state, (s): [ReadonlyArray<ToolReturnSummary>, RunState] => {
              const returns = toolReturnsOf(item, s.toolCalls)
              return [returns, { ...s, toolReturns: [...s.toolReturns, ...returns] }]
            }),
            (returns) =>
              Effect.forEach(
                returns,
                (ret) =>
                  logAnnotated(LogLevel.Info, `tool return ${ret.name ?? ret.toolCallId}: ${ret.status}`, {
                    tool: ret.name ?? "",
                    toolCallId: ret.toolCallId,
                    status: ret.status
                  }),
                { discard: true }
              )
          )
        case "assistant_message": {
          const text = assistantText(item)
          return Effect.zipRight(
            Ref.update(state, (s) => ({ ...s, assistantMessages: [...s.assistantMessages, text] })),
            Effect.logInfo(`assistant message: ${truncate(text, assistantLogLength)}`)
          )
        }
        case "approval_request_message":
          return Effect.logInfo("agent requests a tool approval")
        case "ping":
          return Effect.void
        case "error_message":
          return Effect.flatMap(Ref.get(state), (s) =>
            logAnnotated(LogLevel.Warning, `run error: ${item.message}`, {
              errorType: item.error_type,
              detail: item.detail ?? ""
            }).pipe(
              Effect.zipRight(
                new RunFailed({
                  agentId: request.agentId,
                  runId: s.runId ?? item.run_id,
                  sideEffect: s.sideEffect,
                  reason: letta.redact(item.detail ? `${item.message}: ${item.detail}` : item.message),
                  errorType: item.error_type
                })
              )
            ))
        case "stop_reason":
          return Effect.zipRight(
            Ref.update(state, (s) => ({ ...s, stopReason: item.stop_reason })),
            Effect.logInfo(`stop reason: ${item.stop_reason}`)
          )
        case "usage_statistics": {
          const usage: RunUsage = {
            promptTokens: item.prompt_tokens ?? 0,
            completionTokens: item.completion_tokens ?? 0,
            totalTokens: item.total_tokens ?? 0,
            stepCount: item.step_count ?? 0
          }
          return Effect.zipRight(
            Ref.update(state, (s) => ({ ...s, usage })),
            logAnnotated(LogLevel.Debug, "usage", usage)
          )
        }
        default:
          return Effect.logDebug(`stream item ignored: ${item.message_type ?? "untyped"}`)
      }
    }

    /** Records a streamed tool call (once per id), logs it and tells the observer. */
    const toolCall = (request: RunRequest, state: Ref.Ref<RunState>, startedAt: number, call: ToolCallSummary) =>
      Effect.gen(function* () {
        const now = yield* Clock.currentTimeMillis
        const fresh = yield* Ref.modify(state, (s): [boolean, RunState] => {
          if (call.toolCallId !== "" && s.toolCalls.some((c) => c.toolCallId === call.toolCallId)) return [false, s]
          return [true, {
            ...s,
            toolCalls: [...s.toolCalls, call],
            // The tool may run even if its return never arrives: the agent has acted.
            sideEffect: s.sideEffect || isSideEffectingTool(call.name),
            firstToolCallMs: s.firstToolCallMs ?? now - startedAt
          }]
        })
        if (!fresh) return
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
          toolCalls: state.toolCalls,
          toolReturns: state.toolReturns,
          assistantMessages: state.assistantMessages,
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
    const attempt = (client: Letta, request: RunRequest, state: Ref.Ref<RunState>, startedAt: number) =>
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
          yield* Ref.update(state, (s) => ({ ...s, phase: "stream" as const }))
          yield* forEachItem(
            stream[Symbol.asyncIterator](),
            claimRunId(state),
            runStarted(request),
            handleItem(request, state, startedAt)
          )
          return yield* conclude(request, yield* Ref.get(state), startedAt)
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
        const state = yield* Ref.make(initialState)
        const startedAt = yield* Clock.currentTimeMillis
        yield* logAnnotated(LogLevel.Debug, "run requested", { lettaUrl: url })

        const onTimeout = Effect.gen(function* () {
          const s = yield* Ref.get(state)
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
            Effect.flatMap(Ref.get(state), (s) =>
              Effect.flip(classifyClientError(cause, {
                agentId: request.agentId,
                runId: s.runId,
                sideEffect: s.sideEffect,
                timeout: request.timeout,
                redact: letta.redact,
                phase: s.phase
              }))
            )
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
            Effect.flatMap(Ref.get(state), (s) => s.stopReason === undefined ? abandon(request.agentId, s, "interrupted") : Effect.void)
          )
        )
      }).pipe(
        Effect.annotateLogs({ agentId: request.agentId }),
        // Stack-trace capture costs more than the span itself on the hot path.
        Effect.withSpan("LettaExecutor.run", { attributes: { agentId: request.agentId }, captureStackTrace: false })
      )

    return { run, cancelRun } as const
  }),
  dependencies: [LettaClient.Default]
}) {}
