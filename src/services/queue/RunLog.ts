/**
 * The runs log: the latest outcome of each dispatched event, for `/aurora runs`.
 *
 * - `record` keeps one record per message in its partition (the guild, or the DMs): a record of a
 *   message already there replaces it and counts as the newest. The record is bounded first
 *   (`boundedRunRecord`: the first 20 tool names, each name and the detail cut short), and the
 *   partition is pruned to its newest `maxRunsPerPartition` in the same step, so the log stays
 *   small however long Aurora runs. A record older than every kept one is itself the one pruned.
 * - `recent` lists a partition's newest records, at most `limit`: by finish time, ties by the
 *   order they were recorded in (the later first).
 *
 * The durable store (storage/SqlRunLog.ts, the `runs` table) survives restarts; `layerMemory`
 * has the same semantics and serves tests. A failed write is the caller's to log: the runs view is
 * a report, and no dispatch fails because it could not be written.
 */
import type { SqlClient } from "@effect/sql"
import { Context, Effect, Layer, Ref } from "effect"
import type { StorageError } from "../../domain/Errors.js"
import { Partition } from "../../domain/Event.js"
import { boundedRunRecord, maxRunsPerPartition, partitionOfRun, type RunRecord, rowLimit } from "../../domain/RunRecord.js"
import { makeSqlRunLog } from "../storage/SqlRunLog.js"

export interface RunLogService {
  readonly record: (record: RunRecord) => Effect.Effect<void, StorageError>
  /** The partition's newest records, newest first, at most `limit`. */
  readonly recent: (partition: Partition, limit: number) => Effect.Effect<ReadonlyArray<RunRecord>, StorageError>
}

export class RunLog extends Context.Tag("aurora/RunLog")<RunLog, RunLogService>() {
  /** In the SQLite database (the `runs` table). */
  static readonly layerSql: Layer.Layer<RunLog, never, SqlClient.SqlClient> = Layer.scoped(
    RunLog,
    Effect.suspend(() => makeSqlRunLog())
  )

  /** In memory, with the durable store's bound and order. */
  static readonly layerMemory: Layer.Layer<RunLog> = Layer.effect(RunLog, Effect.suspend(() => makeMemoryRunLog()))
}

interface Stored {
  readonly seq: number
  readonly record: RunRecord
}

const newestFirst = (a: Stored, b: Stored) => b.record.finishedAt - a.record.finishedAt || b.seq - a.seq

/** `maxPerPartition` is a parameter so that tests can reach the bound with a few records. */
export const makeMemoryRunLog = (maxPerPartition: number = maxRunsPerPartition): Effect.Effect<RunLogService> =>
  Effect.map(
    Ref.make<{ readonly seq: number; readonly byPartition: ReadonlyMap<string, ReadonlyArray<Stored>> }>({
      seq: 0,
      byPartition: new Map()
    }),
    (state): RunLogService => ({
      record: (record) =>
        Ref.update(state, (s) => {
          const bounded = boundedRunRecord(record)
          const key = Partition.key(partitionOfRun(bounded))
          const kept = (s.byPartition.get(key) ?? []).filter((x) => x.record.messageId !== bounded.messageId)
          const next = [...kept, { seq: s.seq, record: bounded }].sort(newestFirst).slice(0, maxPerPartition)
          return { seq: s.seq + 1, byPartition: new Map(s.byPartition).set(key, next) }
        }),
      recent: (partition, limit) =>
        Effect.map(
          Ref.get(state),
          (s) => (s.byPartition.get(Partition.key(partition)) ?? []).slice(0, rowLimit(limit)).map((x) => x.record)
        )
    })
  )
