/**
 * The approval gate and the run continuation need each other: the gate (services/approvals/Gate.ts)
 * calls `ApprovalContinuation.resume` once every call of a stop is decided, and the continuation
 * (programs/ApprovalResume.ts) runs the tool loop, which asks the gate again at the next approval
 * stop. Both take their dependency when they are built, so one side is bound late: the gate gets a
 * relay whose `resume` waits for the real continuation, which is handed over as soon as it is built
 * (right after the gate, in the same layer). Nothing is lost in between: the gate resumes from
 * fibers of its own (start-up take-up, clicks, deadlines), which simply wait for the hand-over.
 * The relayed continuation is in the output too: the start-up take-up of open stops
 * (programs/StopTakeUp.ts) answers cut-off stops through it.
 */
import { Context, Deferred, Effect, Layer } from "effect"
import { makeApprovalResume } from "../programs/ApprovalResume.js"
import { ApprovalGateLive, Approvals } from "../services/approvals/Gate.js"
import { ApprovalContinuation, type ApprovalContinuationService } from "../services/approvals/Ports.js"

class ContinuationRelay extends Context.Tag("aurora/ContinuationRelay")<
  ContinuationRelay,
  Deferred.Deferred<ApprovalContinuationService>
>() {}

const relay = Layer.effect(ContinuationRelay, Deferred.make<ApprovalContinuationService>())

/** What the gate is given: resumes through the real continuation once it is there. */
const relayedContinuation = Layer.effect(
  ApprovalContinuation,
  Effect.map(ContinuationRelay, (handOver) => ({
    resume: (origin, answers, actionsBefore) =>
      Effect.flatMap(Deferred.await(handOver), (real) => real.resume(origin, answers, actionsBefore))
  }))
)

/** Builds the real continuation (with the gate) and hands it to the relay. */
const handOver = Layer.effectDiscard(
  Effect.gen(function*() {
    yield* Deferred.succeed(yield* ContinuationRelay, yield* makeApprovalResume())
  })
)

/** The gate (ApprovalGate and Approvals, for the buttons) and the continuation, wired to each other. */
export const ApprovalsWired = handOver.pipe(
  Layer.provideMerge(ApprovalGateLive),
  Layer.provideMerge(Approvals.Default),
  Layer.provideMerge(relayedContinuation),
  Layer.provideMerge(relay)
)
