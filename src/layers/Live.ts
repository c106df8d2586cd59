/**
 * The live layer graph. Read bottom-up: the configuration (every environment variable, read once),
 * storage, then the Discord gateway and the Letta client, then the services, then the start-up
 * recovery of pending events, then the programs that run (listen, dispatch, ...). Recovery is
 * built before the programs, so the events it replays are queued before the listener queues any
 * new one.
 * Every layer here is referenced once by value, so each service is built exactly once.
 */
import { Layer } from "effect"
import { AuroraConfig } from "../domain/Config.js"
import { AlertsLive } from "../programs/Alerts.js"
import { CommandsLive } from "../programs/Commands.js"
import { DispatchLive } from "../programs/Dispatch.js"
import { HttpLive } from "../programs/Http.js"
import { LettaReachabilityLive } from "../programs/LettaReachability.js"
import { LettaUrlFollowerLive } from "../programs/LettaUrlFollower.js"
import { ListenLive } from "../programs/Listen.js"
import { RecoveryLive } from "../programs/Recovery.js"
import { StopTakeUpLive } from "../programs/StopTakeUp.js"
import { CircuitBreaker } from "../services/health/CircuitBreaker.js"
import { ConversationStore } from "../services/conversation/ConversationStore.js"
import { ContextService } from "../services/prompt/ContextService.js"
import { Database } from "../services/storage/Database.js"
import { DiscordGateway } from "../services/discord/DiscordGateway.js"
import { Feedback } from "../services/discord/Feedback.js"
import { Reactions } from "../services/discord/Reactions.js"
import { DirectMessageSwitch } from "../services/discord/Intake.js"
import { ErrorStats } from "../services/health/ErrorStats.js"
import { DeadLetters } from "../services/queue/DeadLetters.js"
import { EventJournal } from "../services/queue/EventJournal.js"
import { EventQueue } from "../services/queue/EventQueue.js"
import { QueuePolicy } from "../services/queue/QueuePolicy.js"
import { RunLog } from "../services/queue/RunLog.js"
import { LettaClient, LettaEndpoint } from "../services/letta/LettaClient.js"
import { LettaExecutor } from "../services/letta/LettaExecutor.js"
import * as Metrics from "../services/health/Metrics.js"
import { PromptService } from "../services/prompt/PromptService.js"
import { SettingsStore } from "../services/storage/SettingsStore.js"
import { MessageSource } from "../services/discord/MessageSource.js"
import { ReplyPoster } from "../services/discord/ReplyPoster.js"
import { TypingIndicator, TypingSender } from "../services/discord/TypingIndicator.js"
import { DiscordActions, DiscordTools } from "../services/discord/Tools.js"
import { ToolCalls } from "../services/queue/ToolCalls.js"
import { OpenStops } from "../services/queue/OpenStops.js"
import { ApprovalPoster } from "../services/approvals/ApprovalPoster.js"
import { PendingApprovals } from "../services/approvals/PendingApprovals.js"
import { ApprovalsWired } from "./ApprovalWiring.js"
import { LoggingLive } from "./Logging.js"

/**
 * Settings, the queue's journal, the dead letters, the conversation map, the runs log and the
 * pending approvals, all in the one SQLite database.
 */
const Storage = Layer.mergeAll(
  SettingsStore.Default,
  EventJournal.layerSql,
  DeadLetters.layerSql,
  ConversationStore.layerSql,
  RunLog.layerSql,
  ToolCalls.layerSql,
  OpenStops.layerSql,
  PendingApprovals.layerSql
).pipe(Layer.provideMerge(Database.Default))

const Letta = LettaExecutor.Default.pipe(
  Layer.provideMerge(LettaClient.Default),
  Layer.provideMerge(LettaEndpoint.Default)
)

const Gateway = Layer.mergeAll(
  MessageSource.Default,
  TypingSender.Default,
  Reactions.Default,
  ReplyPoster.Default,
  ApprovalPoster.Default
).pipe(
  Layer.provideMerge(DiscordGateway.Default),
  // The gateway's intake reads the DM setting for every direct message, from the settings' cache.
  Layer.provide(DirectMessageSwitch.layerSettings)
)

/** Aurora's built-in Discord tools (`tools` = `builtin`), run with the gateway's client. */
const Tools = DiscordTools.Default.pipe(Layer.provide(DiscordActions.Default))

const Queue = EventQueue.Default.pipe(Layer.provide(QueuePolicy.layerSettings))

const Services = Layer.mergeAll(
  CircuitBreaker.Default,
  ErrorStats.Default,
  ContextService.Default,
  PromptService.Default,
  TypingIndicator.Default,
  Tools,
  // Recovery's dead letters react too: the gateway below is ready before recovery runs.
  Feedback.Default,
  Queue,
  // Built before any program starts, so the first run already uses the persisted URL.
  LettaUrlFollowerLive.pipe(Layer.provideMerge(Letta))
)

/**
 * The approval gate (ApprovalsWired): built after the services (its start-up takes up the
 * approvals a previous process left, which may continue runs) and before the programs (the
 * buttons are answered by Commands); its continuation is the programs' ApprovalResume. The
 * take-up of the tool-call stops a previous process left open (StopTakeUpLive) is built after
 * Recovery (whose conversation cancels must land before its continuations) and before the
 * programs (it reads only what the previous process left, before the dispatch opens any).
 */
const Programs = Layer.mergeAll(
  Layer.effectDiscard(Metrics.registerAll),
  ListenLive,
  DispatchLive,
  CommandsLive,
  HttpLive,
  AlertsLive,
  LettaReachabilityLive
)

const App = Programs.pipe(
  Layer.provideMerge(StopTakeUpLive),
  Layer.provideMerge(RecoveryLive),
  Layer.provideMerge(ApprovalsWired),
  Layer.provideMerge(Services),
  Layer.provideMerge(Gateway),
  Layer.provideMerge(Storage)
)

/** Everything running, with every service in the output (tests reach in to seed and observe). */
export const AppLive = App.pipe(Layer.provideMerge(AuroraConfig.Default))

/** The program: the configuration is read first, once, for the logger and the app alike. */
export const MainLive = App.pipe(Layer.provide(LoggingLive), Layer.provide(AuroraConfig.Default))
