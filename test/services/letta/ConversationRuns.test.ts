/**
 * Conversation runs on the fake Letta server as the real server runs them: a client that leaves
 * does not stop a run (it holds the conversation until it ends or is cancelled), runs of several
 * conversations of one agent overlap, and a server that goes down takes its runs with it.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import { LettaClient } from "../../../src/services/letta/LettaClient.js"
import { Behaviours, Frames, Items } from "../../fakes/FakeLetta.js"
import { agentId, classified, created, drain, failureOf, firstItem, normalRun, open, withFake } from "./ConversationsHarness.js"

describe("conversation runs on the fake Letta server", () => {
  it.effect("a client that leaves does not stop the run: the conversation stays busy until the cancel", () =>
    withFake((fake, client) =>
      Effect.gen(function*() {
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
      Effect.gen(function*() {
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
      Effect.gen(function*() {
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
      Effect.gen(function*() {
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
      Effect.gen(function*() {
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
