/**
 * An approval while it waits for people (#16): the request as stored, each call's decision, and
 * the pure rules over it, shared by the durable and the memory store so that both decide alike.
 *
 * - A call is decided once: by a click (approve or deny, the reason naming who) or by the deadline
 *   (deny, "no decision within N minutes"). A second decision of the same call changes nothing and
 *   says so (`AlreadyDecided`); that is how a click and the deadline racing each other end with
 *   exactly one winner per call.
 * - "All" (the single pair of buttons of a request with more calls than Discord has rows for)
 *   decides every call still open, and is refused when none is.
 * - The approval is complete when every call has a decision; its answers are the request's
 *   `answered` first, then one decision per call in the stop's order.
 * - Button custom ids read `aurora:approval:<id>:<call index | all>:<approve | deny>`: at most 47
 *   characters for any safe integer id, well under Discord's 100.
 */
import { ApprovalAnswer, type ApprovalOrigin } from "./Approval.js"
import type { ToolCall } from "./ToolCall.js"

export interface CallDecision {
  readonly approve: boolean
  readonly reason: string
  /** The deciding user's id; null when the deadline decided. */
  readonly decidedBy: string | null
  /** Epoch ms. */
  readonly at: number
}

export interface PendingApproval {
  /** The store's short numeric id (the `<id>` of the button custom ids). */
  readonly id: number
  readonly origin: ApprovalOrigin
  readonly calls: ReadonlyArray<ToolCall>
  readonly answered: ReadonlyArray<ApprovalAnswer>
  /**
   * The Discord actions the run made before its stop (ApprovalRequest `actionsBefore`); none for
   * a record stored before migration 9 (9_approval_actions).
   */
  readonly actionsBefore: ReadonlyArray<string>
  /** One per call, in call order; null while undecided. */
  readonly decisions: ReadonlyArray<CallDecision | null>
  /** The approval message in `origin.channelId`; null until it was posted. */
  readonly messageId: string | null
  /** Epoch ms. */
  readonly requestedAt: number
  /** Epoch ms: undecided calls are denied from then on. */
  readonly deadline: number
}

/** Which calls a click decides: one by its index, or every undecided one. */
export type CallTarget = number | "all"

export type Decided =
  /** Recorded; `approval` is the record after it. */
  | { readonly _tag: "Decided"; readonly approval: PendingApproval; readonly decidedCalls: ReadonlyArray<number> }
  /** No such approval (finished and deleted, or never stored). */
  | { readonly _tag: "Unknown" }
  /** Every targeted call already had a decision: nothing changed. */
  | { readonly _tag: "AlreadyDecided" }

/** Discord shows at most 5 action rows: one Approve/Deny pair per call up to this many calls. */
export const maxCallRows = 5

export const isComplete = (approval: PendingApproval): boolean => approval.decisions.every((decision) => decision !== null)

/** The calls `target` designates that have no decision yet. */
const openCalls = (approval: PendingApproval, target: CallTarget): ReadonlyArray<number> =>
  approval.decisions.flatMap((decision, index) => decision === null && (target === "all" || target === index) ? [index] : [])

/** Records `decision` on the undecided calls `target` designates (see the module header). */
export const decide = (approval: PendingApproval, target: CallTarget, decision: CallDecision): Decided => {
  const calls = openCalls(approval, target)
  if (calls.length === 0) return { _tag: "AlreadyDecided" }
  const decisions = approval.decisions.map((existing, index) => (calls.includes(index) ? decision : existing))
  return { _tag: "Decided", approval: { ...approval, decisions }, decidedCalls: calls }
}

/** The continuation's answers: `answered`, then each call's decision in call order (undecided calls are denied). */
export const answersOf = (approval: PendingApproval): ReadonlyArray<ApprovalAnswer> => [
  ...approval.answered,
  ...approval.calls.map((call, index) => {
    const decision = approval.decisions[index] ?? null
    return decision === null
      ? ApprovalAnswer.decision(call.toolCallId, false, "undecided")
      : ApprovalAnswer.decision(call.toolCallId, decision.approve, decision.reason)
  })
]

export const approvalReason = (approve: boolean, username: string, userId: string): string =>
  `${approve ? "approved" : "denied"} by ${username} (${userId})`

export const timeoutReason = (minutes: number): string => `no decision within ${minutes} minute${minutes === 1 ? "" : "s"}`

// --- button custom ids ----------------------------------------------------------------------------

const customIdPrefix = "aurora:approval:"

export interface ApprovalButton {
  readonly approvalId: number
  readonly target: CallTarget
  readonly approve: boolean
}

export const customIdOf = (button: ApprovalButton): string =>
  `${customIdPrefix}${button.approvalId}:${button.target}:${button.approve ? "approve" : "deny"}`

export const isApprovalCustomId = (customId: string): boolean => customId.startsWith(customIdPrefix)

/** The button a custom id names; null for anything else (another feature's, or crafted). */
export const parseCustomId = (customId: string): ApprovalButton | null => {
  const match = /^aurora:approval:(\d{1,16}):(\d{1,3}|all):(approve|deny)$/.exec(customId)
  if (match === null) return null
  const approvalId = Number(match[1])
  const target = match[2] === "all" ? "all" : Number(match[2])
  return Number.isSafeInteger(approvalId) ? { approvalId, target, approve: match[3] === "approve" } : null
}
