/**
 * Images and otids end to end: the live graph (real discord.js, real Letta client, SQLite) against
 * the loopback fakes. A mention's attachments arrive as Discord sends them (MESSAGE_CREATE
 * `attachments`); `config images` goes through the real slash command; what Letta received is read
 * from the fake's record of each send's messages (content parts, otid), validated like the server.
 * Aurora never fetches an attachment URL: only the fakes on 127.0.0.1 are contacted.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import { promptOtid } from "../../src/domain/Otid.js"
import { Behaviours, imageUrlsOf, textOf } from "../fakes/FakeLetta.js"
import { bounded, startApp, world } from "./harness.js"

const agentId = "agent-aaaa"
const lettaAgents = { letta: { agents: { [agentId]: "Agent A" } } }

const cdn = (id: string, name: string) => `https://cdn.discordapp.com/attachments/${world.general}/${id}/${name}`
const pngUrl = cdn("1500000000000000001", "cat.png")
const pdfUrl = cdn("1500000000000000002", "minutes.pdf")

/** Attachments as Discord's MESSAGE_CREATE carries them. */
const attachments = [
  {
    id: "1500000000000000001",
    filename: "cat.png",
    size: 48_213,
    url: pngUrl,
    proxy_url: pngUrl.replace("cdn.discordapp.com", "media.discordapp.net"),
    content_type: "image/png",
    width: 640,
    height: 480
  },
  {
    id: "1500000000000000002",
    filename: "minutes.pdf",
    size: 91_004,
    url: pdfUrl,
    proxy_url: pdfUrl.replace("cdn.discordapp.com", "media.discordapp.net"),
    content_type: "application/pdf"
  }
]

const mentionWithFiles = (text: string) => ({
  channelId: world.general,
  content: `<@${world.bot.id}> ${text}`,
  mentions: [world.bot.id],
  attachments
})

describe("images and otids, end to end", () => {
  it.scopedLive("a mention with a png and a pdf: one image part with the png's URL; the pdf's URL in the text", () =>
    Effect.gen(function*() {
      const app = yield* startApp(lettaAgents)
      yield* app.settings.enable(world.guildId, agentId)
      const sent = yield* app.discord.sendMessage(mentionWithFiles("what is in these?"))
      const request = yield* bounded("the Letta request", app.letta.awaitMessages(1, agentId))
      expect(request.rejected).toBeUndefined()
      const [message, ...others] = request.messages ?? []
      expect(others).toEqual([])
      expect(imageUrlsOf(message)).toEqual([pngUrl])
      expect(Array.isArray(message?.content) ? message.content.map((part) => part.type) : []).toEqual(["text", "image"])
      const text = textOf(message)
      expect(text).toContain(`URL "${pngUrl}"): sent to you as an image`)
      expect(text).toContain(`URL "${pdfUrl}"): not sent: not an image type`)
      expect(message?.otid).toBe(promptOtid(String(sent["id"])))
    }))

  it.scopedLive("after `config images value:false`, the same mention sends no image part and says images are off", () =>
    Effect.gen(function*() {
      const app = yield* startApp(lettaAgents)
      yield* app.settings.enable(world.guildId, agentId)
      const command = yield* app.discord.sendInteraction({
        permissions: "32",
        data: {
          name: "aurora",
          type: 1,
          options: [{
            type: 2,
            name: "config",
            options: [{ type: 1, name: "images", options: [{ type: 5, name: "value", value: false }] }]
          }]
        }
      })
      yield* bounded(
        "the command's answer",
        app.discord.waitForRequest((r) =>
          r.method === "POST" && r.path === `/interactions/${command.id}/${command.token}/callback`
        )
      )
      expect((yield* app.settings.guild(world.guildId)).settings.images).toBe(false)
      yield* app.discord.sendMessage(mentionWithFiles("and now?"))
      const request = yield* bounded("the Letta request", app.letta.awaitMessages(1, agentId))
      const [message] = request.messages ?? []
      expect(typeof message?.content).toBe("string")
      expect(imageUrlsOf(message)).toEqual([])
      expect(textOf(message)).toContain(`URL "${pngUrl}"): not sent: images are off`)
      expect(textOf(message)).toContain(`URL "${pdfUrl}"): not sent: not an image type`)
    }))

  it.scopedLive("Letta answers 503 then runs: both requests carry the same otid, the event's", () =>
    Effect.gen(function*() {
      const app = yield* startApp(lettaAgents)
      yield* app.settings.enable(world.guildId, agentId)
      yield* app.letta.script(agentId, Behaviours.status(503), Behaviours.run())
      const sent = yield* app.discord.sendMessage(mentionWithFiles("retry me"))
      yield* bounded("the retried request", app.letta.awaitMessages(2, agentId))
      yield* bounded(
        "the retried run",
        app.letta.awaitRuns((runs) => runs.some((r) => r.doneWritten && r.finishedAt !== undefined))
      )
      const requests = yield* app.letta.messageRequests(agentId)
      expect(requests).toHaveLength(2)
      const otids = requests.map((r) => r.messages?.[0]?.otid)
      expect(otids).toEqual([promptOtid(String(sent["id"])), promptOtid(String(sent["id"]))])
      expect(requests.map((r) => imageUrlsOf(r.messages?.[0]))).toEqual([[pngUrl], [pngUrl]])
      // Another mention, another otid.
      const next = yield* app.discord.sendMessage(mentionWithFiles("again"))
      const third = yield* bounded("the next request", app.letta.awaitMessages(3, agentId))
      expect(third.messages?.[0]?.otid).toBe(promptOtid(String(next["id"])))
      expect(third.messages?.[0]?.otid).not.toBe(otids[0])
    }))
})
