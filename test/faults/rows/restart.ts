/**
 * Rows 1 and 2: Aurora stopped (SIGTERM) or killed (SIGKILL) with events pending or in flight,
 * then started again on the same data directory.
 */
import { expect } from "@effect/vitest"
import { Effect } from "effect"
import { FakeDiscord } from "../../fakes/FakeDiscord.js"
import { Behaviours, Items, makeFakeLetta } from "../../fakes/FakeLetta.js"
import { bounded, messageOf } from "../AuroraProcess.js"
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
 * SIGTERM while one run is in flight and 20 events wait: the run finishes within the grace
 * period, the 20 stay on disk, exit 0; the restart delivers them, each exactly once.
 */
export const sigtermWithPending = (record: RecordRow) =>
  Effect.gen(function*() {
    // Slow runs, one agent: one run at a time, the rest wait in the queue. Slow enough that the
    // first run is still going when all 21 are accepted, even on a loaded machine.
    const { agentId, guild, dataDir, discord, letta } = yield* oneGuildStage({
      g: 1,
      channels: 10,
      agentId: "agent-sigterm",
      agentName: "Sigterm Agent",
      defaultBehaviour: Behaviours.run({ delayMs: 5000 }),
      // One run of the agent at a time across its channels (conversations.ts has channel mode).
      settings: { conversations: "shared" }
    })
    const spawnOptions = { lettaUrl: letta.url, dataDir, env: { AURORA_SHUTDOWN_GRACE: "30 seconds" } }
    const first = yield* startAurora(discord, { ...spawnOptions, httpPort: yield* freePort })

    const channels = channelIds(guild)
    const sent = yield* Effect.forEach(range(21), (i) => mention(discord, channels[i % channels.length]!, `sigterm ${i}`))
    yield* bounded("the first run to start", letta.awaitMessages(1, agentId))
    const atSigterm = yield* metricsWhen(first, (m) => m.value("aurora_events_enqueued_total") === 21, "all 21 accepted")
    const pendingAtSigterm = atSigterm.sum("aurora_queue_pending_events")
    const inFlightAtSigterm = atSigterm.sum("aurora_runs_in_flight")

    const sigtermAt = Date.now()
    const firstExit = yield* stop(first)
    const stopMs = Date.now() - sigtermAt
    const runsBeforeRestart = (yield* letta.runs).length

    // The restart answers at once.
    yield* letta.setDefault(Behaviours.run())
    const restartAt = Date.now()
    const second = yield* startAurora(discord, { ...spawnOptions, httpPort: yield* freePort })
    const sentIds = new Set(sent)
    yield* bounded(
      "all 21 events delivered",
      letta.awaitRuns((runs, requests) => deliveredCount(sentIds, runs, requests) === sent.length),
      "90 seconds"
    )
    const allDeliveredMs = Date.now() - restartAt
    yield* metricsWhen(second, idle, "the restarted Aurora to be idle")
    const replayLine = second.lines().find((line) => messageOf(line).startsWith("recovery:"))
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
      fault: "SIGTERM with 20 events pending (1 run in flight, slow Letta) → restart on the same data dir",
      counts: ledger.counts,
      notes: `${pendingAtSigterm} pending + ${inFlightAtSigterm} in flight at SIGTERM; exit ${firstExit.code} after ` +
        `${seconds(stopMs)} (in-flight run finished in the grace period; ${runsBeforeRestart} run(s) before the restart); ` +
        `restart → all delivered in ${seconds(allDeliveredMs)}; "${messageOf(replayLine ?? { raw: "" })}"; ` +
        `pending rows left: ${stored.pending.length}`
    })

    expect(firstExit).toEqual({ code: 0, signal: null })
    expect(secondExit).toEqual({ code: 0, signal: null })
    expect(pendingAtSigterm).toBe(20)
    expect(inFlightAtSigterm).toBe(1)
    expect(runsBeforeRestart).toBe(1)
    expect(ledger.strays).toEqual([])
    expect(ledger.counts).toMatchObject({
      sent: 21,
      accepted: 21,
      delivered: 21,
      resent: 0,
      deadLettered: 0,
      duplicated: 0,
      lost: 0
    })
    expect(stored.pending).toEqual([])
    return row
  })

/**
 * SIGKILL with two runs cut off: one before any tool call (re-sent once after its run is
 * cancelled on the server), one after the agent's `discord_send` (dead letter
 * `interrupted-after-reply`, never re-sent). Two guilds, two agents, one process.
 */
export const sigkillMidRun = (record: RecordRow) =>
  Effect.gen(function*() {
    const before = textGuild(2, 1)
    const after = textGuild(3, 1)
    const agentBefore = "agent-kill-before"
    const agentAfter = "agent-kill-after"
    const discord = yield* FakeDiscord.make({ guilds: [before, after] })
    const letta = yield* makeFakeLetta({ agents: { [agentBefore]: "Before", [agentAfter]: "After" } })
    // The marker reasoning item comes after what matters, in the same stream: Aurora handles items
    // in order, so once it logs the marker, the run id (or the side effect) is in its journal.
    yield* letta.script(agentBefore, Behaviours.hangAfter([Items.reasoning("marker-before: thinking, no tool yet")]))
    yield* letta.script(
      agentAfter,
      Behaviours.hangAfter([
        Items.reasoning("I will answer."),
        Items.toolCall("discord_send", { channel_id: after.channels[0]!.id, content: "Hi!" }, "call-send-kill"),
        Items.reasoning("marker-after: answered, still working")
      ])
    )
    const dataDir = yield* tempDir
    yield* seedSettings(dataDir, [
      // The agents route, cancelled by run id (conversations.ts has the run cut off in a conversation).
      { guildId: before.id, agentId: agentBefore, settings: { ratelimit: 0.5, conversations: "shared" } },
      { guildId: after.id, agentId: agentAfter, settings: { ratelimit: 0.5, conversations: "shared" } }
    ])
    const first = yield* startAurora(discord, { lettaUrl: letta.url, dataDir, httpPort: yield* freePort, logLevel: "debug" })

    const cutBefore = yield* mention(discord, before.channels[0]!.id, "killed before acting")
    const cutAfter = yield* mention(discord, after.channels[0]!.id, "killed after acting")
    const marker = (text: string, messageId: string) =>
      first.waitForLog((line) => line["messageId"] === messageId && messageOf(line).includes(text), `the "${text}" log line`)
    yield* marker("marker-before", cutBefore)
    yield* marker("marker-after", cutAfter)
    const accepted = yield* first.metrics
    const [firstRun] = yield* letta.messageRequests(agentBefore)
    yield* first.kill("SIGKILL")
    const firstExit = yield* bounded("Aurora to die", first.exit)

    const restartAt = Date.now()
    const second = yield* startAurora(discord, { lettaUrl: letta.url, dataDir, httpPort: yield* freePort })
    const resent = yield* bounded("the re-send", letta.awaitMessages(2, agentBefore))
    const sentIds = new Set([cutBefore, cutAfter])
    yield* bounded(
      "the re-sent run to be delivered",
      letta.awaitRuns((runs, requests) => deliveredCount(sentIds, runs, requests) === 2)
    )
    const resentMs = resent.at - restartAt
    const afterRestart = yield* metricsWhen(second, idle, "the restarted Aurora to be idle")
    const secondExit = yield* stop(second)
    const stored = yield* readStoredQueue(dataDir)
    const requests = yield* letta.requests
    const cancels = requests.filter((request) => request.kind === "cancel")
    const cancelOfCutRun = cancels.find((request) => JSON.stringify(request.body).includes(firstRun?.runId ?? "?"))
    const letterOf = (id: string) => stored.deadLetters.find((letter) => letter.messageId === id)

    const common = {
      rejected: accepted.sum("aurora_events_rejected_total"),
      requests,
      runs: yield* letta.runs,
      deadLetters: stored.deadLetters
    }
    const beforeLedger = ledgerOf({ ...common, sent: [cutBefore], accepted: 1 })
    const afterLedger = ledgerOf({ ...common, sent: [cutAfter], accepted: 1 })
    const rowBefore = record({
      fault: "SIGKILL during a run, before any tool call → restart",
      counts: beforeLedger.counts,
      notes:
        `recorded run ${firstRun?.runId ?? "?"} cancelled on the server (${
          cancelOfCutRun === undefined ? "no cancel seen" : "cancel sent"
        }` +
        `${cancelOfCutRun !== undefined && cancelOfCutRun.seq < resent.seq ? ", before the re-send" : ""}); ` +
        `re-sent once ${seconds(resentMs)} after the restart; no dead letter`
    })
    const rowAfter = record({
      fault: "SIGKILL after the agent's discord_send was streamed → restart",
      counts: afterLedger.counts,
      notes: `dead letter "${letterOf(cutAfter)?.reason ?? "none"}" (attempts ${letterOf(cutAfter)?.attempts ?? "?"}); ` +
        `not re-sent (${afterLedger.traces.get(cutAfter)?.requests.length ?? 0} request in all); ` +
        `aurora_dead_letters_total{reason="interrupted-after-reply"} = ${
          afterRestart.value("aurora_dead_letters_total", { reason: "interrupted-after-reply" })
        }`
    })

    expect(firstExit.signal).toBe("SIGKILL")
    expect(secondExit).toEqual({ code: 0, signal: null })
    expect(accepted.value("aurora_events_enqueued_total")).toBe(2)
    // Before acting: its recorded run is cancelled, then it is sent exactly once more and delivered.
    expect(cancelOfCutRun).toBeDefined()
    expect(cancelOfCutRun!.seq).toBeLessThan(resent.seq)
    expect(beforeLedger.traces.get(cutBefore)).toMatchObject({ replies: 1, completed: 1, deadLetter: undefined })
    expect(beforeLedger.traces.get(cutBefore)?.requests).toHaveLength(2)
    expect(beforeLedger.counts).toMatchObject({ sent: 1, delivered: 1, resent: 1, deadLettered: 0, duplicated: 0, lost: 0 })
    // After acting: a dead letter, never sent again.
    expect(letterOf(cutAfter)).toMatchObject({ reason: "interrupted-after-reply", errorType: null })
    expect(afterLedger.traces.get(cutAfter)?.requests).toHaveLength(1)
    expect(afterLedger.counts).toMatchObject({ sent: 1, delivered: 1, resent: 0, deadLettered: 1, duplicated: 0, lost: 0 })
    expect(afterRestart.value("aurora_dead_letters_total", { reason: "interrupted-after-reply" })).toBe(1)
    expect(stored.pending).toEqual([])
    return [rowBefore, rowAfter] as const
  })
