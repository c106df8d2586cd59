/**
 * A test double of the approval gate (#16) for dispatch tests that do not exercise approvals.
 *
 * `open` answers `Unavailable("approvals are not available")`, so the tool loop denies every call
 * that would need a person at once (the agent reads the reason and the run goes on), and
 * `pendingFor` is always false (Aurora never waits on a person, so a 409 "waiting for approval"
 * stays a permanent failure, as before #16).
 */
import { Effect, Layer } from "effect"
import { ApprovalGate } from "../../src/services/approvals/Ports.js"

export const unavailableReason = "approvals are not available"

export const ApprovalsUnavailable: Layer.Layer<ApprovalGate> = Layer.succeed(ApprovalGate, {
  open: () => Effect.succeed({ _tag: "Unavailable", reason: unavailableReason }),
  pendingFor: () => Effect.succeed(false)
})
