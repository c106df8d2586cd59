import { SqlClient } from "@effect/sql"
import { describe, expect, it } from "@effect/vitest"
import { Chunk, Effect, Either, Layer, Logger, LogLevel, Queue } from "effect"
import { InvalidSetting, StorageError } from "../../../src/domain/Errors.js"
import { defaultGlobalSettings, defaultGuildSettings, type GuildSettings } from "../../../src/domain/Settings.js"
import { Database } from "../../../src/services/storage/Database.js"
import { SettingsStore } from "../../../src/services/storage/SettingsStore.js"
import { makeTempDir } from "../../fakes/tempDir.js"

const tempDir = makeTempDir("settings")

/** One "run of the bot": opens the database in `dir`, runs `use`, closes everything again. */
const session = <A, E>(dir: string, use: Effect.Effect<A, E, SettingsStore | SqlClient.SqlClient>) =>
  use.pipe(Effect.provide(SettingsStore.Default.pipe(Layer.provideMerge(Database.layer(dir)))))

const guildRows = Effect.flatMap(
  SqlClient.SqlClient,
  (sql) => sql<{ readonly guild_id: string }>`SELECT guild_id FROM guild_settings`
)

describe("SettingsStore", () => {
  it.scoped("an unknown guild has the defaults, and nothing is enabled", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir
      const result = yield* session(
        dir,
        Effect.gen(function*() {
          const s = yield* SettingsStore
          return { guild: yield* s.guild("g1"), global: yield* s.global, enabled: yield* s.enabledGuilds }
        })
      )
      expect(result.guild).toEqual({
        guildId: "g1",
        enabled: false,
        agentId: null,
        paused: false,
        settings: defaultGuildSettings
      })
      expect(result.global).toEqual(defaultGlobalSettings)
      expect(result.enabled).toEqual([])
    }))

  it.scoped("each setting can be set and read back, then survives a restart", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir
      const wanted: GuildSettings = {
        replydepth: 10,
        typing: false,
        ratelimit: 0.5,
        queuesize: 200,
        timeout: 10,
        mcpguidance: false,
        conversations: "shared",
        parallel: 32,
        fallback: "off",
        images: false,
        feedback: false,
        tools: "builtin",
        approvaltimeout: 60
      }
      const afterSets = yield* session(
        dir,
        Effect.gen(function*() {
          const s = yield* SettingsStore
          const returned: Array<GuildSettings> = []
          returned.push(yield* s.setSetting("g1", "replydepth", 10))
          returned.push(yield* s.setSetting("g1", "typing", false))
          returned.push(yield* s.setSetting("g1", "ratelimit", "0.5")) // text form, as an interaction may carry it
          returned.push(yield* s.setSetting("g1", "queuesize", 200))
          returned.push(yield* s.setSetting("g1", "timeout", 10))
          returned.push(yield* s.setSetting("g1", "mcpguidance", "false"))
          returned.push(yield* s.setSetting("g1", "conversations", "shared"))
          returned.push(yield* s.setSetting("g1", "parallel", "32"))
          returned.push(yield* s.setSetting("g1", "fallback", "off"))
          returned.push(yield* s.setSetting("g1", "images", false))
          returned.push(yield* s.setSetting("g1", "feedback", "false"))
          returned.push(yield* s.setSetting("g1", "tools", "builtin"))
          returned.push(yield* s.setSetting("g1", "approvaltimeout", "60"))
          return { returned, guild: yield* s.guild("g1"), other: yield* s.guild("g2") }
        })
      )
      expect(afterSets.returned[0]).toEqual({ ...defaultGuildSettings, replydepth: 10 })
      expect(afterSets.returned[6]).toEqual({
        ...defaultGuildSettings,
        ...wanted,
        parallel: defaultGuildSettings.parallel,
        fallback: defaultGuildSettings.fallback,
        images: defaultGuildSettings.images,
        feedback: defaultGuildSettings.feedback,
        tools: defaultGuildSettings.tools,
        approvaltimeout: defaultGuildSettings.approvaltimeout
      })
      expect(afterSets.returned[9]).toEqual({
        ...wanted,
        feedback: defaultGuildSettings.feedback,
        tools: defaultGuildSettings.tools,
        approvaltimeout: defaultGuildSettings.approvaltimeout
      })
      expect(afterSets.returned[11]).toEqual({ ...wanted, approvaltimeout: defaultGuildSettings.approvaltimeout })
      expect(afterSets.returned[12]).toEqual(wanted)
      expect(afterSets.guild.settings).toEqual(wanted)
      expect(afterSets.guild.enabled).toBe(false) // config before enable is allowed
      expect(afterSets.other.settings).toEqual(defaultGuildSettings)
      const reopened = yield* session(dir, Effect.flatMap(SettingsStore, (s) => s.guild("g1")))
      expect(reopened.settings).toEqual(wanted)
      expect(reopened.enabled).toBe(false)
    }))

  it.scoped("out-of-range values are rejected with the range and nothing is stored", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir
      const outcome = yield* session(
        dir,
        Effect.gen(function*() {
          const s = yield* SettingsStore
          const attempts = [
            s.setSetting("g1", "ratelimit", 0.4),
            s.setSetting("g1", "replydepth", 11),
            s.setSetting("g1", "queuesize", "abc"),
            s.setSetting("g1", "typing", "abc"),
            s.setSetting("g1", "conversations", "Shared"),
            s.setSetting("g1", "parallel", 33),
            s.setSetting("g1", "parallel", 0),
            s.setSetting("g1", "parallel", 2.5)
          ]
          const errors = yield* Effect.forEach(attempts, (attempt) => Effect.flip(attempt))
          return { errors, guild: yield* s.guild("g1"), rows: yield* guildRows }
        })
      )
      expect(outcome.errors.map((e) => e._tag)).toEqual(Array.from({ length: 8 }, () => "InvalidSetting"))
      expect(outcome.errors[0]?.message).toBe("ratelimit must be between 0.5 and 10 seconds (got 0.4)")
      expect(outcome.errors[1]?.message).toBe("replydepth must be a whole number between 1 and 10 (got 11)")
      expect(outcome.errors[2]?.message).toBe("queuesize must be a whole number between 10 and 200 (got abc)")
      expect(outcome.errors[4]?.message).toBe("conversations must be channel or shared (got Shared)")
      expect(outcome.errors[5]?.message).toBe("parallel must be a whole number between 1 and 32 (got 33)")
      expect(outcome.guild.settings).toEqual(defaultGuildSettings)
      expect(outcome.rows).toEqual([])
      const reopened = yield* session(
        dir,
        Effect.gen(function*() {
          return { guild: yield* Effect.flatMap(SettingsStore, (s) => s.guild("g1")), rows: yield* guildRows }
        })
      )
      expect(reopened.guild.settings).toEqual(defaultGuildSettings)
      expect(reopened.rows).toEqual([])
    }))

  it.scoped("enable, pause and disable persist; disable keeps the agent id", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir
      yield* session(
        dir,
        Effect.gen(function*() {
          const s = yield* SettingsStore
          yield* s.setSetting("g1", "timeout", 120)
          yield* s.enable("g1", "agent-1")
          yield* s.setPaused("g1", true)
          yield* s.enable("g2", "agent-2")
          yield* s.enable("g3", "agent-3")
          yield* s.disable("g3")
        })
      )
      const reopened = yield* session(
        dir,
        Effect.gen(function*() {
          const s = yield* SettingsStore
          return {
            g1: yield* s.guild("g1"),
            g3: yield* s.guild("g3"),
            enabled: (yield* s.enabledGuilds).map((g) => g.guildId).sort()
          }
        })
      )
      expect(reopened.g1).toEqual({
        guildId: "g1",
        enabled: true,
        agentId: "agent-1",
        paused: true,
        settings: { ...defaultGuildSettings, timeout: 120 }
      })
      expect(reopened.g3).toMatchObject({ enabled: false, agentId: "agent-3", paused: false })
      expect(reopened.enabled).toEqual(["g1", "g2"])
      const resumed = yield* session(dir, Effect.flatMap(SettingsStore, (s) => s.setPaused("g1", false)))
      expect(resumed.paused).toBe(false)
      const again = yield* session(dir, Effect.flatMap(SettingsStore, (s) => s.guild("g1")))
      expect(again).toMatchObject({ paused: false, enabled: true, agentId: "agent-1" })
    }))

  it.scoped("global settings persist, and null clears them", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir
      const set = yield* session(
        dir,
        Effect.gen(function*() {
          const s = yield* SettingsStore
          yield* s.setLettaBaseUrl("http://127.0.0.1:8283")
          yield* s.setDmAgent("agent-dm")
          yield* s.setGlobalPause(true)
          return yield* s.setDmConversations("shared")
        })
      )
      const expected = {
        lettaBaseUrl: "http://127.0.0.1:8283",
        dmAgentId: "agent-dm",
        globalPause: true,
        dmConversations: "shared"
      }
      expect(set).toEqual(expected)
      expect(yield* session(dir, Effect.flatMap(SettingsStore, (s) => s.global))).toEqual(expected)
      yield* session(
        dir,
        Effect.gen(function*() {
          const s = yield* SettingsStore
          yield* s.setLettaBaseUrl(null)
          yield* s.setDmAgent(null)
          yield* s.setGlobalPause(false)
          yield* s.setDmConversations("channel")
        })
      )
      expect(yield* session(dir, Effect.flatMap(SettingsStore, (s) => s.global))).toEqual(defaultGlobalSettings)
    }))

  it.scoped("a DM conversations mode other than channel or shared is rejected and not stored", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir
      const outcome = yield* session(
        dir,
        Effect.gen(function*() {
          const s = yield* SettingsStore
          const errors = yield* Effect.forEach(["Channel", "", 1], (value) => Effect.flip(s.setDmConversations(value)))
          return { errors, global: yield* s.global }
        })
      )
      expect(outcome.errors.map((error) => error.message)).toEqual([
        "conversations must be channel or shared (got Channel)",
        "conversations must be channel or shared (got )",
        "conversations must be channel or shared (got 1)"
      ])
      expect(outcome.global.dmConversations).toBe("channel")
      expect((yield* session(dir, Effect.flatMap(SettingsStore, (s) => s.global))).dmConversations).toBe("channel")
    }))

  it.scoped("a Letta URL that is not http(s) is rejected and not stored", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir
      const outcome = yield* session(
        dir,
        Effect.gen(function*() {
          const s = yield* SettingsStore
          const errors = yield* Effect.forEach(
            ["ftp://example.com", "not a url", "javascript:alert(1)"],
            (url) => Effect.flip(s.setLettaBaseUrl(url))
          )
          return { errors, global: yield* s.global }
        })
      )
      expect(outcome.errors).toHaveLength(3)
      for (const error of outcome.errors) {
        expect(error).toBeInstanceOf(InvalidSetting)
        expect(error).toMatchObject({ key: "lettaurl", allowed: "an http or https URL" })
      }
      expect(outcome.global.lettaBaseUrl).toBeNull()
      expect((yield* session(dir, Effect.flatMap(SettingsStore, (s) => s.global))).lettaBaseUrl).toBeNull()
    }))

  it.scoped("a hand-edited out-of-range row falls back to the defaults with a warning", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir
      yield* session(
        dir,
        Effect.gen(function*() {
          const sql = yield* SqlClient.SqlClient
          yield* sql`INSERT INTO guild_settings
            (guild_id, enabled, agent_id, paused, replydepth, typing, ratelimit, queuesize, timeout, mcpguidance,
              conversations, parallel, updated_at)
            VALUES ('g1', 1, 'agent-1', 7, 11, 2, 'abc', 100, 2.5, 0, 'parallel', 33, 0),
              ('g2', 1, 'agent-2', 0, NULL, NULL, NULL, NULL, NULL, NULL, 'shared', 4, 0)`
          yield* sql`INSERT INTO global_settings (key, value, updated_at)
            VALUES ('lettaBaseUrl', 'ftp://x', 0), ('dmAgentId', 'agent-dm', 0), ('globalPause', 'maybe', 0),
              ('dmConversations', 'both', 0)`
        })
      )
      const warnings: Array<string> = []
      const capture = Logger.make(({ annotations, logLevel, message }) => {
        if (LogLevel.greaterThanEqual(logLevel, LogLevel.Warning)) {
          const fields = [...annotations].map(([key, value]) => `${key}=${String(value)}`).join(" ")
          warnings.push(`${String(message)} ${fields}`)
        }
      })
      const result = yield* session(
        dir,
        Effect.gen(function*() {
          const s = yield* SettingsStore
          return {
            guild: yield* s.guild("g1"),
            valid: yield* s.guild("g2"),
            global: yield* s.global,
            enabled: yield* s.enabledGuilds
          }
        })
      ).pipe(Effect.provide(Logger.add(capture)))
      // Valid cells are kept, invalid ones read as their defaults.
      expect(result.guild).toEqual({
        guildId: "g1",
        enabled: true,
        agentId: "agent-1",
        paused: false,
        settings: { ...defaultGuildSettings, queuesize: 100, mcpguidance: false }
      })
      expect(result.valid.settings).toEqual({ ...defaultGuildSettings, conversations: "shared", parallel: 4 })
      expect(result.global).toEqual({ ...defaultGlobalSettings, dmAgentId: "agent-dm" })
      expect(result.enabled.map((g) => g.guildId).sort()).toEqual(["g1", "g2"])
      expect(warnings).toHaveLength(2)
      expect(warnings[0]).toContain("guildId=g1")
      const cells = [
        "paused=7",
        "replydepth=11",
        "typing=2",
        "ratelimit=\"abc\"",
        "timeout=2.5",
        "conversations=\"parallel\"",
        "parallel=33"
      ]
      for (const cell of cells) {
        expect(warnings[0]).toContain(cell)
      }
      expect(warnings[0]).not.toContain("queuesize")
      expect(warnings[1]).toContain("lettaBaseUrl=\"ftp://x\"")
      expect(warnings[1]).toContain("globalPause=\"maybe\"")
      expect(warnings[1]).toContain("dmConversations=\"both\"")
    }))

  it.scoped("concurrent writes from many fibers all land", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir
      const guilds = Array.from({ length: 40 }, (_, i) => `g${i}`)
      const expectedOf = (i: number) => ({
        enabled: true,
        agentId: `agent-${i}`,
        paused: i % 2 === 0,
        settings: {
          ...defaultGuildSettings,
          replydepth: (i % 10) + 1,
          queuesize: 10 + i,
          timeout: 10 + i,
          typing: i % 3 !== 0
        }
      })
      const cached = yield* session(
        dir,
        Effect.gen(function*() {
          const s = yield* SettingsStore
          const writes = guilds.flatMap((guildId, i) => [
            s.enable(guildId, `agent-${i}`),
            s.setPaused(guildId, i % 2 === 0),
            s.setSetting(guildId, "replydepth", (i % 10) + 1),
            s.setSetting(guildId, "queuesize", 10 + i),
            s.setSetting(guildId, "timeout", 10 + i),
            s.setSetting(guildId, "typing", i % 3 !== 0)
          ])
          yield* Effect.all([...writes, s.setGlobalPause(true), s.setDmAgent("agent-dm")], {
            concurrency: "unbounded"
          })
          return yield* Effect.forEach(guilds, (guildId) => s.guild(guildId))
        })
      )
      cached.forEach((state, i) => expect(state).toMatchObject(expectedOf(i)))
      const reopened = yield* session(
        dir,
        Effect.gen(function*() {
          const s = yield* SettingsStore
          return { states: yield* Effect.forEach(guilds, (guildId) => s.guild(guildId)), global: yield* s.global }
        })
      )
      reopened.states.forEach((state, i) => expect(state).toMatchObject(expectedOf(i)))
      expect(reopened.global).toEqual({ ...defaultGlobalSettings, dmAgentId: "agent-dm", globalPause: true })
    }))

  it.scoped("racing writes of one setting leave the cache and the database agreeing", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir
      const values = Array.from({ length: 50 }, (_, i) => 10 + i)
      const cached = yield* session(
        dir,
        Effect.gen(function*() {
          const s = yield* SettingsStore
          yield* Effect.forEach(values, (value) => s.setSetting("g1", "queuesize", value), { concurrency: "unbounded" })
          return (yield* s.guild("g1")).settings.queuesize
        })
      )
      const stored = yield* session(dir, Effect.flatMap(SettingsStore, (s) => s.guild("g1")))
      expect(values).toContain(cached)
      expect(stored.settings.queuesize).toBe(cached)
    }))

  it.scoped("changes are published in order with the new state", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir
      const seen = yield* session(
        dir,
        Effect.gen(function*() {
          const s = yield* SettingsStore
          const subscription = yield* s.subscribe
          yield* s.setSetting("g1", "ratelimit", 3)
          yield* Effect.flip(s.setSetting("g1", "ratelimit", 99)) // rejected: no notification
          yield* s.enable("g1", "agent-1")
          yield* s.setGlobalPause(true)
          return Chunk.toReadonlyArray(yield* Queue.takeAll(subscription))
        }).pipe(Effect.scoped)
      )
      expect(seen.map((change) => change._tag)).toEqual(["GuildChanged", "GuildChanged", "GlobalChanged"])
      expect(seen[0]?._tag === "GuildChanged" && seen[0].guild.settings.ratelimit).toBe(3)
      expect(seen[1]?._tag === "GuildChanged" && seen[1].guild).toMatchObject({ enabled: true, agentId: "agent-1" })
      expect(seen[2]?._tag === "GlobalChanged" && seen[2].global.globalPause).toBe(true)
    }))

  it.scoped("a database failure is a StorageError and leaves the cache as it was", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir
      const result = yield* session(
        dir,
        Effect.gen(function*() {
          const s = yield* SettingsStore
          const sql = yield* SqlClient.SqlClient
          yield* s.setSetting("g1", "replydepth", 3)
          yield* sql`DROP TABLE guild_settings`
          const failed = yield* Effect.either(s.setSetting("g1", "replydepth", 4))
          // Reads come from the cache: they still work without the table.
          return { failed, guild: yield* s.guild("g1") }
        })
      )
      expect(Either.isLeft(result.failed)).toBe(true)
      if (Either.isLeft(result.failed)) {
        expect(result.failed.left).toBeInstanceOf(StorageError)
        expect(result.failed.left).toMatchObject({ operation: "SettingsStore.setSetting" })
        if (result.failed.left._tag === "StorageError") {
          expect(result.failed.left.reason).toContain("no such table: guild_settings")
        }
      }
      expect(result.guild.settings.replydepth).toBe(3)
    }))
})
