/** Shards: down-time tracking and the start-up watchdog under TestClock; client options; close codes. */
import { describe, expect, it } from "@effect/vitest"
import { Status } from "discord.js"
import { Duration, Effect, Exit, Fiber, Option, Queue, TestClock } from "effect"
import { loginFailureMessage } from "../../../src/services/discord/DiscordMapping.js"
import {
  closeCodeExplanation,
  closedForGoodLine,
  failWhenStalled,
  isLongDown,
  makeShardTracker,
  type ShardReading,
  shardOptions,
  shardReadings
} from "../../../src/services/discord/Shards.js"

const reading = (id: number, status: ShardReading["status"], pingMs: number | null = 40): ShardReading => ({
  id,
  status,
  pingMs
})

describe("ShardTracker", () => {
  it.effect("a dropped shard is down from its drop; only more than 60 s counts as long", () =>
    Effect.gen(function*() {
      const tracker = yield* makeShardTracker
      yield* TestClock.adjust("10 seconds")
      yield* tracker.down(1)
      yield* TestClock.adjust("5 seconds")
      // Dropping again (another reconnect attempt) keeps the first start.
      yield* tracker.down(1)
      yield* TestClock.adjust("55 seconds")
      const atLimit = yield* tracker.health([reading(0, "ready"), reading(1, "reconnecting", null)])
      expect(atLimit).toEqual([
        { id: 0, status: "ready", pingMs: 40, downForMs: null },
        { id: 1, status: "reconnecting", pingMs: null, downForMs: 60_000 }
      ])
      expect(atLimit.map(isLongDown)).toEqual([false, false])

      yield* TestClock.adjust("1 millis")
      const past = yield* tracker.health([reading(0, "ready"), reading(1, "resuming", null)])
      expect(past.map((shard) => shard.downForMs)).toEqual([null, 60_001])
      expect(past.map(isLongDown)).toEqual([false, true])

      yield* tracker.up(1)
      expect((yield* tracker.health([reading(0, "ready"), reading(1, "ready")])).map((s) => s.downForMs)).toEqual([null, null])
    }))

  it.effect("a shard seen not ready without a drop event is down from when it was first seen so", () =>
    Effect.gen(function*() {
      const tracker = yield* makeShardTracker
      yield* TestClock.adjust("1 minute")
      const first = yield* tracker.health([reading(0, "identifying")])
      expect(first[0]?.downForMs).toBe(0)
      yield* TestClock.adjust("61 seconds")
      const later = yield* tracker.health([reading(0, "waiting_for_guilds")])
      expect(later[0]?.downForMs).toBe(61_000)
      expect(later.some(isLongDown)).toBe(true)

      // A shard that reads ready is up, whatever was recorded; a later drop starts a new count.
      expect((yield* tracker.health([reading(0, "ready")]))[0]?.downForMs).toBeNull()
      yield* TestClock.adjust("5 seconds")
      expect((yield* tracker.health([reading(0, "connecting")]))[0]?.downForMs).toBe(0)
    }))

  it("reads discord.js' shards by id, with their status in one word and no ping before the first heartbeat", () => {
    expect(
      shardReadings([
        { id: 1, status: Status.WaitingForGuilds, ping: -1 },
        { id: 0, status: Status.Ready, ping: 42 }
      ])
    ).toEqual([
      { id: 0, status: "ready", pingMs: 42 },
      { id: 1, status: "waiting_for_guilds", pingMs: null }
    ])
  })
})

describe("failWhenStalled", () => {
  it.effect("bounds each shard's turn, not the whole start-up", () =>
    Effect.gen(function*() {
      const progress = yield* Queue.sliding<number>(1)
      const watchdog = yield* Effect.fork(failWhenStalled(progress, Duration.seconds(30), () => "stalled"))
      // Three shards, each ready 25 s after the previous one: 75 s in all, never 30 s without progress.
      for (const shard of [0, 1, 2]) {
        yield* TestClock.adjust("25 seconds")
        yield* Queue.offer(progress, shard)
      }
      yield* TestClock.adjust("29 seconds")
      expect(Option.isNone(yield* Fiber.poll(watchdog))).toBe(true)
      yield* TestClock.adjust("1 second")
      const exit = yield* Fiber.await(watchdog)
      expect(exit).toEqual(Exit.fail("stalled"))
    }))
})

describe("shard options and close codes", () => {
  it("auto asks Discord; a pinned count runs every shard of it here", () => {
    expect(shardOptions("auto")).toEqual({ shards: "auto" })
    expect(shardOptions(3)).toEqual({ shards: [0, 1, 2], shardCount: 3 })
  })

  it("explains 4011 and 4014 in one line each, at start-up and later", () => {
    const context = { apiUrl: "http://127.0.0.1:9/api", token: "t" }
    const shardingRequired = loginFailureMessage(new Error("Sharding is required"), context)
    expect(shardingRequired).toContain("4011")
    expect(shardingRequired).toContain("AURORA_SHARD_COUNT")
    const intents = loginFailureMessage(new Error("Used disallowed intents"), context)
    expect(intents).toContain("4014")
    expect(intents).toContain("Message Content intent")
    expect(intents).toContain("Developer Portal")
    for (const line of [shardingRequired, intents]) expect(line).not.toContain("\n")

    // After start-up the disconnect is logged with the same words; during start-up the failed
    // login says it, so the disconnect adds nothing.
    expect(closedForGoodLine(4011, false)).toBe(closeCodeExplanation(4011))
    expect(closedForGoodLine(4014, false)).toBe(intents)
    expect(closedForGoodLine(4014, true)).toBeNull()
    expect(closedForGoodLine(4013, true)).toBe("Discord gateway closed for good (close code 4013)")
  })
})
