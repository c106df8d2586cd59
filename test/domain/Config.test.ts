/**
 * The configuration module: every variable's default, a valid value of each, and the start-up
 * line a bad value gives (through layers/Startup.ts, as the program prints it). Secrets stay
 * redacted, and README's Configuration table lists exactly the variables the module reads.
 */
import * as Fs from "node:fs"
import * as Path from "node:path"
import { inspect } from "node:util"
import { describe, expect, it } from "@effect/vitest"
import { ConfigProvider, Duration, Effect, Exit, LogLevel, Option, Redacted } from "effect"
import { AuroraConfig, auroraConfig } from "../../src/domain/Config.js"
import { describeFailure } from "../../src/layers/Startup.js"
import { configFrom } from "../fakes/config.js"

const token = "discord-token-SECRET-0123456789"
const key = "letta-key-SECRET-9876543210"
const provider = (env: Readonly<Record<string, string>>) => ConfigProvider.fromMap(new Map(Object.entries(env)))
const load = (env: Readonly<Record<string, string>>) => Effect.withConfigProvider(auroraConfig, provider(env))

/** The lines Aurora prints when it cannot start with this environment ([] when it can). */
const startupLines = (env: Readonly<Record<string, string>>) =>
  Effect.map(Effect.exit(load(env)), (exit) => (Exit.isFailure(exit) ? describeFailure(exit.cause) : []))

describe("AuroraConfig", () => {
  it.effect("defaults: only DISCORD_TOKEN is required", () =>
    Effect.gen(function*() {
      const config = yield* load({ DISCORD_TOKEN: token })
      expect(Redacted.value(config.discord.token)).toBe(token)
      expect(config.discord.apiUrl).toEqual(Option.none())
      expect(config.discord.readyTimeout).toEqual(Duration.seconds(30))
      expect(config.discord.shardCount).toBe("auto")
      expect(config.commandGuildId).toEqual(Option.none())
      expect(config.owners).toEqual({ ids: [], ignored: [] })
      expect(config.letta).toEqual({ baseUrl: Option.none(), apiKey: Option.none() })
      expect(config.dataDir).toBe("./data")
      expect(config.maxConcurrentRuns).toBe(64)
      expect(config.maxEventAge).toEqual(Duration.hours(1))
      expect(config.shutdownGrace).toEqual(Duration.seconds(30))
      expect(config.http).toEqual(Option.none())
      expect(config.log).toEqual({ level: LogLevel.Info, format: Option.none() })
    }))

  it.effect("a valid value of every variable", () =>
    Effect.gen(function*() {
      const config = yield* load({
        DISCORD_TOKEN: token,
        DISCORD_API_URL: "http://127.0.0.1:9000/api",
        AURORA_DISCORD_READY_TIMEOUT: "2 minutes",
        AURORA_SHARD_COUNT: "4",
        AURORA_COMMAND_GUILD_ID: " 123456789012345678 ",
        AURORA_OWNER_IDS: "111111111111111111,222222222222222222",
        LETTA_BASE_URL: "https://letta.example:8283",
        LETTA_API_KEY: key,
        AURORA_DATA_DIR: "/var/lib/aurora",
        AURORA_MAX_CONCURRENT_RUNS: "128",
        AURORA_MAX_EVENT_AGE: "10 minutes",
        AURORA_SHUTDOWN_GRACE: "5 seconds",
        AURORA_HTTP_PORT: "9464",
        AURORA_HTTP_HOST: "0.0.0.0",
        LOG_LEVEL: "debug",
        LOG_FORMAT: "json"
      })
      expect(config.discord.apiUrl).toEqual(Option.some("http://127.0.0.1:9000/api"))
      expect(config.discord.readyTimeout).toEqual(Duration.minutes(2))
      expect(config.discord.shardCount).toBe(4)
      expect(config.commandGuildId).toEqual(Option.some("123456789012345678"))
      expect(config.owners).toEqual({ ids: ["111111111111111111", "222222222222222222"], ignored: [] })
      expect(config.letta.baseUrl).toEqual(Option.some("https://letta.example:8283"))
      expect(Option.map(config.letta.apiKey, Redacted.value)).toEqual(Option.some(key))
      expect(config.dataDir).toBe("/var/lib/aurora")
      expect(config.maxConcurrentRuns).toBe(128)
      expect(config.maxEventAge).toEqual(Duration.minutes(10))
      expect(config.shutdownGrace).toEqual(Duration.seconds(5))
      expect(config.http).toEqual(Option.some({ port: 9464, host: "0.0.0.0" }))
      expect(config.log).toEqual({ level: LogLevel.Debug, format: Option.some("json") })
    }))

  it.effect("edge values: explicit auto, the concurrency bounds, blanks read as unset", () =>
    Effect.gen(function*() {
      const at = (env: Readonly<Record<string, string>>) => load({ DISCORD_TOKEN: token, ...env })
      expect((yield* at({ AURORA_SHARD_COUNT: "auto" })).discord.shardCount).toBe("auto")
      expect((yield* at({ AURORA_MAX_CONCURRENT_RUNS: "1" })).maxConcurrentRuns).toBe(1)
      expect((yield* at({ AURORA_MAX_CONCURRENT_RUNS: "1024" })).maxConcurrentRuns).toBe(1024)
      const blanks = yield* at({
        DISCORD_API_URL: "",
        LETTA_BASE_URL: " ",
        LETTA_API_KEY: "  ",
        AURORA_COMMAND_GUILD_ID: " ",
        AURORA_SHARD_COUNT: "",
        AURORA_MAX_CONCURRENT_RUNS: "",
        AURORA_OWNER_IDS: " , "
      })
      expect(blanks.discord.apiUrl).toEqual(Option.none())
      expect(blanks.letta).toEqual({ baseUrl: Option.none(), apiKey: Option.none() })
      expect(blanks.commandGuildId).toEqual(Option.none())
      expect(blanks.discord.shardCount).toBe("auto")
      expect(blanks.maxConcurrentRuns).toBe(64)
      expect(blanks.owners).toEqual({ ids: [], ignored: [] })
    }))

  it.effect("AURORA_OWNER_IDS: entries that are not user ids are set aside, not fatal", () =>
    Effect.gen(function*() {
      const config = yield* load({
        DISCORD_TOKEN: token,
        AURORA_OWNER_IDS: " 111111111111111111, alice ,,222222222222222222, @bob"
      })
      expect(config.owners).toEqual({ ids: ["111111111111111111", "222222222222222222"], ignored: ["alice", "@bob"] })
    }))

  it.effect("a missing or blank DISCORD_TOKEN is one line naming it", () =>
    Effect.gen(function*() {
      expect(yield* startupLines({})).toEqual(["DISCORD_TOKEN is not set (required)"])
      expect(yield* startupLines({ DISCORD_TOKEN: "  " })).toEqual(["DISCORD_TOKEN is not set (required)"])
    }))

  const invalid: ReadonlyArray<readonly [string, string, string]> = [
    ["DISCORD_API_URL", "ftp://x", `expected an http:// or https:// URL, got "ftp://x"`],
    ["AURORA_DISCORD_READY_TIMEOUT", "soon", `Expected a duration but received "soon"`],
    ["AURORA_SHARD_COUNT", "0", `expected auto or a positive integer, got "0"`],
    ["AURORA_SHARD_COUNT", "two", `expected auto or a positive integer, got "two"`],
    ["AURORA_COMMAND_GUILD_ID", "my-guild", `expected a Discord guild id, got "my-guild"`],
    ["LETTA_BASE_URL", "letta:8283", `expected an http:// or https:// URL, got "letta:8283"`],
    [
      "LETTA_BASE_URL",
      "ftp://alice:s3cret@letta.example",
      `expected an http:// or https:// URL, got "ftp://redacted@letta.example/"`
    ],
    ["AURORA_MAX_CONCURRENT_RUNS", "0", `expected an integer from 1 to 1024, got "0"`],
    ["AURORA_MAX_CONCURRENT_RUNS", "1025", `expected an integer from 1 to 1024, got "1025"`],
    ["AURORA_MAX_CONCURRENT_RUNS", "2.5", `expected an integer from 1 to 1024, got "2.5"`],
    ["AURORA_MAX_EVENT_AGE", "1 fortnight", `Expected a duration but received "1 fortnight"`],
    ["AURORA_SHUTDOWN_GRACE", "-1", `Expected a duration but received "-1"`],
    ["AURORA_HTTP_PORT", "http", `Expected a network port value but received "http"`],
    ["LOG_LEVEL", "loud", `Expected one of (debug, info, warning, warn, error) but received "loud"`],
    ["LOG_FORMAT", "xml", `Expected one of (pretty, json) but received "xml"`]
  ]
  for (const [name, value, expected] of invalid) {
    it.effect(`${name}=${value} is one start-up line naming it`, () =>
      Effect.map(startupLines({ DISCORD_TOKEN: token, [name]: value }), (lines) => {
        expect(lines).toEqual([`${name} is invalid: ${expected}`])
      }))
  }

  it.effect("several bad values: one line each, none with a secret", () =>
    Effect.gen(function*() {
      const lines = yield* startupLines({ LETTA_API_KEY: key, AURORA_HTTP_PORT: "99999", LOG_LEVEL: "loud" })
      expect(lines).toEqual([
        "DISCORD_TOKEN is not set (required)",
        `AURORA_HTTP_PORT is invalid: Expected a network port value but received "99999"`,
        `LOG_LEVEL is invalid: Expected one of (debug, info, warning, warn, error) but received "loud"`
      ])
      const withToken = yield* startupLines({ DISCORD_TOKEN: token, LETTA_API_KEY: key, AURORA_DATA_DIR: "x", LOG_FORMAT: "?" })
      expect(withToken).toHaveLength(1)
      expect(withToken.join("\n")).not.toContain(token)
      expect(withToken.join("\n")).not.toContain(key)
    }))

  it.effect("the secrets are redacted wherever the record is printed", () =>
    Effect.gen(function*() {
      const config = yield* AuroraConfig
      for (const text of [String(config.discord.token), JSON.stringify(config), inspect(config, { depth: 10 })]) {
        expect(text).not.toContain(token)
        expect(text).not.toContain(key)
      }
      expect(String(config.discord.token)).toBe("<redacted>")
    }).pipe(Effect.provide(configFrom({ DISCORD_TOKEN: token, LETTA_API_KEY: key }))))

  it.effect("README's Configuration table lists exactly the variables the module reads", () =>
    Effect.gen(function*() {
      const read = new Set<string>()
      const env = provider({ DISCORD_TOKEN: token })
      const recording = ConfigProvider.fromFlat(
        ConfigProvider.makeFlat({
          load: (path, primitive, split) => {
            read.add(path.join("."))
            return env.flattened.load(path, primitive, split)
          },
          enumerateChildren: env.flattened.enumerateChildren,
          patch: env.flattened.patch
        })
      )
      yield* Effect.withConfigProvider(auroraConfig, recording)
      const readme = Fs.readFileSync(Path.resolve(import.meta.dirname, "../../README.md"), "utf8")
      const section = readme.split("## Configuration (environment)")[1]?.split("\n## ")[0] ?? ""
      const documented = [...section.matchAll(/^\| `([A-Z_]+)` \|/gm)].map((match) => match[1])
      expect(new Set(documented)).toEqual(read)
      expect(documented).toHaveLength(read.size)
    }))
})
