/**
 * End-to-end harness: the live layer graph (real discord.js client, real Letta client, real SQLite)
 * against the loopback fakes of Discord and Letta, in a temporary data directory.
 */
import { ChannelType } from "discord.js"
import { Context, Duration, Effect, Layer, Logger, LogLevel, type Scope } from "effect"
import { AppLive } from "../../src/layers/Live.js"
import { CircuitBreaker } from "../../src/services/health/CircuitBreaker.js"
import { DeadLetters, type DeadLettersService } from "../../src/services/queue/DeadLetters.js"
import { DiscordGateway } from "../../src/services/discord/DiscordGateway.js"
import { EventJournal, type EventJournalService } from "../../src/services/queue/EventJournal.js"
import { EventQueue } from "../../src/services/queue/EventQueue.js"
import { RunLog, type RunLogService } from "../../src/services/queue/RunLog.js"
import { Feedback } from "../../src/services/discord/Feedback.js"
import { SettingsStore } from "../../src/services/storage/SettingsStore.js"
import { defaultGuild, FakeDiscord, type FakeDiscordOptions, type FakeGuild, world } from "../fakes/FakeDiscord.js"
import { type FakeLetta, type FakeLettaOptions, makeFakeLetta } from "../fakes/FakeLetta.js"
import { makeTempDir } from "../fakes/tempDir.js"

/** A second guild with its own channels, for cross-guild tests. */
export const otherGuild: FakeGuild = {
  id: "1300000000000000002",
  name: "Second Guild",
  channels: [
    { id: "1400000000000000101", name: "lobby", type: ChannelType.GuildText },
    { id: "1400000000000000102", name: "random", type: ChannelType.GuildText }
  ]
}

export const tempDir = makeTempDir("e2e")

export interface Running {
  readonly discord: FakeDiscord
  readonly letta: FakeLetta
  readonly settings: SettingsStore
  readonly queue: Context.Tag.Service<EventQueue>
  readonly gateway: DiscordGateway
  readonly journal: EventJournalService
  readonly deadLetters: DeadLettersService
  readonly runLog: RunLogService
  readonly breaker: CircuitBreaker
  readonly feedback: Feedback
  readonly dataDir: string
}

export interface StartOptions {
  readonly letta?: FakeLettaOptions
  /**
   * Use this running fake Letta (its agents, conversations and records) instead of a new one, so
   * that a second app talks to the server the first one left behind.
   */
  readonly lettaServer?: FakeLetta
  readonly env?: Readonly<Record<string, string>>
  readonly guilds?: ReadonlyArray<FakeGuild>
  /** More options for the fake Discord (e.g. its recommended shard count). */
  readonly discord?: Omit<FakeDiscordOptions, "guilds">
  /**
   * Use this data directory (kept when the app stops) instead of a fresh temporary one, so that
   * a second app can start where the first one stopped.
   */
  readonly dataDir?: string
}

/** Starts both fakes and the whole app; everything stops when the scope closes. */
export const startApp = (options: StartOptions = {}): Effect.Effect<Running, unknown, Scope.Scope> =>
  Effect.gen(function*() {
    const discord = yield* FakeDiscord.make({ ...options.discord, guilds: options.guilds ?? [defaultGuild, otherGuild] })
    const letta = options.lettaServer ?? (yield* makeFakeLetta(options.letta ?? {}))
    const dataDir = options.dataDir ?? (yield* tempDir)
    const config = discord.configLayer({
      LETTA_BASE_URL: letta.url,
      AURORA_DATA_DIR: dataDir,
      AURORA_SHUTDOWN_GRACE: "2 seconds",
      ...options.env
    })
    const quiet = Logger.minimumLogLevel(process.env["E2E_LOG"] === "1" ? LogLevel.Debug : LogLevel.Error)
    const context = yield* Layer.build(AppLive.pipe(Layer.provide(config), Layer.provide(quiet)))
    return {
      discord,
      letta,
      dataDir,
      settings: Context.get(context, SettingsStore),
      queue: Context.get(context, EventQueue),
      gateway: Context.get(context, DiscordGateway),
      journal: Context.get(context, EventJournal),
      deadLetters: Context.get(context, DeadLetters),
      runLog: Context.get(context, RunLog),
      breaker: Context.get(context, CircuitBreaker),
      feedback: Context.get(context, Feedback)
    }
  })

/** A generous bound for waits on real events on a loaded 2-core machine. */
export const eventWait = Duration.seconds(20)

/** Re-reads `read` until `ok` holds (callers bound the wait, e.g. with `bounded`). */
export const eventually = <A, E>(read: Effect.Effect<A, E>, ok: (a: A) => boolean): Effect.Effect<A, E> =>
  Effect.gen(function*() {
    for (;;) {
      const a = yield* read
      if (ok(a)) return a
      yield* Effect.sleep(Duration.millis(20))
    }
  })

export const bounded = <A, E, R>(label: string, effect: Effect.Effect<A, E, R>) =>
  effect.pipe(
    Effect.timeoutFail({ duration: eventWait, onTimeout: () => new Error(`timed out waiting for ${label}`) })
  )

export { world }

export { freePort } from "../fakes/freePort.js"
