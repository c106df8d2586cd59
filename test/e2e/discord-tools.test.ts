/**
 * The built-in Discord tools through the real DiscordGateway (discord.js) against FakeDiscord:
 * what reaches Discord's REST API. A send's payload parses user mentions only (no @everyone,
 * @here or role ping, whatever the content), a reply references its message; a channel of another
 * guild, an unknown id or a forbidden channel posts nothing; reads and reactions go through.
 */
import { describe, expect, it } from "@effect/vitest"
import { ChannelType } from "discord.js"
import { Context, Effect, Layer } from "effect"
import { AuroraConfig } from "../../src/domain/Config.js"
import type { ToolScope } from "../../src/domain/ToolCall.js"
import { DiscordGateway } from "../../src/services/discord/DiscordGateway.js"
import { DirectMessageSwitch } from "../../src/services/discord/Intake.js"
import { DiscordActions, DiscordTools, ToolNames } from "../../src/services/discord/Tools.js"
import { defaultGuild, FakeDiscord, type FakeGuild, world } from "../fakes/FakeDiscord.js"

const otherGuild: FakeGuild = {
  id: "1300000000000000002",
  name: "Another Guild",
  channels: [{ id: "1400000000000000099", name: "elsewhere", type: ChannelType.GuildText }]
}

/** A fake with two guilds, and the tools on a ready gateway connected to it. */
const connect = Effect.gen(function*() {
  const fake = yield* FakeDiscord.make({ guilds: [defaultGuild, otherGuild], echoBotMessages: false })
  const layer = DiscordTools.Default.pipe(
    Layer.provide(DiscordActions.Default),
    Layer.provideMerge(DiscordGateway.Default),
    Layer.provide(DirectMessageSwitch.layerFixed(false)),
    Layer.provide(AuroraConfig.Default),
    Layer.provide(fake.configLayer())
  )
  const context = yield* Layer.build(layer)
  return { fake, tools: Context.get(context, DiscordTools) }
})

const scope: ToolScope = { guildId: world.guildId, channelId: world.general }

const posts = (fake: FakeDiscord) =>
  fake.requests().filter((request) => request.method === "POST" && /^\/channels\/\d+\/messages$/.test(request.path))

describe("built-in Discord tools through discord.js", () => {
  it.scopedLive("a send parses user mentions only: @everyone, @here and roles never ping; a reply references its message", () =>
    Effect.gen(function*() {
      const { fake, tools } = yield* connect
      const asked = yield* fake.storeMessage({ channelId: world.general, content: "hey bot" })
      const content = `@everyone @here <@&${world.botRole}> hi <@${world.alice.id}>`
      const result = yield* tools.execute(
        {
          name: ToolNames.send,
          arguments: JSON.stringify({ channelId: world.general, message: content, replyToMessageId: asked["id"] }),
          toolCallId: "call-1"
        },
        scope
      )
      expect(result.status).toBe("success")
      expect(result.toolReturn).toMatch(
        new RegExp(`^sent message \\d+ to channel ${world.general} as a reply to message ${asked["id"]}$`)
      )
      const [post, ...more] = posts(fake)
      expect(more).toEqual([])
      expect(post?.status).toBe(200)
      expect(post?.body).toEqual({
        content,
        allowed_mentions: { parse: ["users"], replied_user: true },
        message_reference: { message_id: asked["id"], fail_if_not_exists: false }
      })

      // Without a reply: no replied_user, no reference.
      yield* tools.execute(
        { name: ToolNames.send, arguments: JSON.stringify({ channelId: world.thread, message: "@here" }), toolCallId: "call-2" },
        scope
      )
      expect(posts(fake)[1]?.body).toEqual({ content: "@here", allowed_mentions: { parse: ["users"] } })
    }))

  it.scopedLive("another guild's channel, an unknown id, a forbidden channel, a forum: an error each, nothing posted", () =>
    Effect.gen(function*() {
      const { fake, tools } = yield* connect
      const send = (channelId: string) =>
        tools.execute(
          { name: ToolNames.send, arguments: JSON.stringify({ channelId, message: "hello" }), toolCallId: `call-${channelId}` },
          scope
        )
      expect(yield* send("1400000000000000099")).toEqual({
        status: "error",
        toolReturn: `channel 1400000000000000099 belongs to another server: tools act only in this server (${world.guildId})`
      })
      expect(yield* send("1400000000000000777")).toEqual({
        status: "error",
        toolReturn: "channel 1400000000000000777 not found (unknown, deleted, or not visible to Aurora)"
      })
      expect((yield* send(world.secret)).toolReturn).toBe(
        `Aurora lacks the permission to send messages in channel ${world.secret}`
      )
      expect((yield* send(world.forum)).toolReturn).toContain("holds no messages")
      // The forbidden channel is refused by Discord itself (403): the post was tried and answered 403.
      expect(posts(fake).map((request) => [request.path, request.status])).toEqual([[`/channels/${world.secret}/messages`, 403]])
    }))

  it.scopedLive("reads the channel's messages as data; reacts with a unicode or custom emoji; an unknown emoji is an error", () =>
    Effect.gen(function*() {
      const { fake, tools } = yield* connect
      const first = yield* fake.storeMessage({ channelId: world.general, content: "first" })
      yield* fake.storeMessage({ channelId: world.general, content: "second, by bob", author: world.bob })
      const read = yield* tools.execute(
        { name: ToolNames.readMessages, arguments: JSON.stringify({ channelId: world.general, limit: 5 }), toolCallId: "r" },
        scope
      )
      expect(read.status).toBe("success")
      const data = JSON.parse(read.toolReturn) as { messages: Array<{ content: string; author: { username: string } }> }
      expect(data.messages.map((m) => [m.author.username, m.content])).toEqual([["alice", "first"], ["bob", "second, by bob"]])
      expect(fake.requests().find((r) => r.method === "GET" && r.path === `/channels/${world.general}/messages`)?.query)
        .toBe("?limit=5")

      const react = (emoji: string) =>
        tools.execute(
          {
            name: ToolNames.addReaction,
            arguments: JSON.stringify({ channelId: world.general, messageId: first["id"], emoji }),
            toolCallId: `react-${emoji}`
          },
          scope
        )
      expect((yield* react("👍")).status).toBe("success")
      expect((yield* react("<:aurora:1500000000000000009>")).status).toBe("success")
      const unknown = yield* react("not-an-emoji")
      expect(unknown.status).toBe("error")
      expect(unknown.toolReturn).toContain("Unknown Emoji")
      const puts = fake.requests().filter((r) => r.method === "PUT").map((r) => [r.path, r.status])
      expect(puts).toEqual([
        [`/channels/${world.general}/messages/${first["id"]}/reactions/👍/@me`, 204],
        [`/channels/${world.general}/messages/${first["id"]}/reactions/aurora:1500000000000000009/@me`, 204],
        [`/channels/${world.general}/messages/${first["id"]}/reactions/not-an-emoji/@me`, 400]
      ])

      const info = yield* tools.execute(
        { name: ToolNames.serverInfo, arguments: JSON.stringify({ guildId: world.guildId }), toolCallId: "i" },
        scope
      )
      expect(JSON.parse(info.toolReturn)).toMatchObject({
        id: world.guildId,
        name: world.guildName,
        channels: expect.arrayContaining([{ id: world.general, name: "general", type: "text", parentId: null }])
      })
    }))
})
