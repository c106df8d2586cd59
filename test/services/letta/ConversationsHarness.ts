/**
 * Shared by the conversations tests: the real @letta-ai/letta-client (through LettaClient, and raw
 * for the sends the executor does not make yet) against a fresh fake Letta server.
 */
import type { Letta } from "@letta-ai/letta-client"
import { Duration, Effect, Exit, Layer, Logger } from "effect"
import type { LettaRunError } from "../../../src/domain/LettaErrors.js"
import { classifyClientError, LettaClient, LettaEndpoint } from "../../../src/services/letta/LettaClient.js"
import { configFrom } from "../../fakes/config.js"
import { type FakeLetta, makeFakeLetta } from "../../fakes/FakeLetta.js"

export const agentId = "agent-1"

const clientLayer = (url: string) =>
  LettaClient.Default.pipe(
    Layer.provideMerge(LettaEndpoint.Default),
    Layer.provide(configFrom({ LETTA_BASE_URL: url })),
    Layer.provide(Logger.remove(Logger.defaultLogger))
  )

/** Runs `body` with a fresh fake (agent-1 known), LettaClient pointed at it, and the raw client. */
export const withFake = <A, E>(body: (fake: FakeLetta, client: Letta) => Effect.Effect<A, E, LettaClient>) =>
  Effect.scoped(
    Effect.gen(function*() {
      const fake = yield* makeFakeLetta({ agents: { [agentId]: "Test Agent" } })
      return yield* Effect.gen(function*() {
        const { client } = yield* (yield* LettaClient).current
        return yield* body(fake, client)
      }).pipe(Effect.provide(clientLayer(fake.url)))
    })
  )

export const created = (description = "Discord #general (channel 100) in Guild (guild 1)") =>
  Effect.flatMap(LettaClient, (letta) => letta.createConversation(agentId, description))

/** Opens a send on the conversation: the stream's iterator once the headers arrived, or what the client threw. */
export const open = (client: Letta, conversationId: string, text = "hello", signal?: AbortSignal) =>
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
export const drain = (iterator: AsyncIterator<{ readonly message_type?: string }>) =>
  Effect.promise(async () => {
    const types: Array<string> = []
    for (let next = await iterator.next(); next.done !== true; next = await iterator.next()) {
      types.push(next.value.message_type ?? "?")
    }
    return types
  })

export const firstItem = (iterator: AsyncIterator<{ readonly message_type?: string; readonly run_id?: string | null }>) =>
  Effect.promise(() => iterator.next()).pipe(Effect.map((next) => (next.done === true ? undefined : next.value)))

/** What a send failed with, as Aurora reads it on the conversation route. */
export const classified = (cause: unknown, conversationId: string): Effect.Effect<LettaRunError> =>
  classifyClientError(cause, {
    agentId,
    conversationId,
    sideEffect: false,
    timeout: Duration.seconds(30),
    redact: (text) => text,
    phase: "headers"
  })

export const failureOf = <A>(exit: Exit.Exit<A, unknown>): unknown => {
  if (Exit.isSuccess(exit) || exit.cause._tag !== "Fail") throw new Error("expected a failure")
  return exit.cause.error
}

export const normalRun = [
  "reasoning_message",
  "tool_call_message",
  "tool_return_message",
  "assistant_message",
  "stop_reason",
  "usage_statistics"
]
