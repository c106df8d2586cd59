/**
 * Conversations (`conversations` = channel, the default) under faults: Aurora killed while a
 * conversation's run is going, and a conversation that answers busy again and again. On the fake
 * Letta, as on the real server, a client that leaves does not stop a conversation's run: a run
 * Aurora forgot to cancel would answer every later send 409.
 */
import { expect } from "@effect/vitest"
import { Effect } from "effect"
import { FakeDiscord } from "../../fakes/FakeDiscord.js"
import { Behaviours, Items, makeFakeLetta } from "../../fakes/FakeLetta.js"
import { bounded, messageOf, type Metrics } from "../AuroraProcess.js"
import {
  freePort,
  idle,
  mention,
  metricsWhen,
  oneGuildStage,
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

const breakerStateOf = (metrics: Metrics): string =>
  ["closed", "half_open", "open"].find((state) => metrics.value("aurora_circuit_breaker_state", { state }) === 1) ?? "none"

/**
 * SIGKILL while two conversations' runs are going, one before any tool call, one after the
 * agent's `discord_send`; both go on on the server, holding their conversations. After the restart:
 * the first is cancelled through its conversation, then sent again, once, in the same
 * conversation; the second is dead-lettered `interrupted-after-reply`, never sent again, and its
 * run cancelled through its conversation during the start. Two guilds, two agents, one process.
 */
export const sigkillInConversation = (record: RecordRow) =>
  Effect.gen(function*() {
    const before = textGuild(20, 1)
    const after = textGuild(21, 1)
    const agentBefore = "agent-conv-before"
    const agentAfter = "agent-conv-after"
    const discord = yield* FakeDiscord.make({ guilds: [before, after] })
    const letta = yield* makeFakeLetta({ agents: { [agentBefore]: "Before", [agentAfter]: "After" } })
    // The markers come after what matters in the same stream: once Aurora logs one, the run id
    // with its conversation (or the side effect) is in its journal.
    yield* letta.script(agentBefore, Behaviours.hangAfter([Items.reasoning("marker-before: thinking, no tool yet")]))
    yield* letta.script(
      agentAfter,
      Behaviours.hangAfter([
        Items.toolCall("discord_send", { channel_id: after.channels[0]!.id, content: "Hi!" }, "call-send-conv"),
        Items.reasoning("marker-after: answered, still working")
      ])
    )
    const dataDir = yield* tempDir
    yield* seedSettings(dataDir, [
      { guildId: before.id, agentId: agentBefore, settings: { ratelimit: 0.5 } },
      { guildId: after.id, agentId: agentAfter, settings: { ratelimit: 0.5 } }
    ])
    const first = yield* startAurora(discord, { lettaUrl: letta.url, dataDir, httpPort: yield* freePort, logLevel: "debug" })
    const cutBefore = yield* mention(discord, before.channels[0]!.id, "killed mid-conversation before acting")
    const cutAfter = yield* mention(discord, after.channels[0]!.id, "killed mid-conversation after acting")
    const marker = (text: string, messageId: string) =>
      first.waitForLog((line) => line["messageId"] === messageId && messageOf(line).includes(text), `the "${text}" log line`)
    yield* marker("marker-before", cutBefore)
    yield* marker("marker-after", cutAfter)
    const accepted = yield* first.metrics
    yield* first.kill("SIGKILL")
    const firstExit = yield* bounded("Aurora to die", first.exit)
    const conversationOf = (agentId: string) =>
      Effect.map(letta.conversations, (all) => all.find((c) => c.agentId === agentId)?.id ?? "?")
    const convBefore = yield* conversationOf(agentBefore)
    const convAfter = yield* conversationOf(agentAfter)
    const heldAfterKill = (yield* letta.conversationInFlight(convBefore)) + (yield* letta.conversationInFlight(convAfter))

    const restartAt = Date.now()
    const second = yield* startAurora(discord, { lettaUrl: letta.url, dataDir, httpPort: yield* freePort })
    const sentIds = new Set([cutBefore, cutAfter])
    yield* bounded(
      "the re-sent run to be delivered",
      letta.awaitRuns((runs, requests) => deliveredCount(sentIds, runs, requests) === 2)
    )
    const deliveredMs = Date.now() - restartAt
    const afterRestart = yield* metricsWhen(second, idle, "the restarted Aurora to be idle")
    const secondExit = yield* stop(second)
    const stored = yield* readStoredQueue(dataDir)
    const requests = yield* letta.requests
    const sendsTo = (conversationId: string) =>
      requests.filter((r) => r.kind === "messages" && r.conversationId === conversationId)
    const cancelOf = (conversationId: string) =>
      requests.find((r) => r.kind === "cancel" && r.path === `/v1/conversations/${conversationId}/cancel`)
    const cancels = yield* letta.cancels
    const common = {
      rejected: accepted.sum("aurora_events_rejected_total"),
      requests,
      runs: yield* letta.runs,
      deadLetters: stored.deadLetters
    }
    const beforeLedger = ledgerOf({ ...common, sent: [cutBefore], accepted: 1 })
    const afterLedger = ledgerOf({ ...common, sent: [cutAfter], accepted: 1 })
    const [firstSend, resend] = sendsTo(convBefore)
    const letterOf = (id: string) => stored.deadLetters.find((letter) => letter.messageId === id)
    const rowBefore = record({
      fault: "SIGKILL during a conversation run, before any tool call → restart",
      counts: beforeLedger.counts,
      notes: `run ${firstSend?.runId ?? "?"} kept ${convBefore} busy after the kill; cancelled through the conversation ` +
        `(${cancelOf(convBefore) === undefined ? "no cancel seen" : "cancel sent"}` +
        `${(cancelOf(convBefore)?.seq ?? Infinity) < (resend?.seq ?? 0) ? ", before the re-send" : ""}); ` +
        `re-sent once to ${resend?.conversationId ?? "?"}, delivered ${seconds(deliveredMs)} after the restart; ` +
        `${sendsTo(convBefore).filter((r) => r.rejected === "busy").length} busy answer(s); no dead letter`
    })
    const rowAfter = record({
      fault: "SIGKILL during a conversation run, after the agent's discord_send → restart",
      counts: afterLedger.counts,
      notes: `dead letter "${letterOf(cutAfter)?.reason ?? "none"}"; not re-sent (${sendsTo(convAfter).length} send in all); ` +
        `its run cancelled through ${convAfter} during the start (${
          cancelOf(convAfter) === undefined ? "no cancel seen" : "cancel sent"
        })`
    })

    expect(firstExit.signal).toBe("SIGKILL")
    expect(secondExit).toEqual({ code: 0, signal: null })
    expect(accepted.value("aurora_events_enqueued_total")).toBe(2)
    // Both runs outlived the client, as on the real server.
    expect(heldAfterKill).toBe(2)
    // Cancelled through the conversations (never by run id on the agents route), the first before its re-send.
    expect([...cancels].sort((a, b) => String(a.conversationId).localeCompare(String(b.conversationId)))).toEqual(
      [
        { agentId: agentBefore, runIds: undefined, conversationId: convBefore, cancelledRunIds: [firstSend?.runId] },
        { agentId: agentAfter, runIds: undefined, conversationId: convAfter, cancelledRunIds: [sendsTo(convAfter)[0]?.runId] }
      ].sort((a, b) => a.conversationId.localeCompare(b.conversationId))
    )
    expect(cancelOf(convBefore)!.seq).toBeLessThan(resend!.seq)
    // Before acting: re-sent exactly once, in the same conversation, never answered busy.
    expect(sendsTo(convBefore).map((r) => r.rejected)).toEqual([undefined, undefined])
    expect(beforeLedger.counts).toMatchObject({ sent: 1, delivered: 1, resent: 1, deadLettered: 0, duplicated: 0, lost: 0 })
    // After acting: a dead letter, never sent again.
    expect(letterOf(cutAfter)).toMatchObject({ reason: "interrupted-after-reply", errorType: null })
    expect(sendsTo(convAfter)).toHaveLength(1)
    expect(afterLedger.counts).toMatchObject({ sent: 1, delivered: 1, resent: 0, deadLettered: 1, duplicated: 0, lost: 0 })
    expect(yield* letta.conversations).toHaveLength(2)
    expect(afterRestart.value("aurora_dead_letters_total", { reason: "interrupted-after-reply" })).toBe(1)
    expect(stored.pending).toEqual([])
    return [rowBefore, rowAfter] as const
  })

/**
 * The conversation answers 409 busy five times (another client's run, as far as Aurora can tell):
 * the event waits 1, 2, 4, 8 and 16 s at the front of its channel and is delivered once; no
 * breaker failure, no dead letter, every busy answer counted.
 */
export const busyStorm = (record: RecordRow) =>
  Effect.gen(function*() {
    const { agentId, channels, dataDir, discord, letta } = yield* oneGuildStage({
      g: 22,
      channels: 1,
      agentId: "agent-busy-storm",
      agentName: "Busy Storm"
    })
    yield* letta.scriptBusyForAgent(agentId, 5)
    const aurora = yield* startAurora(discord, { lettaUrl: letta.url, dataDir, httpPort: yield* freePort })
    const sentAt = Date.now()
    const sent = yield* mention(discord, channels[0]!, "through the storm")
    yield* bounded(
      "the event to be delivered after the storm",
      letta.awaitRuns((runs, requests) => deliveredCount(new Set([sent]), runs, requests) === 1),
      "90 seconds"
    )
    const deliveredMs = Date.now() - sentAt
    const after = yield* metricsWhen(aurora, idle, "Aurora to be idle")
    const exit = yield* stop(aurora)
    const stored = yield* readStoredQueue(dataDir)
    const requests = yield* letta.requests
    const sends = requests.filter((r) => r.kind === "messages")
    const ledger = ledgerOf({
      sent: [sent],
      rejected: after.sum("aurora_events_rejected_total"),
      accepted: after.value("aurora_events_enqueued_total"),
      requests,
      runs: yield* letta.runs,
      deadLetters: stored.deadLetters
    })
    const gaps = sends.slice(1).map((r, i) => r.at - sends[i]!.at)
    const row = record({
      fault: "409 storm: the conversation answers busy 5 times",
      counts: ledger.counts,
      notes: `${sends.length} sends, ${sends.filter((r) => r.rejected === "busy").length} answered busy; waits between them ` +
        `${gaps.map((gap) => seconds(gap)).join(", ")}; delivered ${seconds(deliveredMs)} after the mention; ` +
        `aurora_conversation_busy_total = ${after.value("aurora_conversation_busy_total")}; breaker ${breakerStateOf(after)}; ` +
        `aurora_runs_total{outcome="conversation_busy"} = ${after.value("aurora_runs_total", { outcome: "conversation_busy" })}`
    })

    expect(exit).toEqual({ code: 0, signal: null })
    expect(sends.map((r) => r.rejected ?? "run")).toEqual(["busy", "busy", "busy", "busy", "busy", "run"])
    // 1, 2, 4, 8, 16 s (the request's own latency on a loaded machine may shorten a gap slightly).
    gaps.forEach((gap, i) => expect(gap).toBeGreaterThanOrEqual(1_000 * 2 ** i - 150))
    expect(after.value("aurora_conversation_busy_total")).toBe(5)
    expect(breakerStateOf(after)).toBe("closed")
    expect(after.sum("aurora_dead_letters_total")).toBe(0)
    expect(ledger.strays).toEqual([])
    expect(ledger.counts).toMatchObject({
      sent: 1,
      accepted: 1,
      delivered: 1,
      resent: 0,
      deadLettered: 0,
      duplicated: 0,
      lost: 0
    })
    expect(stored).toEqual({ deadLetters: [], pending: [] })
    return row
  })
