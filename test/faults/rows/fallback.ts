/**
 * The silent-run fallback killed mid-post: SIGKILL while Discord holds the answer to the fallback
 * post that Aurora recorded in its journal just before sending it, then a restart on the same
 * data directory.
 */
import { expect } from "@effect/vitest"
import { Effect } from "effect"
import { field } from "../../fakes/discord/Payloads.js"
import { Behaviours, Items } from "../../fakes/FakeLetta.js"
import { bounded, messageOf } from "../AuroraProcess.js"
import { freePort, idle, mention, metricsWhen, oneGuildStage, readStoredQueue, seconds, startAurora, stop } from "../fixtures.js"
import { ledgerOf, messageIdOf } from "../ledger.js"
import type { RecordRow } from "../report.js"

const recoveredLine = "recovery: the fallback reply was recorded before the restart; not posted again"

/**
 * The agent only writes text (no Discord tool): Aurora records the fallback, then posts it. The
 * fake Discord creates the message (stored, echoed on the gateway: it is in the channel) but
 * holds its HTTP answer; Aurora is killed while it waits. So the channel has exactly one bot reply
 * that Aurora never learned about: the restart must find the record and neither post again nor
 * run the agent again. (The other case, the post never reaching Discord, would leave zero
 * replies: the record makes Aurora give up the reply rather than risk a second one.) A second
 * text-only mention after the restart gets its own reply: the fallback still works.
 */
export const sigkillAfterFallbackRecorded = (record: RecordRow) =>
  Effect.gen(function*() {
    const { channels, dataDir, discord, letta } = yield* oneGuildStage({
      g: 30,
      channels: 1,
      agentId: "agent-fallback-kill",
      agentName: "Fallback Agent",
      defaultBehaviour: Behaviours.run({ items: [Items.reasoning("No tool, just text."), Items.assistant("The answer is 42.")] })
    })
    const channelId = channels[0]!
    const first = yield* startAurora(discord, { lettaUrl: letta.url, dataDir, httpPort: yield* freePort })
    const isReplyTo =
      (messageId: string) => (request: { readonly method: string; readonly path: string; readonly body: unknown }) =>
        request.method === "POST" && request.path === `/channels/${channelId}/messages` &&
        field(field(request.body, "message_reference"), "message_id") === messageId

    yield* discord.holdPosts()
    const trigger = yield* mention(discord, channelId, "what is the answer?")
    const held = yield* bounded("the fallback post (held by the fake)", discord.waitForRequest(isReplyTo(trigger), "30 seconds"))
    const accepted = yield* first.metrics
    yield* first.kill("SIGKILL")
    const firstExit = yield* bounded("Aurora to die", first.exit)
    yield* discord.releasePosts()

    const restartAt = Date.now()
    const second = yield* startAurora(discord, { lettaUrl: letta.url, dataDir, httpPort: yield* freePort })
    // One more text-only mention in the channel: it is dispatched after anything the restart put
    // back in the channel's queue, so once its own fallback reply is posted, a second reply to the
    // first mention would have been posted too.
    const marker = yield* mention(discord, channelId, "marker")
    yield* bounded("the marker's fallback reply", discord.waitForRequest(isReplyTo(marker), "30 seconds"))
    const afterRestart = yield* metricsWhen(second, idle, "the restarted Aurora to be idle")
    const recovered = second.lines().find((line) => messageOf(line) === recoveredLine && line["messageId"] === trigger)
    const secondExit = yield* stop(second)
    const stored = yield* readStoredQueue(dataDir)

    const replyPosts = discord.requests().filter(isReplyTo(trigger))
    const replies = discord.botRepliesTo(trigger)
    const requests = yield* letta.requests
    const runsOfTrigger = requests.filter((request) => request.kind === "messages" && messageIdOf(request) === trigger)
    const ledger = ledgerOf({
      sent: [trigger, marker],
      rejected: accepted.sum("aurora_events_rejected_total"),
      requests,
      runs: yield* letta.runs,
      deadLetters: stored.deadLetters,
      fallbackReplies: new Map([[trigger, replies.length], [marker, discord.botRepliesTo(marker).length]])
    })
    const row = record({
      fault: "SIGKILL while the fallback post's answer is held (recorded, created in Discord) → restart",
      counts: ledger.counts,
      notes: `the post reached the fake at +${seconds(held.at - (runsOfTrigger[0]?.at ?? held.at))} after the run started; ` +
        `killed while its answer was held; restart → "${recovered === undefined ? "no recovery line" : messageOf(recovered)}" ` +
        `${recovered === undefined ? "" : seconds(Date.parse(String(recovered["timestamp"])) - restartAt)} after; ` +
        `bot replies to the mention: ${replies.length} (POST requests: ${replyPosts.length}); ` +
        `runs of the mention: ${runsOfTrigger.length}; dead letters: ${stored.deadLetters.length}; ` +
        `after the restart, aurora_silent_runs_total{action="posted"} = ${
          afterRestart.value("aurora_silent_runs_total", { action: "posted" })
        } (the marker's reply)`
    })

    expect(firstExit.signal).toBe("SIGKILL")
    expect(secondExit).toEqual({ code: 0, signal: null })
    // Exactly one reply in the channel, from one POST: the restart posted nothing.
    expect(replies).toHaveLength(1)
    expect(replyPosts).toHaveLength(1)
    // Not sent to the agent again, not dead-lettered, nothing left pending.
    expect(runsOfTrigger).toHaveLength(1)
    expect(stored.deadLetters).toEqual([])
    expect(stored.pending).toEqual([])
    expect(recovered).toBeDefined()
    // The marker's fallback reply, and nothing else, after the restart.
    expect(afterRestart.value("aurora_silent_runs_total", { action: "posted" })).toBe(1)
    expect(afterRestart.sum("aurora_silent_runs_total")).toBe(1)
    expect(ledger.strays).toEqual([])
    expect(ledger.counts).toMatchObject({ sent: 2, delivered: 2, resent: 0, deadLettered: 0, duplicated: 0, lost: 0 })
    return row
  })
