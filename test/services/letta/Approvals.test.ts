/**
 * The fake Letta server's tool approvals through the real @letta-ai/letta-client: a client tool
 * call and a server tool's approval request both stop with `requires_approval`; continuations are
 * validated as the server does (pending ids only, 400/409/422 otherwise), recorded with what the
 * client said, and chain round-trips. Aurora's classifier reads the 409 as a pending approval.
 */
import { describe, expect, it } from "@effect/vitest"
import { BadRequestError, ConflictError, type Letta, UnprocessableEntityError } from "@letta-ai/letta-client"
import type { MessageCreateParams } from "@letta-ai/letta-client/resources/conversations/messages"
import type { LettaStreamingResponse } from "@letta-ai/letta-client/resources/agents/messages"
import { Duration, Effect } from "effect"
import { classifyClientError } from "../../../src/services/letta/ClientErrors.js"
import {
  Behaviours,
  Frames,
  invalidToolCallIdsDetail,
  Items,
  noPendingApprovalDetail,
  pendingApprovalDetail
} from "../../fakes/FakeLetta.js"
import { agentId, created, failureOf, withFake } from "./ConversationsHarness.js"

type Messages = NonNullable<MessageCreateParams["messages"]>
type Route = { readonly conversationId: string } | { readonly agentId: string }

/** The client tools Aurora would declare (names and JSON Schema parameters). */
const clientTools = [
  { name: "discord_send", description: "Send a message", parameters: { type: "object", properties: {} } },
  { name: "discord_read_messages", parameters: { type: "object", properties: {} } }
]

/** One streamed request through the SDK, either route, read to its end: every item. */
const send = (client: Letta, route: Route, messages: Messages, declare = clientTools) =>
  Effect.tryPromise({
    try: async () => {
      const body = { messages, stream_tokens: false, include_pings: true, client_tools: declare }
      const stream = "conversationId" in route
        ? await client.conversations.messages.create(route.conversationId, body)
        : await client.agents.messages.create(route.agentId, { ...body, streaming: true })
      const items: Array<LettaStreamingResponse> = []
      for await (const item of stream) items.push(item)
      return items
    },
    catch: (cause) => cause
  })

const user = (text: string): Messages => [{ role: "user", content: text }]
const toolReturn = (toolCallId: string, status: "success" | "error" = "success", otid = "otid-1"): Messages => [{
  type: "approval",
  otid,
  approvals: [{ type: "tool", tool_call_id: toolCallId, status, tool_return: `${status} for ${toolCallId}` }]
}]
const decision = (toolCallId: string, approve: boolean, reason: string): Messages => [{
  type: "approval",
  approvals: [{ type: "approval", tool_call_id: toolCallId, approve, reason }]
}]

const types = (items: ReadonlyArray<LettaStreamingResponse>) => items.map((item) => item.message_type)
const stopReasonOf = (items: ReadonlyArray<LettaStreamingResponse>) =>
  items.flatMap((item) => (item.message_type === "stop_reason" ? [item.stop_reason] : []))

const sendCall = { name: "discord_send", args: { channelId: "100", message: "hi" }, toolCallId: "call-1" }

describe("tool approvals on the fake Letta server", () => {
  it.effect("a client tool call stops with requires_approval; the tool return continues the conversation", () =>
    withFake((fake, client) =>
      Effect.gen(function*() {
        const id = yield* created()
        yield* fake.script(
          agentId,
          Behaviours.clientToolCall(sendCall, [Items.reasoning("I will answer")]),
          Behaviours.run({ items: [Items.assistant("done")] })
        )
        const first = yield* send(client, { conversationId: id }, user("hello"))
        expect(types(first)).toEqual(["reasoning_message", "approval_request_message", "stop_reason", "usage_statistics"])
        const request = first[1]
        const requestId = request?.message_type === "approval_request_message" ? request.id : undefined
        expect(request).toMatchObject({
          message_type: "approval_request_message",
          run_id: "run-1",
          tool_call: { name: "discord_send", arguments: "{\"channelId\":\"100\",\"message\":\"hi\"}", tool_call_id: "call-1" },
          tool_calls: [{ name: "discord_send", tool_call_id: "call-1" }]
        })
        expect(stopReasonOf(first)).toEqual(["requires_approval"])
        expect(yield* fake.pendingApproval({ agentId, conversationId: id })).toMatchObject({
          runId: "run-1",
          requestMessageId: requestId,
          toolCalls: [{ name: "discord_send", toolCallId: "call-1" }]
        })
        // The request that was answered with the stop declared the tools.
        expect((yield* fake.awaitMessages(1)).body).toMatchObject({ client_tools: clientTools })

        const second = yield* send(client, { conversationId: id }, toolReturn("call-1"))
        expect(types(second)).toEqual(["assistant_message", "stop_reason", "usage_statistics"])
        expect(yield* fake.pendingApproval({ agentId, conversationId: id })).toBeUndefined()
        expect(yield* fake.continuations).toEqual([{
          agentId,
          conversationId: id,
          outcome: "accepted",
          runId: "run-2",
          type: "tool",
          toolCallId: "call-1",
          status: "success",
          toolReturn: "success for call-1",
          otid: "otid-1",
          at: expect.any(Number)
        }])
        expect((yield* fake.awaitContinuation(1)).runId).toBe("run-2")
      })
    ))

  it.effect("a client tool the request did not declare is never called: the run ends invalid_tool_call", () =>
    withFake((fake, client) =>
      Effect.gen(function*() {
        const id = yield* created()
        yield* fake.script(agentId, Behaviours.clientToolCall(sendCall))
        const items = yield* send(client, { conversationId: id }, user("hello"), [])
        expect(types(items)).toEqual(["stop_reason"])
        expect(stopReasonOf(items)).toEqual(["invalid_tool_call"])
        expect(yield* fake.pendingApproval({ agentId, conversationId: id })).toBeUndefined()
        expect(yield* fake.undeclaredClientTools).toEqual([
          { agentId, conversationId: id, names: ["discord_send"], declared: [] }
        ])
      })
    ))

  it.effect("a server tool's approval request: a user message meanwhile is 409 pending approval; a decision continues", () =>
    withFake((fake, client) =>
      Effect.gen(function*() {
        const route = { agentId }
        yield* fake.script(
          agentId,
          Behaviours.approvalRequest({ name: "delete_everything", args: { confirm: true }, toolCallId: "call-9" }),
          Behaviours.run({ items: [Items.toolReturn("call-9", "error", "denied"), Items.assistant("ok, I won't")] })
        )
        const stop = yield* send(client, route, user("clean up"), [])
        expect(stopReasonOf(stop)).toEqual(["requires_approval"])

        const busy = failureOf(yield* Effect.exit(send(client, route, user("are you there?"))))
        expect(busy).toBeInstanceOf(ConflictError)
        if (busy instanceof ConflictError) expect(busy.error).toEqual({ detail: pendingApprovalDetail })
        const context = { agentId, sideEffect: false, timeout: Duration.seconds(30), redact: (t: string) => t }
        expect(yield* classifyClientError(busy, { ...context, phase: "headers" })).toMatchObject({
          _tag: "AgentBusy",
          pendingApproval: true
        })
        // On a conversation too: an approval 409 is not a busy conversation.
        expect(yield* classifyClientError(busy, { ...context, conversationId: "conv-9", phase: "headers" })).toMatchObject({
          _tag: "AgentBusy",
          pendingApproval: true
        })

        const after = yield* send(client, route, decision("call-9", false, "denied by @alice"))
        expect(types(after)).toEqual(["tool_return_message", "assistant_message", "stop_reason", "usage_statistics"])
        expect(yield* fake.continuations).toMatchObject([{
          agentId,
          outcome: "accepted",
          type: "approval",
          toolCallId: "call-9",
          approve: false,
          reason: "denied by @alice",
          otid: null
        }])
        expect((yield* fake.messageRequests(agentId)).map((r) => [r.runId, r.rejected])).toEqual([
          ["run-1", undefined],
          [undefined, "pending-approval"],
          ["run-2", undefined]
        ])
        // Answered: a user message goes through again (the default behaviour).
        expect(stopReasonOf(yield* send(client, route, user("thanks")))).toEqual(["end_turn"])
      })
    ))

  it.effect("continuations are validated: another id is 400 and leaves the approval pending; a malformed item is 422", () =>
    withFake((fake, client) =>
      Effect.gen(function*() {
        const id = yield* created()
        const route = { conversationId: id }
        yield* fake.script(
          agentId,
          Behaviours.clientToolCall([sendCall, { name: "discord_read_messages", args: {}, toolCallId: "call-2" }])
        )
        yield* send(client, route, user("hello"))

        const wrong = failureOf(yield* Effect.exit(send(client, route, toolReturn("call-x"))))
        expect(wrong).toBeInstanceOf(BadRequestError)
        if (wrong instanceof BadRequestError) {
          expect(wrong.error).toEqual({ detail: invalidToolCallIdsDetail(["call-1", "call-2"], ["call-x"]) })
        }
        // Every pending call must be answered at once.
        const partial = failureOf(yield* Effect.exit(send(client, route, toolReturn("call-1"))))
        expect(partial).toBeInstanceOf(BadRequestError)
        const malformed: Messages = [{ type: "approval", approvals: [{ type: "tool", tool_call_id: "call-1" } as never] }]
        expect(failureOf(yield* Effect.exit(send(client, route, malformed)))).toBeInstanceOf(UnprocessableEntityError)
        expect(yield* fake.pendingApproval({ agentId, conversationId: id })).toMatchObject({ runId: "run-1" })

        const both: Messages = [{
          type: "approval",
          approvals: [
            { type: "tool", tool_call_id: "call-2", status: "success", tool_return: "[]" },
            { type: "tool", tool_call_id: "call-1", status: "error", tool_return: "channel not in this server" }
          ]
        }]
        expect(stopReasonOf(yield* send(client, route, both))).toEqual(["end_turn"])
        expect((yield* fake.continuations).map((c) => [c.outcome, c.toolCallId, c.runId])).toEqual([
          ["rejected", "call-x", undefined],
          ["rejected", "call-1", undefined],
          ["accepted", "call-2", "run-2"],
          ["accepted", "call-1", "run-2"]
        ])
        expect((yield* fake.conversationMessages(id)).map((r) => r.rejected)).toEqual([
          undefined,
          "invalid-approval",
          "invalid-approval",
          "invalid-approval",
          undefined
        ])
      })
    ))

  it.effect("nothing pending: a repeat of an answer already given is accepted (the server's idempotency), else 400", () =>
    withFake((fake, client) =>
      Effect.gen(function*() {
        const id = yield* created()
        const route = { conversationId: id }
        yield* fake.script(agentId, Behaviours.clientToolCall(sendCall))
        yield* send(client, route, user("hello"))
        yield* send(client, route, toolReturn("call-1"))

        const repeat = yield* send(client, route, toolReturn("call-1", "success", "otid-1"))
        expect(stopReasonOf(repeat)).toEqual(["end_turn"])
        const stray = failureOf(yield* Effect.exit(send(client, route, toolReturn("call-7"))))
        expect(stray).toBeInstanceOf(BadRequestError)
        if (stray instanceof BadRequestError) expect(stray.error).toEqual({ detail: noPendingApprovalDetail })
        expect((yield* fake.continuations).map((c) => [c.outcome, c.toolCallId])).toEqual([
          ["accepted", "call-1"],
          ["repeated", "call-1"],
          ["rejected", "call-7"]
        ])
      })
    ))

  it.effect("round-trips chain: 21 client tool stops, each answered (the SDK's tool_returns form too), then the end", () =>
    withFake((fake, client) =>
      Effect.gen(function*() {
        const id = yield* created()
        const route = { conversationId: id }
        const rounds = 21
        yield* fake.script(
          agentId,
          ...Array.from({ length: rounds }, (_, i) => Behaviours.clientToolCall({ ...sendCall, toolCallId: `call-${i}` })),
          Behaviours.run({ items: [Items.assistant("all sent")] })
        )
        let items = yield* send(client, route, user("go"))
        for (let i = 0; i < rounds; i++) {
          const request = items.find((item) => item.message_type === "approval_request_message")
          const callId = request?.message_type === "approval_request_message" ? request.tool_call.tool_call_id : undefined
          expect(callId).toBe(`call-${i}`)
          const answer: Messages = i % 2 === 0
            ? toolReturn(`call-${i}`, "success", `otid-${i}`)
            : [{
              type: "tool_return",
              otid: `otid-${i}`,
              tool_returns: [{ tool_call_id: `call-${i}`, status: "success", tool_return: "sent" }]
            }]
          items = yield* send(client, route, answer)
        }
        expect(stopReasonOf(items)).toEqual(["end_turn"])
        const continuations = yield* fake.continuations
        expect(continuations.map((c) => c.toolCallId)).toEqual(Array.from({ length: rounds }, (_, i) => `call-${i}`))
        expect(continuations.map((c) => c.otid)).toEqual(Array.from({ length: rounds }, (_, i) => `otid-${i}`))
        expect(continuations.every((c) => c.outcome === "accepted" && c.type === "tool")).toBe(true)
        expect((yield* fake.runs).length).toBe(rounds + 1)
      })
    ))

  it.effect("an approval request played after the client left is pending all the same (the server persisted it)", () =>
    withFake((fake, client) =>
      Effect.gen(function*() {
        const id = yield* created()
        yield* fake.script(agentId, {
          _tag: "Stream",
          frames: [
            Frames.item(Items.reasoning("thinking")),
            Frames.pause(300),
            Frames.item(Items.approvalRequest([sendCall])),
            Frames.item(Items.stopReason("requires_approval")),
            Frames.done
          ],
          clientTools: ["discord_send"]
        })
        const controller = new AbortController()
        yield* Effect.promise(async () => {
          const stream = await client.conversations.messages.create(
            id,
            { messages: user("hello"), client_tools: clientTools },
            { signal: controller.signal }
          )
          const iterator = stream[Symbol.asyncIterator]()
          await iterator.next()
          controller.abort()
        })
        const [run] = yield* fake.awaitRunsFinished(1)
        expect(run).toMatchObject({ outcome: "completed", detachedAt: expect.any(Number) })
        expect(yield* fake.pendingApproval({ agentId, conversationId: id })).toMatchObject({
          toolCalls: [{ toolCallId: "call-1" }]
        })
        const refused = failureOf(yield* Effect.exit(send(client, { conversationId: id }, user("again"))))
        expect(refused).toBeInstanceOf(ConflictError)
      })
    ))
})
