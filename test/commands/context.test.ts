/**
 * `/aurora context` and "Preview Aurora prompt": the preview is the prompt the listener's path
 * (ContextService.build, PromptService.render, the guild's settings) produces for that message.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect, Ref } from "effect"
import { previewTargetOf, promptDisplay } from "../../src/commands/ContextPreview.js"
import type { ReceivedMessage } from "../../src/domain/Discord.js"
import type { TriggerKind } from "../../src/domain/Event.js"
import { ContextService } from "../../src/services/prompt/ContextService.js"
import { PromptService } from "../../src/services/prompt/PromptService.js"
import { SettingsStore } from "../../src/services/storage/SettingsStore.js"
import { ids, replyText, withHarness } from "./harness.js"
import { fakeMessageSource, makeAuthor, makeMessage, makeReceived, referenceTo } from "../fakes/messages.js"

const otherChannel = "200000000000000005"

// A bot message, a user's reply to it (no mention), and a mention in another channel.
const botParent = makeMessage({
  id: "810000000000000001",
  author: makeAuthor({ id: ids.bot, username: "aurora", bot: true }),
  content: "I am Aurora"
})
const grandParent = makeMessage({ id: "810000000000000000", content: "the question" })
const parent = { ...botParent, reference: referenceTo(grandParent) }
const reply: ReceivedMessage = makeReceived({
  message: makeMessage({ id: "810000000000000002", content: "thanks! ```not a fence```", reference: referenceTo(parent) })
})
const elsewhere: ReceivedMessage = makeReceived({
  message: makeMessage({
    id: "810000000000000003",
    channelId: otherChannel,
    content: `<@${ids.bot}> hello`,
    mentions: { users: [ids.bot], roles: [], everyone: false }
  }),
  channel: { id: otherChannel, name: "random", kind: "text", parentId: null, parentKind: null }
})
const unaddressed: ReceivedMessage = makeReceived({
  message: makeMessage({ id: "810000000000000004", content: "just chatting" })
})
const long: ReceivedMessage = makeReceived({
  message: makeMessage({
    id: "810000000000000005",
    content: "x".repeat(3990),
    mentions: { users: [ids.bot], roles: [], everyone: false }
  })
})
const foreign: ReceivedMessage = makeReceived({
  message: makeMessage({
    id: "810000000000000006",
    guildId: ids.otherGuild,
    mentions: { users: [ids.bot], roles: [], everyone: false }
  }),
  guild: { id: ids.otherGuild, name: "Elsewhere" }
})

const cdn = (name: string) => `https://cdn.discordapp.com/attachments/${ids.channel}/1500000000000000001/${name}`
const withImages: ReceivedMessage = makeReceived({
  message: makeMessage({
    id: "810000000000000007",
    content: `<@${ids.bot}> what is this?`,
    mentions: { users: [ids.bot], roles: [], everyone: false },
    attachments: [
      { name: "cat.png", url: cdn("cat.png"), contentType: "image/png", size: 2048 },
      { name: "doc.pdf", url: cdn("doc.pdf"), contentType: "application/pdf", size: 4096 }
    ]
  })
})

const source = fakeMessageSource({ messages: [grandParent, parent] })

const preview = <A, E>(body: Parameters<typeof withHarness<A, E>>[0]) =>
  withHarness(
    (h) =>
      Ref.set(
        h.previewMessages,
        Object.fromEntries([reply, elsewhere, unaddressed, long, foreign, withImages].map((r) => [r.message.id, r]))
      )
        .pipe(Effect.zipRight(body(h))),
    { messageSource: source.layer }
  )

/** The prompt the listener would build, computed here through the services directly. */
const expectedPrompt = (received: ReceivedMessage, trigger: TriggerKind) =>
  Effect.gen(function*() {
    const settings = (yield* Effect.flatMap(SettingsStore, (s) => s.guild(ids.guild))).settings
    const context = yield* Effect.flatMap(ContextService, (c) => c.build(received, settings.replydepth))
    return yield* Effect.flatMap(PromptService, (p) =>
      p.render(context, { trigger, mcpGuidance: settings.mcpguidance, images: settings.images }))
  })

describe("/aurora context", () => {
  it.scoped("a message id from this channel: the exact prompt in an embed, with the reply trigger", () =>
    preview((h) =>
      Effect.gen(function*() {
        const result = yield* h.run("admin", "context", { message_id: reply.message.id })
        const prompt = yield* expectedPrompt(reply, "reply")
        expect(prompt).toContain("I am Aurora")
        expect(prompt).toContain("the question")
        // The user's ``` is broken for display only; the exact text then comes as a file.
        expect(result.embed?.description).toBe(`\`\`\`\n${prompt.replace(/```/g, "`\u200b``")}\n\`\`\``)
        expect(result.file).toEqual({ name: `aurora-prompt-${reply.message.id}.txt`, content: prompt })
        const fields = Object.fromEntries((result.embed?.fields ?? []).map((f) => [f.name, f.value]))
        expect(fields).toMatchObject({
          Trigger: "reply",
          "Reply chain": "2 parents (replydepth 5)",
          Message: `https://discord.com/channels/${ids.guild}/${ids.channel}/${reply.message.id}`
        })
        expect(result.content).toContain("⚠️ Aurora is not enabled in this server.")
        expect(result.ephemeral).toBe(true)
      })
    ))

  it.scoped("says which image URLs would go with the prompt, and none once images are off", () =>
    preview((h) =>
      Effect.gen(function*() {
        const imagesField = (result: { readonly embed?: { readonly fields?: ReadonlyArray<{ name: string; value: string }> } }) =>
          result.embed?.fields?.find((f) => f.name === "Images sent with it")?.value
        const on = yield* h.run("admin", "context", { message_id: withImages.message.id })
        expect(imagesField(on)).toBe(`1 image:\n\`${cdn("cat.png")}\``)
        expect(on.embed?.description).toContain(`URL "${cdn("cat.png")}"): sent to you as an image`)
        expect(imagesField(yield* h.run("admin", "context", { message_id: reply.message.id }))).toBe("none")
        yield* h.run("admin", "config images", { value: false })
        const off = yield* h.run("admin", "context", { message_id: withImages.message.id })
        expect(imagesField(off)).toBe("none (images are off in this server)")
        expect(off.embed?.description).toContain(`URL "${cdn("cat.png")}"): not sent: images are off`)
        expect(off.embed?.description).toBe(`\`\`\`\n${yield* expectedPrompt(withImages, "mention")}\n\`\`\``)
      })
    ))

  it.scoped("uses the guild's replydepth and mcpguidance", () =>
    preview((h) =>
      Effect.gen(function*() {
        yield* h.run("admin", "config replydepth", { value: 1 })
        yield* h.run("admin", "config mcpguidance", { value: false })
        const result = yield* h.run("admin", "context", { message_id: reply.message.id })
        const prompt = yield* expectedPrompt(reply, "reply")
        expect(prompt).not.toContain("the question")
        expect(prompt).not.toContain("discord_send")
        expect(result.file?.content).toBe(prompt)
        expect(replyText(result)).toContain("1 parent (replydepth 1, cut at the limit)")
      })
    ))

  it.scoped("a message link from another channel of this server", () =>
    preview((h) =>
      Effect.gen(function*() {
        const link = `https://discord.com/channels/${ids.guild}/${otherChannel}/${elsewhere.message.id}`
        const result = yield* h.run("admin", "context", { message_id: link })
        const prompt = yield* expectedPrompt(elsewhere, "mention")
        expect(result.embed?.description).toBe(`\`\`\`\n${prompt}\n\`\`\``)
        expect(result.file).toBeUndefined()
        expect(replyText(result)).toContain("Trigger: mention")
      })
    ))

  it.scoped("links outside this server, unknown messages and garbage are refused", () =>
    preview((h) =>
      Effect.gen(function*() {
        const outside = `https://discord.com/channels/${ids.otherGuild}/${otherChannel}/${elsewhere.message.id}`
        expect(replyText(yield* h.run("admin", "context", { message_id: outside }))).toBe(
          "❌ That link points outside this server: only this server's messages can be previewed."
        )
        expect(replyText(yield* h.run("admin", "context", { message_id: "820000000000000009" }))).toBe(
          `❌ No message 820000000000000009 in <#${ids.channel}> (deleted, or the id is from another channel).`
        )
        expect(replyText(yield* h.run("admin", "context", { message_id: "hello" }))).toContain(
          "`message_id` must be a message id from this channel, or a message link"
        )
        // A message id from another channel is not found in this one.
        expect(replyText(yield* h.run("admin", "context", { message_id: elsewhere.message.id }))).toContain("❌ No message")
      })
    ))

  it.scoped("a message the reader places in another guild is refused, whatever the link said", () =>
    preview((h) =>
      Effect.gen(function*() {
        const text = replyText(yield* h.run("admin", "context", { message_id: foreign.message.id }))
        expect(text).toBe("❌ That message is not in this server: only this server's messages can be previewed.")
      })
    ))

  it.scoped("a message that would not trigger is still shown, with a warning", () =>
    preview((h) =>
      Effect.gen(function*() {
        const result = yield* h.run("admin", "context", { message_id: unaddressed.message.id })
        expect(result.content).toContain(
          "⚠️ This message would not trigger Aurora: it neither mentions Aurora nor replies to one of its messages."
        )
        expect(replyText(result)).toContain("Trigger: none")
        expect(result.embed?.description).toBe(`\`\`\`\n${yield* expectedPrompt(unaddressed, "mention")}\n\`\`\``)
      })
    ))

  it.scoped("a prompt longer than an embed allows: clipped in the embed, the full text attached", () =>
    preview((h) =>
      Effect.gen(function*() {
        const result = yield* h.run("admin", "context", { message_id: long.message.id })
        const prompt = yield* expectedPrompt(long, "mention")
        expect(prompt.length).toBeGreaterThan(4096)
        expect(result.embed?.description?.length).toBeLessThanOrEqual(4096)
        expect(result.embed?.description?.endsWith("…\n```")).toBe(true)
        expect(result.file).toEqual({ name: `aurora-prompt-${long.message.id}.txt`, content: prompt })
        expect(result.content).toContain("The exact prompt is attached as a file.")
      })
    ))

  it.scoped("the context-menu command gives the same preview", () =>
    preview((h) =>
      Effect.gen(function*() {
        const slash = yield* h.run("admin", "context", { message_id: reply.message.id })
        const menu = yield* h.run("admin", "context", { message_id: reply.message.id }, {
          source: "menu",
          name: "Preview Aurora prompt",
          group: null,
          subcommand: null
        })
        expect(menu).toEqual(slash)
      })
    ))
})

describe("message references", () => {
  const here = { guildId: ids.guild, channelId: ids.channel }
  it("ids, links (ptb, canary, discordapp, <angle brackets>) and refusals", () => {
    expect(previewTargetOf(" 810000000000000002 ", here)).toMatchObject({
      right: { channelId: ids.channel, messageId: "810000000000000002" }
    })
    for (const host of ["discord.com", "ptb.discord.com", "canary.discord.com", "discordapp.com"]) {
      expect(previewTargetOf(`<https://${host}/channels/${ids.guild}/${otherChannel}/810000000000000003>`, here)).toMatchObject({
        right: { channelId: otherChannel, messageId: "810000000000000003" }
      })
    }
    expect(previewTargetOf(`https://discord.com/channels/@me/${otherChannel}/810000000000000003`, here)._tag).toBe("Left")
    expect(previewTargetOf("https://evil.example/channels/1/2/3", here)._tag).toBe("Left")
    expect(previewTargetOf("810000000000000002", { guildId: ids.guild, channelId: null })._tag).toBe("Left")
  })

  it("promptDisplay attaches a file only when the embed cannot show the exact text", () => {
    expect(promptDisplay("short", "p.txt")).toEqual({ block: "```\nshort\n```", file: undefined })
    expect(promptDisplay("a ``` b", "p.txt").file).toEqual({ name: "p.txt", content: "a ``` b" })
  })
})
