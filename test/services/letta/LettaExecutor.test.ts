/**
 * LettaExecutor and LettaClient against the loopback fake Letta server, driven by the real
 * @letta-ai/letta-client. Timeouts run under TestClock (the fake's I/O is real, the run's clock is
 * not), synchronised on the fake's request Deferreds and the run observer, never on sleeps.
 */
import { describe, expect, it } from "@effect/vitest"
import { Deferred, Duration, Effect, Exit, Fiber, Layer, Logger, LogLevel, TestClock } from "effect"
import type { RunReport, RunRequest } from "../../../src/domain/AgentRun.js"
import type { LettaRunError } from "../../../src/domain/LettaErrors.js"
import { LettaClient, LettaEndpoint } from "../../../src/services/letta/LettaClient.js"
import { LettaExecutor } from "../../../src/services/letta/LettaExecutor.js"
import { batchReader, ClientFailure } from "../../../src/services/letta/stream/BatchReader.js"
import { retryAfterFloor, retryTransient } from "../../../src/services/letta/RetryPolicy.js"
import { configFrom } from "../../fakes/config.js"
import { Behaviours, type FakeLetta, Frames, Items, makeFakeLetta } from "../../fakes/FakeLetta.js"

const agentId = "agent-1"
const apiKey = "sk-let-very-secret-key-0123456789"

/** The executor, its client and endpoint, reading only the given configuration. */
const lettaLayer = (url: string, key?: string) =>
  LettaExecutor.Default.pipe(
    Layer.provideMerge(LettaClient.Default),
    Layer.provideMerge(LettaEndpoint.Default),
    Layer.provide(configFrom({ LETTA_BASE_URL: url, ...(key ? { LETTA_API_KEY: key } : {}) }))
  )

/** JSON log lines, debug and up, into `lines`. */
const captureLogs = (lines: Array<string>) =>
  Layer.merge(
    Logger.replace(Logger.defaultLogger, Logger.map(Logger.jsonLogger, (line) => void lines.push(line))),
    Logger.minimumLogLevel(LogLevel.Debug)
  )

const request = (overrides: Partial<RunRequest> = {}): RunRequest => ({
  agentId,
  prompt: "Hello from <@42> in #general",
  otid: "8c5e2d1a-4b3f-5a6e-9d7c-0f1e2a3b4c5d",
  timeout: Duration.seconds(30),
  ...overrides
})

/** Runs `body` with a fresh fake (agent-1 known) and the Letta layers pointed at it. */
const withFake = <A, E>(
  body: (fake: FakeLetta) => Effect.Effect<A, E, LettaExecutor | LettaClient | LettaEndpoint>,
  options: { key?: string; logs?: Array<string> } = {}
) =>
  Effect.scoped(
    Effect.gen(function*() {
      const fake = yield* makeFakeLetta({ agents: { [agentId]: "Test Agent" } })
      const layer = lettaLayer(fake.url, options.key)
      // Logs are always captured, so that live tests stay quiet.
      return yield* body(fake).pipe(Effect.provide(Layer.merge(layer, captureLogs(options.logs ?? []))))
    })
  )

const run = (overrides: Partial<RunRequest> = {}) => Effect.flatMap(LettaExecutor, (e) => e.run(request(overrides)))

const failure = <A>(exit: Exit.Exit<A, LettaRunError>): LettaRunError => {
  if (Exit.isSuccess(exit)) throw new Error(`expected a failure, got ${JSON.stringify(exit.value)}`)
  if (exit.cause._tag !== "Fail") throw new Error(`expected a typed failure, got ${exit.cause._tag}`)
  return exit.cause.error
}

/** Forks a run and returns the fiber plus Deferreds for its run id and first tool call. */
const forkObserved = (overrides: Partial<RunRequest> = {}, retry = false) =>
  Effect.gen(function*() {
    const runId = yield* Deferred.make<string>()
    const toolCall = yield* Deferred.make<string>()
    const executor = yield* LettaExecutor
    const once = executor.run(
      request({
        observer: {
          onRunId: (id) => Deferred.succeed(runId, id),
          onToolCall: (call) => Deferred.succeed(toolCall, call.name)
        },
        ...overrides
      })
    )
    const fiber = yield* Effect.fork(retry ? retryTransient(once) : once)
    return { fiber, runId, toolCall }
  })

describe("LettaExecutor against the fake Letta server", () => {
  it.effect("a normal run is reported field by field", () => {
    const logs: Array<string> = []
    return withFake(
      (fake) =>
        Effect.gen(function*() {
          const report: RunReport = yield* run()
          expect(report.agentId).toBe(agentId)
          expect(report.runId).toBe("run-1")
          expect(report.toolCalls).toEqual([
            {
              name: "discord_send",
              toolCallId: "call-send-1",
              argumentsSummary: "{\"channel_id\":\"100\",\"content\":\"Hello there!\"}"
            }
          ])
          expect(report.toolReturns).toEqual([{ toolCallId: "call-send-1", name: "discord_send", status: "success" }])
          expect(report.assistantMessages).toEqual(["I replied in the channel."])
          expect(report.stopReason).toBe("end_turn")
          expect(report.usage).toEqual({ promptTokens: 120, completionTokens: 30, totalTokens: 150, stepCount: 2 })
          expect(report.sideEffect).toBe(true)
          expect(report.firstToolCallMs).not.toBeNull()

          const [sent] = yield* fake.messageRequests()
          expect(sent?.path).toBe(`/v1/agents/${agentId}/messages`)
          expect(sent?.body).toMatchObject({
            messages: [{ role: "user", content: "Hello from <@42> in #general" }],
            streaming: true
          })
          expect(sent?.headers["authorization"]).toBeUndefined()
          expect(sent?.headers["x-stainless-retry-count"]).toBe("0")

          const text = logs.join("\n")
          expect(text).toContain("tool call discord_send")
          expect(text).toContain("stop reason: end_turn")
          expect(text).toContain("agent reasoning")
          expect(logs.some((l) => l.includes("tool call discord_send") && l.includes("\"runId\":\"run-1\""))).toBe(true)
          expect(logs.every((l) => l.includes(`"agentId":"${agentId}"`))).toBe(true)
        }),
      { logs }
    )
  })

  it.effect("sends the API key as a bearer token and never logs it", () => {
    const logs: Array<string> = []
    return withFake(
      (fake) =>
        Effect.gen(function*() {
          yield* run()
          const [sent] = yield* fake.messageRequests()
          expect(sent?.headers["authorization"]).toBe(`Bearer ${apiKey}`)
          // A server echoing the key in an error body: the error message must not carry it.
          yield* fake.script(agentId, Behaviours.status(401, { detail: `invalid key ${apiKey}` }))
          const error = failure(yield* Effect.exit(run()))
          expect(error._tag).toBe("LettaUnauthorized")
          expect(error.reason).not.toContain(apiKey)
          expect(logs.length).toBeGreaterThan(5)
          expect(logs.filter((l) => l.includes(apiKey))).toEqual([])
        }),
      { key: apiKey, logs }
    )
  })

  it.effect("handles the tool_calls list shape without counting a call twice", () =>
    withFake((fake) =>
      Effect.gen(function*() {
        yield* fake.script(
          agentId,
          Behaviours.run({
            items: [
              Items.toolCalls([
                { name: "discord_read_messages", args: { channel_id: "1" }, toolCallId: "c1" },
                { name: "discord_add_reaction", args: { emoji: "👍" }, toolCallId: "c2" }
              ]),
              Items.toolReturn("c1"),
              Items.toolReturn("c2", "error")
            ]
          })
        )
        const report = yield* run()
        expect(report.toolCalls.map((c) => c.name)).toEqual(["discord_read_messages", "discord_add_reaction"])
        expect(report.toolReturns).toEqual([
          { toolCallId: "c1", name: "discord_read_messages", status: "success" },
          { toolCallId: "c2", name: "discord_add_reaction", status: "error" }
        ])
        expect(report.sideEffect).toBe(true)
      })
    ))

  it.effect("a run with only read-only tools has no side effect; long arguments are summarised", () =>
    withFake((fake) =>
      Effect.gen(function*() {
        yield* fake.script(
          agentId,
          Behaviours.run({ items: [Items.toolCall("discord_read_messages", { query: "x".repeat(500) }, "c1")] })
        )
        const report = yield* run()
        expect(report.sideEffect).toBe(false)
        expect(report.toolCalls[0]?.argumentsSummary.length).toBe(200)
        expect(report.toolCalls[0]?.argumentsSummary.endsWith("…")).toBe(true)
      })
    ))

  it.live("503 twice then success: three requests through the retry helper", () =>
    withFake((fake) =>
      Effect.gen(function*() {
        yield* fake.script(agentId, Behaviours.status(503), Behaviours.status(503))
        const executor = yield* LettaExecutor
        const report = yield* retryTransient(executor.run(request()), { base: Duration.millis(5) })
        expect(report.stopReason).toBe("end_turn")
        expect(report.runId).toBe("run-3")
        expect(yield* fake.messageRequests()).toHaveLength(3)
      })
    ))

  it.effect("the client never retries by itself: one 503, one request", () =>
    withFake((fake) =>
      Effect.gen(function*() {
        yield* fake.script(agentId, Behaviours.status(503))
        const error = failure(yield* Effect.exit(run()))
        expect(error).toMatchObject({ _tag: "LettaServerError", status: 503, sideEffect: false })
        expect(yield* fake.messageRequests()).toHaveLength(1)
      })
    ))

  it.live("404 is AgentNotFound and is not retried", () =>
    withFake((fake) =>
      Effect.gen(function*() {
        const executor = yield* LettaExecutor
        const exit = yield* Effect.exit(
          retryTransient(executor.run(request({ agentId: "agent-unknown" })), { base: Duration.millis(5) })
        )
        expect(failure(exit)).toMatchObject({ _tag: "AgentNotFound", agentId: "agent-unknown" })
        expect(yield* fake.messageRequests()).toHaveLength(1)
      })
    ))

  it.effect("429 carries Retry-After and the retry delay honours it", () =>
    withFake((fake) =>
      Effect.gen(function*() {
        yield* fake.script(agentId, Behaviours.status(429, { detail: "slow down" }, { "retry-after": "7" }))
        const error = failure(yield* Effect.exit(run()))
        if (error._tag !== "LettaRateLimited") throw new Error(`expected LettaRateLimited, got ${error._tag}`)
        expect(error.retryAfter).toEqual(Duration.seconds(7))
        // The shortest and the longest first delay (750 ms, 1.25 s) both become Retry-After.
        for (const delay of [750, 1250]) {
          expect(Duration.toMillis(retryAfterFloor(error, Duration.millis(delay)))).toBe(7000)
        }
        expect(yield* fake.messageRequests()).toHaveLength(1)
      })
    ))

  it.effect("other statuses map to their typed errors", () =>
    withFake((fake) =>
      Effect.gen(function*() {
        const cases = [
          [Behaviours.status(400), { _tag: "LettaRejected", status: 400 }],
          [Behaviours.status(422), { _tag: "LettaRejected", status: 422 }],
          [Behaviours.status(403), { _tag: "LettaUnauthorized", status: 403 }],
          [Behaviours.status(408), { _tag: "LettaTimeout", phase: "server" }],
          [Behaviours.status(500), { _tag: "LettaServerError", status: 500 }],
          [Behaviours.status(409, { detail: "Agent is busy" }), { _tag: "AgentBusy", pendingApproval: false }],
          [
            Behaviours.status(409, { detail: "Cannot send a new message: the agent has a pending approval request" }),
            { _tag: "AgentBusy", pendingApproval: true }
          ]
        ] as const
        for (const [behaviour, expected] of cases) {
          yield* fake.script(agentId, behaviour)
          expect(failure(yield* Effect.exit(run()))).toMatchObject({ ...expected, sideEffect: false })
        }
        expect(yield* fake.messageRequests()).toHaveLength(cases.length)
      })
    ))

  it.effect("an `event: error` frame mid-stream is RunFailed", () =>
    withFake((fake) =>
      Effect.gen(function*() {
        yield* fake.script(
          agentId,
          Behaviours.errorEvent([Items.reasoning("thinking")], { errorType: "llm_error", message: "model exploded" })
        )
        const error = failure(yield* Effect.exit(run()))
        expect(error).toMatchObject({
          _tag: "RunFailed",
          runId: "run-1",
          errorType: "llm_error",
          reason: "model exploded",
          sideEffect: false
        })
      })
    ))

  it.effect("an error stop reason is RunFailed", () =>
    withFake((fake) =>
      Effect.gen(function*() {
        yield* fake.script(agentId, Behaviours.run({ items: [Items.reasoning("hm")], stopReason: "error" }))
        expect(failure(yield* Effect.exit(run()))).toMatchObject({ _tag: "RunFailed", stopReason: "error", runId: "run-1" })
        yield* fake.script(agentId, Behaviours.run({ items: [], stopReason: "max_steps" }))
        expect(failure(yield* Effect.exit(run()))).toMatchObject({ _tag: "RunFailed", stopReason: "max_steps" })
        yield* fake.script(agentId, Behaviours.run({ items: [], stopReason: "tool_rule" }))
        expect((yield* run()).stopReason).toBe("tool_rule")
      })
    ))

  it.effect("an error_message item is RunFailed, with the side effect seen before it", () =>
    withFake((fake) =>
      Effect.gen(function*() {
        yield* fake.script(
          agentId,
          Behaviours.run({
            items: [
              Items.toolCall("discord_send", { content: "hi" }, "c1"),
              Items.errorMessage("internal_error", "tool crashed", "stack trace here")
            ],
            stopReason: "error"
          })
        )
        expect(failure(yield* Effect.exit(run()))).toMatchObject({
          _tag: "RunFailed",
          errorType: "internal_error",
          reason: "tool crashed: stack trace here",
          sideEffect: true
        })
      })
    ))

  it.effect("a stream that ends without a stop reason is a connection error", () =>
    withFake((fake) =>
      Effect.gen(function*() {
        yield* fake.script(agentId, Behaviours.stream([...Frames.items([Items.reasoning("hm")]), Frames.done]))
        expect(failure(yield* Effect.exit(run()))).toMatchObject({
          _tag: "LettaConnectionError",
          reason: "stream ended before a stop reason",
          runId: "run-1"
        })
      })
    ))

  it.effect("hang after the first frame: LettaTimeout(stream) and a cancel with the run id", () =>
    withFake((fake) =>
      Effect.gen(function*() {
        yield* fake.script(agentId, Behaviours.hangAfter([Items.reasoning("let me think")]))
        const { fiber, runId } = yield* forkObserved()
        expect(yield* Deferred.await(runId)).toBe("run-1")
        yield* TestClock.adjust(Duration.seconds(30))
        const error = failure(yield* Fiber.await(fiber))
        expect(error).toMatchObject({ _tag: "LettaTimeout", phase: "stream", runId: "run-1", sideEffect: false })
        expect(yield* fake.cancels).toEqual([{ agentId, runIds: ["run-1"] }])
        const cancel = (yield* fake.requests).find((r) => r.kind === "cancel")
        expect(cancel?.body).toEqual({ run_ids: ["run-1"] })
      })
    ))

  it.effect("headers that never arrive: LettaTimeout(headers), logged as not cancellable, no cancel", () => {
    const logs: Array<string> = []
    return withFake(
      (fake) =>
        Effect.gen(function*() {
          yield* fake.script(agentId, Behaviours.hangBeforeHeaders())
          const { fiber } = yield* forkObserved()
          yield* fake.awaitMessages(1)
          yield* TestClock.adjust(Duration.seconds(30))
          const error = failure(yield* Fiber.await(fiber))
          expect(error).toMatchObject({ _tag: "LettaTimeout", phase: "headers", sideEffect: false })
          expect(error.runId).toBeUndefined()
          expect(yield* fake.cancels).toEqual([])
          expect(logs.some((l) => l.includes("not cancellable"))).toBe(true)
        }),
      { logs }
    )
  })

  // Real time here: nothing observable marks the moment the stop reason has been read, so the
  // timeout (1 s) is simply far longer than reading two frames from loopback.
  it.live("a late tail after the stop reason is not a timeout", () =>
    withFake((fake) =>
      Effect.gen(function*() {
        yield* fake.script(agentId, Behaviours.hangAfter([Items.assistant("done"), Items.stopReason("end_turn")]))
        const report = yield* run({ timeout: Duration.seconds(1) })
        expect(report.stopReason).toBe("end_turn")
        expect(report.assistantMessages).toEqual(["done"])
        expect(yield* fake.cancels).toEqual([])
      })
    ))

  it.effect("discord_send then a hang: timeout with sideEffect, never re-sent", () =>
    withFake((fake) =>
      Effect.gen(function*() {
        yield* fake.script(agentId, Behaviours.hangAfter([Items.toolCall("discord_send", { content: "hi" }, "c1")]))
        const { fiber, toolCall } = yield* forkObserved({}, true)
        expect(yield* Deferred.await(toolCall)).toBe("discord_send")
        yield* TestClock.adjust(Duration.seconds(30))
        const error = failure(yield* Fiber.await(fiber))
        expect(error).toMatchObject({ _tag: "LettaTimeout", phase: "stream", sideEffect: true, runId: "run-1" })
        expect(yield* fake.messageRequests()).toHaveLength(1)
        expect(yield* fake.cancels).toEqual([{ agentId, runIds: ["run-1"] }])
      })
    ))

  it.live("discord_send then a dropped connection: connection error with sideEffect, never re-sent", () =>
    withFake((fake) =>
      Effect.gen(function*() {
        yield* fake.script(agentId, Behaviours.dropAfter([Items.toolCall("discord_send", { content: "hi" }, "c1")]))
        const executor = yield* LettaExecutor
        const exit = yield* Effect.exit(retryTransient(executor.run(request()), { base: Duration.millis(5) }))
        expect(failure(exit)).toMatchObject({ _tag: "LettaConnectionError", sideEffect: true, runId: "run-1" })
        expect(yield* fake.messageRequests()).toHaveLength(1)
      })
    ))

  it.effect("an interrupted run (shutdown) is cancelled on the server", () =>
    withFake((fake) =>
      Effect.gen(function*() {
        yield* fake.script(agentId, Behaviours.hangAfter([Items.reasoning("working")]))
        const { fiber, runId } = yield* forkObserved()
        yield* Deferred.await(runId)
        yield* Fiber.interrupt(fiber)
        expect(yield* fake.cancels).toEqual([{ agentId, runIds: ["run-1"] }])
      })
    ))

  it.effect("a base URL override switches the next run to another server without rebuilding layers", () =>
    Effect.scoped(
      Effect.gen(function*() {
        const other = yield* makeFakeLetta({ agents: { [agentId]: "Other" } })
        yield* withFake((fake) =>
          Effect.gen(function*() {
            const endpoint = yield* LettaEndpoint
            expect(yield* endpoint.current).toEqual({ url: fake.url, source: "env" })
            yield* run()
            yield* endpoint.setOverride(other.url)
            expect(yield* endpoint.current).toEqual({ url: other.url, source: "override" })
            yield* run()
            yield* endpoint.setOverride(null)
            yield* run()
            expect(yield* fake.messageRequests()).toHaveLength(2)
            expect(yield* other.messageRequests()).toHaveLength(1)
          })
        )
      })
    ))

  it.effect("retrieveAgent and health", () =>
    withFake(() =>
      Effect.gen(function*() {
        const client = yield* LettaClient
        expect(yield* client.retrieveAgent(agentId)).toEqual({ id: agentId, name: "Test Agent" })
        const missing = yield* Effect.exit(client.retrieveAgent("agent-nope"))
        expect(failure(missing)).toMatchObject({ _tag: "AgentNotFound", agentId: "agent-nope" })
        expect(yield* client.health).toMatchObject({ _tag: "Reachable", version: "fake-letta", source: "env" })
        // Nothing listens on port 1: the health check says so instead of failing.
        yield* Effect.flatMap(LettaEndpoint, (e) => e.setOverride("http://127.0.0.1:1"))
        expect(yield* client.health).toMatchObject({ _tag: "Unreachable", source: "override" })
        const unreachable = yield* Effect.exit(client.retrieveAgent(agentId))
        expect(failure(unreachable)._tag).toBe("LettaConnectionError")
      })
    ))

  it.effect("without LETTA_BASE_URL the default is api.letta.com", () =>
    Effect.gen(function*() {
      const endpoint = yield* LettaEndpoint
      expect(yield* endpoint.current).toEqual({ url: "https://api.letta.com", source: "default" })
    }).pipe(
      Effect.provide(LettaEndpoint.Default.pipe(Layer.provide(configFrom())))
    ))
})

describe("FakeLetta", () => {
  it.effect("counts concurrent runs per agent and reports when they finish", () =>
    withFake((fake) =>
      Effect.gen(function*() {
        yield* fake.addAgent("agent-2")
        // Each run holds its response for 500 ms, so the three overlap even on a loaded machine.
        const slow = Behaviours.run({ delayMs: 500 })
        yield* fake.script(agentId, slow, slow)
        yield* fake.script("agent-2", slow)
        yield* Effect.all([run(), run(), run({ agentId: "agent-2" })], { concurrency: "unbounded" })
        const finished = yield* fake.awaitRunsFinished(3)
        expect(finished.map((r) => r.outcome)).toEqual(["completed", "completed", "completed"])
        expect(yield* fake.maxInFlight(agentId)).toBe(2)
        expect(yield* fake.maxInFlight("agent-2")).toBe(1)
        expect(yield* fake.maxInFlight()).toBe(3)
        expect(yield* fake.inFlight(agentId)).toBe(0)
        const third = yield* fake.awaitMessages(1, "agent-2")
        expect(third.runId).toBeDefined()
      })
    ))
})

/** An iterator over `items` (each a value or a failure), answering every `next()` at once. */
const scriptedIterator = <A>(items: ReadonlyArray<{ readonly value: A } | { readonly fail: Error }>, pulls: Array<number>) => {
  let index = 0
  return {
    next: (): Promise<IteratorResult<A>> => {
      pulls.push(index)
      const item = items[index++]
      if (item === undefined) return Promise.resolve({ done: true, value: undefined })
      return "fail" in item ? Promise.reject(item.fail) : Promise.resolve({ done: false, value: item.value })
    }
  }
}

describe("batchReader (how the executor reads a stream's items)", () => {
  it.effect("hands over, in order, every item that arrived since the last pull, then null at the end", () =>
    Effect.gen(function*() {
      const pulls: Array<number> = []
      const reader = batchReader(scriptedIterator([1, 2, 3, 4, 5].map((value) => ({ value })), pulls))
      const first = yield* reader.next
      expect(first).toEqual([1])
      // While the consumer is busy (here: until the next macrotask), the reader goes on reading;
      // the next pull answers everything that arrived meanwhile, at once.
      yield* Effect.promise(() => new Promise((resolve) => setImmediate(resolve)))
      expect(yield* reader.next).toEqual([2, 3, 4, 5])
      expect(yield* reader.next).toBeNull()
      // At the end it keeps answering null.
      expect(yield* reader.next).toBeNull()
      expect(pulls).toEqual([0, 1, 2, 3, 4, 5])
    }))

  it.effect("a failure comes after the items before it, as a ClientFailure with its cause", () =>
    Effect.gen(function*() {
      const boom = new Error("socket closed")
      const reader = batchReader(scriptedIterator<number>([{ value: 1 }, { value: 2 }, { fail: boom }, { value: 3 }], []))
      const seen: Array<number> = []
      const exit = yield* Effect.exit(Effect.gen(function*() {
        for (;;) {
          const batch = yield* reader.next
          if (batch === null) return
          seen.push(...batch)
        }
      }))
      expect(seen).toEqual([1, 2])
      expect(exit).toStrictEqual(Exit.fail(new ClientFailure({ cause: boom })))
    }))

  it.effect("after stop, items that still arrive are not handed over and nothing more is pulled", () =>
    Effect.gen(function*() {
      const pulls: Array<number> = []
      let release: (() => void) | undefined
      const gate = new Promise<void>((resolve) => {
        release = resolve
      })
      const inner = scriptedIterator([1, 2, 3].map((value) => ({ value })), pulls)
      const reader = batchReader({ next: () => gate.then(() => inner.next()) })
      reader.stop()
      release?.()
      yield* Effect.promise(() => gate.then(() => new Promise((resolve) => setImmediate(resolve))))
      expect(pulls).toEqual([0])
    }))
})
