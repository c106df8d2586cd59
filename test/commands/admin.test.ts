/**
 * The admin commands' behaviour: binding agents (checked on Letta first), disabling and clearing
 * with counts, the Letta URL override, pauses, and the status views.
 */
import { describe, expect, it } from "@effect/vitest"
import { Duration, Effect, Ref, TestClock } from "effect"
import { Partition, type QueuedEvent } from "../../src/domain/Event.js"
import { CircuitBreaker } from "../../src/services/health/CircuitBreaker.js"
import { DeadLetters } from "../../src/services/queue/DeadLetters.js"
import { ErrorStats } from "../../src/services/health/ErrorStats.js"
import { EventQueue } from "../../src/services/queue/EventQueue.js"
import { LettaEndpoint } from "../../src/services/letta/LettaClient.js"
import { SettingsStore } from "../../src/services/storage/SettingsStore.js"
import { ids, replyText, withHarness } from "./harness.js"

let serial = 0
const event = (over: Partial<QueuedEvent> = {}): QueuedEvent => ({
  messageId: `91000000000000${String(++serial).padStart(4, "0")}`,
  guildId: ids.guild,
  channelId: ids.channel,
  authorId: ids.member,
  agentId: "agent-1",
  trigger: "mention",
  prompt: "prompt",
  enqueuedAt: 0,
  attempts: 0,
  ...over
})

const offerAll = (events: ReadonlyArray<QueuedEvent>) =>
  Effect.flatMap(EventQueue, (queue) => Effect.forEach(events, (e) => queue.offer(e), { discard: true }))

const guildState = Effect.flatMap(SettingsStore, (store) => store.guild(ids.guild))
const globalState = Effect.flatMap(SettingsStore, (store) => store.global)

describe("/aurora enable and disable", () => {
  it.scoped("enable checks the agent on Letta, binds it and shows its name", () =>
    withHarness((h) =>
      Effect.gen(function*() {
        const reply = yield* h.run("admin", "enable", { agent_id: " agent-1 " })
        expect(replyText(reply)).toBe(
          "✅ Aurora is enabled in this server with agent `Helper` (`agent-1`). Mention me or reply to me to talk to it."
        )
        expect(yield* Ref.get(h.agentLookups)).toEqual(["agent-1"])
        expect(yield* guildState).toMatchObject({ enabled: true, agentId: "agent-1" })
      })
    ))

  it.scoped("an unknown agent is answered 'not found' and nothing is stored", () =>
    withHarness((h) =>
      Effect.gen(function*() {
        const reply = yield* h.run("admin", "enable", { agent_id: "agent-nope" })
        expect(replyText(reply)).toBe("❌ Agent `agent-nope` not found on the Letta server. Nothing was changed.")
        expect(yield* guildState).toMatchObject({ enabled: false, agentId: null })
      })
    ))

  it.scoped("an unreachable Letta server is said so, without its address; nothing is stored", () =>
    withHarness((h) =>
      Effect.gen(function*() {
        yield* Ref.set(h.lettaDown, true)
        const text = replyText(yield* h.run("admin", "enable", { agent_id: "agent-1" }))
        expect(text).toContain("The Letta server is unreachable right now")
        expect(text).not.toContain("10.0.0.9")
        expect((yield* guildState).enabled).toBe(false)
        const warning = (yield* h.logLines).find((line) => line.message === "agent check failed")
        expect(warning?.annotations).toMatchObject({ agentId: "agent-1", error: "LettaConnectionError" })
      })
    ))

  it.scoped("a malformed agent id is refused before asking Letta", () =>
    withHarness((h) =>
      Effect.gen(function*() {
        for (const agentId of ["agent 1", "../agents", "", "a".repeat(129)]) {
          const text = replyText(yield* h.run("admin", "enable", { agent_id: agentId }))
          expect(text).toContain("`agent_id` must be a Letta agent id")
        }
        expect(yield* Ref.get(h.agentLookups)).toEqual([])
      })
    ))

  it.scoped("disable drops the guild's pending events and says how many; other guilds keep theirs", () =>
    withHarness((h) =>
      Effect.gen(function*() {
        yield* h.run("admin", "enable", { agent_id: "agent-1" })
        yield* offerAll([event(), event(), event({ channelId: "200000000000000009" }), event({ guildId: ids.otherGuild })])
        const reply = yield* h.run("admin", "disable")
        expect(replyText(reply)).toBe("⛔ Aurora is disabled in this server. Dropped 3 pending events.")
        expect(yield* guildState).toMatchObject({ enabled: false, agentId: "agent-1" })
        const stats = yield* Effect.flatMap(EventQueue, (queue) => queue.stats)
        expect(stats.partitions.filter((p) => p.pending > 0).map((p) => p.key)).toEqual([`guild:${ids.otherGuild}`])
        expect(replyText(yield* h.run("admin", "disable"))).toBe(
          "Aurora was not enabled in this server. Dropped 0 pending events."
        )
      })
    ))

  it.scoped("queue clear drops pending events and counts them", () =>
    withHarness((h) =>
      Effect.gen(function*() {
        yield* offerAll([event()])
        expect(replyText(yield* h.run("admin", "queue clear"))).toBe(
          "🗑️ Dropped 1 pending event of this server. Runs already in flight finish normally."
        )
        expect(replyText(yield* h.run("admin", "queue clear"))).toContain("Dropped 0 pending events")
      })
    ))
})

describe("/aurora dm", () => {
  it.scoped("dm enable checks the agent and sets the DM agent; dm disable turns DMs off and drops pending DMs", () =>
    withHarness((h) =>
      Effect.gen(function*() {
        expect(replyText(yield* h.run("owner", "dm enable", { agent_id: "agent-404" }))).toContain("not found")
        expect((yield* globalState).dmAgentId).toBeNull()

        expect(replyText(yield* h.run("owner", "dm enable", { agent_id: "agent-1" }))).toBe(
          "✅ Direct messages to Aurora are now answered by agent `Helper` (`agent-1`)."
        )
        expect((yield* globalState).dmAgentId).toBe("agent-1")

        yield* offerAll([event({ guildId: null, channelId: "200000000000000077" }), event()])
        expect(replyText(yield* h.run("owner", "dm disable"))).toBe(
          "⛔ Direct messages are off: Aurora ignores DMs from now on. Dropped 1 pending direct message."
        )
        expect((yield* globalState).dmAgentId).toBeNull()
        const stats = yield* Effect.flatMap(EventQueue, (queue) => queue.stats)
        expect(stats.partitions.find((p) => p.key === "dm")?.pending ?? 0).toBe(0)
        expect(stats.partitions.find((p) => p.key === `guild:${ids.guild}`)?.pending).toBe(1)
      })
    ))
})

describe("/aurora lettaurl", () => {
  it.scoped("a LETTA_BASE_URL with credentials or a token is shown without them", () =>
    withHarness(
      (h) =>
        Effect.gen(function*() {
          const text = replyText(yield* h.run("owner", "lettaurl"))
          expect(text).toBe("Letta URL in use: `https://redacted@letta.env:8283/?token=redacted`, from LETTA_BASE_URL.")
          expect(text).not.toContain("s3cret")
        }),
      { lettaBaseUrl: "https://alice:s3cret@letta.env:8283/?token=s3cret" }
    ))

  it.scoped("without url: shows the URL in use and where it comes from", () =>
    withHarness((h) =>
      Effect.gen(function*() {
        expect(replyText(yield* h.run("owner", "lettaurl"))).toBe(
          "Letta URL in use: `http://letta.env:8283`, from LETTA_BASE_URL."
        )
        expect(yield* Ref.get(h.healthChecks)).toEqual([])
      })
    ))

  it.scoped("sets the override: normalised, persisted, applied to the endpoint, health checked there", () =>
    withHarness((h) =>
      Effect.gen(function*() {
        const reply = yield* h.run("owner", "lettaurl", { url: " https://Letta.Example.com:8443/api/// " })
        const url = "https://letta.example.com:8443/api"
        expect(replyText(reply)).toBe(
          `✅ Letta URL set to \`${url}\` (persisted; used from the next run).\n` +
            "🟢 `GET /v1/health/` answered: status `ok`, version `0.16.1`."
        )
        expect((yield* globalState).lettaBaseUrl).toBe(url)
        expect(yield* Effect.flatMap(LettaEndpoint, (e) => e.current)).toEqual({ url, source: "override" })
        expect(yield* Ref.get(h.healthChecks)).toEqual([url])
        expect(replyText(yield* h.run("owner", "lettaurl"))).toBe(
          `Letta URL in use: \`${url}\`, set with \`/aurora lettaurl\` (persisted; wins over LETTA_BASE_URL).`
        )
      })
    ))

  it.scoped("a server that does not answer is reported, and the URL is still set", () =>
    withHarness((h) =>
      Effect.gen(function*() {
        yield* Ref.set(h.lettaDown, true)
        const text = replyText(yield* h.run("owner", "lettaurl", { url: "http://127.0.0.1:8283/" }))
        expect(text).toContain("✅ Letta URL set to `http://127.0.0.1:8283`")
        expect(text).toContain("🔴 `GET /v1/health/` did not answer")
        expect((yield* globalState).lettaBaseUrl).toBe("http://127.0.0.1:8283")
      })
    ))

  it.scoped("only http/https without credentials, query or fragment; nothing stored otherwise", () =>
    withHarness((h) =>
      Effect.gen(function*() {
        expect(replyText(yield* h.run("owner", "lettaurl", { url: "ftp://letta.example.com" }))).toBe(
          "❌ `url` must use http or https (got `ftp`)."
        )
        for (const url of ["letta.example.com", "http://user:pw@letta.example.com", "http://x.com/?a=1", "http://x.com/#f"]) {
          expect(replyText(yield* h.run("owner", "lettaurl", { url }))).toContain("❌ `url` must be an http:// or https:// URL")
        }
        expect((yield* globalState).lettaBaseUrl).toBeNull()
        expect((yield* Effect.flatMap(LettaEndpoint, (e) => e.current)).source).toBe("env")
        expect(yield* Ref.get(h.healthChecks)).toEqual([])
      })
    ))

  it.scoped("url:reset drops the override and goes back to LETTA_BASE_URL", () =>
    withHarness((h) =>
      Effect.gen(function*() {
        yield* h.run("owner", "lettaurl", { url: "http://other:8283" })
        const reply = yield* h.run("owner", "lettaurl", { url: "reset" })
        expect(replyText(reply)).toContain("✅ Override dropped. Letta URL in use: `http://letta.env:8283`, from LETTA_BASE_URL.")
        expect((yield* globalState).lettaBaseUrl).toBeNull()
        expect(yield* Effect.flatMap(LettaEndpoint, (e) => e.current)).toEqual({ url: "http://letta.env:8283", source: "env" })
        expect(yield* Ref.get(h.healthChecks)).toEqual(["http://other:8283", "http://letta.env:8283"])
      })
    ))
})

describe("/aurora events and queue status", () => {
  it.scoped("queue status: Pending: N, then one line per channel, in flight and the oldest age", () =>
    withHarness((h) =>
      Effect.gen(function*() {
        yield* TestClock.adjust(Duration.minutes(10))
        const at = 10 * 60_000
        yield* offerAll([
          event({ channelId: "200000000000000001", enqueuedAt: at - 125_000 }),
          event({ channelId: "200000000000000001", enqueuedAt: at - 5_000 }),
          event({ channelId: "200000000000000002", enqueuedAt: at - 60_000 }),
          event({ guildId: ids.otherGuild })
        ])
        const reply = yield* h.run("admin", "queue status")
        expect(reply.embed?.description).toBe("Pending: 3\n<#200000000000000001>: 2\n<#200000000000000002>: 1")
        const fields = Object.fromEntries((reply.embed?.fields ?? []).map((f) => [f.name, f.value]))
        expect(fields).toEqual({
          Capacity: "50 pending events",
          "In flight": "0",
          "Oldest pending": "2m 5s ago",
          Dispatch: "▶️ active",
          "Dead letters": "0"
        })
      })
    ))

  it.scoped("queue status counts the partition's dead letters and points to queue failed", () =>
    withHarness((h) =>
      Effect.gen(function*() {
        const store = yield* DeadLetters
        const letter = (messageId: string, guildId: string) => ({
          event: event({ messageId, guildId }),
          reason: "failed" as const,
          errorType: "AgentNotFound",
          detail: "404",
          attempts: 1,
          failedAt: 0
        })
        yield* store.add(letter("300000000000000001", ids.guild))
        yield* store.add(letter("300000000000000002", ids.guild))
        yield* store.add(letter("300000000000000003", ids.otherGuild))
        const reply = yield* h.run("admin", "queue status")
        const fields = Object.fromEntries((reply.embed?.fields ?? []).map((f) => [f.name, f.value]))
        expect(fields["Dead letters"]).toBe("2 (see /aurora queue failed)")
      })
    ))

  it.scoped("events status: agent, pause, the breaker as one word with its emoji, queue and error rate", () =>
    withHarness((h) =>
      Effect.gen(function*() {
        yield* h.run("admin", "enable", { agent_id: "agent-1" })
        yield* offerAll([event(), event()])
        const stats = yield* ErrorStats
        yield* stats.record({ kind: "agent_run", outcome: "success" })
        yield* stats.record({ kind: "agent_run", outcome: { errorType: "LettaTimeout" } })

        const closed = replyText(yield* h.run("admin", "events status"))
        expect(closed).toContain("Aurora in this server: ✅ enabled — agent `agent-1`")
        expect(closed).toContain("Dispatch: ▶️ active")
        expect(closed).toContain("Circuit breaker: 🟢 CLOSED")
        expect(closed).not.toMatch(/OPEN|HALF-OPEN|🔴|🟡/)
        expect(closed).toContain("Queue: Pending: 2 / 50 · in flight: 0 · oldest: 0s")
        expect(closed).toContain("50.0% overall (1/2) · 50.0% last 5 min (1/2)")

        // Five service failures open the breaker.
        const breaker = yield* CircuitBreaker
        for (let i = 0; i < 5; i++) yield* Effect.either(breaker.protect(Effect.fail("down"), () => true))
        yield* h.run("admin", "events pause")
        const open = replyText(yield* h.run("admin", "events status"))
        expect(open).toContain("Circuit breaker: 🔴 OPEN")
        expect(open).not.toMatch(/CLOSED|HALF-OPEN|🟢|🟡/)
        expect(open).toContain("Dispatch: ⏸️ paused: this server")

        expect(replyText(yield* h.run("admin", "events resetcircuit"))).toContain("Only Aurora's owners")
        expect(replyText(yield* h.run("owner", "events resetcircuit"))).toBe(
          "Circuit breaker reset: 🔴 OPEN → 🟢 CLOSED. Held events are dispatched now."
        )
        expect((yield* breaker.state)._tag).toBe("Closed")
      })
    ))

  it.scoped("events pause/resume persist the guild pause and apply it to the queue", () =>
    withHarness((h) =>
      Effect.gen(function*() {
        const queue = yield* EventQueue
        yield* h.run("admin", "events pause")
        expect((yield* guildState).paused).toBe(true)
        expect(yield* queue.isPaused(Partition.guild(ids.guild))).toBe(true)
        yield* h.run("owner", "events pause", { scope: "global" })
        const resumed = replyText(yield* h.run("admin", "events resume"))
        expect(resumed).toContain("a **global pause** is still on")
        expect((yield* guildState).paused).toBe(false)
        expect(yield* queue.isPaused(Partition.guild(ids.guild))).toBe(false)
        expect(replyText(yield* h.run("owner", "events resume", { scope: "global" }))).toContain("Resumed in all servers")
        expect((yield* globalState).globalPause).toBe(false)
        expect(yield* queue.isPaused("global")).toBe(false)
        expect(replyText(yield* h.run("admin", "events pause", { scope: "everything" }))).toBe(
          "❌ `scope` must be `guild` or `global`."
        )
      })
    ))

  it.scoped("events errors: totals, rates, types, recent operations; details only for owners", () =>
    withHarness((h) =>
      Effect.gen(function*() {
        const stats = yield* ErrorStats
        yield* stats.record({ kind: "agent_run", outcome: "success" })
        yield* stats.record({ kind: "agent_run", outcome: { errorType: "LettaTimeout" }, detail: "guild 42 agent-x" })
        yield* stats.record({ kind: "agent_run", outcome: { errorType: "LettaTimeout" } })
        yield* stats.record({ kind: "agent_run", outcome: { errorType: "LettaServerError" } })
        const admin = yield* h.run("admin", "events errors")
        const fields = Object.fromEntries((admin.embed?.fields ?? []).map((f) => [f.name, f.value]))
        expect(fields["Operations"]).toBe("4 total · 3 errors")
        expect(fields["Error rate"]).toBe("75.0% overall (3/4) · 75.0% last 5 min (3/4)")
        expect(fields["By error type"]).toBe("`LettaTimeout`: 2\n`LettaServerError`: 1")
        expect(fields["Recent operations (newest first)"]?.split("\n")).toEqual([
          "<t:0:R> agent_run ❌ `LettaServerError`",
          "<t:0:R> agent_run ❌ `LettaTimeout`",
          "<t:0:R> agent_run ❌ `LettaTimeout`",
          "<t:0:R> agent_run ✅"
        ])
        const owner = replyText(yield* h.run("owner", "events errors"))
        expect(owner).toContain("agent_run ❌ `LettaTimeout` — `guild 42 agent-x`")
      })
    ))
})
