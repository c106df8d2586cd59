/** `/aurora config`: every validation boundary, nothing stored when invalid, and changes applying at once. */
import { describe, expect, it } from "@effect/vitest"
import { Effect, Either } from "effect"
import type { QueuedEvent } from "../../src/domain/Event.js"
import { defaultGuildSettings, type GuildSettings, type SettingKey } from "../../src/domain/Settings.js"
import { EventQueue } from "../../src/services/queue/EventQueue.js"
import { SettingsStore } from "../../src/services/storage/SettingsStore.js"
import { ids, replyText, withHarness } from "./harness.js"

const boundaries: ReadonlyArray<{
  readonly key: SettingKey
  readonly accepted: ReadonlyArray<number>
  readonly rejected: ReadonlyArray<number>
  readonly range: string
}> = [
  { key: "ratelimit", accepted: [0.5, 10], rejected: [0.4, 10.1], range: "between 0.5 and 10 seconds" },
  { key: "replydepth", accepted: [1, 10], rejected: [0, 11], range: "a whole number between 1 and 10" },
  { key: "queuesize", accepted: [10, 200], rejected: [9, 201], range: "a whole number between 10 and 200" },
  { key: "timeout", accepted: [10, 300], rejected: [9, 301], range: "a whole number between 10 and 300 seconds" }
]

const settingsOf = Effect.flatMap(SettingsStore, (store) => store.guild(ids.guild)).pipe(
  Effect.map((state) => state.settings)
)

const event = (n: number): QueuedEvent => ({
  messageId: `90000000000000${String(n).padStart(4, "0")}`,
  guildId: ids.guild,
  channelId: ids.channel,
  authorId: ids.member,
  agentId: "agent-1",
  trigger: "mention",
  prompt: `prompt ${n}`,
  enqueuedAt: 0,
  attempts: 0
})

describe("/aurora config", () => {
  for (const { accepted, key, range, rejected } of boundaries) {
    it.scoped(`${key}: ${accepted.join(" and ")} accepted, ${rejected.join(" and ")} rejected naming the range`, () =>
      withHarness((h) =>
        Effect.gen(function*() {
          for (const value of rejected) {
            const reply = yield* h.run("admin", `config ${key}`, { value })
            expect(replyText(reply)).toBe(
              `❌ **${key}** must be ${range} (got \`${value}\`). Nothing was changed.`
            )
            expect((yield* settingsOf)[key]).toBe(defaultGuildSettings[key])
          }
          for (const value of accepted) {
            const reply = yield* h.run("admin", `config ${key}`, { value })
            expect(replyText(reply)).toContain(`**${key}** is now **${value}`)
            expect((yield* settingsOf)[key]).toBe(value)
          }
        })
      ))
  }

  it.scoped("a fractional value for a whole-number setting is rejected", () =>
    withHarness((h) =>
      Effect.gen(function*() {
        const reply = yield* h.run("admin", "config replydepth", { value: 2.5 })
        expect(replyText(reply)).toContain("must be a whole number between 1 and 10")
        expect((yield* settingsOf).replydepth).toBe(5)
      })
    ))

  it.scoped("crafted values of the wrong type are rejected; nothing is stored", () =>
    withHarness((h) =>
      Effect.gen(function*() {
        expect(replyText(yield* h.run("admin", "config ratelimit", { value: "fast" }))).toContain(
          "**ratelimit** must be between 0.5 and 10 seconds (got `fast`)"
        )
        expect(replyText(yield* h.run("admin", "config ratelimit", { value: true }))).toContain("must be between 0.5")
        expect(replyText(yield* h.run("admin", "config typing", { value: 1 }))).toContain(
          "**typing** must be true or false (got `1`)"
        )
        expect(replyText(yield* h.run("admin", "config typing", { value: "yes" }))).toContain("must be true or false")
        expect(replyText(yield* h.run("admin", "config timeout"))).toBe("❌ `value` is required.")
        expect(yield* settingsOf).toEqual(defaultGuildSettings)
      })
    ))

  it.scoped("booleans: typing and mcpguidance switch off and on", () =>
    withHarness((h) =>
      Effect.gen(function*() {
        expect(replyText(yield* h.run("admin", "config typing", { value: false }))).toContain("**typing** is now **off**")
        expect(replyText(yield* h.run("admin", "config mcpguidance", { value: false }))).toContain(
          "**mcpguidance** is now **off**"
        )
        expect(yield* settingsOf).toMatchObject({ typing: false, mcpguidance: false })
        yield* h.run("admin", "config typing", { value: true })
        expect((yield* settingsOf).typing).toBe(true)
      })
    ))

  it.scoped("config show lists every setting with its value, range and default (before any enable)", () =>
    withHarness((h) =>
      Effect.gen(function*() {
        yield* h.run("admin", "config ratelimit", { value: 3.5 })
        const reply = yield* h.run("admin", "config show")
        expect(reply.embed?.title).toBe("Aurora settings for this server")
        const fields = Object.fromEntries((reply.embed?.fields ?? []).map((f) => [f.name, f.value]))
        expect(fields).toEqual({
          Agent: "none (use `/aurora enable`)",
          replydepth: "**5**\n1–10, default 5",
          typing: "**on**\ndefault on",
          ratelimit: "**3.5 seconds**\n0.5–10, default 2 seconds",
          queuesize: "**50**\n10–200, default 50",
          timeout: "**60 seconds**\n10–300, default 60 seconds",
          mcpguidance: "**on**\ndefault on",
          conversations: "**channel**\nchannel or shared, default channel",
          parallel: "**8**\n1–32, default 8",
          fallback: "**post**\npost or off, default post",
          images: "**on**\ndefault on",
          feedback: "**on**\ndefault on",
          tools: "**mcp**\nmcp or builtin, default mcp",
          approvaltimeout: "**10 minutes**\n1–60, default 10 minutes"
        })
      })
    ))

  it.scoped("queuesize applies at once: the queue's next admission uses the new capacity", () =>
    withHarness((h) =>
      Effect.gen(function*() {
        const queue = yield* EventQueue
        yield* h.run("admin", "config queuesize", { value: 10 })
        for (let n = 0; n < 10; n++) yield* queue.offer(event(n))
        const full = yield* Effect.either(queue.offer(event(10)))
        expect(Either.isLeft(full) && full.left._tag).toBe("QueueFull")

        yield* h.run("admin", "config queuesize", { value: 12 })
        expect(Either.isRight(yield* Effect.either(queue.offer(event(10))))).toBe(true)
        expect(Either.isRight(yield* Effect.either(queue.offer(event(11))))).toBe(true)
        expect(Either.isLeft(yield* Effect.either(queue.offer(event(12))))).toBe(true)
        const stats = yield* queue.stats
        expect(stats.partitions.map((p) => [p.key, p.pending, p.capacity])).toEqual([[`guild:${ids.guild}`, 12, 12]])
      })
    ))

  it.scoped("settings are per guild: another guild keeps the defaults", () =>
    withHarness((h) =>
      Effect.gen(function*() {
        yield* h.run("admin", "config replydepth", { value: 9 })
        const store = yield* SettingsStore
        const other: GuildSettings = (yield* store.guild(ids.otherGuild)).settings
        expect(other.replydepth).toBe(5)
        expect((yield* settingsOf).replydepth).toBe(9)
      })
    ))
})
