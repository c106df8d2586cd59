import { SqlClient } from "@effect/sql"
import { describe, expect, it } from "@effect/vitest"
import { Context, Effect, Exit, Layer, Scope } from "effect"
import { spawn } from "node:child_process"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { fileURLToPath } from "node:url"
import { Database, DatabaseUnavailable, lockedReason } from "../../../src/services/storage/Database.js"
import { migrationSteps, runMigrations } from "../../../src/services/storage/migrations.js"
import { configFrom } from "../../fakes/config.js"

/** A fresh directory under the system temp dir, removed (permissions restored) when the test ends. */
/** Every migration's id, in order: an upgraded or fresh database has applied them all. */
const everyMigrationId = Object.keys(migrationSteps).map((id) => parseInt(id, 10))

const tempDir = Effect.acquireRelease(
  Effect.sync(() => fs.mkdtempSync(path.join(os.tmpdir(), "aurora-db-"))),
  (dir) =>
    Effect.sync(() => {
      fs.chmodSync(dir, 0o700)
      fs.rmSync(dir, { recursive: true, force: true })
    })
)

const isRoot = process.getuid?.() === 0

/** Builds the database layer and returns how the build ended, closing whatever it opened. */
const open = (dataDir: string) => Effect.exit(Effect.scoped(Layer.build(Database.layer(dataDir))))

const failureOf = (exit: Exit.Exit<unknown, DatabaseUnavailable>): DatabaseUnavailable => {
  if (Exit.isSuccess(exit)) throw new Error("expected the database layer to fail")
  const failure = exit.cause._tag === "Fail" ? exit.cause.error : undefined
  if (failure === undefined) throw new Error(`expected a DatabaseUnavailable failure, got ${String(exit.cause)}`)
  return failure
}

/** What a fully migrated database holds (sqlite_sequence backs pending_events' AUTOINCREMENT). */
const allTables = [
  "approvals",
  "conversations",
  "dead_letters",
  "effect_sql_migrations",
  "global_settings",
  "guild_settings",
  "open_stops",
  "pending_events",
  "runs",
  "sqlite_sequence",
  "tool_calls"
]

const tables = Effect.flatMap(
  SqlClient.SqlClient,
  (sql) => sql<{ readonly name: string }>`SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name`
).pipe(Effect.map((rows) => rows.map((row) => row.name)))

/**
 * Another Aurora process on `dataDir`: a node child (TypeScript through tsx) that builds the real
 * database layer and keeps it open. `locked` completes once its layer is up; the child is killed
 * when the scope closes, if the test has not killed it already.
 */
const otherProcess = (dataDir: string) =>
  Effect.gen(function*() {
    const databaseModule = new URL("../../../src/services/storage/Database.ts", import.meta.url).href
    const script = [
      `import { Effect, Layer, Scope } from "effect"`,
      `import { Database } from ${JSON.stringify(databaseModule)}`,
      `const scope = Effect.runSync(Scope.make())`,
      `await Effect.runPromise(Layer.buildWithScope(Database.layer(process.env.AURORA_LOCK_DIR), scope))`,
      `process.stdout.write("locked\\n")`,
      `setInterval(() => {}, 60_000)`
    ].join("\n")
    const child = yield* Effect.acquireRelease(
      Effect.sync(() =>
        spawn(process.execPath, ["--import", "tsx", "--input-type=module", "-e", script], {
          cwd: path.dirname(fileURLToPath(import.meta.url)),
          env: { ...process.env, AURORA_LOCK_DIR: dataDir },
          stdio: ["ignore", "pipe", "pipe"]
        })
      ),
      (child) => Effect.sync(() => child.exitCode === null && child.signalCode === null && child.kill("SIGKILL"))
    )
    let stderr = ""
    child.stderr.on("data", (chunk: Buffer) => {
      stderr += chunk.toString()
    })
    const exited = Effect.async<string>((resume) => {
      if (child.exitCode !== null || child.signalCode !== null) {
        return resume(Effect.succeed(String(child.signalCode ?? child.exitCode)))
      }
      child.once("exit", (code, signal) => resume(Effect.succeed(String(signal ?? code))))
    })
    const locked = Effect.async<void, Error>((resume) => {
      let stdout = ""
      child.stdout.on("data", (chunk: Buffer) => {
        stdout += chunk.toString()
        if (stdout.includes("locked")) resume(Effect.void)
      })
      child.once("exit", (code) => resume(Effect.fail(new Error(`the child exited (${code}) before locking: ${stderr}`))))
    })
    return { child, locked, exited }
  })

/** The files this process has open (Linux), to check that a failed start leaves none behind. */
const openFiles = (): ReadonlyArray<string> | undefined => {
  if (!fs.existsSync("/proc/self/fd")) return undefined
  return fs.readdirSync("/proc/self/fd").flatMap((fd) => {
    try {
      return [fs.readlinkSync(`/proc/self/fd/${fd}`)]
    } catch {
      return []
    }
  })
}

describe("Database", () => {
  it.scoped("migrates an empty directory: tables, WAL, synchronous, lock mode, busy timeout, ping", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir
      const dataDir = path.join(dir, "nested", "data")
      const result = yield* Effect.gen(function*() {
        const sql = yield* SqlClient.SqlClient
        const db = yield* Database
        const journal = yield* sql<{ readonly journal_mode: string }>`PRAGMA journal_mode`
        const busy = yield* sql<{ readonly timeout: number }>`PRAGMA busy_timeout`
        const synchronous = yield* sql<{ readonly synchronous: number }>`PRAGMA synchronous`
        const locking = yield* sql<{ readonly locking_mode: string }>`PRAGMA locking_mode`
        const applied = yield* sql<{ readonly migration_id: number }>`SELECT migration_id FROM effect_sql_migrations`
        return {
          tables: yield* tables,
          journal: journal[0]?.journal_mode,
          busy: busy[0]?.timeout,
          synchronous: synchronous[0]?.synchronous,
          locking: locking[0]?.locking_mode,
          applied: applied.map((row) => row.migration_id),
          file: db.file,
          ping: yield* db.ping
        }
      }).pipe(Effect.provide(Database.layer(dataDir)))
      expect(result.tables).toEqual(allTables)
      expect(result.journal).toBe("wal")
      expect(result.busy).toBe(5000)
      expect(result.synchronous).toBe(1) // NORMAL
      expect(result.locking).toBe("exclusive")
      expect(result.applied).toEqual(everyMigrationId)
      expect(result.ping).toBe(true)
      expect(result.file).toBe(path.join(dataDir, "aurora.db"))
      expect(fs.statSync(result.file).isFile()).toBe(true)
    }))

  it.scoped("running the migrations again is a no-op and keeps the data", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir
      yield* Effect.gen(function*() {
        const sql = yield* SqlClient.SqlClient
        yield* sql`INSERT INTO global_settings (key, value, updated_at) VALUES ('dmAgentId', 'agent-1', 0)`
      }).pipe(Effect.provide(Database.layer(dir)))
      const result = yield* Effect.gen(function*() {
        const sql = yield* SqlClient.SqlClient
        const again = yield* runMigrations
        const applied = yield* sql<{ readonly n: number }>`SELECT count(*) AS n FROM effect_sql_migrations`
        const kept = yield* sql<{ readonly value: string }>`SELECT value FROM global_settings`
        return { again, applied: applied[0]?.n, kept: kept.map((row) => row.value), tables: yield* tables }
      }).pipe(Effect.provide(Database.layer(dir)))
      expect(result.again).toEqual([])
      expect(result.applied).toBe(everyMigrationId.length)
      expect(result.kept).toEqual(["agent-1"])
      expect(result.tables).toEqual(allTables)
    }))

  it.scoped("a corrupt database file is refused with one clear line and left byte for byte", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir
      const file = path.join(dir, "aurora.db")
      const garbage = Buffer.from(Array.from({ length: 8192 }, (_, i) => (i * 7919 + 13) % 256))
      fs.writeFileSync(file, garbage)
      const before = openFiles()
      const error = failureOf(yield* open(dir))
      expect(error).toBeInstanceOf(DatabaseUnavailable)
      expect(error.path).toBe(file)
      expect(error.message).toContain(file)
      expect(error.message).toContain("not a SQLite database")
      expect(error.message).not.toContain("\n")
      expect(Buffer.compare(fs.readFileSync(file), garbage)).toBe(0)
      // The failed start closed the file again.
      const after = openFiles()
      if (before !== undefined && after !== undefined) {
        expect(after.filter((f) => f.startsWith(file))).toEqual([])
      }
    }))

  it.scoped("a data directory that cannot be created (a path under a regular file) is a clear error", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir
      const blocker = path.join(dir, "not-a-dir")
      fs.writeFileSync(blocker, "a regular file")
      const dataDir = path.join(blocker, "data")
      const error = failureOf(yield* open(dataDir))
      expect(error.path).toBe(dataDir)
      expect(error.message).toBe(
        `Database unavailable at ${dataDir}: cannot create the data directory: a part of the path is a regular file, not a directory`
      )
      expect(fs.readFileSync(blocker, "utf8")).toBe("a regular file")
    }))

  it.scoped("a data directory that is a regular file is a clear error", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir
      const dataDir = path.join(dir, "data")
      fs.writeFileSync(dataDir, "")
      const error = failureOf(yield* open(dataDir))
      expect(error.path).toBe(dataDir)
      expect(error.message).toContain("not a directory")
    }))

  it.scoped("a database path that is a directory is a clear error", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir
      fs.mkdirSync(path.join(dir, "aurora.db"))
      const error = failureOf(yield* open(dir))
      expect(error.path).toBe(path.join(dir, "aurora.db"))
      expect(error.message).toContain("not a file")
    }))

  it.scoped("a read-only data directory is refused (root is not stopped by permissions)", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir
      const dataDir = path.join(dir, "data")
      fs.mkdirSync(dataDir)
      fs.chmodSync(dataDir, 0o555)
      const exit = yield* open(dataDir)
      if (isRoot) {
        // chmod does not bind root: the database opens and works, which is all that can be asserted.
        expect(Exit.isSuccess(exit)).toBe(true)
      } else {
        const error = failureOf(exit)
        expect(error.path).toBe(dataDir)
        expect(error.message).toBe(`Database unavailable at ${dataDir}: the data directory is not writable: permission denied`)
        expect(fs.existsSync(path.join(dataDir, "aurora.db"))).toBe(false)
      }
    }))

  it.scoped("a read-only database file is refused and left as it was (root is not stopped)", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir
      yield* open(dir)
      const file = path.join(dir, "aurora.db")
      fs.chmodSync(file, 0o444)
      const before = fs.readFileSync(file)
      const exit = yield* open(dir)
      if (isRoot) {
        expect(Exit.isSuccess(exit)).toBe(true)
      } else {
        const error = failureOf(exit)
        expect(error.path).toBe(file)
        expect(error.message).toBe(
          `Database unavailable at ${file}: the database file is not readable and writable: permission denied`
        )
        expect(Buffer.compare(fs.readFileSync(file), before)).toBe(0)
      }
    }))

  it.scoped("ping answers false once the database is closed", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir
      const scope = yield* Scope.make()
      const context = yield* Layer.buildWithScope(Database.layer(dir), scope)
      const db = Context.get(context, Database)
      expect(yield* db.ping).toBe(true)
      yield* Scope.close(scope, Exit.void)
      expect(yield* db.ping).toBe(false)
    }))

  it.scoped("a second open of the same directory fails at once with the locked line; it opens once the first closes", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir
      const file = path.join(dir, "aurora.db")
      const first = yield* Scope.make()
      yield* Layer.buildWithScope(Database.layer(dir), first)
      const started = performance.now()
      const error = failureOf(yield* open(dir))
      const elapsed = performance.now() - started
      expect(error.path).toBe(file)
      expect(error.message).toBe(`Database unavailable at ${file}: ${lockedReason}`)
      expect(lockedReason).toContain("is another Aurora running on this data directory?")
      // A sanity bound only: the lock step waits 1 s, not the 5 s busy timeout.
      expect(elapsed).toBeLessThan(3_000)
      // The failed attempt closed its own connection without releasing the first one's lock.
      expect(failureOf(yield* open(dir)).reason).toBe(lockedReason)
      yield* Scope.close(first, Exit.void)
      const again = yield* Effect.map(Database, (db) => db.ping).pipe(Effect.flatten, Effect.provide(Database.layer(dir)))
      expect(again).toBe(true)
    }))

  it.live("a lock held by a process that is killed (SIGKILL) is released by the OS", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir
      const other = yield* otherProcess(dir)
      yield* other.locked.pipe(
        Effect.timeoutFail({ duration: "60 seconds", onTimeout: () => new Error("the child never locked") })
      )
      expect(failureOf(yield* open(dir)).reason).toBe(lockedReason)
      other.child.kill("SIGKILL")
      const signal = yield* other.exited.pipe(
        Effect.timeoutFail({ duration: "30 seconds", onTimeout: () => new Error("the child did not die") })
      )
      expect(signal).toBe("SIGKILL")
      const result = yield* Effect.gen(function*() {
        const db = yield* Database
        return { ping: yield* db.ping, tables: yield* tables }
      }).pipe(Effect.provide(Database.layer(dir)))
      expect(result).toEqual({ ping: true, tables: allTables })
    }).pipe(Effect.scoped), 90_000)

  it.scoped("Database.Default puts aurora.db in AURORA_DATA_DIR", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir
      const dataDir = path.join(dir, "from-env")
      const file = yield* Effect.map(Database, (db) => db.file).pipe(
        Effect.provide(Database.Default.pipe(Layer.provide(configFrom({ AURORA_DATA_DIR: dataDir }))))
      )
      expect(file).toBe(path.join(dataDir, "aurora.db"))
      expect(fs.existsSync(file)).toBe(true)
    }))
})
