/**
 * Built-in tools killed mid-call (`tools` = `builtin`): SIGKILL while Discord holds the answer to
 * the request Aurora makes for the agent's client tool call (a post, a read; recorded as started
 * in the `tool_calls` table just before, its stop in `open_stops`), then a restart on the same
 * data directory, which answers the cut-off stop (programs/StopTakeUp.ts): the mention gets one
 * answer, never two.
 */
import { expect } from "@effect/vitest"
import { Effect } from "effect"
import { Behaviours, Items } from "../../fakes/FakeLetta.js"
import { bounded } from "../AuroraProcess.js"
import { freePort, idle, mention, metricsWhen, oneGuildStage, readStoredQueue, startAurora, stop } from "../fixtures.js"
import type { RecordRow } from "../report.js"

const content = "Hello from the built-in tool"

type DiscordRequest = { readonly method: string; readonly path: string; readonly body: unknown }

const isSendTo = (target: string, text: string) => (request: DiscordRequest) =>
  request.method === "POST" && request.path === `/channels/${target}/messages` &&
  typeof request.body === "object" && request.body !== null && "content" in request.body && request.body.content === text

const isPostTo = (target: string) => (request: DiscordRequest) =>
  request.method === "POST" && request.path === `/channels/${target}/messages`

/**
 * The agent calls Aurora's `discord_send`; the fake Discord creates the message but holds its
 * HTTP answer, and Aurora is killed while it waits: the call is recorded as started, without a
 * result. The channel must end with that one message, never a second: the restart never runs a
 * recorded call again, and the event (the agent had acted) follows interrupted-after-reply. The
 * fake Letta keeps that conversation waiting (409 to any new message) until the stop is answered:
 * the restart answers it exactly once, with an error "interrupted" (the take-up's continuation
 * plays the agent's short reply, which is not posted by the fallback: the send may have gone out,
 * so the run has answered). A mention in the same channel, sent as soon as the restarted
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
    const fallbackPosts = discord.requests().filter(isSendTo(channelId, "my message may not have gone out"))
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
        duplicated: Math.max(0, sends.length - 1) + fallbackPosts.length,
        lost: sends.length === 0 ? 1 : 0
      },
      notes: `POSTs of the killed call's message: ${sends.length}; continuations answering it after the restart: ` +
        `${ofKilled.length}${
          ofKilled.map((c) => ` (${c.outcome}, ${c.status}: ${String(c.toolReturn).slice(0, 40)})`).join("")
        }; ` +
        `the event: ${letter === undefined ? "not dead-lettered" : `dead letter ${letter.reason}`}; ` +
        `fallback posts of the continuation's text: ${fallbackPosts.length}; ` +
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
    // Nor answered a second time by the fallback: the interrupted send counts as the run's answer.
    expect(fallbackPosts).toHaveLength(0)
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

const answer = "Here is what was said in this channel"

/**
 * The agent calls Aurora's `discord_read_messages`; the fake Discord holds the read's answer and
 * Aurora is killed while it waits: the run had not acted (a read), its stop is open. At the
 * restart the mention must be answered exactly once: by the take-up's continuation (the read
 * answered "interrupted", then the agent's `discord_send`), never also by a replay of the mention
 * (its prompt is sent once, the conversation never cancelled), and never by a fallback post after
 * the send. A mention in another channel afterwards is answered too.
 */
export const sigkillDuringBuiltinRead = (record: RecordRow) =>
  Effect.gen(function*() {
    const { channels, dataDir, discord, letta, agentId } = yield* oneGuildStage({
      g: 32,
      channels: 2,
      agentId: "agent-read-kill",
      agentName: "Reader Agent",
      settings: { tools: "builtin" }
    })
    const [channelId, otherChannel] = [channels[0]!, channels[1]!]
    const question = "what was said here?"
    yield* letta.script(
      agentId,
      // The killed call: its read is held, and Aurora is killed while it waits.
      Behaviours.clientToolCall({ name: "discord_read_messages", args: { channelId, limit: 10 }, toolCallId: "call-read" }),
      // The take-up's continuation after the restart: the agent answers with Aurora's send, then ends.
      Behaviours.clientToolCall({ name: "discord_send", args: { channelId, message: answer }, toolCallId: "call-answer" }),
      Behaviours.run({ items: [Items.assistant("answered in the channel")] }),
      // The marker in another channel, once the take-up is over.
      Behaviours.clientToolCall({
        name: "discord_send",
        args: { channelId: otherChannel, message: "marker answer" },
        toolCallId: "call-marker"
      }),
      Behaviours.run({ items: [Items.assistant("sent the marker")] })
    )
    const isReadOf = (target: string) => (request: DiscordRequest) =>
      request.method === "GET" && request.path === `/channels/${target}/messages`

    const first = yield* startAurora(discord, { lettaUrl: letta.url, dataDir, httpPort: yield* freePort })
    yield* discord.holdReads()
    const trigger = yield* mention(discord, channelId, question)
    yield* bounded("the built-in read (held by the fake)", discord.waitForRequest(isReadOf(channelId), "30 seconds"))
    yield* first.kill("SIGKILL")
    const firstExit = yield* bounded("Aurora to die", first.exit)
    yield* discord.releaseReads()

    const second = yield* startAurora(discord, { lettaUrl: letta.url, dataDir, httpPort: yield* freePort })
    yield* bounded("the take-up's answer", discord.waitForRequest(isSendTo(channelId, answer), "30 seconds"))
    yield* bounded("the take-up's last continuation", letta.awaitContinuation(2))
    const marker = yield* mention(discord, otherChannel, "marker")
    yield* bounded("the marker's send", discord.waitForRequest(isSendTo(otherChannel, "marker answer"), "30 seconds"))
    yield* bounded("the marker's continuation", letta.awaitContinuation(3))
    yield* metricsWhen(second, idle, "the restarted Aurora to be idle")
    const secondExit = yield* stop(second)
    const stored = yield* readStoredQueue(dataDir)

    // Every bot post in the mention's channel: its answers, however they came.
    const answers = discord.requests().filter(isPostTo(channelId))
    const prompts = (yield* letta.messageRequests(agentId)).filter((r) => JSON.stringify(r.body).includes(question))
    const ofRead = (yield* letta.continuations).filter((c) => c.toolCallId === "call-read")
    const conversationCancels = (yield* letta.cancels).filter((c) => c.conversationId !== undefined)
    const row = record({
      fault: "SIGKILL while a built-in discord_read_messages' read is held (its stop open) → restart",
      counts: {
        sent: 2,
        accepted: 2,
        delivered: (answers.length > 0 ? 1 : 0) + 1,
        resent: Math.max(0, prompts.length - 1),
        deadLettered: stored.deadLetters.length,
        rejected: 0,
        duplicated: Math.max(0, answers.length - 1),
        lost: answers.length === 0 ? 1 : 0
      },
      notes: `bot posts in the mention's channel: ${answers.length}; prompts of the mention sent to Letta: ` +
        `${prompts.length}; continuations answering the killed read: ${ofRead.length}${
          ofRead.map((c) => ` (${c.outcome}, ${c.status}: ${String(c.toolReturn).slice(0, 40)})`).join("")
        }; conversation cancels: ${conversationCancels.length}; pending after: ${stored.pending.length}; ` +
        `the marker in another channel answered`
    })

    expect(firstExit.signal).toBe("SIGKILL")
    expect(secondExit).toEqual({ code: 0, signal: null })
    // Exactly one answer to the mention: the take-up's send; no replay's, no fallback's.
    expect(answers).toHaveLength(1)
    expect(answers.filter(isSendTo(channelId, answer))).toHaveLength(1)
    // The mention was never sent again, nor its conversation cancelled (the take-up continued it).
    expect(prompts).toHaveLength(1)
    expect(conversationCancels).toEqual([])
    // The read answered once, "interrupted", never run again after the restart.
    expect(ofRead).toHaveLength(1)
    expect(ofRead[0]).toMatchObject({ outcome: "accepted", type: "tool", status: "error" })
    expect(String(ofRead[0]?.toolReturn)).toContain("interrupted")
    expect(discord.requests().filter(isReadOf(channelId))).toHaveLength(1)
    // Done: nothing pending, nothing dead-lettered.
    expect(stored.pending).toEqual([])
    expect(stored.deadLetters.find((l) => l.messageId === trigger)).toBeUndefined()
    expect(discord.requests().filter(isSendTo(otherChannel, "marker answer"))).toHaveLength(1)
    void marker
    return row
  })
