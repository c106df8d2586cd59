/**
 * How the client's exceptions read on each route: the agents routes keep AgentNotFound/AgentBusy,
 * a request addressed to a conversation gets ConversationNotFound/ConversationBusy, and a 409 about
 * an approval stays AgentBusy{pendingApproval} everywhere. Errors are built by the SDK's own
 * `APIError.generate`, as the client does from a response.
 */
import { describe, expect, it } from "@effect/vitest"
import { APIError, ConflictError, NotFoundError } from "@letta-ai/letta-client"
import { Duration, Effect } from "effect"
import {
  ConversationBusy,
  ConversationNotFound,
  isBusy,
  isServiceFailure,
  isTransient,
  type LettaRunError,
  LettaServerError
} from "../../../src/domain/LettaErrors.js"
import { runOutcomeOf } from "../../../src/services/health/Metrics.js"
import { classifyClientError } from "../../../src/services/letta/ClientErrors.js"

const busyBody = {
  detail:
    "Cannot send a new message: Another request (run_id=run-7f3a) is currently being processed for this conversation. Please wait for it to complete."
}
const approvalBody = {
  detail:
    "Cannot send a new message: The agent is waiting for approval on a tool call. Please approve or deny the pending request before continuing."
}

const answer = (status: number, body: object) => APIError.generate(status, body, undefined, new Headers())

const classify = (cause: unknown, conversationId?: string) =>
  classifyClientError(cause, {
    agentId: "agent-1",
    ...(conversationId === undefined ? {} : { conversationId }),
    sideEffect: false,
    timeout: Duration.seconds(30),
    redact: (text) => text,
    phase: "headers"
  })

describe("classifyClientError by route", () => {
  it.effect("the SDK builds a ConflictError / NotFoundError carrying the body", () =>
    Effect.sync(() => {
      const busy = answer(409, busyBody)
      expect(busy).toBeInstanceOf(ConflictError)
      expect(busy.error).toEqual(busyBody)
      expect(busy.message).toBe(`409 ${JSON.stringify(busyBody)}`)
      expect(answer(404, { detail: "Conversation conv-1 not found" })).toBeInstanceOf(NotFoundError)
    }))

  it.effect("conversation route: a 409 without an approval is ConversationBusy, naming the blocking run", () =>
    Effect.gen(function*() {
      const error = yield* classify(answer(409, busyBody), "conv-1")
      expect(error).toBeInstanceOf(ConversationBusy)
      expect(error).toMatchObject({
        _tag: "ConversationBusy",
        agentId: "agent-1",
        conversationId: "conv-1",
        blockingRunId: "run-7f3a",
        sideEffect: false
      })
      expect(error.reason).toContain("Another request (run_id=run-7f3a)")
    }))

  it.effect("conversation route: the run id also comes from a run_id field beside the detail", () =>
    Effect.gen(function*() {
      const body = {
        error: {
          detail: "Cannot send a new message: Another request is currently being processed for this conversation.",
          run_id: "run-123"
        }
      }
      expect(yield* classify(answer(409, body), "conv-1")).toMatchObject({ _tag: "ConversationBusy", blockingRunId: "run-123" })
      const bare = yield* classify(answer(409, { detail: "conflict" }), "conv-1")
      expect(bare).toMatchObject({ _tag: "ConversationBusy", blockingRunId: undefined })
    }))

  it.effect("conversation route: a 409 about an approval stays AgentBusy with pendingApproval", () =>
    Effect.gen(function*() {
      expect(yield* classify(answer(409, approvalBody), "conv-1")).toMatchObject({
        _tag: "AgentBusy",
        pendingApproval: true
      })
    }))

  it.effect("agents route: 409 is AgentBusy either way, approval or not", () =>
    Effect.gen(function*() {
      expect(yield* classify(answer(409, busyBody))).toMatchObject({ _tag: "AgentBusy", pendingApproval: false })
      expect(yield* classify(answer(409, approvalBody))).toMatchObject({ _tag: "AgentBusy", pendingApproval: true })
    }))

  it.effect("404: ConversationNotFound on the conversation route, AgentNotFound on the agents route", () =>
    Effect.gen(function*() {
      const onConversation = yield* classify(answer(404, { detail: "Conversation conv-9 not found" }), "conv-9")
      expect(onConversation).toBeInstanceOf(ConversationNotFound)
      expect(onConversation).toMatchObject({ _tag: "ConversationNotFound", conversationId: "conv-9", agentId: "agent-1" })
      expect(yield* classify(answer(404, { detail: "Agent agent-1 not found" }))).toMatchObject({ _tag: "AgentNotFound" })
    }))

  it.effect("other statuses read the same on both routes", () =>
    Effect.gen(function*() {
      for (const conversationId of [undefined, "conv-1"]) {
        expect((yield* classify(answer(503, { detail: "down" }), conversationId))._tag).toBe("LettaServerError")
        expect((yield* classify(answer(422, { detail: "bad" }), conversationId))._tag).toBe("LettaRejected")
        expect((yield* classify(answer(401, { detail: "no" }), conversationId))._tag).toBe("LettaUnauthorized")
      }
    }))
})

describe("busy and lost conversations are neither service failures nor retried in the dispatch", () => {
  const base = { agentId: "agent-1", sideEffect: false, reason: "r", conversationId: "conv-1" }
  const busy: LettaRunError = new ConversationBusy(base)
  const lost: LettaRunError = new ConversationNotFound(base)
  const down: LettaRunError = new LettaServerError({ ...base, status: 503 })

  it("predicates", () => {
    expect([busy, lost, down].map(isServiceFailure)).toEqual([false, false, true])
    expect([busy, lost, down].map(isTransient)).toEqual([false, false, true])
    expect([busy, lost, down].map(isBusy)).toEqual([true, false, false])
  })

  it("metrics outcome labels", () => {
    expect(runOutcomeOf(busy)).toBe("conversation_busy")
    expect(runOutcomeOf(lost)).toBe("conversation_not_found")
  })
})
