/** Failures inside handlers become readable replies (and log lines); replies fit Discord's limits. */
import { describe, expect, it } from "@effect/vitest"
import { Effect, Layer, Stream } from "effect"
import { toApiEmbed } from "../../src/commands/InteractionAdapter.js"
import { PreviewSource } from "../../src/commands/PreviewSource.js"
import { StorageError } from "../../src/domain/Errors.js"
import { defaultGlobalSettings } from "../../src/domain/Settings.js"
import { SettingsStore } from "../../src/services/storage/SettingsStore.js"
import { ids, replyText, withHarness } from "./harness.js"

describe("command router", () => {
  it.scoped("an unknown subcommand or command name is answered, not dropped", () =>
    withHarness((h) =>
      Effect.gen(function*() {
        expect(replyText(yield* h.run("admin", "queue purge"))).toBe(
          "❌ Unknown command `/aurora queue purge`. Discord may still show an older version of Aurora's commands."
        )
        expect(replyText(yield* h.run("owner", "status", {}, { name: "other" }))).toContain("Unknown command `/other status`")
      })
    ))

  it.scoped("a defect in a handler becomes a generic ephemeral reply and an error log line", () =>
    withHarness((h) =>
      Effect.gen(function*() {
        const reply = yield* h.run("admin", "context", { message_id: "810000000000000002" }).pipe(
          Effect.provideService(PreviewSource, { botUserId: ids.bot, fetch: () => Effect.die(new Error("boom")) })
        )
        expect(reply).toEqual({
          content: "❌ Something went wrong running `/aurora context`. The details are in Aurora's log.",
          ephemeral: true
        })
        const error = (yield* h.logLines).find((line) => line.message === "command failed")
        expect(error?.level).toBe("ERROR")
        expect(error?.annotations).toMatchObject({ command: "/aurora context", userId: ids.admin, guildId: ids.guild })
        // The next command works as usual.
        expect(replyText(yield* h.run("admin", "queue status"))).toContain("Pending: 0")
      })
    ))

  it.scoped("a storage failure says nothing was changed", () =>
    withHarness((h) =>
      Effect.gen(function*() {
        const failing = Layer.mock(SettingsStore, {
          _tag: "aurora/SettingsStore",
          setSetting: () => Effect.fail(new StorageError({ operation: "setSetting", reason: "disk I/O error" })),
          changes: Stream.empty,
          currentGlobal: () => defaultGlobalSettings
        })
        const reply = yield* h.run("admin", "config timeout", { value: 30 }).pipe(Effect.provide(failing))
        expect(replyText(reply)).toBe(
          "❌ Aurora could not save this change (database error); nothing was changed. The details are in Aurora's log."
        )
        expect((yield* h.logLines).some((line) => line.message.startsWith("command could not save its change"))).toBe(true)
      })
    ))
})

describe("embed rendering", () => {
  it("cuts every part to Discord's limits, the whole embed to 6000 characters", () => {
    const embed = toApiEmbed({
      title: "t".repeat(300),
      description: "d".repeat(5000),
      fields: Array.from({ length: 30 }, (_, i) => ({ name: `f${i}`, value: "v".repeat(2000) })),
      footer: "f"
    })
    expect(embed.title?.length).toBe(256)
    expect(embed.description?.length).toBe(4096)
    expect(embed.fields?.length).toBe(2)
    expect(embed.fields?.every((field) => field.value.length <= 1024)).toBe(true)
    const total = (embed.title?.length ?? 0) + (embed.description?.length ?? 0) + (embed.footer?.text.length ?? 0) +
      (embed.fields ?? []).reduce((n, field) => n + field.name.length + field.value.length, 0)
    expect(total).toBeLessThanOrEqual(6000)
    expect(toApiEmbed({ title: "ok", description: "short" })).toEqual({ title: "ok", description: "short" })
    const many = toApiEmbed({ title: "many", fields: Array.from({ length: 30 }, (_, i) => ({ name: `f${i}`, value: "v" })) })
    expect(many.fields?.length).toBe(25)
  })
})
