/**
 * The runs view end to end: the live layer graph (real discord.js and Letta clients, real SQLite)
 * against the loopback fakes. Two mentions, one answered and one whose run fails for good, then
 * `/aurora runs` through an INTERACTION_CREATE: the embed lists both, newest first, with the
 * outcomes, the run ids Letta gave, the conversation and the tool calls; and again after a restart
 * on the same data directory.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import { Partition } from "../../src/domain/Event.js"
import type { RunRecord } from "../../src/domain/RunRecord.js"
import type { FakeDiscord } from "../fakes/FakeDiscord.js"
import { Behaviours, Items } from "../fakes/FakeLetta.js"
import { bounded, tempDir, type Running, startApp, eventually, world } from "./harness.js"

const agentA = "agent-aaaa"

const mention = (text: string) => `<@${world.bot.id}> ${text}`

const field = (value: unknown, key: string): unknown =>
  typeof value === "object" && value !== null && key in value ? (value as Record<string, unknown>)[key] : undefined

interface EmbedJson {
  readonly title: string
  readonly fields: ReadonlyArray<{ readonly name: string; readonly value: string }>
}

/** `/aurora runs` as a Manage Server admin; the embed of the interaction's answer. */
const runsView = (discord: FakeDiscord) =>
  Effect.gen(function*() {
    const interaction = yield* discord.sendInteraction({
      permissions: "32",
      data: { name: "aurora", type: 1, options: [{ type: 1, name: "runs", options: [] }] }
    })
    const answer = yield* bounded(
      "the runs view",
      discord.waitForRequest((r) =>
        r.method === "POST" && r.path === `/interactions/${interaction.id}/${interaction.token}/callback`
      )
    )
    const data = field(answer.body, "data")
    expect(field(data, "flags")).toBe(64)
    expect(field(data, "allowed_mentions")).toEqual({ parse: [] })
    return (field(data, "embeds") as ReadonlyArray<EmbedJson>)[0]!
  })

const recorded = (app: Running, n: number) =>
  bounded(
    `${n} run(s) in the runs log`,
    eventually(app.runLog.recent(Partition.guild(world.guildId), 10), (runs) => runs.length >= n)
  )

describe("the runs view, end to end", () => {
  it.scopedLive("an answered mention and one that failed for good are listed with outcome, run id and tools; still after a restart", () =>
    Effect.gen(function*() {
      const dataDir = yield* tempDir
      const { letta, listed, messageIds } = yield* Effect.scoped(Effect.gen(function*() {
        const app = yield* startApp({ letta: { agents: { [agentA]: "Agent A" } }, dataDir })
        yield* app.settings.enable(world.guildId, agentA)
        yield* app.letta.script(
          agentA,
          Behaviours.run({
            items: [
              Items.toolCall("discord_read_messages", { channel_id: world.general, limit: 5 }, "call-read"),
              Items.toolReturn("call-read", "success", "[]"),
              Items.toolCall("discord_send", { channel_id: world.general, content: "Hi!" }, "call-send"),
              Items.toolReturn("call-send", "success", "sent")
            ]
          }),
          // The agent looked, then ran out of steps: a failed run, permanent, before it acted.
          Behaviours.run({
            items: [Items.toolCall("discord_read_messages", { channel_id: world.general, limit: 5 }, "call-read-2")],
            stopReason: "max_steps"
          })
        )
        const first = yield* app.discord.sendMessage({
          channelId: world.general,
          content: mention("hello"),
          mentions: [world.bot.id]
        })
        yield* recorded(app, 1)
        const second = yield* app.discord.sendMessage({
          channelId: world.general,
          content: mention("and this?"),
          mentions: [world.bot.id]
        })
        const runs: ReadonlyArray<RunRecord> = yield* recorded(app, 2)
        const letterPage = yield* app.deadLetters.list(Partition.guild(world.guildId))
        expect(letterPage.letters.map((l) => [l.event.messageId, l.errorType])).toEqual([[String(second["id"]), "RunFailed"]])
        expect(runs.map((r) => r.outcome)).toEqual(["dead-lettered", "answered"])
        return { letta: app.letta, listed: yield* runsView(app.discord), messageIds: [String(first["id"]), String(second["id"])] }
      }))

      const lettaRuns = yield* letta.runs
      expect(lettaRuns).toHaveLength(2)
      const [answeredRun, failedRun] = lettaRuns
      const [answeredId, failedId] = messageIds
      const link = (id: string | undefined) => `(https://discord.com/channels/${world.guildId}/${world.general}/${id})`
      expect(listed.title).toBe("Last 2 runs in this server")
      expect(listed.fields.map((f) => f.name)).toEqual(["1. ☠️ dead-lettered", "2. ✅ answered"])
      const [failedField, answeredField] = listed.fields
      expect(failedField?.value).toContain(`[${failedId}]${link(failedId)} in <#${world.general}>`)
      expect(failedField?.value).toContain(`run \`${failedRun?.runId}\``)
      expect(failedField?.value).toContain(`conversation \`${failedRun?.conversationId}\``)
      expect(failedField?.value).toContain("🔧 `discord_read_messages`\n")
      expect(failedField?.value).toContain("↳ `RunFailed: stop reason max_steps`")
      expect(answeredField?.value).toContain(`[${answeredId}]${link(answeredId)} in <#${world.general}>`)
      expect(answeredField?.value).toContain(`run \`${answeredRun?.runId}\``)
      expect(answeredField?.value).toContain("🔧 `discord_read_messages` › `discord_send`\n")
      expect(answeredField?.value).toMatch(/\nran [\d.]+ (ms|s) · queued [\d.]+ (ms|s)$/)

      // A new process on the same data directory lists the same runs.
      const app = yield* startApp({ lettaServer: letta, dataDir })
      const relisted = yield* runsView(app.discord)
      expect(relisted).toEqual(listed)
    }))
})
