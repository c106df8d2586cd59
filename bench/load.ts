/** Offering mentions (or a whole traffic of messages) to the bot through the fake gateway, at a pace or as a burst. */
import { Effect } from "effect"
import type { FakeDiscord } from "../test/fakes/FakeDiscord.js"
import type { Traffic } from "./traffic.js"
import { type BenchWorld, mentionText, messageId } from "./world.js"

export interface Offer {
  /** mention number -> performance.now() just before its MESSAGE_CREATE frame was written */
  readonly sentAt: ReadonlyMap<number, number>
  readonly firstSentAt: number
  readonly lastSentAt: number
  /** mention number -> the Discord message id it was sent with (offerTraffic and offerBurst) */
  readonly ids?: ReadonlyMap<number, string>
}

let sequence = 0

/** Dispatches mention `n` in the world's channel `n mod channels` (the frame is written synchronously). */
const sendMention = (
  discord: FakeDiscord,
  world: BenchWorld,
  n: number,
  sentAt: Map<number, number>,
  ids?: Map<number, string>
): void => {
  const channel = world.channels[n % world.channels.length]
  if (channel === undefined) return
  const id = messageId(sequence++)
  ids?.set(n, id)
  const message = discord.sendMessage({
    channelId: channel.channelId,
    id,
    content: mentionText(discord.bot.id, n),
    mentions: [discord.bot.id]
  })
  sentAt.set(n, performance.now())
  Effect.runSync(message)
}

/**
 * Mentions `from .. from+count-1`, round-robin over the world's channels, mention i at
 * start + i * intervalMs. A timer loop sends whatever is due, so a late timer catches up
 * instead of stretching the run.
 */
export const offerPaced = (
  discord: FakeDiscord,
  world: BenchWorld,
  from: number,
  count: number,
  intervalMs: number
): Effect.Effect<Offer> =>
  Effect.async<Offer>((resume) => {
    const sentAt = new Map<number, number>()
    const start = performance.now()
    let next = 0
    const tick = () => {
      const now = performance.now()
      while (next < count && start + next * intervalMs <= now) {
        sendMention(discord, world, from + next, sentAt)
        next++
      }
      if (next < count) setTimeout(tick, Math.max(0, start + next * intervalMs - performance.now()))
      else resume(Effect.succeed({ sentAt, firstSentAt: start, lastSentAt: performance.now() }))
    }
    tick()
  })

/** As fast as the fake can write them, in slices of `slice` with a turn of the event loop between. */
export const offerBurst = (
  discord: FakeDiscord,
  world: BenchWorld,
  from: number,
  count: number,
  slice = 500
): Effect.Effect<Offer> =>
  Effect.async<Offer>((resume) => {
    const sentAt = new Map<number, number>()
    const ids = new Map<number, string>()
    const start = performance.now()
    let next = 0
    const tick = () => {
      const end = Math.min(count, next + slice)
      for (; next < end; next++) sendMention(discord, world, from + next, sentAt, ids)
      if (next < count) setImmediate(tick)
      else resume(Effect.succeed({ sentAt, firstSentAt: start, lastSentAt: performance.now(), ids }))
    }
    tick()
  })

/**
 * Replays `traffic` at `perSecond` messages per second (message i at start + i / perSecond), each
 * reply pointing at the id its target was sent with. Returns when the last one was written, with
 * the send time of every mention of the bot.
 */
export const offerTraffic = (discord: FakeDiscord, traffic: Traffic, perSecond: number): Effect.Effect<Offer> =>
  Effect.async<Offer>((resume) => {
    const sentAt = new Map<number, number>()
    const mentionIds = new Map<number, string>()
    const ids: Array<string> = []
    const intervalMs = 1000 / perSecond
    const start = performance.now()
    let next = 0
    const tick = () => {
      const now = performance.now()
      while (next < traffic.messages.length && start + next * intervalMs <= now) {
        const message = traffic.messages[next]!
        const id = messageId(sequence++)
        ids.push(id)
        const replyTo = message.replyTo === undefined ? undefined : ids[message.replyTo]
        const send = discord.sendMessage({
          channelId: message.channelId,
          id,
          author: message.author,
          content: message.content,
          mentions: message.mentions,
          ...(replyTo === undefined ? {} : { replyTo })
        })
        if (message.mention !== undefined) {
          sentAt.set(message.mention, performance.now())
          mentionIds.set(message.mention, id)
        }
        Effect.runSync(send)
        next++
      }
      if (next < traffic.messages.length) setTimeout(tick, Math.max(0, start + next * intervalMs - performance.now()))
      else resume(Effect.succeed({ sentAt, firstSentAt: start, lastSentAt: performance.now(), ids: mentionIds }))
    }
    tick()
  })
