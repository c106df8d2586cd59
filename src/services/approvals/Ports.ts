/**
 * The two ports between the dispatch and the approval gate (#16), so that neither depends on the
 * other's implementation:
 *
 * - `ApprovalGate` (implemented in services/approvals): `open` stores a request durably, posts the
 *   message with Approve/Deny buttons as a reply to the triggering message, and arms its deadline
 *   (`approvaltimeout`). `pendingFor` says whether Aurora waits on a person for a conversation (or
 *   an agent's default conversation: `conversationId` null), so that Letta's 409 "waiting for
 *   approval" there is read as a busy conversation, not as a failure.
 * - `ApprovalContinuation` (implemented by the programs layer): once every call of a request has a
 *   decision (a click, or the deadline's deny), the gate calls `resume` with the answers (the
 *   request's `answered` first, then the decisions in call order) and the request's
 *   `actionsBefore` (the Discord actions the run made before the stop). `resume` sends the answers
 *   to Letta and carries the run to its end (more tool round-trips, another approval, the
 *   fallback unless the run answered, before the stop or after it, and the runs log). The gate
 *   deletes its record only after `resume` returned, so that a restart in between resumes again
 *   (Letta accepts a repeated answer as a repeat). `resume` also says what became of the answers
 *   (`ResumeOutcome`): the start-up take-up of open stops (programs/StopTakeUp.ts) keeps its
 *   record only while Letta could not be reached.
 */
import { Context, type Effect } from "effect"
import type { ApprovalAnswer, ApprovalOrigin, ApprovalRequest, OpenedApproval } from "../../domain/Approval.js"

export interface ApprovalGateService {
  readonly open: (request: ApprovalRequest) => Effect.Effect<OpenedApproval>
  readonly pendingFor: (agentId: string, conversationId: string | null) => Effect.Effect<boolean>
}

export class ApprovalGate extends Context.Tag("aurora/ApprovalGate")<ApprovalGate, ApprovalGateService>() {}

/**
 * What became of a resume's answers (its first continuation): `answered` (Letta took them: the
 * stop is no longer pending, whatever the rest of the run did), `unreachable` (a service failure
 * after the retries: Letta down, so the stop may still be pending), `refused` (any other failure:
 * Letta refused them, e.g. nothing was pending any more, or an unexpected defect).
 */
export type ResumeOutcome = "answered" | "unreachable" | "refused"

export interface ApprovalContinuationService {
  readonly resume: (
    origin: ApprovalOrigin,
    answers: ReadonlyArray<ApprovalAnswer>,
    actionsBefore: ReadonlyArray<string>
  ) => Effect.Effect<ResumeOutcome>
}

export class ApprovalContinuation
  extends Context.Tag("aurora/ApprovalContinuation")<ApprovalContinuation, ApprovalContinuationService>()
{}
