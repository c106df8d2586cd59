/**
 * The commands program end to end: the real discord.js client (DiscordGateway) against the
 * loopback FakeDiscord, the real Letta client against FakeLetta, real SQLite settings.
 * INTERACTION_CREATE goes in; the interaction callback (or a deferral and the edit of
 * @original) and the command registration are asserted on the fake's REST record.
 */
import { describe, expect, it } from "@effect/vitest"
import { Context, Effect, Layer, Logger, LogLevel } from "effect"
import { commandDefinitions } from "../../src/commands/Definitions.js"
import { AuroraConfig } from "../../src/domain/Config.js"
import { CommandsLive } from "../../src/programs/Commands.js"
import { QueuePolicy } from "../../src/services/queue/QueuePolicy.js"
import { CircuitBreaker } from "../../src/services/health/CircuitBreaker.js"
import { ContextService } from "../../src/services/prompt/ContextService.js"
import { DeadLetters } from "../../src/services/queue/DeadLetters.js"
import { ConversationStore } from "../../src/services/conversation/ConversationStore.js"
import { Database } from "../../src/services/storage/Database.js"
import { DiscordGateway } from "../../src/services/discord/DiscordGateway.js"
import { DirectMessageSwitch } from "../../src/services/discord/Intake.js"
import { MessageSource } from "../../src/services/discord/MessageSource.js"
import { ErrorStats } from "../../src/services/health/ErrorStats.js"
import { EventJournal } from "../../src/services/queue/EventJournal.js"
import { EventQueue } from "../../src/services/queue/EventQueue.js"
import { LettaClient, LettaEndpoint } from "../../src/services/letta/LettaClient.js"
import { PromptService } from "../../src/services/prompt/PromptService.js"
import { RunLog } from "../../src/services/queue/RunLog.js"
import { SettingsStore } from "../../src/services/storage/SettingsStore.js"
import { ApprovalPoster } from "../../src/services/approvals/ApprovalPoster.js"
import { Approvals } from "../../src/services/approvals/Gate.js"
import { PendingApprovals } from "../../src/services/approvals/PendingApprovals.js"
import { ApprovalContinuation } from "../../src/services/approvals/Ports.js"
import { FakeDiscord, type RecordedRequest, world } from "../fakes/FakeDiscord.js"
import { type FakeLetta, makeFakeLetta } from "../fakes/FakeLetta.js"
import { makeTempDir } from "../fakes/tempDir.js"

const tempDir = makeTempDir("commands-e2e")

/** The commands program with the services it needs, as the live graph builds them. */
const appLayer = (dir: string) => {
  const gateway = MessageSource.Default.pipe(
    Layer.provideMerge(DiscordGateway.Default),
    Layer.provide(DirectMessageSwitch.layerSettings)
  )
  const storage = SettingsStore.Default.pipe(Layer.provideMerge(Database.layer(dir)))
  const letta = LettaClient.Default.pipe(Layer.provideMerge(LettaEndpoint.Default))
  const queue = EventQueue.layer().pipe(Layer.provide(QueuePolicy.layerSettings), Layer.provide(EventJournal.layerMemory))
  const services = Layer.mergeAll(
    CircuitBreaker.Default,
    ErrorStats.Default,
    ContextService.Default,
    PromptService.Default,
    DeadLetters.layerMemory,
    ConversationStore.layerMemory,
    RunLog.layerMemory,
    queue,
    letta
  )
  // The approval buttons are answered by the same program; no approval is opened here.
  const approvals = Approvals.Default.pipe(
    Layer.provide(Layer.mergeAll(
      PendingApprovals.layerMemory,
      ApprovalPoster.Default,
      Layer.succeed(ApprovalContinuation, { resume: () => Effect.succeed("answered" as const) })
    ))
  )
  return CommandsLive.pipe(
    Layer.provideMerge(approvals),
    Layer.provideMerge(services),
    Layer.provideMerge(gateway),
    Layer.provideMerge(storage),
    Layer.provideMerge(AuroraConfig.Default)
  )
}

interface Running {
  readonly fake: FakeDiscord
  readonly letta: FakeLetta
}

/** Starts the fakes and the program; everything closes with the test's scope. */
const start = (extra: Readonly<Record<string, string>> = {}) =>
  Effect.gen(function*() {
    const fake = yield* FakeDiscord.make()
    const letta = yield* makeFakeLetta({ agents: { "agent-1": "Helper" } })
    const dir = yield* tempDir
    const provider = fake.configProvider({ LETTA_BASE_URL: letta.url, AURORA_COMMAND_GUILD_ID: world.guildId, ...extra })
    const context = yield* Layer.build(appLayer(dir)).pipe(Effect.withConfigProvider(provider))
    // Registration happens before the loop starts, so both PUTs are in the record by now.
    return { fake, letta, context } satisfies Running & { readonly context: unknown }
  }).pipe(Effect.provide(Logger.minimumLogLevel(LogLevel.Error)))

const aurora = (group: string | null, subcommand: string, options: ReadonlyArray<Record<string, unknown>> = []) => ({
  name: "aurora",
  type: 1,
  options: group === null
    ? [{ type: 1, name: subcommand, options }]
    : [{ type: 2, name: group, options: [{ type: 1, name: subcommand, options }] }]
})

const callbackOf = (fake: FakeDiscord, interaction: { readonly id: string; readonly token: string }) =>
  fake.waitForRequest((r) => r.method === "POST" && r.path === `/interactions/${interaction.id}/${interaction.token}/callback`)

const editOf = (fake: FakeDiscord, token: string) =>
  fake.waitForRequest((r) => r.method === "PATCH" && r.path === `/webhooks/${fake.applicationId}/${token}/messages/@original`)

const field = (value: unknown, key: string): unknown =>
  typeof value === "object" && value !== null && key in value ? (value as Record<string, unknown>)[key] : undefined

const contentOf = (request: RecordedRequest): unknown =>
  field(request.body, "type") === 4 ? field(field(request.body, "data"), "content") : field(request.body, "content")

describe("commands end to end", () => {
  it.scopedLive("registers /aurora and the menu command, globally and on AURORA_COMMAND_GUILD_ID", () =>
    Effect.gen(function*() {
      const { fake } = yield* start()
      const expected = JSON.parse(JSON.stringify(commandDefinitions)) as ReadonlyArray<Record<string, unknown>>
      const puts = fake.requests().filter((r) => r.method === "PUT")
      expect(puts.map((r) => r.path)).toEqual([
        `/applications/${fake.applicationId}/commands`,
        `/applications/${fake.applicationId}/guilds/${world.guildId}/commands`
      ])
      for (const registered of [fake.registeredCommands(), fake.registeredCommands(world.guildId)]) {
        expect(registered).toHaveLength(2)
        expect(registered?.[0]).toMatchObject(expected[0]!)
        expect(registered?.[1]).toMatchObject(expected[1]!)
      }
    }))

  it.scopedLive("a fast command is answered by the interaction callback, ephemeral; a member is denied", () =>
    Effect.gen(function*() {
      const { fake } = yield* start()
      const admin = yield* fake.sendInteraction({
        permissions: "32",
        data: aurora("config", "ratelimit", [{ type: 10, name: "value", value: 3.5 }])
      })
      const answer = yield* callbackOf(fake, admin)
      expect(field(answer.body, "type")).toBe(4)
      expect(field(field(answer.body, "data"), "flags")).toBe(64)
      expect(contentOf(answer)).toContain("**ratelimit** is now **3.5 seconds**")

      const member = yield* fake.sendInteraction({
        user: world.bob,
        permissions: "0",
        data: aurora("config", "ratelimit", [{ type: 10, name: "value", value: 1 }])
      })
      const denied = yield* callbackOf(fake, member)
      expect(contentOf(denied)).toBe("⛔ You need the **Manage Server** permission to use `/aurora config ratelimit`.")
      expect(field(field(denied.body, "data"), "flags")).toBe(64)

      // The value the admin set is the one stored; the member's was not.
      const status = yield* fake.sendInteraction({ permissions: "32", data: aurora("config", "show") })
      const shown = yield* callbackOf(fake, status)
      const embeds = field(field(shown.body, "data"), "embeds")
      expect(JSON.stringify(embeds)).toContain("**3.5 seconds**")
    }))

  it.scopedLive("enable is deferred, checks the agent on Letta, then edits @original", () =>
    Effect.gen(function*() {
      const { fake, letta } = yield* start()
      const found = yield* fake.sendInteraction({
        permissions: "32",
        data: aurora(null, "enable", [{ type: 3, name: "agent_id", value: "agent-1" }])
      })
      const deferral = yield* callbackOf(fake, found)
      expect(field(deferral.body, "type")).toBe(5)
      expect(field(field(deferral.body, "data"), "flags")).toBe(64)
      const edited = yield* editOf(fake, found.token)
      expect(contentOf(edited)).toBe(
        "✅ Aurora is enabled in this server with agent `Helper` (`agent-1`). Mention me or reply to me to talk to it."
      )
      expect((yield* letta.requests).filter((r) => r.kind === "agent").map((r) => r.path)).toEqual(["/v1/agents/agent-1"])

      const missing = yield* fake.sendInteraction({
        permissions: "32",
        data: aurora(null, "enable", [{ type: 3, name: "agent_id", value: "agent-404" }])
      })
      expect(contentOf(yield* editOf(fake, missing.token))).toBe(
        "❌ Agent `agent-404` not found on the Letta server. Nothing was changed."
      )
    }))

  it.scopedLive("lettaurl by the application owner: set, then health answered at the new URL", () =>
    Effect.gen(function*() {
      const { fake, letta } = yield* start()
      // The fake application is owned by alice (AURORA_OWNER_IDS unset).
      const set = yield* fake.sendInteraction({
        user: world.alice,
        data: aurora(null, "lettaurl", [{ type: 3, name: "url", value: `${letta.url}/` }])
      })
      expect(field((yield* callbackOf(fake, set)).body, "type")).toBe(5)
      const text = String(contentOf(yield* editOf(fake, set.token)))
      expect(text).toContain(`✅ Letta URL set to \`${letta.url}\``)
      expect(text).toContain("🟢 `GET /v1/health/` answered")
      expect((yield* letta.requests).some((r) => r.kind === "health")).toBe(true)

      const refused = yield* fake.sendInteraction({ user: world.bob, permissions: "32", data: aurora(null, "lettaurl") })
      // lettaurl is deferred before anything runs, so even a refusal arrives as the edit.
      expect(field((yield* callbackOf(fake, refused)).body, "type")).toBe(5)
      expect(contentOf(yield* editOf(fake, refused.token))).toBe("⛔ Only Aurora's owners can use `/aurora lettaurl`.")
    }))

  it.scopedLive("Preview Aurora prompt (message context menu): the prompt in an embed, long ones as a file", () =>
    Effect.gen(function*() {
      const { fake } = yield* start()
      const message = yield* fake.storeMessage({
        channelId: world.general,
        content: `<@${world.bot.id}> what is the plan?`,
        mentions: [world.bot.id]
      })
      const id = String(message["id"])
      const menu = yield* fake.sendInteraction({
        permissions: "32",
        data: { name: "Preview Aurora prompt", type: 3, target_id: id, resolved: { messages: { [id]: message } } }
      })
      expect(field((yield* callbackOf(fake, menu)).body, "type")).toBe(5)
      const edited = yield* editOf(fake, menu.token)
      const embed = (field(edited.body, "embeds") as ReadonlyArray<Record<string, unknown>>)[0]
      expect(embed?.["title"]).toBe("Prompt preview (not sent)")
      expect(String(embed?.["description"])).toContain("what is the plan?")
      expect(String(embed?.["description"])).toContain(`discord_send: to answer, send to channel ID ${world.general}`)

      // A long message: the edit carries the full prompt as a file (multipart).
      const long = yield* fake.storeMessage({
        channelId: world.general,
        content: `<@${world.bot.id}> ${"y".repeat(3900)}`,
        mentions: [world.bot.id]
      })
      const longId = String(long["id"])
      const slash = yield* fake.sendInteraction({
        permissions: "32",
        data: aurora(null, "context", [{ type: 3, name: "message_id", value: longId }])
      })
      const withFile = yield* editOf(fake, slash.token)
      expect(typeof withFile.body).toBe("string")
      expect(String(withFile.body)).toContain(`filename="aurora-prompt-${longId}.txt"`)
      expect(String(withFile.body)).toContain("The exact prompt is attached as a file.")
    }))

  it.scopedLive("queue failed: the dead letters as an embed that pings nobody, whatever the error text says", () =>
    Effect.gen(function*() {
      const { context, fake } = yield* start()
      yield* Context.get(context, DeadLetters).add({
        event: {
          messageId: "930000000000000001",
          guildId: world.guildId,
          channelId: world.general,
          authorId: world.bob.id,
          agentId: "agent-1",
          trigger: "mention",
          prompt: "p",
          enqueuedAt: 0,
          attempts: 0
        },
        reason: "failed",
        errorType: "RunFailed",
        detail: "@everyone `**boom**`",
        attempts: 1,
        failedAt: 1_000
      })
      const listed = yield* fake.sendInteraction({ permissions: "32", data: aurora("queue", "failed") })
      const answer = yield* callbackOf(fake, listed)
      const data = field(answer.body, "data")
      expect(field(data, "flags")).toBe(64)
      expect(field(data, "allowed_mentions")).toEqual({ parse: [] })
      const embed = (field(data, "embeds") as ReadonlyArray<Record<string, unknown>>)[0]
      expect(embed?.["title"]).toBe("Dead letters in this server: 1")
      expect(String(embed?.["description"])).toContain(
        `[930000000000000001](https://discord.com/channels/${world.guildId}/${world.general}/930000000000000001)`
      )
      expect(String(embed?.["description"])).toContain("after 1 attempt: `@everyone ˋ**boom**ˋ`")
    }))

  it.scopedLive("a malformed interaction is answered and the loop keeps serving", () =>
    Effect.gen(function*() {
      const { fake } = yield* start()
      // No subcommand at all, and a crafted option of the wrong type.
      const bare = yield* fake.sendInteraction({ permissions: "32", data: { name: "aurora", type: 1 } })
      expect(contentOf(yield* callbackOf(fake, bare))).toContain("❌ Unknown command `/aurora`")
      const crafted = yield* fake.sendInteraction({
        permissions: "32",
        data: aurora("config", "queuesize", [{ type: 3, name: "value", value: "lots" }])
      })
      expect(contentOf(yield* callbackOf(fake, crafted))).toBe(
        "❌ **queuesize** must be a whole number between 10 and 200 (got `lots`). Nothing was changed."
      )
      const after = yield* fake.sendInteraction({ permissions: "32", data: aurora("queue", "status") })
      const status = yield* callbackOf(fake, after)
      expect(JSON.stringify(field(field(status.body, "data"), "embeds"))).toContain("Pending: 0")
      expect(fake.requests().filter((r) => r.unknownRoute)).toEqual([])
    }))
})
