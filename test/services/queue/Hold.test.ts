/**
 * EventQueue holds under TestClock: an event the dispatcher holds waits for `releaseHeld` (or its
 * fallback), goes in the same instant as the release, is journalled like a retry, and a release
 * that comes while the held dispatch is still running is not lost.
 */
import { describe, expect, it } from "@effect/vitest"
import { Duration, Effect, TestClock } from "effect"
import { DispatchOutcome } from "../../../src/services/queue/EventQueue.js"
import { event, g1, ids, probe, settle, setup } from "./harness.js"

const heldFor = (seconds: number) => DispatchOutcome.held(Duration.seconds(seconds))

describe("EventQueue holds", () => {
  it.scoped("a held event starts again in the same instant as the release, not at its fallback", () =>
    Effect.gen(function*() {
      const h = yield* setup({ spacing: "2 seconds" })
      const p = yield* probe
      yield* Effect.forkScoped(h.queue.consume(p.consumer()))
      yield* h.queue.offer(event("m1"))
      yield* h.queue.offer(event("m2"))
      yield* (yield* p.next).finish(heldFor(60))
      yield* TestClock.adjust(1_500)
      yield* settle
      expect(yield* p.drain).toEqual([])
      yield* h.queue.releaseHeld
      // Turned away 1.5 s ago: its start did not count toward the channel's 2 s spacing.
      const again = yield* p.next
      expect([again.event.messageId, again.event.attempts, again.at]).toEqual(["m1", 1, 1_500])
      expect((yield* h.journal).filter((line) => line.startsWith("update:"))).toEqual(["update:m1:1"])
      yield* again.finish()
      // m2 waits for the spacing after m1's real start.
      yield* TestClock.adjust(1_999)
      yield* settle
      expect(yield* p.drain).toEqual([])
      yield* TestClock.adjust(1)
      expect((yield* p.next).event.messageId).toBe("m2")
    }))

  it.scoped("without a release, a held event waits exactly its fallback", () =>
    Effect.gen(function*() {
      const h = yield* setup()
      const p = yield* probe
      yield* Effect.forkScoped(h.queue.consume(p.consumer()))
      yield* h.queue.offer(event("m1"))
      yield* (yield* p.next).finish(heldFor(60))
      yield* TestClock.adjust(59_999)
      yield* settle
      expect(yield* p.drain).toEqual([])
      yield* TestClock.adjust(1)
      const again = yield* p.next
      expect([again.event.messageId, again.at]).toEqual(["m1", 60_000])
    }))

  it.scoped("a release while the held dispatch is still running lifts the hold it ends with", () =>
    Effect.gen(function*() {
      const h = yield* setup()
      const p = yield* probe
      yield* Effect.forkScoped(h.queue.consume(p.consumer()))
      yield* h.queue.offer(event("m1"))
      const first = yield* p.next
      yield* TestClock.adjust(100)
      yield* h.queue.releaseHeld
      yield* first.finish(heldFor(60))
      const again = yield* p.next
      expect([again.event.messageId, again.at]).toEqual(["m1", 100])
      // The next hold, with no release after its start, applies.
      yield* again.finish(heldFor(60))
      yield* TestClock.adjust(30_000)
      yield* settle
      expect(yield* p.drain).toEqual([])
    }))

  it.scoped("a release leaves a paused partition paused; resume starts what was held, in channel order", () =>
    Effect.gen(function*() {
      const h = yield* setup()
      const p = yield* probe
      yield* Effect.forkScoped(h.queue.consume(p.consumer()))
      yield* h.queue.offer(event("m1"))
      yield* h.queue.offer(event("m2"))
      yield* (yield* p.next).finish(heldFor(60))
      yield* settle
      yield* h.queue.pause(g1)
      yield* h.queue.releaseHeld
      yield* settle
      expect(yield* p.drain).toEqual([])
      yield* h.queue.resume(g1)
      const starts = [yield* p.next]
      yield* starts[0]!.finish()
      starts.push(yield* p.next)
      expect(ids(starts)).toEqual(["m1", "m2"])
    }))
})
