/**
 * The open stops (OpenStops): one shared test run against the memory store and the SQL store
 * (open, re-open replaces, close, oldest first, pendingFor per agent and conversation, the default
 * conversation as null), and the SQL store across a restart on the same database.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect, Layer } from "effect"
import { makeMemoryOpenStops, type OpenStop, OpenStops, type OpenStopsService } from "../../../src/services/queue/OpenStops.js"
import { Database } from "../../../src/services/storage/Database.js"
import { makeTempDir } from "../../fakes/tempDir.js"

const tempDir = makeTempDir("open-stops")

const stop = (key: string, openedAt: number, conversationId: string | null, agentId = "a1"): OpenStop => ({
  key,
  origin: {
    guildId: conversationId === null ? null : "g1",
    channelId: "c1",
    messageId: `m-${key}`,
    agentId,
    conversationId,
    runId: null
  },
  calls: [
    { name: "discord_send", arguments: "{\"message\":\"hi\"}", toolCallId: key, aurora: true },
    { name: "web_search", arguments: "{}", toolCallId: `${key}-w`, aurora: false }
  ],
  openedAt
})

/** The same semantics, whatever backs the store. */
const shared = (stops: OpenStopsService) =>
  Effect.gen(function*() {
    expect(yield* stops.all).toEqual([])
    expect(yield* stops.pendingFor("a1", null)).toBe(false)
    yield* stops.open(stop("s2", 2_000, "conv-1"))
    yield* stops.open(stop("s1", 1_000, null))
    yield* stops.open(stop("s3", 2_000, "conv-2", "a2"))
    // Oldest first, then by record order.
    expect((yield* stops.all).map((s) => s.key)).toEqual(["s1", "s2", "s3"])
    expect((yield* stops.all)[0]).toEqual(stop("s1", 1_000, null))
    expect(yield* stops.pendingFor("a1", null)).toBe(true)
    expect(yield* stops.pendingFor("a1", "conv-1")).toBe(true)
    expect(yield* stops.pendingFor("a1", "conv-2")).toBe(false)
    expect(yield* stops.pendingFor("a2", null)).toBe(false)
    // Re-opening a key replaces its record (and its record order).
    yield* stops.open(stop("s2", 2_000, "conv-9"))
    expect((yield* stops.all).map((s) => s.key)).toEqual(["s1", "s3", "s2"])
    expect(yield* stops.pendingFor("a1", "conv-1")).toBe(false)
    expect(yield* stops.pendingFor("a1", "conv-9")).toBe(true)
    yield* stops.close("s1")
    yield* stops.close("unknown")
    expect((yield* stops.all).map((s) => s.key)).toEqual(["s3", "s2"])
    expect(yield* stops.pendingFor("a1", null)).toBe(false)
  })

describe("OpenStops", () => {
  it.effect("memory store", () => Effect.flatMap(makeMemoryOpenStops, shared))

  it.scoped("SQL store: the same semantics, and the records survive a restart", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir
      const session = <A, E>(use: Effect.Effect<A, E, OpenStops>) =>
        use.pipe(Effect.provide(OpenStops.layerSql.pipe(Layer.provide(Database.layer(dir)))))
      yield* session(Effect.flatMap(OpenStops, shared))
      const after = yield* session(Effect.flatMap(OpenStops, (stops) => stops.all))
      expect(after).toEqual([stop("s3", 2_000, "conv-2", "a2"), stop("s2", 2_000, "conv-9")])
    }))
})
