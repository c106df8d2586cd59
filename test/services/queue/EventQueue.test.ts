/** EventQueue dispatch: FIFO, spacing, one run per agent, the global cap, pause, clear, retry, shutdown. */
import { describe, expect, it } from "@effect/vitest"
import { Clock, Deferred, Duration, Effect, Fiber, Ref, TestClock } from "effect"
import type { QueuedEvent } from "../../../src/domain/Event.js"
import { DispatchOutcome } from "../../../src/services/queue/EventQueue.js"
import { event, g1, g2, ids, probe, settle, setup } from "./harness.js"

const done = () => DispatchOutcome.done

describe("EventQueue dispatch", () => {
  it.scoped("events of a channel are dispatched in FIFO order, and each is removed from the journal", () =>
    Effect.gen(function*() {
      const h = yield* setup()
      const p = yield* probe
      for (let i = 1; i <= 5; i++) yield* h.queue.offer(event(`m${i}`))
      yield* Effect.forkScoped(h.queue.consume(p.consumer(done)))
      const starts = yield* Effect.forEach([1, 2, 3, 4, 5], () => p.next)
      expect(ids(starts)).toEqual(["m1", "m2", "m3", "m4", "m5"])
      yield* h.queue.awaitIdle
      yield* settle
      const journal = yield* h.journal
      expect(journal.filter((line) => line.startsWith("remove:"))).toEqual([
        "remove:m1",
        "remove:m2",
        "remove:m3",
        "remove:m4",
        "remove:m5"
      ])
      expect((yield* h.queue.stats).partitions[0]?.pending).toBe(0)
    }))

  it.scoped("a channel's dispatches start exactly `spacing` apart (start to start)", () =>
    Effect.gen(function*() {
      const h = yield* setup({ spacing: "2 seconds" })
      const p = yield* probe
      yield* Effect.forkScoped(h.queue.consume(p.consumer(done)))
      yield* h.queue.offer(event("m1"))
      yield* h.queue.offer(event("m2"))
      yield* h.queue.offer(event("m3"))
      expect((yield* p.next).at).toBe(0)
      yield* TestClock.adjust(1999)
      yield* settle
      expect(ids(yield* p.drain)).toEqual([])
      yield* TestClock.adjust(1)
      const second = yield* p.next
      expect([second.event.messageId, second.at]).toEqual(["m2", 2000])
      yield* TestClock.adjust(1999)
      yield* settle
      expect(ids(yield* p.drain)).toEqual([])
      yield* TestClock.adjust(1)
      const third = yield* p.next
      expect([third.event.messageId, third.at]).toEqual(["m3", 4000])
    }))

  it.scoped("spacing is measured from the start, so a long run does not add to it", () =>
    Effect.gen(function*() {
      const h = yield* setup({ spacing: "2 seconds" })
      const p = yield* probe
      yield* Effect.forkScoped(h.queue.consume(p.consumer()))
      yield* h.queue.offer(event("m1"))
      yield* h.queue.offer(event("m2"))
      const first = yield* p.next
      yield* TestClock.adjust(5000)
      yield* first.finish()
      // m2 may start as soon as m1 is done: 5 s since m1 started is more than the spacing.
      expect((yield* p.next).at).toBe(5000)
    }))

  it.scoped("a spacing change is read when deciding", () =>
    Effect.gen(function*() {
      const h = yield* setup({ spacing: "10 seconds" })
      const p = yield* probe
      yield* Effect.forkScoped(h.queue.consume(p.consumer(done)))
      yield* h.queue.offer(event("m1"))
      yield* h.queue.offer(event("m2"))
      yield* p.next
      yield* Ref.update(h.limits, (all) => ({ ...all, default: { ...all["default"]!, spacing: Duration.seconds(1) } }))
      yield* h.queue.limitsChanged
      yield* TestClock.adjust(1000)
      expect((yield* p.next).at).toBe(1000)
    }))

  it.scoped("a spacing change applies to channels already waiting, even one whose time had come", () =>
    Effect.gen(function*() {
      const h = yield* setup({ spacing: "1 second" })
      const p = yield* probe
      yield* Effect.forkScoped(h.queue.consume(p.consumer()))
      // c1 runs at 0 and finishes; then c2 takes the agent, and c1's next event waits for it.
      yield* h.queue.offer(event("a1", { channelId: "c1" }))
      yield* (yield* p.next).finish()
      yield* h.queue.offer(event("b1", { channelId: "c2" }))
      yield* h.queue.offer(event("a2", { channelId: "c1" }))
      const b1 = yield* p.next
      expect(b1.event.messageId).toBe("b1")
      // At 1 s a2's spacing has passed, but its agent is busy.
      yield* TestClock.adjust(1500)
      yield* settle
      expect(ids(yield* p.drain)).toEqual([])
      // The spacing grows to 5 s: a2 now waits until 5 s after a1's start, agent free or not.
      yield* Ref.update(h.limits, (all) => ({ ...all, default: { ...all["default"]!, spacing: Duration.seconds(5) } }))
      yield* h.queue.limitsChanged
      yield* TestClock.adjust(500)
      yield* b1.finish()
      yield* settle
      expect(yield* p.drain).toEqual([])
      yield* TestClock.adjust(2999)
      yield* settle
      expect(yield* p.drain).toEqual([])
      yield* TestClock.adjust(1)
      const a2 = yield* p.next
      expect([a2.event.messageId, a2.at]).toEqual(["a2", 5000])
    }))

  it.scoped("a channel waiting for its spacing, then paused, starts only once resumed", () =>
    Effect.gen(function*() {
      const h = yield* setup({ spacing: "1 second" })
      const p = yield* probe
      yield* Effect.forkScoped(h.queue.consume(p.consumer()))
      yield* h.queue.offer(event("m1"))
      yield* (yield* p.next).finish()
      yield* h.queue.offer(event("m2"))
      yield* h.queue.pause(g1)
      yield* TestClock.adjust(5000)
      yield* settle
      expect(yield* p.drain).toEqual([])
      yield* h.queue.resume(g1)
      const m2 = yield* p.next
      expect([m2.event.messageId, m2.at]).toEqual(["m2", 5000])
    }))

  it.scoped("channels of different agents are spaced independently", () =>
    Effect.gen(function*() {
      const h = yield* setup({ spacing: "1 second" })
      const p = yield* probe
      yield* h.queue.offer(event("a", { channelId: "c1", agentId: "a1" }))
      yield* h.queue.offer(event("b", { channelId: "c2", agentId: "a2" }))
      yield* h.queue.offer(event("a2", { channelId: "c1", agentId: "a1" }))
      yield* h.queue.offer(event("b2", { channelId: "c2", agentId: "a2" }))
      yield* Effect.forkScoped(h.queue.consume(p.consumer(done)))
      const first = [yield* p.next, yield* p.next]
      expect(first.map((s) => [s.event.messageId, s.at]).sort()).toEqual([["a", 0], ["b", 0]])
      yield* TestClock.adjust(999)
      yield* settle
      expect(yield* p.drain).toEqual([])
      yield* TestClock.adjust(1)
      const second = [yield* p.next, yield* p.next]
      expect(second.map((s) => [s.event.messageId, s.at]).sort()).toEqual([["a2", 1000], ["b2", 1000]])
    }))

  it.scoped("one agent never runs twice at once, across many events and channels", () =>
    Effect.gen(function*() {
      const h = yield* setup({ capacity: 200 })
      const running = yield* Ref.make(0)
      const maxRunning = yield* Ref.make(0)
      const count = yield* Ref.make(0)
      const all = yield* Deferred.make<void>()
      const consumer = (_: QueuedEvent) =>
        Effect.gen(function*() {
          const now = yield* Ref.updateAndGet(running, (n) => n + 1)
          yield* Ref.update(maxRunning, (m) => Math.max(m, now))
          yield* Effect.repeatN(Effect.yieldNow(), 5)
          yield* Ref.update(running, (n) => n - 1)
          if ((yield* Ref.updateAndGet(count, (n) => n + 1)) === 60) yield* Deferred.succeed(all, undefined)
          return DispatchOutcome.done
        })
      for (let i = 0; i < 60; i++) yield* h.queue.offer(event(`m${i}`, { channelId: `c${i % 6}` }))
      yield* Effect.forkScoped(h.queue.consume(consumer))
      yield* Deferred.await(all)
      expect(yield* Ref.get(maxRunning)).toBe(1)
    }))

  it.scoped("two agents run in parallel", () =>
    Effect.gen(function*() {
      const h = yield* setup()
      const p = yield* probe
      yield* Effect.forkScoped(h.queue.consume(p.consumer()))
      yield* h.queue.offer(event("x", { channelId: "c1", agentId: "a1" }))
      yield* h.queue.offer(event("y", { guildId: "g2", channelId: "c9", agentId: "a2" }))
      const both = [yield* p.next, yield* p.next]
      expect(ids(both).sort()).toEqual(["x", "y"])
      expect((yield* h.queue.stats).inFlight.map((r) => r.agentId)).toEqual(["a1", "a2"])
    }))

  it.scoped("the same agent in two channels waits for its run to end", () =>
    Effect.gen(function*() {
      const h = yield* setup()
      const p = yield* probe
      yield* Effect.forkScoped(h.queue.consume(p.consumer()))
      yield* h.queue.offer(event("x", { channelId: "c1" }))
      yield* h.queue.offer(event("y", { channelId: "c2" }))
      const first = yield* p.next
      yield* settle
      expect(yield* p.drain).toEqual([])
      yield* first.finish()
      expect((yield* p.next).event.messageId).toBe("y")
    }))

  it.scoped("the global cap bounds runs in flight", () =>
    Effect.gen(function*() {
      const h = yield* setup({ options: { concurrency: 2 } })
      const p = yield* probe
      for (let i = 1; i <= 5; i++) yield* h.queue.offer(event(`m${i}`, { channelId: `c${i}`, agentId: `a${i}`, enqueuedAt: i }))
      yield* Effect.forkScoped(h.queue.consume(p.consumer()))
      const first = [yield* p.next, yield* p.next]
      yield* settle
      expect(yield* p.drain).toEqual([])
      expect((yield* h.queue.stats).inFlight.length).toBe(2)
      expect(ids(first)).toEqual(["m1", "m2"])
      yield* first[0]!.finish()
      expect((yield* p.next).event.messageId).toBe("m3")
      yield* settle
      expect(yield* p.drain).toEqual([])
    }))

  it.scoped("among ready channels the oldest head goes first", () =>
    Effect.gen(function*() {
      const h = yield* setup()
      const p = yield* probe
      // One agent, so the channels take turns: the order of turns is the order of age.
      const ages = [700, 100, 500, 300, 800, 200, 600, 400]
      for (const [i, age] of ages.entries()) yield* h.queue.offer(event(`t${age}`, { channelId: `c${i}`, enqueuedAt: age }))
      yield* Effect.forkScoped(h.queue.consume(p.consumer(done)))
      const starts = yield* Effect.forEach(ages, () => p.next)
      expect(ids(starts)).toEqual([...ages].sort((a, b) => a - b).map((age) => `t${age}`))
    }))

  it.scoped("a paused partition keeps accepting events and dispatches them on resume", () =>
    Effect.gen(function*() {
      const h = yield* setup()
      const p = yield* probe
      yield* Effect.forkScoped(h.queue.consume(p.consumer(done)))
      yield* h.queue.pause(g1)
      expect(yield* h.queue.isPaused(g1)).toBe(true)
      expect(yield* h.queue.isPaused(g2)).toBe(false)
      yield* h.queue.offer(event("m1"))
      yield* h.queue.offer(event("m2", { channelId: "c2" }))
      yield* h.queue.offer(event("other", { guildId: "g2", agentId: "a2" }))
      expect((yield* p.next).event.messageId).toBe("other")
      yield* settle
      expect(yield* p.drain).toEqual([])
      expect((yield* h.queue.stats).partitions.find((s) => s.key === "guild:g1")).toMatchObject({ pending: 2, paused: true })
      yield* h.queue.resume(g1)
      expect(ids([yield* p.next, yield* p.next])).toEqual(["m1", "m2"])
    }))

  it.scoped("a global pause holds every partition; resume drains them", () =>
    Effect.gen(function*() {
      const h = yield* setup()
      const p = yield* probe
      yield* Effect.forkScoped(h.queue.consume(p.consumer(done)))
      yield* h.queue.pause("global")
      yield* h.queue.offer(event("m1"))
      yield* h.queue.offer(event("dm", { guildId: null, channelId: "dm1", agentId: "a2" }))
      yield* settle
      expect(yield* p.drain).toEqual([])
      const stats = yield* h.queue.stats
      expect(stats.globalPaused).toBe(true)
      expect(stats.partitions.map((s) => s.pending)).toEqual([1, 1])
      yield* h.queue.resume("global")
      expect(ids([yield* p.next, yield* p.next]).sort()).toEqual(["dm", "m1"])
      expect(yield* h.queue.isPaused("global")).toBe(false)
    }))

  it.scoped("clear drops a partition's pending events, not the one in flight, and says how many", () =>
    Effect.gen(function*() {
      const h = yield* setup()
      const p = yield* probe
      yield* Effect.forkScoped(h.queue.consume(p.consumer()))
      yield* h.queue.offer(event("m1"))
      const first = yield* p.next
      yield* h.queue.offer(event("m2"))
      yield* h.queue.offer(event("m3", { channelId: "c2" }))
      yield* h.queue.offer(event("keep", { guildId: "g2", agentId: "a2" }))
      const kept = yield* p.next
      expect(kept.event.messageId).toBe("keep")
      yield* h.queue.offer(event("keep2", { guildId: "g2", agentId: "a2" }))
      expect(yield* h.queue.clear(g1)).toBe(2)
      expect((yield* h.journal).filter((l) => l.startsWith("remove:"))).toEqual(["remove:m2", "remove:m3"])
      yield* first.finish()
      yield* kept.finish()
      expect((yield* p.next).event.messageId).toBe("keep2")
      yield* settle
      expect(yield* p.drain).toEqual([])
      const stats = yield* h.queue.stats
      expect(stats.partitions.map((s) => [s.key, s.pending])).toEqual([["guild:g1", 0], ["guild:g2", 0]])
      expect(yield* h.queue.clear(g1)).toBe(0)
    }))

  it.scoped("Retry puts the event back at the front of its channel, with attempts+1, after `after`", () =>
    Effect.gen(function*() {
      const h = yield* setup({ spacing: "1 second" })
      const p = yield* probe
      yield* Effect.forkScoped(h.queue.consume(p.consumer()))
      yield* h.queue.offer(event("m1"))
      yield* h.queue.offer(event("m2"))
      const first = yield* p.next
      yield* first.finish(DispatchOutcome.retry("5 seconds"))
      yield* settle
      expect(yield* h.journal).toContain("update:m1:1")
      expect((yield* h.queue.stats).partitions[0]?.pending).toBe(2)
      yield* TestClock.adjust(4999)
      yield* settle
      expect(yield* p.drain).toEqual([])
      yield* TestClock.adjust(1)
      const again = yield* p.next
      expect([again.event.messageId, again.event.attempts, again.at]).toEqual(["m1", 1, 5000])
      yield* again.finish()
      yield* TestClock.adjust(999)
      yield* settle
      expect(yield* p.drain).toEqual([])
      yield* TestClock.adjust(1)
      const next = yield* p.next
      expect([next.event.messageId, next.at]).toEqual(["m2", 6000])
    }))

  it.scoped("a consumer that fails or dies does not stop the loop; its event counts as done", () =>
    Effect.gen(function*() {
      const h = yield* setup()
      const seen = yield* Ref.make<ReadonlyArray<string>>([])
      const last = yield* Deferred.make<void>()
      const consumer = (e: QueuedEvent) =>
        Effect.gen(function*() {
          yield* Ref.update(seen, (s) => [...s, e.messageId])
          if (e.messageId === "boom") return yield* Effect.die(new Error("consumer bug"))
          if (e.messageId === "throw") throw new Error("thrown")
          yield* Deferred.succeed(last, undefined)
          return DispatchOutcome.done
        })
      yield* h.queue.offer(event("boom"))
      yield* h.queue.offer(event("throw"))
      yield* h.queue.offer(event("fine"))
      yield* Effect.forkScoped(h.queue.consume(consumer))
      yield* Deferred.await(last)
      yield* h.queue.awaitIdle
      expect(yield* Ref.get(seen)).toEqual(["boom", "throw", "fine"])
      const removed = (yield* h.journal).filter((l) => l.startsWith("remove:"))
      expect(removed).toEqual(["remove:boom", "remove:throw", "remove:fine"])
    }))

  it.scoped("stopDispatch starts nothing new; awaitIdle waits for the runs in flight", () =>
    Effect.gen(function*() {
      const h = yield* setup()
      const p = yield* probe
      yield* Effect.forkScoped(h.queue.consume(p.consumer()))
      yield* h.queue.offer(event("m1"))
      yield* h.queue.offer(event("x", { channelId: "c2", agentId: "a2" }))
      const running = [yield* p.next, yield* p.next]
      yield* h.queue.offer(event("m2"))
      yield* h.queue.stopDispatch
      const idle = yield* Effect.fork(h.queue.awaitIdle)
      yield* running[0]!.finish()
      yield* settle
      expect(idle.unsafePoll()).toBeNull()
      yield* running[1]!.finish()
      yield* Fiber.join(idle)
      yield* settle
      expect(yield* p.drain).toEqual([])
      const stats = yield* h.queue.stats
      expect(stats.dispatchStopped).toBe(true)
      expect(stats.inFlight).toEqual([])
      expect(stats.partitions[0]?.pending).toBe(1)
      // Intake goes on.
      yield* h.queue.offer(event("m3"))
    }))

  it.scoped("awaitIdle returns at once when nothing is in flight", () =>
    Effect.gen(function*() {
      const h = yield* setup()
      yield* h.queue.offer(event("m1"))
      yield* h.queue.awaitIdle
    }))

  it.scoped("interrupting the loop interrupts the consumers and keeps their events pending", () =>
    Effect.gen(function*() {
      const h = yield* setup()
      const p = yield* probe
      const interrupted = yield* Deferred.make<void>()
      const consumer = (e: QueuedEvent) =>
        p.consumer()(e).pipe(Effect.onInterrupt(() => Deferred.succeed(interrupted, undefined)))
      yield* h.queue.offer(event("m1"))
      const loop = yield* Effect.fork(h.queue.consume(consumer))
      expect((yield* p.next).event.messageId).toBe("m1")
      yield* Fiber.interrupt(loop)
      yield* Deferred.await(interrupted)
      const stats = yield* h.queue.stats
      expect(stats.inFlight).toEqual([])
      expect(stats.partitions[0]?.pending).toBe(1)
      expect((yield* h.journal).filter((l) => l.startsWith("remove:"))).toEqual([])
      // A new loop picks it up again.
      yield* Effect.forkScoped(h.queue.consume(p.consumer(done)))
      const again = yield* p.next
      expect([again.event.messageId, again.event.attempts]).toEqual(["m1", 0])
    }))

  it.scoped("concurrent producers and a consumer lose nothing: every event is consumed exactly once", () =>
    Effect.gen(function*() {
      const h = yield* setup({ capacity: 2000, options: { concurrency: 4 } })
      const consumed = yield* Ref.make<ReadonlyArray<string>>([])
      const perAgent = yield* Ref.make<Record<string, number>>({})
      const overlap = yield* Ref.make(false)
      const all = yield* Deferred.make<void>()
      const consumer = (e: QueuedEvent) =>
        Effect.gen(function*() {
          const before = yield* Ref.modify(perAgent, (m) => [m[e.agentId] ?? 0, { ...m, [e.agentId]: (m[e.agentId] ?? 0) + 1 }])
          if (before > 0) yield* Ref.set(overlap, true)
          yield* Effect.yieldNow()
          yield* Ref.update(perAgent, (m) => ({ ...m, [e.agentId]: (m[e.agentId] ?? 1) - 1 }))
          const total = yield* Ref.modify(consumed, (s) => [s.length + 1, [...s, e.messageId]])
          if (total === 1000) yield* Deferred.succeed(all, undefined)
          return DispatchOutcome.done
        })
      yield* Effect.forkScoped(h.queue.consume(consumer))
      const now = yield* Clock.currentTimeMillis
      yield* Effect.forEach(
        Array.from({ length: 10 }, (_, producer) => producer),
        (producer) =>
          Effect.forEach(
            Array.from({ length: 100 }, (_, i) => i),
            (i) =>
              Effect.zipRight(
                h.queue.offer(
                  event(`p${producer}-${i}`, {
                    channelId: `c${(producer * 7 + i) % 20}`,
                    agentId: `a${((producer * 7 + i) % 20) % 5}`,
                    enqueuedAt: now
                  })
                ),
                Effect.yieldNow()
              ),
            { discard: true }
          ),
        { concurrency: "unbounded", discard: true }
      )
      yield* Deferred.await(all)
      yield* h.queue.awaitIdle
      const list = yield* Ref.get(consumed)
      expect(list.length).toBe(1000)
      expect(new Set(list).size).toBe(1000)
      expect(yield* Ref.get(overlap)).toBe(false)
      // Per channel, FIFO held for each producer's own events.
      const stats = yield* h.queue.stats
      expect(stats.partitions[0]?.pending).toBe(0)
      expect(stats.rejected).toEqual({ full: 0, duplicate: 0 })
      for (let producer = 0; producer < 10; producer++) {
        const mine = list.filter((id) => id.startsWith(`p${producer}-`)).map((id) => Number(id.split("-")[1]))
        for (let c = 0; c < 20; c++) {
          const lane = mine.filter((i) => (producer * 7 + i) % 20 === c)
          expect(lane).toEqual([...lane].sort((a, b) => a - b))
        }
      }
    }))
})
