/**
 * The embedded SQLite database ($AURORA_DATA_DIR/aurora.db) behind @effect/sql's SqlClient, so
 * that storage can later move to another SqlClient (Postgres for a cluster) unchanged.
 * Building the layer prepares the directory, opens the file, locks it, checks it, enables WAL and
 * runs the migrations; any fault there is one DatabaseUnavailable naming the path and the problem.
 *
 * One process owns the data directory: the connection holds SQLite's exclusive lock on the file
 * from start-up until the layer's scope closes (see `openClient`), so a second Aurora started on
 * the same directory stops at once with "locked by another process" instead of interleaving its
 * queue with the first one's.
 */
import * as Reactivity from "@effect/experimental/Reactivity"
import { SqlClient } from "@effect/sql"
import type { SqlError } from "@effect/sql/SqlError"
import { SqliteClient } from "@effect/sql-sqlite-node"
import { Context, Data, Effect, Layer } from "effect"
import { constants } from "node:fs"
import * as fs from "node:fs/promises"
import * as path from "node:path"
import { AuroraConfig } from "../../domain/Config.js"
import { StorageError } from "../../domain/Errors.js"
import { requiredTables, runMigrations } from "./migrations.js"

export class DatabaseUnavailable extends Data.TaggedError("DatabaseUnavailable")<{
  /** The directory or file at fault. */
  readonly path: string
  readonly reason: string
}> {
  override get message() {
    return `Database unavailable at ${this.path}: ${this.reason}`
  }
}

export const databaseFileName = "aurora.db"

/** How long a statement waits for a lock held by another connection before failing. */
const busyTimeoutMs = 5_000

/**
 * How long start-up waits for the file lock. Short: the only holder is another Aurora on the
 * same directory, which does not let go while it runs, and an operator should learn that at once.
 */
const lockTimeoutMs = 1_000

export const lockedReason = "the database is locked by another process (is another Aurora running on this data directory?)"

// --- fault descriptions -----------------------------------------------------

interface CodedError {
  readonly code?: unknown
  readonly message?: unknown
  readonly cause?: unknown
}

/** The innermost error carrying a code (SqlError and MigrationError wrap the driver's error). */
const rootError = (error: unknown): CodedError | undefined => {
  let current: unknown = error
  let fallback: CodedError | undefined
  for (let depth = 0; depth < 5 && typeof current === "object" && current !== null; depth++) {
    const coded: CodedError = current
    fallback ??= coded
    if (typeof coded.code === "string") return coded
    current = coded.cause
  }
  return fallback
}

const oneLine = (text: string) => text.replace(/\s+/g, " ").trim()

/** An operator-facing reason for a file-system or SQLite failure, on one line. */
export const describeFault = (error: unknown): string => {
  const root = rootError(error)
  const code = typeof root?.code === "string" ? root.code : ""
  const detail = oneLine(typeof root?.message === "string" ? root.message : String(error))
  if (code === "SQLITE_NOTADB") {
    return "the file is not a SQLite database (corrupt, or some other file); it was left untouched: move it away or restore a backup"
  }
  if (code.startsWith("SQLITE_CORRUPT")) {
    return `the database is corrupt (${detail}); it was left untouched: move it away or restore a backup`
  }
  if (code.startsWith("SQLITE_READONLY")) return "the database is read-only"
  if (code.startsWith("SQLITE_BUSY") || code.startsWith("SQLITE_LOCKED")) return lockedReason
  if (code === "SQLITE_FULL" || code === "ENOSPC") return "no space left on the device"
  if (code === "EACCES" || code === "EPERM" || code.startsWith("SQLITE_PERM")) return "permission denied"
  if (code === "EROFS") return "the file system is read-only"
  if (code === "ENOTDIR") return "a part of the path is a regular file, not a directory"
  if (code === "EEXIST") return "a file that is not a directory is in the way"
  if (code.startsWith("SQLITE_CANTOPEN")) return "the file cannot be opened"
  return detail
}

/** A failed statement as a StorageError: the store's operation, and SQLite's own words on one line. */
export const storageErrorOf = (operation: string) => (error: SqlError): StorageError => {
  const cause: unknown = error.cause
  const detail = cause instanceof Error ? oneLine(cause.message) : ""
  return new StorageError({ operation, reason: detail === "" ? error.message : `${error.message}: ${detail}` })
}

// --- start-up steps ---------------------------------------------------------

/** Creates the directory if missing and checks that it (and an existing file) can be written. */
const prepareFiles = (dataDir: string, file: string) =>
  Effect.gen(function*() {
    const attempt = <A>(at: string, what: string, run: () => Promise<A>) =>
      Effect.tryPromise({
        try: run,
        catch: (error) => new DatabaseUnavailable({ path: at, reason: `${what}: ${describeFault(error)}` })
      })
    yield* attempt(dataDir, "cannot create the data directory", () => fs.mkdir(dataDir, { recursive: true }))
    const dirStat = yield* attempt(dataDir, "cannot read the data directory", () => fs.stat(dataDir))
    if (!dirStat.isDirectory()) {
      return yield* new DatabaseUnavailable({ path: dataDir, reason: "the data directory is not a directory" })
    }
    // SQLite writes its -wal and -shm files beside the database, so the directory must be writable.
    yield* attempt(dataDir, "the data directory is not writable", () => fs.access(dataDir, constants.W_OK))
    const fileStat = yield* Effect.promise(() => fs.stat(file).catch(() => undefined))
    if (fileStat === undefined) return
    if (!fileStat.isFile()) {
      return yield* new DatabaseUnavailable({ path: file, reason: "the database path exists but is not a file" })
    }
    yield* attempt(file, "the database file is not readable and writable", () => fs.access(file, constants.R_OK | constants.W_OK))
  })

/**
 * Opens the file, locks it and checks it before anything writes to it: WAL is switched on by us,
 * after the integrity check, so a damaged file is refused without its header being touched.
 *
 * The lock is SQLite's own rather than a lock file: in `locking_mode = EXCLUSIVE` the connection
 * keeps every file lock it takes until it closes, and the operating system drops the locks of a
 * process that dies, even by SIGKILL, so a crash never leaves a stale lock for an operator to
 * delete (a lock file would, or would need a pid check that a reused pid defeats). The integrity
 * check is the first read: it takes a lock without writing anything, and fails with SQLITE_BUSY
 * after `lockTimeoutMs` when another process holds the file. `BEGIN EXCLUSIVE` then takes the
 * write lock, held from then on. Entering WAL in exclusive mode keeps the WAL index in the
 * process's memory instead of a -shm file, which suits a single owner. The price: other tools
 * (the sqlite3 CLI) cannot read the file while Aurora runs; inspect or copy it with Aurora stopped.
 */
const openClient = (file: string) =>
  Effect.gen(function*() {
    const fault = (error: unknown) => new DatabaseUnavailable({ path: file, reason: describeFault(error) })
    // The driver throws (a defect) when it cannot open the file; statements fail with SqlError.
    const client = yield* SqliteClient.make({ filename: file, disableWAL: true }).pipe(
      Effect.catchAllDefect((defect) => Effect.fail(fault(defect)))
    )
    const prepare = Effect.gen(function*() {
      // Neither pragma touches the file; the lock is taken by the first read, just below.
      yield* client.unsafe(`PRAGMA busy_timeout = ${lockTimeoutMs}`)
      yield* client`PRAGMA locking_mode = EXCLUSIVE`
      const check = yield* client<{ readonly quick_check: string }>`PRAGMA quick_check`
      const verdict = check.map((row) => row.quick_check).join("; ")
      if (verdict !== "ok") {
        return yield* new DatabaseUnavailable({
          path: file,
          reason: `the integrity check failed (${oneLine(verdict).slice(0, 200)}); the file was left untouched`
        })
      }
      const mode = yield* client<{ readonly journal_mode: string }>`PRAGMA journal_mode = WAL`
      if (mode[0]?.journal_mode !== "wal") {
        yield* Effect.logWarning("SQLite WAL mode is unavailable on this file system; using the rollback journal")
      }
      yield* client`BEGIN EXCLUSIVE`
      yield* client`COMMIT`
      // Back to the usual patience for any later wait (the lock leaves little to wait for).
      yield* client.unsafe(`PRAGMA busy_timeout = ${busyTimeoutMs}`)
      // With WAL, NORMAL syncs at checkpoints, not at each commit: a commit is in the WAL file
      // (the OS's cache of it) before its statement returns, so it survives the process crashing
      // or being killed, though not a power loss or kernel crash, which may undo the last commits.
      // That keeps a commit per queued event cheap; FULL would add an fsync to each.
      yield* client`PRAGMA synchronous = NORMAL`
      yield* client`PRAGMA foreign_keys = ON`
      yield* runMigrations.pipe(Effect.provideService(SqlClient.SqlClient, client))
      const tables = yield* client<{ readonly name: string }>`SELECT name FROM sqlite_master WHERE type = 'table'`
      const missing = requiredTables.filter((table) => !tables.some((row) => row.name === table))
      // The Migrator reads any failure to record a migration as "another process is migrating"
      // and carries on, so a database that could not be written shows up here.
      if (missing.length > 0) {
        return yield* new DatabaseUnavailable({
          path: file,
          reason: `the schema is incomplete after migrating (missing ${missing.join(", ")})`
        })
      }
    })
    yield* prepare.pipe(
      Effect.catchAllDefect((defect) => Effect.fail(fault(defect))),
      Effect.catchIf((error) => error._tag !== "DatabaseUnavailable", (error) => Effect.fail(fault(error)))
    )
    return client
  })

// --- service ----------------------------------------------------------------

export interface DatabaseShape {
  /** The database file in use. */
  readonly file: string
  /** True when the database answers a query; for /healthz. */
  readonly ping: Effect.Effect<boolean>
}

export class Database extends Context.Tag("aurora/Database")<Database, DatabaseShape>() {
  /**
   * The database at `<dataDir>/aurora.db`, migrated and checked, with the SqlClient on it.
   * Closing the layer's scope closes the file. Tests point it at a temporary directory.
   */
  static layer(dataDir: string): Layer.Layer<Database | SqlClient.SqlClient | SqliteClient.SqliteClient, DatabaseUnavailable> {
    const dir = path.resolve(dataDir)
    const file = path.join(dir, databaseFileName)
    return Layer.scopedContext(
      Effect.gen(function*() {
        yield* prepareFiles(dir, file)
        const client = yield* openClient(file)
        const ping = client`SELECT 1`.pipe(
          Effect.as(true),
          Effect.catchAllCause(() => Effect.succeed(false))
        )
        yield* Effect.logDebug("database ready").pipe(Effect.annotateLogs("file", file))
        return Context.make(Database, { file, ping }).pipe(
          Context.add(SqliteClient.SqliteClient, client),
          Context.add(SqlClient.SqlClient, client)
        )
      })
    ).pipe(Layer.provide(Reactivity.layer))
  }

  /** The live database: `$AURORA_DATA_DIR/aurora.db`. */
  static readonly Default: Layer.Layer<
    Database | SqlClient.SqlClient | SqliteClient.SqliteClient,
    DatabaseUnavailable,
    AuroraConfig
  > = Layer.unwrapEffect(Effect.map(AuroraConfig, (config) => Database.layer(config.dataDir)))
}
