/**
 * The dead-letter store: events that will not run again unless an admin retries them.
 * Bounded per partition (the newest `maxDeadLettersPerPartition` are kept), listed newest first.
 *
 * The durable store (SqlDeadLetters) records a dead letter and removes the event from the journal
 * in one transaction, so a crash never leaves an event both pending and dead. `layerMemory`
 * serves tests.
 */
import type { SqlClient } from "@effect/sql"
import { Context, Effect, Layer, Ref } from "effect"
import { type DeadLetter, maxDeadLettersPerPartition, sameDeadLetter } from "../../domain/DeadLetter.js"
import type { StorageError } from "../../domain/Errors.js"
import { Partition } from "../../domain/Event.js"
import { makeSqlDeadLetters } from "../storage/SqlDeadLetters.js"

export interface DeadLetterPage {
  /** Newest first (by failedAt, then by insertion). */
  readonly letters: ReadonlyArray<DeadLetter>
  /** All dead letters of the partition. */
  readonly total: number
}

export interface DeadLettersService {
  /**
   * Records a dead letter (replacing one with the same message id in the same partition) and
   * forgets the event's journal entry; prunes the partition to its newest `maxDeadLettersPerPartition`.
   */
  readonly add: (letter: DeadLetter) => Effect.Effect<void, StorageError>
  /** The partition's newest dead letters, at most `limit` (default all kept). */
  readonly list: (partition: Partition, limit?: number) => Effect.Effect<DeadLetterPage, StorageError>
  /** One dead letter by its message id, or null. */
  readonly find: (partition: Partition, messageId: string) => Effect.Effect<DeadLetter | null, StorageError>
  /** Forgets a dead letter (it was re-queued). Unknown ids are ignored. */
  readonly remove: (partition: Partition, messageId: string) => Effect.Effect<void, StorageError>
  /**
   * Forgets this dead letter (it was re-queued) unless it has been replaced meanwhile by a newer
   * failure of the same message (see `sameDeadLetter`), in one step: answers whether it was.
   */
  readonly removeUnchanged: (letter: DeadLetter) => Effect.Effect<boolean, StorageError>
}

export class DeadLetters extends Context.Tag("aurora/DeadLetters")<DeadLetters, DeadLettersService>() {
  /** In the SQLite database (the `dead_letters` table). */
  static readonly layerSql: Layer.Layer<DeadLetters, never, SqlClient.SqlClient> = Layer.effect(
    DeadLetters,
    makeSqlDeadLetters
  )

  /** In memory, with the same bound and order as the durable store. */
  static readonly layerMemory: Layer.Layer<DeadLetters> = Layer.effect(
    DeadLetters,
    Effect.suspend(() => makeMemoryDeadLetters)
  )
}

interface Stored {
  readonly seq: number
  readonly letter: DeadLetter
}

const newestFirst = (a: Stored, b: Stored) => b.letter.failedAt - a.letter.failedAt || b.seq - a.seq

export const makeMemoryDeadLetters: Effect.Effect<DeadLettersService> = Effect.map(
  Ref.make<{ readonly seq: number; readonly byPartition: ReadonlyMap<string, ReadonlyArray<Stored>> }>({
    seq: 0,
    byPartition: new Map()
  }),
  (state): DeadLettersService => {
    const of = (partition: Partition) =>
      Effect.map(Ref.get(state), (s) => [...(s.byPartition.get(Partition.key(partition)) ?? [])].sort(newestFirst))
    return {
      add: (letter) =>
        Ref.update(state, (s) => {
          const key = Partition.key(Partition.ofEvent(letter.event))
          const kept = (s.byPartition.get(key) ?? []).filter((x) => x.letter.event.messageId !== letter.event.messageId)
          const next = [...kept, { seq: s.seq, letter }].sort(newestFirst).slice(0, maxDeadLettersPerPartition)
          return { seq: s.seq + 1, byPartition: new Map(s.byPartition).set(key, next) }
        }),
      list: (partition, limit) =>
        Effect.map(of(partition), (all) => ({
          letters: all.slice(0, limit ?? all.length).map((x) => x.letter),
          total: all.length
        })),
      find: (partition, messageId) =>
        Effect.map(of(partition), (all) => all.find((x) => x.letter.event.messageId === messageId)?.letter ?? null),
      remove: (partition, messageId) =>
        Ref.update(state, (s) => {
          const key = Partition.key(partition)
          const kept = (s.byPartition.get(key) ?? []).filter((x) => x.letter.event.messageId !== messageId)
          return { ...s, byPartition: new Map(s.byPartition).set(key, kept) }
        }),
      removeUnchanged: (letter) =>
        Ref.modify(state, (s) => {
          const key = Partition.key(Partition.ofEvent(letter.event))
          const all = s.byPartition.get(key) ?? []
          const kept = all.filter((x) => !sameDeadLetter(x.letter, letter))
          if (kept.length === all.length) return [false, s]
          return [true, { ...s, byPartition: new Map(s.byPartition).set(key, kept) }]
        })
    }
  }
)
