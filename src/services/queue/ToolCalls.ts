/**
 * The record that makes Aurora's tool calls run at most once: each call id is written (started)
 * before its side effect, and its result after (finished). `executeOnce` is the one way to run a
 * call:
 *
 * - `begin` records the call as started and answers `Run` when the id is new; only then is the
 *   call executed, and its result recorded with `finish`;
 * - a finished id answers `Finished` with the recorded result: it is replayed to the agent, never
 *   executed again (a retried continuation, a restart that replays the stop);
 * - a started id without a result answers `Interrupted`: the process stopped (crash, kill,
 *   shutdown, a failure) between the record and the result, so the effect may or may not have
 *   happened; the call is never executed again, the agent is told "interrupted", and that answer
 *   is recorded as its result so every later replay says the same;
 * - a `begin` that cannot be written means nothing runs (`unrecordedResult`); a `finish` that
 *   cannot be written is logged, and the agent still gets the real result (a later replay of the
 *   id would say "interrupted").
 *
 * Bounded: a new call prunes calls started more than `toolCallRetentionMs` (7 days) before it,
 * and its partition to the newest `maxToolCallsPerPartition` (5 000) by start. Stored returns are
 * cut to `maxStoredReturnLength`. One call id is run by one fiber at a time (a run's calls are
 * executed in order); a second `begin` of an id still running would read it as interrupted.
 *
 * `layerSql` (storage/SqlToolCalls.ts, the `tool_calls` table) is the durable store; `layerMemory`
 * has the same semantics for tests, compared with it by a model-based test.
 */
import type { SqlClient } from "@effect/sql"
import { Context, Effect, Layer, Ref } from "effect"
import type { StorageError } from "../../domain/Errors.js"
import {
  interruptedResult,
  maxToolCallsPerPartition,
  partitionKeyOf,
  storedResult,
  type ToolCallRecord,
  toolCallRetentionMs,
  type ToolCallStart,
  type ToolResult,
  unrecordedResult
} from "../../domain/ToolCall.js"
import { makeSqlToolCalls } from "../storage/SqlToolCalls.js"

export type Begin =
  /** New: recorded as started; execute it, then `finish`. */
  | { readonly _tag: "Run" }
  /** Ran before: this is what it returned. */
  | { readonly _tag: "Finished"; readonly result: ToolResult }
  /** Started before and never finished: not run again; now recorded with this result. */
  | { readonly _tag: "Interrupted"; readonly result: ToolResult }

export interface ToolCallsService {
  readonly begin: (start: ToolCallStart) => Effect.Effect<Begin, StorageError>
  /** Records the result of a started call; false when it had none to record (already answered, or unknown). */
  readonly finish: (toolCallId: string, result: ToolResult, at: number) => Effect.Effect<boolean, StorageError>
  readonly find: (toolCallId: string) => Effect.Effect<ToolCallRecord | null, StorageError>
  /** The partition's calls, newest first (by start, then by record order). */
  readonly recent: (partitionKey: string, limit: number) => Effect.Effect<ReadonlyArray<ToolCallRecord>, StorageError>
}

export class ToolCalls extends Context.Tag("aurora/ToolCalls")<ToolCalls, ToolCallsService>() {
  /** In the SQLite database (the `tool_calls` table). */
  static readonly layerSql: Layer.Layer<ToolCalls, never, SqlClient.SqlClient> = Layer.effect(
    ToolCalls,
    Effect.suspend(() => makeSqlToolCalls())
  )

  /** In memory, with the durable store's semantics. */
  static readonly layerMemory: Layer.Layer<ToolCalls> = Layer.effect(ToolCalls, Effect.suspend(() => makeMemoryToolCalls()))
}

/** How a call's result came about: run now, replayed, answered as interrupted, or not run (storage failed). */
export type Execution = "executed" | "replayed" | "interrupted" | "unrecorded"

/** Runs `execute` at most once for the call id (see the module header); never fails. */
export const executeOnce = (
  calls: ToolCallsService,
  start: ToolCallStart,
  execute: Effect.Effect<ToolResult>,
  now: Effect.Effect<number>
): Effect.Effect<{ readonly result: ToolResult; readonly execution: Execution }> =>
  Effect.gen(function*() {
    const begun = yield* calls.begin(start).pipe(
      Effect.tapError((error) => Effect.logError(`tool call not run: it could not be recorded (${error.reason})`)),
      Effect.option
    )
    if (begun._tag === "None") return { result: unrecordedResult, execution: "unrecorded" as const }
    const begin = begun.value
    if (begin._tag === "Finished") return { result: begin.result, execution: "replayed" as const }
    if (begin._tag === "Interrupted") return { result: begin.result, execution: "interrupted" as const }
    const result = yield* execute
    yield* Effect.flatMap(now, (at) => calls.finish(start.toolCallId, result, at)).pipe(
      Effect.catchAll((error) => Effect.logError(`tool call ran but its result could not be recorded (${error.reason})`))
    )
    return { result, execution: "executed" as const }
  }).pipe(
    Effect.annotateLogs({ toolCallId: start.toolCallId, tool: start.tool, messageId: start.messageId }),
    Effect.withSpan("ToolCalls.executeOnce", { attributes: { toolCallId: start.toolCallId, tool: start.tool } })
  )

interface Row {
  readonly seq: number
  readonly record: ToolCallRecord
}

interface State {
  readonly seq: number
  readonly rows: ReadonlyMap<string, Row>
}

const newestFirst = (a: Row, b: Row) => b.record.startedAt - a.record.startedAt || b.seq - a.seq

/** `maxPerPartition` and `retentionMs` are parameters so that tests reach the bounds with a few rows. */
export const makeMemoryToolCalls = (
  maxPerPartition: number = maxToolCallsPerPartition,
  retentionMs: number = toolCallRetentionMs
): Effect.Effect<ToolCallsService> =>
  Effect.map(Ref.make<State>({ seq: 0, rows: new Map() }), (state): ToolCallsService => {
    const begin = (start: ToolCallStart) =>
      Ref.modify(state, (s): [Begin, State] => {
        const existing = s.rows.get(start.toolCallId)
        if (existing !== undefined && existing.record.finished !== null) {
          return [{ _tag: "Finished", result: existing.record.finished.result }, s]
        }
        const rows = new Map(s.rows)
        if (existing !== undefined) {
          const finished = { at: start.at, result: interruptedResult }
          rows.set(start.toolCallId, { ...existing, record: { ...existing.record, finished } })
          return [{ _tag: "Interrupted", result: interruptedResult }, { ...s, rows }]
        }
        const partitionKey = partitionKeyOf(start)
        const record: ToolCallRecord = {
          toolCallId: start.toolCallId,
          tool: start.tool,
          partitionKey,
          channelId: start.channelId,
          messageId: start.messageId,
          startedAt: start.at,
          finished: null
        }
        rows.set(start.toolCallId, { seq: s.seq + 1, record })
        for (const [id, row] of rows) if (row.record.startedAt < start.at - retentionMs) rows.delete(id)
        const ofPartition = [...rows.values()].filter((row) => row.record.partitionKey === partitionKey).sort(newestFirst)
        for (const row of ofPartition.slice(maxPerPartition)) rows.delete(row.record.toolCallId)
        return [{ _tag: "Run" }, { seq: s.seq + 1, rows }]
      })
    return {
      begin,
      finish: (toolCallId, result, at) =>
        Ref.modify(state, (s): [boolean, State] => {
          const existing = s.rows.get(toolCallId)
          if (existing === undefined || existing.record.finished !== null) return [false, s]
          const record = { ...existing.record, finished: { at, result: storedResult(result) } }
          return [true, { ...s, rows: new Map(s.rows).set(toolCallId, { ...existing, record }) }]
        }),
      find: (toolCallId) => Effect.map(Ref.get(state), (s) => s.rows.get(toolCallId)?.record ?? null),
      recent: (partitionKey, limit) =>
        Effect.map(
          Ref.get(state),
          (s) =>
            [...s.rows.values()].filter((row) => row.record.partitionKey === partitionKey).sort(newestFirst)
              .slice(0, Math.max(0, limit)).map((row) => row.record)
        )
    }
  })
