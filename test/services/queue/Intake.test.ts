/** EventQueue intake: dedup, capacity, overflow logging, the journal, restore and stats. */
import { describe, expect, it } from "@effect/vitest"
import { Duration, Effect, Exit, Logger, Ref, TestClock } from "effect"
import { DuplicateEvent, QueueFull } from "../../../src/domain/Errors.js"
import { Partition } from "../../../src/domain/Event.js"
import { event, g1, g2, ids, probe, setCapacity, settle, setup } from "./harness.js"

describe("EventQueue intake", () => {
  it.effect("a duplicate message id is rejected and counted", () =>
    Effect.gen(function*() {
      const { queue } = yield* setup()
      yield* queue.offer(event("m1"))
      const again = yield* Effect.exit(queue.offer(event("m1")))
      expect(again).toStrictEqual(Exit.fail(new DuplicateEvent({ messageId: "m1" })))
      const stats = yield* queue.stats
      expect(stats.rejected).toEqual({ full: 0, duplicate: 1 })
      expect(stats.partitions[0]?.pending).toBe(1)
    }))

  it.scoped("an id stays a duplicate after its event was dispatched", () =>
    Effect.gen(function*() {
      const { queue } = yield* setup()
      const p = yield* probe
      yield* Effect.forkScoped(queue.consume(p.consumer(() => ({ _tag: "Done" }))))
      yield* queue.offer(event("m1"))
      yield* p.next
      yield* queue.awaitIdle
      const again = yield* Effect.exit(queue.offer(event("m1")))
      expect(Exit.isFailure(again)).toBe(true)
      expect((yield* queue.stats).rejected.duplicate).toBe(1)
    }))

  it.effect("a full partition rejects with QueueFull naming the capacity, and counts it", () =>
    Effect.gen(function*() {
      const h = yield* setup({ capacity: 2 })
      const queue = h.queue
      yield* queue.offer(event("m1"))
      yield* queue.offer(event("m2", { channelId: "c2" }))
      const third = yield* Effect.exit(queue.offer(event("m3")))
      expect(third).toStrictEqual(Exit.fail(new QueueFull({ partition: "guild:g1", capacity: 2, messageId: "m3" })))
      // Another partition has its own capacity.
      yield* queue.offer(event("m4", { guildId: "g2" }))
      const stats = yield* queue.stats
      expect(stats.rejected).toEqual({ full: 1, duplicate: 0 })
      expect(stats.partitions.map((p) => [p.key, p.pending])).toEqual([["guild:g1", 2], ["guild:g2", 1]])
      // A rejected id was never accepted: it is not a duplicate later.
      yield* setCapacity(h, 3)
      yield* queue.offer(event("m3"))
      expect((yield* queue.stats).rejected).toEqual({ full: 1, duplicate: 0 })
    }))

  it.scoped("capacity counts pending events, not the one in flight", () =>
    Effect.gen(function*() {
      const { queue } = yield* setup({ capacity: 2 })
      const p = yield* probe
      yield* Effect.forkScoped(queue.consume(p.consumer()))
      yield* queue.offer(event("m1"))
      const first = yield* p.next
      expect(first.event.messageId).toBe("m1")
      yield* queue.offer(event("m2"))
      yield* queue.offer(event("m3"))
      const fourth = yield* Effect.exit(queue.offer(event("m4")))
      expect(Exit.isFailure(fourth)).toBe(true)
      expect((yield* queue.stats).partitions[0]).toMatchObject({ pending: 2, inFlight: 1, capacity: 2 })
    }))

  it.effect("a capacity change applies to the next offer, without restart", () =>
    Effect.gen(function*() {
      const h = yield* setup({ capacity: 1 })
      yield* h.queue.offer(event("m1"))
      expect(Exit.isFailure(yield* Effect.exit(h.queue.offer(event("m2"))))).toBe(true)
      yield* setCapacity(h, 3)
      yield* h.queue.offer(event("m2"))
      yield* h.queue.offer(event("m3"))
      expect(Exit.isFailure(yield* Effect.exit(h.queue.offer(event("m4"))))).toBe(true)
      yield* setCapacity(h, 1)
      expect(Exit.isFailure(yield* Effect.exit(h.queue.offer(event("m5"))))).toBe(true)
      const stats = yield* h.queue.stats
      expect(stats.partitions[0]).toMatchObject({ pending: 3, capacity: 1 })
      expect(stats.rejected.full).toBe(3)
    }))

  it.effect("an overflow episode is logged once when it starts and once when it ends, with the count", () =>
    Effect.gen(function*() {
      const lines: Array<string> = []
      const capture = Logger.replace(
        Logger.defaultLogger,
        Logger.make(({ logLevel, message }) => {
          lines.push(`${logLevel.label} ${Array.isArray(message) ? message.join(" ") : String(message)}`)
        })
      )
      yield* Effect.gen(function*() {
        const h = yield* setup({ capacity: 1 })
        yield* h.queue.offer(event("m0"))
        for (let i = 1; i <= 25; i++) yield* Effect.exit(h.queue.offer(event(`m${i}`)))
        expect(lines).toEqual(["WARN queue full: rejecting new events"])
        yield* setCapacity(h, 2)
        yield* h.queue.offer(event("ok"))
        expect(lines).toEqual([
          "WARN queue full: rejecting new events",
          "WARN queue overflow ended: 25 event(s) rejected"
        ])
        // A second episode, ended by draining (clear) rather than by an accepted event.
        yield* Effect.exit(h.queue.offer(event("x1")))
        yield* Effect.exit(h.queue.offer(event("x2")))
        expect(yield* h.queue.clear(g1)).toBe(2)
        expect(lines.slice(2)).toEqual([
          "WARN queue full: rejecting new events",
          "WARN queue overflow ended: 2 event(s) rejected"
        ])
        expect((yield* h.queue.stats).rejected.full).toBe(27)
      }).pipe(Effect.provide(capture))
    }))

  it.effect("the dedup window stays bounded: 100 000 distinct ids keep at most its maximum", () =>
    Effect.gen(function*() {
      const { queue } = yield* setup({ capacity: 1_000_000 })
      for (let i = 0; i < 100_000; i++) {
        yield* queue.offer(event(`m${i}`, { channelId: `c${i % 100}` }))
        // Dropping the pending events keeps only the window to look at.
        if (i % 1000 === 999) yield* queue.clear(g1)
      }
      const stats = yield* queue.stats
      expect(stats.dedup.maxSize).toBe(10_000)
      expect(stats.dedup.size).toBeLessThanOrEqual(10_000)
      expect(stats.dedup.size).toBeGreaterThan(9_000)
      // The oldest ids have left the window; the last ones are still in it.
      yield* queue.offer(event("m0"))
      expect(yield* Effect.exit(queue.offer(event("m99999")))).toStrictEqual(
        Exit.fail(new DuplicateEvent({ messageId: "m99999" }))
      )
    }), 30_000)

  it.effect("the dedup window by age: after one hour a repeated id is accepted again", () =>
    Effect.gen(function*() {
      const { queue } = yield* setup()
      yield* queue.offer(event("m1"))
      yield* queue.clear(g1)
      yield* TestClock.adjust(Duration.minutes(59))
      expect(Exit.isFailure(yield* Effect.exit(queue.offer(event("m1"))))).toBe(true)
      yield* TestClock.adjust(Duration.minutes(1))
      yield* queue.offer(event("m1"))
      expect((yield* queue.stats).rejected.duplicate).toBe(1)
    }))

  it.effect("the dedup window by count, with a small maximum", () =>
    Effect.gen(function*() {
      const { queue } = yield* setup({ capacity: 100, options: { dedupMaxSize: 3 } })
      for (const id of ["a", "b", "c", "d"]) yield* queue.offer(event(id))
      yield* queue.clear(g1)
      expect((yield* queue.stats).dedup).toEqual({ size: 3, maxSize: 3 })
      yield* queue.offer(event("a")) // evicted by count
      expect(Exit.isFailure(yield* Effect.exit(queue.offer(event("d"))))).toBe(true)
    }))

  it.effect("a journal append failure fails the offer and accepts nothing", () =>
    Effect.gen(function*() {
      const h = yield* setup({ capacity: 1 })
      yield* Ref.set(h.failAppend, true)
      const exit = yield* Effect.exit(h.queue.offer(event("m1")))
      expect(Exit.isFailure(exit)).toBe(true)
      if (Exit.isFailure(exit)) expect(String(exit.cause)).toContain("StorageError")
      const stats = yield* h.queue.stats
      expect(stats.partitions.map((p) => p.pending)).toEqual([0])
      // Neither the id nor the slot was kept: the same event goes in once the journal works.
      yield* Ref.set(h.failAppend, false)
      yield* h.queue.offer(event("m1"))
      expect(yield* h.journal).toEqual(["append:m1"])
    }))

  it.scoped("restore puts events back in the given order, without journal or capacity check", () =>
    Effect.gen(function*() {
      const h = yield* setup({ capacity: 2 })
      yield* h.queue.restore([event("m3"), event("m1"), event("m2"), event("m9", { guildId: null, channelId: "dm1" })])
      expect(yield* h.journal).toEqual([])
      const stats = yield* h.queue.stats
      expect(stats.partitions.map((p) => [p.key, p.pending])).toEqual([["dm", 1], ["guild:g1", 3]])
      // Restored ids are in the dedup window.
      expect(Exit.isFailure(yield* Effect.exit(h.queue.offer(event("m1"))))).toBe(true)
      const p = yield* probe
      yield* Effect.forkScoped(h.queue.consume(p.consumer(() => ({ _tag: "Done" }))))
      const starts = [yield* p.next, yield* p.next, yield* p.next, yield* p.next]
      expect(ids(starts.filter((s) => s.event.channelId === "c1"))).toEqual(["m3", "m1", "m2"])
    }))

  it.scoped("stats: pending per partition and channel, in flight, oldest, rejected, paused", () =>
    Effect.gen(function*() {
      const h = yield* setup({ capacity: 3 })
      const p = yield* probe
      yield* TestClock.adjust(1000)
      yield* h.queue.offer(event("m1", { enqueuedAt: 1000 }))
      yield* Effect.forkScoped(h.queue.consume(p.consumer()))
      const first = yield* p.next
      expect(first.at).toBe(1000)
      yield* h.queue.offer(event("m2", { enqueuedAt: 1500 }))
      yield* h.queue.offer(event("m3", { channelId: "c2", agentId: "a1", enqueuedAt: 1200 }))
      yield* h.queue.offer(event("m4", { channelId: "c3", agentId: "a1", enqueuedAt: 1300 }))
      yield* Effect.exit(h.queue.offer(event("m5")))
      yield* Effect.exit(h.queue.offer(event("m2")))
      yield* h.queue.offer(event("d1", { guildId: null, channelId: "dm1", agentId: "dm-agent", enqueuedAt: 900 }))
      yield* h.queue.pause(g2)
      yield* settle
      const stats = yield* h.queue.stats
      expect(stats.rejected).toEqual({ full: 1, duplicate: 1 })
      expect(stats.globalPaused).toBe(false)
      expect(stats.dispatchStopped).toBe(false)
      expect(stats.inFlight).toEqual([
        {
          messageId: "d1",
          agentId: "dm-agent",
          channelId: "dm1",
          partition: "dm",
          startedAt: 1000,
          conversationMode: "shared",
          lane: "shared:dm-agent"
        },
        {
          messageId: "m1",
          agentId: "a1",
          channelId: "c1",
          partition: "guild:g1",
          startedAt: 1000,
          conversationMode: "shared",
          lane: "shared:a1"
        }
      ])
      expect(stats.agents).toEqual([{ agentId: "a1", inFlight: 1 }, { agentId: "dm-agent", inFlight: 1 }])
      expect(stats.partitions).toEqual([
        {
          partition: Partition.dm,
          key: "dm",
          pending: 0,
          inFlight: 1,
          capacity: 3,
          paused: false,
          oldestEnqueuedAt: null,
          channels: []
        },
        {
          partition: g1,
          key: "guild:g1",
          pending: 3,
          inFlight: 1,
          capacity: 3,
          paused: false,
          oldestEnqueuedAt: 1200,
          channels: [
            { channelId: "c1", pending: 1 },
            { channelId: "c2", pending: 1 },
            { channelId: "c3", pending: 1 }
          ]
        },
        {
          partition: g2,
          key: "guild:g2",
          pending: 0,
          inFlight: 0,
          capacity: 3,
          paused: true,
          oldestEnqueuedAt: null,
          channels: []
        }
      ])
    }))
})
