/**
 * The built program itself, as an operator runs it: `npm start` against the loopback fakes, a
 * mention reaching the fake Letta, SIGTERM ending it with exit code 0; and the one-line start-up
 * failures. (The compiled dist/ comes from `npm test`'s build step, or `npm ci`'s prepare.)
 */
import { type ChildProcess, spawn } from "node:child_process"
import * as Fs from "node:fs"
import * as Path from "node:path"
import { describe, expect, it } from "@effect/vitest"
import { Deferred, Duration, Effect, Layer, Schedule } from "effect"
import { Database } from "../../src/services/storage/Database.js"
import { SettingsStore } from "../../src/services/storage/SettingsStore.js"
import { FakeDiscord, world } from "../fakes/FakeDiscord.js"
import { Behaviours, makeFakeLetta } from "../fakes/FakeLetta.js"
import { bounded, tempDir } from "./harness.js"

const root = Path.resolve(import.meta.dirname, "../..")
const secretToken = "process-test-token-SECRET-1234567890"

interface Child {
  readonly process: ChildProcess
  readonly output: () => string
  readonly exit: Effect.Effect<number | null>
}

/** Spawns a command with only the given environment (plus PATH/HOME); killed when the scope closes. */
const run = (command: string, args: ReadonlyArray<string>, env: Readonly<Record<string, string>>) =>
  Effect.acquireRelease(
    Effect.gen(function*() {
      const exited = yield* Deferred.make<number | null>()
      const child = spawn(command, args, {
        cwd: root,
        env: { PATH: process.env["PATH"] ?? "", HOME: process.env["HOME"] ?? "/tmp", LOG_FORMAT: "json", ...env },
        stdio: ["ignore", "pipe", "pipe"]
      })
      let output = ""
      child.stdout?.on("data", (chunk: Buffer) => (output += chunk.toString()))
      child.stderr?.on("data", (chunk: Buffer) => (output += chunk.toString()))
      child.on("exit", (code) => Deferred.unsafeDone(exited, Effect.succeed(code)))
      return { process: child, output: () => output, exit: Deferred.await(exited) } satisfies Child
    }),
    (child) => Effect.sync(() => child.process.exitCode === null && child.process.kill("SIGKILL"))
  )

const builtMain = Path.join(root, "dist", "main.js")

describe("the built program", () => {
  it.scopedLive("dist/main.js exists (built by `npm test` or `npm ci`)", () =>
    Effect.sync(() => expect(Fs.existsSync(builtMain)).toBe(true)))

  it.scopedLive("without DISCORD_TOKEN it exits 1 with one line naming the variable", () =>
    Effect.gen(function*() {
      const dataDir = yield* tempDir
      const child = yield* run("node", [builtMain], { AURORA_DATA_DIR: dataDir })
      const code = yield* bounded("exit", child.exit)
      expect(code).toBe(1)
      const lines = child.output().trim().split("\n")
      expect(lines).toEqual(["aurora: DISCORD_TOKEN is not set (required)"])
    }))

  it.scopedLive("bad settings: one line per bad variable, exit 1, nothing started, no secret", () =>
    Effect.gen(function*() {
      const dataDir = Path.join(yield* tempDir, "data")
      const child = yield* run("node", [builtMain], {
        DISCORD_TOKEN: secretToken,
        LETTA_API_KEY: "letta-SECRET-key-0987654321",
        AURORA_DATA_DIR: dataDir,
        AURORA_HTTP_PORT: "http",
        AURORA_MAX_CONCURRENT_RUNS: "0"
      })
      expect(yield* bounded("exit", child.exit)).toBe(1)
      expect(child.output().trim().split("\n")).toEqual([
        `aurora: AURORA_MAX_CONCURRENT_RUNS is invalid: expected an integer from 1 to 1024, got "0"`,
        `aurora: AURORA_HTTP_PORT is invalid: Expected a network port value but received "http"`
      ])
      expect(child.output()).not.toContain(secretToken)
      expect(child.output()).not.toContain("letta-SECRET-key-0987654321")
      // Checked before anything starts: not even the data directory was created.
      expect(Fs.existsSync(dataDir)).toBe(false)
    }))

  it.scopedLive("a token Discord rejects gives one clear line without the token", () =>
    Effect.gen(function*() {
      const discord = yield* FakeDiscord.make({ rejectToken: true })
      const dataDir = yield* tempDir
      const child = yield* run("node", [builtMain], {
        DISCORD_TOKEN: secretToken,
        DISCORD_API_URL: discord.apiUrl,
        LETTA_BASE_URL: "http://127.0.0.1:9",
        AURORA_DATA_DIR: dataDir,
        LOG_LEVEL: "error"
      })
      expect(yield* bounded("exit", child.exit)).toBe(1)
      const output = child.output()
      expect(output).toContain("aurora: Discord rejected DISCORD_TOKEN (401 Unauthorized)")
      expect(output).not.toContain(secretToken)
      expect(output).not.toMatch(/^\s+at /m)
    }))

  it.scopedLive("npm start runs the bot: a mention reaches Letta; SIGTERM exits 0; no secret in the logs", () =>
    Effect.gen(function*() {
      const discord = yield* FakeDiscord.make({ token: secretToken })
      const letta = yield* makeFakeLetta({ agents: { "agent-proc": "Process Agent" } })
      const dataDir = yield* tempDir
      // Seed the settings the way /aurora enable would, in the data dir the program will use.
      yield* Effect.scoped(
        Effect.gen(function*() {
          const settings = yield* SettingsStore
          yield* settings.enable(world.guildId, "agent-proc")
        }).pipe(Effect.provide(SettingsStore.Default.pipe(Layer.provide(Database.layer(dataDir)))))
      )
      const child = yield* run("npm", ["start", "--silent"], {
        DISCORD_TOKEN: secretToken,
        DISCORD_API_URL: discord.apiUrl,
        LETTA_BASE_URL: letta.url,
        LETTA_API_KEY: "letta-SECRET-key-0987654321",
        AURORA_DATA_DIR: dataDir,
        LOG_LEVEL: "debug"
      })
      yield* discord.waitForReady({ timeout: Duration.seconds(30) })
      // Commands are registered once the app is up; after that, the listener is running too.
      yield* discord.waitForRequest((r) => r.method === "PUT" && r.path.endsWith("/commands"), Duration.seconds(30))
      yield* discord.sendMessage({
        channelId: world.general,
        content: `<@${world.bot.id}> from npm start`,
        mentions: [world.bot.id]
      })
      const request = yield* bounded("the Letta request", letta.awaitMessages(1, "agent-proc"))
      expect(JSON.stringify(request.body)).toContain("from npm start")
      expect(request.headers["authorization"]).toBe("Bearer letta-SECRET-key-0987654321")
      yield* bounded("the run to finish", letta.awaitRunsFinished(1))
      child.process.kill("SIGTERM")
      expect(yield* bounded("exit after SIGTERM", child.exit)).toBe(0)
      const output = child.output()
      expect(output).not.toContain(secretToken)
      expect(output).not.toContain("letta-SECRET-key-0987654321")
      // JSON lines, each with level, message and timestamp.
      const lines = output.trim().split("\n").filter((line) => line.startsWith("{"))
      expect(lines.length).toBeGreaterThan(3)
      for (const line of lines) {
        expect(JSON.parse(line)).toMatchObject({
          level: expect.any(String),
          message: expect.any(String),
          timestamp: expect.any(String)
        })
      }
      expect(output).toContain("run finished")
    }))

  it.scopedLive("a data directory that cannot be created gives one clear line and exit 1", () =>
    Effect.gen(function*() {
      const discord = yield* FakeDiscord.make()
      const dir = yield* tempDir
      const blocker = Path.join(dir, "a-file")
      Fs.writeFileSync(blocker, "not a directory")
      const child = yield* run("node", [builtMain], {
        DISCORD_TOKEN: secretToken,
        DISCORD_API_URL: discord.apiUrl,
        AURORA_DATA_DIR: Path.join(blocker, "data")
      })
      expect(yield* bounded("exit", child.exit)).toBe(1)
      const lines = child.output().trim().split("\n")
      expect(lines).toHaveLength(1)
      expect(lines[0]).toMatch(/^aurora: Database unavailable at .*a-file\/data/)
    }))

  it.scopedLive("SIGTERM during a run lets it finish (within the grace period), then exits 0", () =>
    Effect.gen(function*() {
      const discord = yield* FakeDiscord.make()
      const letta = yield* makeFakeLetta({
        agents: { "agent-slow": "Slow Agent" },
        defaultBehaviour: Behaviours.run({ delayMs: 1500 })
      })
      const dataDir = yield* tempDir
      yield* Effect.scoped(
        Effect.gen(function*() {
          const settings = yield* SettingsStore
          yield* settings.enable(world.guildId, "agent-slow")
        }).pipe(Effect.provide(SettingsStore.Default.pipe(Layer.provide(Database.layer(dataDir)))))
      )
      const child = yield* run("node", [builtMain], {
        DISCORD_TOKEN: discord.token,
        DISCORD_API_URL: discord.apiUrl,
        LETTA_BASE_URL: letta.url,
        AURORA_DATA_DIR: dataDir,
        AURORA_SHUTDOWN_GRACE: "20 seconds"
      })
      yield* discord.waitForRequest((r) => r.method === "PUT" && r.path.endsWith("/commands"), Duration.seconds(30))
      yield* discord.sendMessage({ channelId: world.general, content: `<@${world.bot.id}> slow one`, mentions: [world.bot.id] })
      yield* bounded("the Letta request", letta.awaitMessages(1, "agent-slow"))
      child.process.kill("SIGTERM")
      expect(yield* bounded("exit after SIGTERM", child.exit)).toBe(0)
      const runs = yield* letta.runs
      expect(runs).toHaveLength(1)
      expect(runs[0]!.outcome).toBe("completed")
      expect(yield* letta.cancels).toHaveLength(0)
      expect(child.output()).toContain("run finished")
    }))

  it.scopedLive("an unreachable Letta URL is one clear warning line; the bot still runs", () =>
    Effect.gen(function*() {
      const discord = yield* FakeDiscord.make()
      const dataDir = yield* tempDir
      const child = yield* run("node", [builtMain], {
        DISCORD_TOKEN: discord.token,
        DISCORD_API_URL: discord.apiUrl,
        LETTA_BASE_URL: "http://127.0.0.1:9",
        AURORA_DATA_DIR: dataDir
      })
      yield* discord.waitForRequest((r) => r.method === "PUT" && r.path.endsWith("/commands"), Duration.seconds(30))
      const warned = (line: string) => line.includes("Letta at http://127.0.0.1:9 (env) is unreachable")
      yield* bounded(
        "the warning",
        Effect.suspend(() => (child.output().split("\n").some(warned) ? Effect.void : Effect.fail("not yet"))).pipe(
          Effect.retry(Schedule.spaced("50 millis"))
        )
      )
      const line = child.output().split("\n").find(warned)!
      expect(JSON.parse(line)).toMatchObject({ level: "warning" })
      expect(child.process.exitCode).toBe(null)
      child.process.kill("SIGTERM")
      expect(yield* bounded("exit after SIGTERM", child.exit)).toBe(0)
    }))
})
