/**
 * The queue's pure parts, without the service: decide's ordering across agents under the global
 * cap, a lane left fresh when its spacing was not read, settle and spacing, holds and their
 * release, the FIFO, and the dedup window's undo.
 */
import { describe, expect, it } from "@effect/vitest"
import { HashMap, HashSet, Option } from "effect"
import type { QueuedEvent } from "../../../src/domain/Event.js"
import { type DedupLimits, emptyDedup, registerDedup, unregisterDedup } from "../../../src/services/queue/state/DedupWindow.js"
import { Fifo } from "../../../src/services/queue/state/Fifo.js"
import { restoreAll } from "../../../src/services/queue/state/Intake.js"
import { initialState, type Note, type State } from "../../../src/services/queue/state/QueueState.js"
import { decide, releaseHeld, settle } from "../../../src/services/queue/state/Scheduling.js"
import { event } from "./harness.js"

const limits: DedupLimits = { maxSize: 100, maxAgeMs: 60_000 }

const restored = (events: ReadonlyArray<QueuedEvent>): State => restoreAll(initialState, events, 0, limits, [])

/** Decides at `now` with the given spacing per partition key (and a per-agent cap of 8, or `parallel`). */
const decideAt = (s: State, now: number, spacing: Record<string, number>, concurrency = 16, parallel = 8) => {
  const notes: Array<Note> = []
  const limits = new Map(Object.entries(spacing).map(([key, gap]) => [key, { spacing: gap, parallel }]))
  const [decision, next] = decide(s, now, limits, concurrency, notes)
  return { decision, next, started: decision.starts.map((start) => start.messageId) }
}

describe("queue state", () => {
  it("decide starts the oldest heads of free agents first, up to the cap, ties broken by arrival", () => {
    const s = restored([
      event("a1-300", { agentId: "a1", channelId: "c1", enqueuedAt: 300 }),
      event("a2-100", { agentId: "a2", channelId: "c2", enqueuedAt: 100 }),
      event("a3-200", { agentId: "a3", channelId: "c3", enqueuedAt: 200 }),
      event("a4-100", { agentId: "a4", channelId: "c4", enqueuedAt: 100 })
    ])
    const { decision, next, started } = decideAt(s, 1000, { "guild:g1": 0 }, 3)
    expect(started).toEqual(["a2-100", "a4-100", "a3-200"])
    expect(decision.wakeAt).toBe(null)
    expect(HashMap.size(next.running)).toBe(3)
    // The cap is reached: the next decision starts nothing until a run settles.
    expect(decideAt(next, 1000, {}, 3).started).toEqual([])
  })

  it("a lane whose partition's spacing was not read stays fresh and asks for a decision at once", () => {
    const s = restored([
      event("g1-m", { guildId: "g1", agentId: "a1", channelId: "c1" }),
      event("g2-m", { guildId: "g2", agentId: "a2", channelId: "c2" })
    ])
    const { decision, next, started } = decideAt(s, 50, { "guild:g1": 0 })
    expect(started).toEqual(["g1-m"])
    expect(decision.wakeAt).toBe(50)
    expect(HashSet.size(next.index.fresh)).toBe(1)
    expect(decideAt(next, 50, { "guild:g2": 0 }).started).toEqual(["g2-m"])
  })

  it("after a run settles, the channel's next start waits for its spacing, start to start", () => {
    const s = restored([event("m1"), event("m2")])
    const first = decideAt(s, 0, { "guild:g1": 1000 })
    expect(first.started).toEqual(["m1"])
    const [waiters, settled] = settle(first.next, "m1", { _tag: "Finished" })
    expect(waiters).toEqual([])
    const early = decideAt(settled, 400, { "guild:g1": 1000 })
    expect(early.started).toEqual([])
    expect(early.decision.wakeAt).toBe(1000)
    expect(decideAt(early.next, 1000, {}).started).toEqual(["m2"])
  })

  it("a requeued event goes back to the front of its channel and waits for its notBefore", () => {
    const s = restored([event("m1"), event("m2")])
    const first = decideAt(s, 0, { "guild:g1": 0 })
    const retried = { ...event("m1"), attempts: 1 }
    const [, settled] = settle(first.next, "m1", { _tag: "Requeue", event: retried, notBefore: 300 })
    const early = decideAt(settled, 100, { "guild:g1": 0 })
    expect(early.started).toEqual([])
    expect(early.decision.wakeAt).toBe(300)
    const later = decideAt(early.next, 300, {})
    expect(later.started).toEqual(["m1"])
    expect(later.decision.starts[0]?.event.attempts).toBe(1)
  })

  it("a held event waits for its fallback; a release makes it due at once, its turned-away start not counting", () => {
    const s = restored([event("m1"), event("m2")])
    const first = decideAt(s, 1000, { "guild:g1": 2000 })
    const held = { ...event("m1"), attempts: 1 }
    const [, settled] = settle(first.next, "m1", { _tag: "Hold", event: held, fallbackAt: 61_000 })
    const waiting = decideAt(settled, 1500, { "guild:g1": 2000 })
    expect(waiting.started).toEqual([])
    expect(waiting.decision.wakeAt).toBe(61_000)
    // Released half a second after it was turned away: no spacing to wait for, it never ran.
    const released = releaseHeld(waiting.next)
    expect(released.releases).toBe(1)
    const again = decideAt(released, 1500, { "guild:g1": 2000 })
    expect(again.started).toEqual(["m1"])
    expect(again.decision.starts[0]?.event.attempts).toBe(1)
    // Its real start counts: m2 waits for the spacing after it.
    const [, done] = settle(again.next, "m1", { _tag: "Finished" })
    expect(decideAt(done, 3000, { "guild:g1": 2000 }).decision.wakeAt).toBe(3500)
  })

  it("a hold settled by a run that started before a release does not apply (no lost wake-up)", () => {
    const s = restored([event("m1")])
    const first = decideAt(s, 0, { "guild:g1": 0 })
    // The release comes while m1's dispatch is still being turned away.
    const releasedMeanwhile = releaseHeld(first.next)
    const [, settled] = settle(releasedMeanwhile, "m1", { _tag: "Hold", event: event("m1"), fallbackAt: 60_000 })
    expect(decideAt(settled, 0, { "guild:g1": 0 }).started).toEqual(["m1"])
    // Without a release in between, the same hold applies.
    const [, heldState] = settle(first.next, "m1", { _tag: "Hold", event: event("m1"), fallbackAt: 60_000 })
    expect(decideAt(heldState, 0, { "guild:g1": 0 }).started).toEqual([])
    expect(decideAt(heldState, 60_000, { "guild:g1": 0 }).started).toEqual(["m1"])
  })

  it("a release lifts holds only: a plain retry delay stays", () => {
    const s = restored([event("a", { channelId: "c1", agentId: "a1" }), event("b", { channelId: "c2", agentId: "a2" })])
    const first = decideAt(s, 0, { "guild:g1": 0 })
    expect(first.started).toEqual(["a", "b"])
    const [, one] = settle(first.next, "a", {
      _tag: "Hold",
      event: event("a", { channelId: "c1", agentId: "a1" }),
      fallbackAt: 60_000
    })
    const [, both] = settle(one, "b", {
      _tag: "Requeue",
      event: event("b", { channelId: "c2", agentId: "a2" }),
      notBefore: 5_000
    })
    const after = decideAt(releaseHeld(both), 100, { "guild:g1": 0 })
    expect(after.started).toEqual(["a"])
    expect(after.decision.wakeAt).toBe(5_000)
  })

  it("the FIFO keeps its order across pushes, a push to the front and pops", () => {
    let q = Fifo.empty<number>()
    for (const n of [1, 2, 3]) q = Fifo.push(q, n)
    q = Fifo.pop(q)
    q = Fifo.pushFront(q, 0)
    q = Fifo.push(q, 4)
    expect([Fifo.peek(q), q.size, Fifo.toArray(q)]).toEqual([0, 4, [0, 2, 3, 4]])
    expect(Fifo.toArray(Fifo.pop(Fifo.pop(q)))).toEqual([3, 4])
  })

  it("undoing a dedup registration forgets that one only, not a later one of the same id", () => {
    const once = registerDedup(emptyDedup, "m1", 1, 0, limits)
    expect(HashMap.has(unregisterDedup(once, "m1", 1).seen, "m1")).toBe(false)
    const twice = registerDedup(once, "m1", 2, 10, limits)
    expect(HashMap.get(unregisterDedup(twice, "m1", 1).seen, "m1")).toEqual(Option.some(2))
  })
})
