import { SqlClient } from "@effect/sql"
import { describe, expect, it } from "@effect/vitest"
import { Effect, Exit, Fiber, HashMap, Layer, Logger, LogLevel, Scope } from "effect"
import { StorageError } from "../../../src/domain/Errors.js"
import type { QueuedEvent } from "../../../src/domain/Event.js"
import { Database } from "../../../src/services/storage/Database.js"
import {
  EventJournal,
  type EventJournalService,
  type JournalEntry,
  makeMemoryJournal
} from "../../../src/services/queue/EventJournal.js"
import { seededInts } from "../../fakes/seededInts.js"
import { makeTempDir } from "../../fakes/tempDir.js"

const tempDir = makeTempDir("journal")

/** One "run of the bot": opens the database in `dir`, runs `use` with the SQL journal, closes everything. */
const session = <A, E>(dir: string, use: Effect.Effect<A, E, EventJournal | SqlClient.SqlClient>) =>
  use.pipe(Effect.provide(EventJournal.layerSql.pipe(Layer.provideMerge(Database.layer(dir)))))

const journal = EventJournal

const event = (messageId: string, overrides: Partial<QueuedEvent> = {}): QueuedEvent => ({
  messageId,
  guildId: "g1",
  channelId: "c1",
  authorId: "u1",
  agentId: "agent-1",
  trigger: "mention",
  prompt: `prompt of ${messageId}: "quoted", 'single', \\ back, ünïcødé, new\nline`,
  enqueuedAt: 1_700_000_000_000,
  attempts: 0,
  ...overrides
})

const ids = (entries: ReadonlyArray<{ readonly event: QueuedEvent }>) => entries.map((entry) => entry.event.messageId)

interface Logged {
  readonly level: string
  readonly message: string
  readonly annotations: Record<string, unknown>
}

const captureErrors = (lines: Array<Logged>) =>
  Logger.add(Logger.make(({ annotations, logLevel, message }) => {
    if (LogLevel.greaterThanEqual(logLevel, LogLevel.Error)) {
      lines.push({
        level: logLevel.label,
        message: Array.isArray(message) ? message.map(String).join(" ") : String(message),
        annotations: Object.fromEntries(HashMap.toEntries(annotations))
      })
    }
  }))

describe("SqlEventJournal", () => {
  it.scoped("the order of appends survives closing and reopening the database (a restart)", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir
      const events = [
        event("m1"),
        event("m2", { guildId: null, channelId: "dm-1", trigger: "dm" }),
        event("m3", { guildId: "g2", interruptedRunId: "run-old", interruptions: 1, attempts: 2 }),
        event("m4")
      ]
      yield* session(
        dir,
        Effect.gen(function*() {
          const j = yield* journal
          yield* Effect.forEach(events, j.append)
          yield* j.remove("m2")
          yield* j.append(event("m5"))
        })
      )
      const loaded = yield* session(dir, Effect.flatMap(journal, (j) => j.load))
      expect(loaded).toEqual([
        { event: events[0], run: null },
        { event: events[2], run: null },
        { event: events[3], run: null },
        { event: event("m5"), run: null }
      ])
      // The partition is stored beside the event, for operators.
      const partitions = yield* session(
        dir,
        Effect.flatMap(SqlClient.SqlClient, (sql) =>
          sql<{ readonly partition: string }>`SELECT partition FROM pending_events ORDER BY seq`)
      )
      expect(partitions.map((row) =>
        row.partition
      )).toEqual(["guild:g1", "guild:g2", "guild:g1", "guild:g1"])
    }))

  it.scoped("update keeps the event's place and clears its run progress", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir
      const retried = event("m2", { attempts: 1, prompt: "rewritten" })
      const inSession = yield* session(
        dir,
        Effect.gen(function*() {
          const j = yield* journal
          yield* Effect.forEach([event("m1"), event("m2"), event("m3")], j.append)
          yield* j.runStarted("m2", 1_000)
          yield* j.runIdSeen("m2", "run-2")
          yield* j.sideEffectSeen("m2")
          yield* j.update(retried)
          yield* j.update(event("unknown")) // not journalled: nothing happens
          return yield* j.load
        })
      )
      expect(ids(inSession)).toEqual(["m1", "m2", "m3"])
      expect(inSession[1]).toEqual({ event: retried, run: null })
      const reopened = yield* session(dir, Effect.flatMap(journal, (j) => j.load))
      expect(reopened).toEqual(inSession)
    }))

  it.scoped("run progress (started, run id, side effect) round-trips through load after a restart", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir
      yield* session(
        dir,
        Effect.gen(function*() {
          const j = yield* journal
          yield* Effect.forEach(["waiting", "started", "with-id", "acted", "restarted"].map((id) => event(id)), j.append)
          // Progress of a run that never started is ignored, as are unknown ids.
          yield* j.runIdSeen("waiting", "run-x")
          yield* j.sideEffectSeen("waiting")
          yield* j.runStarted("unknown", 1)
          yield* j.runIdSeen("unknown", "run-y")
          yield* j.sideEffectSeen("unknown")
          yield* j.runStarted("started", 1_000)
          yield* j.runStarted("with-id", 2_000)
          yield* j.runIdSeen("with-id", "run-2")
          yield* j.runStarted("acted", 3_000)
          yield* j.runIdSeen("acted", "run-3")
          yield* j.sideEffectSeen("acted")
          // A new attempt clears the earlier attempt's run id and side effect.
          yield* j.runStarted("restarted", 4_000)
          yield* j.runIdSeen("restarted", "run-4")
          yield* j.sideEffectSeen("restarted")
          yield* j.runStarted("restarted", 5_000)
        })
      )
      const loaded = yield* session(dir, Effect.flatMap(journal, (j) => j.load))
      expect(loaded.map((entry) => [entry.event.messageId, entry.run])).toEqual([
        ["waiting", null],
        ["started", { startedAt: 1_000, runId: null, sideEffect: false }],
        ["with-id", { startedAt: 2_000, runId: "run-2", sideEffect: false }],
        ["acted", { startedAt: 3_000, runId: "run-3", sideEffect: true }],
        ["restarted", { startedAt: 5_000, runId: null, sideEffect: false }]
      ])
    }))

  it.scoped("the run's conversation id is recorded with its run id, survives a restart, and a new attempt clears it", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir
      const inSession = yield* session(
        dir,
        Effect.gen(function*() {
          const j = yield* journal
          yield* Effect.forEach(["in-conversation", "kept", "retried", "reattempted", "waiting"].map((id) => event(id)), j.append)
          yield* j.runIdSeen("waiting", "run-w", "conv-w") // no run started: ignored
          yield* j.runStarted("in-conversation", 1_000)
          yield* j.runIdSeen("in-conversation", "run-1", "conv-1")
          yield* j.runStarted("kept", 2_000)
          yield* j.runIdSeen("kept", "run-2", "conv-2")
          yield* j.runIdSeen("kept", "run-2b") // a later run id without a conversation keeps it
          yield* j.runStarted("retried", 3_000)
          yield* j.runIdSeen("retried", "run-3", "conv-3")
          yield* j.update(event("retried", { attempts: 1 }))
          yield* j.runStarted("reattempted", 4_000)
          yield* j.runIdSeen("reattempted", "run-4", "conv-4")
          yield* j.runStarted("reattempted", 5_000)
          return yield* j.load
        })
      )
      const expected = [
        ["in-conversation", { startedAt: 1_000, runId: "run-1", sideEffect: false, conversationId: "conv-1" }],
        ["kept", { startedAt: 2_000, runId: "run-2b", sideEffect: false, conversationId: "conv-2" }],
        ["retried", null],
        ["reattempted", { startedAt: 5_000, runId: null, sideEffect: false }],
        ["waiting", null]
      ]
      expect(inSession.map((entry) => [entry.event.messageId, entry.run])).toEqual(expected)
      // No `conversationId: undefined` either: the key is absent for a run without a conversation.
      expect(Object.keys(inSession[3]?.run ?? {}).sort()).toEqual(["runId", "sideEffect", "startedAt"])
      const reopened = yield* session(dir, Effect.flatMap(journal, (j) => j.load))
      expect(reopened.map((entry) => [entry.event.messageId, entry.run])).toEqual(expected)
    }))

  it.scoped("the fallback record survives a restart (the database file reopened); a new attempt or an update clears it", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir
      const scenario = (j: EventJournalService) =>
        Effect.gen(function*() {
          yield* Effect.forEach(["posting", "waiting", "reattempted", "retried"].map((id) => event(id)), j.append)
          yield* j.fallbackRecorded("waiting", 900) // no run started: ignored
          yield* j.fallbackRecorded("unknown", 900) // not journalled: ignored
          yield* j.runStarted("posting", 1_000)
          yield* j.runIdSeen("posting", "run-1", "conv-1")
          yield* j.fallbackRecorded("posting", 1_500)
          yield* j.runStarted("reattempted", 2_000)
          yield* j.fallbackRecorded("reattempted", 2_500)
          yield* j.runStarted("reattempted", 3_000)
          yield* j.runStarted("retried", 4_000)
          yield* j.fallbackRecorded("retried", 4_500)
          yield* j.update(event("retried", { attempts: 1 }))
          return yield* j.load
        })
      const expected = [
        ["posting", { startedAt: 1_000, runId: "run-1", sideEffect: false, conversationId: "conv-1", fallbackAt: 1_500 }],
        ["waiting", null],
        ["reattempted", { startedAt: 3_000, runId: null, sideEffect: false }],
        ["retried", null]
      ]
      const inSession = yield* session(dir, Effect.flatMap(journal, scenario))
      expect(inSession.map((entry) => [entry.event.messageId, entry.run])).toEqual(expected)
      // The row itself: what a restart reads, in the column migration 4 added.
      const rows = yield* session(
        dir,
        Effect.flatMap(SqlClient.SqlClient, (sql) =>
          sql<{ readonly message_id: string; readonly fallback_at: number | null }>`
            SELECT message_id, fallback_at FROM pending_events ORDER BY seq`)
      )
      expect(rows.map((row) => [row.message_id, row.fallback_at])).toEqual([
        ["posting", 1_500],
        ["waiting", null],
        ["reattempted", null],
        ["retried", null]
      ])
      const reopened = yield* session(dir, Effect.flatMap(journal, (j) => j.load))
      expect(reopened.map((entry) => [entry.event.messageId, entry.run])).toEqual(expected)
      // The memory journal keeps the same record.
      const memory = yield* makeMemoryJournal
      const inMemory = yield* scenario(memory.journal)
      expect(inMemory.map((entry) => [entry.event.messageId, entry.run])).toEqual(expected)
    }))

  it.scoped("an event's conversation mode, interrupted conversation and images round-trip; an older stored event has none", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir
      const modern = event("m1", { conversationMode: "channel", interruptedRunId: "run-1", interruptedConversationId: "conv-1" })
      const shared = event("m2", { conversationMode: "shared", images: ["https://cdn.discordapp.com/attachments/1/2/a.png"] })
      const loaded = yield* session(
        dir,
        Effect.gen(function*() {
          const j = yield* journal
          const sql = yield* SqlClient.SqlClient
          yield* Effect.forEach([modern, shared], j.append)
          // Written as the previous version wrote it: no conversation fields in the JSON.
          const old = JSON.stringify({ ...event("m3"), interruptedRunId: "run-old", interruptions: 1 })
          yield* sql`INSERT INTO pending_events (message_id, partition, event) VALUES ('m3', 'guild:g1', ${old})`
          return yield* j.load
        })
      )
      expect(loaded.map((entry) => entry.event)).toEqual([
        modern,
        shared,
        { ...event("m3"), interruptedRunId: "run-old", interruptions: 1 }
      ])
      expect("conversationMode" in (loaded[2]?.event ?? {})).toBe(false)
      expect("images" in (loaded[2]?.event ?? {})).toBe(false)
    }))

  it.scoped("remove forgets an event; unknown ids are ignored", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir
      const loaded = yield* session(
        dir,
        Effect.gen(function*() {
          const j = yield* journal
          yield* Effect.forEach([event("m1"), event("m2")], j.append)
          yield* j.runStarted("m1", 1)
          yield* j.remove("m1")
          yield* j.remove("m1")
          yield* j.remove("never-there")
          return yield* j.load
        })
      )
      expect(ids(loaded)).toEqual(["m2"])
      expect(ids(yield* session(dir, Effect.flatMap(journal, (j) => j.load)))).toEqual(["m2"])
    }))

  it.scoped("appending an id already journalled replaces it: it moves to the end, without run progress", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir
      const again = event("m1", { attempts: 3 })
      const loaded = yield* session(
        dir,
        Effect.gen(function*() {
          const j = yield* journal
          yield* Effect.forEach([event("m1"), event("m2")], j.append)
          yield* j.runStarted("m1", 1)
          yield* j.append(again)
          return yield* j.load
        })
      )
      expect(loaded).toEqual([{ event: event("m2"), run: null }, { event: again, run: null }])
    }))

  it.scoped("a row that does not decode is skipped with an error naming its message id; the rest loads", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir
      const errors: Array<Logged> = []
      const loaded = yield* session(
        dir,
        Effect.gen(function*() {
          const j = yield* journal
          const sql = yield* SqlClient.SqlClient
          yield* Effect.forEach(["m1", "bad-json", "bad-shape", "m4", "other-id", "bad-run"].map((id) => event(id)), j.append)
          yield* sql`UPDATE pending_events SET event = 'not json {' WHERE message_id = 'bad-json'`
          yield* sql`UPDATE pending_events SET event = '{"messageId":"bad-shape"}' WHERE message_id = 'bad-shape'`
          yield* sql`UPDATE pending_events SET event = ${JSON.stringify(event("m1"))} WHERE message_id = 'other-id'`
          yield* sql`UPDATE pending_events SET run_started_at = 'yesterday' WHERE message_id = 'bad-run'`
          return yield* j.load
        })
      ).pipe(Effect.provide(captureErrors(errors)))
      expect(loaded).toEqual([{ event: event("m1"), run: null }, { event: event("m4"), run: null }])
      expect(errors.map((line) => line.annotations["messageId"])).toEqual(["bad-json", "bad-shape", "other-id", "bad-run"])
      for (const line of errors) {
        expect(line.level).toBe("ERROR")
        expect(line.message).toBe("journal: a pending event cannot be read; it is skipped")
        expect(line.annotations["problem"]).toEqual(expect.any(String))
      }
      expect(String(errors[2]?.annotations["problem"])).toContain("is not the row's")
      // The rows are left for an operator to inspect.
      const count = yield* session(
        dir,
        Effect.flatMap(SqlClient.SqlClient, (sql) => sql<{ readonly n: number }>`SELECT count(*) AS n FROM pending_events`)
      ).pipe(Effect.provide(captureErrors([])))
      expect(count[0]?.n).toBe(6)
    }))

  it.scoped("a failing statement is a StorageError naming the operation and SQLite's reason", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir
      const failures = yield* session(
        dir,
        Effect.gen(function*() {
          const j = yield* journal
          const sql = yield* SqlClient.SqlClient
          yield* sql`DROP TABLE pending_events`
          return yield* Effect.all([
            Effect.flip(j.append(event("m1"))),
            Effect.flip(j.remove("m1")),
            Effect.flip(j.update(event("m1"))),
            Effect.flip(j.runStarted("m1", 1)),
            Effect.flip(j.runIdSeen("m1", "run")),
            Effect.flip(j.sideEffectSeen("m1")),
            Effect.flip(j.load)
          ])
        })
      )
      expect(failures.map((error) => error.operation)).toEqual([
        "EventJournal.append",
        "EventJournal.remove",
        "EventJournal.update",
        "EventJournal.runStarted",
        "EventJournal.runIdSeen",
        "EventJournal.sideEffectSeen",
        "EventJournal.load"
      ])
      for (const error of failures) {
        expect(error).toBeInstanceOf(StorageError)
        expect(error.reason).toContain("no such table: pending_events")
      }
    }))

  it.scoped("behaves as the memory journal over a long mixed sequence of operations", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir
      const next = seededInts(12345) // reproducible
      const steps: Array<(j: EventJournalService) => Effect.Effect<void, StorageError>> = []
      for (let i = 0; i < 600; i++) {
        const id = `m${next(12)}`
        const kind = next(8)
        steps.push((j) => {
          switch (kind) {
            case 0:
              return j.append(event(id, { attempts: i }))
            case 1:
              return j.remove(id)
            case 2:
              return j.update(event(id, { attempts: i, prompt: `update ${i}` }))
            case 3:
              return j.runStarted(id, i)
            case 4:
              // Mostly with a conversation; without one, a recorded conversation id stays.
              return j.runIdSeen(id, `run-${i}`, i % 3 === 0 ? undefined : `conv-${i}`)
            case 5:
              return j.sideEffectSeen(id)
            case 6:
              return j.fallbackRecorded(id, 10_000 + i)
            default:
              return j.append(event(`${id}-${i}`))
          }
        })
      }
      // What each journal holds every 20 steps, so that run progress is compared while it exists.
      const run = (j: EventJournalService) =>
        Effect.gen(function*() {
          const snapshots: Array<ReadonlyArray<JournalEntry>> = []
          for (const [i, step] of steps.entries()) {
            yield* step(j)
            if (i % 20 === 19) snapshots.push(yield* j.load)
          }
          return snapshots
        })
      const memory = yield* makeMemoryJournal
      const expected = yield* run(memory.journal)
      const actual = yield* session(dir, Effect.flatMap(journal, run))
      const entries = expected.flat()
      // The sequence does exercise run progress (43, 9, 5, 7 and 13 such snapshot entries with this seed).
      expect(entries.filter((entry) => entry.run !== null).length).toBeGreaterThanOrEqual(20)
      expect(entries.filter((entry) => typeof entry.run?.runId === "string").length).toBeGreaterThanOrEqual(3)
      expect(entries.filter((entry) => entry.run?.sideEffect === true).length).toBeGreaterThanOrEqual(3)
      expect(entries.filter((entry) => typeof entry.run?.conversationId === "string").length).toBeGreaterThanOrEqual(3)
      expect(entries.filter((entry) => typeof entry.run?.fallbackAt === "number").length).toBeGreaterThanOrEqual(3)
      expect(actual).toEqual(expected)
      expect(yield* session(dir, Effect.flatMap(journal, (j) => j.load))).toEqual(expected.at(-1))
    }))

  describe("group commit", () => {
    /** Frames in the write-ahead log: each commit writes at least one, so they count commits. */
    const walFrames = Effect.flatMap(
      SqlClient.SqlClient,
      (sql) => Effect.map(sql<{ readonly log: number }>`PRAGMA wal_checkpoint(PASSIVE)`, (rows) => rows[0]?.log ?? -1)
    )
    const emptyWal = Effect.flatMap(SqlClient.SqlClient, (sql) => sql`PRAGMA wal_checkpoint(TRUNCATE)`)
    const ids40 = Array.from({ length: 40 }, (_, i) => i)

    it.scoped("writes requested together share one commit; one after another, each commits on its own", () =>
      Effect.gen(function*() {
        const dir = yield* tempDir
        const [oneByOne, together, loaded] = yield* session(
          dir,
          Effect.gen(function*() {
            const j = yield* journal
            yield* emptyWal
            for (const i of ids40) yield* j.append(event(`s${i}`))
            const oneByOne = yield* walFrames
            yield* emptyWal
            yield* Effect.forEach(ids40, (i) => j.append(event(`t${i}`)), { concurrency: "unbounded", discard: true })
            return [oneByOne, yield* walFrames, yield* j.load] as const
          })
        )
        expect(oneByOne).toBeGreaterThanOrEqual(40)
        expect(together).toBeLessThan(20)
        // Every write is there, in the order requested.
        expect(ids(loaded)).toEqual([...ids40.map((i) => `s${i}`), ...ids40.map((i) => `t${i}`)])
      }))

    it.scoped("writes of one id requested together keep their order", () =>
      Effect.gen(function*() {
        const dir = yield* tempDir
        const loaded = yield* session(
          dir,
          Effect.gen(function*() {
            const j = yield* journal
            yield* j.append(event("kept"))
            yield* Effect.all([
              j.append(event("gone")),
              j.runStarted("gone", 1),
              j.remove("gone"),
              j.remove("kept"),
              j.append(event("kept", { attempts: 1 })),
              j.runStarted("kept", 2),
              j.runIdSeen("kept", "run-2"),
              j.sideEffectSeen("kept")
            ], { concurrency: "unbounded", discard: true })
            return yield* j.load
          })
        )
        expect(loaded).toEqual([
          { event: event("kept", { attempts: 1 }), run: { startedAt: 2, runId: "run-2", sideEffect: true } }
        ])
      }))

    it.scoped("more writes requested together than one group holds (256) commit in several groups, in the order requested", () =>
      Effect.gen(function*() {
        const dir = yield* tempDir
        const many = Array.from({ length: 600 }, (_, i) => `m${i}`)
        const loaded = yield* session(
          dir,
          Effect.gen(function*() {
            const j = yield* journal
            yield* Effect.forEach(many, (id) => j.append(event(id)), { concurrency: "unbounded", discard: true })
            return yield* j.load
          })
        )
        expect(ids(loaded)).toEqual(many)
      }))

    it.scoped("a group that fails is rolled back whole: each of its writes fails with its own operation; later writes go on", () =>
      Effect.gen(function*() {
        const dir = yield* tempDir
        const [failures, loaded] = yield* session(
          dir,
          Effect.gen(function*() {
            const j = yield* journal
            const sql = yield* SqlClient.SqlClient
            yield* sql`CREATE TRIGGER poison BEFORE INSERT ON pending_events
              WHEN NEW.message_id = 'poison' BEGIN SELECT RAISE(ABORT, 'poisoned row'); END`
            yield* j.append(event("before"))
            const failures = yield* Effect.all([
              Effect.flip(j.append(event("m1"))),
              Effect.flip(j.runStarted("before", 5)),
              Effect.flip(j.append(event("poison"))),
              Effect.flip(j.remove("before"))
            ], { concurrency: "unbounded" })
            yield* j.append(event("after"))
            return [failures, yield* j.load] as const
          })
        )
        expect(failures.map((error) => error.operation)).toEqual([
          "EventJournal.append",
          "EventJournal.runStarted",
          "EventJournal.append",
          "EventJournal.remove"
        ])
        for (const error of failures) {
          expect(error).toBeInstanceOf(StorageError)
          expect(error.reason).toContain("poisoned row")
        }
        // Nothing of the failed group was written; the writes before and after it were.
        expect(loaded).toEqual([{ event: event("before"), run: null }, { event: event("after"), run: null }])
      }))

    it.scoped("an idle writer commits a lone write at once; a busy one waits for the end of the turn", () =>
      Effect.gen(function*() {
        const dir = yield* tempDir
        const [idle, busy] = yield* session(
          dir,
          Effect.gen(function*() {
            const j = yield* journal
            // Nothing was committed before: the writer is idle, and the end of the turn cannot come
            // while fibers keep yielding to each other (microtasks), so only an idle writer commits.
            const lone = yield* Effect.fork(j.append(event("lone")))
            yield* Effect.repeatN(Effect.yieldNow(), 20)
            const idle = ids(yield* j.load)
            yield* Fiber.join(lone)
            const busy = yield* Effect.gen(function*() {
              const busyContext = yield* Layer.build(EventJournal.layerSqlWith({ busyWindowMs: Number.POSITIVE_INFINITY }))
              const b = yield* Effect.provide(journal, busyContext)
              const waiting = yield* Effect.fork(b.append(event("waits")))
              yield* Effect.repeatN(Effect.yieldNow(), 20)
              const seen = ids(yield* b.load)
              yield* Fiber.join(waiting)
              return seen
            }).pipe(Effect.scoped)
            return [idle, busy] as const
          })
        )
        expect(idle).toEqual(["lone"])
        expect(busy).toEqual(["lone"])
      }))

    it.scoped("closing the journal commits the writes already requested; a write after that fails", () =>
      Effect.gen(function*() {
        const dir = yield* tempDir
        const scope = yield* Scope.make()
        // A writer that is always busy, so that it waits for the end of the turn even for the first write.
        const context = yield* Layer.buildWithScope(
          EventJournal.layerSqlWith({ busyWindowMs: Number.POSITIVE_INFINITY }).pipe(Layer.provideMerge(Database.layer(dir))),
          scope
        )
        const j = yield* Effect.provide(journal, context)
        // Requested, not yet committed: the writer waits for the end of the event loop's turn,
        // which cannot come while fibers keep yielding to each other (microtasks).
        const pending = yield* Effect.fork(
          Effect.forEach(ids40, (i) => j.append(event(`m${i}`)), { concurrency: "unbounded", discard: true })
        )
        yield* Effect.repeatN(Effect.yieldNow(), 20)
        expect(yield* j.load).toEqual([])
        yield* Scope.close(scope, Exit.void)
        expect(yield* Fiber.await(pending)).toEqual(Exit.void)
        const late = yield* Effect.flip(j.append(event("late")))
        expect(late).toBeInstanceOf(StorageError)
        expect(late.operation).toBe("EventJournal.append")
        expect(late.reason).toBe("the journal is closed")
        const reopened = yield* session(dir, Effect.flatMap(journal, (j) => j.load))
        expect(ids(reopened)).toEqual(ids40.map((i) => `m${i}`))
      }))
  })
})
