/**
 * Conversations end to end on loopback: the real @letta-ai/letta-client (through LettaClient, and
 * raw for the sends the executor does not make yet) against the fake Letta server's conversations
 * routes. Waits are on the fake's events (request and run Deferreds), never on sleeps.
 */
import { describe, expect, it } from "@effect/vitest"
import { ConflictError, type Letta, NotFoundError } from "@letta-ai/letta-client"
import { ConfigProvider, Duration, Effect, Exit, Layer, Logger } from "effect"
import type { LettaRunError } from "../../../src/domain/LettaErrors.js"
import { classifyClientError, LettaClient, LettaEndpoint } from "../../../src/services/letta/LettaClient.js"
import { Behaviours, busyDetail, type FakeLetta, Frames, Items, makeFakeLetta } from "../../fakes/FakeLetta.js"

const agentId = "agent-1"

const clientLayer = (url: string) =>
  LettaClient.DefaultWithoutDependencies.pipe(
    Layer.provideMerge(LettaEndpoint.Default),
    Layer.provide(Layer.setConfigProvider(ConfigProvider.fromMap(new Map([["LETTA_BASE_URL", url]])))),
    Layer.provide(Logger.remove(Logger.defaultLogger))
  )

/** Runs `body` with a fresh fake (agent-1 known), LettaClient pointed at it, and the raw client. */
const withFake = <A, E>(body: (fake: FakeLetta, client: Letta) => Effect.Effect<A, E, LettaClient>) =>
  Effect.scoped(
    Effect.gen(function* () {
      const fake = yield* makeFakeLetta({ agents: { [agentId]: "Test Agent" } })
      return yield* Effect.gen(function* () {
        const { client } = yield* (yield* LettaClient).current
        return yield* body(fake, client)
      }).pipe(Effect.provide(clientLayer(fake.url)))
    })
  )

const created = (description = "Discord #general (channel 100) in Guild (guild 1)") =>
  Effect.flatMap(LettaClient, (letta) => letta.createConversation(agentId, description))

/** Opens a send on the conversation: the stream's iterator once the headers arrived, or what the client threw. */
const open = (client: Letta, conversationId: string, text = "hello", signal?: AbortSignal) =>
  Effect.tryPromise({
    try: async () => {
      const stream = await client.conversations.messages.create(
        conversationId,
        { messages: [{ role: "user", content: text }], stream_tokens: false, include_pings: true },
        signal === undefined ? {} : { signal }
      )
      return stream[Symbol.asyncIterator]()
    },
    catch: (cause) => cause
  })

/** The message types of the rest of a stream. */
const drain = (iterator: AsyncIterator<{ readonly message_type?: string }>) =>
  Effect.promise(async () => {
    const types: Array<string> = []
    for (let next = await iterator.next(); next.done !== true; next = await iterator.next()) {
      types.push(next.value.message_type ?? "?")
    }
    return types
  })

const firstItem = (iterator: AsyncIterator<{ readonly message_type?: string; readonly run_id?: string | null }>) =>
  Effect.promise(() => iterator.next()).pipe(Effect.map((next) => (next.done === true ? undefined : next.value)))

/** What a send failed with, as Aurora reads it on the conversation route. */
const classified = (cause: unknown, conversationId: string): Effect.Effect<LettaRunError> =>
  classifyClientError(cause, {
    agentId,
    conversationId,
    sideEffect: false,
    timeout: Duration.seconds(30),
    redact: (text) => text,
    phase: "headers"
  })

const failureOf = <A>(exit: Exit.Exit<A, unknown>): unknown => {
  if (Exit.isSuccess(exit) || exit.cause._tag !== "Fail") throw new Error("expected a failure")
  return exit.cause.error
}

const normalRun = ["reasoning_message", "tool_call_message", "tool_return_message", "assistant_message", "stop_reason", "usage_statistics"]

describe("conversations against the fake Letta server", () => {
  it.effect("create records the agent id and the description; retrieve gives the SDK's Conversation", () =>
    withFake((fake, client) =>
      Effect.gen(function* () {
        const id = yield* created()
        expect(id).toBe("conv-1")
        const [conversation] = yield* fake.conversations
        expect(conversation).toMatchObject({
          id: "conv-1",
          agentId,
          description: "Discord #general (channel 100) in Guild (guild 1)",
          deleted: false
        })
        const request = (yield* fake.requests).find((r) => r.kind === "conversation-create")
        expect(request).toMatchObject({ method: "POST", path: "/v1/conversations/", query: `?agent_id=${agentId}`, agentId, conversationId: "conv-1" })
        expect(request?.body).toEqual({ description: "Discord #general (channel 100) in Guild (guild 1)" })
        expect(yield* fake.awaitConversationCreated(1, agentId)).toMatchObject({ id: "conv-1" })

        const retrieved = yield* Effect.promise(() => client.conversations.retrieve("conv-1"))
        expect(retrieved).toMatchObject({ id: "conv-1", agent_id: agentId, description: conversation?.description, archived: false })
      })
    ))

  it.effect("create: an unknown agent is AgentNotFound, a failing server a LettaServerError; nothing is created", () =>
    withFake((fake) =>
      Effect.gen(function* () {
        const letta = yield* LettaClient
        const unknown = failureOf(yield* Effect.exit(letta.createConversation("agent-nope", "d")))
        expect(unknown).toMatchObject({ _tag: "AgentNotFound", agentId: "agent-nope" })
        yield* fake.failConversationCreates(1, 503)
        expect(failureOf(yield* Effect.exit(created()))).toMatchObject({ _tag: "LettaServerError", status: 503 })
        expect(yield* fake.conversations).toEqual([])
        expect(yield* created()).toBe("conv-1")
      })
    ))

  it.effect("a send streams the agent's next behaviour and is recorded with its conversation and agent", () =>
    withFake((fake, client) =>
      Effect.gen(function* () {
        const id = yield* created()
        const iterator = yield* open(client, id, "hi there")
        expect(yield* drain(iterator)).toEqual(normalRun)
        yield* fake.script(agentId, Behaviours.run({ items: [Items.assistant("second")] }))
        expect(yield* drain(yield* open(client, id))).toEqual(["assistant_message", "stop_reason", "usage_statistics"])

        const sends = yield* fake.conversationMessages(id)
        expect(sends.map((r) => [r.kind, r.path, r.agentId, r.conversationId, r.runId])).toEqual([
          ["messages", `/v1/conversations/${id}/messages`, agentId, id, "run-1"],
          ["messages", `/v1/conversations/${id}/messages`, agentId, id, "run-2"]
        ])
        expect(sends[0]?.body).toMatchObject({ messages: [{ role: "user", content: "hi there" }], stream_tokens: false, include_pings: true })
        // The same requests through the route-agnostic accessors.
        expect(yield* fake.messageRequests(agentId)).toEqual(sends)
        const runs = yield* fake.awaitRunsFinished(2)
        expect(runs.map((r) => [r.runId, r.conversationId, r.outcome, r.doneWritten])).toEqual([
          ["run-1", id, "completed", true],
          ["run-2", id, "completed", true]
        ])
        expect(yield* fake.maxConcurrentSends(id)).toBe(1)
      })
    ))

  it.effect("a second send while a run is in flight gets 409 ConversationBusy; cancel ends the run and frees it", () =>
    withFake((fake, client) =>
      Effect.gen(function* () {
        const id = yield* created()
        yield* fake.script(agentId, Behaviours.hangAfter([Items.reasoning("thinking")]))
        const first = yield* open(client, id)
        expect(yield* firstItem(first)).toMatchObject({ message_type: "reasoning_message", run_id: "run-1" })

        const cause = failureOf(yield* Effect.exit(open(client, id, "again")))
        expect(cause).toBeInstanceOf(ConflictError)
        if (cause instanceof ConflictError) expect(cause.error).toEqual({ detail: busyDetail("run-1") })
        expect(yield* classified(cause, id)).toMatchObject({ _tag: "ConversationBusy", conversationId: id, blockingRunId: "run-1" })
        expect(yield* fake.busyAnswers).toMatchObject([{ conversationId: id, agentId, reason: "in-flight", blockingRunId: "run-1" }])
        expect(yield* fake.maxConcurrentSends(id)).toBe(2)
        expect((yield* fake.conversationMessages(id)).map((r) => [r.runId, r.rejected])).toEqual([
          ["run-1", undefined],
          [undefined, "busy"]
        ])
        expect(yield* fake.conversationInFlight(id)).toBe(1)

        expect(yield* Effect.flatMap(LettaClient, (l) => l.cancelConversation(id))).toBe(true)
        expect(yield* drain(first)).toEqual(["stop_reason"])
        expect((yield* fake.runs)[0]).toMatchObject({ runId: "run-1", outcome: "cancelled", conversationId: id })
        expect(yield* fake.cancels).toEqual([{ agentId, runIds: undefined, conversationId: id, cancelledRunIds: ["run-1"] }])
        expect(yield* fake.conversationInFlight(id)).toBe(0)
        expect(yield* drain(yield* open(client, id))).toEqual(normalRun)
      })
    ))

  it.effect("scripted busy N times: 409 without a run or a behaviour taken, then the send goes through", () =>
    withFake((fake, client) =>
      Effect.gen(function* () {
        const id = yield* created()
        yield* fake.scriptBusy(id, 2)
        yield* fake.script(agentId, Behaviours.run({ items: [Items.assistant("after the storm")] }))
        for (const expected of ["run-elsewhere-1", "run-elsewhere-2"]) {
          const error = yield* classified(failureOf(yield* Effect.exit(open(client, id))), id)
          expect(error).toMatchObject({ _tag: "ConversationBusy", blockingRunId: expected })
        }
        expect(yield* drain(yield* open(client, id))).toEqual(["assistant_message", "stop_reason", "usage_statistics"])
        expect((yield* fake.busyAnswers).map((b) => b.reason)).toEqual(["scripted", "scripted"])
        expect(yield* fake.maxConcurrentSends(id)).toBe(1)
        expect((yield* fake.runs).map((r) => r.runId)).toEqual(["run-1"])
      })
    ))

  it.effect("scripted busy for an agent applies to its conversations, created later included", () =>
    withFake((fake, client) =>
      Effect.gen(function* () {
        yield* fake.scriptBusyForAgent(agentId, 1)
        const id = yield* created()
        const error = yield* classified(failureOf(yield* Effect.exit(open(client, id))), id)
        expect(error._tag).toBe("ConversationBusy")
        expect(yield* drain(yield* open(client, id))).toEqual(normalRun)
      })
    ))

  it.effect("a deleted conversation: sends are ConversationNotFound, retrieve is 404, cancel returns false", () =>
    withFake((fake, client) =>
      Effect.gen(function* () {
        const id = yield* created()
        yield* fake.deleteConversation(id)
        const cause = failureOf(yield* Effect.exit(open(client, id)))
        expect(cause).toBeInstanceOf(NotFoundError)
        if (cause instanceof NotFoundError) expect(cause.error).toEqual({ detail: `Conversation ${id} not found` })
        expect(yield* classified(cause, id)).toMatchObject({ _tag: "ConversationNotFound", conversationId: id })
        const retrieved = failureOf(yield* Effect.exit(Effect.tryPromise(() => client.conversations.retrieve(id))))
        expect(retrieved).toMatchObject({ cause: expect.any(NotFoundError) })
        expect(yield* Effect.flatMap(LettaClient, (l) => l.cancelConversation(id))).toBe(false)
        expect(yield* fake.conversations).toMatchObject([{ id, deleted: true }])
        expect(yield* fake.runs).toEqual([])
        expect((yield* fake.conversationMessages(id)).map((r) => r.rejected)).toEqual(["not-found"])
      })
    ))

  it.effect("cancel answered 500: cancelConversation returns false and the run goes on", () =>
    withFake((fake, client) =>
      Effect.gen(function* () {
        const id = yield* created()
        yield* fake.script(agentId, Behaviours.hangAfter([Items.reasoning("thinking")]))
        const first = yield* open(client, id)
        yield* firstItem(first)
        yield* fake.setCancelStatus(500)
        expect(yield* Effect.flatMap(LettaClient, (l) => l.cancelConversation(id))).toBe(false)
        expect(yield* fake.conversationInFlight(id)).toBe(1)
        expect(yield* fake.cancels).toEqual([{ agentId, runIds: undefined, conversationId: id, cancelledRunIds: [] }])
      })
    ))

  it.effect("a client that leaves does not stop the run: the conversation stays busy until the cancel", () =>
    withFake((fake, client) =>
      Effect.gen(function* () {
        const id = yield* created()
        yield* fake.script(agentId, Behaviours.hangAfter([Items.reasoning("thinking")]))
        const controller = new AbortController()
        const first = yield* open(client, id, "hello", controller.signal)
        yield* firstItem(first)
        controller.abort()
        yield* fake.awaitRuns((runs) => runs[0]?.detachedAt !== undefined)
        const error = yield* classified(failureOf(yield* Effect.exit(open(client, id))), id)
        expect(error).toMatchObject({ _tag: "ConversationBusy", blockingRunId: "run-1" })
        expect(yield* fake.inFlight(agentId)).toBe(1)

        expect(yield* Effect.flatMap(LettaClient, (l) => l.cancelConversation(id))).toBe(true)
        expect((yield* fake.runs)[0]).toMatchObject({ outcome: "cancelled" })
        expect(yield* drain(yield* open(client, id))).toEqual(normalRun)
      })
    ))

  it.effect("a client that leaves after the stop reason leaves a finished run: the conversation is free", () =>
    withFake((fake, client) =>
      Effect.gen(function* () {
        const id = yield* created()
        yield* fake.script(agentId, Behaviours.hangAfter([Items.assistant("done"), Items.stopReason("end_turn")]))
        const controller = new AbortController()
        const first = yield* open(client, id, "hello", controller.signal)
        yield* firstItem(first)
        expect(yield* firstItem(first)).toMatchObject({ message_type: "stop_reason" })
        controller.abort()
        const [run] = yield* fake.awaitRuns((runs) => runs[0]?.finishedAt !== undefined)
        expect(run).toMatchObject({ outcome: "completed", doneWritten: false })
        expect(yield* drain(yield* open(client, id))).toEqual(normalRun)
        expect(yield* fake.busyAnswers).toEqual([])
      })
    ))

  it.effect("a left run goes on at its pace: its later tool calls are recorded as detached, then it completes", () =>
    withFake((fake, client) =>
      Effect.gen(function* () {
        const id = yield* created()
        yield* fake.script(
          agentId,
          Behaviours.stream([
            Frames.item(Items.reasoning("a slow one")),
            Frames.pause(300),
            Frames.item(Items.toolCall("discord_send", { content: "late" }, "c1")),
            Frames.item(Items.stopReason("end_turn")),
            Frames.done
          ])
        )
        const controller = new AbortController()
        yield* firstItem(yield* open(client, id, "hello", controller.signal))
        controller.abort()
        const [run] = yield* fake.awaitRuns((runs) => runs[0]?.finishedAt !== undefined)
        expect(run).toMatchObject({
          outcome: "completed",
          toolCallsWritten: [],
          toolCallsDetached: ["discord_send"],
          doneWritten: false
        })
        expect(run?.detachedAt).toBeDefined()
        expect(yield* fake.conversationInFlight(id)).toBe(0)
      })
    ))

  it.effect("conversations of one agent run in parallel: per-agent and per-conversation records", () =>
    withFake((fake, client) =>
      Effect.gen(function* () {
        const ids = [yield* created("a"), yield* created("b"), yield* created("c")]
        // Each run holds its stream open until all three have started, so they overlap for certain.
        const hold = Behaviours.stream([Frames.item(Items.reasoning("started")), Frames.hang])
        yield* fake.script(agentId, hold, hold, hold)
        const iterators = yield* Effect.forEach(ids, (id) => open(client, id), { concurrency: "unbounded" })
        yield* Effect.forEach(iterators, firstItem)
        expect(yield* fake.inFlight(agentId)).toBe(3)
        for (const id of ids) expect(yield* fake.conversationInFlight(id)).toBe(1)
        yield* Effect.forEach(ids, (id) => Effect.flatMap(LettaClient, (l) => l.cancelConversation(id)))
        yield* fake.awaitRunsFinished(3)
        expect(yield* fake.maxInFlight(agentId)).toBe(3)
        expect(yield* fake.maxConcurrentSends()).toBe(1)
        expect(yield* fake.busyAnswers).toEqual([])
        expect(new Set((yield* fake.runs).map((r) => r.conversationId))).toEqual(new Set(ids))
      })
    ))

  it.effect("going offline aborts the conversation runs the server was still running", () =>
    withFake((fake, client) =>
      Effect.gen(function* () {
        const id = yield* created()
        yield* fake.script(agentId, Behaviours.hangAfter([Items.reasoning("thinking")]))
        yield* firstItem(yield* open(client, id))
        yield* fake.goOffline
        expect((yield* fake.runs)[0]).toMatchObject({ outcome: "aborted" })
        yield* fake.goOnline
        expect(yield* fake.conversationInFlight(id)).toBe(0)
      })
    ))
})
