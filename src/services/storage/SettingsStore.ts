/**
 * Guild and global settings, persisted in SQLite and cached in memory: everything is loaded once
 * when the service starts and every change is written through (database first, then cache), so
 * the hot path (each incoming message) reads a Ref, never the database, and the global settings
 * can also be read synchronously (`currentGlobal`, for discord.js' message callback).
 */
import { SqlClient } from "@effect/sql"
import { Clock, Data, Effect, Either, HashMap, Option, PubSub, Ref, Schema, Stream } from "effect"
import { InvalidSetting, type StorageError } from "../../domain/Errors.js"
import { storageErrorOf } from "./Database.js"
import {
  defaultGuildSettings,
  type GlobalSettings,
  type GuildSettings,
  type GuildState,
  type SettingKey,
  validateSetting
} from "../../domain/Settings.js"
import { decodeGlobalRows, decodeGuildRow, globalKeys, type GuildRow, LettaBaseUrl, toColumn } from "./SettingsRows.js"

/** What changed, with the new state, so the queue and the executor can react at once. */
export type SettingsChange = Data.TaggedEnum<{
  GuildChanged: { readonly guild: GuildState }
  GlobalChanged: { readonly global: GlobalSettings }
}>
export const SettingsChange = Data.taggedEnum<SettingsChange>()

const validateLettaBaseUrl = (url: string) =>
  Schema.decodeUnknownEither(LettaBaseUrl)(url).pipe(
    Either.mapLeft(() => new InvalidSetting({ key: "lettaurl", value: url, allowed: "an http or https URL" }))
  )

export const defaultGuildState = (guildId: string): GuildState => ({
  guildId,
  enabled: false,
  agentId: null,
  paused: false,
  settings: defaultGuildSettings
})

// --- service ------------------------------------------------------------------

interface Cache {
  readonly guilds: HashMap.HashMap<string, GuildState>
  readonly global: GlobalSettings
}

const guildIn = (cache: Cache, guildId: string): GuildState =>
  Option.getOrElse(HashMap.get(cache.guilds, guildId), () => defaultGuildState(guildId))

export class SettingsStore extends Effect.Service<SettingsStore>()("aurora/SettingsStore", {
  scoped: Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient

    const load = Effect.gen(function*() {
      const guildRows = yield* sql<GuildRow>`SELECT * FROM guild_settings`
      const globalRows = yield* sql<{ readonly key: string; readonly value: unknown }>`
        SELECT key, value FROM global_settings`
      let guilds = HashMap.empty<string, GuildState>()
      for (const row of guildRows) {
        const { problems, state } = decodeGuildRow(row)
        if (problems.length > 0) {
          yield* Effect.logWarning("stored guild settings out of range; using the defaults for them").pipe(
            Effect.annotateLogs({ guildId: row.guild_id, invalid: problems.join(", ") })
          )
        }
        guilds = HashMap.set(guilds, state.guildId, state)
      }
      const { global, problems } = decodeGlobalRows(globalRows)
      if (problems.length > 0) {
        yield* Effect.logWarning("stored global settings invalid; using the defaults for them").pipe(
          Effect.annotateLogs({ invalid: problems.join(", ") })
        )
      }
      return { guilds, global } satisfies Cache
    }).pipe(Effect.mapError(storageErrorOf("SettingsStore.load")))

    const loaded = yield* load
    const cache = yield* Ref.make<Cache>(loaded)
    // The global settings once more as a plain value, for readers that cannot run an Effect (the
    // gateway's intake, in discord.js' callback); written in the same step as the Ref.
    let currentGlobal = loaded.global
    const changes = yield* PubSub.unbounded<SettingsChange>()
    yield* Effect.addFinalizer(() => PubSub.shutdown(changes))
    // Writes are rare (admin commands) and serialised, so the order of database writes, cache
    // updates and change notifications is the same even when commands race.
    const writeLock = yield* Effect.makeSemaphore(1)

    const guild = (guildId: string): Effect.Effect<GuildState> => Effect.map(Ref.get(cache), (c) => guildIn(c, guildId))

    /** Writes one guild row (upsert of the given columns), then the cache, then notifies. */
    const writeGuild = (
      operation: string,
      guildId: string,
      columns: Readonly<Record<string, number | string | null>>,
      update: (state: GuildState) => GuildState
    ): Effect.Effect<GuildState, StorageError> =>
      Effect.gen(function*() {
        const updatedAt = yield* Clock.currentTimeMillis
        const row = { guild_id: guildId, ...columns, updated_at: updatedAt }
        const assignments = [...Object.keys(columns), "updated_at"].map((column) => sql`${sql(column)} = excluded.${sql(column)}`)
        yield* sql`INSERT INTO guild_settings ${sql.insert(row)}
          ON CONFLICT (guild_id) DO UPDATE SET ${sql.csv(assignments)}`.pipe(
          Effect.mapError(storageErrorOf(operation))
        )
        const next = yield* Ref.modify(cache, (c) => {
          const state = update(guildIn(c, guildId))
          return [state, { ...c, guilds: HashMap.set(c.guilds, guildId, state) }]
        })
        yield* PubSub.publish(changes, SettingsChange.GuildChanged({ guild: next }))
        return next
      }).pipe(writeLock.withPermits(1), Effect.withSpan(operation, { attributes: { guildId } }))

    const writeGlobal = (
      operation: string,
      key: string,
      value: string | null,
      update: (global: GlobalSettings) => GlobalSettings
    ): Effect.Effect<GlobalSettings, StorageError> =>
      Effect.gen(function*() {
        const updatedAt = yield* Clock.currentTimeMillis
        // An absent key means "not set", so clearing a value deletes its row.
        const statement = value === null
          ? sql`DELETE FROM global_settings WHERE key = ${key}`
          : sql`INSERT INTO global_settings ${sql.insert({ key, value, updated_at: updatedAt })}
              ON CONFLICT (key) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at`
        yield* statement.pipe(Effect.mapError(storageErrorOf(operation)))
        const next = yield* Ref.modify(cache, (c) => {
          const global = update(c.global)
          currentGlobal = global
          return [global, { ...c, global }]
        })
        yield* PubSub.publish(changes, SettingsChange.GlobalChanged({ global: next }))
        return next
      }).pipe(writeLock.withPermits(1), Effect.withSpan(operation))

    /** Validated first with the one rule of src/domain/Settings.ts: nothing is stored when invalid. */
    const setSetting = <K extends SettingKey>(
      guildId: string,
      key: K,
      value: unknown
    ): Effect.Effect<GuildSettings, InvalidSetting | StorageError> =>
      Effect.gen(function*() {
        const valid = yield* validateSetting(key, value)
        const next = yield* writeGuild("SettingsStore.setSetting", guildId, { [key]: toColumn(valid) }, (state) => ({
          ...state,
          settings: { ...state.settings, [key]: valid }
        }))
        return next.settings
      })

    const enable = (guildId: string, agentId: string): Effect.Effect<GuildState, StorageError> =>
      writeGuild("SettingsStore.enable", guildId, { enabled: 1, agent_id: agentId }, (state) => ({
        ...state,
        enabled: true,
        agentId
      }))

    /** Keeps the agent id, so `events status` can still say which agent the guild had. */
    const disable = (guildId: string): Effect.Effect<GuildState, StorageError> =>
      writeGuild("SettingsStore.disable", guildId, { enabled: 0 }, (state) => ({ ...state, enabled: false }))

    const setPaused = (guildId: string, paused: boolean): Effect.Effect<GuildState, StorageError> =>
      writeGuild("SettingsStore.setPaused", guildId, { paused: paused ? 1 : 0 }, (state) => ({ ...state, paused }))

    const setLettaBaseUrl = (url: string | null): Effect.Effect<GlobalSettings, InvalidSetting | StorageError> =>
      Effect.gen(function*() {
        const valid = url === null ? null : yield* validateLettaBaseUrl(url)
        return yield* writeGlobal("SettingsStore.setLettaBaseUrl", globalKeys.lettaBaseUrl, valid, (g) => ({
          ...g,
          lettaBaseUrl: valid
        }))
      })

    const setDmAgent = (agentId: string | null): Effect.Effect<GlobalSettings, StorageError> =>
      writeGlobal("SettingsStore.setDmAgent", globalKeys.dmAgentId, agentId, (g) => ({ ...g, dmAgentId: agentId }))

    const setGlobalPause = (paused: boolean): Effect.Effect<GlobalSettings, StorageError> =>
      writeGlobal("SettingsStore.setGlobalPause", globalKeys.globalPause, String(paused), (g) => ({
        ...g,
        globalPause: paused
      }))

    /** Validated with the guild setting's rule (`conversations`), so both scopes accept the same words. */
    const setDmConversations = (value: unknown): Effect.Effect<GlobalSettings, InvalidSetting | StorageError> =>
      Effect.gen(function*() {
        const mode = yield* validateSetting("conversations", value)
        return yield* writeGlobal("SettingsStore.setDmConversations", globalKeys.dmConversations, mode, (g) => ({
          ...g,
          dmConversations: mode
        }))
      })

    const enabledGuilds: Effect.Effect<ReadonlyArray<GuildState>> = Effect.map(
      Ref.get(cache),
      (c) => Array.from(HashMap.values(c.guilds)).filter((state) => state.enabled)
    )

    return {
      guild,
      setSetting,
      enable,
      disable,
      setPaused,
      global: Effect.map(Ref.get(cache), (c) => c.global),
      /** The global settings now, read synchronously: a change is seen as soon as its write returns. */
      currentGlobal: (): GlobalSettings => currentGlobal,
      setLettaBaseUrl,
      setDmAgent,
      setGlobalPause,
      setDmConversations,
      enabledGuilds,
      /** Changes from the moment the stream is run; use `subscribe` to be sure not to miss one. */
      changes: Stream.fromPubSub(changes),
      /** A subscription taken now, for callers that must see every change after this point. */
      subscribe: PubSub.subscribe(changes)
    } as const
  })
}) {}
