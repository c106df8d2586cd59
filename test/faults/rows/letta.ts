/**
 * Rows 3 and 4: Letta failing under Aurora — down altogether (connection refused) for 90 s, and
 * the matrix of failing answers (500, 429 with Retry-After, a hang past the timeout, a mid-stream
 * `event: error`).
 */
import { expect } from "@effect/vitest"
import { Duration, Effect } from "effect"
import { FakeDiscord, type FakeGuild } from "../../fakes/FakeDiscord.js"
import { type Behaviour, Behaviours, Items, makeFakeLetta } from "../../fakes/FakeLetta.js"
import { type AuroraProcess, bounded, type Metrics } from "../AuroraProcess.js"
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

/** Breaker transitions Aurora logged, as "CLOSED→OPEN at 3.2 s" relative to `origin`. */
const breakerTimeline = (aurora: AuroraProcess, origin: number) =>
  aurora.lines().flatMap((line) => {
    const to = line["breakerTo"]
    const from = line["breakerFrom"]
    const at = typeof line["timestamp"] === "string" ? Date.parse(line["timestamp"]) : NaN
    return typeof to === "string" && typeof from === "string" ? [{ from, to, atMs: at - origin }] : []
  })

/** The breaker state whose `aurora_circuit_breaker_state{state}` series is 1 ("none" if none is). */
const breakerStateOf = (metrics: Metrics): string =>
  ["closed", "half_open", "open"].find((state) => metrics.value("aurora_circuit_breaker_state", { state }) === 1) ?? "none"

export interface LettaDownOptions {
  /** How long Letta refuses connections (the issue: 90 s). */
  readonly outage: Duration.DurationInput
  readonly mentions: number
}

/**
 * Letta refuses connections for the whole outage while the mentions arrive, spread evenly over
 * it. The breaker must open; nothing is dropped; once Letta listens again, every event is
 * delivered exactly once without anyone's help.
 */
export const lettaDown = (record: RecordRow, options: LettaDownOptions) =>
  Effect.gen(function*() {
    const { guild, dataDir, discord, letta } = yield* oneGuildStage({
      g: 4,
      channels: 10,
      agentId: "agent-outage",
      agentName: "Outage Agent"
    })
    const aurora = yield* startAurora(discord, { lettaUrl: letta.url, dataDir, httpPort: yield* freePort })

    const outageMs = Duration.toMillis(options.outage)
    const spacingMs = Math.floor((outageMs - 3_000) / options.mentions)
    const channels = channelIds(guild)
    yield* letta.goOffline
    const downAt = Date.now()
    // The arrival pattern is part of the fault: a mention every `spacingMs` while Letta is down.
    const sent: Array<string> = []
    for (const i of range(options.mentions)) {
      yield* Effect.sleep(Duration.millis(Math.max(0, downAt + i * spacingMs - Date.now())))
      sent.push(yield* mention(discord, channels[i % channels.length]!, `during the outage ${i}`))
    }
    const opened = yield* aurora.waitForLog((line) => line["breakerTo"] === "OPEN", "the breaker to open", "30 seconds")
    const duringOutage = yield* aurora.metrics
    const requestsDuringOutage = (yield* letta.messageRequests()).length
    yield* Effect.sleep(Duration.millis(Math.max(0, downAt + outageMs - Date.now())))
    yield* letta.goOnline
    const upAt = Date.now()

    const sentIds = new Set(sent)
    yield* bounded(
      `all ${options.mentions} delivered after Letta is back`,
      letta.awaitRuns((runs, requests) => deliveredCount(sentIds, runs, requests) === sent.length),
      "150 seconds"
    )
    const allDeliveredMs = Date.now() - upAt
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
    const timeline = breakerTimeline(aurora, downAt)
    const row = record({
      fault: `Letta down (connection refused) for ${seconds(outageMs)} while ${options.mentions} mentions arrive`,
      counts: ledger.counts,
      notes: `breaker (s after Letta went down): ${timeline.map((t) => `${t.from}→${t.to} ${seconds(t.atMs)}`).join(", ")}; ` +
        `aurora_circuit_breaker_state at 1: ${breakerStateOf(duringOutage)} during the outage, ` +
        `${breakerStateOf(after)} after; ${
          duringOutage.sum("aurora_queue_pending_events")
        } pending at the end of the arrivals; ` +
        `Letta back → all delivered in ${seconds(allDeliveredMs)}; ` +
        `aurora_runs_total{outcome="connection_error"} = ${after.value("aurora_runs_total", { outcome: "connection_error" })}, ` +
        `{outcome="circuit_open"} = ${after.value("aurora_runs_total", { outcome: "circuit_open" })}`
    })

    expect(exit).toEqual({ code: 0, signal: null })
    expect(Date.parse(String(opened["timestamp"]))).toBeLessThan(upAt)
    expect(duringOutage.value("aurora_circuit_breaker_state", { state: "closed" })).toBe(0)
    expect(requestsDuringOutage).toBe(0)
    expect(breakerStateOf(after)).toBe("closed")
    expect(ledger.strays).toEqual([])
    expect(ledger.counts).toMatchObject({
      sent: options.mentions,
      accepted: options.mentions,
      delivered: options.mentions,
      deadLettered: 0,
      rejected: 0,
      duplicated: 0,
      lost: 0
    })
    expect(stored.pending).toEqual([])
    return row
  })

interface MatrixCase {
  readonly name: string
  readonly agentId: string
  readonly guild: FakeGuild
  /** What the agent answers, in order; then a normal run. */
  readonly script: ReadonlyArray<Behaviour>
}

/** `/aurora events errors` through the fake interaction path: the "By error type" lines, parsed. */
const errorStatsByType = (discord: FakeDiscord, guildId: string, channelId: string) =>
  Effect.gen(function*() {
    const interaction = yield* discord.sendInteraction({
      guildId,
      channelId,
      permissions: "32",
      data: {
        name: "aurora",
        type: 1,
        options: [{ type: 2, name: "events", options: [{ type: 1, name: "errors", options: [] }] }]
      }
    })
    const embedOf = () => {
      const embeds = discord.interactionReply(interaction.token)?.["embeds"]
      return Array.isArray(embeds) ? embeds[0] : undefined
    }
    yield* bounded("the /aurora events errors reply", discord.waitForRequest(() => embedOf() !== undefined, "30 seconds"))
    const fields: unknown = embedOf()?.["fields"]
    const byType = Array.isArray(fields)
      ? fields.find((field: unknown) =>
        typeof field === "object" && field !== null && Reflect.get(field, "name") === "By error type"
      )
      : undefined
    const text = String(Reflect.get(byType ?? {}, "value") ?? "")
    return Object.fromEntries(
      [...text.matchAll(/`([A-Za-z]+)`: (\d+)/g)].map((match) => [match[1] ?? "", Number(match[2])])
    )
  })

/**
 * One guild and agent per failure, all at once: 500 once; 429 with Retry-After 2 s once; no
 * answer until the guild's 10 s timeout once; a mid-stream `event: error` (a failed run); 503
 * three times in a row (the dispatch's retries run out, the event is held and tried again).
 */
export const lettaErrorMatrix = (record: RecordRow) =>
  Effect.gen(function*() {
    const cases: ReadonlyArray<MatrixCase> = [
      { name: "500", agentId: "agent-500", guild: textGuild(10, 1), script: [Behaviours.status(500)] },
      {
        name: "429",
        agentId: "agent-429",
        guild: textGuild(11, 1),
        script: [Behaviours.status(429, { detail: "slow down" }, { "retry-after": "2" })]
      },
      { name: "hang", agentId: "agent-hang", guild: textGuild(12, 1), script: [Behaviours.hangBeforeHeaders()] },
      {
        name: "event: error",
        agentId: "agent-error",
        guild: textGuild(13, 1),
        script: [
          Behaviours.errorEvent([Items.reasoning("Let me think.")], { errorType: "internal_error", message: "step failed" })
        ]
      },
      {
        name: "503 ×3",
        agentId: "agent-503",
        guild: textGuild(14, 1),
        script: [Behaviours.status(503), Behaviours.status(503), Behaviours.status(503)]
      }
    ]
    const discord = yield* FakeDiscord.make({ guilds: cases.map((c) => c.guild) })
    const letta = yield* makeFakeLetta({ agents: Object.fromEntries(cases.map((c) => [c.agentId, c.name])) })
    for (const c of cases) yield* letta.script(c.agentId, ...c.script)
    const dataDir = yield* tempDir
    yield* seedSettings(
      dataDir,
      cases.map((c) => ({ guildId: c.guild.id, agentId: c.agentId, settings: { ratelimit: 0.5, timeout: 10 } }))
    )
    const aurora = yield* startAurora(discord, { lettaUrl: letta.url, dataDir, httpPort: yield* freePort })

    const sentAt = Date.now()
    const sent = yield* Effect.forEach(cases, (c) => mention(discord, c.guild.channels[0]!.id, `matrix ${c.name}`))
    const sentIds = new Set(sent)
    const expectedDelivered = cases.filter((c) => c.name !== "event: error").length
    yield* bounded(
      "the matrix to settle",
      letta.awaitRuns((runs, requests) => deliveredCount(sentIds, runs, requests) === expectedDelivered),
      "90 seconds"
    )
    const settledMs = Date.now() - sentAt
    const after = yield* metricsWhen(aurora, idle, "Aurora to be idle")
    const errors = yield* errorStatsByType(discord, cases[0]!.guild.id, cases[0]!.guild.channels[0]!.id)
    const exit = yield* stop(aurora)
    const stored = yield* readStoredQueue(dataDir)
    const requests = yield* letta.requests
    const ledger = ledgerOf({
      sent,
      rejected: after.sum("aurora_events_rejected_total"),
      accepted: after.value("aurora_events_enqueued_total"),
      requests,
      runs: yield* letta.runs,
      deadLetters: stored.deadLetters
    })
    const traceOf = (i: number) => ledger.traces.get(sent[i]!)
    const gapsOf = (i: number) => {
      const at = traceOf(i)?.requests.map((r) => r.at) ?? []
      return at.slice(1).map((t, k) => seconds(t - at[k]!))
    }
    const describeCase = (c: MatrixCase, i: number) => {
      const trace = traceOf(i)
      const outcome = trace?.deadLetter !== undefined
        ? `dead letter ${trace.deadLetter.reason} (${trace.deadLetter.errorType ?? "?"})`
        : trace !== undefined && trace.replies > 0
        ? "delivered"
        : "nothing"
      return `${c.name}: ${trace?.requests.length ?? 0} request(s), gaps ${gapsOf(i).join("/") || "—"}, ${outcome}`
    }
    const row = record({
      fault: "Letta 500 / 429 (Retry-After 2 s) / hang past the 10 s timeout / mid-stream event: error / 503 ×3",
      counts: ledger.counts,
      notes: `${cases.map(describeCase).join("; ")}; settled in ${seconds(settledMs)}; ErrorStats by type: ` +
        `${Object.entries(errors).map(([type, n]) => `${type} ${n}`).join(", ")}; ` +
        `aurora_run_retries_total = ${after.value("aurora_run_retries_total")}, ` +
        `aurora_dead_letters_total{reason="failed"} = ${after.value("aurora_dead_letters_total", { reason: "failed" })}`
    })

    expect(exit).toEqual({ code: 0, signal: null })
    expect(ledger.strays).toEqual([])
    // 500, 429, hang: one failure, one retry, delivered once.
    for (const i of [0, 1, 2]) expect(traceOf(i)).toMatchObject({ replies: 1, completed: 1, deadLetter: undefined })
    for (const i of [0, 1, 2]) expect(traceOf(i)?.requests).toHaveLength(2)
    // Retry-After is a floor on the delay; the hang lasts the guild's timeout.
    const requestGap = (i: number) => traceOf(i)!.requests[1]!.at - traceOf(i)!.requests[0]!.at
    expect(requestGap(1)).toBeGreaterThanOrEqual(1_900)
    expect(requestGap(2)).toBeGreaterThanOrEqual(9_500)
    // A failed run: one request, a dead letter `failed`, never re-sent.
    expect(traceOf(3)?.requests).toHaveLength(1)
    expect(traceOf(3)?.deadLetter).toMatchObject({ reason: "failed", errorType: "RunFailed" })
    // 503 three times: the dispatch's retries run out, the event is held and tried again, then delivered.
    expect(traceOf(4)?.requests).toHaveLength(4)
    expect(traceOf(4)).toMatchObject({ replies: 1, completed: 1, deadLetter: undefined })
    // Every failed attempt is in ErrorStats, by type.
    expect(errors).toMatchObject({ LettaServerError: 4, LettaRateLimited: 1, LettaTimeout: 1, RunFailed: 1 })
    expect(after.value("aurora_dead_letters_total", { reason: "failed" })).toBe(1)
    expect(ledger.counts).toMatchObject({
      sent: 5,
      accepted: 5,
      delivered: 4,
      resent: 4,
      deadLettered: 1,
      rejected: 0,
      duplicated: 0,
      lost: 0
    })
    expect(stored.pending).toEqual([])
    return row
  })
