/**
 * The queue's pure parts, without the service: decide's ordering across agents under the global
 * cap, a lane left fresh when its spacing was not read, settle and spacing, the FIFO, and the
 * dedup window's undo.
 */
import { describe, expect, it } from "@effect/vitest"
import { HashMap, HashSet, Option } from "effect"
import type { QueuedEvent } from "../../../src/domain/Event.js"
import { type DedupLimits, emptyDedup, registerDedup, unregisterDedup } from "../../../src/services/queue/state/DedupWindow.js"
import { Fifo } from "../../../src/services/queue/state/Fifo.js"
import { restoreAll } from "../../../src/services/queue/state/Intake.js"
import { initialState, type Note, type State } from "../../../src/services/queue/state/QueueState.js"
import { decide, settle } from "../../../src/services/queue/state/Scheduling.js"
import { event } from "./harness.js"

const limits: DedupLimits = { maxSize: 100, maxAgeMs: 60_000 }

const restored = (events: ReadonlyArray<QueuedEvent>): State => restoreAll(initialState, events, 0, limits, [])

const decideAt = (s: State, now: number, spacing: Record<string, number>, concurrency = 16) => {
  const notes: Array<Note> = []
  const [decision, next] = decide(s, now, new Map(Object.entries(spacing)), concurrency, notes)
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
