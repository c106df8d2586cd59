/**
 * TEMPORARY (#16, until the dispatch side's ApprovalContinuation is merged): an
 * ApprovalContinuation that only logs, so that the approval gate can be wired and built on its
 * own. A decided approval is then logged and its record deleted; no run continues.
 */
import { Effect, Layer } from "effect"
import { ApprovalContinuation } from "../services/approvals/Ports.js"

export const ApprovalContinuationPending: Layer.Layer<ApprovalContinuation> = Layer.succeed(ApprovalContinuation, {
  resume: (origin, answers) =>
    Effect.logWarning("approval continuation not wired").pipe(
      Effect.annotateLogs({ agentId: origin.agentId, messageId: origin.messageId, answers: answers.length })
    )
})
