/**
 * What a run sends, on both routes, as the fake Letta server received it through the real
 * @letta-ai/letta-client: the prompt as a string or as a text part followed by image parts, and the
 * otid on the message. And the fake's side of the contract: a message the server would refuse (a
 * malformed image part) is answered 422 and starts no run.
 */
import { describe, expect, it } from "@effect/vitest"
import type { MessageCreate } from "@letta-ai/letta-client/resources/agents/agents"
import { UnprocessableEntityError } from "@letta-ai/letta-client"
import { Duration, Effect, Exit, Layer, Logger, LogLevel } from "effect"
import type { RunRequest } from "../../../src/domain/AgentRun.js"
import { promptOtid } from "../../../src/domain/Otid.js"
import { LettaClient, LettaEndpoint } from "../../../src/services/letta/LettaClient.js"
import { LettaExecutor } from "../../../src/services/letta/LettaExecutor.js"
import { userMessage } from "../../../src/services/letta/UserMessage.js"
import { configFrom } from "../../fakes/config.js"
import { type FakeLetta, imageUrlsOf, makeFakeLetta, readMessages, textOf } from "../../fakes/FakeLetta.js"

const agentId = "agent-1"
const otid = promptOtid("1500000000000000001")
const png = "https://cdn.discordapp.com/attachments/1/2/cat.png"
const gif = "https://media.discordapp.net/attachments/1/3/dance.gif"

/** A fresh fake, the executor (and the raw client) pointed at it; JSON log lines from debug up into `lines`. */
const withExecutor = <A, E>(
  body: (fake: FakeLetta, executor: LettaExecutor, conversationId: string) => Effect.Effect<A, E, LettaClient>,
  lines: Array<string> = []
) =>
  Effect.scoped(
    Effect.gen(function*() {
      const fake = yield* makeFakeLetta({ agents: { [agentId]: "Test Agent" } })
      const layer = LettaExecutor.Default.pipe(
        Layer.provideMerge(LettaClient.Default),
        Layer.provideMerge(LettaEndpoint.Default),
        Layer.provide(configFrom({ LETTA_BASE_URL: fake.url })),
        Layer.provide(Logger.replace(Logger.defaultLogger, Logger.map(Logger.jsonLogger, (line) => void lines.push(line)))),
        Layer.provide(Logger.minimumLogLevel(LogLevel.Debug))
      )
      return yield* Effect.gen(function*() {
        const executor = yield* LettaExecutor
        const conversationId = yield* executor.createConversation(agentId, "Discord channel 100 in guild 1")
        return yield* body(fake, executor, conversationId)
      }).pipe(Effect.provide(layer))
    })
  )

const request = (overrides: Partial<RunRequest> = {}): RunRequest => ({
  agentId,
  prompt: "Look at this <@42>",
  otid,
  timeout: Duration.seconds(30),
  ...overrides
})

describe("the message a run sends", () => {
  it("userMessage: the prompt string without images; text then image parts with them", () => {
    expect(userMessage({ prompt: "p", otid })).toEqual({ role: "user", content: "p", otid })
    expect(userMessage({ prompt: "p", otid, images: [] })).toEqual({ role: "user", content: "p", otid })
    expect(userMessage({ prompt: "p", otid, images: [png, gif] })).toEqual({
      role: "user",
      content: [
        { type: "text", text: "p" },
        { type: "image", source: { type: "url", url: png } },
        { type: "image", source: { type: "url", url: gif } }
      ],
      otid
    })
  })

  for (const route of ["agents", "conversations"] as const) {
    it.effect(`${route} route: without images, the prompt string and the otid`, () =>
      withExecutor((fake, executor, conversationId) =>
        Effect.gen(function*() {
          yield* executor.run(request(route === "agents" ? {} : { conversationId }))
          const [sent] = yield* fake.messageRequests()
          expect(sent?.conversationId).toBe(route === "agents" ? undefined : conversationId)
          expect(sent?.messages).toEqual([
            { type: "message", role: "user", content: "Look at this <@42>", otid, raw: expect.anything() }
          ])
        })
      ))

    it.effect(`${route} route: with images, one text part then one image part per URL, in order`, () =>
      withExecutor((fake, executor, conversationId) =>
        Effect.gen(function*() {
          const report = yield* executor.run(request({ images: [png, gif], ...(route === "agents" ? {} : { conversationId }) }))
          expect(report.stopReason).toBe("end_turn")
          const [sent] = yield* fake.messageRequests()
          expect(sent?.rejected).toBeUndefined()
          const [message] = sent?.messages ?? []
          expect(message?.otid).toBe(otid)
          expect(message?.content).toEqual([
            { type: "text", text: "Look at this <@42>" },
            { type: "image", source: { type: "url", url: png } },
            { type: "image", source: { type: "url", url: gif } }
          ])
          expect(textOf(message)).toBe("Look at this <@42>")
          expect(imageUrlsOf(message)).toEqual([png, gif])
        })
      ))
  }

  it.effect("the otid is logged at debug only", () => {
    const lines: Array<string> = []
    return withExecutor((_fake, executor) =>
      Effect.gen(function*() {
        yield* executor.run(request())
        const withOtid = lines.filter((l) => l.includes(otid))
        expect(withOtid.length).toBeGreaterThan(0)
        expect(withOtid.every((l) => JSON.parse(l).logLevel === "DEBUG")).toBe(true)
      }), lines)
  })
})

describe("the fake refuses what the server would", () => {
  const malformed = (): MessageCreate =>
    JSON.parse(
      "{\"role\":\"user\",\"otid\":\"x\",\"content\":[{\"type\":\"text\",\"text\":\"hi\"},{\"type\":\"image\",\"source\":{\"type\":\"url\"}}]}"
    )

  it.effect("a malformed image part: 422 on both routes, no run, the issue recorded", () =>
    withExecutor((fake, _executor, conversationId) =>
      Effect.gen(function*() {
        const { client } = yield* (yield* LettaClient).current
        const agents = yield* Effect.exit(
          Effect.tryPromise(() => client.agents.messages.create(agentId, { messages: [malformed()], streaming: true }))
        )
        const conversations = yield* Effect.exit(
          Effect.tryPromise(() => client.conversations.messages.create(conversationId, { messages: [malformed()] }))
        )
        for (const exit of [agents, conversations]) {
          expect(Exit.isFailure(exit)).toBe(true)
          const error = Exit.isFailure(exit) && exit.cause._tag === "Fail" ? exit.cause.error.error : undefined
          expect(error).toBeInstanceOf(UnprocessableEntityError)
        }
        const sends = yield* fake.messageRequests()
        expect(sends.map((r) => r.rejected)).toEqual(["invalid", "invalid"])
        expect(sends[0]?.issues).toEqual([
          {
            type: "missing",
            loc: ["body", "messages", 0, "content", 1, "source", "url"],
            msg: "Field required",
            input: { type: "url" }
          }
        ])
        expect(yield* fake.runs).toEqual([])
      })
    ))

  it("the shapes: parts need their type, sources their fields, messages a role", () => {
    const issuesOf = (messages: unknown) => {
      const read = readMessages({ messages })
      return read._tag === "Invalid" ? read.issues.map((i) => `${i.type} ${i.loc.join(".")}`) : []
    }
    expect(issuesOf([{ role: "user", content: "hi", otid: null }])).toEqual([])
    expect(issuesOf([{ role: "user", content: [{ text: "no type" }] }])).toEqual([
      "union_tag_not_found body.messages.0.content.0"
    ])
    expect(issuesOf([{ role: "user", content: [{ type: "image", source: { url: png } }] }])).toEqual([
      "union_tag_not_found body.messages.0.content.0.source"
    ])
    expect(issuesOf([{ role: "user", content: [{ type: "image", source: { type: "base64", data: "x" } }] }])).toEqual([
      "missing body.messages.0.content.0.source.media_type"
    ])
    expect(issuesOf([{ role: "user", content: [{ type: "image" }] }])).toEqual(["missing body.messages.0.content.0.source"])
    expect(issuesOf([{ role: "user", content: [{ type: "video", url: png }] }])).toEqual([
      "union_tag_invalid body.messages.0.content.0"
    ])
    expect(issuesOf([{ role: "robot", content: "hi" }])).toEqual(["value_error body.messages.0.role"])
    expect(issuesOf([{ content: "hi", otid: 7 }])).toEqual(["missing body.messages.0.role", "value_error body.messages.0.otid"])
    expect(issuesOf([{ type: "approval", approvals: [], otid: "o" }])).toEqual([])
    expect(issuesOf("not a list")).toEqual(["value_error body.messages"])
  })
})
