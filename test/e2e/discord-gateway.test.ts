/**
 * The real DiscordGateway layer (real discord.js client) against the loopback FakeDiscord.
 * Waits are bounded and event-driven (stream takes, the fake's request/gateway records).
 */
import { describe, expect, it } from "@effect/vitest"
import { ChannelType, PermissionFlagsBits } from "discord.js"
import { Cause, Context, Duration, Effect, Exit, Layer, Option, Scope, Stream } from "effect"
import { AuroraConfig } from "../../src/domain/Config.js"
import type { ReceivedMessage } from "../../src/domain/Discord.js"
import { DiscordGateway } from "../../src/services/discord/DiscordGateway.js"
import { DirectMessageSwitch } from "../../src/services/discord/Intake.js"
import { messagesReceived } from "../../src/services/health/MessagesReceived.js"
import { MessageSource } from "../../src/services/discord/MessageSource.js"
import { FakeDiscord, type FakeDiscordOptions, snowflake, snowflakeTime, world } from "../fakes/FakeDiscord.js"
import { captureLogs, type LogLine } from "../fakes/logs.js"

const wait = Duration.seconds(10)

/** DMs are on unless a test says otherwise (the intake lets direct messages through only then). */
const gatewayLayer = (
  fake: FakeDiscord,
  extra: Readonly<Record<string, string>> = {},
  directMessages: Layer.Layer<DirectMessageSwitch> = DirectMessageSwitch.layerFixed(true)
) =>
  DiscordGateway.Default.pipe(
    Layer.provide(AuroraConfig.Default),
    Layer.provide(fake.configLayer(extra)),
    Layer.provide(directMessages)
  )

/** A fake and a ready gateway connected to it, both closed with the test's scope. */
const connect = (options: FakeDiscordOptions = {}) =>
  Effect.gen(function*() {
    const fake = yield* FakeDiscord.make(options)
    const context = yield* Layer.build(gatewayLayer(fake))
    return { fake, gateway: Context.get(context, DiscordGateway) }
  })

const nextMessage = (gateway: DiscordGateway): Effect.Effect<ReceivedMessage, unknown> =>
  Stream.runHead(gateway.messages).pipe(
    Effect.flatMap((head) => head),
    Effect.timeoutFail({ duration: wait, onTimeout: () => new Error("no message arrived") })
  )

const countRequests = (fake: FakeDiscord, method: string, path: string): number =>
  fake.requests().filter((request) => request.method === method && request.path === path).length

describe("DiscordGateway against FakeDiscord", () => {
  it.scopedLive("becomes ready after READY and every GUILD_CREATE", () =>
    Effect.gen(function*() {
      const fake = yield* FakeDiscord.make()
      const startedAt = Date.now()
      const context = yield* Layer.build(gatewayLayer(fake))
      const connectToReady = Date.now() - startedAt
      const gateway = Context.get(context, DiscordGateway)

      expect(yield* gateway.isReady).toBe(true)
      expect(gateway.botUserId).toBe(world.bot.id)
      expect(gateway.client.guilds.cache.get(world.guildId)?.name).toBe(world.guildName)
      expect(fake.identifyCount()).toBe(1)
      expect(fake.gatewayEvents().map((event) => event.kind)).toEqual(["connect", "identify", "ready"])
      expect(fake.requests().filter((request) => request.unknownRoute)).toEqual([])
      expect(connectToReady).toBeLessThan(5_000)
      yield* Effect.logInfo(`connect-to-ready: ${connectToReady} ms (client login to clientReady: ${gateway.readyInMs} ms)`)

      expect(yield* gateway.applicationOwnerIds).toEqual([world.alice.id])

      // A route the fake does not serve is answered 404 and shows up in the record.
      const unknown = yield* Effect.flip(Effect.tryPromise(() => gateway.client.rest.get("/guilds/1/audit-logs")))
      expect(unknown.cause).toMatchObject({ status: 404 })
      expect(fake.requests().filter((request) => request.unknownRoute).map((request) => request.path)).toEqual([
        "/guilds/1/audit-logs"
      ])
    }))

  it.scopedLive("a gateway that is not ready in time fails with the timeout", () =>
    Effect.gen(function*() {
      const fake = yield* FakeDiscord.make()
      const exit = yield* Layer.build(gatewayLayer(fake, { AURORA_DISCORD_READY_TIMEOUT: "1 millis" })).pipe(Effect.exit)
      expect(Exit.isFailure(exit)).toBe(true)
      if (Exit.isSuccess(exit)) return
      expect(Option.getOrNull(Cause.failureOption(exit.cause))).toMatchObject({
        _tag: "DiscordLoginFailed",
        message: expect.stringContaining("was not ready within 1ms")
      })
    }))

  it.scopedLive("delivers guild messages mapped to domain records", () =>
    Effect.gen(function*() {
      const { fake, gateway } = yield* connect()

      const sent = yield* fake.sendMessage({
        channelId: world.general,
        content: `<@${world.bot.id}> hello`,
        mentions: [world.bot.id]
      })
      const received = yield* nextMessage(gateway)
      expect(received.message.id).toBe(sent["id"])
      expect(received.message.content).toBe(`<@${world.bot.id}> hello`)
      expect(received.message.createdAt).toBe(snowflakeTime(String(sent["id"])))
      expect(received.message.author).toEqual({
        id: world.alice.id,
        username: "alice",
        displayName: "Ally",
        globalName: "Alice",
        bot: false
      })
      expect(received.channel).toEqual({
        id: world.general,
        name: "general",
        kind: "text",
        parentId: null,
        parentKind: null
      })
      expect(received.guild).toEqual({ id: world.guildId, name: world.guildName })
      expect(received.message.guildId).toBe(world.guildId)
      expect(received.message.mentions).toEqual({ users: [world.bot.id], roles: [], everyone: false })
      expect(received.message.reference).toBeNull()
      expect(received.message.webhookId).toBeNull()

      // @everyone and the bot's managed role are mapped apart from the user mentions (alone, they
      // never reach the stream: see the intake test below).
      yield* fake.sendMessage({
        channelId: world.general,
        author: world.bob,
        content: `@everyone look <@${world.bot.id}>`,
        mentions: [world.bot.id],
        mentionEveryone: true,
        mentionRoles: [world.botRole]
      })
      const everyone = yield* nextMessage(gateway)
      expect(everyone.message.mentions).toEqual({ users: [world.bot.id], roles: [world.botRole], everyone: true })
      expect(everyone.message.author).toMatchObject({ username: "bob", displayName: "bob", globalName: null })

      const reply = yield* fake.sendMessage({
        channelId: world.general,
        author: world.bob,
        content: `<@${world.bot.id}> a reply`,
        mentions: [world.bot.id],
        replyTo: String(sent["id"]),
        embeds: [{ title: "t", description: "d", fields: [{ name: "n", value: "v" }] }]
      })
      const replied = yield* nextMessage(gateway)
      expect(replied.message.id).toBe(reply["id"])
      expect(replied.message.reference).toEqual({
        messageId: sent["id"],
        channelId: world.general,
        guildId: world.guildId
      })
      expect(replied.message.embeds).toEqual([{ title: "t", description: "d", url: null, fields: [{ name: "n", value: "v" }] }])

      // A forward that mentions the bot passes, but its reference (the forwarded message) is no parent.
      const forward = yield* fake.sendMessage({
        channelId: world.general,
        author: world.bob,
        content: `<@${world.bot.id}> see this`,
        mentions: [world.bot.id],
        forwardOf: String(sent["id"])
      })
      const forwarded = yield* nextMessage(gateway)
      expect(forwarded.message.id).toBe(forward["id"])
      expect(forwarded.message.reference).toBeNull()
    }))

  it.scopedLive("delivers direct messages with guild null and kind dm", () =>
    Effect.gen(function*() {
      const { fake, gateway } = yield* connect()
      const dm = snowflake()
      yield* fake.sendMessage({ channelId: dm, author: world.bob, content: "psst" })
      const received = yield* nextMessage(gateway)
      expect(received.guild).toBeNull()
      expect(received.message.guildId).toBeNull()
      expect(received.channel).toEqual({ id: dm, name: null, kind: "dm", parentId: null, parentKind: null })
      expect(received.message.author.id).toBe(world.bob.id)
    }))

  it.scopedLive("thread messages carry their parent channel", () =>
    Effect.gen(function*() {
      const { fake, gateway } = yield* connect()
      yield* fake.sendMessage({ channelId: world.thread, content: "in a thread", mentions: [world.bot.id] })
      const thread = yield* nextMessage(gateway)
      expect(thread.channel).toEqual({
        id: world.thread,
        name: "a thread",
        kind: "public-thread",
        parentId: world.general,
        parentKind: "text"
      })
      yield* fake.sendMessage({ channelId: world.forumPost, content: "in a forum post", mentions: [world.bot.id] })
      const post = yield* nextMessage(gateway)
      expect(post.channel).toMatchObject({ kind: "public-thread", parentId: world.forum, parentKind: "forum" })
    }))

  it.scopedLive("fetchMessage reads REST once, then the cache; maps 404 and 403", () =>
    Effect.gen(function*() {
      const { fake, gateway } = yield* connect()
      const source = Context.get(
        yield* Layer.build(MessageSource.Default.pipe(
          Layer.provide(Layer.succeed(DiscordGateway, gateway))
        )),
        MessageSource
      )

      const stored = yield* fake.storeMessage({ channelId: world.general, author: world.bob, content: "old news" })
      const id = String(stored["id"])
      const path = `/channels/${world.general}/messages/${id}`
      const first = yield* source.fetchMessage(world.general, id)
      expect(first).toMatchObject({ id, content: "old news", channelId: world.general, guildId: world.guildId })
      expect(first.author).toMatchObject({ id: world.bob.id, displayName: "bob" })
      expect(countRequests(fake, "GET", path)).toBe(1)
      const second = yield* source.fetchMessage(world.general, id)
      expect(second).toEqual(first)
      expect(countRequests(fake, "GET", path)).toBe(1)

      // A message the gateway delivered is in the cache: no REST at all.
      const live = yield* fake.sendMessage({ channelId: world.general, content: "live", mentions: [world.bot.id] })
      yield* nextMessage(gateway)
      const before = fake.requests().length
      expect((yield* source.fetchMessage(world.general, String(live["id"]))).content).toBe("live")
      expect(fake.requests().length).toBe(before)

      // A webhook's message never reaches the stream; read as a parent, it keeps its webhook id.
      const hook = yield* fake.storeMessage({ channelId: world.general, content: "hooked", webhookId: "1600000000000000001" })
      expect((yield* source.fetchMessage(world.general, String(hook["id"]))).webhookId).toBe("1600000000000000001")

      const missing = snowflake()
      const notFound = yield* Effect.flip(source.fetchMessage(world.general, missing))
      expect(notFound).toMatchObject({ _tag: "MessageNotFound", channelId: world.general, messageId: missing })

      const doomed = yield* fake.storeMessage({ channelId: world.general, content: "soon gone" })
      yield* fake.deleteMessage(world.general, String(doomed["id"]))
      expect((yield* Effect.flip(source.fetchMessage(world.general, String(doomed["id"]))))._tag).toBe("MessageNotFound")

      const forbidden = yield* Effect.flip(source.fetchMessage(world.secret, snowflake()))
      expect(forbidden).toMatchObject({ _tag: "MissingAccess", channelId: world.secret })

      // A DM channel discord.js never saw is fetched by REST first.
      const dm = fake.dmChannelFor(world.bob)
      const dmMessage = yield* fake.storeMessage({ channelId: dm, author: world.bob, content: "in a dm" })
      const fetched = yield* source.fetchMessage(dm, String(dmMessage["id"]))
      expect(fetched).toMatchObject({ content: "in a dm", guildId: null })
      expect(countRequests(fake, "GET", `/channels/${dm}`)).toBe(1)
      expect(fake.requests().filter((request) => request.unknownRoute)).toEqual([])
    }))

  it.scopedLive("sendTyping posts to /channels/{c}/typing and maps 403", () =>
    Effect.gen(function*() {
      const { fake, gateway } = yield* connect()
      yield* gateway.sendTyping(world.general)
      const request = yield* fake.waitForRequest((r) => r.method === "POST" && r.path === `/channels/${world.general}/typing`)
      expect(request.status).toBe(204)
      expect(fake.typingCalls().map((call) => call.channelId)).toEqual([world.general])

      fake.setTypingForbidden(world.general, true)
      const failure = yield* Effect.flip(gateway.sendTyping(world.general))
      expect(failure).toMatchObject({ _tag: "MissingAccess", channelId: world.general, operation: "sendTyping" })
    }))

  it.scopedLive("sendDirectMessage opens a DM and posts without pings", () =>
    Effect.gen(function*() {
      const { fake, gateway } = yield* connect()
      yield* gateway.sendDirectMessage(world.bob.id, "error rate above 50 %")
      const open = yield* fake.waitForRequest((r) => r.method === "POST" && r.path === "/users/@me/channels")
      expect(open.body).toEqual({ recipient_id: world.bob.id })
      const dm = fake.dmChannelFor(world.bob)
      const post = yield* fake.waitForRequest((r) => r.method === "POST" && r.path === `/channels/${dm}/messages`)
      expect(post.body).toMatchObject({ content: "error rate above 50 %", allowed_mentions: { parse: [] } })
      // Discord echoes the bot's own message on the gateway: the intake drops it, so the next
      // message on the stream is the one that follows.
      const next = yield* fake.sendMessage({ channelId: dm, author: world.bob, content: "thanks" })
      const received = yield* nextMessage(gateway)
      expect(received.message.id).toBe(next["id"])
      expect(received.channel.kind).toBe("dm")
    }))

  it.scopedLive("applicationOwnerIds lists the team's accepted, non-read-only members", () =>
    Effect.gen(function*() {
      const carol = { id: "1200000000000000003", username: "carol" }
      const { gateway } = yield* connect({
        owner: {
          _tag: "Team",
          id: "1700000000000000001",
          ownerUserId: world.alice.id,
          members: [
            { user: world.alice, role: "admin" },
            { user: world.bob, role: "developer" },
            { user: carol, role: "read_only" },
            { user: { id: "1200000000000000004", username: "dave" }, role: "admin", membershipState: 1 }
          ]
        }
      })
      expect([...(yield* gateway.applicationOwnerIds)].sort()).toEqual([world.alice.id, world.bob.id])
    }))

  it.scopedLive("delivers interactions and their replies reach the fake", () =>
    Effect.gen(function*() {
      const { fake, gateway } = yield* connect()
      const sent = yield* fake.sendInteraction({
        permissions: String(PermissionFlagsBits.ManageGuild),
        data: { name: "aurora", type: 1, options: [{ type: 1, name: "disable" }] }
      })
      const interaction = yield* Stream.runHead(gateway.interactions).pipe(
        Effect.flatMap((head) => head),
        Effect.timeout(wait)
      )
      expect(interaction.id).toBe(sent.id)
      if (!interaction.isChatInputCommand()) return expect.fail("expected a chat input command")
      expect(interaction.commandName).toBe("aurora")
      expect(interaction.options.getSubcommand()).toBe("disable")
      expect(interaction.user.id).toBe(world.alice.id)
      expect(interaction.guildId).toBe(world.guildId)
      expect(interaction.channelId).toBe(world.general)
      expect(interaction.memberPermissions?.has(PermissionFlagsBits.ManageGuild)).toBe(true)
      expect(interaction.channel?.type).toBe(ChannelType.GuildText)

      yield* Effect.promise(() => interaction.deferReply({ flags: "Ephemeral" }))
      yield* Effect.promise(() => interaction.editReply("done"))
      const callback = yield* fake.waitForRequest((r) => r.path === `/interactions/${sent.id}/${sent.token}/callback`)
      expect(callback.body).toMatchObject({ type: 5, data: { flags: 64 } })
      const edit = yield* fake.waitForRequest((r) =>
        r.method === "PATCH" && r.path === `/webhooks/${world.bot.id}/${sent.token}/messages/@original`
      )
      expect(edit.body).toMatchObject({ content: "done" })
      expect(fake.interactionReply(sent.token)).toMatchObject({ content: "done" })

      // Bulk overwrite of the global and a guild's commands (the commands feature's start-up).
      const definition = { name: "aurora", description: "Aurora admin" }
      const global = yield* Effect.promise(() => gateway.client.application.commands.set([definition]))
      expect([...global.values()].map((command) => command.name)).toEqual(["aurora"])
      yield* Effect.promise(() => gateway.client.application.commands.set([definition], world.guildId))
      expect(fake.registeredCommands()).toMatchObject([definition])
      expect(fake.registeredCommands(world.guildId)).toMatchObject([{ ...definition, guild_id: world.guildId }])
    }))

  it.scopedLive("the intake: counts every message, and only what may concern Aurora reaches the stream, without a log line", () =>
    Effect.gen(function*() {
      const fake = yield* FakeDiscord.make()
      let dmsOn = false
      const lines: Array<LogLine> = []
      const context = yield* Layer.build(
        gatewayLayer(fake, {}, Layer.succeed(DirectMessageSwitch, { isOn: () => dmsOn })).pipe(
          Layer.provide(captureLogs(lines))
        )
      )
      const gateway = Context.get(context, DiscordGateway)
      const counted = messagesReceived()
      const linesAtStart = lines.length
      const mention = (content: string) =>
        fake.sendMessage({ channelId: world.general, content: `<@${world.bot.id}> ${content}`, mentions: [world.bot.id] })
      const idOf = (message: Readonly<Record<string, unknown>>) => String(message["id"])
      const otherBot = { id: "1200000000000000009", username: "otherbot", bot: true }

      const sent: Array<string> = []
      const passing: Array<string> = []
      const send = (message: Effect.Effect<Readonly<Record<string, unknown>>>, passes: boolean) =>
        Effect.map(message, (m) => {
          sent.push(idOf(m))
          if (passes) passing.push(idOf(m))
          return m
        })
      const chatter = yield* send(fake.sendMessage({ channelId: world.general, content: "just chatting" }), false)
      yield* send(fake.sendMessage({ channelId: world.general, content: "hi bob", mentions: [world.bob.id] }), false)
      yield* send(
        fake.sendMessage({
          channelId: world.general,
          content: "@everyone",
          mentionEveryone: true,
          mentionRoles: [world.botRole]
        }),
        false
      )
      // Replies to alice: from the payload's referenced message, then (no payload) from the cache.
      yield* send(
        fake.sendMessage({ channelId: world.general, author: world.bob, content: "yes", replyTo: idOf(chatter) }),
        false
      )
      yield* send(
        fake.sendMessage({
          channelId: world.general,
          author: world.bob,
          content: "no",
          replyTo: idOf(chatter),
          includeReferenced: false
        }),
        false
      )
      yield* send(
        fake.sendMessage({ channelId: world.general, author: otherBot, content: "<@bot>", mentions: [world.bot.id] }),
        false
      )
      yield* send(
        fake.sendMessage({
          channelId: world.general,
          content: "hook",
          mentions: [world.bot.id],
          webhookId: "1600000000000000001"
        }),
        false
      )
      // The bot's own message (Discord echoes it): dropped, but now in discord.js' cache.
      const own = yield* send(fake.sendMessage({ channelId: world.general, author: world.bot, content: "I am Aurora" }), false)
      const dm = snowflake()
      yield* send(fake.sendMessage({ channelId: dm, author: world.bob, content: "psst (DMs off)" }), false)
      // A forward of the bot's message (its reference names the bot's message, type 1): not a reply.
      yield* send(fake.sendMessage({ channelId: world.general, author: world.bob, forwardOf: idOf(own) }), false)

      yield* send(mention("a mention"), true)
      const stored = yield* fake.storeMessage({ channelId: world.general, author: world.bot, content: "an older answer" })
      yield* send(fake.sendMessage({ channelId: world.general, content: "thanks", replyTo: idOf(stored) }), true)
      yield* send(
        fake.sendMessage({ channelId: world.general, content: "and this?", replyTo: idOf(own), includeReferenced: false }),
        true
      )
      // Neither in the payload nor in the cache: passed on, for the listener to resolve.
      const unknown = yield* fake.storeMessage({ channelId: world.general, author: world.bob, content: "not seen" })
      yield* send(
        fake.sendMessage({ channelId: world.general, content: "hm", replyTo: idOf(unknown), includeReferenced: false }),
        true
      )
      const sentinel = yield* send(mention("sentinel"), true)

      const seen: Array<string> = []
      yield* gateway.messages.pipe(
        Stream.map((received) => received.message.id),
        Stream.tap((id) => Effect.sync(() => seen.push(id))),
        Stream.takeUntil((id) => id === idOf(sentinel)),
        Stream.runDrain,
        Effect.timeout(wait)
      )
      expect(seen).toEqual(passing)
      expect(messagesReceived() - counted).toBe(sent.length)
      expect(lines.slice(linesAtStart)).toEqual([])

      // DMs switched on: the next direct message passes, with no restart.
      dmsOn = true
      const on = yield* fake.sendMessage({ channelId: dm, author: world.bob, content: "psst (DMs on)" })
      expect((yield* nextMessage(gateway)).message.id).toBe(idOf(on))
      expect(messagesReceived() - counted).toBe(sent.length + 1)
    }))

  it.scopedLive("resumes after a dropped connection and delivers a message exactly once", () =>
    Effect.gen(function*() {
      const { fake, gateway } = yield* connect()
      const mark = fake.gatewayEvents().length - 1

      yield* fake.dropConnection()
      // Sent while the socket is down: replayed on RESUME.
      const during = yield* fake.sendMessage({
        channelId: world.general,
        content: "during the drop",
        mentions: [world.bot.id]
      })
      yield* fake.waitForGateway("resumed", { after: mark, timeout: wait })
      const after = yield* fake.sendMessage({
        channelId: world.general,
        content: "after the resume",
        mentions: [world.bot.id]
      })

      const seen: Array<string> = []
      yield* gateway.messages.pipe(
        Stream.map((received) => received.message.id),
        Stream.tap((id) => Effect.sync(() => seen.push(id))),
        Stream.takeUntil((id) => id === after["id"]),
        Stream.runDrain,
        Effect.timeout(wait)
      )
      expect(seen).toEqual([during["id"], after["id"]])
      expect(fake.identifyCount()).toBe(1)
      expect(fake.resumeCount()).toBe(1)
      expect(yield* gateway.isReady).toBe(true)
    }))

  it.scopedLive("a rejected token fails with a clear message without the token", () =>
    Effect.gen(function*() {
      const fake = yield* FakeDiscord.make({ token: "the-right-token" })
      const secret = "wrong-secret-token-0123456789"
      const exit = yield* Layer.build(gatewayLayer(fake, { DISCORD_TOKEN: secret })).pipe(Effect.exit)
      expect(Exit.isFailure(exit)).toBe(true)
      if (Exit.isSuccess(exit)) return
      const failure = Cause.failureOption(exit.cause)
      expect(Option.getOrNull(failure)).toMatchObject({
        _tag: "DiscordLoginFailed",
        message: "Discord rejected DISCORD_TOKEN (401 Unauthorized)"
      })
      expect(Cause.pretty(exit.cause)).not.toContain(secret)
      expect(fake.identifyCount()).toBe(0)
    }))

  it.scopedLive("an unreachable Discord fails with the URL it tried", () =>
    Effect.gen(function*() {
      const fake = yield* FakeDiscord.make()
      // A port that was free a moment ago and is closed now.
      const closedUrl = yield* Effect.scoped(Effect.map(FakeDiscord.make(), (other) => other.apiUrl))
      const exit = yield* Layer.build(gatewayLayer(fake, { DISCORD_API_URL: closedUrl })).pipe(Effect.exit)
      expect(Exit.isFailure(exit)).toBe(true)
      if (Exit.isSuccess(exit)) return
      expect(Option.getOrNull(Cause.failureOption(exit.cause))).toMatchObject({
        _tag: "DiscordLoginFailed",
        message: `cannot reach Discord at ${closedUrl} (ECONNREFUSED)`
      })
      expect(Cause.pretty(exit.cause)).not.toContain(fake.token)
    }))

  it.scopedLive("closing the scope destroys the client: the fake sees the socket close", () =>
    Effect.gen(function*() {
      const fake = yield* FakeDiscord.make()
      const scope = yield* Scope.make()
      const context = yield* Layer.buildWithScope(gatewayLayer(fake), scope)
      const gateway = Context.get(context, DiscordGateway)
      expect(fake.openSockets()).toBe(1)
      const mark = fake.gatewayEvents().length - 1

      yield* Scope.close(scope, Exit.void)
      const closed = yield* fake.waitForGateway("close", { after: mark, timeout: wait })
      expect(closed.code).toBe(1000)
      expect(fake.openSockets()).toBe(0)
      expect(yield* gateway.isReady).toBe(false)
    }))
})
