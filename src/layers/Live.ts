/**
 * The live layer graph. Read bottom-up: storage and configuration, then the Discord gateway and
 * the Letta client, then the services, then the start-up recovery of pending events, then the
 * programs that run (listen, dispatch, ...). Recovery is built before the programs, so the events
 * it replays are queued before the listener queues any new one.
 * Every layer here is referenced once by value, so each service is built exactly once.
 */
import { Effect, Layer, Stream } from "effect"
import { AlertsLive } from "../programs/Alerts.js"
import { CommandsLive } from "../programs/Commands.js"
import { DispatchLive, QueuePolicyLive } from "../programs/Dispatch.js"
import { HttpLive } from "../programs/Http.js"
import { ListenLive } from "../programs/Listen.js"
import { RecoveryLive } from "../programs/Recovery.js"
import { CircuitBreaker } from "../services/CircuitBreaker.js"
import { ContextService } from "../services/ContextService.js"
import { DatabaseLive } from "../services/Database.js"
import { DiscordGateway } from "../services/DiscordGateway.js"
import { ErrorStats } from "../services/ErrorStats.js"
import { EventQueue } from "../services/EventQueue.js"
import { LettaClient, LettaEndpoint } from "../services/LettaClient.js"
import { LettaExecutor } from "../services/LettaExecutor.js"
import * as Metrics from "../services/Metrics.js"
import { PromptService } from "../services/PromptService.js"
import { SettingsStore } from "../services/SettingsStore.js"
import { SqlDeadLetters } from "../services/SqlDeadLetters.js"
import { SqlEventJournal } from "../services/SqlEventJournal.js"
import { TypingIndicator, TypingSender } from "../services/TypingIndicator.js"
import { LoggingLive } from "./Logging.js"

/** The persisted `lettaurl` override is applied at start and follows every later change. */
const LettaUrlFromSettings = Layer.scopedDiscard(
  Effect.gen(function* () {
    const settings = yield* SettingsStore
    const endpoint = yield* LettaEndpoint
    const changes = yield* settings.subscribe
    yield* endpoint.setOverride((yield* settings.global).lettaBaseUrl)
    yield* Stream.fromQueue(changes).pipe(
      Stream.runForEach((change) =>
        change._tag === "GlobalChanged" ? endpoint.setOverride(change.global.lettaBaseUrl) : Effect.void
      ),
      Effect.forkScoped
    )
  })
)

/** One line at start-up telling whether Letta answers; Aurora runs either way (events wait). */
const LettaReachability = Layer.effectDiscard(
  Effect.gen(function* () {
    const letta = yield* LettaClient
    const { url, source } = yield* letta.current
    const health = yield* letta.health
    if (health._tag === "Reachable") yield* Effect.logInfo(`Letta at ${url} (${source}) answers`)
    else {
      yield* Effect.logWarning(
        `Letta at ${url} (${source}) is unreachable: ${health.reason}; events will wait in the queue until it answers`
      )
    }
  })
)

/** Settings, the queue's journal and the dead letters, all in the one SQLite database. */
const Storage = Layer.mergeAll(SettingsStore.Default, SqlEventJournal.layer, SqlDeadLetters.layer).pipe(
  Layer.provideMerge(DatabaseLive)
)

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

const Queue = EventQueue.layer({ concurrency: maxConcurrentRuns }).pipe(Layer.provide(QueuePolicyLive))

const Services = Layer.mergeAll(
  CircuitBreaker.Default(),
  ErrorStats.Default(),
  ContextService.Default,
  PromptService.Default,
  TypingIndicator.Default,
  Queue,
  // Built before any program starts, so the first run already uses the persisted URL.
  LettaUrlFromSettings.pipe(Layer.provideMerge(Letta))
)

const Programs = Layer.mergeAll(
  Layer.effectDiscard(Metrics.registerAll),
  ListenLive,
  DispatchLive,
  CommandsLive,
  HttpLive,
  AlertsLive,
  LettaReachability
)

/** Everything running, with every service in the output (tests reach in to seed and observe). */
export const AppLive = Programs.pipe(
  Layer.provideMerge(RecoveryLive),
  Layer.provideMerge(Services),
  Layer.provideMerge(Gateway),
  Layer.provideMerge(Storage)
)

export const MainLive = AppLive.pipe(Layer.provide(LoggingLive))
