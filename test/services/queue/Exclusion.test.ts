/**
 * The queue's exclusion as plain functions: each run holds an exclusion key (its channel's lane in
 * `channel` mode, `shared:<agent>` in `shared` mode or without a mode), an agent's runs are capped
 * by the `parallel` of the partition a head starts in, oldest heads first; `settle` frees both.
 */
import { describe, expect, it } from "@effect/vitest"
import { HashMap, HashSet, Option } from "effect"
import type { QueuedEvent } from "../../../src/domain/Event.js"
import type { DedupLimits } from "../../../src/services/queue/state/DedupWindow.js"
import { restoreAll } from "../../../src/services/queue/state/Intake.js"
import { exclusionKeyOf, initialState, type State } from "../../../src/services/queue/state/QueueState.js"
import { decide, type ScheduleLimits, settle } from "../../../src/services/queue/state/Scheduling.js"
import { event } from "./harness.js"

const dedup: DedupLimits = { maxSize: 100, maxAgeMs: 60_000 }

const restored = (events: ReadonlyArray<QueuedEvent>): State => restoreAll(initialState, events, 0, dedup, [])

const at = (limits: Record<string, ScheduleLimits>) => new Map(Object.entries(limits))

/** Decides at time 0 with the given limits per partition key. */
const decideWith = (s: State, limits: Record<string, ScheduleLimits>, concurrency = 16) => {
  const [decision, next] = decide(s, 0, at(limits), concurrency, [])
  return { next, started: decision.starts.map((start) => start.messageId), starts: decision.starts }
}

const g1 = (parallel: number) => ({ "guild:g1": { spacing: 0, parallel } })

const inChannel = (id: string, over: Partial<QueuedEvent> = {}) => event(id, { conversationMode: "channel", ...over })

describe("queue exclusion", () => {
  it("the exclusion key: the channel's lane in channel mode, the agent in shared mode or without a mode", () => {
    expect(exclusionKeyOf(inChannel("m"), "guild:g1/c1")).toBe("guild:g1/c1")
    expect(exclusionKeyOf(event("m", { conversationMode: "shared" }), "guild:g1/c1")).toBe("shared:a1")
    expect(exclusionKeyOf(event("m"), "dm/d1")).toBe("shared:a1")
  })

  it("channel mode: an agent's oldest heads start, one per channel, up to its partition's cap", () => {
    const s = restored([
      inChannel("c1-old", { channelId: "c1", enqueuedAt: 10 }),
      inChannel("c1-new", { channelId: "c1", enqueuedAt: 20 }),
      inChannel("c2", { channelId: "c2", enqueuedAt: 40 }),
      inChannel("c3", { channelId: "c3", enqueuedAt: 30 }),
      inChannel("c4", { channelId: "c4", enqueuedAt: 50 })
    ])
    const { next, started, starts } = decideWith(s, g1(3))
    expect(started).toEqual(["c1-old", "c3", "c2"])
    expect(starts.map((run) => [run.exclusionKey, run.conversationMode])).toEqual([
      ["guild:g1/c1", "channel"],
      ["guild:g1/c3", "channel"],
      ["guild:g1/c2", "channel"]
    ])
    expect(HashMap.get(next.agentRuns, "a1")).toEqual(Option.some(3))
    // At the cap: nothing more until a run settles; then the oldest head whose channel is free.
    expect(decideWith(next, {}).started).toEqual([])
    // c4 waits, due (c1's next event waits for c1's run): the index counts it in its partition.
    const due = HashMap.get(next.index.due, "a1")
    expect(Option.map(due, (lanes) => HashMap.toEntries(lanes.partitions))).toEqual(Option.some([["guild:g1", 1]]))
    const [, c2Done] = settle(next, "c2", { _tag: "Finished" })
    const after = decideWith(c2Done, g1(3))
    expect(after.started).toEqual(["c4"])
    const [, c1Done] = settle(after.next, "c1-old", { _tag: "Finished" })
    expect(decideWith(c1Done, g1(3)).started).toEqual(["c1-new"])
  })

  it("shared mode: one run per agent across channels and guilds, the oldest head first", () => {
    const s = restored([
      event("g2", { guildId: "g2", channelId: "c9", conversationMode: "shared", enqueuedAt: 5 }),
      event("c1", { channelId: "c1", enqueuedAt: 10 }),
      event("c2", { channelId: "c2", conversationMode: "shared", enqueuedAt: 20 })
    ])
    const limits = { ...g1(8), "guild:g2": { spacing: 0, parallel: 8 } }
    const first = decideWith(s, limits)
    expect(first.started).toEqual(["g2"])
    expect(HashSet.toValues(first.next.busyLanes)).toEqual(["shared:a1"])
    expect(decideWith(first.next, {}).started).toEqual([])
    const [, settled] = settle(first.next, "g2", { _tag: "Finished" })
    expect(HashSet.size(settled.busyLanes)).toBe(0)
    expect(HashMap.size(settled.agentRuns)).toBe(0)
    expect(decideWith(settled, {}).started).toEqual(["c1"])
  })

  it("a busy shared lane does not hold back the agent's channel-mode heads; the cap counts both", () => {
    const s = restored([
      event("s1", { channelId: "c1", conversationMode: "shared", enqueuedAt: 10 }),
      event("s2", { channelId: "c2", conversationMode: "shared", enqueuedAt: 20 }),
      inChannel("k1", { guildId: "g2", channelId: "c3", enqueuedAt: 30 }),
      inChannel("k2", { guildId: "g2", channelId: "c4", enqueuedAt: 40 }),
      inChannel("k3", { guildId: "g2", channelId: "c5", enqueuedAt: 50 })
    ])
    const limits = { ...g1(3), "guild:g2": { spacing: 0, parallel: 3 } }
    const { next, started } = decideWith(s, limits)
    expect(started).toEqual(["s1", "k1", "k2"])
    // s1 ends: its shared lane is free again, and s2, older than k3, takes the free place.
    const [, settled] = settle(next, "s1", { _tag: "Finished" })
    expect(decideWith(settled, {}).started).toEqual(["s2"])
  })

  it("the cap is the one of the partition a head starts in: an agent bound in two guilds", () => {
    const s = restored([
      inChannel("g1-a", { channelId: "c1", enqueuedAt: 10 }),
      inChannel("g1-b", { channelId: "c2", enqueuedAt: 20 }),
      inChannel("g2-a", { guildId: "g2", channelId: "c3", enqueuedAt: 30 }),
      inChannel("g2-b", { guildId: "g2", channelId: "c4", enqueuedAt: 40 })
    ])
    // g1 allows one run of the agent, g2 three: g1's second head waits, g2's heads start.
    const { started } = decideWith(s, { ...g1(1), "guild:g2": { spacing: 0, parallel: 3 } })
    expect(started).toEqual(["g1-a", "g2-a", "g2-b"])
  })

  it("oldest first across agents up to the global cap, each agent within its own cap", () => {
    const s = restored([
      inChannel("a-1", { channelId: "c1", enqueuedAt: 10 }),
      inChannel("a-2", { channelId: "c2", enqueuedAt: 20 }),
      inChannel("a-3", { channelId: "c3", enqueuedAt: 30 }),
      inChannel("b-1", { agentId: "a2", channelId: "c4", enqueuedAt: 25 }),
      inChannel("b-2", { agentId: "a2", channelId: "c5", enqueuedAt: 35 })
    ])
    expect(decideWith(s, g1(2), 3).started).toEqual(["a-1", "a-2", "b-1"])
    expect(decideWith(s, g1(8), 4).started).toEqual(["a-1", "a-2", "b-1", "a-3"])
  })

  it("a requeued or held run frees its lane and its place under the cap like a finished one", () => {
    const s = restored([inChannel("m1", { channelId: "c1" }), inChannel("m2", { channelId: "c2", enqueuedAt: 1 })])
    const first = decideWith(s, g1(1))
    expect(first.started).toEqual(["m1"])
    const [, requeued] = settle(first.next, "m1", {
      _tag: "Requeue",
      event: inChannel("m1", { channelId: "c1" }),
      notBefore: 500
    })
    expect(HashSet.size(requeued.busyLanes)).toBe(0)
    // m1 waits for its retry delay: m2 takes the agent's one place meanwhile.
    const second = decideWith(requeued, g1(1))
    expect(second.started).toEqual(["m2"])
    const [, held] = settle(second.next, "m2", {
      _tag: "Hold",
      event: inChannel("m2", { channelId: "c2", enqueuedAt: 1 }),
      fallbackAt: 9_000
    })
    expect(HashMap.size(held.agentRuns)).toBe(0)
  })
})
