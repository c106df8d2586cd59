/**
 * Shared by the dispatch suites: the dispatcher's dependencies as layer-swapped fakes (settings,
 * executor, typing sender, reply poster, a recording journal over the memory one, the memory
 * dead-letter and conversation stores, runs log, Feedback over recording reactions) and the real
 * CircuitBreaker and ErrorStats, all under TestClock.
 */
import { Clock, Effect, Layer, Metric, MetricState } from "effect"
import type { RunReport, RunRequest, ToolCallSummary } from "../../src/domain/AgentRun.js"
import { type DiscordFailure, StorageError } from "../../src/domain/Errors.js"
import { LettaServerError, type LettaRunError } from "../../src/domain/LettaErrors.js"
import { defaultGlobalSettings, defaultGuildSettings, type GuildSettings } from "../../src/domain/Settings.js"
import { configFrom } from "../fakes/config.js"
import { CircuitBreaker, type CircuitBreakerOptions } from "../../src/services/health/CircuitBreaker.js"
import { DeadLetters, makeMemoryDeadLetters } from "../../src/services/queue/DeadLetters.js"
import { ErrorStats } from "../../src/services/health/ErrorStats.js"
import { ConversationStore } from "../../src/services/conversation/ConversationStore.js"
import { EventJournal, type EventJournalService, makeMemoryJournal } from "../../src/services/queue/EventJournal.js"
import { makeMemoryRunLog, RunLog } from "../../src/services/queue/RunLog.js"
import { LettaExecutor } from "../../src/services/letta/LettaExecutor.js"
import { makeLettaRetrySchedule } from "../../src/services/letta/RetryPolicy.js"
import { defaultGuildState, SettingsStore } from "../../src/services/storage/SettingsStore.js"
import { TypingIndicator, TypingSender } from "../../src/services/discord/TypingIndicator.js"
import { recordingFeedback, type RecordingOptions } from "../fakes/reactions.js"
import { ReplyPoster, type ReplyPost } from "../../src/services/discord/ReplyPoster.js"
import type { ContinuationRequest } from "../../src/domain/AgentRun.js"
import { ApprovalGate, type ApprovalGateService } from "../../src/services/approvals/Ports.js"
import { ApprovalsUnavailable } from "../fakes/approvalsUnavailable.js"
import { type DiscordActionsShape, DiscordTools, makeDiscordTools } from "../../src/services/discord/Tools.js"
import { ToolCalls, type ToolCallsService } from "../../src/services/queue/ToolCalls.js"
import { OpenStops } from "../../src/services/queue/OpenStops.js"

/** A run that answered as a real agent does: it called discord_send (so no fallback follows). */
export const report = (agentId: string): RunReport => ({
  agentId,
  toolCalls: [{ name: "discord_send", toolCallId: "t-send", argumentsSummary: "{}" }],
  toolReturns: [],
  assistantMessages: [],
  stopReason: "end_turn",
  usage: null,
  durationMs: 0,
  sideEffect: true,
  firstToolCallMs: null
})

/** A run that ended normally without any Discord action, having written `text` (one assistant message each). */
export const silentReport = (agentId: string, text: ReadonlyArray<string>, runId = "run-silent"): RunReport => ({
  ...report(agentId),
  runId,
  toolCalls: [],
  assistantMessages: text,
  sideEffect: false
})

export const serverError = (agentId: string) =>
  new LettaServerError({ agentId, sideEffect: false, reason: "502 Bad Gateway", status: 502 })

export const discordSend = { name: "discord_send", toolCallId: "t1", argumentsSummary: "{}" }
export const toolCall = (name: string, toolCallId: string): ToolCallSummary => ({ name, toolCallId, argumentsSummary: "{}" })

export const storageError = (operation: string) => new StorageError({ operation, reason: "disk I/O error" })

/** The current value of a counter series in the process registry (0 when absent). */
export const counterValue = (name: string, tags: Record<string, string>) =>
  Effect.map(Metric.snapshot, (pairs) => {
    const pair = pairs.find((p) =>
      p.metricKey.name === name && p.metricKey.tags.every((t) => tags[t.key] === t.value) &&
      p.metricKey.tags.length === Object.keys(tags).length
    )
    return pair !== undefined && MetricState.isCounterState(pair.metricState) ? Number(pair.metricState.count) : 0
  })

/** Deterministic delays (1 s, 2 s), otherwise the production rule (3 attempts, transient only). */
export const retrySchedule = makeLettaRetrySchedule({ jitter: 0 })

/** Lets forked fibers run until they block. */
export const settle = Effect.repeatN(Effect.yieldNow(), 40)

export interface HarnessOptions {
  readonly settings?: Partial<GuildSettings>
  readonly breaker?: CircuitBreakerOptions
  /** The fake executor's behaviour; `call` counts from 1. */
  readonly run: (request: RunRequest, call: number) => Effect.Effect<RunReport, LettaRunError>
  /** What the fake executor's cancelRun and cancelConversation answer (default true); "hangs": never answers. */
  readonly cancelled?: boolean | "hangs"
  /** The fake executor's createConversation; default: `conv-<call>`. `call` counts from 1. */
  readonly create?: (agentId: string, call: number) => Effect.Effect<string, LettaRunError>
  /** Every journal write fails. */
  readonly failJournal?: boolean
  /** Every dead-letter write fails. */
  readonly failDeadLetters?: boolean
  /** Every runs-log write fails with this ("error": a StorageError, "defect": it dies). */
  readonly failRunLog?: "error" | "defect"
  /** The feedback reactions' bounds and what Discord answers them (default: added). */
  readonly reactions?: RecordingOptions
  /** What the fake reply poster answers to its `call`-th post (from 1); default: the message id `posted-<call>`. */
  readonly post?: (reply: ReplyPost, call: number) => Effect.Effect<string, DiscordFailure>
  /** The fake executor's continuations (`call` counts from 1); default: dies (no run stops for approval). */
  readonly continueRun?: (request: ContinuationRequest, call: number) => Effect.Effect<RunReport, LettaRunError>
  /** What the built-in tools see of Discord; default: every channel unknown. */
  readonly actions?: Partial<DiscordActionsShape>
  /** The approval gate; default: the "approvals are not available" placeholder. */
  readonly gate?: ApprovalGateService
  /** The tool-call record; default: the memory one. */
  readonly toolCalls?: ToolCallsService
}

/** Discord as the built-in tools see it when a test says nothing: no channel is known. */
export const noActions: DiscordActionsShape = {
  locateChannel: () => Effect.succeed(null),
  post: () => Effect.die("post: no channel"),
  recentMessages: () => Effect.succeed([]),
  react: () => Effect.void,
  guild: () => Effect.succeed(null)
}

/**
 * The journal's writes in one log with the executor's calls, in the order they happened:
 * "runStarted:m1@0", "letta:prompt m1", "cancel:a1:r0", "runIdSeen:m1:r1" (":conv-1" when recorded
 * with a conversation), "sideEffectSeen:m1", "update:m1". The writes then go to the memory journal
 * (or fail, with `fail`). "fallbackRecorded:m1@0" is the fallback's record.
 */
const recordingJournal = (
  inner: EventJournalService,
  note: (line: string) => Effect.Effect<void>,
  fail: boolean
): EventJournalService => {
  const write = (line: string, effect: Effect.Effect<void, StorageError>) =>
    Effect.zipRight(note(line), fail ? Effect.fail(storageError(line)) : effect)
  return {
    append: (e) => write(`append:${e.messageId}`, inner.append(e)),
    remove: (id) => write(`remove:${id}`, inner.remove(id)),
    update: (e) => write(`update:${e.messageId}`, inner.update(e)),
    runStarted: (id, at) => write(`runStarted:${id}@${at}`, inner.runStarted(id, at)),
    runIdSeen: (id, runId, conversationId) =>
      write(
        `runIdSeen:${id}:${runId}${conversationId === undefined ? "" : `:${conversationId}`}`,
        inner.runIdSeen(id, runId, conversationId)
      ),
    sideEffectSeen: (id) => write(`sideEffectSeen:${id}`, inner.sideEffectSeen(id)),
    fallbackRecorded: (id, at) => write(`fallbackRecorded:${id}@${at}`, inner.fallbackRecorded(id, at)),
    load: inner.load
  }
}

/**
 * The fakes, plus what they saw: executor requests with their Clock time, conversations created
 * (agent, description, time), typing calls, feedback reactions, and the call log, where the executor's calls read
 * "letta:<prompt>" (with "@<conversation>" in one), "cancel:<agent>:<run>",
 * "cancelConversation:<id>", "create:<agent>", and the reply poster's "post:<replyTo>#<nonce>".
 */
export const makeHarness = (options: HarnessOptions) => {
  const requests: Array<{ readonly request: RunRequest; readonly at: number }> = []
  const continuations: Array<{ readonly request: ContinuationRequest; readonly at: number }> = []
  const creates: Array<{ readonly agentId: string; readonly description: string; readonly at: number }> = []
  const typed: Array<{ readonly channelId: string; readonly at: number }> = []
  const posts: Array<ReplyPost & { readonly at: number }> = []
  const log: Array<string> = []
  const note = (line: string) => Effect.sync(() => void log.push(line))
  const cancelAnswer = options.cancelled === "hangs" ? Effect.never : Effect.succeed(options.cancelled ?? true)
  const settings = Layer.mock(SettingsStore, {
    _tag: "aurora/SettingsStore",
    currentGlobal: () => defaultGlobalSettings,
    guild: (guildId: string) =>
      Effect.succeed({
        ...defaultGuildState(guildId),
        enabled: true,
        agentId: "a1",
        settings: { ...defaultGuildSettings, ...options.settings }
      })
  })
  const executor = Layer.mock(LettaExecutor, {
    _tag: "aurora/LettaExecutor",
    run: (request: RunRequest) =>
      Effect.flatMap(Clock.currentTimeMillis, (at) => {
        requests.push({ request, at })
        log.push(`letta:${request.prompt}${request.conversationId === undefined ? "" : `@${request.conversationId}`}`)
        return options.run(request, requests.length)
      }),
    continueRun: (request: ContinuationRequest) =>
      Effect.flatMap(Clock.currentTimeMillis, (at) => {
        continuations.push({ request, at })
        log.push(`letta:continue ${request.answers.map((a) => a.toolCallId).join(",")}`)
        return options.continueRun === undefined
          ? Effect.die("no continuation expected")
          : options.continueRun(request, continuations.length)
      }),
    cancelRun: (agentId: string, runId: string) => Effect.zipRight(note(`cancel:${agentId}:${runId}`), cancelAnswer),
    cancelConversation: (conversationId: string) => Effect.zipRight(note(`cancelConversation:${conversationId}`), cancelAnswer),
    createConversation: (agentId: string, description: string) =>
      Effect.flatMap(Clock.currentTimeMillis, (at) => {
        creates.push({ agentId, description, at })
        log.push(`create:${agentId}`)
        return options.create === undefined
          ? Effect.succeed(`conv-${creates.length}`)
          : options.create(agentId, creates.length)
      })
  })
  const journal = Layer.effect(
    EventJournal,
    Effect.map(makeMemoryJournal, (memory) => recordingJournal(memory.journal, note, options.failJournal === true))
  )
  const deadLetters = options.failDeadLetters === true
    ? Layer.effect(
      DeadLetters,
      Effect.map(makeMemoryDeadLetters, (store) => ({ ...store, add: () => Effect.fail(storageError("DeadLetters.add")) }))
    )
    : DeadLetters.layerMemory
  const runLog = options.failRunLog === undefined
    ? RunLog.layerMemory
    : Layer.effect(
      RunLog,
      Effect.map(makeMemoryRunLog(), (store) => ({
        ...store,
        record: () => options.failRunLog === "defect" ? Effect.die("runs table gone") : Effect.fail(storageError("RunLog.record"))
      }))
    )
  const sender = Layer.succeed(TypingSender, {
    sendTyping: (channelId: string): Effect.Effect<void, DiscordFailure> =>
      Effect.map(Clock.currentTimeMillis, (at) => void typed.push({ channelId, at }))
  })
  const poster = Layer.succeed(ReplyPoster, {
    postReply: (reply: ReplyPost) =>
      Effect.flatMap(Clock.currentTimeMillis, (at) => {
        posts.push({ ...reply, at })
        log.push(`post:${reply.replyTo}#${reply.nonce}`)
        return options.post === undefined ? Effect.succeed(`posted-${posts.length}`) : options.post(reply, posts.length)
      })
  })
  const feedback = recordingFeedback(options.reactions)
  const layer = Layer.mergeAll(
    settings,
    poster,
    feedback.layer.pipe(Layer.provide(settings)),
    executor,
    CircuitBreaker.layer(options.breaker ?? {}),
    ErrorStats.Default,
    TypingIndicator.Default.pipe(Layer.provide(sender)),
    journal,
    deadLetters,
    runLog,
    ConversationStore.layerMemory,
    Layer.succeed(DiscordTools, DiscordTools.make(makeDiscordTools({ ...noActions, ...options.actions }))),
    options.toolCalls === undefined ? ToolCalls.layerMemory : Layer.succeed(ToolCalls, options.toolCalls),
    OpenStops.layerMemory,
    options.gate === undefined ? ApprovalsUnavailable : Layer.succeed(ApprovalGate, options.gate),
    // The real configuration's defaults (AURORA_MAX_EVENT_AGE 1 hour, ...).
    configFrom()
  ).pipe(Layer.orDie)
  return { requests, continuations, creates, typed, posts, log, reactions: feedback.calls, layer }
}

/** Opens the breaker with one service failure (the harness's breaker must have failureThreshold 1). */
export const openBreaker = Effect.flatMap(
  CircuitBreaker,
  (breaker) => Effect.ignore(breaker.protect(Effect.fail(serverError("a1")), () => true))
)
