/**
 * Events Aurora holds on purpose, and their release: a paused guild keeps queueing across a
 * restart until `/aurora events resume`; events held by an open circuit breaker go the moment an
 * owner runs `/aurora events resetcircuit`. Both through the slash command, as an operator would.
 */
import { expect } from "@effect/vitest"
import { Effect } from "effect"
import type { FakeDiscord, FakeGuild } from "../../fakes/FakeDiscord.js"
import { bounded, messageOf } from "../AuroraProcess.js"
import {
  freePort,
  idle,
  mention,
  metricsWhen,
  oneGuildStage,
  range,
  readStoredQueue,
  seconds,
  startAurora,
  stop
} from "../fixtures.js"
import { deliveredCount, ledgerOf, messageIdOf } from "../ledger.js"
import type { RecordRow } from "../report.js"

/** `/aurora <group> <subcommand>` in the guild's first channel as alice (the application's owner); the reply as JSON text. */
const slash = (discord: FakeDiscord, guild: FakeGuild, group: string, subcommand: string) =>
  Effect.gen(function*() {
    const interaction = yield* discord.sendInteraction({
      guildId: guild.id,
      channelId: guild.channels[0]!.id,
      permissions: "32",
      data: {
        name: "aurora",
        type: 1,
        options: [{ type: 2, name: group, options: [{ type: 1, name: subcommand, options: [] }] }]
      }
    })
    yield* bounded(
      `the /aurora ${group} ${subcommand} reply`,
      discord.waitForRequest(() => discord.interactionReply(interaction.token) !== undefined, "30 seconds")
    )
    return JSON.stringify(discord.interactionReply(interaction.token))
  })

/**
 * `events pause`, 10 mentions (queued, none sent), SIGTERM, a restart on the same data directory
 * (still paused: nothing sent), `events resume`: each mention answered exactly once.
 */
export const pausedRestartResume = (record: RecordRow) =>
  Effect.gen(function*() {
    const { agentId, channels, dataDir, discord, guild, letta } = yield* oneGuildStage({
      g: 20,
      channels: 5,
      agentId: "agent-paused",
      agentName: "Paused Agent"
    })
    const first = yield* startAurora(discord, { lettaUrl: letta.url, dataDir, httpPort: yield* freePort })
    const paused = yield* slash(discord, guild, "events", "pause")
    const sent = yield* Effect.forEach(range(10), (i) => mention(discord, channels[i % channels.length]!, `while paused ${i}`))
    const atSigterm = yield* metricsWhen(first, (m) => m.value("aurora_events_enqueued_total") === 10, "all 10 accepted")
    const requestsBeforeRestart = (yield* letta.messageRequests()).length
    const firstExit = yield* stop(first)

    const second = yield* startAurora(discord, { lettaUrl: letta.url, dataDir, httpPort: yield* freePort })
    const replayed = yield* metricsWhen(second, (m) => m.sum("aurora_queue_pending_events") === 10, "the 10 replayed")
    const replayLine = second.lines().find((line) => messageOf(line).startsWith("recovery:"))
    const requestsAfterRestart = (yield* letta.messageRequests()).length
    const resumeAt = Date.now()
    const resumed = yield* slash(discord, guild, "events", "resume")
    const sentIds = new Set(sent)
    yield* bounded(
      "all 10 delivered after the resume",
      letta.awaitRuns((runs, requests) => deliveredCount(sentIds, runs, requests) === sent.length),
      "60 seconds"
    )
    const allDeliveredMs = Date.now() - resumeAt
    const requests = yield* letta.messageRequests(agentId)
    const firstRequestMs = Math.min(...requests.map((r) => r.at)) - resumeAt
    yield* metricsWhen(second, idle, "the restarted Aurora to be idle")
    const secondExit = yield* stop(second)
    const stored = yield* readStoredQueue(dataDir)
    const ledger = ledgerOf({
      sent,
      rejected: atSigterm.sum("aurora_events_rejected_total"),
      accepted: atSigterm.value("aurora_events_enqueued_total"),
      requests: yield* letta.requests,
      runs: yield* letta.runs,
      deadLetters: stored.deadLetters
    })
    const row = record({
      fault: "Paused guild: 10 mentions, SIGTERM, restart (still paused), /aurora events resume",
      counts: ledger.counts,
      notes: `${atSigterm.sum("aurora_queue_pending_events")} pending at SIGTERM, ${requestsBeforeRestart} sent to Letta; ` +
        `exit ${firstExit.code}; restart: "${messageOf(replayLine ?? { raw: "" })}", still paused ` +
        `(${replayed.sum("aurora_queue_pending_events")} pending, ${requestsAfterRestart} sent); ` +
        `resume → first request after ${seconds(firstRequestMs)}, all delivered in ${seconds(allDeliveredMs)} ` +
        `(one agent, one run at a time); pending rows left: ${stored.pending.length}`
    })

    expect(paused).toContain("Paused in this server")
    expect(resumed).toContain("Resumed in this server: 10 queued message(s)")
    expect(firstExit).toEqual({ code: 0, signal: null })
    expect(secondExit).toEqual({ code: 0, signal: null })
    expect(requestsBeforeRestart).toBe(0)
    expect(requestsAfterRestart).toBe(0)
    expect(ledger.strays).toEqual([])
    expect(ledger.counts).toMatchObject({
      sent: 10,
      accepted: 10,
      delivered: 10,
      resent: 0,
      deadLettered: 0,
      duplicated: 0,
      lost: 0
    })
    expect(stored.pending).toEqual([])
    return row
  })

/**
 * Letta refuses connections until the breaker opens and every mention is held; Letta comes back,
 * and an owner resets the breaker at once: every held mention reaches Letta within 2 s of the
 * reset (not at the end of the 60 s cool-down), each exactly once.
 */
export const breakerManualReset = (record: RecordRow) =>
  Effect.gen(function*() {
    const { agentId, channels, dataDir, discord, guild, letta } = yield* oneGuildStage({
      g: 21,
      channels: 10,
      agentId: "agent-reset",
      agentName: "Reset Agent"
    })
    const aurora = yield* startAurora(discord, { lettaUrl: letta.url, dataDir, httpPort: yield* freePort })
    yield* letta.goOffline
    const downAt = Date.now()
    const sent = yield* Effect.forEach(channels, (channelId, i) => mention(discord, channelId, `during the outage ${i}`))
    const opened = yield* aurora.waitForLog((line) => line["breakerTo"] === "OPEN", "the breaker to open", "30 seconds")
    const held = yield* metricsWhen(
      aurora,
      (m) => m.sum("aurora_queue_pending_events") === 10 && m.sum("aurora_runs_in_flight") === 0,
      "every mention held"
    )
    yield* letta.goOnline

    const resetAt = Date.now()
    const reply = yield* slash(discord, guild, "events", "resetcircuit")
    const sentIds = new Set(sent)
    yield* bounded(
      "all 10 delivered after the reset",
      letta.awaitRuns((runs, requests) => deliveredCount(sentIds, runs, requests) === sent.length),
      "60 seconds"
    )
    const allDeliveredMs = Date.now() - resetAt
    const requests = yield* letta.messageRequests(agentId)
    const firstRequestMs = Math.min(...requests.map((r) => r.at)) - resetAt
    const lastRequestMs = Math.max(...requests.map((r) => r.at)) - resetAt
    const after = yield* metricsWhen(aurora, idle, "Aurora to be idle")
    const exit = yield* stop(aurora)
    const stored = yield* readStoredQueue(dataDir)
    const ledger = ledgerOf({
      sent,
      rejected: after.sum("aurora_events_rejected_total"),
      accepted: after.value("aurora_events_enqueued_total"),
      requests: yield* letta.requests,
      runs: yield* letta.runs,
      deadLetters: stored.deadLetters
    })
    const openedAtMs = Date.parse(String(opened["timestamp"])) - downAt
    const row = record({
      fault: "Breaker opened (Letta refusing connections), Letta back, /aurora events resetcircuit",
      counts: ledger.counts,
      notes: `breaker OPEN ${seconds(openedAtMs)} after Letta went down; ${held.sum("aurora_queue_pending_events")} held, ` +
        `0 in flight; reset → first request after ${firstRequestMs} ms, all 10 reached Letta within ${lastRequestMs} ms, ` +
        `all delivered in ${seconds(allDeliveredMs)} (one agent, one run at a time; cool-down left unused: ` +
        `${seconds(60_000 - (resetAt - Date.parse(String(opened["timestamp"]))))}); ` +
        `aurora_circuit_breaker_state = ${after.value("aurora_circuit_breaker_state")} after`
    })

    expect(reply).toContain("Circuit breaker reset: 🔴 OPEN → 🟢 CLOSED. Held events are dispatched now.")
    expect(exit).toEqual({ code: 0, signal: null })
    expect(lastRequestMs).toBeLessThan(2_000)
    expect(requests.map(messageIdOf).sort()).toEqual([...sent].sort())
    expect(ledger.strays).toEqual([])
    expect(ledger.counts).toMatchObject({
      sent: 10,
      accepted: 10,
      delivered: 10,
      resent: 0,
      deadLettered: 0,
      duplicated: 0,
      lost: 0
    })
    expect(stored.pending).toEqual([])
    return row
  })
