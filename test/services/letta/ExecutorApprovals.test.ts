/**
 * The executor against the fake Letta server through the real client: a run that stops for a
 * client tool is a report with its approval stop (not a failure), `client_tools` are declared only
 * when the request has some, and a continuation sends `{ type: "approval", approvals, otid }` on
 * the same route and streams the rest of the run.
 */
import { describe, expect, it } from "@effect/vitest"
import { Duration, Effect } from "effect"
import { ApprovalAnswer } from "../../../src/domain/Approval.js"
import { otidFor } from "../../../src/domain/Otid.js"
import { ToolResult } from "../../../src/domain/ToolCall.js"
import { definitions } from "../../../src/services/discord/Tools.js"
import { LettaExecutor } from "../../../src/services/letta/LettaExecutor.js"
import { Behaviours, Items } from "../../fakes/FakeLetta.js"
import { agentId, created, withFake } from "./ConversationsHarness.js"

const sendCall = { name: "discord_send", args: { channelId: "100", message: "hi" }, toolCallId: "call-1" }
const base = { agentId, prompt: "hello", otid: "otid-prompt", timeout: Duration.seconds(10) }

describe("LettaExecutor and approval stops", () => {
  it.effect("a client tool stop is a report with its calls; the continuation carries the tool return and its otid", () =>
    withFake((fake) =>
      Effect.gen(function*() {
        const executor = yield* LettaExecutor
        const conversationId = yield* created()
        yield* fake.script(
          agentId,
          Behaviours.clientToolCall(sendCall),
          Behaviours.run({ items: [Items.assistant("done")] })
        )
        const first = yield* executor.run({ ...base, conversationId, clientTools: definitions })
        expect(first.stopReason).toBe("requires_approval")
        expect(first.approvalStop).toEqual({
          runId: "run-1",
          calls: [{ name: "discord_send", toolCallId: "call-1", arguments: "{\"channelId\":\"100\",\"message\":\"hi\"}" }]
        })
        const declared = (yield* fake.awaitMessages(1)).body
        expect(declared).toMatchObject({ client_tools: definitions.map((d) => ({ name: d.name })) })

        const otid = otidFor("m1", "call-1")
        const next = yield* executor.continueRun({
          agentId,
          conversationId,
          otid,
          timeout: Duration.seconds(10),
          clientTools: definitions,
          answers: [ApprovalAnswer.toolReturn("call-1", ToolResult.success("sent message 5 to channel 100"))]
        })
        expect(next.approvalStop).toBeUndefined()
        expect(next.assistantMessages).toEqual(["done"])
        expect(yield* fake.continuations).toEqual([{
          agentId,
          conversationId,
          outcome: "accepted",
          runId: "run-2",
          type: "tool",
          toolCallId: "call-1",
          status: "success",
          toolReturn: "sent message 5 to channel 100",
          otid,
          at: expect.any(Number)
        }])
        // Every request of the guild declares the tools, the continuation included.
        expect((yield* fake.awaitMessages(2)).body).toMatchObject({
          messages: [{ type: "approval", otid }],
          client_tools: definitions.map((d) => ({ name: d.name }))
        })
      }).pipe(Effect.provide(LettaExecutor.Default))
    ))

  it.effect("agents route: a decision is an approval item; no client_tools without any declared", () =>
    withFake((fake) =>
      Effect.gen(function*() {
        const executor = yield* LettaExecutor
        yield* fake.script(
          agentId,
          Behaviours.approvalRequest({ name: "web_search", args: { query: "x" }, toolCallId: "call-9" }),
          Behaviours.run({ items: [Items.assistant("ok")] })
        )
        const first = yield* executor.run(base)
        expect(first.approvalStop?.calls.map((c) => c.name)).toEqual(["web_search"])
        expect((yield* fake.awaitMessages(1)).body).not.toHaveProperty("client_tools")
        yield* executor.continueRun({
          agentId,
          otid: "otid-c",
          timeout: Duration.seconds(10),
          answers: [ApprovalAnswer.decision("call-9", false, "denied by Alice")]
        })
        expect(yield* fake.continuations).toMatchObject([{
          outcome: "accepted",
          type: "approval",
          toolCallId: "call-9",
          approve: false,
          reason: "denied by Alice",
          otid: "otid-c"
        }])
        expect((yield* fake.awaitMessages(2)).body).not.toHaveProperty("client_tools")
      }).pipe(Effect.provide(LettaExecutor.Default))
    ))
})
