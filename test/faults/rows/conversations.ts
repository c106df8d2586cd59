/**
 * Conversations (`conversations` = channel, the default) under faults: Aurora killed while a
 * conversation's run is going, and a conversation that answers busy again and again. On the fake
 * Letta, as on the real server, a client that leaves does not stop a conversation's run: a run
 * Aurora forgot to cancel would answer every later send 409.
 */
import { expect } from "@effect/vitest"
import { Effect } from "effect"
import { Behaviours, Items } from "../../fakes/FakeLetta.js"
import { bounded, messageOf, type Metrics } from "../AuroraProcess.js"
import { freePort, idle, mention, metricsWhen, oneGuildStage, readStoredQueue, seconds, startAurora, stop } from "../fixtures.js"
import { deliveredCount, ledgerOf } from "../ledger.js"
import type { RecordRow } from "../report.js"

const breakerStateOf = (metrics: Metrics): string =>
  ["closed", "half_open", "open"].find((state) => metrics.value("aurora_circuit_breaker_state", { state }) === 1) ?? "none"

/**
 * SIGKILL while a conversation's run is going, before any tool call: the run goes on on the server
 * (holding the conversation). After the restart the recorded run is cancelled through the
 * conversation, then the event is sent again, once, in the same conversation.
 */
export const sigkillInConversation = (record: RecordRow) =>
  Effect.gen(function*() {
    const { agentId, channels, dataDir, discord, letta } = yield* oneGuildStage({
      g: 20,
      channels: 1,
      agentId: "agent-conv-kill",
      agentName: "Conversation Kill"
    })
    // The marker comes after the run id in the same stream: once Aurora logs it, the run id and its
    // conversation are in the journal.
    yield* letta.script(agentId, Behaviours.hangAfter([Items.reasoning("marker-conversation: thinking, no tool yet")]))
    const first = yield* startAurora(discord, { lettaUrl: letta.url, dataDir, httpPort: yield* freePort, logLevel: "debug" })
    const cut = yield* mention(discord, channels[0]!, "killed mid-conversation")
    yield* first.waitForLog(
      (line) => line["messageId"] === cut && messageOf(line).includes("marker-conversation"),
      "the marker log line"
    )
    const accepted = yield* first.metrics
    yield* first.kill("SIGKILL")
    const firstExit = yield* bounded("Aurora to die", first.exit)
    const [conversation] = yield* letta.conversations
    const stillRunning = yield* letta.conversationInFlight(conversation?.id ?? "?")

    const restartAt = Date.now()
    const second = yield* startAurora(discord, { lettaUrl: letta.url, dataDir, httpPort: yield* freePort })
    const sentIds = new Set([cut])
    yield* bounded(
      "the re-sent run to be delivered",
      letta.awaitRuns((runs, requests) => deliveredCount(sentIds, runs, requests) === 1)
    )
    const deliveredMs = Date.now() - restartAt
    const after = yield* metricsWhen(second, idle, "the restarted Aurora to be idle")
    const secondExit = yield* stop(second)
    const stored = yield* readStoredQueue(dataDir)
    const requests = yield* letta.requests
    const sends = requests.filter((r) => r.kind === "messages")
    const cancelRequests = requests.filter((r) => r.kind === "cancel")
    const cancels = yield* letta.cancels
    const ledger = ledgerOf({
      sent: [cut],
      rejected: accepted.sum("aurora_events_rejected_total"),
      accepted: accepted.value("aurora_events_enqueued_total"),
      requests,
      runs: yield* letta.runs,
      deadLetters: stored.deadLetters
    })
    const row = record({
      fault: "SIGKILL during a conversation run, before any tool call → restart",
      counts: ledger.counts,
      notes:
        `run ${sends[0]?.runId ?? "?"} still holding ${conversation?.id ?? "?"} after the kill (${stillRunning} in flight); ` +
        `cancelled through the conversation (${cancelRequests.map((r) => r.path).join(", ") || "no cancel"}` +
        `${(cancelRequests[0]?.seq ?? Infinity) < (sends[1]?.seq ?? 0) ? ", before the re-send" : ""}); ` +
        `re-sent once to ${sends[1]?.conversationId ?? "?"}, delivered ${seconds(deliveredMs)} after the restart; ` +
        `${sends.filter((r) => r.rejected === "busy").length} busy answer(s); no dead letter`
    })

    expect(firstExit.signal).toBe("SIGKILL")
    expect(secondExit).toEqual({ code: 0, signal: null })
    expect(stillRunning).toBe(1)
    // Cancelled through the conversation (never by run id on the agents route), before the re-send.
    expect(cancels).toEqual([
      { agentId, runIds: undefined, conversationId: conversation?.id, cancelledRunIds: [sends[0]?.runId] }
    ])
    expect(cancelRequests.map((r) => r.path)).toEqual([`/v1/conversations/${conversation?.id}/cancel`])
    expect(cancelRequests[0]!.seq).toBeLessThan(sends[1]!.seq)
    // Re-sent exactly once, in the same conversation, never answered busy.
    expect(sends.map((r) => [r.conversationId, r.rejected])).toEqual([
      [conversation?.id, undefined],
      [conversation?.id, undefined]
    ])
    expect(yield* letta.conversations).toHaveLength(1)
    expect(ledger.counts).toMatchObject({ sent: 1, delivered: 1, resent: 1, deadLettered: 0, duplicated: 0, lost: 0 })
    expect(after.value("aurora_dead_letters_total", { reason: "interrupted" })).toBe(0)
    expect(stored).toEqual({ deadLetters: [], pending: [] })
    return row
  })

/**
 * The conversation answers 409 busy five times (another client's run, as far as Aurora can tell):
 * the event waits 1, 2, 4, 8 and 16 s at the front of its channel and is delivered once; no
 * breaker failure, no dead letter, every busy answer counted.
 */
export const busyStorm = (record: RecordRow) =>
  Effect.gen(function*() {
    const { agentId, channels, dataDir, discord, letta } = yield* oneGuildStage({
      g: 21,
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
