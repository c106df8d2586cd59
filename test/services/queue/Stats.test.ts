/**
 * The queue's stats report as a plain function of its state: partitions and channels sorted,
 * the oldest pending age, runs in flight counted per partition and listed oldest first, the
 * capacities passed in and the counters passed through.
 */
import { describe, expect, it } from "@effect/vitest"
import { Partition, type QueuedEvent } from "../../../src/domain/Event.js"
import type { DedupLimits } from "../../../src/services/queue/state/DedupWindow.js"
import { restoreAll } from "../../../src/services/queue/state/Intake.js"
import { initialState, partitionOf, type State, withPartition } from "../../../src/services/queue/state/QueueState.js"
import { decide } from "../../../src/services/queue/state/Scheduling.js"
import { queueStats } from "../../../src/services/queue/state/Stats.js"
import { event } from "./harness.js"

const limits: DedupLimits = { maxSize: 100, maxAgeMs: 60_000 }

const restored = (events: ReadonlyArray<QueuedEvent>): State => restoreAll(initialState, events, 0, limits, [])

/** Starts what is ready at `now` (no spacing anywhere), returning the new state. */
const startAt = (s: State, now: number, partitionKeys: ReadonlyArray<string>): State =>
  decide(s, now, new Map(partitionKeys.map((key) => [key, { spacing: 0, parallel: 8 }])), 16, [])[1]

const capacities = new Map([["dm", 5], ["guild:g1", 10], ["guild:g2", 20]])

describe("queue stats", () => {
  it("an empty queue reports nothing pending and the dedup window's size", () => {
    expect(queueStats(initialState, capacities, 100)).toEqual({
      partitions: [],
      inFlight: [],
      agents: [],
      rejected: { full: 0, duplicate: 0 },
      globalPaused: false,
      dispatchStopped: false,
      dedup: { size: 0, maxSize: 100 }
    })
  })

  it("sorts partitions by key and their channels by id, with each channel's pending count", () => {
    const s = restored([
      event("g2-a", { guildId: "g2", channelId: "c2", enqueuedAt: 500 }),
      event("g1-a", { guildId: "g1", channelId: "c2", enqueuedAt: 400 }),
      event("g1-b", { guildId: "g1", channelId: "c10", enqueuedAt: 300 }),
      event("g1-c", { guildId: "g1", channelId: "c1", enqueuedAt: 200 }),
      event("g1-d", { guildId: "g1", channelId: "c2", enqueuedAt: 100 }),
      event("dm-a", { guildId: null, channelId: "d1", enqueuedAt: 600 })
    ])
    const stats = queueStats(s, capacities, 100)
    expect(stats.partitions.map((p) => [p.key, p.pending, p.capacity])).toEqual([
      ["dm", 1, 5],
      ["guild:g1", 4, 10],
      ["guild:g2", 1, 20]
    ])
    expect(stats.partitions[1]?.partition).toEqual(Partition.guild("g1"))
    expect(stats.partitions[1]?.channels).toEqual([
      { channelId: "c1", pending: 1 },
      { channelId: "c10", pending: 1 },
      { channelId: "c2", pending: 2 }
    ])
    expect(stats.dedup).toEqual({ size: 6, maxSize: 100 })
  })

  it("the oldest pending age is the smallest enqueuedAt, even behind the head of a channel", () => {
    const s = restored([
      event("young", { channelId: "c1", enqueuedAt: 900 }),
      event("old", { channelId: "c1", enqueuedAt: 100 }),
      event("middle", { channelId: "c2", enqueuedAt: 500 })
    ])
    const [g1] = queueStats(s, capacities, 100).partitions
    expect(g1?.oldestEnqueuedAt).toBe(100)
  })

  it("counts runs in flight per partition, lists them oldest first, and leaves them out of pending", () => {
    const s0 = restored([
      event("g1-x", { guildId: "g1", agentId: "a1", channelId: "c1", enqueuedAt: 10 }),
      event("g1-y", { guildId: "g1", agentId: "a1", channelId: "c1", enqueuedAt: 20 }),
      event("g1-z", { guildId: "g1", agentId: "a2", channelId: "c2", enqueuedAt: 30 }),
      event("g2-b", { guildId: "g2", agentId: "a3", channelId: "c1", enqueuedAt: 40 })
    ])
    // g1-x and g1-z start at 100, g2-b at 200 (its partition is only read then).
    const s1 = startAt(startAt(s0, 100, ["guild:g1"]), 200, ["guild:g2"])
    const stats = queueStats(s1, capacities, 100)
    expect(stats.partitions.map((p) => [p.key, p.pending, p.inFlight])).toEqual([
      ["guild:g1", 1, 2],
      ["guild:g2", 0, 1]
    ])
    // A partition with nothing pending has no channels and no oldest age.
    expect(stats.partitions[1]?.channels).toEqual([])
    expect(stats.partitions[1]?.oldestEnqueuedAt).toBe(null)
    expect(stats.partitions[0]?.oldestEnqueuedAt).toBe(20)
    const shared = { conversationMode: "shared" }
    expect(stats.inFlight).toEqual([
      { ...shared, messageId: "g1-x", agentId: "a1", channelId: "c1", partition: "guild:g1", startedAt: 100, lane: "shared:a1" },
      { ...shared, messageId: "g1-z", agentId: "a2", channelId: "c2", partition: "guild:g1", startedAt: 100, lane: "shared:a2" },
      { ...shared, messageId: "g2-b", agentId: "a3", channelId: "c1", partition: "guild:g2", startedAt: 200, lane: "shared:a3" }
    ])
  })

  it("counts runs in flight per agent, and names each run's lane: its channel's, or its agent's shared one", () => {
    const s0 = restored([
      event("c1", { guildId: "g1", agentId: "a1", channelId: "c1", conversationMode: "channel", enqueuedAt: 10 }),
      event("c2", { guildId: "g1", agentId: "a1", channelId: "c2", conversationMode: "channel", enqueuedAt: 20 }),
      event("sh", { guildId: "g2", agentId: "a1", channelId: "c3", conversationMode: "shared", enqueuedAt: 30 }),
      event("dm", { guildId: null, agentId: "a9", channelId: "d1", conversationMode: "channel", enqueuedAt: 40 })
    ])
    const stats = queueStats(startAt(s0, 100, ["guild:g1", "guild:g2", "dm"]), capacities, 100)
    expect(stats.inFlight.map((run) => [run.messageId, run.conversationMode, run.lane])).toEqual([
      ["c1", "channel", "guild:g1/c1"],
      ["c2", "channel", "guild:g1/c2"],
      ["dm", "channel", "dm/d1"],
      ["sh", "shared", "shared:a1"]
    ])
    expect(stats.agents).toEqual([{ agentId: "a1", inFlight: 3 }, { agentId: "a9", inFlight: 1 }])
  })

  it("passes pauses, the stop and the rejection counters through; an unknown capacity reads 0", () => {
    const s0 = restored([event("m1", { guildId: "g9" })])
    const s = {
      ...withPartition(s0, { ...partitionOf(s0, Partition.guild("g9")), paused: true }),
      globalPaused: true,
      stopped: true,
      rejected: { full: 3, duplicate: 2 }
    }
    const stats = queueStats(s, capacities, 100)
    expect(stats.partitions.map((p) => [p.key, p.paused, p.capacity])).toEqual([["guild:g9", true, 0]])
    expect(stats.globalPaused).toBe(true)
    expect(stats.dispatchStopped).toBe(true)
    expect(stats.rejected).toEqual({ full: 3, duplicate: 2 })
  })
})
