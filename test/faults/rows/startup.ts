/**
 * Row 6: storage faults at start-up — a corrupt database file, a database held by another running
 * Aurora, a read-only data directory. Each must give one clear line, a non-zero exit, no stack
 * trace, and leave the database file's bytes as they were.
 */
import * as Fs from "node:fs"
import * as Path from "node:path"
import { expect } from "@effect/vitest"
import { Effect } from "effect"
import { databaseFileName } from "../../../src/services/storage/Database.js"
import { FakeDiscord } from "../../fakes/FakeDiscord.js"
import { makeFakeLetta } from "../../fakes/FakeLetta.js"
import { type AuroraProcess, bounded, type ExitStatus, root, spawnAurora } from "../AuroraProcess.js"
import { freePort, mention, metricsWhen, idle, seedSettings, sha256, startAurora, stop, tempDir, textGuild } from "../fixtures.js"
import { deliveredCount } from "../ledger.js"
import type { RecordRow } from "../report.js"

/** The user a read-only directory is read-only for: root writes anywhere, so root runs Aurora as nobody. */
const unprivileged = process.getuid?.() === 0 ? { uid: 65534, gid: 65534 } : undefined

/** Whether other users can reach the checkout (every directory above it searchable by others). */
const checkoutReachableByOthers = (): boolean => {
  let dir = root
  for (;;) {
    if ((Fs.statSync(dir).mode & 0o001) === 0) return false
    const parent = Path.dirname(dir)
    if (parent === dir) return true
    dir = parent
  }
}

interface StartupFailure {
  readonly exit: ExitStatus
  readonly lines: ReadonlyArray<string>
  readonly ms: number
}

/** Starts Aurora where it cannot start and waits for it to give up. */
const failedStart = (aurora: AuroraProcess, startedAt: number) =>
  Effect.map(bounded("Aurora to exit", aurora.exit, "60 seconds"), (exit): StartupFailure => ({
    exit,
    lines: aurora.output().split("\n").filter((line) => line.trim() !== ""),
    ms: Date.now() - startedAt
  }))

const summary = (failure: StartupFailure, hashKept: boolean) =>
  `exit ${failure.exit.code} after ${(failure.ms / 1000).toFixed(1)} s; ${failure.lines.length} line: ` +
  `"${failure.lines.join(" / ")}"; database bytes ${hashKept ? "unchanged (sha256)" : "CHANGED"}`

const expectOneClearLine = (failure: StartupFailure, pattern: RegExp) => {
  expect(failure.exit.code).not.toBe(0)
  expect(failure.exit.code).not.toBe(null)
  expect(failure.lines).toHaveLength(1)
  expect(failure.lines[0]).toMatch(pattern)
  expect(failure.lines.join("\n")).not.toMatch(/^\s+at /m)
}

const corruptPattern = /^aurora: Database unavailable at .*aurora\.db: .*(corrupt|integrity|not a SQLite database)/
const lockedPattern = /^aurora: Database unavailable at .*aurora\.db: the database is locked by another process/

export const startupFaults = (record: RecordRow) =>
  Effect.gen(function*() {
    const guild = textGuild(6, 1)
    const agentId = "agent-startup"
    const discord = yield* FakeDiscord.make({ guilds: [guild] })
    const letta = yield* makeFakeLetta({ agents: { [agentId]: "Startup Agent" } })
    const spawnIn = (dataDir: string, user?: { readonly uid: number; readonly gid: number }) =>
      spawnAurora({
        discordApiUrl: discord.apiUrl,
        discordToken: discord.token,
        lettaUrl: letta.url,
        dataDir,
        ...(user === undefined ? {} : { user })
      })

    // 1. A database whose second page was overwritten.
    const corruptDir = yield* tempDir
    yield* seedSettings(corruptDir, [{ guildId: guild.id, agentId }])
    const corruptFile = Path.join(corruptDir, databaseFileName)
    const bytes = Fs.readFileSync(corruptFile)
    bytes.fill(0xa5, 4096, Math.min(bytes.length, 8192))
    Fs.writeFileSync(corruptFile, bytes)
    const corruptHash = sha256(corruptFile)
    const corrupt = yield* failedStart(yield* spawnIn(corruptDir), Date.now())
    const corruptKept = sha256(corruptFile) === corruptHash
    const corruptRow = record({
      fault: "Start-up: corrupt database file (page 2 overwritten)",
      counts: null,
      notes: summary(corrupt, corruptKept)
    })

    // 2. A database held by another running Aurora.
    const sharedDir = yield* tempDir
    yield* seedSettings(sharedDir, [{ guildId: guild.id, agentId, settings: { ratelimit: 0.5 } }])
    const running = yield* startAurora(discord, { lettaUrl: letta.url, dataDir: sharedDir, httpPort: yield* freePort })
    const sharedFile = Path.join(sharedDir, databaseFileName)
    const identifiesBefore = discord.identifyCount()
    const sharedHash = sha256(sharedFile)
    const locked = yield* failedStart(yield* spawnIn(sharedDir), Date.now())
    const sharedKept = sha256(sharedFile) === sharedHash
    // The first Aurora is unharmed: it still answers.
    const probe = yield* mention(discord, guild.channels[0]!.id, "still there?")
    yield* bounded(
      "the first Aurora to answer",
      letta.awaitRuns((runs, requests) => deliveredCount(new Set([probe]), runs, requests) === 1)
    )
    yield* metricsWhen(running, idle, "the first Aurora to be idle")
    const runningExit = yield* stop(running)
    const lockedRow = record({
      fault: "Start-up: database locked by another running Aurora",
      counts: null,
      notes: `${summary(locked, sharedKept)}; the second process never reached the gateway ` +
        `(identifies ${discord.identifyCount() - identifiesBefore}); the first kept answering, then exited ${runningExit.code}`
    })

    // 3. A read-only data directory holding a database. As root, only another user can find a
    // directory read-only, and that user must be able to read the program.
    const readOnlyFault = "Start-up: read-only data directory (with its database)"
    const readOnly = unprivileged !== undefined && !checkoutReachableByOthers() ? null : yield* Effect.gen(function*() {
      const dir = yield* tempDir
      yield* seedSettings(dir, [{ guildId: guild.id, agentId }])
      const file = Path.join(dir, databaseFileName)
      const hash = sha256(file)
      // Also replaces mkdtemp's 0700, which would keep the unprivileged user out altogether.
      Fs.chmodSync(dir, 0o555)
      Fs.chmodSync(file, 0o444)
      const failure = yield* failedStart(yield* spawnIn(dir, unprivileged), Date.now()).pipe(
        Effect.ensuring(Effect.sync(() => Fs.chmodSync(dir, 0o755)))
      )
      return { failure, kept: sha256(file) === hash }
    })
    const readOnlyRow = readOnly === null
      ? record({
        fault: readOnlyFault,
        counts: null,
        skipped: true,
        notes:
          `not run: the suite runs as root and ${root} is not searchable by other users, so no unprivileged user can run the program`
      })
      : record({
        fault: readOnlyFault,
        counts: null,
        notes: `${summary(readOnly.failure, readOnly.kept)}` +
          `${unprivileged === undefined ? "" : "; run as uid 65534 (the suite runs as root, which writes anywhere)"}`
      })

    expectOneClearLine(corrupt, corruptPattern)
    expect(corruptKept).toBe(true)
    expectOneClearLine(locked, lockedPattern)
    expect(sharedKept).toBe(true)
    expect(discord.identifyCount()).toBe(identifiesBefore)
    expect(runningExit).toEqual({ code: 0, signal: null })
    if (readOnly !== null) {
      expectOneClearLine(readOnly.failure, /^aurora: Database unavailable at .*: .*(not writable|read-only|permission denied)/)
      expect(readOnly.kept).toBe(true)
    }
    return [corruptRow, lockedRow, readOnlyRow] as const
  })
