/**
 * What the fault rows share: guilds of plain text channels for the fake Discord, settings written
 * into a data directory before Aurora starts (with the app's own SettingsStore), message ids that
 * never collide, and the database read back after Aurora has exited.
 */
import { createHash } from "node:crypto"
import * as Fs from "node:fs"
import * as Path from "node:path"
import { SqlClient } from "@effect/sql"
import { SqliteClient } from "@effect/sql-sqlite-node"
import { ChannelType } from "discord.js"
import { Data, type Duration, Effect, Layer, Schedule } from "effect"
import { type GuildSettings, settingKeys } from "../../src/domain/Settings.js"
import { Database, databaseFileName } from "../../src/services/storage/Database.js"
import { SettingsStore } from "../../src/services/storage/SettingsStore.js"
import { FakeDiscord, type FakeGuild, snowflake, world } from "../fakes/FakeDiscord.js"
import { type Behaviour, makeFakeLetta } from "../fakes/FakeLetta.js"
import { makeTempDir } from "../fakes/tempDir.js"
import { type AuroraProcess, bounded, type Metrics, spawnAurora, type SpawnOptions } from "./AuroraProcess.js"

export const tempDir = makeTempDir("faults")

/** Guild `g` (0-based) with `channels` text channels; ids are derived from the indices. */
export const textGuild = (g: number, channels: number): FakeGuild => ({
  id: `13${String(9000 + g).padStart(17, "0")}`,
  name: `Fault Guild ${g}`,
  channels: Array.from({ length: channels }, (_, c) => ({
    id: `14${String(g * 1000 + c).padStart(17, "0")}`,
    name: `channel-${c}`,
    type: ChannelType.GuildText
  }))
})

export const channelIds = (guild: FakeGuild): ReadonlyArray<string> => guild.channels.map((channel) => channel.id)

export interface GuildSetup {
  readonly guildId: string
  readonly agentId: string
  /** Validated by the store, as `/aurora config` would. */
  readonly settings?: Partial<GuildSettings>
}

/** Enables guilds and applies settings in `dataDir`, then closes the database (Aurora's lock is free again). */
export const seedSettings = (dataDir: string, guilds: ReadonlyArray<GuildSetup>) =>
  Effect.scoped(
    Effect.gen(function*() {
      const store = yield* SettingsStore
      for (const guild of guilds) {
        yield* store.enable(guild.guildId, guild.agentId)
        for (const key of settingKeys) {
          const value = guild.settings?.[key]
          if (value !== undefined) yield* store.setSetting(guild.guildId, key, value)
        }
      }
    }).pipe(Effect.provide(SettingsStore.Default.pipe(Layer.provide(Database.layer(dataDir)))))
  )

/**
 * The common stage of a row: one text guild (`g`, with `channels` channels) enabled for its own
 * agent at a 0.5 s rate limit in a fresh data directory, the fake Discord and the fake Letta.
 */
export const oneGuildStage = (options: {
  readonly g: number
  readonly channels: number
  readonly agentId: string
  readonly agentName: string
  readonly defaultBehaviour?: Behaviour
  /** More settings of the guild (its rate limit stays 0.5 s unless given). */
  readonly settings?: Partial<GuildSettings>
}) =>
  Effect.gen(function*() {
    const guild = textGuild(options.g, options.channels)
    const discord = yield* FakeDiscord.make({ guilds: [guild] })
    const letta = yield* makeFakeLetta({
      agents: { [options.agentId]: options.agentName },
      ...(options.defaultBehaviour === undefined ? {} : { defaultBehaviour: options.defaultBehaviour })
    })
    const dataDir = yield* tempDir
    yield* seedSettings(dataDir, [{
      guildId: guild.id,
      agentId: options.agentId,
      settings: { ratelimit: 0.5, ...options.settings }
    }])
    return { guild, channels: channelIds(guild), agentId: options.agentId, discord, letta, dataDir }
  })

let sequence = 0

/** A fresh snowflake per call (the fake's own wraps after 4096 in one millisecond). */
export const messageId = (): string => {
  sequence += 1
  return snowflake(Date.now() + Math.floor(sequence / 4000))
}

/** A mention of the bot by alice in `channelId`; returns the message id. */
export const mention = (discord: FakeDiscord, channelId: string, text: string) =>
  Effect.map(
    discord.sendMessage({ channelId, id: messageId(), content: `<@${world.bot.id}> ${text}`, mentions: [world.bot.id] }),
    (message) => String(message["id"])
  )

/** The program's start-up is over once it has registered its commands: the listener runs from then on. */
export const started = (discord: FakeDiscord, mark = 0) =>
  bounded(
    "Aurora to register its commands",
    discord.waitForRequest((r) => r.index >= mark && r.method === "PUT" && r.path.endsWith("/commands"), "60 seconds"),
    "70 seconds"
  )

/** Spawns Aurora and waits until it is up. */
export const startAurora = (discord: FakeDiscord, options: Omit<SpawnOptions, "discordApiUrl" | "discordToken">) =>
  Effect.gen(function*() {
    const mark = discord.requests().length
    const aurora = yield* spawnAurora({ ...options, discordApiUrl: discord.apiUrl, discordToken: discord.token })
    yield* started(discord, mark)
    return aurora
  })

export interface DeadLetterRow {
  readonly partition: string
  readonly messageId: string
  readonly reason: string
  readonly errorType: string | null
  readonly attempts: number
}

export interface StoredQueue {
  readonly deadLetters: ReadonlyArray<DeadLetterRow>
  readonly pending: ReadonlyArray<string>
}

/** The dead letters and pending events in `dataDir`'s database (after Aurora has exited: it holds an exclusive lock while it runs). */
export const readStoredQueue = (dataDir: string) =>
  Effect.scoped(
    Effect.gen(function*() {
      const sql = yield* SqlClient.SqlClient
      const letters = yield* sql<{
        readonly partition: string
        readonly message_id: string
        readonly reason: string
        readonly error_type: string | null
        readonly attempts: number
      }>`SELECT partition, message_id, reason, error_type, attempts FROM dead_letters ORDER BY failed_at, seq`
      const pending = yield* sql<{ readonly message_id: string }>`SELECT message_id FROM pending_events ORDER BY seq`
      return {
        deadLetters: letters.map((row) => ({
          partition: row.partition,
          messageId: row.message_id,
          reason: row.reason,
          errorType: row.error_type,
          attempts: row.attempts
        })),
        pending: pending.map((row) => row.message_id)
      } satisfies StoredQueue
    }).pipe(
      Effect.provide(
        SqliteClient.layer({ filename: Path.join(dataDir, databaseFileName), disableWAL: true })
      )
    )
  )

export const sha256 = (file: string): string => createHash("sha256").update(Fs.readFileSync(file)).digest("hex")

/** Stops Aurora with SIGTERM and returns its exit status. */
export const stop = (aurora: AuroraProcess) =>
  Effect.zipRight(aurora.kill("SIGTERM"), bounded("Aurora to exit after SIGTERM", aurora.exit, "60 seconds"))

export { freePort } from "../fakes/freePort.js"

class NotYet extends Data.TaggedError("NotYet") {}

/**
 * Scrapes `/metrics` until `ready` holds (Aurora's counters have no push channel; a scrape is
 * cheap), bounded by `timeout`. Gives the scrape that satisfied it.
 */
export const metricsWhen = (
  aurora: AuroraProcess,
  ready: (metrics: Metrics) => boolean,
  label: string,
  timeout: Duration.DurationInput = "60 seconds"
) =>
  bounded(
    label,
    aurora.metrics.pipe(
      Effect.flatMap((metrics) => (ready(metrics) ? Effect.succeed(metrics) : Effect.fail(new NotYet()))),
      Effect.retry({
        while: (error) => error._tag === "NotYet" || error._tag === "ScrapeFailed",
        schedule: Schedule.spaced("250 millis")
      })
    ),
    timeout
  )

/** Nothing pending and nothing in flight: Aurora will not dispatch anything more by itself. */
export const idle = (metrics: Metrics): boolean =>
  metrics.sum("aurora_queue_pending_events") === 0 && metrics.sum("aurora_runs_in_flight") === 0

export const range = (n: number): ReadonlyArray<number> => Array.from({ length: n }, (_, i) => i)

/** A duration for the report's notes: `1.2 s`. */
export const seconds = (ms: number) => `${(ms / 1000).toFixed(1)} s`
