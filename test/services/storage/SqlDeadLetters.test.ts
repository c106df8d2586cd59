import { SqlClient } from "@effect/sql"
import { describe, expect, it } from "@effect/vitest"
import { Effect, HashMap, Layer, Logger, LogLevel } from "effect"
import { type DeadLetter, maxDeadLettersPerPartition } from "../../../src/domain/DeadLetter.js"
import { StorageError } from "../../../src/domain/Errors.js"
import { Partition, type QueuedEvent } from "../../../src/domain/Event.js"
import { Database } from "../../../src/services/storage/Database.js"
import { DeadLetters, type DeadLettersService, makeMemoryDeadLetters } from "../../../src/services/queue/DeadLetters.js"
import { EventJournal } from "../../../src/services/queue/EventJournal.js"
import { seededInts } from "../../fakes/seededInts.js"
import { makeTempDir } from "../../fakes/tempDir.js"

const tempDir = makeTempDir("dead-letters")

/** One "run of the bot" on the database in `dir`, with the SQL dead letters and journal. */
const session = <A, E>(dir: string, use: Effect.Effect<A, E, DeadLetters | EventJournal | SqlClient.SqlClient>) =>
  use.pipe(
    Effect.provide(
      Layer.mergeAll(DeadLetters.layerSql, EventJournal.layerSql).pipe(Layer.provideMerge(Database.layer(dir)))
    )
  )

const g1 = Partition.guild("g1")
const g2 = Partition.guild("g2")

const event = (messageId: string, guildId: string | null = "g1", overrides: Partial<QueuedEvent> = {}): QueuedEvent => ({
  messageId,
  guildId,
  channelId: guildId === null ? "dm-1" : "c1",
  authorId: "u1",
  agentId: "agent-1",
  trigger: guildId === null ? "dm" : "mention",
  prompt: `prompt of ${messageId}`,
  enqueuedAt: 1_000,
  attempts: 2,
  ...overrides
})

const letter = (
  messageId: string,
  failedAt: number,
  overrides: Partial<DeadLetter> = {},
  guildId: string | null = "g1"
): DeadLetter => ({
  event: event(messageId, guildId),
  reason: "failed",
  errorType: "AgentNotFound",
  detail: "the agent agent-1 does not exist",
  attempts: 3,
  failedAt,
  ...overrides
})

const ids = (letters: ReadonlyArray<DeadLetter>) => letters.map((l) => l.event.messageId)

describe("SqlDeadLetters", () => {
  it.scoped("lists newest first (by failedAt, then by insertion), with limit and total; survives a restart", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir
      const all = [
        letter("a", 200),
        letter("b", 100, { reason: "expired", errorType: null, detail: null }),
        letter("c", 300, { event: { ...event("c"), interruptedRunId: "run-1", interruptions: 1 } }),
        letter("d", 200, { reason: "interrupted-after-reply" }),
        letter("e", 50, { reason: "interrupted" })
      ]
      const pages = yield* session(
        dir,
        Effect.gen(function*() {
          const d = yield* DeadLetters
          yield* Effect.forEach(all, d.add)
          return { full: yield* d.list(g1), two: yield* d.list(g1, 2), none: yield* d.list(g1, 0), other: yield* d.list(g2) }
        })
      )
      expect(ids(pages.full.letters)).toEqual(["c", "d", "a", "b", "e"])
      expect(pages.full.total).toBe(5)
      expect(pages.full.letters).toEqual([all[2], all[3], all[0], all[1], all[4]])
      expect(ids(pages.two.letters)).toEqual(["c", "d"])
      expect(pages.two.total).toBe(5)
      expect(pages.none).toEqual({ letters: [], total: 5 })
      expect(pages.other).toEqual({ letters: [], total: 0 })
      const reopened = yield* session(dir, Effect.flatMap(DeadLetters, (d) => d.list(g1)))
      expect(reopened).toEqual(pages.full)
    }))

  it.scoped("a letter's conversation id is stored and read back; a letter without one has none", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir
      const withConversation = letter("a", 2, { conversationId: "conv-1" })
      const without = letter("b", 1)
      yield* session(dir, Effect.flatMap(DeadLetters, (d) => Effect.forEach([withConversation, without], d.add)))
      const result = yield* session(
        dir,
        Effect.gen(function*() {
          const d = yield* DeadLetters
          const sql = yield* SqlClient.SqlClient
          const column = yield* sql<{ readonly message_id: string; readonly conversation_id: string | null }>`
            SELECT message_id, conversation_id FROM dead_letters ORDER BY message_id`
          return { page: yield* d.list(g1), found: yield* d.find(g1, "a"), column }
        })
      )
      expect(result.page.letters).toEqual([withConversation, without])
      expect(result.found).toEqual(withConversation)
      expect("conversationId" in (result.page.letters[1] ?? {})).toBe(false)
      // A plain column, for operators.
      expect(result.column).toEqual([{ message_id: "a", conversation_id: "conv-1" }, { message_id: "b", conversation_id: null }])
    }))

  it.scoped("a letter with the message id of one in its partition replaces it, and counts as the newest", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir
      const replaced = letter("a", 100, { reason: "expired", attempts: 7, errorType: null, detail: null })
      const result = yield* session(
        dir,
        Effect.gen(function*() {
          const d = yield* DeadLetters
          yield* d.add(letter("a", 100))
          yield* d.add(letter("b", 100))
          const before = yield* d.list(g1)
          yield* d.add(replaced)
          return { before, after: yield* d.list(g1), found: yield* d.find(g1, "a") }
        })
      )
      expect(ids(result.before.letters)).toEqual(["b", "a"])
      expect(ids(result.after.letters)).toEqual(["a", "b"])
      expect(result.after.total).toBe(2)
      expect(result.found).toEqual(replaced)
    }))

  it.scoped("the 1001st letter of a partition prunes its oldest; other partitions are untouched", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir
      const result = yield* session(
        dir,
        Effect.gen(function*() {
          const d = yield* DeadLetters
          const sql = yield* SqlClient.SqlClient
          yield* Effect.forEach([letter("x1", 1, {}, "g2"), letter("x2", 2, {}, "g2"), letter("dm1", 0, {}, null)], d.add)
          // Written in one transaction to keep the test quick; the 1001st goes through `add`.
          yield* sql.withTransaction(
            Effect.forEach(
              Array.from({ length: maxDeadLettersPerPartition }, (_, i) => letter(`m${i}`, 1_000 + i)),
              d.add,
              { discard: true }
            )
          )
          const full = yield* d.list(g1)
          yield* d.add(letter("newest", 5_000))
          const afterNewest = yield* d.list(g1)
          // A letter older than every kept one is itself the one pruned, as in the memory store.
          yield* d.add(letter("too-old", 0))
          return {
            full,
            afterNewest,
            final: yield* d.list(g1),
            oldest: yield* d.find(g1, "m0"),
            tooOld: yield* d.find(g1, "too-old"),
            g2: yield* d.list(g2),
            dm: yield* d.list(Partition.dm)
          }
        })
      )
      expect(result.full.total).toBe(1_000)
      expect(result.afterNewest.total).toBe(1_000)
      expect(result.afterNewest.letters[0]?.event.messageId).toBe("newest")
      expect(result.afterNewest.letters.at(-1)?.event.messageId).toBe("m1")
      expect(result.oldest).toBeNull()
      expect(result.tooOld).toBeNull()
      expect(result.final).toEqual(result.afterNewest)
      expect(ids(result.g2.letters)).toEqual(["x2", "x1"])
      expect(ids(result.dm.letters)).toEqual(["dm1"])
    }))

  it.scoped("add removes the event from the journal in the same transaction", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir
      const result = yield* session(
        dir,
        Effect.gen(function*() {
          const d = yield* DeadLetters
          const j = yield* EventJournal
          yield* Effect.forEach([event("m1"), event("m2"), event("m3")], j.append)
          yield* j.runStarted("m1", 10)
          yield* d.add(letter("m1", 100))
          return yield* j.load
        })
      )
      expect(result.map((entry) => entry.event.messageId)).toEqual(["m2", "m3"])
      expect(
        (yield* session(dir, Effect.flatMap(EventJournal, (j) => j.load))).map((entry) => entry.event.messageId)
      ).toEqual(["m2", "m3"])
    }))

  it.scoped("when removing the journal row fails, the dead letter is not recorded either (one transaction)", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir
      const result = yield* session(
        dir,
        Effect.gen(function*() {
          const d = yield* DeadLetters
          const j = yield* EventJournal
          const sql = yield* SqlClient.SqlClient
          yield* j.append(event("m1"))
          yield* sql`CREATE TRIGGER refuse_delete BEFORE DELETE ON pending_events
            BEGIN SELECT RAISE(ABORT, 'refused by the test'); END`
          const failed = yield* Effect.flip(d.add(letter("m1", 100)))
          return { failed, letters: yield* d.list(g1), pending: yield* j.load }
        })
      )
      expect(result.failed).toBeInstanceOf(StorageError)
      expect(result.failed).toMatchObject({ operation: "DeadLetters.add" })
      expect(result.failed.reason).toContain("refused by the test")
      expect(result.letters).toEqual({ letters: [], total: 0 })
      expect(result.pending.map((entry) => entry.event.messageId)).toEqual(["m1"])
    }))

  it.scoped("find and remove are scoped to a partition; unknown ids are ignored", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir
      const dm = letter("dm1", 10, {}, null)
      const result = yield* session(
        dir,
        Effect.gen(function*() {
          const d = yield* DeadLetters
          yield* Effect.forEach([letter("a", 1), letter("b", 2), dm], d.add)
          const found = { a: yield* d.find(g1, "a"), dm: yield* d.find(Partition.dm, "dm1") }
          const misses = [yield* d.find(g2, "a"), yield* d.find(g1, "dm1"), yield* d.find(g1, "nope")]
          yield* d.remove(g2, "a") // another partition: nothing happens
          yield* d.remove(g1, "nope")
          yield* d.remove(g1, "a")
          return {
            found,
            misses,
            afterRemove: yield* d.list(g1),
            gone: yield* d.find(g1, "a"),
            dmLeft: yield* d.list(Partition.dm)
          }
        })
      )
      expect(result.found).toEqual({ a: letter("a", 1), dm })
      expect(result.misses).toEqual([null, null, null])
      expect(ids(result.afterRemove.letters)).toEqual(["b"])
      expect(result.afterRemove.total).toBe(1)
      expect(result.gone).toBeNull()
      expect(result.dmLeft.letters).toEqual([dm])
    }))

  describe("removeUnchanged removes the letter only if it was not replaced meanwhile", () => {
    const scenario = (d: DeadLettersService) =>
      Effect.gen(function*() {
        const a = letter("a", 1)
        const dm = letter("a", 1, {}, null)
        yield* Effect.forEach([a, letter("b", 2), dm], d.add)
        // A re-queued copy of `a` failed again: same message, later failure and enqueue times.
        const again = letter("a", 5, { attempts: 1, event: event("a", "g1", { enqueuedAt: 4_000, attempts: 0 }) })
        const differs = [
          yield* d.removeUnchanged({ ...a, failedAt: 2 }),
          yield* d.removeUnchanged({ ...a, attempts: 1 }),
          yield* d.removeUnchanged({ ...a, reason: "expired" }),
          yield* d.removeUnchanged({ ...a, event: { ...a.event, enqueuedAt: 999 } })
        ]
        const untouched = ids((yield* d.list(g1)).letters)
        yield* d.add(again)
        const stale = yield* d.removeUnchanged(a)
        const afterStale = (yield* d.list(g1)).letters
        const current = yield* d.removeUnchanged(again)
        const twice = yield* d.removeUnchanged(again)
        return {
          differs,
          untouched,
          stale,
          afterStale,
          current,
          twice,
          left: ids((yield* d.list(g1)).letters),
          dmLeft: (yield* d.list(Partition.dm)).letters
        }
      })
    const expectScenario = (result: Effect.Effect.Success<ReturnType<typeof scenario>>) => {
      expect(result.differs).toEqual([false, false, false, false])
      expect(result.untouched).toEqual(["b", "a"])
      expect(result.stale).toBe(false)
      expect(result.afterStale.find((l) => l.event.messageId === "a")?.failedAt).toBe(5)
      expect(result.current).toBe(true)
      expect(result.twice).toBe(false)
      expect(result.left).toEqual(["b"])
      // The DM partition's letter with the same message id is another record.
      expect(result.dmLeft).toEqual([letter("a", 1, {}, null)])
    }

    it.scoped("SQLite", () =>
      Effect.gen(function*() {
        const dir = yield* tempDir
        expectScenario(yield* session(dir, Effect.flatMap(DeadLetters, scenario)))
      }))

    it.effect("memory", () =>
      Effect.gen(function*() {
        expectScenario(yield* Effect.flatMap(makeMemoryDeadLetters, scenario))
      }))
  })

  it.scoped("a stored letter that does not decode is skipped with an error log (still counted)", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir
      const errors: Array<Record<string, unknown>> = []
      const capture = Logger.add(Logger.make(({ annotations, logLevel }) => {
        if (LogLevel.greaterThanEqual(logLevel, LogLevel.Error)) errors.push(Object.fromEntries(HashMap.toEntries(annotations)))
      }))
      const result = yield* session(
        dir,
        Effect.gen(function*() {
          const d = yield* DeadLetters
          const sql = yield* SqlClient.SqlClient
          yield* Effect.forEach([letter("a", 1), letter("b", 2)], d.add)
          yield* sql`UPDATE dead_letters SET reason = 'bogus' WHERE message_id = 'b'`
          return { page: yield* d.list(g1), found: yield* d.find(g1, "b") }
        })
      ).pipe(Effect.provide(capture))
      expect(ids(result.page.letters)).toEqual(["a"])
      expect(result.page.total).toBe(2)
      expect(result.found).toBeNull()
      expect(errors.map((e) => [e["partition"], e["messageId"]])).toEqual([["guild:g1", "b"], ["guild:g1", "b"]])
    }))

  it.scoped("a failing statement is a StorageError naming the operation", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir
      const failures = yield* session(
        dir,
        Effect.gen(function*() {
          const d = yield* DeadLetters
          const sql = yield* SqlClient.SqlClient
          yield* sql`DROP TABLE dead_letters`
          return yield* Effect.all([
            Effect.flip(d.add(letter("a", 1))),
            Effect.flip(d.list(g1)),
            Effect.flip(d.find(g1, "a")),
            Effect.flip(d.remove(g1, "a"))
          ])
        })
      )
      expect(failures.map((error) => error.operation)).toEqual([
        "DeadLetters.add",
        "DeadLetters.list",
        "DeadLetters.find",
        "DeadLetters.remove"
      ])
      for (const error of failures) {
        expect(error).toBeInstanceOf(StorageError)
        expect(error.reason).toContain("no such table: dead_letters")
      }
    }))

  it.scoped("behaves as the memory store over a mixed sequence of operations", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir
      const next = seededInts(424242) // reproducible
      const partitions = [g1, g2, Partition.dm]
      const steps: Array<(d: DeadLettersService) => Effect.Effect<unknown, StorageError>> = []
      for (let i = 0; i < 400; i++) {
        const guildId = [null, "g1", "g2"][next(3)] ?? null
        const id = `m${next(15)}`
        const failedAt = next(20) // many ties, so the insertion order matters
        const removal = next(5) === 0 ? partitions[next(3)] : undefined
        steps.push((d) =>
          removal !== undefined
            ? d.remove(removal, id)
            : d.add(letter(id, failedAt, { attempts: i, ...(i % 2 === 0 ? { conversationId: `conv-${i}` } : {}) }, guildId))
        )
      }
      const snapshot = (d: DeadLettersService) => Effect.forEach(partitions, (p) => d.list(p))
      const memory = yield* makeMemoryDeadLetters
      const expected = yield* Effect.gen(function*() {
        for (const step of steps) yield* step(memory)
        return yield* snapshot(memory)
      })
      const actual = yield* session(
        dir,
        Effect.gen(function*() {
          const d = yield* DeadLetters
          for (const step of steps) yield* step(d)
          return yield* snapshot(d)
        })
      )
      expect(expected.reduce((n, page) => n + page.total, 0)).toBeGreaterThan(20)
      expect(actual).toEqual(expected)
    }))
})
