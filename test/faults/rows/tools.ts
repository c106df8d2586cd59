/**
 * A built-in `discord_send` killed mid-call (`tools` = `builtin`): SIGKILL while Discord holds the
 * answer to the post Aurora makes for the agent's client tool call (recorded as started in the
 * `tool_calls` table just before), then a restart on the same data directory.
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
 * recorded call again, and the event (the agent had acted) follows interrupted-after-reply. A
 * mention in another channel (its own conversation) after the restart is answered normally.
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
      // The killed call's run never continues: the next behaviour is the marker's.
      Behaviours.clientToolCall({ name: "discord_send", args: { channelId, message: content }, toolCallId: "call-kill" }),
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
    const marker = yield* mention(discord, otherChannel, "marker")
    yield* bounded("the marker's send", discord.waitForRequest(isSendTo(otherChannel, "marker answer"), "30 seconds"))
    yield* bounded("the marker's continuation", letta.awaitContinuation(1))
    const afterRestart = yield* metricsWhen(second, idle, "the restarted Aurora to be idle")
    const secondExit = yield* stop(second)
    const stored = yield* readStoredQueue(dataDir)

    const sends = discord.requests().filter(isSendTo(channelId, content))
    const continuations = yield* letta.continuations
    const ofKilled = continuations.filter((c) => c.toolCallId === "call-kill")
    const letter = stored.deadLetters.find((l) => l.messageId === trigger)
    const row = record({
      fault: "SIGKILL while a built-in discord_send's post is held (recorded as started) → restart",
      counts: {
        sent: 2,
        accepted: 2,
        delivered: 2,
        resent: 0,
        deadLettered: stored.deadLetters.length,
        rejected: 0,
        duplicated: Math.max(0, sends.length - 1),
        lost: sends.length === 0 ? 1 : 0
      },
      notes: `POSTs of the killed call's message: ${sends.length}; continuations answering it: ${ofKilled.length}` +
        `${ofKilled.map((c) => ` (${c.status}: ${String(c.toolReturn).slice(0, 40)})`).join("")}; ` +
        `the event: ${letter === undefined ? "not dead-lettered" : `dead letter ${letter.reason}`}; ` +
        `the marker in another channel answered after the restart; ` +
        `aurora_tool_calls_total{executor="aurora",tool="discord_send",status="success"} after the restart = ${
          afterRestart.value("aurora_tool_calls_total", { executor: "aurora", status: "success", tool: "discord_send" })
        }`
    })

    expect(firstExit.signal).toBe("SIGKILL")
    expect(secondExit).toEqual({ code: 0, signal: null })
    // Posted at most once: Discord created it before the kill, and nothing posted it again.
    expect(sends).toHaveLength(1)
    // Never answered as a success by a re-run: either not answered, or answered "interrupted".
    expect(ofKilled.every((c) => c.status === "error" && String(c.toolReturn).startsWith("interrupted"))).toBe(true)
    expect(letter).toMatchObject({ reason: "interrupted-after-reply" })
    expect(discord.requests().filter(isSendTo(otherChannel, "marker answer"))).toHaveLength(1)
    void marker
    return row
  })
