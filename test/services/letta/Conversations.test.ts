/**
 * Conversations end to end on loopback: the real @letta-ai/letta-client against the fake Letta
 * server's conversations routes — create, send, the busy rule, scripted busy, deletion, cancel.
 * Waits are on the fake's events (request and run Deferreds), never on sleeps.
 */
import { describe, expect, it } from "@effect/vitest"
import { ConflictError, NotFoundError } from "@letta-ai/letta-client"
import { Effect } from "effect"
import { LettaClient } from "../../../src/services/letta/LettaClient.js"
import { Behaviours, busyDetail, Items } from "../../fakes/FakeLetta.js"
import { agentId, classified, created, drain, failureOf, firstItem, normalRun, open, withFake } from "./ConversationsHarness.js"

describe("conversations against the fake Letta server", () => {
  it.effect("create records the agent id and the description; retrieve gives the SDK's Conversation", () =>
    withFake((fake, client) =>
      Effect.gen(function*() {
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
        expect(request).toMatchObject({
          method: "POST",
          path: "/v1/conversations/",
          query: `?agent_id=${agentId}`,
          agentId,
          conversationId: "conv-1"
        })
        expect(request?.body).toEqual({ description: "Discord #general (channel 100) in Guild (guild 1)" })
        expect(yield* fake.awaitConversationCreated(1, agentId)).toMatchObject({ id: "conv-1" })

        const retrieved = yield* Effect.promise(() => client.conversations.retrieve("conv-1"))
        expect(retrieved).toMatchObject({
          id: "conv-1",
          agent_id: agentId,
          description: conversation?.description,
          archived: false
        })
      })
    ))

  it.effect("create: an unknown agent is AgentNotFound, a failing server a LettaServerError; nothing is created", () =>
    withFake((fake) =>
      Effect.gen(function*() {
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
      Effect.gen(function*() {
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
        expect(sends[0]?.body).toMatchObject({
          messages: [{ role: "user", content: "hi there" }],
          stream_tokens: false,
          include_pings: true
        })
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
      Effect.gen(function*() {
        const id = yield* created()
        yield* fake.script(agentId, Behaviours.hangAfter([Items.reasoning("thinking")]))
        const first = yield* open(client, id)
        expect(yield* firstItem(first)).toMatchObject({ message_type: "reasoning_message", run_id: "run-1" })

        const cause = failureOf(yield* Effect.exit(open(client, id, "again")))
        expect(cause).toBeInstanceOf(ConflictError)
        if (cause instanceof ConflictError) expect(cause.error).toEqual({ detail: busyDetail("run-1") })
        expect(yield* classified(cause, id)).toMatchObject({
          _tag: "ConversationBusy",
          conversationId: id,
          blockingRunId: "run-1"
        })
        expect(yield* fake.busyAnswers).toMatchObject([{
          conversationId: id,
          agentId,
          reason: "in-flight",
          blockingRunId: "run-1"
        }])
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
      Effect.gen(function*() {
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
      Effect.gen(function*() {
        yield* fake.scriptBusyForAgent(agentId, 1)
        const id = yield* created()
        const error = yield* classified(failureOf(yield* Effect.exit(open(client, id))), id)
        expect(error._tag).toBe("ConversationBusy")
        expect(yield* drain(yield* open(client, id))).toEqual(normalRun)
      })
    ))

  it.effect("a deleted conversation: sends are ConversationNotFound, retrieve is 404, cancel returns false", () =>
    withFake((fake, client) =>
      Effect.gen(function*() {
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
      Effect.gen(function*() {
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
})
