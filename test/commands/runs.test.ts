/**
 * `/aurora runs`: the last 10 runs of the guild (or, for owners, of the DMs) read from the runs log
 * and rendered as one embed field per run, within Discord's embed limits, with everything the agent
 * or Letta controls escaped; none yet, or a log that cannot be read, is a sentence.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect, Layer } from "effect"
import { toApiEmbed } from "../../src/commands/InteractionAdapter.js"
import { CommandOwners } from "../../src/commands/Owners.js"
import { embedLimits, formatDuration, outcomeEmoji, runsEmbed, toolLine } from "../../src/commands/RunLines.js"
import { maxListedRuns, runs } from "../../src/commands/RunsCommand.js"
import { StorageError } from "../../src/domain/Errors.js"
import { maxRecordedToolCalls, type RunOutcome, type RunRecord } from "../../src/domain/RunRecord.js"
import { RunLog } from "../../src/services/queue/RunLog.js"
import { ids, invocation, replyText, withHarness } from "./harness.js"

const channel = "1400000000000000001"

const run = (n: number, over: Partial<RunRecord> = {}): RunRecord => ({
  messageId: `90000000000000${String(n).padStart(4, "0")}`,
  guildId: ids.guild,
  channelId: channel,
  conversationId: "conv-11111111-2222-3333-4444-555555555555",
  runId: `run-${n}`,
  outcome: "answered",
  toolCalls: ["discord_read_messages", "discord_send"],
  durationMs: 3_250,
  queuedMs: 420,
  finishedAt: 1_700_000_000_000 + n * 1_000,
  detail: null,
  ...over
})

/** Discord counts an embed's title, field names and values and footer text toward its 6 000. */
const embedSize = (
  embed: { readonly title: string; readonly fields?: ReadonlyArray<{ name: string; value: string }>; readonly footer?: string }
) =>
  embed.title.length + (embed.footer?.length ?? 0) +
  (embed.fields ?? []).reduce((n, field) => n + field.name.length + field.value.length, 0)

describe("/aurora runs", () => {
  it.scoped("none yet: a sentence, for the server and for the DMs", () =>
    withHarness((h) =>
      Effect.gen(function*() {
        const reply = yield* h.run("admin", "runs")
        expect(reply).toEqual({
          content: "ℹ️ No runs in this server yet. Each mention Aurora hands to the agent is listed here with what came of it.",
          ephemeral: true
        })
        expect(replyText(yield* h.run("owner", "runs", { scope: "dm" }))).toContain("No direct-message runs yet")
      })
    ))

  it.scoped("the last 10 of the server, newest first: link, channel, conversation, run, outcome, tools, times", () =>
    withHarness((h) =>
      Effect.gen(function*() {
        const log = yield* RunLog
        const outcomes: ReadonlyArray<RunOutcome> = [
          "answered",
          "silent-posted",
          "silent",
          "failed",
          "dead-lettered",
          "interrupted"
        ]
        for (let n = 0; n < 12; n++) yield* log.record(run(n, { outcome: outcomes[n % outcomes.length] ?? "answered" }))
        yield* log.record(run(99, { guildId: ids.otherGuild }))
        yield* log.record(run(11, {
          outcome: "failed",
          toolCalls: [],
          runId: null,
          conversationId: null,
          detail: "LettaServerError: 502 Bad Gateway; kept: it will be tried again"
        }))
        const reply = yield* h.run("admin", "runs")
        expect(reply.ephemeral).toBe(true)
        const embed = reply.embed!
        expect(embed.title).toBe("Last 10 runs in this server")
        expect(embed.fields).toHaveLength(maxListedRuns)
        expect(embed.fields?.map((f) => f.name)).toEqual([
          "1. ❌ failed",
          "2. ☠️ dead-lettered",
          "3. ❌ failed",
          "4. 🔇 silent (no Discord reply)",
          "5. 💬 silent, text posted by Aurora",
          "6. ✅ answered",
          "7. ✂️ interrupted by a restart",
          "8. ☠️ dead-lettered",
          "9. ❌ failed",
          "10. 🔇 silent (no Discord reply)"
        ])
        const [newest, second] = embed.fields ?? []
        expect(newest?.value).toBe([
          `[900000000000000011](https://discord.com/channels/${ids.guild}/${channel}/900000000000000011) in <#${channel}> · <t:1700000011:R>`,
          "agent's default conversation · no run id",
          "🔧 no tool calls",
          "ran 3.2 s · queued 420 ms",
          "↳ `LettaServerError: 502 Bad Gateway; kept: it will be tried again`"
        ].join("\n"))
        expect(second?.value).toBe([
          `[900000000000000010](https://discord.com/channels/${ids.guild}/${channel}/900000000000000010) in <#${channel}> · <t:1700000010:R>`,
          "conversation `conv-11111111-2222-3333-4444-555555555555` · run `run-10`",
          "🔧 `discord_read_messages` › `discord_send`",
          "ran 3.2 s · queued 420 ms"
        ].join("\n"))
        // The other server's run is not shown here.
        expect(replyText(reply)).not.toContain("run-99")
        expect(embed.footer).toContain("Newest first")
      })
    ))

  it.scoped("scope:dm (owners): the DM runs, without jump links", () =>
    withHarness((h) =>
      Effect.gen(function*() {
        const log = yield* RunLog
        yield* log.record(run(1, { guildId: null, channelId: "1500000000000000001", outcome: "interrupted", durationMs: null }))
        yield* log.record(run(2))
        const reply = yield* h.run("owner", "runs", { scope: "dm" })
        expect(reply.embed?.title).toBe("Last 1 direct-message runs")
        expect(reply.embed?.fields?.[0]?.value.split("\n").slice(0, 1)).toEqual([
          "`900000000000000001` in DM channel `1500000000000000001` · <t:1700000001:R>"
        ])
        expect(reply.embed?.fields?.[0]?.value).toContain("did not run · queued 420 ms")
      })
    ))

  it.scoped("what the agent or Letta controls is escaped: no mention, link or code span can break out", () =>
    withHarness((h) =>
      Effect.gen(function*() {
        const log = yield* RunLog
        yield* log.record(run(1, {
          channelId: "<#1> @everyone",
          runId: "run`**bold**`",
          conversationId: "<@&123456789012345678>",
          toolCalls: ["discord_send`@everyone`", "[click](https://evil.example)", "line\nbreak <@&123456789012345678>"],
          detail: "@here `x` [y](https://evil.example)\n\nsecond line"
        }))
        const value = (yield* h.run("admin", "runs")).embed?.fields?.[0]?.value ?? ""
        expect(value.split("\n")).toEqual([
          "`900000000000000001` in `<#1> @everyone` · <t:1700000001:R>",
          "conversation `<@&123456789012345678>` · run `runˋ**bold**ˋ`",
          "🔧 `discord_sendˋ@everyoneˋ` › `[click](https://evil.example)` › `line break <@&123456789012345678>`",
          "ran 3.2 s · queued 420 ms",
          "↳ `@here ˋxˋ [y](https://evil.example) second line`"
        ])
      })
    ))

  it("10 runs with the longest records still fit Discord's limits: every field keeps its message, ids and times", () => {
    const longest = Array.from({ length: maxListedRuns }, (_, n) =>
      run(n, {
        conversationId: "c".repeat(200),
        runId: "r".repeat(200),
        toolCalls: Array.from({ length: maxRecordedToolCalls }, (_, i) => `${"t".repeat(60)}_${i}`),
        detail: "d".repeat(300)
      }))
    const embed = runsEmbed(longest, "guild")
    expect(embedSize(embed)).toBeLessThanOrEqual(embedLimits.total)
    for (const field of embed.fields ?? []) {
      expect(field.value.length).toBeLessThanOrEqual(embedLimits.fieldValue)
      const lines = field.value.split("\n")
      expect(lines[0]).toMatch(/^\[\d+\]\(https:\/\/discord\.com\/channels\/\d+\/\d+\/\d+\) in <#\d+> · <t:\d+:R>$/)
      expect(lines[1]).toContain("conversation `ccc")
      expect(lines[2]).toMatch(/^🔧 first 20: .* … \d+ more$/)
      expect(lines[3]).toBe("ran 3.2 s · queued 420 ms")
      expect(lines[4]).toMatch(/^↳ `d+…`$/)
    }
    // The adapter's own guard has nothing left to cut.
    const api = toApiEmbed(embed)
    expect(api.fields?.map((f) => f.value)).toEqual(embed.fields?.map((f) => f.value))
  })

  it("one run alone gets room for all its tools", () => {
    const tools = Array.from({ length: maxRecordedToolCalls }, (_, i) => `discord_tool_${i}`)
    const [field] = runsEmbed([run(1, { toolCalls: tools })], "guild").fields ?? []
    expect(field?.value.split("\n")[2]).toBe(`🔧 first 20: ${tools.map((t) => `\`${t}\``).join(" › ")}`)
  })

  it("toolLine: as many names as fit, then how many more; a list at the recorded bound says it is the first ones", () => {
    expect(toolLine([], 100)).toBe("🔧 no tool calls")
    expect(toolLine(["a", "b", "c"], 100)).toBe("🔧 `a` › `b` › `c`")
    expect(toolLine(["aaaa", "bbbb", "cccc"], 22)).toBe("🔧 `aaaa` … 2 more")
    expect(toolLine(["x".repeat(40), "y".repeat(40)], 45)).toBe("🔧 2 tool calls (names too long to show)")
    expect(toolLine(Array.from({ length: maxRecordedToolCalls }, () => "x".repeat(64)), 45)).toBe(
      "🔧 20+ tool calls (names too long to show)"
    )
    expect(toolLine(["aaaa", "bbbb"], 5)).toBe("🔧 2…")
  })

  it("formatDuration", () => {
    expect([0, 850, 999, 1_000, 3_250, 59_999, 60_000, 125_000].map(formatDuration)).toEqual([
      "0 ms",
      "850 ms",
      "999 ms",
      "1.0 s",
      "3.2 s",
      "59.9 s",
      "1m 0s",
      "2m 5s"
    ])
  })

  it("every outcome has its emoji", () => {
    expect(Object.keys(outcomeEmoji).sort()).toEqual(
      ["answered", "awaiting-approval", "dead-lettered", "failed", "interrupted", "silent", "silent-posted"]
    )
  })

  it.effect("a runs log that cannot be read: a reply saying so", () =>
    Effect.gen(function*() {
      const failing = Layer.succeed(RunLog, {
        record: () => Effect.void,
        recent: () => Effect.fail(new StorageError({ operation: "RunLog.recent", reason: "disk I/O error" }))
      })
      const result = yield* runs(invocation("admin", "runs")).pipe(
        Effect.provide(Layer.merge(failing, CommandOwners.layerFixed([ids.owner]))),
        Effect.flip
      )
      expect(result.message).toBe("❌ Aurora could not read its runs log (database error). The details are in Aurora's log.")
    }))
})
