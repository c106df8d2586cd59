/**
 * EventQueue lanes (issue 14): one run per lane, where the lane is the channel's conversation
 * (`channel` mode) or the agent's default conversation (`shared` mode), at most `parallel` runs per
 * agent, under the global cap; the cap read from the policy and applied to waiting channels on
 * `limitsChanged`.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect, TestClock } from "effect"
import type { QueuedEvent } from "../../../src/domain/Event.js"
import { event, ids, probe, settle, setLimits, setup } from "./harness.js"

const inChannel = (id: string, over: Partial<QueuedEvent> = {}) => event(id, { conversationMode: "channel", ...over })

describe("EventQueue lanes", () => {
  it.scoped("two channels of one agent in channel mode run at once; one channel still runs one at a time", () =>
    Effect.gen(function*() {
      const h = yield* setup()
      const p = yield* probe
      yield* Effect.forkScoped(h.queue.consume(p.consumer()))
      yield* h.queue.offer(inChannel("x1", { channelId: "c1" }))
      yield* h.queue.offer(inChannel("y1", { channelId: "c2" }))
      yield* h.queue.offer(inChannel("x2", { channelId: "c1" }))
      const both = [yield* p.next, yield* p.next]
      expect(ids(both).sort()).toEqual(["x1", "y1"])
      yield* settle
      expect(yield* p.drain).toEqual([])
      const stats = yield* h.queue.stats
      expect(stats.agents).toEqual([{ agentId: "a1", inFlight: 2 }])
      expect(stats.inFlight.map((run) => run.lane).sort()).toEqual(["guild:g1/c1", "guild:g1/c2"])
      // c1's next event waits for c1's run, not for c2's.
      yield* both.find((s) => s.event.messageId === "x1")!.finish()
      expect((yield* p.next).event.messageId).toBe("x2")
    }))

  it.scoped("shared mode, named or not, keeps one run per agent across channels and guilds", () =>
    Effect.gen(function*() {
      const h = yield* setup()
      const p = yield* probe
      yield* Effect.forkScoped(h.queue.consume(p.consumer()))
      yield* h.queue.offer(event("s1", { channelId: "c1", conversationMode: "shared", enqueuedAt: 1 }))
      yield* h.queue.offer(event("s2", { channelId: "c2", enqueuedAt: 2 }))
      yield* h.queue.offer(event("s3", { guildId: "g2", channelId: "c3", conversationMode: "shared", enqueuedAt: 3 }))
      for (const expected of ["s1", "s2", "s3"]) {
        const started = yield* p.next
        expect(started.event.messageId).toBe(expected)
        yield* settle
        expect(yield* p.drain).toEqual([])
        expect((yield* h.queue.stats).inFlight.map((run) => run.lane)).toEqual(["shared:a1"])
        yield* started.finish()
      }
    }))

  it.scoped("parallel 2, five channels: at most 2 at once, the rest start oldest first as each finishes", () =>
    Effect.gen(function*() {
      const h = yield* setup({ parallel: 2 })
      const p = yield* probe
      const ages = [500, 100, 400, 200, 300]
      for (const [i, age] of ages.entries()) yield* h.queue.offer(inChannel(`t${age}`, { channelId: `c${i}`, enqueuedAt: age }))
      yield* Effect.forkScoped(h.queue.consume(p.consumer()))
      const first = [yield* p.next, yield* p.next]
      expect(ids(first)).toEqual(["t100", "t200"])
      yield* settle
      expect(yield* p.drain).toEqual([])
      yield* first[1]!.finish()
      const third = yield* p.next
      expect(third.event.messageId).toBe("t300")
      yield* settle
      expect(yield* p.drain).toEqual([])
      yield* first[0]!.finish()
      const fourth = yield* p.next
      expect(fourth.event.messageId).toBe("t400")
      yield* third.finish()
      yield* fourth.finish()
      expect((yield* p.next).event.messageId).toBe("t500")
      expect((yield* h.queue.stats).agents).toEqual([{ agentId: "a1", inFlight: 1 }])
    }))

  it.scoped("the global cap still bounds runs in flight, whatever the agents' caps", () =>
    Effect.gen(function*() {
      const h = yield* setup({ parallel: 8, options: { concurrency: 3 } })
      const p = yield* probe
      for (let i = 1; i <= 4; i++) yield* h.queue.offer(inChannel(`a${i}`, { channelId: `c${i}`, enqueuedAt: i }))
      yield* h.queue.offer(inChannel("b1", { guildId: "g2", agentId: "a2", channelId: "c9", enqueuedAt: 2.5 }))
      yield* Effect.forkScoped(h.queue.consume(p.consumer()))
      const first = [yield* p.next, yield* p.next, yield* p.next]
      // Oldest first across agents: a1's two oldest channels and a2's channel.
      expect(ids(first)).toEqual(["a1", "a2", "b1"])
      yield* settle
      expect(yield* p.drain).toEqual([])
      yield* first[2]!.finish()
      expect((yield* p.next).event.messageId).toBe("a3")
      yield* settle
      expect(yield* p.drain).toEqual([])
    }))

  it.scoped("a shared-mode and a channel-mode event of one agent (two guilds) do not block each other, only the cap does", () =>
    Effect.gen(function*() {
      const h = yield* setup({ parallel: 2 })
      const p = yield* probe
      yield* Effect.forkScoped(h.queue.consume(p.consumer()))
      yield* h.queue.offer(event("shared", { guildId: "g2", channelId: "c9", conversationMode: "shared", enqueuedAt: 1 }))
      yield* h.queue.offer(inChannel("own", { channelId: "c1", enqueuedAt: 2 }))
      yield* h.queue.offer(inChannel("third", { channelId: "c2", enqueuedAt: 3 }))
      const both = [yield* p.next, yield* p.next]
      expect(ids(both)).toEqual(["shared", "own"])
      expect((yield* h.queue.stats).inFlight.map((run) => [run.messageId, run.lane])).toEqual([
        ["own", "guild:g1/c1"],
        ["shared", "shared:a1"]
      ])
      // The agent is at its cap (2): the third waits for either run to end.
      yield* settle
      expect(yield* p.drain).toEqual([])
      yield* both[0]!.finish()
      expect((yield* p.next).event.messageId).toBe("third")
    }))

  it.scoped("a `config parallel` change applies to waiting channels on limitsChanged, up and down", () =>
    Effect.gen(function*() {
      const h = yield* setup({ parallel: 1 })
      const p = yield* probe
      for (let i = 1; i <= 5; i++) yield* h.queue.offer(inChannel(`m${i}`, { channelId: `c${i}`, enqueuedAt: i }))
      yield* Effect.forkScoped(h.queue.consume(p.consumer()))
      const m1 = yield* p.next
      yield* settle
      expect(yield* p.drain).toEqual([])
      // Raised to 3: two more start at once, m1 still running.
      yield* setLimits(h, "guild:g1", { parallel: 3 })
      yield* h.queue.limitsChanged
      const raised = [yield* p.next, yield* p.next]
      expect(ids(raised)).toEqual(["m2", "m3"])
      expect(raised.map((s) => s.at)).toEqual([0, 0])
      yield* settle
      expect(yield* p.drain).toEqual([])
      // Lowered to 1 with 3 running: nothing starts until fewer than 1 run.
      yield* setLimits(h, "guild:g1", { parallel: 1 })
      yield* h.queue.limitsChanged
      yield* m1.finish()
      yield* raised[0]!.finish()
      yield* TestClock.adjust(1000)
      yield* settle
      expect(yield* p.drain).toEqual([])
      yield* raised[1]!.finish()
      expect((yield* p.next).event.messageId).toBe("m4")
      yield* settle
      expect(yield* p.drain).toEqual([])
    }))

  it.scoped("the spacing still applies per channel: two channels of one agent, each `spacing` apart", () =>
    Effect.gen(function*() {
      const h = yield* setup({ spacing: "2 seconds" })
      const p = yield* probe
      yield* Effect.forkScoped(h.queue.consume(p.consumer()))
      for (const id of ["a1", "a2"]) yield* h.queue.offer(inChannel(id, { channelId: "c1" }))
      for (const id of ["b1", "b2"]) yield* h.queue.offer(inChannel(id, { channelId: "c2" }))
      const first = [yield* p.next, yield* p.next]
      expect(first.map((s) => [s.event.messageId, s.at])).toEqual([["a1", 0], ["b1", 0]])
      yield* first[0]!.finish()
      yield* first[1]!.finish()
      yield* TestClock.adjust(1999)
      yield* settle
      expect(yield* p.drain).toEqual([])
      yield* TestClock.adjust(1)
      const second = [yield* p.next, yield* p.next]
      expect(second.map((s) => [s.event.messageId, s.at])).toEqual([["a2", 2000], ["b2", 2000]])
    }))
})
