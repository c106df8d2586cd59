/**
 * The live layer graph. Read bottom-up: storage and configuration, then the Discord gateway and
 * the Letta client, then the services, then the start-up recovery of pending events, then the
 * programs that run (listen, dispatch, ...). Recovery is built before the programs, so the events
 * it replays are queued before the listener queues any new one.
 * Every layer here is referenced once by value, so each service is built exactly once.
 */
import { Layer } from "effect"
import { AlertsLive } from "../programs/Alerts.js"
import { CommandsLive } from "../programs/Commands.js"
import { DispatchLive } from "../programs/Dispatch.js"
import { HttpLive } from "../programs/Http.js"
import { LettaReachabilityLive } from "../programs/LettaReachability.js"
import { LettaUrlFollowerLive } from "../programs/LettaUrlFollower.js"
import { ListenLive } from "../programs/Listen.js"
import { RecoveryLive } from "../programs/Recovery.js"
import { CircuitBreaker } from "../services/health/CircuitBreaker.js"
import { ContextService } from "../services/prompt/ContextService.js"
import { DatabaseLive } from "../services/storage/Database.js"
import { DiscordGateway } from "../services/discord/DiscordGateway.js"
import { ErrorStats } from "../services/health/ErrorStats.js"
import { EventQueue } from "../services/queue/EventQueue.js"
import { QueuePolicy } from "../services/queue/QueuePolicy.js"
import { LettaClient, LettaEndpoint } from "../services/letta/LettaClient.js"
import { LettaExecutor } from "../services/letta/LettaExecutor.js"
import * as Metrics from "../services/health/Metrics.js"
import { PromptService } from "../services/prompt/PromptService.js"
import { SettingsStore } from "../services/storage/SettingsStore.js"
import { SqlConversationStore } from "../services/storage/SqlConversationStore.js"
import { SqlDeadLetters } from "../services/storage/SqlDeadLetters.js"
import { SqlEventJournal } from "../services/storage/SqlEventJournal.js"
import { TypingIndicator, TypingSender } from "../services/discord/TypingIndicator.js"
import { LoggingLive } from "./Logging.js"

/** Settings, the queue's journal, the dead letters and the conversation map, all in the one SQLite database. */
const Storage = Layer.mergeAll(
  SettingsStore.Default,
  SqlEventJournal.layer,
  SqlDeadLetters.layer,
  SqlConversationStore.layer
).pipe(Layer.provideMerge(DatabaseLive))

const Letta = LettaExecutor.DefaultWithoutDependencies.pipe(
  Layer.provideMerge(LettaClient.DefaultWithoutDependencies),
  Layer.provideMerge(LettaEndpoint.Default)
)

const Gateway = Layer.mergeAll(DiscordGateway.messageSource, TypingSender.fromGateway).pipe(
  Layer.provideMerge(DiscordGateway.Default)
)

/**
 * Runs in flight at once, all agents together. Runs are network-bound streams, so the cap is set
 * well above the number of agents a deployment usually serves (one run per agent still holds).
 */
const maxConcurrentRuns = 64

const Queue = EventQueue.layer({ concurrency: maxConcurrentRuns }).pipe(Layer.provide(QueuePolicy.fromSettings))

const Services = Layer.mergeAll(
  CircuitBreaker.Default(),
  ErrorStats.Default(),
  ContextService.Default,
  PromptService.Default,
  TypingIndicator.Default,
  Queue,
  // Built before any program starts, so the first run already uses the persisted URL.
  LettaUrlFollowerLive.pipe(Layer.provideMerge(Letta))
)

const Programs = Layer.mergeAll(
  Layer.effectDiscard(Metrics.registerAll),
  ListenLive,
  DispatchLive,
  CommandsLive,
  HttpLive,
  AlertsLive,
  LettaReachabilityLive
)

/** Everything running, with every service in the output (tests reach in to seed and observe). */
export const AppLive = Programs.pipe(
  Layer.provideMerge(RecoveryLive),
  Layer.provideMerge(Services),
  Layer.provideMerge(Gateway),
  Layer.provideMerge(Storage)
)

export const MainLive = AppLive.pipe(Layer.provide(LoggingLive))
