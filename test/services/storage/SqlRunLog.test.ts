/**
 * The runs log: the SQL store against the memory store over seeded random operations (with
 * restarts in between: a new session on the same database file), and the rules both share
 * (pruning at 100, a record replacing its message's, ties by recording order, bounds), then the
 * SQL store's own failures.
 */
import { SqlClient } from "@effect/sql"
import { describe, expect, it } from "@effect/vitest"
import { Effect, HashMap, Layer, Logger, LogLevel, type Scope } from "effect"
import { StorageError } from "../../../src/domain/Errors.js"
import { Partition } from "../../../src/domain/Event.js"
import {
  maxRecordedToolCalls,
  maxRunDetailLength,
  maxRunsPerPartition,
  maxToolNameLength,
  type RunOutcome,
  type RunRecord
} from "../../../src/domain/RunRecord.js"
import { Database } from "../../../src/services/storage/Database.js"
import { makeSqlEventJournal } from "../../../src/services/storage/SqlEventJournal.js"
import { makeSqlRunLog } from "../../../src/services/storage/SqlRunLog.js"
import { makeMemoryRunLog, RunLog, type RunLogService } from "../../../src/services/queue/RunLog.js"
import { seededInts } from "../../fakes/seededInts.js"
import { makeTempDir } from "../../fakes/tempDir.js"

const tempDir = makeTempDir("runs")

/** One "run of the bot" on the database in `dir`, with the SQL runs log. */
const session = <A, E>(dir: string, use: Effect.Effect<A, E, RunLog | SqlClient.SqlClient>) =>
  use.pipe(Effect.provide(RunLog.layerSql.pipe(Layer.provideMerge(Database.layer(dir)))))

/** The database alone, for stores built by the test (a small bound); they close before the database. */
const database = <A, E>(dir: string, use: Effect.Effect<A, E, SqlClient.SqlClient | Scope.Scope>) =>
  use.pipe(Effect.scoped, Effect.provide(Database.layer(dir)))

const g1 = Partition.guild("g1")
const g2 = Partition.guild("g2")

const run = (messageId: string, finishedAt: number, overrides: Partial<RunRecord> = {}): RunRecord => ({
  messageId,
  guildId: "g1",
  channelId: "c1",
  conversationId: null,
  runId: null,
  outcome: "answered",
  toolCalls: [],
  durationMs: 1_200,
  queuedMs: 30,
  finishedAt,
  detail: null,
  ...overrides
})

const ids = (runs: ReadonlyArray<RunRecord>) => runs.map((r) => r.messageId)

/** Both stores: the SQL one through a fresh session on `dir`, the memory one as it is. */
const both = <A>(dir: string, scenario: (log: RunLogService) => Effect.Effect<A, StorageError>) =>
  Effect.gen(function*() {
    const memory = yield* Effect.flatMap(makeMemoryRunLog(), scenario)
    const sql = yield* session(dir, Effect.flatMap(RunLog, scenario))
    return { memory, sql }
  })

describe("RunLog (memory and SQL alike)", () => {
  it.scoped("the SQL store behaves as the memory store over a mixed sequence, restarts included", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir
      const bound = 5 // small, so that records prune often
      const next = seededInts(15_2024) // reproducible
      const outcomes: ReadonlyArray<RunOutcome> = [
        "answered",
        "silent-posted",
        "silent",
        "failed",
        "dead-lettered",
        "interrupted"
      ]
      const guilds = ["g1", "g2", null] as const
      type Step = { readonly kind: "restart" } | {
        readonly kind: "op"
        readonly run: (log: RunLogService) => Effect.Effect<unknown, StorageError>
      }
      const steps: Array<Step> = []
      for (let i = 0; i < 400; i++) {
        const guildId = guilds[next(3)] ?? null
        const kind = next(20)
        if (kind === 0) {
          steps.push({ kind: "restart" })
        } else if (kind < 4) {
          const limit = next(8) - 1 // -1 too: never a negative count
          steps.push({ kind: "op", run: (log) => log.recent(guildId === null ? Partition.dm : Partition.guild(guildId), limit) })
        } else {
          const record = run(`m${next(12)}`, next(15) * 100, { // many ties, so the recording order matters
            guildId,
            channelId: `c${next(3)}`,
            outcome: outcomes[next(outcomes.length)] ?? "answered",
            runId: next(3) === 0 ? null : `run-${i}`,
            conversationId: next(2) === 0 ? null : `conv-${next(4)}`,
            toolCalls: Array.from({ length: next(4) }, (_, k) => `tool_${k}`),
            durationMs: next(4) === 0 ? null : next(10_000),
            queuedMs: next(4) === 0 ? null : next(5_000),
            detail: next(2) === 0 ? null : `detail ${i}`
          })
          steps.push({ kind: "op", run: (log) => log.record(record) })
        }
      }
      const everything = (log: RunLogService) => Effect.forEach([g1, g2, Partition.dm], (p) => log.recent(p, 100))
      const play = <R>(fresh: Effect.Effect<RunLogService, never, R>) =>
        Effect.gen(function*() {
          let log = yield* fresh
          const answers: Array<unknown> = []
          for (const step of steps) {
            if (step.kind === "restart") log = yield* fresh
            else answers.push(yield* step.run(log))
          }
          return { answers, final: yield* everything(log) }
        })
      // The memory store's "restart" keeps its state: it is the model of what the table holds.
      const memory = yield* makeMemoryRunLog(bound)
      const expected = yield* play(Effect.succeed(memory))
      // Restarts on the SQL side are whole sessions: the database file is closed and reopened.
      let segment: Array<Step> = []
      const segments: Array<Array<Step>> = []
      for (const step of steps) {
        if (step.kind === "restart") {
          segments.push(segment)
          segment = []
        } else {
          segment.push(step)
        }
      }
      segments.push(segment)
      expect(segments.length).toBeGreaterThan(5)
      const answers: Array<unknown> = []
      for (const part of segments) {
        yield* database(
          dir,
          Effect.gen(function*() {
            const log = yield* makeSqlRunLog(bound)
            for (const step of part) if (step.kind === "op") answers.push(yield* step.run(log))
          })
        )
      }
      const final = yield* database(dir, Effect.flatMap(makeSqlRunLog(bound), everything))
      // The sequence exercises the rules: full partitions, replaced messages, empty listings.
      expect(expected.final.every((records) => records.length === bound)).toBe(true)
      expect(expected.answers.filter((a) => Array.isArray(a) && a.length === 0).length).toBeGreaterThan(5)
      expect({ answers, final }).toEqual(expected)
    }))

  it.scoped(`a partition keeps its newest ${maxRunsPerPartition}; other partitions are untouched`, () =>
    Effect.gen(function*() {
      const dir = yield* tempDir
      const result = yield* both(dir, (log) =>
        Effect.gen(function*() {
          yield* log.record(run("x1", 1, { guildId: "g2" }))
          yield* log.record(run("dm1", 0, { guildId: null, channelId: "dm-channel" }))
          yield* Effect.forEach(Array.from({ length: maxRunsPerPartition }, (_, i) => run(`m${i}`, 1_000 + i)), log.record, {
            discard: true
          })
          const full = yield* log.recent(g1, 1_000)
          yield* log.record(run("newest", 5_000))
          const afterNewest = yield* log.recent(g1, 1_000)
          // Older than every kept record: it is itself the one pruned.
          yield* log.record(run("too-old", 0))
          return {
            full: full.length,
            afterNewest: ids(afterNewest),
            final: ids(yield* log.recent(g1, 1_000)),
            g2: yield* log.recent(g2, 10),
            dm: yield* log.recent(Partition.dm, 10)
          }
        }))
      for (const r of [result.memory, result.sql]) {
        expect(r.full).toBe(maxRunsPerPartition)
        expect(r.afterNewest).toHaveLength(maxRunsPerPartition)
        expect(r.afterNewest[0]).toBe("newest")
        expect(r.afterNewest.at(-1)).toBe("m1")
        expect(r.afterNewest).not.toContain("m0")
        expect(r.final).toEqual(r.afterNewest)
        expect(ids(r.g2)).toEqual(["x1"])
        expect(r.dm).toEqual([run("dm1", 0, { guildId: null, channelId: "dm-channel" })])
      }
      expect(result.sql).toEqual(result.memory)
      const rows = yield* session(
        dir,
        Effect.flatMap(SqlClient.SqlClient, (sql) =>
          sql<{ readonly n: number }>`SELECT count(*) AS n FROM runs WHERE partition = 'guild:g1'`)
      )
      expect(rows[0]?.n).toBe(maxRunsPerPartition)
    }))

  it.scoped("records made at once (one commit group) are kept in the order made, the bound holding after each", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir
      const bound = 5
      const records = Array.from({ length: 12 }, (_, i) => run(`c${i}`, 100, { guildId: i % 3 === 0 ? "g2" : "g1" }))
      const [together, oneByOne] = yield* database(
        dir,
        Effect.gen(function*() {
          const log = yield* makeSqlRunLog(bound)
          // Forked together: the writes reach the writer in one turn of the event loop.
          yield* Effect.forEach(records, log.record, { concurrency: "unbounded", discard: true })
          const memory = yield* makeMemoryRunLog(bound)
          yield* Effect.forEach(records, memory.record, { discard: true })
          return [
            [yield* log.recent(g1, 100), yield* log.recent(g2, 100)],
            [yield* memory.recent(g1, 100), yield* memory.recent(g2, 100)]
          ] as const
        })
      )
      expect(together).toEqual(oneByOne)
      expect(ids(together[0])).toEqual(["c11", "c10", "c8", "c7", "c5"])
      const rows = yield* database(
        dir,
        Effect.flatMap(SqlClient.SqlClient, (sql) => sql<{ readonly n: number }>`SELECT count(*) AS n FROM runs`)
      )
      expect(rows[0]?.n).toBe(bound + 4)
    }))

  it.scoped("a record is one transaction with a writer of its own: a failed prune keeps no row and fails no journal write", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir
      const [failure, kept, pending] = yield* database(
        dir,
        Effect.gen(function*() {
          const sql = yield* SqlClient.SqlClient
          const log = yield* makeSqlRunLog(1)
          const journal = yield* makeSqlEventJournal()
          yield* log.record(run("a", 1))
          // Recording "b" prunes "a" (a bound of 1): the prune, the record's second statement, fails.
          yield* sql`CREATE TRIGGER keep BEFORE DELETE ON runs
            WHEN OLD.message_id = 'a' BEGIN SELECT RAISE(ABORT, 'kept row'); END`
          const appended = (messageId: string) =>
            journal.append({
              messageId,
              guildId: "g1",
              channelId: "c1",
              authorId: "u1",
              agentId: "agent-1",
              trigger: "mention",
              prompt: "p",
              enqueuedAt: 1,
              attempts: 0
            })
          // Requested together: had the two stores one writer, they would share the failed commit.
          const [failure] = yield* Effect.all([Effect.flip(log.record(run("b", 2))), appended("m1"), appended("m2")], {
            concurrency: "unbounded"
          })
          const loaded = yield* journal.load
          return [failure, yield* log.recent(g1, 10), loaded.map((entry) => entry.event.messageId)] as const
        })
      )
      expect(failure).toBeInstanceOf(StorageError)
      expect(failure.operation).toBe("RunLog.record")
      expect(failure.reason).toContain("kept row")
      // The record's row went with its prune.
      expect(ids(kept)).toEqual(["a"])
      expect(pending).toEqual(["m1", "m2"])
    }))

  it.scoped("a later outcome of a message replaces its record and counts as the newest; ties go to the later record", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir
      const retried = run("a", 100, {
        outcome: "dead-lettered",
        runId: "run-2",
        toolCalls: ["discord_read_messages"],
        detail: "RunFailed: max_steps"
      })
      const result = yield* both(dir, (log) =>
        Effect.gen(function*() {
          yield* log.record(run("a", 100, { outcome: "failed", runId: "run-1", detail: "LettaServerError: 502; kept" }))
          yield* log.record(run("b", 100))
          yield* log.record(run("c", 50))
          const before = yield* log.recent(g1, 10)
          yield* log.record(retried)
          return { before: ids(before), after: yield* log.recent(g1, 10), two: ids(yield* log.recent(g1, 2)) }
        }))
      for (const r of [result.memory, result.sql]) {
        expect(r.before).toEqual(["b", "a", "c"])
        expect(ids(r.after)).toEqual(["a", "b", "c"])
        expect(r.after[0]).toEqual(retried)
        expect(r.two).toEqual(["a", "b"])
      }
    }))

  it.scoped("records are bounded: the first 20 tool names, each name and the detail cut short, on one line", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir
      const tools = Array.from({ length: 30 }, (_, i) => `tool_${i}`)
      const longName = `x${"y".repeat(500)}`
      const result = yield* both(dir, (log) =>
        Effect.gen(function*() {
          yield* log.record(run("a", 1, { toolCalls: [longName, ...tools], detail: `line one\nline two ${"z".repeat(2_000)}` }))
          return yield* log.recent(g1, 1)
        }))
      for (const [r] of [result.memory, result.sql]) {
        expect(r?.toolCalls).toHaveLength(maxRecordedToolCalls)
        expect(r?.toolCalls.slice(1)).toEqual(tools.slice(0, maxRecordedToolCalls - 1))
        expect(r?.toolCalls[0]).toHaveLength(maxToolNameLength)
        expect(r?.toolCalls[0]?.endsWith("…")).toBe(true)
        expect(r?.detail).toHaveLength(maxRunDetailLength)
        expect(r?.detail?.startsWith("line one line two zz")).toBe(true)
      }
    }))
})

describe("SqlRunLog", () => {
  it.scoped("records survive closing and reopening the database file, DMs with no guild id", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir
      const records = [
        run("a", 2_000, {
          conversationId: "conv-1",
          runId: "run-1",
          toolCalls: ["discord_read_messages", "discord_send"],
          outcome: "answered"
        }),
        run("b", 3_000, { outcome: "dead-lettered", durationMs: null, queuedMs: 7_200_000, detail: "expired: pending for 2h" }),
        run("d", 1_000, { guildId: null, channelId: "dm-1", outcome: "interrupted", detail: "cut off by a restart" })
      ]
      yield* session(dir, Effect.flatMap(RunLog, (log) => Effect.forEach(records, log.record)))
      const reopened = yield* session(
        dir,
        Effect.flatMap(RunLog, (log) => Effect.all({ guild: log.recent(g1, 10), dm: log.recent(Partition.dm, 10) }))
      )
      expect(reopened.guild).toEqual([records[1], records[0]])
      expect(reopened.dm).toEqual([records[2]])
      // The tool calls are a JSON array of names, for operators reading the table.
      const column = yield* session(
        dir,
        Effect.flatMap(SqlClient.SqlClient, (sql) =>
          sql<{ readonly tool_calls: string }>`SELECT tool_calls FROM runs WHERE message_id = 'a'`)
      )
      expect(column).toEqual([{ tool_calls: "[\"discord_read_messages\",\"discord_send\"]" }])
    }))

  it.scoped("a stored run that does not decode is skipped with an error log", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir
      const errors: Array<Record<string, unknown>> = []
      const capture = Logger.add(Logger.make(({ annotations, logLevel }) => {
        if (LogLevel.greaterThanEqual(logLevel, LogLevel.Error)) errors.push(Object.fromEntries(HashMap.toEntries(annotations)))
      }))
      const listed = yield* session(
        dir,
        Effect.gen(function*() {
          const log = yield* RunLog
          const sql = yield* SqlClient.SqlClient
          yield* Effect.forEach([run("a", 1), run("b", 2), run("c", 3)], log.record)
          yield* sql`UPDATE runs SET outcome = 'bogus' WHERE message_id = 'b'`
          yield* sql`UPDATE runs SET tool_calls = 'not json' WHERE message_id = 'c'`
          return yield* log.recent(g1, 10)
        })
      ).pipe(Effect.provide(capture))
      expect(ids(listed)).toEqual(["a"])
      expect(errors.map((e) => [e["partition"], e["messageId"]])).toEqual([["guild:g1", "c"], ["guild:g1", "b"]])
    }))

  it.scoped("a failing statement is a StorageError naming the operation", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir
      const failures = yield* session(
        dir,
        Effect.gen(function*() {
          const log = yield* RunLog
          const sql = yield* SqlClient.SqlClient
          yield* sql`DROP TABLE runs`
          return yield* Effect.all([Effect.flip(log.record(run("a", 1))), Effect.flip(log.recent(g1, 10))])
        })
      )
      expect(failures.map((error) => error.operation)).toEqual(["RunLog.record", "RunLog.recent"])
      for (const error of failures) {
        expect(error).toBeInstanceOf(StorageError)
        expect(error.reason).toContain("no such table: runs")
      }
    }))
})
