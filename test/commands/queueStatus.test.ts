/**
 * `queue status` in flight (issue 14): each run with the conversation it holds (its channel's own,
 * or the agent's shared one), and per agent of those runs its runs in flight against its cap. The
 * embed is a plain function of the queue's stats, so it is checked on stats built by hand.
 */
import { describe, expect, it } from "@effect/vitest"
import { Partition } from "../../src/domain/Event.js"
import { queueEmbed, type QueueView } from "../../src/commands/QueueCommands.js"
import type { InFlightStats, QueueStats } from "../../src/services/queue/EventQueue.js"

const guild = Partition.guild("100000000000000001")
const key = Partition.key(guild)
const now = 60_000

const view: QueueView = {
  title: "Queue of this server",
  partition: guild,
  capacity: 50,
  parallel: 4,
  paused: false,
  deadLetters: 0
}

const run = (channelId: string, over: Partial<InFlightStats> = {}): InFlightStats => ({
  messageId: `m-${channelId}`,
  agentId: "agent-1",
  channelId,
  partition: key,
  startedAt: now - 12_000,
  conversationMode: "channel",
  lane: `${key}/${channelId}`,
  ...over
})

const stats = (inFlight: ReadonlyArray<InFlightStats>, agents: QueueStats["agents"]): QueueStats => ({
  partitions: [],
  inFlight,
  agents,
  rejected: { full: 0, duplicate: 0 },
  globalPaused: false,
  dispatchStopped: false,
  dedup: { size: 0, maxSize: 10_000 }
})

const fields = (s: QueueStats) => Object.fromEntries((queueEmbed(view, s, now).fields ?? []).map((f) => [f.name, f.value]))

describe("queue status: in flight per conversation and per agent", () => {
  it("lists each run with its conversation, and the agent's runs everywhere against the server's cap", () => {
    const s = stats(
      [
        run("200000000000000001"),
        run("200000000000000002"),
        run("200000000000000003", { conversationMode: "shared", lane: "shared:agent-2", agentId: "agent-2" }),
        // Another server's run: not listed here, but counted in its agent's total.
        run("200000000000000004", { partition: "guild:999", lane: "guild:999/200000000000000004" })
      ],
      [{ agentId: "agent-1", inFlight: 3 }, { agentId: "agent-2", inFlight: 1 }, { agentId: "agent-3", inFlight: 1 }]
    )
    const f = fields(s)
    expect(f["In flight"]).toBe([
      "<#200000000000000001> for 12s (channel conversation)",
      "<#200000000000000002> for 12s (channel conversation)",
      "<#200000000000000003> for 12s (shared conversation)"
    ].join("\n"))
    expect(f["Runs per agent"]).toBe("`agent-1`: 3 in flight (at most 4)\n`agent-2`: 1 in flight (at most 4)")
  })

  it("nothing in flight: `0` and no per-agent field", () => {
    const f = fields(stats([], []))
    expect(f["In flight"]).toBe("0")
    expect(f["Runs per agent"]).toBeUndefined()
  })

  it("many runs are cut after 10 lines with a count, to fit an embed field", () => {
    const runs = Array.from({ length: 13 }, (_, i) => run(`2000000000000000${String(i).padStart(2, "0")}`))
    const lines = fields(stats(runs, [{ agentId: "agent-1", inFlight: 13 }]))["In flight"]!.split("\n")
    expect(lines).toHaveLength(11)
    expect(lines.at(-1)).toBe("… and 3 more runs")
  })
})
