/**
 * Built-in Discord tools end to end (`tools` = `builtin`): the live layer graph (real discord.js,
 * real Letta client, real SQLite) against the loopback fakes. The fake Letta only makes a client
 * tool call the request declared in `client_tools`, and records every continuation.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import { Behaviours, Items } from "../fakes/FakeLetta.js"
import { bounded, otherGuild, type Running, startApp, world } from "./harness.js"

const agent = "agent-tools"
const names = ["discord_send", "discord_read_messages", "discord_add_reaction", "discord_get_server_info"]

const start = Effect.gen(function*() {
  const app = yield* startApp({ letta: { agents: { [agent]: "Tools Agent" } } })
  yield* app.settings.enable(world.guildId, agent)
  yield* app.settings.setSetting(world.guildId, "tools", "builtin")
  return app
})

const mention = (app: Running, text: string) =>
  Effect.map(
    app.discord.sendMessage({ channelId: world.general, content: `<@${world.bot.id}> ${text}`, mentions: [world.bot.id] }),
    (message) => String(message["id"])
  )

const postsTo = (app: Running, channelId: string) =>
  app.discord.requests().filter((request) => request.method === "POST" && request.path === `/channels/${channelId}/messages`)

const declared = (body: unknown): ReadonlyArray<string> => {
  const tools = typeof body === "object" && body !== null && "client_tools" in body ? body.client_tools : undefined
  return Array.isArray(tools) ? tools.map((tool: { readonly name?: unknown }) => String(tool.name)) : []
}

describe("built-in Discord tools, end to end", () => {
  it.scopedLive("the request declares the tools; a discord_send posts once and the follow-up says success", () =>
    Effect.gen(function*() {
      const app = yield* start
      yield* app.letta.script(
        agent,
        Behaviours.clientToolCall({
          name: "discord_send",
          args: { channelId: world.general, message: "Hello from Aurora" },
          toolCallId: "call-send"
        }),
        Behaviours.run({ items: [Items.assistant("sent it")] })
      )
      yield* mention(app, "say hello")
      yield* bounded("the continuation", app.letta.awaitContinuation(1))
      const [continuation] = yield* app.letta.continuations
      expect(continuation).toMatchObject({ outcome: "accepted", type: "tool", toolCallId: "call-send", status: "success" })
      expect(String(continuation?.toolReturn)).toMatch(/^sent message \d+ to channel /)
      const [first, second] = yield* bounded(
        "both requests",
        app.letta.awaitMessages(2, agent).pipe(
          Effect.zipRight(app.letta.messageRequests(agent))
        )
      )
      expect(declared(first?.body)).toEqual(names)
      expect(declared(second?.body)).toEqual(names)
      const posts = postsTo(app, world.general)
      expect(posts).toHaveLength(1)
      expect(posts[0]?.body).toMatchObject({ content: "Hello from Aurora", allowed_mentions: { parse: ["users"] } })
    }))

  it.scopedLive("another guild's channel: nothing posted there, the follow-up says error", () =>
    Effect.gen(function*() {
      const app = yield* start
      const elsewhere = otherGuild.channels[0]!.id
      yield* app.letta.script(
        agent,
        Behaviours.clientToolCall({
          name: "discord_send",
          args: { channelId: elsewhere, message: "psst" },
          toolCallId: "call-x"
        }),
        Behaviours.run({ items: [Items.assistant("could not")] })
      )
      yield* mention(app, "post in the other server")
      yield* bounded("the continuation", app.letta.awaitContinuation(1))
      const [continuation] = yield* app.letta.continuations
      expect(continuation).toMatchObject({ outcome: "accepted", toolCallId: "call-x", status: "error" })
      expect(String(continuation?.toolReturn)).toMatch(/belongs to another server/)
      expect(postsTo(app, elsewhere)).toEqual([])
    }))
})
