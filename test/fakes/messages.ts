/**
 * Builders for Discord test data (MessageRecord, ReceivedMessage, ...) and an in-memory
 * MessageSource. Every builder takes partial overrides so a test states only what it is about.
 */
import { type Context, Effect, Layer } from "effect"
import type { ChainEntry, MessageContext, ReplyChain } from "../../src/domain/Context.js"
import type {
  Author,
  ChannelInfo,
  GuildInfo,
  MessageRecord,
  MessageReference,
  ReceivedMessage
} from "../../src/domain/Discord.js"
import { DiscordError, type DiscordFailure, MessageNotFound, MissingAccess } from "../../src/domain/Errors.js"
import { MessageSource } from "../../src/services/discord/MessageSource.js"

/** 2024-01-01T00:00:00.000Z: a fixed instant so tests can compute relative times. */
export const baseTime = Date.UTC(2024, 0, 1)

export const ids = {
  guild: "100000000000000001",
  channel: "200000000000000001",
  threadParent: "200000000000000002",
  author: "300000000000000001",
  bot: "300000000000000099"
} as const

let nextId = 0
/** A fresh snowflake-shaped id, unique within the test process. */
export const freshId = (): string => `9${String(++nextId).padStart(17, "0")}`

export const makeAuthor = (overrides: Partial<Author> = {}): Author => ({
  id: ids.author,
  username: "alice",
  displayName: "Alice",
  globalName: "Alice G",
  bot: false,
  ...overrides
})

export const makeChannel = (overrides: Partial<ChannelInfo> = {}): ChannelInfo => ({
  id: ids.channel,
  name: "general",
  kind: "text",
  parentId: null,
  parentKind: null,
  ...overrides
})

/** A thread channel under `parentId`; the starter message in the parent has the thread's id. */
export const makeThread = (overrides: Partial<ChannelInfo> = {}): ChannelInfo =>
  makeChannel({
    id: freshId(),
    name: "a thread",
    kind: "public-thread",
    parentId: ids.threadParent,
    parentKind: "text",
    ...overrides
  })

export const makeDmChannel = (overrides: Partial<ChannelInfo> = {}): ChannelInfo =>
  makeChannel({ id: "200000000000000077", name: null, kind: "dm", ...overrides })

export const makeGuild = (overrides: Partial<GuildInfo> = {}): GuildInfo => ({
  id: ids.guild,
  name: "Test Server",
  ...overrides
})

export const makeMessage = (overrides: Partial<MessageRecord> = {}): MessageRecord => ({
  id: freshId(),
  channelId: ids.channel,
  guildId: ids.guild,
  author: makeAuthor(),
  webhookId: null,
  content: "hello",
  createdAt: baseTime,
  editedAt: null,
  embeds: [],
  attachments: [],
  reference: null,
  mentions: { users: [], roles: [], everyone: false },
  ...overrides
})

/** A reference pointing at `target` (a reply to it). */
export const referenceTo = (target: MessageRecord): MessageReference => ({
  messageId: target.id,
  channelId: target.channelId,
  guildId: target.guildId
})

/** A reference to a message that the source may not hold (deleted, forbidden, ...). */
export const referenceToId = (messageId: string, channelId: string = ids.channel): MessageReference => ({
  messageId,
  channelId,
  guildId: ids.guild
})

/**
 * `length` messages in one channel, each replying to the previous one; oldest first.
 * `first` lets the oldest message itself reply to something (a gap, a thread starter).
 */
export const makeReplyChain = (
  length: number,
  overrides: Partial<MessageRecord> = {},
  first: MessageReference | null = null
): ReadonlyArray<MessageRecord> => {
  const chain: Array<MessageRecord> = []
  for (let i = 0; i < length; i++) {
    const previous = chain[i - 1]
    chain.push(
      makeMessage({
        content: `message ${i + 1}`,
        createdAt: baseTime + i * 60_000,
        ...overrides,
        reference: previous === undefined ? first : referenceTo(previous)
      })
    )
  }
  return chain
}

/** A message as received: a guild text channel unless overridden. */
export const makeReceived = (overrides: Partial<ReceivedMessage> = {}): ReceivedMessage => ({
  message: makeMessage(),
  channel: makeChannel(),
  guild: makeGuild(),
  ...overrides
})

/** The context ContextService would build for `received`, with the given chain (for prompt tests). */
export const makeContext = (received: ReceivedMessage = makeReceived(), chain: Partial<ReplyChain> = {}): MessageContext => ({
  metadata: {
    messageId: received.message.id,
    author: received.message.author,
    channel: received.channel,
    guild: received.guild,
    createdAt: received.message.createdAt
  },
  message: received.message,
  chain: { entries: [], truncated: false, ...chain }
})

export const chainMessage = (message: MessageRecord, threadStarter = false): ChainEntry => ({
  _tag: "ChainMessage",
  message,
  threadStarter
})

export const chainGap = (
  messageId: string,
  reason: "deleted" | "forbidden" | "unavailable" = "deleted",
  channelId: string = ids.channel
): ChainEntry => ({ _tag: "ChainGap", channelId, messageId, reason })

export interface FakeMessageStore {
  /** Readable messages; a message is found only under its own channel id, as on Discord. */
  readonly messages?: ReadonlyMap<string, MessageRecord> | ReadonlyArray<MessageRecord>
  /** Message ids answered with MessageNotFound (404). Unknown ids are answered so too. */
  readonly deleted?: Iterable<string>
  /** Message ids answered with MissingAccess (403). */
  readonly forbidden?: Iterable<string>
  /** Message ids answered with DiscordError (network, 5xx, ...). */
  readonly failing?: Iterable<string>
}

export interface FetchCall {
  readonly channelId: string
  readonly messageId: string
}

export interface FakeMessageSource {
  readonly layer: Layer.Layer<MessageSource>
  readonly service: Context.Tag.Service<typeof MessageSource>
  /** Every fetchMessage call, in order, so tests can assert what was (not) fetched. */
  readonly calls: ReadonlyArray<FetchCall>
}

/** An in-memory MessageSource over `store`, recording its calls. */
export const fakeMessageSource = (store: FakeMessageStore = {}): FakeMessageSource => {
  const records = Array.isArray(store.messages)
    ? store.messages
    : Array.from((store.messages ?? new Map<string, MessageRecord>()).values())
  const byId = new Map(records.map((m) => [m.id, m] as const))
  const deleted = new Set(store.deleted ?? [])
  const forbidden = new Set(store.forbidden ?? [])
  const failing = new Set(store.failing ?? [])
  const calls: Array<FetchCall> = []
  const service = MessageSource.of({
    fetchMessage: (channelId, messageId) =>
      Effect.suspend((): Effect.Effect<MessageRecord, DiscordFailure> => {
        calls.push({ channelId, messageId })
        if (forbidden.has(messageId)) {
          return Effect.fail(new MissingAccess({ channelId, operation: "fetchMessage" }))
        }
        if (failing.has(messageId)) {
          return Effect.fail(new DiscordError({ operation: "fetchMessage", reason: "503 Service Unavailable" }))
        }
        const found = byId.get(messageId)
        if (found === undefined || deleted.has(messageId) || found.channelId !== channelId) {
          return Effect.fail(new MessageNotFound({ channelId, messageId }))
        }
        return Effect.succeed(found)
      })
  })
  return { layer: Layer.succeed(MessageSource, service), service, calls }
}
