/**
 * The approval stops Aurora is answering right now (#16): a run stopped with `requires_approval`
 * for Aurora's built-in tools, and the tool loop (programs/dispatch/ToolLoop.ts) runs those calls
 * and then continues the run. Letta keeps the conversation (or the agent's default conversation)
 * waiting until a continuation answers exactly the stop's calls, so a process that dies in between
 * (SIGKILL, crash, SIGTERM mid-loop) must leave a record from which the next start answers them
 * (programs/StopTakeUp.ts): the stop's origin and ALL its calls, in order, each marked as run by
 * Aurora or to be decided by a person, and the Discord actions the run made before the stop (so
 * that the take-up's continuation knows whether the run already answered).
 *
 * - `open` records a stop before its first built-in call runs (keyed by its first call id; opening
 *   the same key again replaces the record);
 * - `close` deletes it once the stop was answered (its continuation returned), handed to the
 *   approval gate (which keeps its own durable record), or given up by the live loop (a
 *   continuation that failed after its retries: logged and in the runs log); closing an unknown
 *   key does nothing;
 * - `all` reads every record, oldest first (by opening time, then by record order);
 * - `pendingFor` is true while a record of that agent and conversation (null: the agent's default
 *   conversation) exists: Letta's 409 "waiting for approval" there means Aurora is answering it,
 *   a busy conversation rather than a failure.
 *
 * Only runs that stop at one of Aurora's built-in tools write here (two writes per stop); the table
 * holds at most one row per conversation being answered, plus what a dead process left.
 *
 * `layerSql` (storage/SqlOpenStops.ts, the `open_stops` table) is the durable store; `layerMemory`
 * has the same semantics for tests, and both are run through one shared test.
 */
import type { SqlClient } from "@effect/sql"
import { Context, Effect, Layer, Ref } from "effect"
import type { ApprovalOrigin } from "../../domain/Approval.js"
import type { StorageError } from "../../domain/Errors.js"
import type { ToolCall } from "../../domain/ToolCall.js"
import { makeSqlOpenStops } from "../storage/SqlOpenStops.js"

/** One call of a stop: `aurora` when Aurora runs it (a built-in tool), else a person decides it. */
export interface StopCall extends ToolCall {
  readonly aurora: boolean
}

export interface OpenStop {
  /** The stop's first call id. */
  readonly key: string
  readonly origin: ApprovalOrigin
  /** Every pending call of the stop, in the stop's order (Letta accepts only an answer to all of them). */
  readonly calls: ReadonlyArray<StopCall>
  /**
   * The Discord actions the run made before this stop (tool names, in order, as ApprovalRequest
   * `actionsBefore`): the agent's streamed ones and Aurora's successful executions at earlier
   * stops. Not this stop's own calls (their records are in ToolCalls).
   */
  readonly actionsBefore: ReadonlyArray<string>
  /** Epoch ms. */
  readonly openedAt: number
}

export interface OpenStopsService {
  readonly open: (stop: OpenStop) => Effect.Effect<void, StorageError>
  readonly close: (key: string) => Effect.Effect<void, StorageError>
  readonly all: Effect.Effect<ReadonlyArray<OpenStop>, StorageError>
  readonly pendingFor: (agentId: string, conversationId: string | null) => Effect.Effect<boolean, StorageError>
}

export class OpenStops extends Context.Tag("aurora/OpenStops")<OpenStops, OpenStopsService>() {
  /** In the SQLite database (the `open_stops` table). */
  static readonly layerSql: Layer.Layer<OpenStops, never, SqlClient.SqlClient> = Layer.effect(
    OpenStops,
    Effect.suspend(() => makeSqlOpenStops)
  )

  /** In memory, with the durable store's semantics. */
  static readonly layerMemory: Layer.Layer<OpenStops> = Layer.effect(OpenStops, Effect.suspend(() => makeMemoryOpenStops))
}

/** The key of a stop: its first call id. */
export const stopKeyOf = (calls: ReadonlyArray<ToolCall>): string => calls[0]?.toolCallId ?? "(no call)"

export const isOpenIn = (stop: OpenStop, agentId: string, conversationId: string | null): boolean =>
  stop.origin.agentId === agentId && stop.origin.conversationId === conversationId

interface State {
  readonly seq: number
  readonly rows: ReadonlyMap<string, { readonly seq: number; readonly stop: OpenStop }>
}

export const makeMemoryOpenStops: Effect.Effect<OpenStopsService> = Effect.map(
  Ref.make<State>({ seq: 0, rows: new Map() }),
  (state): OpenStopsService => ({
    open: (stop) => Ref.update(state, (s) => ({ seq: s.seq + 1, rows: new Map(s.rows).set(stop.key, { seq: s.seq + 1, stop }) })),
    close: (key) =>
      Ref.update(state, (s) => {
        const rows = new Map(s.rows)
        rows.delete(key)
        return { ...s, rows }
      }),
    all: Effect.map(
      Ref.get(state),
      (s) => [...s.rows.values()].sort((a, b) => a.stop.openedAt - b.stop.openedAt || a.seq - b.seq).map((row) => row.stop)
    ),
    pendingFor: (agentId, conversationId) =>
      Effect.map(Ref.get(state), (s) => [...s.rows.values()].some((row) => isOpenIn(row.stop, agentId, conversationId)))
  })
)
