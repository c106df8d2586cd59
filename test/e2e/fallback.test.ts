/**
 * The silent-run fallback end to end: the live layer graph (real discord.js REST, real Letta
 * client, real SQLite) against the loopback fakes. The fake Discord handles a bot's post as
 * Discord does (test/fakes/discord/Posts.ts: the 2 000 limit, replies, allowed mentions, nonces).
 *
 * "Done" is observed without sleeping: a second mention in the same channel (answered with
 * discord_send) reaches Letta only once the first event's dispatch, fallback included, is over.
 */
import { DiscordAPIError, Routes } from "discord.js"
import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import { cutMarker } from "../../src/domain/FallbackReply.js"
import { Behaviours, Items } from "../fakes/FakeLetta.js"
import { bounded, type Running, startApp, world } from "./harness.js"

const agent = "agent-fallback"
const agents = { letta: { agents: { [agent]: "Fallback Agent" } } }

/** A run that only streams assistant text: no Discord tool call at all. */
const textOnly = (text: string) => Behaviours.run({ items: [Items.reasoning("I will just say it."), Items.assistant(text)] })

const start = Effect.gen(function*() {
  const app = yield* startApp(agents)
  yield* app.settings.enable(world.guildId, agent)
  yield* app.settings.setSetting(world.guildId, "ratelimit", 0.5)
  return app
})

const mention = (app: Running, text: string) =>
  Effect.map(
    app.discord.sendMessage({ channelId: world.general, content: `<@${world.bot.id}> ${text}`, mentions: [world.bot.id] }),
    (message) => String(message["id"])
  )

/** Sends a marker mention after the others and waits for its run: every earlier event of the channel is done by then. */
const afterTheOthers = (app: Running, runsBefore: number) =>
  Effect.gen(function*() {
    yield* mention(app, "marker")
    yield* bounded("the marker's run", app.letta.awaitMessages(runsBefore + 1, agent))
  })

const postRequests = (app: Running) =>
  app.discord.requests().filter((request) => request.method === "POST" && request.path === `/channels/${world.general}/messages`)

const field = (value: unknown, key: string): unknown =>
  typeof value === "object" && value !== null && key in value ? (value as Record<string, unknown>)[key] : undefined

describe("the silent-run fallback, end to end", () => {
  it.scopedLive("a run that only streams text: exactly one reply by the bot, to the mention, parsing no mention", () =>
    Effect.gen(function*() {
      const app = yield* start
      yield* app.letta.script(agent, textOnly("The answer is 42, @everyone."))
      const trigger = yield* mention(app, "what is the answer?")
      yield* bounded("the fallback post", app.discord.waitForRequest((r) => r.method === "POST" && r.path.endsWith("/messages")))
      yield* afterTheOthers(app, 1)

      const replies = app.discord.botRepliesTo(trigger)
      expect(replies).toHaveLength(1)
      expect(postRequests(app)).toHaveLength(1)
      const [reply] = replies
      expect(reply!.channelId).toBe(world.general)
      expect(reply!.messageReference).toEqual({ message_id: trigger, fail_if_not_exists: false })
      expect(reply!.allowedMentions).toEqual({ parse: [], replied_user: true })
      expect([reply!.nonce, reply!.enforceNonce]).toEqual([`${trigger}.0`, true])
      expect(reply!.message).toMatchObject({
        content: "The answer is 42, @everyone.",
        author: { id: world.bot.id },
        mention_everyone: false,
        mention_roles: []
      })
      // Only the replied user is mentioned.
      expect((reply!.message["mentions"] as ReadonlyArray<{ id: string }>).map((user) => user.id)).toEqual([world.alice.id])
    }))

  it.scopedLive("`config fallback value:off`: no reply", () =>
    Effect.gen(function*() {
      const app = yield* start
      const command = yield* app.discord.sendInteraction({
        permissions: "32",
        data: {
          name: "aurora",
          type: 1,
          options: [{
            type: 2,
            name: "config",
            options: [{ type: 1, name: "fallback", options: [{ type: 3, name: "value", value: "off" }] }]
          }]
        }
      })
      const answer = yield* bounded(
        "the command's answer",
        app.discord.waitForRequest((r) =>
          r.method === "POST" && r.path === `/interactions/${command.id}/${command.token}/callback`
        )
      )
      expect(String(field(field(answer.body, "data"), "content"))).toContain("fallback")
      expect((yield* app.settings.guild(world.guildId)).settings.fallback).toBe("off")

      yield* app.letta.script(agent, textOnly("An answer nobody sees."))
      const trigger = yield* mention(app, "hello?")
      yield* afterTheOthers(app, 1)
      expect(app.discord.botRepliesTo(trigger)).toEqual([])
      expect(postRequests(app)).toEqual([])
    }))

  it.scopedLive("a run that called discord_send: no reply from Aurora", () =>
    Effect.gen(function*() {
      const app = yield* start
      // The fake's default run: discord_send, its return, then assistant text.
      const trigger = yield* mention(app, "hi")
      yield* afterTheOthers(app, 1)
      expect(app.discord.botRepliesTo(trigger)).toEqual([])
      expect(postRequests(app)).toEqual([])
    }))

  it.scopedLive("100 000 characters with @everyone, a role mention and markdown links: 3 messages, nothing parsed", () =>
    Effect.gen(function*() {
      const app = yield* start
      const line = "@everyone <@&123456789012345678> see [the docs](https://example.com/docs) and <@1200000000000000002>"
      const text = Array.from({ length: Math.ceil(100_000 / (line.length + 1)) }, () => line).join("\n").slice(0, 100_000)
      expect(text).toHaveLength(100_000)
      yield* app.letta.script(agent, textOnly(text))
      const trigger = yield* mention(app, "write a lot")
      yield* afterTheOthers(app, 1)

      const replies = app.discord.botRepliesTo(trigger)
      expect(replies).toHaveLength(3)
      expect(postRequests(app)).toHaveLength(3)
      expect(replies.map((reply) => reply.nonce)).toEqual([0, 1, 2].map((part) => `${trigger}.${part}`))
      for (const reply of replies) {
        expect(reply.allowedMentions).toEqual({ parse: [], replied_user: true })
        expect(String(reply.message["content"]).length).toBeLessThanOrEqual(2000)
        expect(reply.message).toMatchObject({ mention_everyone: false, mention_roles: [] })
        expect((reply.message["mentions"] as ReadonlyArray<{ id: string }>).map((user) => user.id)).toEqual([world.alice.id])
      }
      expect(String(replies[2]!.message["content"]).endsWith(cutMarker)).toBe(true)
      // In order, and each starts where the one before it ended.
      const [first, second] = replies.map((reply) => String(reply.message["content"]))
      expect(text.startsWith(first!)).toBe(true)
      expect(text.includes(`${first}\n${second}`)).toBe(true)
    }))
})

describe("the fake Discord's message posts (so that a bug cannot pass)", () => {
  it.scopedLive("over 2 000 characters: Discord's 400 Invalid Form Body; a repeated nonce: the first message, none created", () =>
    Effect.gen(function*() {
      const app = yield* start
      const rest = app.gateway.client.rest
      const route = Routes.channelMessages(world.general)
      const tooLong = yield* Effect.flip(Effect.tryPromise(() => rest.post(route, { body: { content: "x".repeat(2001) } })))
      const error = tooLong.error
      expect(error).toBeInstanceOf(DiscordAPIError)
      if (error instanceof DiscordAPIError) {
        expect([error.status, error.code]).toEqual([400, 50035])
        expect(field(field(field(error.rawError, "errors"), "content"), "_errors")).toEqual([
          { code: "BASE_TYPE_MAX_LENGTH", message: "Must be 2000 or fewer in length." }
        ])
      }
      // Exactly 2 000 code points (an emoji is one) is accepted.
      yield* Effect.promise(() => rest.post(route, { body: { content: `${"y".repeat(1999)}😀` } }))

      const body = { content: "once", nonce: "nonce-1", enforce_nonce: true }
      const first = yield* Effect.promise(() => rest.post(route, { body }))
      const again = yield* Effect.promise(() => rest.post(route, { body }))
      expect(field(again, "id")).toBe(field(first, "id"))
      expect(app.discord.botPosts().filter((post) => post.nonce === "nonce-1")).toHaveLength(1)

      // Without allowed_mentions, Discord parses everything: the fake does too.
      const loud = yield* Effect.promise(() => rest.post(route, { body: { content: "@everyone <@&123456789012345678>" } }))
      expect(loud).toMatchObject({ mention_everyone: true, mention_roles: ["123456789012345678"] })
    }))
})
