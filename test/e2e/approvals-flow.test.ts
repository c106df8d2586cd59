/**
 * Tool approvals end to end through the whole program (#16): the live layer graph (real discord.js
 * client, real Letta client, real SQLite) against the loopback fakes. The fake Letta stops a run
 * for approval of a server tool (`Behaviours.approvalRequest`), answers a user message in that
 * conversation 409 while the approval is pending, records every continuation, and after an
 * accepted continuation plays the agent's next scripted behaviour. What reaches Discord (the
 * approval message with its buttons, the interaction callbacks, the edits, the answers) is
 * asserted on the fake Discord's record. The agent's own mcp-discord send is played as Letta
 * streams a tool it runs itself (tool_call_message, the post by the mcp bot, tool_return_message).
 *
 * The deadline (no decision within `approvaltimeout` minutes) is real time here: it is covered
 * under TestClock by test/services/approvals/Gate.test.ts, not waited for.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import { Partition } from "../../src/domain/Event.js"
import type { FakeDiscord } from "../fakes/FakeDiscord.js"
import type { Json } from "../fakes/discord/Payloads.js"
import { Behaviours, Frames, Items } from "../fakes/FakeLetta.js"
import { bounded, type Running, startApp, eventually, world } from "./harness.js"

const agent = "agent-approvals"
/** The bot account of the agent's mcp-discord server (a second bot token). */
const mcpBot = { id: "1100000000000000042", username: "mcp-discord", bot: true }
const email = { to: "ops@example.com", body: "@everyone the `build` is red" }

const field = (value: unknown, key: string): unknown =>
  typeof value === "object" && value !== null && key in value ? (value as Record<string, unknown>)[key] : undefined

const start = (tools: "mcp" | "builtin" = "mcp") =>
  Effect.gen(function*() {
    const app = yield* startApp({ letta: { agents: { [agent]: "Approvals Agent" } } })
    yield* app.settings.enable(world.guildId, agent)
    if (tools === "builtin") yield* app.settings.setSetting(world.guildId, "tools", "builtin")
    return app
  })

const mention = (app: Running, text: string, channelId: string = world.general) =>
  Effect.map(
    app.discord.sendMessage({ channelId, content: `<@${world.bot.id}> ${text}`, mentions: [world.bot.id] }),
    (message) => String(message["id"])
  )

/** The bot's POSTs in the channel that reply to `messageId`, as Discord received them. */
const replyPosts = (discord: FakeDiscord, channelId: string, messageId: string) =>
  discord.requests().filter((r) =>
    r.method === "POST" && r.path === `/channels/${channelId}/messages` &&
    field(field(r.body, "message_reference"), "message_id") === messageId
  )

/** The `n`-th message (1-based) the bot created as a reply to `messageId`, once it exists. */
const awaitReply = (discord: FakeDiscord, messageId: string, n: number) =>
  bounded(
    `reply ${n} to ${messageId}`,
    eventually(Effect.sync(() => discord.botRepliesTo(messageId)), (posts) => posts.length >= n)
  ).pipe(Effect.map((posts) => posts[n - 1]!.message))

const buttonsOf = (message: unknown) =>
  ((field(message, "components") ?? []) as ReadonlyArray<{ components: ReadonlyArray<Json> }>).flatMap((row) => row.components)

const embedOf = (message: unknown) => ((field(message, "embeds") ?? []) as ReadonlyArray<Json>)[0]

const callbackOf = (discord: FakeDiscord, interaction: { readonly id: string; readonly token: string }) =>
  bounded(
    "the interaction callback",
    discord.waitForRequest((r) =>
      r.method === "POST" && r.path === `/interactions/${interaction.id}/${interaction.token}/callback`
    )
  )

/** The approval message replying to `trigger`: the request the bot sent, and the message as the store holds it now. */
const approvalMessageFor = (app: Running, trigger: string, channelId: string = world.general) =>
  Effect.gen(function*() {
    const created = yield* awaitReply(app.discord, trigger, 1)
    const id = String(created["id"])
    const [request] = replyPosts(app.discord, channelId, trigger)
    return { body: request?.body, id, stored: () => app.discord.storedMessage(channelId, id)! }
  })

/** `/aurora runs` as a Manage Server admin: the embed of the answer. */
const runsView = (discord: FakeDiscord) =>
  Effect.gen(function*() {
    const interaction = yield* discord.sendInteraction({
      permissions: "32",
      data: { name: "aurora", type: 1, options: [{ type: 1, name: "runs", options: [] }] }
    })
    const answer = yield* callbackOf(discord, interaction)
    return embedOf(field(answer.body, "data")) as { readonly fields: ReadonlyArray<{ name: string; value: string }> }
  })

const clickAs = (
  app: Running,
  message: Json,
  customId: string,
  admin: boolean
) => app.discord.clickButton({ message, customId, user: world.bob, ...(admin ? { permissions: "32" } : {}) })

describe("tool approvals through the whole program", () => {
  it.scopedLive(
    "an approval stop posts one message with buttons; a non-admin is refused; an admin's Approve carries the run to its answer",
    () =>
      Effect.gen(function*() {
        const app = yield* start()
        yield* app.letta.script(
          agent,
          Behaviours.approvalRequest({ name: "send_email", args: email, toolCallId: "call-email" }, [
            Items.reasoning("I should email ops.")
          ]),
          Behaviours.run({ items: [Items.assistant("Email sent to ops.")] })
        )
        const trigger = yield* mention(app, "email ops that the build is red")
        const { body, stored } = yield* approvalMessageFor(app, trigger)

        // One message, a reply to the mention: the tool, its escaped arguments, two buttons, no pings.
        expect(replyPosts(app.discord, world.general, trigger)).toHaveLength(1)
        expect(field(body, "allowed_mentions")).toEqual({ parse: [] })
        const embed = embedOf(body)!
        expect(embed["title"]).toBe("Approval needed: send_email")
        const [callField] = field(embed, "fields") as ReadonlyArray<{ name: string; value: string }>
        expect(callField?.name).toBe("#1 send\\_email")
        expect(callField?.value).toContain("\"to\": \"ops@example.com\"")
        expect(callField?.value).toContain("@\u200beveryone the `\u200bbuild`\u200b is red")
        expect(callField?.value).not.toContain("@everyone")
        expect(callField?.value).toContain("⏳ Waiting for a decision")
        const buttons = buttonsOf(body)
        expect(buttons.map((b) => [b["type"], b["style"], b["label"], b["disabled"]])).toEqual([
          [2, 3, "Approve #1 send_email", false],
          [2, 4, "Deny #1 send_email", false]
        ])
        const [approveId, denyId] = buttons.map((b) => String(b["custom_id"]))
        expect(approveId).toMatch(/^aurora:approval:\d+:0:approve$/)
        expect(denyId).toMatch(/^aurora:approval:\d+:0:deny$/)

        // While it waits, the runs view says so.
        const waiting = yield* runsView(app.discord)
        expect(waiting.fields[0]?.name).toContain("awaiting approval")

        // Bob without Manage Server: ephemeral refusal, nothing continues, the message unchanged.
        const before = stored()
        const refused = yield* clickAs(app, before, approveId!, false)
        const refusal = yield* callbackOf(app.discord, refused)
        expect(field(refusal.body, "type")).toBe(4)
        expect(field(field(refusal.body, "data"), "flags")).toBe(64)
        expect(String(field(field(refusal.body, "data"), "content"))).toContain("Only members with Manage Server")
        expect(yield* app.letta.continuations).toEqual([])
        expect(app.discord.messageEdits()).toEqual([])
        expect(stored()).toEqual(before)

        // Bob as an admin approves: one continuation, the message updated in place, the run answered.
        const approved = yield* clickAs(app, stored(), approveId!, true)
        const update = yield* callbackOf(app.discord, approved)
        expect(field(update.body, "type")).toBe(7)
        yield* bounded("the continuation", app.letta.awaitContinuation(1))
        const answer = yield* awaitReply(app.discord, trigger, 2)
        expect(answer["content"]).toBe("Email sent to ops.")
        const continuations = yield* app.letta.continuations
        expect(continuations).toEqual([
          expect.objectContaining({
            outcome: "accepted",
            type: "approval",
            toolCallId: "call-email",
            approve: true,
            reason: `approved by bob (${world.bob.id})`
          })
        ])
        const after = stored()
        expect(buttonsOf(after).map((b) => b["disabled"])).toEqual([true, true])
        const [decided] = field(embedOf(after), "fields") as ReadonlyArray<{ value: string }>
        expect(decided?.value).toContain(`✅ Approved: approved by bob (${world.bob.id})`)
        expect(app.discord.messageEdits().map((e) => e.via)).toEqual(["interaction"])

        // The run is recorded once, as answered by the fallback; the runs view shows it.
        const runs = yield* bounded(
          "the resumed run in the runs log",
          eventually(app.runLog.recent(Partition.guild(world.guildId), 10), (rs) => rs[0]?.outcome === "silent-posted")
        )
        expect(runs.map((r) => [r.messageId, r.outcome])).toEqual([[trigger, "silent-posted"]])
        const listed = yield* runsView(app.discord)
        expect(listed.fields.map((f) => f.name)).toHaveLength(1)
        expect(listed.fields[0]?.value).toContain(trigger)
        expect(listed.fields[0]?.name).toContain("silent, text posted by Aurora")

        // Exactly two bot messages replying to the mention (the approval, the answer); no dead letter.
        expect(replyPosts(app.discord, world.general, trigger)).toHaveLength(2)
        expect((yield* app.deadLetters.list(Partition.guild(world.guildId))).letters).toEqual([])
        expect(yield* app.letta.messageRequests(agent)).toHaveLength(2)
      }),
    60_000
  )

  it.scopedLive("an admin's Deny continues the run with approve: false and a reason naming them", () =>
    Effect.gen(function*() {
      const app = yield* start()
      yield* app.letta.script(
        agent,
        Behaviours.approvalRequest({ name: "send_email", args: email, toolCallId: "call-email" }),
        Behaviours.run({ items: [Items.assistant("I did not send the email.")] })
      )
      const trigger = yield* mention(app, "email ops")
      const { body, stored } = yield* approvalMessageFor(app, trigger)
      const denyId = String(buttonsOf(body)[1]?.["custom_id"])
      const denied = yield* app.discord.clickButton({ message: stored(), customId: denyId, user: world.alice, permissions: "32" })
      expect(field((yield* callbackOf(app.discord, denied)).body, "type")).toBe(7)
      const answer = yield* awaitReply(app.discord, trigger, 2)
      expect(answer["content"]).toBe("I did not send the email.")
      expect(yield* app.letta.continuations).toEqual([
        expect.objectContaining({
          outcome: "accepted",
          type: "approval",
          toolCallId: "call-email",
          approve: false,
          reason: `denied by alice (${world.alice.id})`
        })
      ])
      expect(buttonsOf(stored()).map((b) => b["disabled"])).toEqual([true, true])
      const [decided] = field(embedOf(stored()), "fields") as ReadonlyArray<{ value: string }>
      expect(decided?.value).toContain(`❌ Denied: denied by alice (${world.alice.id})`)
      expect(replyPosts(app.discord, world.general, trigger)).toHaveLength(2)
    }), 60_000)

  it.scopedLive(
    "while it waits, a second mention in its channel waits (409 read as busy, no dead letter), another channel is answered; after the decision both are",
    () =>
      Effect.gen(function*() {
        const app = yield* start()
        yield* app.letta.script(
          agent,
          Behaviours.approvalRequest({ name: "send_email", args: email, toolCallId: "call-email" }),
          Behaviours.run({ items: [Items.assistant("Answer in the thread.")] }),
          Behaviours.run({ items: [Items.assistant("Email sent.")] }),
          Behaviours.run({ items: [Items.assistant("Answer to the second mention.")] })
        )
        const trigger = yield* mention(app, "email ops")
        const { body, stored } = yield* approvalMessageFor(app, trigger)
        const second = yield* mention(app, "and how are you?")
        const refused = yield* bounded(
          "the second mention answered 409 pending approval",
          app.letta.awaitRequest(1, (r) => r.kind === "messages" && r.rejected === "pending-approval")
        )
        expect(JSON.stringify(refused.body)).toContain(second)

        // Another channel (its own conversation) is answered while the approval waits.
        const elsewhere = yield* mention(app, "hello from the thread", world.thread)
        const other = yield* awaitReply(app.discord, elsewhere, 1)
        expect(other["content"]).toBe("Answer in the thread.")
        expect(app.discord.botRepliesTo(second)).toEqual([])
        expect((yield* app.deadLetters.list(Partition.guild(world.guildId))).letters).toEqual([])

        const approveId = String(buttonsOf(body)[0]?.["custom_id"])
        yield* app.discord.clickButton({ message: stored(), customId: approveId, user: world.bob, permissions: "32" })
        const resumed = yield* awaitReply(app.discord, trigger, 2)
        expect(resumed["content"]).toBe("Email sent.")
        const waited = yield* awaitReply(app.discord, second, 1)
        expect(waited["content"]).toBe("Answer to the second mention.")

        // The second mention ran once, after the continuation; nothing was dead-lettered.
        const requests = yield* app.letta.messageRequests(agent)
        const ofSecond = requests.filter((r) => JSON.stringify(r.body).includes(second))
        expect(ofSecond.filter((r) => r.rejected === undefined)).toHaveLength(1)
        expect(
          ofSecond.filter((r) => r.rejected !== undefined).every((r) =>
            r.rejected === "pending-approval" || r.rejected === "busy"
          )
        )
          .toBe(true)
        const continuation = yield* app.letta.awaitContinuation(1)
        expect(ofSecond.find((r) => r.rejected === undefined)!.seq).toBeGreaterThan(continuation.seq)
        expect((yield* app.letta.continuations).filter((c) => c.outcome === "accepted")).toHaveLength(1)
        expect((yield* app.deadLetters.list(Partition.guild(world.guildId))).letters).toEqual([])
        expect(replyPosts(app.discord, world.general, trigger)).toHaveLength(2)
        expect(replyPosts(app.discord, world.general, second)).toHaveLength(1)
      }),
    60_000
  )

  it.scopedLive(
    "a stop mixing a built-in discord_send and a server tool: the send runs once, the approval is asked, one continuation carries both answers",
    () =>
      Effect.gen(function*() {
        const app = yield* start("builtin")
        yield* app.letta.script(
          agent,
          Behaviours.approvalRequest([
            { name: "discord_send", args: { channelId: world.general, message: "Asking ops first." }, toolCallId: "call-send" },
            { name: "send_email", args: email, toolCallId: "call-email" }
          ]),
          Behaviours.run({ items: [Items.assistant("Done.")] })
        )
        const trigger = yield* mention(app, "tell the channel, then email ops")
        const { body, stored } = yield* approvalMessageFor(app, trigger)
        const sends = () =>
          app.discord.requests().filter((r) =>
            r.method === "POST" && r.path === `/channels/${world.general}/messages` &&
            field(r.body, "content") === "Asking ops first."
          )
        expect(sends()).toHaveLength(1)
        // The approval asks for the server tool only.
        expect(embedOf(body)?.["title"]).toBe("Approval needed: send_email")
        expect(buttonsOf(body)).toHaveLength(2)
        expect(yield* app.letta.continuations).toEqual([])

        const approveId = String(buttonsOf(body)[0]?.["custom_id"])
        yield* app.discord.clickButton({ message: stored(), customId: approveId, user: world.bob, permissions: "32" })
        const request = yield* bounded("the continuation", app.letta.awaitContinuation(1))
        const continuations = yield* app.letta.continuations
        expect(continuations).toEqual([
          expect.objectContaining({ outcome: "accepted", type: "tool", toolCallId: "call-send", status: "success" }),
          expect.objectContaining({ outcome: "accepted", type: "approval", toolCallId: "call-email", approve: true })
        ])
        expect(new Set(continuations.map((c) => c.runId))).toEqual(new Set([request.runId]))
        expect(String(continuations[0]?.toolReturn)).toMatch(/^sent message \d+ to channel /)
        const runs = yield* bounded(
          "the resumed run in the runs log",
          eventually(app.runLog.recent(Partition.guild(world.guildId), 10), (rs) => rs[0]?.outcome !== "awaiting-approval")
        )
        expect(runs.map((r) => r.outcome)).toEqual(["answered"])
        expect(sends()).toHaveLength(1)
        // The agent answered with its send: Aurora posts no fallback of the final text.
        expect(app.discord.botPosts().filter((p) => p.message["content"] === "Done.")).toEqual([])
        expect(yield* app.letta.continuations).toHaveLength(2)
      }),
    60_000
  )

  it.scopedLive(
    "mcp: the agent sent before the approval stop; the resumed run ends with text only: one answer in the channel, no fallback",
    () =>
      Effect.gen(function*() {
        const app = yield* start()
        const told = "The build is red, I am asking to email ops."
        // As Letta streams a tool it runs itself (mcp-discord's discord_send, posting with its own
        // bot): the call, the post in Discord, the return; then the approval stop on send_email.
        yield* app.letta.script(
          agent,
          Behaviours.stream([
            Frames.item(Items.reasoning("I will tell the channel, then email ops.")),
            Frames.item(Items.toolCall("discord_send", { channelId: world.general, message: told }, "call-mcp-send")),
            Frames.act(() =>
              Effect.runSync(app.discord.sendMessage({ channelId: world.general, content: told, author: mcpBot }))
            ),
            Frames.item(Items.toolReturn("call-mcp-send", "success", `Message sent successfully to channel ${world.general}`)),
            Frames.item(Items.approvalRequest([{ name: "send_email", args: email, toolCallId: "call-email" }])),
            Frames.item(Items.stopReason("requires_approval")),
            Frames.item(Items.usage()),
            Frames.done
          ]),
          Behaviours.run({ items: [Items.assistant("I told the channel and emailed ops.")] })
        )
        const trigger = yield* mention(app, "tell the channel, then email ops")
        const { body, stored } = yield* approvalMessageFor(app, trigger)
        const after = () => app.discord.storedMessages(world.general).filter((m) => BigInt(String(m["id"])) > BigInt(trigger))
        expect(after().map((m) => field(m, "author"))).toMatchObject([{ id: mcpBot.id }, { id: world.bot.id }])

        const approveId = String(buttonsOf(body)[0]?.["custom_id"])
        yield* app.discord.clickButton({ message: stored(), customId: approveId, user: world.bob, permissions: "32" })
        const runs = yield* bounded(
          "the resumed run in the runs log",
          eventually(app.runLog.recent(Partition.guild(world.guildId), 10), (rs) => rs[0]?.outcome !== "awaiting-approval")
        )
        // The fallback would have posted before the run was recorded: what is in the channel now is final.
        expect(runs.map((r) => [r.messageId, r.outcome])).toEqual([[trigger, "answered"]])
        expect(runs[0]?.toolCalls).toContain("discord_send")
        expect(yield* app.letta.continuations).toEqual([
          expect.objectContaining({ outcome: "accepted", type: "approval", toolCallId: "call-email", approve: true })
        ])
        // One answer (the agent's send) and the approval message; no second answer from Aurora.
        expect(after().map((m) => [field(m, "author"), field(m, "content")])).toMatchObject([
          [{ id: mcpBot.id }, told],
          [{ id: world.bot.id }, ""]
        ])
        expect(replyPosts(app.discord, world.general, trigger)).toHaveLength(1)
        expect(app.discord.botPosts().filter((p) => p.message["content"] === "I told the channel and emailed ops.")).toEqual([])
        const listed = yield* runsView(app.discord)
        expect(listed.fields[0]?.value).toContain("discord_send")
      }),
    60_000
  )
})
