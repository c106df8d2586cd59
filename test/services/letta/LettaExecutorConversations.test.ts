/**
 * LettaExecutor runs in a conversation (`channel` mode) against the fake Letta server, driven by
 * the real @letta-ai/letta-client: the route, the failures classified with the conversation, and
 * cancels through the conversation (timeout, shutdown). Timeouts run under TestClock, synchronised
 * on the fake's requests and the run observer, never on sleeps.
 */
import { describe, expect, it } from "@effect/vitest"
import { Deferred, Duration, Effect, Exit, Fiber, Layer, Logger, LogLevel, TestClock } from "effect"
import type { RunRequest } from "../../../src/domain/AgentRun.js"
import type { LettaRunError } from "../../../src/domain/LettaErrors.js"
import { LettaClient, LettaEndpoint } from "../../../src/services/letta/LettaClient.js"
import { LettaExecutor } from "../../../src/services/letta/LettaExecutor.js"
import { configFrom } from "../../fakes/config.js"
import { Behaviours, busyDetail, type FakeLetta, Items, makeFakeLetta } from "../../fakes/FakeLetta.js"

const agentId = "agent-1"

const lettaLayer = (url: string, lines: Array<string>) =>
  LettaExecutor.Default.pipe(
    Layer.provideMerge(LettaClient.Default),
    Layer.provideMerge(LettaEndpoint.Default),
    Layer.provide(configFrom({ LETTA_BASE_URL: url })),
    Layer.provide(Logger.replace(Logger.defaultLogger, Logger.map(Logger.jsonLogger, (line) => void lines.push(line)))),
    Layer.provide(Logger.minimumLogLevel(LogLevel.Debug))
  )

/** A fresh fake (agent-1 known), the executor pointed at it, and one conversation created on it. */
const withConversation = <A, E>(
  body: (fake: FakeLetta, conversationId: string, executor: LettaExecutor) => Effect.Effect<A, E>,
  lines: Array<string> = []
) =>
  Effect.scoped(
    Effect.gen(function*() {
      const fake = yield* makeFakeLetta({ agents: { [agentId]: "Test Agent" } })
      return yield* Effect.gen(function*() {
        const executor = yield* LettaExecutor
        const conversationId = yield* executor.createConversation(agentId, "Discord channel 100 in guild 1")
        return yield* body(fake, conversationId, executor)
      }).pipe(Effect.provide(lettaLayer(fake.url, lines)))
    })
  )

const request = (conversationId: string, overrides: Partial<RunRequest> = {}): RunRequest => ({
  agentId,
  conversationId,
  prompt: "Hello from <@42> in #general",
  otid: "8c5e2d1a-4b3f-5a6e-9d7c-0f1e2a3b4c5d",
  timeout: Duration.seconds(30),
  ...overrides
})

const failure = <A>(exit: Exit.Exit<A, LettaRunError>): LettaRunError => {
  if (Exit.isSuccess(exit)) throw new Error(`expected a failure, got ${JSON.stringify(exit.value)}`)
  if (exit.cause._tag !== "Fail") throw new Error(`expected a typed failure, got ${exit.cause._tag}`)
  return exit.cause.error
}

/** Forks a run in the conversation; its run id arrives on the Deferred. */
const forkRun = (executor: LettaExecutor, conversationId: string) =>
  Effect.gen(function*() {
    const runId = yield* Deferred.make<string>()
    const fiber = yield* Effect.fork(
      executor.run(request(conversationId, { observer: { onRunId: (id) => Deferred.succeed(runId, id) } }))
    )
    return { fiber, runId }
  })

describe("LettaExecutor in a conversation", () => {
  it.effect("runs on /v1/conversations/{id}/messages, never on the agents route; logs carry the conversation", () => {
    const lines: Array<string> = []
    return withConversation((fake, conversationId, executor) =>
      Effect.gen(function*() {
        const report = yield* executor.run(request(conversationId))
        expect(report).toMatchObject({ agentId, runId: "run-1", stopReason: "end_turn", sideEffect: true })
        const sends = yield* fake.messageRequests()
        expect(sends.map((r) => [r.path, r.conversationId, r.agentId])).toEqual([
          [`/v1/conversations/${conversationId}/messages`, conversationId, agentId]
        ])
        expect(sends[0]?.body).toEqual({
          messages: [{ role: "user", content: "Hello from <@42> in #general", otid: "8c5e2d1a-4b3f-5a6e-9d7c-0f1e2a3b4c5d" }],
          stream_tokens: false,
          include_pings: true
        })
        expect((yield* fake.runs).map((r) => r.conversationId)).toEqual([conversationId])
        const runLines = lines.filter((l) => l.includes("run started") || l.includes("tool call discord_send"))
        expect(runLines).toHaveLength(2)
        expect(runLines.every((l) => l.includes(`"conversationId":"${conversationId}"`))).toBe(true)
      }), lines)
  })

  it.effect("without a conversation the agents route is used, as before", () =>
    withConversation((fake, _conversationId, executor) =>
      Effect.gen(function*() {
        yield* executor.run(request("unused", { conversationId: undefined }))
        expect((yield* fake.messageRequests()).map((r) => [r.path, r.conversationId])).toEqual([
          [`/v1/agents/${agentId}/messages`, undefined]
        ])
      })
    ))

  it.effect("409 while a run is in flight there is ConversationBusy naming the conversation and the blocking run", () =>
    withConversation((fake, conversationId, executor) =>
      Effect.gen(function*() {
        yield* fake.script(agentId, Behaviours.hangAfter([Items.reasoning("still thinking")]))
        const first = yield* forkRun(executor, conversationId)
        expect(yield* Deferred.await(first.runId)).toBe("run-1")
        const busy = failure(yield* Effect.exit(executor.run(request(conversationId))))
        expect(busy).toMatchObject({ _tag: "ConversationBusy", conversationId, blockingRunId: "run-1", sideEffect: false })
        expect(busy.reason).toContain(busyDetail("run-1").slice(0, 40))
        yield* Fiber.interrupt(first.fiber)
        // A scripted busy answer (another client) reads the same way.
        yield* fake.scriptBusy(conversationId, 1)
        expect(failure(yield* Effect.exit(executor.run(request(conversationId))))).toMatchObject({
          _tag: "ConversationBusy",
          conversationId
        })
      })
    ))

  it.effect("404 for a deleted conversation is ConversationNotFound (not AgentNotFound)", () =>
    withConversation((fake, conversationId, executor) =>
      Effect.gen(function*() {
        yield* fake.deleteConversation(conversationId)
        expect(failure(yield* Effect.exit(executor.run(request(conversationId))))).toMatchObject({
          _tag: "ConversationNotFound",
          conversationId,
          agentId
        })
      })
    ))

  it.effect("a timeout mid-stream cancels through the conversation, which frees it", () =>
    withConversation((fake, conversationId, executor) =>
      Effect.gen(function*() {
        yield* fake.script(agentId, Behaviours.hangAfter([Items.reasoning("let me think")]))
        const { fiber, runId } = yield* forkRun(executor, conversationId)
        yield* Deferred.await(runId)
        yield* TestClock.adjust(Duration.seconds(30))
        expect(failure(yield* Fiber.await(fiber))).toMatchObject({ _tag: "LettaTimeout", phase: "stream", runId: "run-1" })
        expect(yield* fake.cancels).toEqual([
          { agentId, runIds: undefined, conversationId, cancelledRunIds: ["run-1"] }
        ])
        expect(yield* fake.conversationInFlight(conversationId)).toBe(0)
        expect((yield* executor.run(request(conversationId))).runId).toBe("run-2")
      })
    ))

  it.effect("a timeout before the headers cancels through the conversation too (no run id needed)", () =>
    withConversation((fake, conversationId, executor) =>
      Effect.gen(function*() {
        yield* fake.script(agentId, Behaviours.hangBeforeHeaders())
        const fiber = yield* Effect.fork(executor.run(request(conversationId)))
        yield* fake.awaitConversationMessages(1, conversationId)
        yield* TestClock.adjust(Duration.seconds(30))
        const error = failure(yield* Fiber.await(fiber))
        expect(error).toMatchObject({ _tag: "LettaTimeout", phase: "headers" })
        expect(error.runId).toBeUndefined()
        expect(yield* fake.cancels).toEqual([
          { agentId, runIds: undefined, conversationId, cancelledRunIds: ["run-1"] }
        ])
      })
    ))

  it.effect("an interrupted run (shutdown) is cancelled through its conversation, never on the agents route", () =>
    withConversation((fake, conversationId, executor) =>
      Effect.gen(function*() {
        yield* fake.script(agentId, Behaviours.hangAfter([Items.reasoning("working")]))
        const { fiber, runId } = yield* forkRun(executor, conversationId)
        yield* Deferred.await(runId)
        yield* Fiber.interrupt(fiber)
        expect(yield* fake.cancels).toEqual([
          { agentId, runIds: undefined, conversationId, cancelledRunIds: ["run-1"] }
        ])
        expect((yield* fake.requests).filter((r) => r.kind === "cancel").map((r) => r.path)).toEqual([
          `/v1/conversations/${conversationId}/cancel`
        ])
        const [run] = yield* fake.runs
        expect(run?.outcome).toBe("cancelled")
      })
    ))
})
