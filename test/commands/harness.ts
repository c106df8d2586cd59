/**
 * Shared set-up for the command suites: the real SettingsStore (SQLite in a temporary directory),
 * the real EventQueue behind the live settings-backed QueuePolicy, the real CircuitBreaker,
 * ErrorStats, ContextService and PromptService, the in-memory dead-letter store and runs log; fakes for Letta
 * (scripted agents and health), the message reader and the owner list. Invocations are plain
 * literals, as the adapter would decode them.
 */
import { Effect, HashMap, Layer, Logger, Ref, type Scope } from "effect"
import type { Invocation, OptionValue, Reply } from "../../src/commands/Invocation.js"
import { CommandOwners } from "../../src/commands/Owners.js"
import { PreviewSource } from "../../src/commands/PreviewSource.js"
import { type CommandEnv, handleInvocation } from "../../src/commands/Router.js"
import type { ReceivedMessage } from "../../src/domain/Discord.js"
import { MessageNotFound } from "../../src/domain/Errors.js"
import { AgentNotFound, LettaConnectionError } from "../../src/domain/LettaErrors.js"
import { QueuePolicy } from "../../src/services/queue/QueuePolicy.js"
import { CircuitBreaker } from "../../src/services/health/CircuitBreaker.js"
import { ConversationStore } from "../../src/services/conversation/ConversationStore.js"
import { ContextService } from "../../src/services/prompt/ContextService.js"
import { DeadLetters } from "../../src/services/queue/DeadLetters.js"
import { Database } from "../../src/services/storage/Database.js"
import { ErrorStats } from "../../src/services/health/ErrorStats.js"
import { EventJournal } from "../../src/services/queue/EventJournal.js"
import { EventQueue } from "../../src/services/queue/EventQueue.js"
import { LettaClient, type LettaHealth, LettaEndpoint } from "../../src/services/letta/LettaClient.js"
import type { MessageSource } from "../../src/services/discord/MessageSource.js"
import { PromptService } from "../../src/services/prompt/PromptService.js"
import { RunLog } from "../../src/services/queue/RunLog.js"
import { SettingsStore } from "../../src/services/storage/SettingsStore.js"
import { configFrom } from "../fakes/config.js"
import { fakeMessageSource, ids as messageIds } from "../fakes/messages.js"
import { makeTempDir } from "../fakes/tempDir.js"

export const ids = {
  guild: messageIds.guild,
  otherGuild: "100000000000000002",
  channel: messageIds.channel,
  bot: messageIds.bot,
  member: "500000000000000001",
  admin: "500000000000000002",
  owner: "500000000000000003"
} as const

export type Role = "member" | "admin" | "owner"

const permissionsOf: Record<Role, bigint> = { member: 0n, admin: 32n, owner: 0n }

/** An invocation of `/aurora <path>` ("config ratelimit", "enable") by `role` in the test guild. */
export const invocation = (
  role: Role,
  commandPath: string,
  options: Readonly<Record<string, OptionValue>> = {},
  overrides: Partial<Invocation> = {}
): Invocation => {
  const parts = commandPath.split(" ")
  const [group, subcommand] = parts.length === 2 ? [parts[0] ?? null, parts[1] ?? null] : [null, parts[0] ?? null]
  return {
    interactionId: "700000000000000001",
    userId: ids[role],
    guildId: ids.guild,
    channelId: ids.channel,
    memberPermissions: permissionsOf[role],
    source: "slash",
    name: "aurora",
    group,
    subcommand,
    options,
    ...overrides
  }
}

/** Everything a reply shows, as one string, for `toContain` assertions. */
export const replyText = (reply: Reply): string =>
  [
    reply.content ?? "",
    reply.embed?.title ?? "",
    reply.embed?.description ?? "",
    ...(reply.embed?.fields ?? []).map((field) => `${field.name}: ${field.value}`),
    reply.embed?.footer ?? ""
  ].filter((part) => part !== "").join("\n")

export interface LogLine {
  readonly level: string
  readonly message: string
  readonly annotations: Readonly<Record<string, unknown>>
}

export interface Harness {
  /** Letta agents by id (value: the agent's name). */
  readonly agents: Ref.Ref<Readonly<Record<string, string>>>
  /** When true, the fake Letta server does not answer (agent lookups and health). */
  readonly lettaDown: Ref.Ref<boolean>
  readonly agentLookups: Ref.Ref<ReadonlyArray<string>>
  /** The URL each health check was made against. */
  readonly healthChecks: Ref.Ref<ReadonlyArray<string>>
  /** Messages the preview can read, by id. */
  readonly previewMessages: Ref.Ref<Readonly<Record<string, ReceivedMessage>>>
  /** Runs `/aurora <path>` as `role` through the router. */
  readonly run: (
    role: Role,
    commandPath: string,
    options?: Readonly<Record<string, OptionValue>>,
    overrides?: Partial<Invocation>
  ) => Effect.Effect<Reply, never, CommandEnv>
  readonly logLines: Effect.Effect<ReadonlyArray<LogLine>>
}

const tempDir = makeTempDir("commands")

export interface HarnessOptions {
  /** Parents the ContextService can read. */
  readonly messageSource?: Layer.Layer<MessageSource>
  readonly lettaBaseUrl?: string
}

/**
 * Runs `body` with a fresh command environment. Everything lives in the test's scope, so state
 * persists across the commands run inside one body (and fibers the body forks live as long).
 */
export const withHarness = <A, E>(
  body: (h: Harness) => Effect.Effect<A, E, CommandEnv | SettingsStore | EventQueue | Scope.Scope>,
  options: HarnessOptions = {}
) =>
  Effect.gen(function*() {
    const dir = yield* tempDir
    const agents = yield* Ref.make<Readonly<Record<string, string>>>({ "agent-1": "Helper" })
    const lettaDown = yield* Ref.make(false)
    const agentLookups = yield* Ref.make<ReadonlyArray<string>>([])
    const healthChecks = yield* Ref.make<ReadonlyArray<string>>([])
    const previewMessages = yield* Ref.make<Readonly<Record<string, ReceivedMessage>>>({})

    const lettaClient = Layer.unwrapEffect(
      Effect.map(LettaEndpoint, (endpoint) =>
        Layer.mock(LettaClient, {
          _tag: "aurora/LettaClient",
          retrieveAgent: (agentId: string) =>
            Effect.gen(function*() {
              yield* Ref.update(agentLookups, (all) => [...all, agentId])
              const base = { agentId, sideEffect: false }
              if (yield* Ref.get(lettaDown)) {
                return yield* new LettaConnectionError({ ...base, reason: "connect ECONNREFUSED 10.0.0.9:8283" })
              }
              const name = (yield* Ref.get(agents))[agentId]
              if (name === undefined) return yield* new AgentNotFound({ ...base, reason: "404 Agent not found" })
              return { id: agentId, name }
            }),
          health: Effect.gen(function*() {
            const current = yield* endpoint.current
            yield* Ref.update(healthChecks, (all) => [...all, current.url])
            return (yield* Ref.get(lettaDown))
              ? ({ ...current, _tag: "Unreachable", reason: "connect ECONNREFUSED" } satisfies LettaHealth)
              : ({ ...current, _tag: "Reachable", version: "0.16.1", status: "ok" } satisfies LettaHealth)
          }),
          redact: (text: string) => text
        }))
    )

    const preview = Layer.succeed(PreviewSource, {
      botUserId: ids.bot,
      fetch: (channelId, messageId) =>
        Effect.flatMap(Ref.get(previewMessages), (all) => {
          const found = all[messageId]
          return found !== undefined && found.message.channelId === channelId
            ? Effect.succeed(found)
            : Effect.fail(new MessageNotFound({ channelId, messageId }))
        })
    })

    const storage = SettingsStore.Default.pipe(Layer.provideMerge(Database.layer(dir)))
    const queue = EventQueue.layer().pipe(Layer.provide(QueuePolicy.layerSettings), Layer.provide(EventJournal.layerMemory))
    const letta = lettaClient.pipe(Layer.provideMerge(LettaEndpoint.Default))
    const messageSource = options.messageSource ?? fakeMessageSource().layer
    const env = Layer.mergeAll(
      queue,
      DeadLetters.layerMemory,
      letta,
      CircuitBreaker.Default,
      ErrorStats.Default,
      ContextService.Default.pipe(Layer.provide(messageSource)),
      PromptService.Default,
      CommandOwners.layerFixed([ids.owner]),
      preview,
      ConversationStore.layerSql,
      RunLog.layerMemory
    ).pipe(Layer.provideMerge(storage))

    const lines: Array<LogLine> = []
    const capture = Logger.make(({ annotations, logLevel, message }) => {
      const text = Array.isArray(message) ? message.map(String).join(" ") : String(message)
      lines.push({ level: logLevel.label, message: text, annotations: Object.fromEntries(HashMap.toEntries(annotations)) })
    })
    const config = configFrom({ LETTA_BASE_URL: options.lettaBaseUrl ?? "http://letta.env:8283" })

    const harness: Harness = {
      agents,
      lettaDown,
      agentLookups,
      healthChecks,
      previewMessages,
      run: (role, commandPath, options = {}, overrides = {}) =>
        handleInvocation(invocation(role, commandPath, options, overrides)),
      logLines: Effect.sync(() => [...lines])
    }
    return yield* body(harness).pipe(
      Effect.provide(env),
      Effect.provide(config),
      Effect.provide(Logger.replace(Logger.defaultLogger, capture))
    )
  })
