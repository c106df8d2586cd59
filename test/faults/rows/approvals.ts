/**
 * A pending approval across a SIGKILL (#16): a run stopped for a person's approval of a server
 * tool, its message with buttons posted, then Aurora killed and restarted on the same data
 * directory. The buttons of the message posted before the restart still work; an approval whose
 * deadline passed while Aurora was down is denied at start-up.
 */
import { SqlClient } from "@effect/sql"
import { SqliteClient } from "@effect/sql-sqlite-node"
import { expect } from "@effect/vitest"
import * as Path from "node:path"
import { Duration, Effect } from "effect"
import { databaseFileName } from "../../../src/services/storage/Database.js"
import { field, type Json } from "../../fakes/discord/Payloads.js"
import { type FakeDiscord, world } from "../../fakes/FakeDiscord.js"
import { Behaviours, Items } from "../../fakes/FakeLetta.js"
import { bounded } from "../AuroraProcess.js"
import { freePort, idle, mention, metricsWhen, oneGuildStage, readStoredQueue, startAurora, stop } from "../fixtures.js"
import { ledgerOf, messageIdOf } from "../ledger.js"
import type { RecordRow } from "../report.js"

const email = { to: "ops@example.com", body: "the build is red" }

/** Re-reads `read` until `ok` holds (callers bound the wait). */
const eventually = <A>(read: () => A, ok: (a: A) => boolean): Effect.Effect<A> =>
  Effect.gen(function*() {
    for (;;) {
      const a = read()
      if (ok(a)) return a
      yield* Effect.sleep(Duration.millis(50))
    }
  })

/** The bot's messages replying to `messageId` once there are `n`. */
const repliesTo = (discord: FakeDiscord, messageId: string, n: number, label: string) =>
  bounded(label, eventually(() => discord.botRepliesTo(messageId), (posts) => posts.length >= n), "30 seconds")

const buttonsOf = (message: Json | undefined) =>
  ((field(message, "components") ?? []) as ReadonlyArray<{ components: ReadonlyArray<Json> }>).flatMap((row) => row.components)

/** The last line (the state) of each call's field in the message's embed. */
const stateOf = (message: Json | undefined) => {
  const embeds = (field(message, "embeds") ?? []) as ReadonlyArray<Json>
  const fields = (embeds[0]?.["fields"] ?? []) as ReadonlyArray<{ readonly value: string }>
  return fields.map((f) => f.value.split("\n").at(-1))
}

/** Moves the approval posted as `approvalMessageId` past its deadline, while Aurora is down. */
const expireWhileDown = (dataDir: string, approvalMessageId: string) =>
  Effect.scoped(
    Effect.gen(function*() {
      const sql = yield* SqlClient.SqlClient
      // Asked two minutes ago with a timeout of one minute (SET reads the old values).
      yield* sql`UPDATE approvals SET requested_at = requested_at - 120000, deadline = requested_at - 60000
        WHERE approval_message_id = ${approvalMessageId}`
      const rows = yield* sql<{ readonly n: number }>`SELECT count(*) AS n FROM approvals
        WHERE approval_message_id = ${approvalMessageId} AND deadline < ${Date.now()}`
      return rows[0]?.n ?? 0
    }).pipe(Effect.provide(SqliteClient.layer({ filename: Path.join(dataDir, databaseFileName), disableWAL: true })))
  )

const storedApprovals = (dataDir: string) =>
  Effect.scoped(
    Effect.gen(function*() {
      const sql = yield* SqlClient.SqlClient
      const rows = yield* sql<{ readonly n: number }>`SELECT count(*) AS n FROM approvals`
      return rows[0]?.n ?? 0
    }).pipe(Effect.provide(SqliteClient.layer({ filename: Path.join(dataDir, databaseFileName), disableWAL: true })))
  )

/**
 * Two mentions in two channels (two conversations), each stopping for approval of `send_email`;
 * both approval messages posted, the first process idle (both events ended `awaiting-approval`),
 * then SIGKILL. While Aurora is down, the second approval's deadline is moved into the past (a
 * `approvaltimeout` of 1 minute that ran out during the outage, without waiting a minute). After
 * the restart: the second is denied at start-up (its message edited through REST, the run
 * continued with approve: false), and an admin's click on the first message, posted by the killed
 * process, continues that run with approve: true. Each mention ends with exactly one answer (the
 * fallback of the agent's text) besides its approval message; each call is answered by exactly
 * one continuation; no prompt is sent twice.
 */
export const sigkillWithPendingApproval = (record: RecordRow) =>
  Effect.gen(function*() {
    const { channels, dataDir, discord, letta, agentId } = yield* oneGuildStage({
      g: 32,
      channels: 2,
      agentId: "agent-approval-kill",
      agentName: "Approvals Agent"
    })
    const [clicked, expired] = [channels[0]!, channels[1]!]
    yield* letta.script(
      agentId,
      Behaviours.approvalRequest({ name: "send_email", args: email, toolCallId: "call-click" }),
      Behaviours.approvalRequest({ name: "send_email", args: email, toolCallId: "call-expired" }),
      // The two continuations after the restart, in whichever order they come.
      Behaviours.run({ items: [Items.assistant("Done.")] }),
      Behaviours.run({ items: [Items.assistant("Done.")] })
    )

    const first = yield* startAurora(discord, { lettaUrl: letta.url, dataDir, httpPort: yield* freePort })
    const a = yield* mention(discord, clicked, "email ops")
    const [askA] = yield* repliesTo(discord, a, 1, "the first approval message")
    const b = yield* mention(discord, expired, "email ops too")
    const [askB] = yield* repliesTo(discord, b, 1, "the second approval message")
    const accepted = yield* metricsWhen(first, idle, "both events to end awaiting approval")
    yield* first.kill("SIGKILL")
    const firstExit = yield* bounded("Aurora to die", first.exit)
    const approvalA = String(askA!.message["id"])
    const approvalB = String(askB!.message["id"])
    const movedPast = yield* expireWhileDown(dataDir, approvalB)

    const restartAt = Date.now()
    const second = yield* startAurora(discord, { lettaUrl: letta.url, dataDir, httpPort: yield* freePort })
    const approveA = buttonsOf(discord.storedMessage(clicked, approvalA)).find((b) => b["style"] === 3)
    const click = yield* discord.clickButton({
      message: discord.storedMessage(clicked, approvalA)!,
      customId: String(approveA?.["custom_id"]),
      user: world.bob,
      permissions: "32"
    })
    const callback = yield* bounded(
      "the click's answer",
      discord.waitForRequest((r) => r.method === "POST" && r.path === `/interactions/${click.id}/${click.token}/callback`)
    )
    yield* repliesTo(discord, a, 2, "the first mention's answer")
    yield* repliesTo(discord, b, 2, "the second mention's answer")
    const afterRestart = yield* metricsWhen(second, idle, "the restarted Aurora to be idle")
    const secondExit = yield* stop(second)
    const stored = yield* readStoredQueue(dataDir)
    const leftApprovals = yield* storedApprovals(dataDir)

    const continuations = yield* letta.continuations
    const requests = yield* letta.requests
    const answersTo = (id: string) => discord.botRepliesTo(id).filter((post) => buttonsOf(post.message).length === 0)
    const ledger = ledgerOf({
      sent: [a, b],
      rejected: accepted.sum("aurora_events_rejected_total"),
      requests,
      runs: yield* letta.runs,
      deadLetters: stored.deadLetters,
      fallbackReplies: new Map([[a, answersTo(a).length], [b, answersTo(b).length]])
    })
    const prompts = requests.filter((r) => r.kind === "messages" && messageIdOf(r) !== undefined)
    const ofCall = (id: string) => continuations.filter((c) => c.toolCallId === id)
    const timedOutEdit = discord.messageEdits().filter((e) => e.messageId === approvalB)
    const row = record({
      fault: "SIGKILL with two approvals pending (one past its deadline at restart) → restart, click",
      counts: ledger.counts,
      notes: `killed after both approval messages were posted; restart up in ${((Date.now() - restartAt) / 1000).toFixed(1)} s ` +
        `(incl. both answers); the click on the message posted before the kill → continuation ` +
        `${ofCall("call-click").map((c) => `${c.outcome} approve=${String(c.approve)}`).join(", ")}; ` +
        `the expired one → ${
          ofCall("call-expired").map((c) => `${c.outcome} approve=${String(c.approve)} "${c.reason}"`)
            .join(", ")
        }, its message edited ${timedOutEdit.length}× via ${timedOutEdit.map((e) => e.via).join(",")}; ` +
        `prompts sent: ${prompts.length}; answers per mention: ${answersTo(a).length}/${answersTo(b).length}; ` +
        `aurora_approvals_total after the restart: approved ${
          afterRestart.value("aurora_approvals_total", { outcome: "approved" })
        }, timed_out ${afterRestart.value("aurora_approvals_total", { outcome: "timed_out" })}; ` +
        `approvals left stored: ${leftApprovals}`
    })

    expect(firstExit.signal).toBe("SIGKILL")
    expect(secondExit).toEqual({ code: 0, signal: null })
    expect(movedPast).toBe(1)
    // The click after the restart: the message updated in place, one continuation, approve: true.
    expect(field(callback.body, "type")).toBe(7)
    expect(ofCall("call-click")).toEqual([
      expect.objectContaining({
        outcome: "accepted",
        type: "approval",
        approve: true,
        reason: `approved by bob (${world.bob.id})`
      })
    ])
    expect(buttonsOf(discord.storedMessage(clicked, approvalA)).map((b) => b["disabled"])).toEqual([true, true])
    // The expired one: denied at start-up, its message edited (REST), one continuation, approve: false.
    expect(ofCall("call-expired")).toEqual([
      expect.objectContaining({ outcome: "accepted", type: "approval", approve: false, reason: "no decision within 1 minute" })
    ])
    expect(timedOutEdit.map((e) => e.via)).toEqual(["rest"])
    expect(stateOf(discord.storedMessage(expired, approvalB))).toEqual(["⌛ Denied: no decision within 1 minute"])
    expect(buttonsOf(discord.storedMessage(expired, approvalB)).map((b) => b["disabled"])).toEqual([true, true])
    // Nothing else: no other continuation, each prompt sent once, one answer per mention.
    expect(continuations).toHaveLength(2)
    expect(prompts.map((r) => messageIdOf(r))).toEqual([a, b])
    expect(answersTo(a).map((p) => p.message["content"])).toEqual(["Done."])
    expect(answersTo(b).map((p) => p.message["content"])).toEqual(["Done."])
    expect(discord.botRepliesTo(a)).toHaveLength(2)
    expect(discord.botRepliesTo(b)).toHaveLength(2)
    expect(afterRestart.value("aurora_approvals_total", { outcome: "approved" })).toBe(1)
    expect(afterRestart.value("aurora_approvals_total", { outcome: "timed_out" })).toBe(1)
    expect(leftApprovals).toBe(0)
    expect(stored.deadLetters).toEqual([])
    expect(stored.pending).toEqual([])
    expect(ledger.strays).toEqual([])
    expect(ledger.counts).toMatchObject({ sent: 2, delivered: 2, resent: 0, deadLettered: 0, duplicated: 0, lost: 0 })
    return row
  })
