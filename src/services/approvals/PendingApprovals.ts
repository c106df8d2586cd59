/**
 * The approvals waiting for people, stored so that they survive a restart (the buttons of a
 * message posted before it still work, the deadline still fires):
 *
 * - `create` stores a request with its deadline and hands out a new short numeric id (never reused);
 * - `setMessage` records the approval message once it was posted;
 * - `decide` records a decision on the calls a click (or the deadline) targets, atomically: of a
 *   click and the deadline racing for the same call, exactly one is recorded, the other answers
 *   `AlreadyDecided` (the rules are in domain/PendingApproval.ts);
 * - `remove` deletes a finished approval (after its continuation returned);
 * - `get`, `all` and `pendingFor` read: `pendingFor` is true while an approval of that agent and
 *   conversation (null: the agent's default conversation) has an undecided call.
 *
 * `layerSql` (storage/SqlPendingApprovals.ts, the `approvals` table) is the durable store;
 * `layerMemory` has the same semantics for tests, and both are run through one shared test.
 */
import type { SqlClient } from "@effect/sql"
import { Context, Effect, Layer, Ref } from "effect"
import type { ApprovalRequest } from "../../domain/Approval.js"
import type { StorageError } from "../../domain/Errors.js"
import {
  type CallDecision,
  type CallTarget,
  decide,
  type Decided,
  isComplete,
  type PendingApproval
} from "../../domain/PendingApproval.js"
import { makeSqlPendingApprovals } from "../storage/SqlPendingApprovals.js"

export interface PendingApprovalsService {
  readonly create: (request: ApprovalRequest, deadline: number) => Effect.Effect<PendingApproval, StorageError>
  /** False when the approval is gone. */
  readonly setMessage: (id: number, messageId: string) => Effect.Effect<boolean, StorageError>
  readonly decide: (id: number, target: CallTarget, decision: CallDecision) => Effect.Effect<Decided, StorageError>
  readonly remove: (id: number) => Effect.Effect<void, StorageError>
  readonly get: (id: number) => Effect.Effect<PendingApproval | null, StorageError>
  /** Every stored approval, oldest first. */
  readonly all: Effect.Effect<ReadonlyArray<PendingApproval>, StorageError>
  readonly pendingFor: (agentId: string, conversationId: string | null) => Effect.Effect<boolean, StorageError>
}

export class PendingApprovals extends Context.Tag("aurora/PendingApprovals")<PendingApprovals, PendingApprovalsService>() {
  /** In the SQLite database (the `approvals` table). */
  static readonly layerSql: Layer.Layer<PendingApprovals, never, SqlClient.SqlClient> = Layer.effect(
    PendingApprovals,
    Effect.suspend(() => makeSqlPendingApprovals)
  )

  /** In memory, with the durable store's semantics. */
  static readonly layerMemory: Layer.Layer<PendingApprovals> = Layer.effect(
    PendingApprovals,
    Effect.suspend(() => makeMemoryPendingApprovals)
  )
}

/** A new record of `request`: every call undecided, no message yet. */
export const newApproval = (id: number, request: ApprovalRequest, deadline: number): PendingApproval => ({
  id,
  origin: {
    guildId: request.guildId,
    channelId: request.channelId,
    messageId: request.messageId,
    agentId: request.agentId,
    conversationId: request.conversationId,
    runId: request.runId
  },
  calls: request.calls.map((call) => ({ name: call.name, arguments: call.arguments, toolCallId: call.toolCallId })),
  answered: request.answered,
  actionsBefore: request.actionsBefore,
  decisions: request.calls.map(() => null),
  messageId: null,
  requestedAt: request.requestedAt,
  deadline
})

/** Waiting on a person there: an undecided approval of that agent and conversation. */
export const waitsIn = (approval: PendingApproval, agentId: string, conversationId: string | null): boolean =>
  approval.origin.agentId === agentId && approval.origin.conversationId === conversationId && !isComplete(approval)

interface State {
  readonly lastId: number
  readonly approvals: ReadonlyMap<number, PendingApproval>
}

export const makeMemoryPendingApprovals: Effect.Effect<PendingApprovalsService> = Effect.map(
  Ref.make<State>({ lastId: 0, approvals: new Map() }),
  (state): PendingApprovalsService => {
    const update = (id: number, approval: PendingApproval) => (s: State): State => ({
      ...s,
      approvals: new Map(s.approvals).set(id, approval)
    })
    return {
      create: (request, deadline) =>
        Ref.modify(state, (s): [PendingApproval, State] => {
          const approval = newApproval(s.lastId + 1, request, deadline)
          return [approval, { ...update(approval.id, approval)(s), lastId: approval.id }]
        }),
      setMessage: (id, messageId) =>
        Ref.modify(state, (s): [boolean, State] => {
          const existing = s.approvals.get(id)
          return existing === undefined ? [false, s] : [true, update(id, { ...existing, messageId })(s)]
        }),
      decide: (id, target, decision) =>
        Ref.modify(state, (s): [Decided, State] => {
          const existing = s.approvals.get(id)
          if (existing === undefined) return [{ _tag: "Unknown" }, s]
          const decided = decide(existing, target, decision)
          return [decided, decided._tag === "Decided" ? update(id, decided.approval)(s) : s]
        }),
      remove: (id) =>
        Ref.update(state, (s) => {
          const approvals = new Map(s.approvals)
          approvals.delete(id)
          return { ...s, approvals }
        }),
      get: (id) => Effect.map(Ref.get(state), (s) => s.approvals.get(id) ?? null),
      all: Effect.map(Ref.get(state), (s) => [...s.approvals.values()].sort((a, b) => a.id - b.id)),
      pendingFor: (agentId, conversationId) =>
        Effect.map(
          Ref.get(state),
          (s) => [...s.approvals.values()].some((approval) => waitsIn(approval, agentId, conversationId))
        )
    }
  }
)
