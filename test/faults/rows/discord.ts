/**
 * Rows 5 and 7: the Discord side — the gateway connection dropped mid-traffic, and a burst of
 * 10 000 mentions across 100 channels against bounded queues.
 */
import { expect } from "@effect/vitest"
import { Effect } from "effect"
import { FakeDiscord } from "../../fakes/FakeDiscord.js"
import { Behaviours, makeFakeLetta } from "../../fakes/FakeLetta.js"
import { bounded } from "../AuroraProcess.js"
import {
  channelIds,
  freePort,
  idle,
  mention,
  oneGuildStage,
  metricsWhen,
  range,
  readStoredQueue,
  seconds,
  seedSettings,
  startAurora,
  stop,
  tempDir,
  textGuild
} from "../fixtures.js"
import { deliveredCount, ledgerOf } from "../ledger.js"
import type { RecordRow } from "../report.js"

/**
 * The fake kills the gateway socket (close 1006) while runs are in flight: 10 mentions before,
 * 10 while the socket is down (the fake keeps them in the session and replays them on RESUME),
 * 10 after the resume. Every one is handled once.
 */
export const gatewayDrop = (record: RecordRow) =>
  Effect.gen(function*() {
    const { agentId, channels, dataDir, discord, letta } = yield* oneGuildStage({
      g: 5,
      channels: 10,
      agentId: "agent-gateway",
      agentName: "Gateway Agent",
      defaultBehaviour: Behaviours.run({ delayMs: 150 })
    })
    const aurora = yield* startAurora(discord, { lettaUrl: letta.url, dataDir, httpPort: yield* freePort })
    const send = (phase: string, n: number) =>
      Effect.forEach(range(n), (i) => mention(discord, channels[i % channels.length]!, `${phase} ${i}`))

    const before = yield* send("before the drop", 10)
    yield* bounded("a run in flight", letta.awaitMessages(1, agentId))
    const mark = discord.gatewayEvents().length - 1
    const droppedAt = Date.now()
    yield* discord.dropConnection()
    // Sent in the same turn as the drop: no socket can be open for them, they wait for the RESUME.
    const during = yield* send("during the gap", 10)
    const resumed = yield* bounded("the RESUME", discord.waitForGateway("resumed", { after: mark, timeout: "60 seconds" }))
    const gapMs = resumed.at - droppedAt
    const after = yield* send("after the resume", 10)

    const sent = [...before, ...during, ...after]
    const sentIds = new Set(sent)
    yield* bounded(
      "all 30 delivered",
      letta.awaitRuns((runs, requests) => deliveredCount(sentIds, runs, requests) === sent.length),
      "90 seconds"
    )
    const metrics = yield* metricsWhen(aurora, idle, "Aurora to be idle")
    const exit = yield* stop(aurora)
    const stored = yield* readStoredQueue(dataDir)
    const ledger = ledgerOf({
      sent,
      rejected: metrics.sum("aurora_events_rejected_total"),
      accepted: metrics.value("aurora_events_enqueued_total"),
      requests: yield* letta.requests,
      runs: yield* letta.runs,
      deadLetters: stored.deadLetters
    })
    const row = record({
      fault: "Gateway socket killed by the fake mid-traffic (10 before, 10 during the gap, 10 after)",
      counts: ledger.counts,
      notes:
        `drop → RESUMED in ${seconds(gapMs)}, ${
          resumed.replayed ?? 0
        } missed dispatches replayed; identifies ${discord.identifyCount()}, resumes ${discord.resumeCount()}; ` +
        `aurora_messages_received_total = ${metrics.value("aurora_messages_received_total")}, ` +
        `rejected as duplicate = ${metrics.value("aurora_events_rejected_total", { reason: "duplicate" })}`
    })

    expect(exit).toEqual({ code: 0, signal: null })
    expect(discord.identifyCount()).toBe(1)
    expect(discord.resumeCount()).toBe(1)
    // At least the 10 mentions sent during the gap came through the RESUME replay.
    expect(resumed.replayed).toBeGreaterThanOrEqual(10)
    expect(ledger.strays).toEqual([])
    expect(ledger.counts).toMatchObject({
      sent: 30,
      accepted: 30,
      delivered: 30,
      resent: 0,
      deadLettered: 0,
      rejected: 0,
      duplicated: 0,
      lost: 0
    })
    expect(stored.pending).toEqual([])
    return row
  })

export interface BurstOptions {
  readonly guilds: number
  readonly channelsPerGuild: number
  readonly mentions: number
  readonly queuesize: number
  /** Asserted bound on the peak RSS (generous: the point is that it is bounded, not its value). */
  readonly maxPeakRssMiB: number
}

/**
 * 10 000 mentions in one burst across 100 channels (10 guilds × 10 channels, an agent each,
 * queuesize 200): every mention is accepted or rejected, every accepted one is delivered once,
 * and the memory stays bounded.
 */
export const burst = (record: RecordRow, options: BurstOptions) =>
  Effect.gen(function*() {
    const guilds = range(options.guilds).map((g) => textGuild(20 + g, options.channelsPerGuild))
    const agentOf = (g: number) => `agent-burst-${g}`
    const discord = yield* FakeDiscord.make({ guilds })
    const letta = yield* makeFakeLetta({
      agents: Object.fromEntries(range(options.guilds).map((g) => [agentOf(g), `Burst ${g}`]))
    })
    const dataDir = yield* tempDir
    yield* seedSettings(
      dataDir,
      guilds.map((guild, g) => ({
        guildId: guild.id,
        agentId: agentOf(g),
        settings: { queuesize: options.queuesize, ratelimit: 0.5 }
      }))
    )
    const aurora = yield* startAurora(discord, { lettaUrl: letta.url, dataDir, httpPort: yield* freePort, logLevel: "warning" })
    const idleRss = yield* aurora.peakRssMiB

    const channels = guilds.flatMap(channelIds)
    const burstAt = Date.now()
    const sent = yield* Effect.forEach(
      range(options.mentions),
      (i) => mention(discord, channels[i % channels.length]!, `burst ${i}`)
    )
    const writtenMs = Date.now() - burstAt
    const received = yield* metricsWhen(
      aurora,
      (m) => m.value("aurora_events_enqueued_total") + m.sum("aurora_events_rejected_total") >= options.mentions,
      "every mention accepted or rejected",
      "180 seconds"
    )
    const decidedMs = Date.now() - burstAt
    const drained = yield* metricsWhen(aurora, idle, "the queues to drain", "180 seconds")
    const drainedMs = Date.now() - burstAt
    const peakRss = yield* aurora.peakRssMiB
    const exit = yield* stop(aurora)
    const stored = yield* readStoredQueue(dataDir)
    const requests = yield* letta.requests
    const runs = yield* letta.runs
    const ledger = ledgerOf({
      sent,
      rejected: drained.sum("aurora_events_rejected_total"),
      accepted: drained.value("aurora_events_enqueued_total"),
      requests,
      runs,
      deadLetters: stored.deadLetters
    })
    const row = record({
      fault: `${options.mentions.toLocaleString("en")} mentions in one burst across ${channels.length} channels ` +
        `(${options.guilds} guilds × ${options.channelsPerGuild}, an agent each, queuesize ${options.queuesize})`,
      counts: ledger.counts,
      notes: `written by the fake in ${seconds(writtenMs)}; all accepted/rejected after ${seconds(decidedMs)}; ` +
        `drained after ${seconds(drainedMs)}; peak RSS ${peakRss?.toFixed(0) ?? "?"} MiB (idle ${
          idleRss?.toFixed(0) ?? "?"
        } MiB; ` +
        `asserted < ${options.maxPeakRssMiB} MiB); rejected as full = ${
          drained.value("aurora_events_rejected_total", { reason: "full" })
        }; ` +
        `aurora_messages_received_total = ${received.value("aurora_messages_received_total")}; ${runs.length} Letta runs`
    })

    expect(exit).toEqual({ code: 0, signal: null })
    expect(ledger.strays).toEqual([])
    expect(ledger.counts.accepted + ledger.counts.rejected).toBe(options.mentions)
    expect(ledger.counts.accepted).toBeGreaterThanOrEqual(options.guilds * options.queuesize)
    expect(ledger.counts).toMatchObject({
      sent: options.mentions,
      delivered: ledger.counts.accepted,
      resent: 0,
      deadLettered: 0,
      duplicated: 0,
      lost: 0
    })
    expect(peakRss).not.toBeNull()
    expect(peakRss!).toBeLessThan(options.maxPeakRssMiB)
    expect(stored.pending).toEqual([])
    return row
  })

export const burstDefaults: BurstOptions = {
  guilds: 10,
  channelsPerGuild: 10,
  mentions: 10_000,
  queuesize: 200,
  maxPeakRssMiB: 1024
}
