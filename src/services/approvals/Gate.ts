/**
 * The approval gate (#16): asks people in Discord to decide the tool calls a run stopped on, and
 * continues the run with their decisions.
 *
 * - `open(request)`: the deadline is the request's time plus the guild's `approvaltimeout` minutes
 *   (DMs: the default). The request is stored, then ONE message is posted in its channel as a reply
 *   to the triggering message (ApprovalMessage: the calls, their arguments, the buttons), its id
 *   stored, and the deadline armed: `Waiting{approvalId}`. When it cannot be stored or posted:
 *   `Unavailable{reason}`, with nothing left behind (a stored record is removed again, no deadline
 *   armed); the dispatch then denies every call itself. A message posted whose id could not be
 *   stored is still `Waiting` (its buttons work; the deadline then cannot edit it, only log that).
 * - `decide(click)`: the access check is the caller's (commands/ApprovalButtons.ts). The decision
 *   is recorded durably (PendingApprovals.decide: one winner per call); an unknown approval, one of
 *   another channel, or a call decided already changes nothing (`AlreadyDecided`). Recorded, it
 *   answers the message as it now stands (the caller shows it in place of the old one). When that
 *   decision completed the approval, the deadline is disarmed and the approval is finished in the
 *   background: `ApprovalContinuation.resume(origin, answered ++ decisions in call order,
 *   actionsBefore)`, and only after it returned is the record deleted (a restart in between
 *   resumes again).
 * - The deadline: a fiber sleeping on the Clock until the deadline, then every undecided call is
 *   denied ("no decision within N minutes"), the message edited (buttons disabled, timed out; a
 *   failed edit is logged), and the approval finished as above. If clicks decided every call first,
 *   the deadline finds nothing to decide and does nothing.
 * - Start-up (the layer's construction, the database open): every stored approval that is complete
 *   is finished again; one past its deadline is expired now; any other has its deadline re-armed.
 * - `pendingFor`: an undecided approval of that agent and conversation is stored (false, logged,
 *   when the store cannot be read).
 * - One log line per call asked, decided or timed out (approvalId, tool, toolCallId, decidedBy);
 *   `aurora_approvals_total{outcome}` counts each approval once, when it is complete (or unavailable).
 */
import { Clock, Effect, FiberMap, FiberSet, Layer } from "effect"
import { defaultGuildSettings } from "../../domain/Settings.js"
import type { ApprovalRequest, OpenedApproval } from "../../domain/Approval.js"
import {
  approvalReason,
  answersOf,
  type CallTarget,
  isComplete,
  type PendingApproval,
  timeoutReason
} from "../../domain/PendingApproval.js"
import { type ApprovalOutcome, approvalEnded, registerApprovalMetrics } from "../health/ApprovalMetrics.js"
import { SettingsStore } from "../storage/SettingsStore.js"
import { type ApprovalMessageBody, approvalMessage } from "./ApprovalMessage.js"
import { ApprovalPoster } from "./ApprovalPoster.js"
import { PendingApprovals } from "./PendingApprovals.js"
import { ApprovalContinuation, ApprovalGate } from "./Ports.js"

/** A click on an approval button, by someone already allowed to decide. */
export interface ApprovalClick {
  readonly approvalId: number
  readonly target: CallTarget
  readonly approve: boolean
  readonly userId: string
  readonly username: string
  /** Where the clicked message is: an approval is decided from its own channel only. */
  readonly channelId: string | null
}

export type ClickResult =
  | { readonly _tag: "Recorded"; readonly message: ApprovalMessageBody }
  | { readonly _tag: "AlreadyDecided" }
  | { readonly _tag: "Failed"; readonly reason: string }

const minute = 60_000

/** The timeout the approval was asked with (its deadline is the request's time plus whole minutes). */
const minutesOf = (approval: PendingApproval) => Math.max(1, Math.round((approval.deadline - approval.requestedAt) / minute))

const outcomeOf = (approval: PendingApproval): ApprovalOutcome => {
  if (approval.decisions.some((decision) => decision?.decidedBy === null)) return "timed_out"
  return approval.decisions.every((decision) => decision?.approve === true) ? "approved" : "denied"
}

const logCalls = (message: string, approval: PendingApproval, calls: ReadonlyArray<number>, decidedBy: string) =>
  Effect.forEach(calls, (index) =>
    Effect.logInfo(message).pipe(Effect.annotateLogs({
      approvalId: approval.id,
      tool: approval.calls[index]?.name ?? "-",
      toolCallId: approval.calls[index]?.toolCallId ?? "-",
      decidedBy,
      channelId: approval.origin.channelId
    })), { discard: true })

export class Approvals extends Effect.Service<Approvals>()("aurora/Approvals", {
  scoped: Effect.gen(function*() {
    const pending = yield* PendingApprovals
    const poster = yield* ApprovalPoster
    const settings = yield* SettingsStore
    const continuation = yield* ApprovalContinuation
    const deadlines = yield* FiberMap.make<number>()
    const finishing = yield* FiberSet.make()
    yield* registerApprovalMetrics

    /** Continues the run, then forgets the approval (only then: a restart before resumes again). */
    const finish = (approval: PendingApproval) =>
      continuation.resume(approval.origin, answersOf(approval), approval.actionsBefore).pipe(
        Effect.zipRight(pending.remove(approval.id)),
        Effect.catchAll((error) =>
          Effect.logError("approval continued, but its record could not be deleted; a restart continues it again", error)
        ),
        Effect.annotateLogs({ approvalId: approval.id }),
        Effect.withSpan("Approvals.finish", { attributes: { approvalId: approval.id } }),
        FiberSet.run(finishing)
      )

    const expire = (id: number) =>
      Effect.gen(function*() {
        const stored = yield* pending.get(id)
        if (stored === null) return
        const decided = yield* pending.decide(id, "all", {
          approve: false,
          reason: timeoutReason(minutesOf(stored)),
          decidedBy: null,
          at: yield* Clock.currentTimeMillis
        })
        if (decided._tag !== "Decided") return
        const approval = decided.approval
        yield* logCalls("approval timed out; call denied", approval, decided.decidedCalls, "deadline")
        if (approval.messageId === null) {
          yield* Effect.logWarning("timed-out approval has no stored message to edit").pipe(
            Effect.annotateLogs({ approvalId: id })
          )
        } else {
          yield* poster.edit(approval.origin.channelId, approval.messageId, approvalMessage(approval)).pipe(
            Effect.catchAll((error) => Effect.logWarning("could not mark the approval message as timed out", error))
          )
        }
        yield* approvalEnded(outcomeOf(approval))
        yield* finish(approval)
      }).pipe(
        Effect.catchAll((error) => Effect.logError("approval deadline: could not deny the undecided calls", error)),
        Effect.annotateLogs({ approvalId: id })
      )

    const arm = (approval: PendingApproval) =>
      FiberMap.run(
        deadlines,
        approval.id,
        Effect.flatMap(Clock.currentTimeMillis, (now) => Effect.sleep(Math.max(0, approval.deadline - now))).pipe(
          Effect.zipRight(expire(approval.id))
        )
      )

    const unavailable = (reason: string) =>
      Effect.as(
        Effect.zipRight(Effect.logWarning(`approval could not be asked: ${reason}`), approvalEnded("unavailable")),
        { _tag: "Unavailable", reason } satisfies OpenedApproval
      )

    const open = (request: ApprovalRequest): Effect.Effect<OpenedApproval> =>
      Effect.gen(function*() {
        if (request.calls.length === 0) return yield* unavailable("no tool call to decide")
        const minutes = request.guildId === null
          ? defaultGuildSettings.approvaltimeout
          : (yield* settings.guild(request.guildId)).settings.approvaltimeout
        const created = yield* Effect.either(pending.create(request, request.requestedAt + minutes * minute))
        if (created._tag === "Left") return yield* unavailable(`it could not be stored (${created.left.reason})`)
        const approval = created.right
        const posted = yield* Effect.either(poster.post(request.channelId, request.messageId, approvalMessage(approval)))
        if (posted._tag === "Left") {
          yield* pending.remove(approval.id).pipe(
            Effect.catchAll((error) => Effect.logError("could not remove the approval that was not posted", error))
          )
          return yield* unavailable(`Discord refused the message (${posted.left._tag})`)
        }
        yield* pending.setMessage(approval.id, posted.right).pipe(
          Effect.catchAll((error) => Effect.logError("approval posted, but its message id could not be stored", error))
        )
        yield* arm({ ...approval, messageId: posted.right })
        yield* logCalls("approval asked", approval, approval.calls.map((_, index) => index), "-")
        return { _tag: "Waiting", approvalId: String(approval.id) } satisfies OpenedApproval
      }).pipe(
        Effect.annotateLogs({ agentId: request.agentId, messageId: request.messageId }),
        Effect.withSpan("Approvals.open", { attributes: { calls: request.calls.length } })
      )

    const decide = (click: ApprovalClick): Effect.Effect<ClickResult> =>
      Effect.gen(function*() {
        const stored = yield* pending.get(click.approvalId)
        if (stored === null || stored.origin.channelId !== click.channelId) return { _tag: "AlreadyDecided" } as const
        const decided = yield* pending.decide(click.approvalId, click.target, {
          approve: click.approve,
          reason: approvalReason(click.approve, click.username, click.userId),
          decidedBy: click.userId,
          at: yield* Clock.currentTimeMillis
        })
        if (decided._tag !== "Decided") return { _tag: "AlreadyDecided" } as const
        const approval = decided.approval
        yield* logCalls(
          click.approve ? "approval: call approved" : "approval: call denied",
          approval,
          decided.decidedCalls,
          click.userId
        )
        if (isComplete(approval)) {
          yield* FiberMap.remove(deadlines, approval.id)
          yield* approvalEnded(outcomeOf(approval))
          yield* finish(approval)
        }
        return { _tag: "Recorded", message: approvalMessage(approval) } as const
      }).pipe(
        Effect.catchAll((error) =>
          Effect.as(
            Effect.logError("approval decision could not be recorded", error),
            {
              _tag: "Failed",
              reason: error.reason
            } as const
          )
        ),
        Effect.annotateLogs({ approvalId: click.approvalId, decidedBy: click.userId }),
        Effect.withSpan("Approvals.decide", { attributes: { approvalId: click.approvalId } })
      )

    const pendingFor = (agentId: string, conversationId: string | null) =>
      pending.pendingFor(agentId, conversationId).pipe(
        Effect.catchAll((error) => Effect.as(Effect.logError("could not read the pending approvals", error), false))
      )

    // Start-up: what a previous process left (see the module header).
    const stored = yield* pending.all.pipe(
      Effect.catchAll((error) => Effect.as(Effect.logError("could not read the pending approvals at start-up", error), []))
    )
    const now = yield* Clock.currentTimeMillis
    for (const approval of stored) {
      if (isComplete(approval)) yield* finish(approval)
      else if (approval.deadline <= now) yield* FiberSet.run(finishing, expire(approval.id))
      else yield* arm(approval)
    }
    if (stored.length > 0) {
      yield* Effect.logInfo("pending approvals taken up").pipe(Effect.annotateLogs({ approvals: stored.length }))
    }

    return { open, pendingFor, decide } as const
  })
}) {}

/** The ApprovalGate port, answered by the Approvals service. */
export const ApprovalGateLive: Layer.Layer<ApprovalGate, never, Approvals> = Layer.effect(
  ApprovalGate,
  Effect.map(Approvals, (approvals) => ({ open: approvals.open, pendingFor: approvals.pendingFor }))
)
