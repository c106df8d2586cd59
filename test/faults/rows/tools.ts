/**
 * A built-in `discord_send` killed mid-call (`tools` = `builtin`): SIGKILL while Discord holds the
 * answer to the post Aurora makes for the agent's client tool call (recorded as started in the
 * `tool_calls` table just before, its stop in `open_stops`), then a restart on the same data
 * directory, which answers the cut-off stop (programs/StopTakeUp.ts).
 */
import { expect } from "@effect/vitest"
import { Effect } from "effect"
import { Behaviours, Items } from "../../fakes/FakeLetta.js"
import { bounded } from "../AuroraProcess.js"
import { freePort, idle, mention, metricsWhen, oneGuildStage, readStoredQueue, startAurora, stop } from "../fixtures.js"
import type { RecordRow } from "../report.js"

const content = "Hello from the built-in tool"

/**
 * The agent calls Aurora's `discord_send`; the fake Discord creates the message but holds its
 * HTTP answer, and Aurora is killed while it waits: the call is recorded as started, without a
 * result. The channel must end with that one message, never a second: the restart never runs a
 * recorded call again, and the event (the agent had acted) follows interrupted-after-reply. The
 * fake Letta keeps that conversation waiting (409 to any new message) until the stop is answered:
 * the restart answers it exactly once, with an error "interrupted" (the take-up's continuation
 * plays the agent's short reply). A mention in the same channel, sent as soon as the restarted
 * Aurora is up (so it may meet the 409 while the take-up runs: busy, retried), is answered, and a
 * mention in another channel (its own conversation) too.
 */
export const sigkillDuringBuiltinSend = (record: RecordRow) =>
  Effect.gen(function*() {
    const { channels, dataDir, discord, letta, agentId } = yield* oneGuildStage({
      g: 31,
      channels: 2,
      agentId: "agent-tools-kill",
      agentName: "Tools Agent",
      settings: { tools: "builtin" }
    })
    const [channelId, otherChannel] = [channels[0]!, channels[1]!]
    yield* letta.script(
      agentId,
      // The killed call: its post is held, and Aurora is killed while it waits.
      Behaviours.clientToolCall({ name: "discord_send", args: { channelId, message: content }, toolCallId: "call-kill" }),
      // The take-up's continuation after the restart: the agent acknowledges the interruption.
      Behaviours.run({ items: [Items.assistant("my message may not have gone out")] }),
      // The mentions after the restart, in the order the fake admits them (a 409 takes no behaviour).
      Behaviours.clientToolCall({
        name: "discord_send",
        args: { channelId, message: "same channel answer" },
        toolCallId: "call-same"
      }),
      Behaviours.run({ items: [Items.assistant("sent it")] }),
      Behaviours.clientToolCall({
        name: "discord_send",
        args: { channelId: otherChannel, message: "marker answer" },
        toolCallId: "call-marker"
      }),
      Behaviours.run({ items: [Items.assistant("sent the marker")] })
    )
    const isSendTo =
      (target: string, text: string) => (request: { readonly method: string; readonly path: string; readonly body: unknown }) =>
        request.method === "POST" && request.path === `/channels/${target}/messages` &&
        typeof request.body === "object" && request.body !== null && "content" in request.body && request.body.content === text

    const first = yield* startAurora(discord, { lettaUrl: letta.url, dataDir, httpPort: yield* freePort })
    yield* discord.holdPosts()
    const trigger = yield* mention(discord, channelId, "say hello")
    yield* bounded("the built-in send (held by the fake)", discord.waitForRequest(isSendTo(channelId, content), "30 seconds"))
    yield* first.kill("SIGKILL")
    const firstExit = yield* bounded("Aurora to die", first.exit)
    yield* discord.releasePosts()

    const second = yield* startAurora(discord, { lettaUrl: letta.url, dataDir, httpPort: yield* freePort })
    const same = yield* mention(discord, channelId, "are you there?")
    yield* bounded("the same channel's send", discord.waitForRequest(isSendTo(channelId, "same channel answer"), "30 seconds"))
    yield* bounded("the same channel's continuation", letta.awaitContinuation(2))
    const marker = yield* mention(discord, otherChannel, "marker")
    yield* bounded("the marker's send", discord.waitForRequest(isSendTo(otherChannel, "marker answer"), "30 seconds"))
    yield* bounded("the marker's continuation", letta.awaitContinuation(3))
    const afterRestart = yield* metricsWhen(second, idle, "the restarted Aurora to be idle")
    const secondExit = yield* stop(second)
    const stored = yield* readStoredQueue(dataDir)

    const sends = discord.requests().filter(isSendTo(channelId, content))
    const continuations = yield* letta.continuations
    const ofKilled = continuations.filter((c) => c.toolCallId === "call-kill")
    const letter = stored.deadLetters.find((l) => l.messageId === trigger)
    const sameLetter = stored.deadLetters.find((l) => l.messageId === same)
    const refusedPending = (yield* letta.messageRequests(agentId)).filter((r) => r.rejected === "pending-approval").length
    const row = record({
      fault: "SIGKILL while a built-in discord_send's post is held (recorded as started) → restart",
      counts: {
        sent: 3,
        accepted: 3,
        delivered: 3,
        resent: 0,
        deadLettered: stored.deadLetters.length,
        rejected: 0,
        duplicated: Math.max(0, sends.length - 1),
        lost: sends.length === 0 ? 1 : 0
      },
      notes: `POSTs of the killed call's message: ${sends.length}; continuations answering it after the restart: ` +
        `${ofKilled.length}${
          ofKilled.map((c) => ` (${c.outcome}, ${c.status}: ${String(c.toolReturn).slice(0, 40)})`).join("")
        }; ` +
        `the event: ${letter === undefined ? "not dead-lettered" : `dead letter ${letter.reason}`}; ` +
        `a mention in the same channel after the restart answered (${refusedPending} 409 "waiting for approval" ` +
        `met on the way, retried as busy); the marker in another channel answered; ` +
        `aurora_tool_calls_total{executor="aurora",tool="discord_send",status="success"} after the restart = ${
          afterRestart.value("aurora_tool_calls_total", { executor: "aurora", status: "success", tool: "discord_send" })
        }`
    })

    expect(firstExit.signal).toBe("SIGKILL")
    expect(secondExit).toEqual({ code: 0, signal: null })
    // Posted at most once: Discord created it before the kill, and nothing posted it again.
    expect(sends).toHaveLength(1)
    // Answered exactly once after the restart, never as a success by a re-run: "interrupted".
    expect(ofKilled).toHaveLength(1)
    expect(ofKilled[0]).toMatchObject({ outcome: "accepted", type: "tool", status: "error" })
    expect(String(ofKilled[0]?.toolReturn)).toContain("interrupted")
    expect(letter).toMatchObject({ reason: "interrupted-after-reply" })
    // The conversation is no longer stuck: the same channel's next mention is answered, not a 409 dead letter.
    expect(sameLetter).toBeUndefined()
    expect(discord.requests().filter(isSendTo(channelId, "same channel answer"))).toHaveLength(1)
    expect(discord.requests().filter(isSendTo(otherChannel, "marker answer"))).toHaveLength(1)
    void marker
    return row
  })
