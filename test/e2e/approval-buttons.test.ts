/**
 * The approval buttons end to end: the real discord.js client (DiscordGateway, the commands
 * program) against the loopback FakeDiscord, the gate on SQLite, a recording continuation. An
 * approval is opened through the ApprovalGate port; the fake's MESSAGE_COMPONENT interactions
 * click its buttons; what reaches Discord (the post, the interaction callbacks, the edits) is
 * asserted on the fake's record.
 */
import { describe, expect, it } from "@effect/vitest"
import { Context, Effect, Layer, Logger, LogLevel, Queue } from "effect"
import type { ApprovalAnswer, ApprovalOrigin } from "../../src/domain/Approval.js"
import { AuroraConfig } from "../../src/domain/Config.js"
import { CommandsLive } from "../../src/programs/Commands.js"
import { approvalMessage } from "../../src/services/approvals/ApprovalMessage.js"
import { ApprovalPoster } from "../../src/services/approvals/ApprovalPoster.js"
import { ApprovalGateLive, Approvals } from "../../src/services/approvals/Gate.js"
import { PendingApprovals } from "../../src/services/approvals/PendingApprovals.js"
import { ApprovalContinuation, ApprovalGate } from "../../src/services/approvals/Ports.js"
import { CircuitBreaker } from "../../src/services/health/CircuitBreaker.js"
import { ContextService } from "../../src/services/prompt/ContextService.js"
import { ConversationStore } from "../../src/services/conversation/ConversationStore.js"
import { DeadLetters } from "../../src/services/queue/DeadLetters.js"
import { Database } from "../../src/services/storage/Database.js"
import { DiscordGateway } from "../../src/services/discord/DiscordGateway.js"
import { DirectMessageSwitch } from "../../src/services/discord/Intake.js"
import { MessageSource } from "../../src/services/discord/MessageSource.js"
import { ErrorStats } from "../../src/services/health/ErrorStats.js"
import { EventJournal } from "../../src/services/queue/EventJournal.js"
import { EventQueue } from "../../src/services/queue/EventQueue.js"
import { QueuePolicy } from "../../src/services/queue/QueuePolicy.js"
import { LettaClient, LettaEndpoint } from "../../src/services/letta/LettaClient.js"
import { PromptService } from "../../src/services/prompt/PromptService.js"
import { RunLog } from "../../src/services/queue/RunLog.js"
import { SettingsStore } from "../../src/services/storage/SettingsStore.js"
import { FakeDiscord, type RecordedRequest, world } from "../fakes/FakeDiscord.js"
import type { Json } from "../fakes/discord/Payloads.js"
import { makeFakeLetta } from "../fakes/FakeLetta.js"
import { makeTempDir } from "../fakes/tempDir.js"

const tempDir = makeTempDir("approval-buttons-e2e")

interface Resumed {
  readonly origin: ApprovalOrigin
  readonly answers: ReadonlyArray<ApprovalAnswer>
}

const appLayer = (dir: string, resumed: Queue.Queue<Resumed>) => {
  const gateway = MessageSource.Default.pipe(
    Layer.provideMerge(DiscordGateway.Default),
    Layer.provide(DirectMessageSwitch.layerSettings)
  )
  const storage = Layer.mergeAll(SettingsStore.Default, PendingApprovals.layerSql).pipe(Layer.provideMerge(Database.layer(dir)))
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
  const approvals = ApprovalGateLive.pipe(
    Layer.provideMerge(Approvals.Default),
    Layer.provideMerge(ApprovalPoster.Default),
    Layer.provide(Layer.succeed(ApprovalContinuation, {
      resume: (origin, answers) => Effect.as(Queue.offer(resumed, { origin, answers }), "answered" as const)
    }))
  )
  return CommandsLive.pipe(
    Layer.provideMerge(approvals),
    Layer.provideMerge(services),
    Layer.provideMerge(gateway),
    Layer.provideMerge(storage),
    Layer.provideMerge(AuroraConfig.Default)
  )
}

const start = Effect.gen(function*() {
  const fake = yield* FakeDiscord.make()
  const letta = yield* makeFakeLetta({ agents: { "agent-1": "Helper" } })
  const dir = yield* tempDir
  const resumed = yield* Queue.unbounded<Resumed>()
  const provider = fake.configProvider({ LETTA_BASE_URL: letta.url })
  const context = yield* Layer.build(appLayer(dir, resumed)).pipe(Effect.withConfigProvider(provider))
  return { fake, resumed, gate: Context.get(context, ApprovalGate), poster: Context.get(context, ApprovalPoster) }
}).pipe(Effect.provide(Logger.minimumLogLevel(LogLevel.Error)))

const field = (value: unknown, key: string): unknown =>
  typeof value === "object" && value !== null && key in value ? (value as Record<string, unknown>)[key] : undefined

const callbackOf = (fake: FakeDiscord, interaction: { readonly id: string; readonly token: string }) =>
  fake.waitForRequest((r: RecordedRequest) =>
    r.method === "POST" && r.path === `/interactions/${interaction.id}/${interaction.token}/callback`
  )

const buttonsOf = (message: Json | undefined) =>
  (field(message, "components") as ReadonlyArray<{ components: ReadonlyArray<Json> }> | undefined ?? [])
    .flatMap((row) => row.components)

describe("approval buttons end to end", () => {
  it.scopedLive("a message with buttons; a click without Manage Server is refused; an admin's Approve continues the run", () =>
    Effect.gen(function*() {
      const { fake, gate, resumed } = yield* start
      const trigger = yield* fake.storeMessage({ channelId: world.general, content: "<@bot> search the web" })
      const opened = yield* gate.open({
        guildId: world.guildId,
        channelId: world.general,
        messageId: String(trigger["id"]),
        agentId: "agent-1",
        conversationId: "conv-1",
        runId: "run-1",
        calls: [{ name: "web_search", arguments: "{\"query\":\"@everyone weather\"}", toolCallId: "call-1" }],
        actionsBefore: [],
        answered: [],
        requestedAt: Date.now()
      })
      expect(opened._tag).toBe("Waiting")
      const posts = fake.botRepliesTo(String(trigger["id"]))
      expect(posts).toHaveLength(1)
      const post = posts[0]!
      expect(post.allowedMentions).toEqual({ parse: [] })
      expect(post.message["mention_everyone"]).toBe(false)
      const buttons = buttonsOf(post.message)
      expect(buttons.map((b) => [b["style"], b["custom_id"], b["disabled"]])).toEqual([
        [3, "aurora:approval:1:0:approve", false],
        [4, "aurora:approval:1:0:deny", false]
      ])

      // Bob without Manage Server: an ephemeral refusal, the message unchanged, no continuation.
      const refused = yield* fake.clickButton({ message: post.message, customId: "aurora:approval:1:0:approve", user: world.bob })
      const refusal = yield* callbackOf(fake, refused)
      expect(field(refusal.body, "type")).toBe(4)
      expect(field(field(refusal.body, "data"), "flags")).toBe(64)
      expect(field(field(refusal.body, "data"), "content")).toBe("⛔ Only members with Manage Server can decide this approval.")
      expect(fake.messageEdits()).toEqual([])
      expect(yield* Queue.size(resumed)).toBe(0)

      // Bob with Manage Server: the message is updated in place, and the run continues.
      const approved = yield* fake.clickButton({
        message: post.message,
        customId: "aurora:approval:1:0:approve",
        user: world.bob,
        permissions: "32"
      })
      const update = yield* callbackOf(fake, approved)
      expect(field(update.body, "type")).toBe(7)
      const { answers } = yield* Queue.take(resumed)
      expect(answers).toEqual([
        { _tag: "Decision", toolCallId: "call-1", approve: true, reason: `approved by bob (${world.bob.id})` }
      ])
      const stored = fake.storedMessage(world.general, String(post.message["id"]))
      expect(buttonsOf(stored).map((b) => b["disabled"])).toEqual([true, true])
      expect(fake.messageEdits().map((e) => e.via)).toEqual(["interaction"])

      // Clicking again: already decided, ephemeral.
      const again = yield* fake.clickButton({ message: post.message, customId: "aurora:approval:1:0:deny", user: world.alice })
      const late = yield* callbackOf(fake, again)
      expect(field(late.body, "type")).toBe(4)
      expect(field(field(late.body, "data"), "content")).toBe("This approval was already decided.")
    }))

  it.scopedLive("the deadline's edit goes through REST and Discord accepts it", () =>
    Effect.gen(function*() {
      const { fake, poster } = yield* start
      const trigger = yield* fake.storeMessage({ channelId: world.general, content: "hi" })
      const approval = {
        id: 5,
        origin: {
          guildId: world.guildId,
          channelId: world.general,
          messageId: String(trigger["id"]),
          agentId: "a",
          conversationId: null,
          runId: null
        },
        calls: [{ name: "web_search", arguments: "x".repeat(5_000), toolCallId: "call-1" }],
        answered: [],
        actionsBefore: [],
        decisions: [null],
        messageId: null,
        requestedAt: 0,
        deadline: 600_000
      }
      const messageId = yield* poster.post(world.general, String(trigger["id"]), approvalMessage(approval))
      yield* poster.edit(
        world.general,
        messageId,
        approvalMessage({
          ...approval,
          decisions: [{ approve: false, reason: "no decision within 10 minutes", decidedBy: null, at: 1 }]
        })
      )
      expect(fake.messageEdits().map((e) => e.via)).toEqual(["rest"])
      expect(buttonsOf(fake.storedMessage(world.general, messageId)).map((b) => b["disabled"])).toEqual([true, true])
    }))
})
