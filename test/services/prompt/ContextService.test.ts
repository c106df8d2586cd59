import { describe, expect, it } from "@effect/vitest"
import { Effect, Layer } from "effect"
import type { ChainEntry, MessageContext } from "../../../src/domain/Context.js"
import type { ReceivedMessage } from "../../../src/domain/Discord.js"
import { ContextService } from "../../../src/services/prompt/ContextService.js"
import { MessageSource } from "../../../src/services/discord/MessageSource.js"
import {
  type FakeMessageStore,
  fakeMessageSource,
  ids,
  makeAuthor,
  makeDmChannel,
  makeMessage,
  makeReceived,
  makeReplyChain,
  makeThread,
  referenceTo,
  referenceToId
} from "../../fakes/messages.js"

/** Builds the context against an in-memory source; returns it with the fetches made. */
const buildWith = (received: ReceivedMessage, depth: number, store: FakeMessageStore = {}) => {
  const source = fakeMessageSource(store)
  return Effect.gen(function*() {
    const service = yield* ContextService
    const context = yield* service.build(received, depth)
    return { context, calls: source.calls }
  }).pipe(Effect.provide(ContextService.Default.pipe(Layer.provide(source.layer))))
}

/** A compact view of the chain: message ids (with a * for a thread starter) or gap reasons. */
const shape = (context: MessageContext): ReadonlyArray<string> =>
  context.chain.entries.map((e: ChainEntry) =>
    e._tag === "ChainGap" ? `gap:${e.reason}:${e.messageId}` : `${e.message.id}${e.threadStarter ? "*" : ""}`
  )

describe("ContextService metadata", () => {
  it.effect("guild message: ids, names, kind and time", () =>
    Effect.gen(function*() {
      const message = makeMessage({ createdAt: 1_700_000_000_000 })
      const received = makeReceived({ message })
      const { context } = yield* buildWith(received, 5)
      expect(context.metadata).toEqual({
        messageId: message.id,
        author: { id: ids.author, username: "alice", displayName: "Alice", globalName: "Alice G", bot: false },
        channel: { id: ids.channel, name: "general", kind: "text", parentId: null, parentKind: null },
        guild: { id: ids.guild, name: "Test Server" },
        createdAt: 1_700_000_000_000
      })
      expect(context.message).toBe(message)
    }))

  it.effect("direct message: guild is null, channel kind dm", () =>
    Effect.gen(function*() {
      const channel = makeDmChannel()
      const received = makeReceived({ message: makeMessage({ channelId: channel.id, guildId: null }), channel, guild: null })
      const { context } = yield* buildWith(received, 5)
      expect(context.metadata.guild).toBeNull()
      expect(context.metadata.channel.kind).toBe("dm")
      expect(context.metadata.channel.name).toBeNull()
    }))

  it.effect("bot author is flagged, null global name is kept", () =>
    Effect.gen(function*() {
      const author = makeAuthor({ id: ids.bot, username: "helper", displayName: "helper", globalName: null, bot: true })
      const { context } = yield* buildWith(makeReceived({ message: makeMessage({ author }) }), 5)
      expect(context.metadata.author.bot).toBe(true)
      expect(context.metadata.author.globalName).toBeNull()
    }))
})

describe("ContextService reply chain", () => {
  it.effect("no reference: empty chain, nothing fetched", () =>
    Effect.gen(function*() {
      const { context, calls } = yield* buildWith(makeReceived(), 5)
      expect(context.chain).toEqual({ entries: [], truncated: false })
      expect(calls).toEqual([])
    }))

  it.effect("one parent", () =>
    Effect.gen(function*() {
      const parent = makeMessage({ content: "parent" })
      const mention = makeMessage({ reference: referenceTo(parent) })
      const { context, calls } = yield* buildWith(makeReceived({ message: mention }), 5, { messages: [parent] })
      expect(shape(context)).toEqual([parent.id])
      expect(context.chain.truncated).toBe(false)
      expect(calls).toEqual([{ channelId: ids.channel, messageId: parent.id }])
    }))

  it.effect("several parents, oldest first", () =>
    Effect.gen(function*() {
      const chain = makeReplyChain(3)
      const mention = makeMessage({ reference: referenceTo(chain[2]!) })
      const { context } = yield* buildWith(makeReceived({ message: mention }), 5, { messages: chain })
      expect(shape(context)).toEqual(chain.map((m) => m.id))
      expect(context.chain.truncated).toBe(false)
    }))

  it.effect("depth limit: a 10-deep chain at depth 3 gives the 3 nearest, truncated", () =>
    Effect.gen(function*() {
      const chain = makeReplyChain(10)
      const mention = makeMessage({ reference: referenceTo(chain[9]!) })
      const { context, calls } = yield* buildWith(makeReceived({ message: mention }), 3, { messages: chain })
      expect(shape(context)).toEqual([chain[7]!.id, chain[8]!.id, chain[9]!.id])
      expect(context.chain.truncated).toBe(true)
      expect(calls).toHaveLength(3)
    }))

  it.effect("a chain exactly as deep as the limit is not truncated", () =>
    Effect.gen(function*() {
      const chain = makeReplyChain(3)
      const mention = makeMessage({ reference: referenceTo(chain[2]!) })
      const { context } = yield* buildWith(makeReceived({ message: mention }), 3, { messages: chain })
      expect(shape(context)).toHaveLength(3)
      expect(context.chain.truncated).toBe(false)
    }))

  it.effect("deleted parent: a 'deleted' gap after the readable ones ends the chain, mention kept", () =>
    Effect.gen(function*() {
      const chain = makeReplyChain(2, {}, referenceToId("555000000000000001"))
      const mention = makeMessage({ reference: referenceTo(chain[1]!) })
      const { context } = yield* buildWith(makeReceived({ message: mention }), 5, {
        messages: chain,
        deleted: ["555000000000000001"]
      })
      expect(shape(context)).toEqual(["gap:deleted:555000000000000001", chain[0]!.id, chain[1]!.id])
      expect(context.chain.truncated).toBe(false)
      expect(context.message.id).toBe(mention.id)
    }))

  it.effect("forbidden parent: a 'forbidden' gap", () =>
    Effect.gen(function*() {
      const mention = makeMessage({ reference: referenceToId("555000000000000002") })
      const { context } = yield* buildWith(makeReceived({ message: mention }), 5, { forbidden: ["555000000000000002"] })
      expect(shape(context)).toEqual(["gap:forbidden:555000000000000002"])
      expect(context.message).toBe(mention)
    }))

  it.effect("any other failure: an 'unavailable' gap", () =>
    Effect.gen(function*() {
      const chain = makeReplyChain(1, {}, referenceToId("555000000000000003"))
      const mention = makeMessage({ reference: referenceTo(chain[0]!) })
      const { context } = yield* buildWith(makeReceived({ message: mention }), 5, {
        messages: chain,
        failing: ["555000000000000003"]
      })
      expect(shape(context)).toEqual(["gap:unavailable:555000000000000003", chain[0]!.id])
    }))

  it.effect("a defect in the source is an 'unavailable' gap, not a lost mention", () =>
    Effect.gen(function*() {
      const mention = makeMessage({ reference: referenceToId("555000000000000004") })
      const context = yield* Effect.gen(function*() {
        const service = yield* ContextService
        return yield* service.build(makeReceived({ message: mention }), 5)
      }).pipe(
        Effect.provide(
          ContextService.Default.pipe(
            Layer.provide(Layer.succeed(MessageSource, MessageSource.of({ fetchMessage: () => Effect.die("boom") })))
          )
        )
      )
      expect(shape(context)).toEqual(["gap:unavailable:555000000000000004"])
    }))
})

describe("ContextService threads", () => {
  it.effect("thread starter is added as the oldest parent, fetched from the parent channel", () =>
    Effect.gen(function*() {
      const thread = makeThread()
      const starter = makeMessage({ id: thread.id, channelId: ids.threadParent, content: "starter" })
      const first = makeMessage({ channelId: thread.id, content: "first in thread" })
      const mention = makeMessage({ channelId: thread.id, reference: referenceTo(first) })
      const { context, calls } = yield* buildWith(makeReceived({ message: mention, channel: thread }), 5, {
        messages: [starter, first]
      })
      expect(shape(context)).toEqual([`${thread.id}*`, first.id])
      expect(calls).toContainEqual({ channelId: ids.threadParent, messageId: thread.id })
      expect(context.chain.truncated).toBe(false)
    }))

  it.effect("a mention without reference in a thread gets the starter as its only parent", () =>
    Effect.gen(function*() {
      const thread = makeThread()
      const starter = makeMessage({ id: thread.id, channelId: ids.threadParent })
      const mention = makeMessage({ channelId: thread.id })
      const { context } = yield* buildWith(makeReceived({ message: mention, channel: thread }), 1, { messages: [starter] })
      expect(shape(context)).toEqual([`${thread.id}*`])
    }))

  it.effect("the starter counts toward the depth: no room, no fetch", () =>
    Effect.gen(function*() {
      const thread = makeThread()
      const starter = makeMessage({ id: thread.id, channelId: ids.threadParent })
      const chain = makeReplyChain(2, { channelId: thread.id })
      const mention = makeMessage({ channelId: thread.id, reference: referenceTo(chain[1]!) })
      const received = makeReceived({ message: mention, channel: thread })
      const full = yield* buildWith(received, 2, { messages: [starter, ...chain] })
      expect(shape(full.context)).toEqual([chain[0]!.id, chain[1]!.id])
      expect(full.calls.map((c) => c.messageId)).not.toContain(thread.id)
      const roomy = yield* buildWith(received, 3, { messages: [starter, ...chain] })
      expect(shape(roomy.context)).toEqual([`${thread.id}*`, chain[0]!.id, chain[1]!.id])
    }))

  it.effect("forum thread: the starter is not fetched", () =>
    Effect.gen(function*() {
      const thread = makeThread({ parentKind: "forum" })
      const mention = makeMessage({ channelId: thread.id })
      const { context, calls } = yield* buildWith(makeReceived({ message: mention, channel: thread }), 5, {
        messages: [makeMessage({ id: thread.id, channelId: ids.threadParent })]
      })
      expect(calls).toEqual([])
      expect(context.chain).toEqual({ entries: [], truncated: false })
    }))

  it.effect("deleted or forbidden starter: no gap, the chain just ends", () =>
    Effect.gen(function*() {
      const thread = makeThread()
      const first = makeMessage({ channelId: thread.id })
      const mention = makeMessage({ channelId: thread.id, reference: referenceTo(first) })
      const received = makeReceived({ message: mention, channel: thread })
      const deleted = yield* buildWith(received, 5, { messages: [first] })
      expect(shape(deleted.context)).toEqual([first.id])
      expect(deleted.calls).toContainEqual({ channelId: ids.threadParent, messageId: thread.id })
      const forbidden = yield* buildWith(received, 5, { messages: [first], forbidden: [thread.id] })
      expect(shape(forbidden.context)).toEqual([first.id])
    }))

  it.effect("a starter that fails otherwise is an 'unavailable' gap", () =>
    Effect.gen(function*() {
      const thread = makeThread()
      const mention = makeMessage({ channelId: thread.id })
      const { context } = yield* buildWith(makeReceived({ message: mention, channel: thread }), 5, { failing: [thread.id] })
      expect(shape(context)).toEqual([`gap:unavailable:${thread.id}`])
    }))

  it.effect("a starter reached through a reference is not added twice", () =>
    Effect.gen(function*() {
      const thread = makeThread()
      const starter = makeMessage({ id: thread.id, channelId: ids.threadParent })
      const first = makeMessage({ channelId: thread.id, reference: referenceTo(starter) })
      const mention = makeMessage({ channelId: thread.id, reference: referenceTo(first) })
      const { context, calls } = yield* buildWith(makeReceived({ message: mention, channel: thread }), 5, {
        messages: [starter, first]
      })
      expect(shape(context)).toEqual([`${thread.id}*`, first.id])
      expect(calls.filter((c) => c.messageId === thread.id)).toHaveLength(1)
    }))
})
