/**
 * The traffic of a busy server, generated once and replayed identically to every bot: ordinary
 * messages (20–300 characters) by a pool of users, some mentioning another user, some replying to
 * a recent message of their channel, and after every `mentionEvery` of them a mention of the bot
 * (half of them replying to a recent message, so their reply chains reach back into the chatter;
 * nothing replies to a mention).
 * The same seed gives the same messages, channels, authors and reply targets on every run.
 */
import type { FakeUser } from "../test/fakes/FakeDiscord.js"
import { seededInts } from "../test/fakes/seededInts.js"
import type { BenchWorld } from "./world.js"

export interface TrafficOptions {
  /** Ordinary messages (the mentions come on top). */
  readonly chatter: number
  /** One mention of the bot after every `mentionEvery` ordinary messages. */
  readonly mentionEvery: number
  /** The first mention's number (mention tokens must be unique over a bot's life). */
  readonly firstMention: number
  readonly seed: number
}

export interface TrafficMessage {
  readonly channelId: string
  readonly author: FakeUser
  readonly content: string
  /** User ids mentioned (the bot's for a mention). */
  readonly mentions: ReadonlyArray<string>
  /** Index (in the traffic) of the message this one replies to. */
  readonly replyTo?: number
  /** The mention's number (its token), for a mention of the bot. */
  readonly mention?: number
  /** How many parents its reply chain has (0 when it replies to nothing). */
  readonly chainLength: number
}

export interface Traffic {
  readonly messages: ReadonlyArray<TrafficMessage>
  readonly mentions: number
  /** Reply-chain parents Aurora reads for the mentions, at its reply depth (cache or REST). */
  readonly chainReads: (replyDepth: number) => number
}

/** Users who chat; none of them is a bot. */
const Users = 400
/** Share of ordinary messages that mention another user, and that reply to an earlier message. */
const MentionOtherPercent = 10
const ReplyPercent = 20
/** A reply goes to one of the last `ReplyWindow` messages of its channel. */
const ReplyWindow = 20

const words = [
  "the",
  "a",
  "so",
  "and",
  "but",
  "yes",
  "no",
  "maybe",
  "tonight",
  "server",
  "raid",
  "build",
  "patch",
  "lol",
  "anyone",
  "seen",
  "this",
  "update",
  "map",
  "queue",
  "ping",
  "later",
  "coffee",
  "deploy",
  "bug",
  "works",
  "again",
  "why",
  "really",
  "nice",
  "thanks",
  "game",
  "music",
  "photo",
  "link",
  "meeting"
]

const pad = (n: number) => String(n).padStart(6, "0")

export const chatterUsers: ReadonlyArray<FakeUser> = Array.from({ length: Users }, (_, n) => ({
  id: `1500000000000${pad(n)}`,
  username: `chatter${n}`,
  globalName: n % 3 === 0 ? null : `Chatter ${n}`
}))

export const makeTraffic = (world: BenchWorld, botId: string, options: TrafficOptions): Traffic => {
  const next = seededInts(options.seed)
  const pick = <A>(items: ReadonlyArray<A>): A => items[next(items.length)]!
  const text = (length: number) => {
    let out = ""
    while (out.length < length) out += `${out.length === 0 ? "" : " "}${pick(words)}`
    return out.slice(0, length)
  }
  /** Indices of each channel's messages so far, newest last. */
  const byChannel = new Map<string, Array<number>>()
  const messages: Array<TrafficMessage> = []
  const total = options.chatter + Math.floor(options.chatter / options.mentionEvery)
  let mention = options.firstMention
  for (let i = 0; i < total; i++) {
    const channel = world.channels[i % world.channels.length]!
    const recent = byChannel.get(channel.channelId) ?? []
    const isMention = i % (options.mentionEvery + 1) === options.mentionEvery
    const replies = recent.length > 0 && next(100) < (isMention ? 50 : ReplyPercent)
    const parent = replies ? recent[Math.max(0, recent.length - 1 - next(Math.min(ReplyWindow, recent.length)))] : undefined
    const chainLength = parent === undefined ? 0 : 1 + (messages[parent]?.chainLength ?? 0)
    const author = pick(chatterUsers)
    if (isMention) {
      messages.push({
        channelId: channel.channelId,
        author,
        content: `<@${botId}> bench-${mention}-token ${text(20 + next(100))}`,
        mentions: [botId],
        ...(parent === undefined ? {} : { replyTo: parent }),
        mention: mention++,
        chainLength
      })
    } else {
      const other = next(100) < MentionOtherPercent ? pick(chatterUsers) : undefined
      const body = text(20 + next(281))
      messages.push({
        channelId: channel.channelId,
        author,
        content: other === undefined ? body : `<@${other.id}> ${body}`.slice(0, 300),
        mentions: other === undefined ? [] : [other.id],
        ...(parent === undefined ? {} : { replyTo: parent }),
        chainLength
      })
    }
    // Nothing replies to a mention, so no reply chain carries another mention's token (the latency
    // is matched to the mention by the first token in the Letta request).
    if (!isMention) recent.push(i)
    if (recent.length > ReplyWindow) recent.shift()
    byChannel.set(channel.channelId, recent)
  }
  return {
    messages,
    mentions: mention - options.firstMention,
    chainReads: (replyDepth) =>
      messages.reduce((sum, message) => sum + (message.mention === undefined ? 0 : Math.min(replyDepth, message.chainLength)), 0)
  }
}
